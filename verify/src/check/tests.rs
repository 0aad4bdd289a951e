/// The README's table and the crate docs list every check under its step: the
/// prose is held to `CheckId::ALL`, so a new check cannot go undocumented.
#[test]
fn the_readme_and_the_crate_docs_list_every_check_under_its_step() {
    let readme = include_str!("../../README.md");
    let lib = include_str!("../lib.rs");
    for step in 1..=6u8 {
        let row_start = format!("| {step} {} |", super::CheckId::step_title(step));
        let row = readme
            .lines()
            .find(|l| l.starts_with(&row_start))
            .unwrap_or_else(|| panic!("README.md has no row {row_start:?}"));
        let block: String = lib
            .lines()
            .skip_while(|l| !l.starts_with(&format!("//! step {step} ")))
            .take_while(|l| {
                l.starts_with(&format!("//! step {step} ")) || l.starts_with("//!         ")
            })
            .collect();
        for c in super::CheckId::of_step(step) {
            let name = c.listed_name();
            assert!(
                row.contains(&format!("`{name}`")),
                "README.md step {step} lacks {name}"
            );
            assert!(
                block.contains(name),
                "lib.rs's docs, step {step}, lack {name}"
            );
        }
    }
}

use super::*;

#[test]
fn ids_are_in_trust_chain_order_with_unique_names() {
    let steps: Vec<u8> = CheckId::ALL.iter().map(|c| c.trust_chain_step()).collect();
    assert!(steps.windows(2).all(|w| w[0] <= w[1]), "{steps:?}");
    let mut sorted = CheckId::ALL;
    sorted.sort();
    assert_eq!(sorted, CheckId::ALL, "ALL is the enum's own order");
    let mut names: Vec<&str> = CheckId::ALL.iter().map(|c| c.name()).collect();
    names.sort();
    names.dedup();
    assert_eq!(names.len(), CheckId::ALL.len());
}
