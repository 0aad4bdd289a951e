//! Package URLs (purl spec) for the inputs Kettle pins: crates, toolchains and
//! root filesystems, and GitHub source commits. Built with the `packageurl`
//! crate, which percent-encodes each component (so `+` in a version is `%2B`).

use packageurl::PackageUrl;
use thiserror::Error;

/// Qualifier carrying `algorithm:hex` checksums (purl spec's `checksum`).
pub const QUALIFIER_CHECKSUM: &str = "checksum";
/// Qualifier carrying the URL the artifact was downloaded from.
pub const QUALIFIER_DOWNLOAD_URL: &str = "download_url";

/// Why a Package URL could not be built or parsed.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum PurlError {
    /// A required component (name, version, owner...) is empty.
    #[error("Package URL {component} is empty")]
    Empty {
        /// Which component.
        component: &'static str,
    },
    /// A component holds characters it may not (e.g. `/` in a name would split it).
    #[error("Package URL {component} {value:?} is invalid: {reason}")]
    Invalid {
        /// Which component.
        component: &'static str,
        /// The offending value.
        value: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The `packageurl` crate refused a type, qualifier key or the whole string.
    #[error("invalid Package URL: {0}")]
    Purl(#[from] packageurl::Error),
}

/// `pkg:cargo/<name>@<version>` for a crates.io package, e.g. `pkg:cargo/serde@1.0.228`.
pub fn cargo(name: &str, version: &str) -> Result<String, PurlError> {
    non_empty("name", name)?;
    non_empty("version", version)?;
    // crates.io names are ASCII alphanumerics, `-` and `_`.
    if !name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        return Err(PurlError::Invalid {
            component: "name",
            value: name.into(),
            reason: "crate names are ASCII letters, digits, '-' and '_'",
        });
    }
    let mut purl = PackageUrl::new("cargo", name)?;
    purl.with_version(version);
    Ok(purl.to_string())
}

/// `pkg:generic/<name>@<version>?<qualifiers>` for a toolchain, rootfs or other download.
///
/// Qualifiers are `(key, value)` pairs such as [`QUALIFIER_CHECKSUM`] (see [`sha256_checksum`])
/// and [`QUALIFIER_DOWNLOAD_URL`]; they are emitted sorted by key as the spec requires.
pub fn generic(
    name: &str,
    version: &str,
    qualifiers: &[(&str, &str)],
) -> Result<String, PurlError> {
    non_empty("name", name)?;
    non_empty("version", version)?;
    no_slash("name", name)?;
    let mut purl = PackageUrl::new("generic", name)?;
    purl.with_version(version);
    for (key, value) in qualifiers {
        // The spec drops empty-valued qualifiers; refusing them surfaces the caller's bug instead.
        if value.is_empty() {
            return Err(PurlError::Invalid {
                component: "qualifier",
                value: (*key).into(),
                reason: "qualifier values may not be empty",
            });
        }
        if purl
            .qualifiers()
            .contains_key(&key.to_ascii_lowercase()[..])
        {
            return Err(PurlError::Invalid {
                component: "qualifier",
                value: (*key).into(),
                reason: "qualifier given twice",
            });
        }
        purl.add_qualifier(key.to_string(), value.to_string())?;
    }
    Ok(purl.to_string())
}

/// `pkg:github/<owner>/<repo>@<commit>`; owner and repo are lowercased as the spec requires.
pub fn github(owner: &str, repo: &str, commit: &str) -> Result<String, PurlError> {
    non_empty("namespace (owner)", owner)?;
    non_empty("name (repository)", repo)?;
    non_empty("version (commit)", commit)?;
    no_slash("namespace (owner)", owner)?;
    no_slash("name (repository)", repo)?;
    if !commit.chars().all(|c| c.is_ascii_hexdigit()) || !matches!(commit.len(), 40 | 64) {
        return Err(PurlError::Invalid {
            component: "version (commit)",
            value: commit.into(),
            reason: "expected a full 40- or 64-digit hex commit id",
        });
    }
    let mut purl = PackageUrl::new("github", repo.to_ascii_lowercase())?;
    purl.with_namespace(owner.to_ascii_lowercase())
        .with_version(commit.to_ascii_lowercase());
    Ok(purl.to_string())
}

/// `pkg:deb/<vendor>/<name>@<version>?arch=<arch>` for an installed Debian package, e.g.
/// `pkg:deb/debian/gcc-12@12.2.0-14%2Bdeb12u1?arch=amd64` (`vendor` is the distribution:
/// `debian`, `ubuntu`; the version is dpkg's, epoch included; `arch` as dpkg says, `all` too).
pub fn deb(vendor: &str, name: &str, version: &str, arch: &str) -> Result<String, PurlError> {
    non_empty("namespace (vendor)", vendor)?;
    non_empty("name", name)?;
    non_empty("version", version)?;
    non_empty("arch", arch)?;
    no_slash("namespace (vendor)", vendor)?;
    // Debian policy: package names are lowercase letters, digits, '+', '-' and '.'.
    if !name
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "+-.".contains(c))
    {
        return Err(PurlError::Invalid {
            component: "name",
            value: name.into(),
            reason: "Debian package names are lowercase letters, digits, '+', '-' and '.'",
        });
    }
    let mut purl = PackageUrl::new("deb", name)?;
    purl.with_namespace(vendor.to_ascii_lowercase())
        .with_version(version);
    purl.add_qualifier("arch", arch.to_string())?;
    Ok(purl.to_string())
}

/// The `checksum` qualifier value for a SHA-256 digest: `sha256:<hex>`.
pub fn sha256_checksum(hex: &str) -> String {
    format!("sha256:{hex}")
}

/// Parses a Package URL string (decoding percent-escapes).
pub fn parse(purl: &str) -> Result<PackageUrl<'static>, PurlError> {
    Ok(purl.parse::<PackageUrl<'static>>()?)
}

fn non_empty(component: &'static str, value: &str) -> Result<(), PurlError> {
    if value.is_empty() {
        Err(PurlError::Empty { component })
    } else {
        Ok(())
    }
}

/// `packageurl` leaves `/` unencoded, which would move part of the name into the namespace.
fn no_slash(component: &'static str, value: &str) -> Result<(), PurlError> {
    if value.contains('/') {
        Err(PurlError::Invalid {
            component,
            value: value.into(),
            reason: "may not contain '/'",
        })
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cargo_purls() {
        assert_eq!(
            cargo("serde", "1.0.228").unwrap(),
            "pkg:cargo/serde@1.0.228"
        );
        assert_eq!(
            cargo("serde_json", "1.0.0-rc.1").unwrap(),
            "pkg:cargo/serde_json@1.0.0-rc.1"
        );
        // SemVer build metadata: '+' must be percent-encoded (it means space in some decoders).
        let p = cargo("zstd-sys", "2.0.13+zstd.1.5.6").unwrap();
        assert_eq!(p, "pkg:cargo/zstd-sys@2.0.13%2Bzstd.1.5.6");
        assert_eq!(parse(&p).unwrap().version(), Some("2.0.13+zstd.1.5.6"));
        assert_eq!(
            cargo("x", "1.0.0+build").unwrap(),
            "pkg:cargo/x@1.0.0%2Bbuild"
        );
        assert!(matches!(
            cargo("", "1"),
            Err(PurlError::Empty { component: "name" })
        ));
        assert!(matches!(
            cargo("a", ""),
            Err(PurlError::Empty {
                component: "version"
            })
        ));
        assert!(matches!(cargo("a/b", "1"), Err(PurlError::Invalid { .. })));
    }

    #[test]
    fn generic_purls_sort_and_encode_qualifiers() {
        let sha = "ab".repeat(32);
        let p = generic(
            "rust-toolchain",
            "1.85.0",
            &[
                (
                    QUALIFIER_DOWNLOAD_URL,
                    "https://static.rust-lang.org/dist/rust-1.85.0-x86_64-unknown-linux-gnu.tar.xz",
                ),
                (QUALIFIER_CHECKSUM, &sha256_checksum(&sha)),
            ],
        )
        .unwrap();
        assert_eq!(
            p,
            format!("pkg:generic/rust-toolchain@1.85.0?checksum=sha256:{sha}&download_url=https://static.rust-lang.org/dist/rust-1.85.0-x86_64-unknown-linux-gnu.tar.xz")
        );
        let back = parse(&p).unwrap();
        assert_eq!(back.ty(), "generic");
        assert_eq!(back.name(), "rust-toolchain");
        assert_eq!(
            back.qualifiers().get("checksum").map(|v| v.as_ref()),
            Some(&*sha256_checksum(&sha))
        );

        assert_eq!(
            generic("rootfs", "2025.01+1", &[]).unwrap(),
            "pkg:generic/rootfs@2025.01%2B1"
        );
        assert_eq!(
            generic("x", "1", &[("download_url", "https://h/a b?c=d#e")]).unwrap(),
            "pkg:generic/x@1?download_url=https://h/a%20b%3Fc%3Dd%23e"
        );
        assert!(matches!(
            generic("a/b", "1", &[]),
            Err(PurlError::Invalid { .. })
        ));
        assert!(matches!(
            generic("a", "1", &[("checksum", "")]),
            Err(PurlError::Invalid { .. })
        ));
        assert!(matches!(
            generic("a", "1", &[("checksum", "x"), ("CHECKSUM", "y")]),
            Err(PurlError::Invalid { .. })
        ));
        assert!(matches!(
            generic("a", "1", &[("bad key", "v")]),
            Err(PurlError::Purl(_))
        ));
    }

    #[test]
    fn deb_purls() {
        assert_eq!(
            deb("debian", "gcc-12", "12.2.0-14+deb12u1", "amd64").unwrap(),
            "pkg:deb/debian/gcc-12@12.2.0-14%2Bdeb12u1?arch=amd64"
        );
        // An epoch keeps its colon; `~` is unreserved.
        let p = deb("debian", "bsdutils", "1:2.38.1-5+deb12u3", "amd64").unwrap();
        assert_eq!(p, "pkg:deb/debian/bsdutils@1:2.38.1-5%2Bdeb12u3?arch=amd64");
        let back = parse(&p).unwrap();
        assert_eq!(back.version(), Some("1:2.38.1-5+deb12u3"));
        assert_eq!(back.namespace(), Some("debian"));
        assert_eq!(
            deb("debian", "libstdc++6", "12.2.0-14", "amd64").unwrap(),
            "pkg:deb/debian/libstdc%2B%2B6@12.2.0-14?arch=amd64"
        );
        assert_eq!(
            deb("debian", "tzdata", "2025b-0~deb12u1", "all").unwrap(),
            "pkg:deb/debian/tzdata@2025b-0~deb12u1?arch=all"
        );
        assert!(matches!(
            deb("debian", "Gcc", "1", "amd64"),
            Err(PurlError::Invalid { .. })
        ));
        assert!(matches!(
            deb("debian", "gcc", "1", ""),
            Err(PurlError::Empty { .. })
        ));
    }

    #[test]
    fn github_purls() {
        let commit = "0123456789abcdef0123456789abcdef01234567";
        assert_eq!(
            github("Kettle-Build", "Kettle", commit).unwrap(),
            format!("pkg:github/kettle-build/kettle@{commit}")
        );
        assert_eq!(
            github("o", "r", &commit.to_uppercase()).unwrap(),
            format!("pkg:github/o/r@{commit}")
        );
        let sha256_commit = "ab".repeat(32);
        assert!(github("o", "r", &sha256_commit).is_ok());
        assert!(matches!(
            github("o", "r", "main"),
            Err(PurlError::Invalid { .. })
        ));
        assert!(matches!(
            github("o/x", "r", commit),
            Err(PurlError::Invalid { .. })
        ));
        assert!(matches!(
            github("", "r", commit),
            Err(PurlError::Empty { .. })
        ));
    }
}
