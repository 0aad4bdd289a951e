use std::cell::RefCell;

use kettle_attest::testdata;

use super::*;

/// A fake KDS: answers every GET with `answer`, and records the URLs asked for.
struct Fake {
    answer: Box<dyn Fn(u64) -> Result<Vec<u8>, String>>,
    urls: RefCell<Vec<String>>,
}

impl Fake {
    fn new(answer: impl Fn(u64) -> Result<Vec<u8>, String> + 'static) -> Fake {
        Fake {
            answer: Box::new(answer),
            urls: RefCell::new(Vec::new()),
        }
    }
}

impl KdsFetcher for &Fake {
    fn get(
        &self,
        url: &str,
        limit: u64,
    ) -> Result<Vec<u8>, Box<dyn std::error::Error + Send + Sync>> {
        self.urls.borrow_mut().push(url.to_string());
        (self.answer)(limit).map_err(Into::into)
    }
}

/// The Milan test report is version 2 (no CPUID): the product is given.
fn milan_kds(fake: &Fake) -> Kds<&Fake> {
    Kds::new("https://kds.example/", fake).with_product(Some(KdsProduct::Milan))
}

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
fn products_from_cpuid_and_names() {
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
    assert_eq!("turin".parse::<KdsProduct>(), Ok(KdsProduct::Turin));
    assert!("rome".parse::<KdsProduct>().is_err());
}

#[test]
fn the_reports_own_vcek_is_fetched_from_its_url() {
    let vcek = testdata::milan_vcek_der();
    let answer = vcek.clone();
    let fake = Fake::new(move |limit| {
        assert_eq!(limit, MAX_VCEK_BYTES);
        Ok(answer.clone())
    });
    let got = milan_kds(&fake)
        .fetch_vcek_for_report(&testdata::milan_report())
        .unwrap();
    assert_eq!(got, vcek);
    let url = fake.urls.borrow()[0].clone();
    assert!(
        url.starts_with("https://kds.example/vcek/v1/Milan/"),
        "{url}"
    );
    assert!(
        url.ends_with("?blSPL=3&teeSPL=0&snpSPL=8&ucodeSPL=115"),
        "{url}"
    );
}

#[test]
fn a_kds_answering_another_chips_vcek_or_no_certificate_is_refused() {
    let genoa = Fake::new(|_| Ok(testdata::GENOA_V5.key_der.to_vec()));
    match milan_kds(&genoa).fetch_vcek_for_report(&testdata::milan_report()) {
        Err(e @ KdsError::Unexpected { .. }) => {
            assert!(e.to_string().contains("the VCEK of another chip"), "{e}")
        }
        other => panic!("{other:?}"),
    }
    let html = Fake::new(|_| Ok(b"<html>rate limited</html>".to_vec()));
    match milan_kds(&html).fetch_vcek_for_report(&testdata::milan_report()) {
        Err(e @ KdsError::Unexpected { .. }) => {
            assert!(e.to_string().contains("not a certificate"), "{e}")
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_fetcher_that_ignores_the_limit_is_held_to_it() {
    let fake = Fake::new(|limit| Ok(vec![0; limit as usize + 1]));
    match milan_kds(&fake).fetch_vcek_for_report(&testdata::milan_report()) {
        Err(KdsError::TooLarge { got, limit, .. }) => {
            assert_eq!((got, limit), (MAX_VCEK_BYTES + 1, MAX_VCEK_BYTES))
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_failed_get_says_what_was_fetched() {
    let fake = Fake::new(|_| Err("GET https://kds.example/...: HTTP 404".into()));
    let e = milan_kds(&fake)
        .fetch_vcek_for_report(&testdata::milan_report())
        .unwrap_err();
    assert!(
        matches!(
            e,
            KdsError::Fetch {
                what: "the VCEK",
                ..
            }
        ),
        "{e:?}"
    );
    assert!(e.to_string().ends_with("HTTP 404"), "{e}");
    let cache = tempfile::tempdir().unwrap();
    let e = milan_kds(&fake)
        .fetch_crl_for_report(&testdata::milan_report(), cache.path())
        .unwrap_err();
    assert!(
        e.to_string().starts_with("fetching the CRL from the KDS"),
        "{e}"
    );
}

#[test]
fn no_vcek_is_asked_for_a_masked_chip_or_an_unparsed_report() {
    let fake = Fake::new(|_| panic!("nothing is fetched"));
    // A version-5 report (a version-2 one with a masked chip id does not parse at all).
    let mut masked = testdata::GENOA_V5.report.to_vec();
    masked[kettle_attest::report::offsets::CHIP_ID..][..64].fill(0);
    let got = Kds::new("https://kds.example", &fake).fetch_vcek_for_report(&masked);
    assert!(matches!(got, Err(KdsError::MaskedChipId)), "{got:?}");
    assert!(matches!(
        milan_kds(&fake).fetch_vcek_for_report(b"short"),
        Err(KdsError::Report(_))
    ));
}

#[test]
fn a_crl_is_always_fetched_and_a_copy_kept() {
    let crl = kettle_testkit::evidence::clean_simulated_crl();
    let answer = crl.clone();
    let fake = Fake::new(move |_| Ok(answer.clone()));
    let cache = tempfile::tempdir().unwrap();
    let dir = cache.path().join("crl");
    let got = milan_kds(&fake)
        .fetch_crl_for_report(&testdata::milan_report(), &dir)
        .unwrap();
    assert_eq!(got, crl);
    assert_eq!(
        fake.urls.borrow().as_slice(),
        ["https://kds.example/vcek/v1/Milan/crl"]
    );
    assert_eq!(std::fs::read(dir.join("vcek-Milan.crl")).unwrap(), crl);
    // A second call fetches again: the copy is never read.
    milan_kds(&fake)
        .fetch_crl_for_report(&testdata::milan_report(), &dir)
        .unwrap();
    assert_eq!(fake.urls.borrow().len(), 2);
    let junk = Fake::new(|_| Ok(b"not a crl".to_vec()));
    let e = milan_kds(&junk)
        .fetch_crl_for_report(&testdata::milan_report(), &dir)
        .unwrap_err();
    assert!(e.to_string().contains("not a CRL"), "{e}");
}
