//! The one normalization of repository URLs and git refs. `kettle build` puts
//! the normalized form into the request (so into the provenance), and the
//! verifier normalizes both sides before comparing, so the spellings of one
//! repository and one ref all compare equal, as slsa-verifier does.
//!
//! Repository URLs:
//!
//! | written as | normalized |
//! | --- | --- |
//! | `git@github.com:o/r.git` (scp-like) | `https://github.com/o/r` |
//! | `ssh://git@github.com:22/o/r.git` | `https://github.com/o/r` |
//! | `git://github.com/o/r`, `http://github.com/o/r` | `https://github.com/o/r` |
//! | `github.com/o/r` (no scheme, as slsa-verifier's `--source-uri`) | `https://github.com/o/r` |
//! | `https://user:token@GitHub.COM/o/r.git/` | `https://github.com/o/r` |
//! | `https://git.example.com:8443/o/r` | kept (the port names another server) |
//! | `file:///srv/git/r.git/` | `file:///srv/git/r.git` (only the trailing `/` goes) |
//!
//! The scheme becomes https (ssh, git and http name the same repository as its
//! https clone URL on every forge), the user info is dropped (a token must
//! never reach a provenance), the host is lowercased, an ssh port and https's
//! 443 are dropped, and a trailing `/` and `.git` are removed. The path keeps
//! its case: only some forges ignore it. `file://` URLs name a directory, so
//! only a trailing `/` is removed.
//!
//! Refs: `refs/...` is kept, `heads/x` and `tags/x` become `refs/heads/x` and
//! `refs/tags/x`, and any other name `x` is a branch, `refs/heads/x` (git's
//! own rule for a push, and slsa-verifier's `--source-branch`). Where a
//! repository is at hand (the checkout being built, an auditor's `--source`
//! clone) git resolves a short name first, so `v1.2` becomes `refs/tags/v1.2`
//! when that tag exists; this function is the rule when only text is at hand.

use thiserror::Error;

/// Why a repository URL or ref could not be normalized.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum SourceUrlError {
    /// Nothing was given.
    #[error("is empty")]
    Empty,
    /// Whitespace or control characters.
    #[error("{0:?} contains whitespace or control characters")]
    BadCharacters(String),
    /// A scheme this builder does not know.
    #[error("{0:?} is not a repository URL (https://, http://, ssh://, git://, file://, user@host:path or host.name/path)")]
    UnknownScheme(String),
    /// No host, or no path after it.
    #[error("{0:?} names no host and repository path")]
    NoPath(String),
    /// `?query` or `#fragment`: not part of a clone URL.
    #[error("{0:?} has a query or fragment, which no clone URL has")]
    QueryOrFragment(String),
    /// A ref that is no branch or tag name.
    #[error("ref {0:?} is not a branch or tag name (write refs/heads/NAME or refs/tags/NAME)")]
    BadRef(String),
}

/// The normalized form of a repository URL (see the module docs for the rules).
pub fn normalize_repository(url: &str) -> Result<String, SourceUrlError> {
    let url = url.trim();
    if url.is_empty() {
        return Err(SourceUrlError::Empty);
    }
    if url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(SourceUrlError::BadCharacters(url.into()));
    }
    if url.contains(['?', '#']) {
        return Err(SourceUrlError::QueryOrFragment(url.into()));
    }
    if let Some(path) = strip_prefix_ignore_case(url, "file://") {
        let path = path.trim_end_matches('/');
        if path.is_empty() {
            return Err(SourceUrlError::NoPath(url.into()));
        }
        return Ok(format!("file://{path}"));
    }
    let (authority, path, default_port) = match url.split_once("://") {
        Some((scheme, rest)) => {
            let scheme = scheme.to_ascii_lowercase();
            let default_port = match scheme.as_str() {
                "https" => Some("443"),
                "http" => Some("80"),
                // An ssh or git port says how to reach the server by that protocol,
                // not which repository it is: its https URL has no such port.
                "ssh" | "git" | "git+ssh" | "ssh+git" => None,
                _ => return Err(SourceUrlError::UnknownScheme(url.into())),
            };
            let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
            (authority, path, default_port)
        }
        None => match scp_like(url) {
            Some((authority, path)) => (authority, path, None),
            None => match bare_host_path(url) {
                Some((host, path)) => (host, path, Some("443")),
                None => return Err(SourceUrlError::UnknownScheme(url.into())),
            },
        },
    };
    // user info (a user name, or a token) never reaches a provenance
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let (host, port) = split_port(host_port);
    let host = host.to_ascii_lowercase();
    // An IPv6 literal keeps its brackets in a URL.
    let host = if host.contains(':') {
        format!("[{host}]")
    } else {
        host
    };
    if host.is_empty() {
        return Err(SourceUrlError::NoPath(url.into()));
    }
    let port = match (default_port, port) {
        (Some(default), Some(p)) if p != default => Some(p),
        _ => None,
    };
    let mut path: String = path
        .split('/')
        .filter(|s| !s.is_empty())
        .collect::<Vec<_>>()
        .join("/");
    if let Some(stripped) = path.strip_suffix(".git") {
        path = stripped.trim_end_matches('/').to_string();
    }
    if path.is_empty() {
        return Err(SourceUrlError::NoPath(url.into()));
    }
    Ok(match port {
        Some(p) => format!("https://{host}:{p}/{path}"),
        None => format!("https://{host}/{path}"),
    })
}

/// True when both URLs normalize to the same repository (unnormalizable ones compare as written).
pub fn same_repository(a: &str, b: &str) -> bool {
    match (normalize_repository(a), normalize_repository(b)) {
        (Ok(a), Ok(b)) => a == b,
        _ => a == b,
    }
}

/// The full ref for `r` (see the module docs): `refs/...` kept, `heads/x` / `tags/x`
/// completed, any other name a branch.
pub fn normalize_ref(r: &str) -> Result<String, SourceUrlError> {
    let r = r.trim();
    if r.is_empty() {
        return Err(SourceUrlError::Empty);
    }
    if r.chars().any(|c| c.is_whitespace() || c.is_control())
        || r == "HEAD"
        || r.starts_with('/')
        || r.ends_with('/')
        || r.contains("..")
        || r.contains("//")
    {
        return Err(SourceUrlError::BadRef(r.into()));
    }
    Ok(if r.starts_with("refs/") {
        r.to_string()
    } else if r.starts_with("heads/") || r.starts_with("tags/") {
        format!("refs/{r}")
    } else {
        format!("refs/heads/{r}")
    })
}

/// True when both refs normalize to the same full ref (unnormalizable ones compare as written).
pub fn same_ref(a: &str, b: &str) -> bool {
    match (normalize_ref(a), normalize_ref(b)) {
        (Ok(a), Ok(b)) => a == b,
        _ => a == b,
    }
}

fn strip_prefix_ignore_case<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    let head = s.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &s[prefix.len()..])
}

/// `[user@]host:path` as git reads it: a colon before any slash, and not a Windows drive.
fn scp_like(url: &str) -> Option<(&str, &str)> {
    let colon = url.find(':')?;
    if url[..colon].contains('/') || colon < 2 {
        return None;
    }
    Some((&url[..colon], url[colon + 1..].trim_start_matches('/')))
}

/// `host.name/path` without a scheme, as slsa-verifier's `--source-uri github.com/o/r`
/// takes it: the first segment must be a DNS name with a dot (so `./dir` or `dir/x`
/// stays a path, refused as one).
fn bare_host_path(url: &str) -> Option<(&str, &str)> {
    let (host, path) = url.split_once('/')?;
    let dns = !host.is_empty()
        && host.contains('.')
        && !host.starts_with(['.', '-'])
        && !host.ends_with('.')
        && !host.contains("..")
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-');
    (dns && host.bytes().any(|b| b.is_ascii_alphabetic())).then_some((host, path))
}

/// `host:port` (also `[v6]:port`) into host and port.
fn split_port(host_port: &str) -> (&str, Option<&str>) {
    if let Some(rest) = host_port.strip_prefix('[') {
        if let Some((h, after)) = rest.split_once(']') {
            return (h, after.strip_prefix(':').filter(|p| !p.is_empty()));
        }
    }
    match host_port.rsplit_once(':') {
        Some((h, p)) if p.bytes().all(|b| b.is_ascii_digit()) => {
            (h, Some(p).filter(|p| !p.is_empty()))
        }
        _ => (host_port, None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repository_forms_normalize_to_one() {
        let gh = "https://github.com/o/r";
        let table = [
            ("https://github.com/o/r", gh),
            ("https://github.com/o/r.git", gh),
            ("https://github.com/o/r/", gh),
            ("https://github.com/o/r.git/", gh),
            ("https://GitHub.COM/o/r", gh),
            ("HTTPS://github.com/o/r", gh),
            ("https://github.com:443/o/r", gh),
            ("https://user:ghp_token@github.com/o/r.git", gh),
            ("http://github.com/o/r", gh),
            ("git://github.com/o/r.git", gh),
            ("ssh://git@github.com/o/r.git", gh),
            ("ssh://git@github.com:22/o/r.git", gh),
            ("git+ssh://git@github.com/o/r", gh),
            ("git@github.com:o/r.git", gh),
            ("git@github.com:/o/r.git", gh),
            ("github.com:o/r", gh),
            ("github.com/o/r", gh),
            ("GitHub.com/o/r.git", gh),
            ("  https://github.com//o//r.git  ", gh),
            // The path keeps its case: only some forges ignore it.
            (
                "git@github.com:Owner/Repo.git",
                "https://github.com/Owner/Repo",
            ),
            // Another port is another server.
            (
                "https://git.example.com:8443/g/sub/r.git",
                "https://git.example.com:8443/g/sub/r",
            ),
            ("ssh://git@[::1]:2222/r.git", "https://[::1]/r"),
            ("file:///srv/git/r.git/", "file:///srv/git/r.git"),
            ("file:///tmp/hello", "file:///tmp/hello"),
        ];
        for (written, want) in table {
            assert_eq!(
                normalize_repository(written).as_deref(),
                Ok(want),
                "{written}"
            );
        }
        assert!(same_repository(
            "git@github.com:o/r.git",
            "https://github.com/o/r/"
        ));
        assert!(!same_repository(
            "https://github.com/o/r",
            "https://github.com/o/r2"
        ));
        assert!(!same_repository(
            "https://github.com/o/r",
            "https://gitlab.com/o/r"
        ));
    }

    #[test]
    fn bad_repository_urls_say_why() {
        type Is = fn(&SourceUrlError) -> bool;
        let cases: [(&str, Is); 8] = [
            ("", |e| matches!(e, SourceUrlError::Empty)),
            ("https://a b/c", |e| {
                matches!(e, SourceUrlError::BadCharacters(_))
            }),
            ("ftp://h/r", |e| {
                matches!(e, SourceUrlError::UnknownScheme(_))
            }),
            ("./relative/path", |e| {
                matches!(e, SourceUrlError::UnknownScheme(_))
            }),
            ("relative/path", |e| {
                matches!(e, SourceUrlError::UnknownScheme(_))
            }),
            ("https://github.com/", |e| {
                matches!(e, SourceUrlError::NoPath(_))
            }),
            ("https://github.com/o/r?x=1", |e| {
                matches!(e, SourceUrlError::QueryOrFragment(_))
            }),
            ("file://", |e| matches!(e, SourceUrlError::NoPath(_))),
        ];
        for (url, is) in cases {
            let err = normalize_repository(url).unwrap_err();
            assert!(is(&err), "{url}: {err}");
        }
    }

    #[test]
    fn refs_become_full_refs() {
        let table = [
            ("refs/heads/main", "refs/heads/main"),
            ("main", "refs/heads/main"),
            ("master", "refs/heads/master"),
            ("feature/x", "refs/heads/feature/x"),
            ("heads/main", "refs/heads/main"),
            ("tags/v1.2.0", "refs/tags/v1.2.0"),
            ("refs/tags/v1.2.0", "refs/tags/v1.2.0"),
            ("refs/pull/7/head", "refs/pull/7/head"),
        ];
        for (written, want) in table {
            assert_eq!(normalize_ref(written).as_deref(), Ok(want), "{written}");
        }
        for bad in ["", "HEAD", "a b", "/main", "main/", "a..b", "a//b"] {
            assert!(normalize_ref(bad).is_err(), "{bad:?}");
        }
        assert!(same_ref("master", "refs/heads/master"));
        assert!(!same_ref("v1", "refs/tags/v1"), "a short name is a branch");
        assert!(same_ref("tags/v1", "refs/tags/v1"));
    }
}
