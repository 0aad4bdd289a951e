//! Upstream mode's ref resolution: the guest asks the repository itself which
//! commit the requested ref names, with git's smart-HTTP ref discovery
//! (`GET <repository>/info/refs?service=git-upload-pack`, no `Git-Protocol`
//! header, so the server answers with the protocol v0/v1 advertisement), over
//! the same HTTPS client as every other download (the image's CA roots only).
//!
//! The advertisement is a sequence of pkt-lines: `# service=git-upload-pack`,
//! a flush, then one `<oid> <refname>` per ref (the first carrying the
//! capabilities after a NUL) with an annotated tag's peeled commit as
//! `<oid> <refname>^{}`, and a final flush. See git's
//! Documentation/gitprotocol-http.txt and gitprotocol-common.txt.

use std::collections::BTreeMap;

use thiserror::Error;

use crate::http::{HttpError, Https};

/// Largest ref advertisement accepted (repositories with very many tags run to megabytes).
pub const MAX_ADVERTISEMENT_BYTES: u64 = 32 << 20;
/// The only URL scheme a ref can be resolved over.
const HTTPS: &str = "https://";
/// The service line every smart-HTTP advertisement starts with.
const SERVICE_LINE: &str = "# service=git-upload-pack";
/// Sent so that servers which only speak smart HTTP to git clients answer us too.
const USER_AGENT: &str = concat!("git/kettle-init-", env!("CARGO_PKG_VERSION"));

/// Why the requested ref could not be resolved.
#[derive(Debug, Error)]
pub enum RefError {
    /// The repository URL is not one this guest can ask over HTTPS.
    #[error("repository {0:?} is not an https:// URL without query or fragment; upstream mode resolves the ref itself over HTTPS, so name the repository by its https:// clone URL (or use cached mode)")]
    NotHttps(String),
    /// Downloading the advertisement failed.
    #[error("ref discovery: {0}")]
    Http(#[from] HttpError),
    /// The body is not a smart-HTTP ref advertisement.
    #[error("{url} is not a git smart-HTTP ref advertisement ({why}); is the repository URL a git clone URL?")]
    Malformed {
        /// The info/refs URL.
        url: String,
        /// What is wrong with it.
        why: String,
    },
    /// The repository does not advertise the ref.
    #[error("the repository does not advertise ref {git_ref:?} (looked for {tried:?}); name a branch or tag it has")]
    Missing {
        /// The requested ref.
        git_ref: String,
        /// The full names looked for.
        tried: Vec<String>,
    },
    /// A short ref names both a branch and a tag (whatever commits they point at: the
    /// provenance must say which one was built).
    #[error("ref {git_ref:?} is ambiguous: the repository has both refs/heads/{git_ref} ({head}) and refs/tags/{git_ref} ({tag}); name it in full (refs/heads/... or refs/tags/...)")]
    Ambiguous {
        /// The requested ref.
        git_ref: String,
        /// What the branch names.
        head: String,
        /// What the tag names (peeled).
        tag: String,
    },
}

/// What the repository says a ref names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedRef {
    /// The full ref name that matched (e.g. `refs/tags/v1.0`).
    pub name: String,
    /// The object it names, peeled for an annotated tag (lowercase hex).
    pub commit: String,
}

/// The refs of one advertisement: name -> object id, and name -> peeled id for annotated tags.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Advertisement {
    /// Every advertised ref (`HEAD` included when the server lists it).
    pub refs: BTreeMap<String, String>,
    /// The `^{}` entries: what an annotated tag finally points at.
    pub peeled: BTreeMap<String, String>,
}

/// `<repository>/info/refs?service=git-upload-pack`, for an https:// repository only.
pub fn info_refs_url(repository: &str) -> Result<String, RefError> {
    let plain = repository.starts_with(HTTPS)
        && repository.len() > HTTPS.len()
        && !repository.contains(['?', '#']);
    if !plain {
        return Err(RefError::NotHttps(repository.to_string()));
    }
    Ok(format!(
        "{}/info/refs?service=git-upload-pack",
        repository.trim_end_matches('/')
    ))
}

/// Fetches the advertisement of `repository` with `client` and resolves `git_ref` in it.
pub fn resolve_remote(
    client: &Https,
    repository: &str,
    git_ref: &str,
    oid_hex_len: usize,
) -> Result<ResolvedRef, RefError> {
    let url = info_refs_url(repository)?;
    let body = client.get_bytes_with_headers(
        &url,
        MAX_ADVERTISEMENT_BYTES,
        &[("User-Agent", USER_AGENT)],
    )?;
    let ads =
        parse_advertisement(&body, oid_hex_len).map_err(|why| RefError::Malformed { url, why })?;
    resolve(&ads, git_ref)
}

/// Splits `body` into pkt-line payloads; `None` stands for a flush-pkt (`0000`).
fn pkt_lines(mut body: &[u8]) -> Result<Vec<Option<&[u8]>>, String> {
    let mut out = Vec::new();
    while !body.is_empty() {
        let head = body.get(..4).ok_or("a pkt-line length is cut short")?;
        let len = std::str::from_utf8(head)
            .ok()
            .filter(|h| h.bytes().all(|b| b.is_ascii_hexdigit()))
            .and_then(|h| usize::from_str_radix(h, 16).ok())
            .ok_or_else(|| {
                format!(
                    "{:?} is not a pkt-line length",
                    String::from_utf8_lossy(head)
                )
            })?;
        match len {
            0 => {
                out.push(None);
                body = &body[4..];
            }
            1..=3 => {
                return Err(format!(
                    "pkt-line length {len} is not valid in a v0/v1 advertisement"
                ))
            }
            _ => {
                let payload = body
                    .get(4..len)
                    .ok_or_else(|| format!("a pkt-line of {len} bytes is cut short"))?;
                out.push(Some(payload));
                body = &body[len..];
            }
        }
    }
    Ok(out)
}

/// Parses a smart-HTTP (protocol v0/v1) upload-pack advertisement whose object ids
/// have `oid_hex_len` hex digits (40 for SHA-1 repositories, 64 for SHA-256).
pub fn parse_advertisement(body: &[u8], oid_hex_len: usize) -> Result<Advertisement, String> {
    let lines = pkt_lines(body)?;
    let text = |l: &[u8]| -> Result<String, String> {
        let l = l.strip_suffix(b"\n").unwrap_or(l);
        String::from_utf8(l.to_vec()).map_err(|_| "a ref line is not UTF-8".to_string())
    };
    let mut it = lines.into_iter();
    match it.next() {
        Some(Some(l)) if text(l)? == SERVICE_LINE => {}
        _ => return Err(format!("it does not start with {SERVICE_LINE:?}")),
    }
    if it.next() != Some(None) {
        return Err("no flush-pkt after the service line".into());
    }
    let mut ads = Advertisement::default();
    let mut first = true;
    let mut ended = false;
    for line in it {
        let Some(line) = line else {
            ended = true;
            break;
        };
        // The first ref line carries the capabilities after a NUL.
        let line = match line.iter().position(|&b| b == 0) {
            Some(nul) if first => &line[..nul],
            Some(_) => return Err("a NUL after the first ref line".into()),
            None => line,
        };
        let line = text(line)?;
        if first && line == "version 1" {
            continue;
        }
        first = false;
        let (oid, name) = line
            .split_once(' ')
            .ok_or_else(|| format!("ref line {line:?} is not \"<oid> <name>\""))?;
        let hex = |s: &str| s.len() == oid_hex_len && s.bytes().all(|b| b.is_ascii_hexdigit());
        if !hex(oid) || name.is_empty() {
            return Err(format!(
                "ref line {line:?} does not hold a {oid_hex_len}-digit object id and a name"
            ));
        }
        let oid = oid.to_ascii_lowercase();
        // An empty repository advertises only "capabilities^{}" with the zero id.
        if name == "capabilities^{}" {
            continue;
        }
        match name.strip_suffix("^{}") {
            Some(tag) => ads.peeled.insert(tag.to_string(), oid),
            None => ads.refs.insert(name.to_string(), oid),
        };
    }
    if !ended {
        return Err("no flush-pkt after the refs".into());
    }
    Ok(ads)
}

/// The commit `git_ref` names in `ads`, and its full name: a full name (`refs/...`, `HEAD`)
/// exactly; a short name as `refs/heads/<name>` or `refs/tags/<name>`, refused when both
/// exist (even at one commit: the provenance records which full ref was built).
/// An annotated tag resolves to its peeled (`^{}`) object.
pub fn resolve(ads: &Advertisement, git_ref: &str) -> Result<ResolvedRef, RefError> {
    let lookup = |name: &str| {
        ads.peeled
            .get(name)
            .or_else(|| ads.refs.get(name))
            .map(|commit| ResolvedRef {
                name: name.to_string(),
                commit: commit.clone(),
            })
    };
    let tried: Vec<String> = if git_ref.starts_with("refs/") || git_ref == "HEAD" {
        vec![git_ref.to_string()]
    } else {
        vec![
            format!("refs/heads/{git_ref}"),
            format!("refs/tags/{git_ref}"),
        ]
    };
    let found: Vec<ResolvedRef> = tried.iter().filter_map(|n| lookup(n)).collect();
    match found.as_slice() {
        [] => Err(RefError::Missing {
            git_ref: git_ref.to_string(),
            tried,
        }),
        [one] => Ok(one.clone()),
        [head, tag, ..] => Err(RefError::Ambiguous {
            git_ref: git_ref.to_string(),
            head: head.commit.clone(),
            tag: tag.commit.clone(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A protocol v0 advertisement of `refs` ((oid, name) pairs, `name^{}` for peeled tags),
    /// as a smart-HTTP server sends it.
    fn advertisement_bytes(refs: &[(&str, &str)]) -> Vec<u8> {
        let pkt = |payload: &str| format!("{:04x}{payload}", payload.len() + 4);
        let mut out = pkt(&format!("{SERVICE_LINE}\n"));
        out.push_str("0000");
        for (i, (oid, name)) in refs.iter().enumerate() {
            if i == 0 {
                out.push_str(&pkt(&format!(
                    "{oid} {name}\0multi_ack side-band-64k ofs-delta\n"
                )));
            } else {
                out.push_str(&pkt(&format!("{oid} {name}\n")));
            }
        }
        out.push_str("0000");
        out.into_bytes()
    }

    const A: &str = "1111111111111111111111111111111111111111";
    const B: &str = "2222222222222222222222222222222222222222";
    const T: &str = "3333333333333333333333333333333333333333";

    #[test]
    fn parses_a_real_advertisement_shape() {
        let body = advertisement_bytes(&[
            (A, "HEAD"),
            (A, "refs/heads/main"),
            (T, "refs/tags/v1"),
            (B, "refs/tags/v1^{}"),
        ]);
        let ads = parse_advertisement(&body, 40).unwrap();
        assert_eq!(ads.refs["refs/heads/main"], A);
        assert_eq!(ads.refs["HEAD"], A);
        assert_eq!(ads.refs["refs/tags/v1"], T);
        assert_eq!(ads.peeled["refs/tags/v1"], B);
    }

    #[test]
    fn resolves_full_short_and_annotated_refs() {
        let ads = parse_advertisement(
            &advertisement_bytes(&[
                (A, "refs/heads/main"),
                (T, "refs/tags/v1"),
                (B, "refs/tags/v1^{}"),
                (B, "refs/heads/both"),
                (A, "refs/tags/both"),
            ]),
            40,
        )
        .unwrap();
        let commit = |r: &str| resolve(&ads, r).map(|r| r.commit);
        assert_eq!(commit("refs/heads/main").unwrap(), A);
        assert_eq!(commit("main").unwrap(), A);
        // An annotated tag names its tag object; the peeled entry is the commit.
        assert_eq!(commit("refs/tags/v1").unwrap(), B);
        assert_eq!(commit("v1").unwrap(), B);
        assert!(matches!(
            resolve(&ads, "both"),
            Err(RefError::Ambiguous { .. })
        ));
        // The short name resolves to its full name, which the provenance records.
        assert_eq!(resolve(&ads, "v1").unwrap().name, "refs/tags/v1");
        assert_eq!(resolve(&ads, "main").unwrap().name, "refs/heads/main");
        assert!(matches!(
            resolve(&ads, "refs/heads/nope"),
            Err(RefError::Missing { .. })
        ));
        assert!(matches!(
            resolve(&ads, "nope"),
            Err(RefError::Missing { .. })
        ));
    }

    /// Issue 25: a short name that is both a branch and a tag is refused by name even when
    /// both point at one commit (the provenance must say which was built).
    #[test]
    fn a_short_ref_naming_a_branch_and_a_tag_is_refused_even_at_one_commit() {
        let ads = parse_advertisement(
            &advertisement_bytes(&[(A, "refs/heads/same"), (A, "refs/tags/same")]),
            40,
        )
        .unwrap();
        let err = resolve(&ads, "same").unwrap_err();
        assert!(matches!(err, RefError::Ambiguous { .. }), "{err}");
        assert!(err.to_string().contains("name it in full"), "{err}");
        assert_eq!(
            resolve(&ads, "refs/tags/same").unwrap().name,
            "refs/tags/same"
        );
    }

    #[test]
    fn refuses_what_is_not_a_smart_advertisement() {
        // A dumb-HTTP info/refs: "<oid>\t<ref>" lines.
        assert!(parse_advertisement(format!("{A}\trefs/heads/main\n").as_bytes(), 40).is_err());
        assert!(parse_advertisement(b"", 40).is_err());
        let mut cut = advertisement_bytes(&[(A, "refs/heads/main")]);
        cut.truncate(cut.len() - 4);
        assert!(parse_advertisement(&cut, 40).is_err(), "no final flush");
        // Object ids of the wrong format.
        assert!(parse_advertisement(&advertisement_bytes(&[(A, "refs/heads/main")]), 64).is_err());
        // An empty repository advertises nothing.
        let empty = advertisement_bytes(&[(
            "0000000000000000000000000000000000000000",
            "capabilities^{}",
        )]);
        assert!(parse_advertisement(&empty, 40).unwrap().refs.is_empty());
    }

    #[test]
    fn only_https_repositories_are_resolved() {
        assert_eq!(
            info_refs_url("https://example.org/r.git/").unwrap(),
            "https://example.org/r.git/info/refs?service=git-upload-pack"
        );
        for bad in [
            "http://example.org/r",
            "git://example.org/r",
            "ssh://example.org/r",
            "https://",
            "https://example.org/r?x=1",
        ] {
            assert!(
                matches!(info_refs_url(bad), Err(RefError::NotHttps(_))),
                "{bad}"
            );
        }
    }
}
