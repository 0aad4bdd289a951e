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
