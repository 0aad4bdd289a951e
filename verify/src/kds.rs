//! AMD's Key Distribution Service (KDS): the URL of a report's VCEK and of its
//! generation's CRL, the checks on what comes back, and the CRL's cached copy. The
//! HTTP GET itself is the caller's ([`KdsFetcher`]: the host's HTTPS agent, a
//! fake in tests), so this library makes no network connection of its own. What
//! is fetched is not trusted for being fetched: the VCEK must still chain to a
//! pinned root and the CRL verify under the ARK (the verifier's checks).

use std::path::Path;

use kettle_attest::{Report, Tcb};
use x509_cert::der::Decode;
use x509_cert::Certificate;

/// AMD's key distribution service.
pub const AMD_KDS_URL: &str = "https://kdsintf.amd.com";

/// Largest VCEK certificate accepted (they are about 1.3 KiB).
pub const MAX_VCEK_BYTES: u64 = 64 * 1024;

/// Largest CRL accepted from the KDS.
pub const MAX_CRL_BYTES: u64 = 4 << 20;

/// An HTTP GET, bounded: the body of `url`, at most `limit` bytes (a longer one is an
/// error), or why not. The host implements it with its HTTPS agent.
pub trait KdsFetcher {
    /// GETs `url`, reading at most `limit` bytes of its body.
    fn get(
        &self,
        url: &str,
        limit: u64,
    ) -> Result<Vec<u8>, Box<dyn std::error::Error + Send + Sync>>;
}

/// Why a VCEK or CRL could not be had from the KDS.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
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
    /// The GET failed.
    #[error("fetching {what} from the KDS: {source}")]
    Fetch {
        /// "the VCEK" or "the CRL".
        what: &'static str,
        /// The fetcher's error.
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The fetcher returned more than it was allowed to.
    #[error("fetching {what} from the KDS: GET {url}: body of {got} bytes exceeds the {limit}-byte limit")]
    TooLarge {
        /// "the VCEK" or "the CRL".
        what: &'static str,
        /// The URL.
        url: String,
        /// The body's length.
        got: u64,
        /// The limit.
        limit: u64,
    },
    /// The KDS answered with something that is not what was asked for.
    #[error("fetching {what} from the KDS: GET {url} answered {problem}")]
    Unexpected {
        /// "the VCEK" or "the CRL".
        what: &'static str,
        /// The URL.
        url: String,
        /// What is wrong with the answer.
        problem: String,
    },
}

/// A processor generation, as the KDS names it in URLs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum KdsProduct {
    /// EPYC 7003.
    Milan,
    /// EPYC 9004.
    Genoa,
    /// EPYC 9005.
    Turin,
}

impl KdsProduct {
    /// Every generation, in the order `--product` lists them.
    pub const ALL: [KdsProduct; 3] = [KdsProduct::Milan, KdsProduct::Genoa, KdsProduct::Turin];

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

impl std::str::FromStr for KdsProduct {
    type Err = String;

    /// `milan`, `genoa` or `turin` (any case).
    fn from_str(s: &str) -> Result<KdsProduct, String> {
        KdsProduct::ALL
            .into_iter()
            .find(|p| p.kds_name().eq_ignore_ascii_case(s))
            .ok_or_else(|| format!("{s:?} is not milan, genoa or turin"))
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

/// A KDS (AMD's or a stand-in) reached through `fetcher`.
pub struct Kds<F> {
    base: String,
    fetcher: F,
    product: Option<KdsProduct>,
}

impl<F: KdsFetcher> Kds<F> {
    /// The KDS at `base` (e.g. [`AMD_KDS_URL`]), fetched from with `fetcher`.
    pub fn new(base: &str, fetcher: F) -> Kds<F> {
        Kds {
            base: base.trim_end_matches('/').to_string(),
            fetcher,
            product: None,
        }
    }

    /// Uses `product` instead of reading it from the report.
    pub fn with_product(mut self, product: Option<KdsProduct>) -> Kds<F> {
        self.product = product;
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

    /// GETs `url` through the fetcher, holding it to `limit` whatever the fetcher does.
    fn get(&self, what: &'static str, url: &str, limit: u64) -> Result<Vec<u8>, KdsError> {
        log::info!("fetching {what} from {url}");
        let body = self
            .fetcher
            .get(url, limit)
            .map_err(|source| KdsError::Fetch { what, source })?;
        let got = body.len() as u64;
        match got <= limit {
            true => Ok(body),
            false => Err(KdsError::TooLarge {
                what,
                url: url.to_string(),
                got,
                limit,
            }),
        }
    }

    /// AMD's CRL (DER) for the generation of `report_bytes` (the VLEK one for a VLEK-signed
    /// report), always fetched from the KDS: a copy cached earlier could be older than the
    /// CRL AMD publishes now and hide a revocation, so it is never read here. A copy is kept
    /// in `cache_dir` (`<kind>-<product>.crl`) for later offline use with `--crl`.
    pub fn fetch_crl_for_report(
        &self,
        report_bytes: &[u8],
        cache_dir: &Path,
    ) -> Result<Vec<u8>, KdsError> {
        let report = Report::parse(report_bytes).map_err(|e| KdsError::Report(e.to_string()))?;
        let product = self.product_of(&report)?;
        let kind = if report.signing_key() == kettle_attest::signature::SIGNING_KEY_VLEK {
            "vlek"
        } else {
            "vcek"
        };
        let url = format!("{}/{kind}/v1/{}/crl", self.base, product.kds_name());
        let der = self.get("the CRL", &url, MAX_CRL_BYTES)?;
        // Its signature is the verifier's to check, every time; here only its form.
        kettle_attest::revocation::Crl::from_der(&der).map_err(|e| KdsError::Unexpected {
            what: "the CRL",
            url: url.clone(),
            problem: format!("something that is not a CRL: {e}"),
        })?;
        // The copy only serves a later `--crl`: the verifier checks the CRL's signature every time.
        let copy = cache_dir.join(format!("{kind}-{}.crl", product.kds_name()));
        if std::fs::create_dir_all(cache_dir).is_ok() {
            let _ = std::fs::write(&copy, &der);
        }
        Ok(der)
    }

    /// The DER VCEK that should have signed `report_bytes`: a certificate issued for the
    /// report's chip (its hwID), or an error naming what came back instead.
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
        let der = self.get("the VCEK", &url, MAX_VCEK_BYTES)?;
        vcek_for_chip(&der, &chip_id).map_err(|problem| KdsError::Unexpected {
            what: "the VCEK",
            url,
            problem,
        })?;
        Ok(der)
    }
}

/// `der` is a certificate whose hwID is `chip_id` (a Turin 8-byte hwID: its first 8 bytes,
/// the rest zero).
fn vcek_for_chip(der: &[u8], chip_id: &[u8; 64]) -> Result<(), String> {
    let cert = Certificate::from_der(der)
        .map_err(|e| format!("something that is not a certificate: {e}"))?;
    let ext = kettle_attest::chain::vcek_extensions(&cert)
        .map_err(|e| format!("a certificate that is not a VCEK: {e}"))?;
    match ext.hw_id {
        Some(hw)
            if !hw.is_empty()
                && hw.len() <= 64
                && hw[..] == chip_id[..hw.len()]
                && chip_id[hw.len()..].iter().all(|b| *b == 0) =>
        {
            Ok(())
        }
        Some(hw) => Err(format!(
            "the VCEK of another chip (hwID {}, the report's chip_id {})",
            hex::encode(hw),
            hex::encode(chip_id)
        )),
        None => Err("a certificate with no hwID: not a VCEK".into()),
    }
}

#[cfg(test)]
mod tests;
