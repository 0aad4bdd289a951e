//! provenance.json: RFC 8785 canonical form, Statement parsing and every rule
//! `validate()` checks, the input Merkle root and the PURLs in it.
#![no_main]

use kettle_provenance::{jcs, merkle, purl, Statement};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let canonical = jcs::is_canonical(data);
    if let Ok(canon) = jcs::canonicalize_json(data) {
        // Canonicalization is idempotent, and canonical input is its own canonical form.
        assert!(jcs::is_canonical(&canon), "canonical form is not canonical");
        if canonical {
            assert_eq!(canon, data);
        }
    } else {
        assert!(!canonical);
    }
    let Ok(st) = Statement::from_json(data) else {
        return;
    };
    let errors = st.validation_errors();
    assert_eq!(st.validate().is_ok(), errors.is_empty());
    for e in &errors {
        let _ = e.to_string();
    }
    let _ = merkle::check_input_merkle_root(&st.predicate);
    for dep in &st.predicate.build_definition.resolved_dependencies {
        if let Some(uri) = dep.uri.as_deref().filter(|u| u.starts_with("pkg:")) {
            let _ = purl::parse(uri);
        }
    }
    // Re-serialization reaches a fixed point: what the guest writes, the verifier reads back.
    if let Ok(bytes) = st.to_canonical_bytes() {
        assert!(jcs::is_canonical(&bytes));
        let again = Statement::from_json(&bytes).expect("canonical bytes of a Statement parse");
        assert_eq!(again.to_canonical_bytes().expect("re-serializes"), bytes);
    }
});
