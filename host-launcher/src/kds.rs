//! Fetching a report's VCEK from AMD's Key Distribution Service (only with
//! `kettle verify --fetch-vcek`; verification is offline otherwise). The VCEK
//! is not trusted for being fetched: it must still chain to a pinned root.

use kettle_attest::{Report, Tcb};

use crate::download::{DownloadError, Downloader, RetryPolicy};

/// AMD's key distribution service.
pub const AMD_KDS_URL: &str = "https://kdsintf.amd.com";

/// Largest VCEK certificate accepted (they are about 1.3 KiB).
const MAX_VCEK_BYTES: u64 = 64 * 1024;

/// Why the VCEK could not be fetched.
#[derive(Debug, thiserror::Error)]
pub enum KdsError {
    /// The report could not be parsed.
    #[error("the evidence is not an SNP report ({0}), so there is no VCEK to fetch")]
    Report(String),
    /// The report does not say which processor produced it.
    #[error("report version {0} carries no CPU identification: pass --product milan|genoa|turin")]
    UnknownProduct(u32),
    /// The report names a processor the KDS has no VCEKs for.
    #[error(
        "CPU family {family:#x} model {model:#x} is not Milan, Genoa or Turin: pass --product"
    )]
    UnsupportedCpu {
        /// CPUID family.
        family: u8,
        /// CPUID model.
        model: u8,
    },
    /// The chip id is masked (all zero): no VCEK can be looked up.
    #[error("the report's chip_id is masked (all zeros): fetch the VCEK on the host that ran the guest and pass --chain")]
    MaskedChipId,
    /// The download failed.
    #[error("fetching the VCEK from the KDS: {0}")]
    Download(#[from] DownloadError),
}

/// A processor generation, as the KDS names it in URLs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum KdsProduct {
    /// EPYC 7003.
    Milan,
    /// EPYC 9004.
    Genoa,
    /// EPYC 9005.
    Turin,
}

impl KdsProduct {
    /// The name in KDS URLs.
    pub fn kds_name(self) -> &'static str {
        match self {
            KdsProduct::Milan => "Milan",
            KdsProduct::Genoa => "Genoa",
            KdsProduct::Turin => "Turin",
        }
    }

    /// The product from CPUID family/model (report version 3 and later).
    pub fn from_cpuid(family: u8, model: u8) -> Result<KdsProduct, KdsError> {
        match (family, model) {
            (0x19, 0x00..=0x0f) => Ok(KdsProduct::Milan),
            (0x19, 0x10..=0x1f) | (0x19, 0xa0..=0xaf) => Ok(KdsProduct::Genoa),
            (0x1a, 0x00..=0x11) => Ok(KdsProduct::Turin),
            _ => Err(KdsError::UnsupportedCpu { family, model }),
        }
    }
}

/// The KDS path and query of a VCEK: hwid from chip_id (8 bytes on Turin, 64 before), SPLs from the reported TCB.
pub fn vcek_path(product: KdsProduct, chip_id: &[u8; 64], tcb: &Tcb) -> String {
    let hwid = match product {
        KdsProduct::Turin => hex::encode(&chip_id[..8]),
        _ => hex::encode(chip_id),
    };
    let mut query = String::new();
    if let (KdsProduct::Turin, Some(fmc)) = (product, tcb.fmc) {
        query.push_str(&format!("fmcSPL={fmc}&"));
    }
    query.push_str(&format!(
        "blSPL={}&teeSPL={}&snpSPL={}&ucodeSPL={}",
        tcb.bootloader, tcb.tee, tcb.snp, tcb.microcode
    ));
    format!("/vcek/v1/{}/{hwid}?{query}", product.kds_name())
}

/// Largest CRL accepted from the KDS.
const MAX_CRL_BYTES: u64 = 4 << 20;

/// A client of a KDS (AMD's or a stand-in).
pub struct KdsClient {
    base: String,
    downloader: Downloader,
    product: Option<KdsProduct>,
}

impl KdsClient {
    /// A client of the KDS at `base` (e.g. [`AMD_KDS_URL`]); KDS rate limits are retried with backoff.
    pub fn new(base: &str) -> KdsClient {
        KdsClient {
            base: base.trim_end_matches('/').to_string(),
            downloader: Downloader::new(RetryPolicy::default()),
            product: None,
        }
    }

    /// Uses `product` instead of reading it from the report.
    pub fn with_product(mut self, product: Option<KdsProduct>) -> KdsClient {
        self.product = product;
        self
    }

    /// Uses `retry` for the download.
    pub fn with_retry(mut self, retry: RetryPolicy) -> KdsClient {
        self.downloader = Downloader::new(retry);
        self
    }

    /// The processor generation of a report: `--product`, else its CPUID (version 3 and later).
    pub fn product_of(&self, report: &Report) -> Result<KdsProduct, KdsError> {
        match self.product {
            Some(p) => Ok(p),
            None => {
                let f = report.fields();
                match (f.cpuid_fam_id, f.cpuid_mod_id) {
                    (Some(family), Some(model)) => KdsProduct::from_cpuid(family, model),
                    _ => Err(KdsError::UnknownProduct(report.version())),
                }
            }
        }
    }

    /// AMD's CRL (DER) for the generation of `report_bytes` (the VLEK one for a VLEK-signed
    /// report), always fetched from the KDS: a copy cached earlier could be older than the
    /// CRL AMD publishes now and hide a revocation, so it is never read here. A copy is kept
    /// in `cache_dir` (`<kind>-<product>.crl`) for later offline use with `--crl`.
    pub fn fetch_crl_for_report(
        &self,
        report_bytes: &[u8],
        cache_dir: &std::path::Path,
    ) -> Result<Vec<u8>, KdsError> {
        let report = Report::parse(report_bytes).map_err(|e| KdsError::Report(e.to_string()))?;
        let product = self.product_of(&report)?;
        let kind = if report.signing_key() == kettle_attest::signature::SIGNING_KEY_VLEK {
            "vlek"
        } else {
            "vcek"
        };
        let url = format!("{}/{kind}/v1/{}/crl", self.base, product.kds_name());
        log::info!("fetching the CRL from {url}");
        let der = self.downloader.get_bytes(&url, MAX_CRL_BYTES)?;
        // The copy only serves a later `--crl`: the verifier checks the CRL's signature every time.
        let copy = cache_dir.join(format!("{kind}-{}.crl", product.kds_name()));
        if std::fs::create_dir_all(cache_dir).is_ok() {
            let _ = std::fs::write(&copy, &der);
        }
        Ok(der)
    }

    /// The DER VCEK that should have signed `report_bytes`.
    pub fn fetch_vcek_for_report(&self, report_bytes: &[u8]) -> Result<Vec<u8>, KdsError> {
        let report = Report::parse(report_bytes).map_err(|e| KdsError::Report(e.to_string()))?;
        let product = self.product_of(&report)?;
        let chip_id = report.chip_id();
        if chip_id.iter().all(|b| *b == 0) {
            return Err(KdsError::MaskedChipId);
        }
        let url = format!(
            "{}{}",
            self.base,
            vcek_path(product, &chip_id, &report.reported_tcb())
        );
        log::info!("fetching the VCEK from {url}");
        Ok(self.downloader.get_bytes(&url, MAX_VCEK_BYTES)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::download::tests::stand_in;

    #[test]
    fn paths_follow_the_kds_scheme() {
        let mut chip = [0u8; 64];
        chip[0] = 0xab;
        chip[63] = 0xcd;
        let tcb = Tcb {
            fmc: None,
            bootloader: 3,
            tee: 0,
            snp: 8,
            microcode: 115,
        };
        let p = vcek_path(KdsProduct::Milan, &chip, &tcb);
        assert_eq!(
            p,
            format!(
                "/vcek/v1/Milan/ab{}cd?blSPL=3&teeSPL=0&snpSPL=8&ucodeSPL=115",
                "00".repeat(62)
            )
        );
        let turin = Tcb {
            fmc: Some(1),
            ..tcb
        };
        assert_eq!(
            vcek_path(KdsProduct::Turin, &chip, &turin),
            "/vcek/v1/Turin/ab00000000000000?fmcSPL=1&blSPL=3&teeSPL=0&snpSPL=8&ucodeSPL=115"
        );
    }

    #[test]
    fn products_from_cpuid() {
        assert_eq!(
            KdsProduct::from_cpuid(0x19, 0x01).unwrap(),
            KdsProduct::Milan
        );
        assert_eq!(
            KdsProduct::from_cpuid(0x19, 0x11).unwrap(),
            KdsProduct::Genoa
        );
        assert_eq!(
            KdsProduct::from_cpuid(0x1a, 0x02).unwrap(),
            KdsProduct::Turin
        );
        assert!(matches!(
            KdsProduct::from_cpuid(0x17, 0x31),
            Err(KdsError::UnsupportedCpu { .. })
        ));
    }

    #[test]
    fn fetches_from_a_stand_in_kds() {
        let server = stand_in(vec![(200, b"DER".to_vec())]);
        // A well-formed version-3 report body: chip id and TCB are all the URL needs.
        let mut report = vec![0u8; 1184];
        report[0] = 3; // version
        report[0x34] = 1; // signature algorithm
        report[0x188] = 0x19; // cpuid family
        report[0x189] = 0x01; // cpuid model
        report[0x1A0] = 0x42; // chip id
        report[0x180] = 3; // reported_tcb.bootloader
        report[0x186] = 8; // reported_tcb.snp
        report[0x187] = 115; // reported_tcb.microcode
        let client = KdsClient::new(&server.base).with_retry(RetryPolicy::ONCE);
        match client.fetch_vcek_for_report(&report) {
            Ok(der) => {
                assert_eq!(der, b"DER");
                let req = server.requests.lock().unwrap()[0].clone();
                assert!(req.starts_with("GET /vcek/v1/Milan/42"), "{req}");
                assert!(
                    req.contains("?blSPL=3&teeSPL=0&snpSPL=8&ucodeSPL=115"),
                    "{req}"
                );
            }
            // If the report parser refuses this synthetic report, the error must say so plainly.
            Err(KdsError::Report(msg)) => panic!("synthetic report refused: {msg}"),
            Err(e) => panic!("{e}"),
        }
    }
}
