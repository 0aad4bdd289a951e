//! Fetching a report's VCEK, or its generation's CRL, from AMD's Key
//! Distribution Service (only with `kettle verify --fetch-vcek`/`--fetch-crl`;
//! verification is offline otherwise). The URLs, the checks on the answers and
//! the CRL's cached copy are kettle-verify's ([`kettle_verify::kds`]); the host
//! lends it its HTTPS agent (retries with backoff for the KDS's rate limits).

pub use kettle_verify::kds::{vcek_path, KdsError, KdsProduct, AMD_KDS_URL};

use crate::download::{Downloader, RetryPolicy};

/// The host's downloader as the KDS library's fetcher.
pub struct HttpsFetcher(Downloader);

impl kettle_verify::kds::KdsFetcher for HttpsFetcher {
    fn get(
        &self,
        url: &str,
        limit: u64,
    ) -> Result<Vec<u8>, Box<dyn std::error::Error + Send + Sync>> {
        Ok(self.0.get_bytes(url, limit)?)
    }
}

/// A client of a KDS (AMD's or a stand-in) over the host's HTTPS agent.
pub struct KdsClient {
    base: String,
    retry: RetryPolicy,
    product: Option<KdsProduct>,
}

impl KdsClient {
    /// A client of the KDS at `base` (e.g. [`AMD_KDS_URL`]); KDS rate limits are retried with backoff.
    pub fn new(base: &str) -> KdsClient {
        KdsClient {
            base: base.to_string(),
            retry: RetryPolicy::default(),
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
        self.retry = retry;
        self
    }

    fn kds(&self) -> kettle_verify::kds::Kds<HttpsFetcher> {
        kettle_verify::kds::Kds::new(&self.base, HttpsFetcher(Downloader::new(self.retry)))
            .with_product(self.product)
    }

    /// AMD's CRL (DER) for the generation of `report_bytes`, always fetched afresh; a copy
    /// is kept in `cache_dir` for a later `--crl` ([`kettle_verify::kds::Kds::fetch_crl_for_report`]).
    pub fn fetch_crl_for_report(
        &self,
        report_bytes: &[u8],
        cache_dir: &std::path::Path,
    ) -> Result<Vec<u8>, KdsError> {
        self.kds().fetch_crl_for_report(report_bytes, cache_dir)
    }

    /// The DER VCEK that should have signed `report_bytes`.
    pub fn fetch_vcek_for_report(&self, report_bytes: &[u8]) -> Result<Vec<u8>, KdsError> {
        self.kds().fetch_vcek_for_report(report_bytes)
    }
}

/// `--product`'s values: the KDS generations, by their lower-case names.
pub fn product_parser() -> impl clap::builder::TypedValueParser<Value = KdsProduct> {
    use clap::builder::TypedValueParser;
    clap::builder::PossibleValuesParser::new([
        clap::builder::PossibleValue::new("milan").help("EPYC 7003"),
        clap::builder::PossibleValue::new("genoa").help("EPYC 9004"),
        clap::builder::PossibleValue::new("turin").help("EPYC 9005"),
    ])
    .map(|name| name.parse().expect("one of the possible values"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::download::tests::stand_in;

    /// The host's HTTPS agent is the library's fetcher: the GET goes to the KDS's URL, and
    /// its answer is checked (the stand-in's is no certificate).
    #[test]
    fn fetches_from_a_stand_in_kds() {
        let server = stand_in(vec![(200, b"DER".to_vec())]);
        let client = KdsClient::new(&server.base)
            .with_retry(RetryPolicy::ONCE)
            .with_product(Some(KdsProduct::Milan));
        let err = client
            .fetch_vcek_for_report(&kettle_attest::testdata::milan_report())
            .unwrap_err();
        assert!(err.to_string().contains("not a certificate"), "{err}");
        let req = server.requests.lock().unwrap()[0].clone();
        let path = "GET /vcek/v1/Milan/";
        let query = "?blSPL=3&teeSPL=0&snpSPL=8&ucodeSPL=115";
        assert!(req.starts_with(path) && req.contains(query), "{req}");
    }

    #[test]
    fn the_product_flag_takes_the_three_generations() {
        let cmd = clap::Command::new("t").arg(
            clap::Arg::new("product")
                .long("product")
                .value_parser(product_parser()),
        );
        let m = cmd
            .clone()
            .try_get_matches_from(["t", "--product", "genoa"])
            .unwrap();
        assert_eq!(m.get_one::<KdsProduct>("product"), Some(&KdsProduct::Genoa));
        assert!(cmd
            .try_get_matches_from(["t", "--product", "rome"])
            .is_err());
    }
}
