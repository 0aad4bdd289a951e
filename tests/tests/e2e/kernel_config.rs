//! The built kernel's final config (build/kernel.config) holds every option
//! kernel-config/kettle.config asks for: an independent re-check of the
//! assertion scripts/build-kernel.sh makes, also covering a cached kernel.

use kettle_testkit::{repo_root, require_artifact, Requirement};

/// What the fragment demands of one option.
#[derive(Debug, PartialEq, Eq)]
enum Wanted {
    /// `CONFIG_X=value`.
    Value(String, String),
    /// `# CONFIG_X is not set`.
    Unset(String),
}

fn parse_fragment(text: &str) -> Vec<Wanted> {
    text.lines()
        .filter_map(|line| {
            if let Some(opt) = line
                .strip_prefix("# ")
                .and_then(|l| l.strip_suffix(" is not set"))
            {
                return opt
                    .starts_with("CONFIG_")
                    .then(|| Wanted::Unset(opt.to_owned()));
            }
            let (name, value) = line.split_once('=')?;
            name.starts_with("CONFIG_")
                .then(|| Wanted::Value(name.to_owned(), value.to_owned()))
        })
        .collect()
}

#[test]
fn fragment_parser_reads_values_and_unset_options_and_skips_comments() {
    let parsed =
        parse_fragment("# a comment\nCONFIG_A=y\n# CONFIG_B is not set\nCONFIG_C=\"x\"\n\n");
    assert_eq!(
        parsed,
        [
            Wanted::Value("CONFIG_A".into(), "y".into()),
            Wanted::Unset("CONFIG_B".into()),
            Wanted::Value("CONFIG_C".into(), "\"x\"".into()),
        ]
    );
}

#[test]
fn built_kernel_config_has_every_option_of_the_fragment() {
    let Some(config) = require_artifact("kernel.config", "kernel", Requirement::from_env()) else {
        return;
    };
    let fragment =
        std::fs::read_to_string(repo_root().join("kernel-config/kettle.config")).expect("fragment");
    let built = std::fs::read_to_string(&config).expect("kernel.config");
    let value_of = |name: &str| {
        built
            .lines()
            .find_map(|l| l.strip_prefix(name).and_then(|rest| rest.strip_prefix('=')))
    };
    let wanted = parse_fragment(&fragment);
    assert!(
        wanted.len() > 50,
        "the fragment names the guest's options; found only {}",
        wanted.len()
    );
    let wrong: Vec<String> = wanted
        .iter()
        .filter_map(|w| match w {
            Wanted::Value(name, value) if value_of(name) != Some(value.as_str()) => {
                Some(format!("{name}: wanted {value}, got {:?}", value_of(name)))
            }
            Wanted::Unset(name) if value_of(name).is_some() => {
                Some(format!("{name}: wanted not set, got {:?}", value_of(name)))
            }
            _ => None,
        })
        .collect();
    assert!(
        wrong.is_empty(),
        "{} does not match the fragment:\n{}",
        config.display(),
        wrong.join("\n")
    );
}

/// kernel-config/patches.sha256 pins every patch in kernel-config/patches/ by its
/// SHA-256 (scripts/build-kernel.sh refuses the build otherwise; this checks the
/// same without building), and the AML patch is among them.
#[test]
fn every_kernel_patch_is_pinned_by_its_sha256() {
    let dir = repo_root().join("kernel-config");
    let list = std::fs::read_to_string(dir.join("patches.sha256")).expect("patches.sha256");
    let mut pinned = Vec::new();
    for line in list
        .lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
    {
        let (sha, rel) = line
            .split_once("  ")
            .expect("'<sha256>  patches/<name>.patch'");
        let actual = kettle_provenance::Sha256Digest::of_file(&dir.join(rel))
            .unwrap_or_else(|e| panic!("{rel}: {e}"));
        assert_eq!(actual.to_hex(), sha, "{rel} is not the patch pinned");
        pinned.push(rel.to_owned());
    }
    let mut present: Vec<String> = std::fs::read_dir(dir.join("patches"))
        .expect("kernel-config/patches")
        .map(|e| format!("patches/{}", e.unwrap().file_name().to_string_lossy()))
        .collect();
    present.sort();
    let mut listed = pinned.clone();
    listed.sort();
    assert_eq!(
        present, listed,
        "every patch file is pinned, and only those"
    );
    assert!(pinned.contains(&"patches/0001-acpi-no-aml.patch".to_owned()));
}
