//! The configfs-tsm provider (/sys/kernel/config/tsm/report, Linux 6.7+).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

use crate::provider::{Evidence, ReportProvider, RequestError, Tee};
use crate::report::REPORT_LEN;

/// Where configfs-tsm report entries are created.
pub const TSM_REPORT_DIR: &str = "/sys/kernel/config/tsm/report";
/// The provider name of the SEV-SNP guest driver.
const SEV_PROVIDER: &str = "sev_guest";
/// How often a request is retried when another writer changed the entry.
const ATTEMPTS: u32 = 3;

static ENTRY_COUNTER: AtomicU32 = AtomicU32::new(0);

/// Report requests through configfs-tsm.
pub struct ConfigfsTsm {
    root: PathBuf,
}

impl Default for ConfigfsTsm {
    fn default() -> Self {
        ConfigfsTsm::new()
    }
}

/// Removes the report entry when dropped.
struct Entry(PathBuf);

impl Drop for Entry {
    fn drop(&mut self) {
        if let Err(e) = std::fs::remove_dir(&self.0) {
            log::warn!("could not remove {}: {e}", self.0.display());
        }
    }
}

fn io(what: String) -> impl FnOnce(std::io::Error) -> RequestError {
    move |source| RequestError::Io { what, source }
}

fn read_attr(dir: &Path, name: &str) -> Result<Vec<u8>, RequestError> {
    let path = dir.join(name);
    std::fs::read(&path).map_err(io(format!("reading {}", path.display())))
}

fn write_attr(dir: &Path, name: &str, value: &[u8]) -> Result<(), RequestError> {
    let path = dir.join(name);
    std::fs::write(&path, value).map_err(io(format!("writing {}", path.display())))
}

fn read_generation(dir: &Path) -> Result<u64, RequestError> {
    let raw = read_attr(dir, "generation")?;
    let text = String::from_utf8_lossy(&raw);
    text.trim().parse().map_err(|_| {
        RequestError::BadReport(format!("configfs-tsm generation {text:?} is not a number"))
    })
}

impl ConfigfsTsm {
    /// The provider on /sys/kernel/config/tsm/report.
    pub fn new() -> ConfigfsTsm {
        ConfigfsTsm {
            root: PathBuf::from(TSM_REPORT_DIR),
        }
    }

    /// One attempt in an existing entry: Ok(None) if the generation moved under us.
    fn attempt(
        dir: &Path,
        report_data: &[u8; 64],
    ) -> Result<Result<Evidence, (u64, u64)>, RequestError> {
        let provider = String::from_utf8_lossy(&read_attr(dir, "provider")?)
            .trim()
            .to_string();
        if provider != SEV_PROVIDER {
            return Err(RequestError::WrongTsmProvider(provider));
        }
        if dir.join("privlevel").exists() {
            write_attr(dir, "privlevel", b"0")?;
        }
        let before = read_generation(dir)?;
        write_attr(dir, "inblob", report_data)?;
        let report = read_attr(dir, "outblob")?;
        let aux = if dir.join("auxblob").exists() {
            read_attr(dir, "auxblob")?
        } else {
            Vec::new()
        };
        let after = read_generation(dir)?;
        // Our inblob write is the one change allowed between the two reads.
        if after != before + 1 {
            return Ok(Err((before + 1, after)));
        }
        if report.len() != REPORT_LEN {
            return Err(RequestError::BadReport(format!(
                "configfs-tsm outblob is {} bytes; expected {REPORT_LEN}",
                report.len()
            )));
        }
        let cert_chain_pem = if aux.is_empty() {
            None
        } else {
            super::cert_table_to_pem(&aux)
        };
        Ok(Ok(Evidence {
            report,
            cert_chain_pem,
            provider: Tee::SevSnp,
        }))
    }

    /// Runs the request in `dir` (an entry that already exists), retrying on conflicts.
    fn request_in(dir: &Path, report_data: &[u8; 64]) -> Result<Evidence, RequestError> {
        let mut last = (0, 0);
        for _ in 0..ATTEMPTS {
            match Self::attempt(dir, report_data)? {
                Ok(evidence) => return Ok(evidence),
                Err(conflict) => {
                    log::warn!(
                        "configfs-tsm generation changed ({} -> {}); retrying",
                        conflict.0,
                        conflict.1
                    );
                    last = conflict;
                }
            }
        }
        Err(RequestError::GenerationChanged {
            expected: last.0,
            found: last.1,
            attempts: ATTEMPTS,
        })
    }
}

impl ReportProvider for ConfigfsTsm {
    fn request_report(&mut self, report_data: &[u8; 64]) -> Result<Evidence, RequestError> {
        let name = format!(
            "kettle-{}-{}",
            std::process::id(),
            ENTRY_COUNTER.fetch_add(1, Ordering::Relaxed)
        );
        let dir = self.root.join(name);
        std::fs::create_dir(&dir).map_err(io(format!("creating {}", dir.display())))?;
        let entry = Entry(dir);
        Self::request_in(&entry.0, report_data)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fake_entry(tag: &str, provider: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("kettle-tsm-{tag}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("provider"), format!("{provider}\n")).unwrap();
        std::fs::write(dir.join("generation"), "7\n").unwrap();
        std::fs::write(dir.join("outblob"), vec![0u8; REPORT_LEN]).unwrap();
        dir
    }

    #[test]
    fn refuses_a_provider_other_than_sev_guest() {
        let dir = fake_entry("provider", "tdx_guest");
        match ConfigfsTsm::request_in(&dir, &[0; 64]) {
            Err(RequestError::WrongTsmProvider(p)) => assert_eq!(p, "tdx_guest"),
            other => panic!("{other:?}"),
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn detects_a_generation_that_did_not_advance_as_expected() {
        // A plain directory never bumps `generation`, which is exactly what a
        // conflicting writer looks like from our side: a mismatch after the write.
        let dir = fake_entry("generation", "sev_guest");
        std::fs::write(dir.join("privlevel"), "").unwrap();
        match ConfigfsTsm::request_in(&dir, &[9; 64]) {
            Err(RequestError::GenerationChanged {
                expected: 8,
                found: 7,
                attempts: ATTEMPTS,
            }) => {}
            other => panic!("{other:?}"),
        }
        assert_eq!(std::fs::read(dir.join("inblob")).unwrap(), vec![9u8; 64]);
        assert_eq!(std::fs::read(dir.join("privlevel")).unwrap(), b"0");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn missing_root_is_an_io_error() {
        let mut tsm = ConfigfsTsm {
            root: PathBuf::from("/nonexistent/tsm/report"),
        };
        assert!(matches!(
            tsm.request_report(&[0; 64]),
            Err(RequestError::Io { .. })
        ));
    }
}
