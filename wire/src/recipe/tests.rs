use super::*;

#[test]
fn every_recipe_is_registered_once_by_name_and_uri() {
    let names: Vec<&str> = BuildType::ALL.iter().map(|t| t.name()).collect();
    assert_eq!(names, ["cargo-build/v1", "script/v1"]);
    for t in BuildType::ALL {
        assert_eq!(BuildType::from_name(t.name()), Some(t));
        assert!(
            t.uri().ends_with(t.name()),
            "{} names {}",
            t.uri(),
            t.name()
        );
    }
    assert_eq!(BuildType::from_name("npm-build/v1"), None);
}

const PIN: &str = "0000000000000000000000000000000000000000000000000000000000000000";

fn script(extra: &str) -> String {
    format!(
        "[build]\ntype = \"script/v1\"\noutputs = [\"out/a\"]\ncommand = [\"sh\", \"-c\", \"true\"]\n{extra}\n[rootfs]\nurl = \"https://h/r.tar\"\nsha256 = \"{PIN}\"\n"
    )
}

#[test]
fn parses_both_recipes() {
    let m = Recipe::parse(&script("")).unwrap();
    assert_eq!(m.build_type, BuildType::Script);
    assert_eq!(
        m.build_type.uri(),
        kettle_provenance::ids::BUILD_TYPE_SCRIPT
    );
    let cargo = format!(
        "[build]\ntype = \"cargo-build/v1\"\noutputs = [\"target/release/x\"]\n[toolchain]\nurl = \"https://h/t.tar.gz\"\nsha256 = \"{PIN}\"\n[rootfs]\nurl = \"https://h/r.tar\"\nsha256 = \"{PIN}\"\n"
    );
    assert_eq!(
        Recipe::parse(&cargo).unwrap().build_type,
        BuildType::CargoBuild
    );
}

#[test]
fn refuses_bad_recipes() {
    let cases = [
        (script("").replace("script/v1", "make/v1"), "build.type"),
        (script("").replace("out/a", "../a"), "build.outputs"),
        (script("").replace("out/a", "/etc/passwd"), "build.outputs"),
        (script("").replace("[\"out/a\"]", "[]"), "build.outputs"),
        (script("").replace(PIN, "abc"), "rootfs"),
        (
            script("").replace("command = [\"sh\", \"-c\", \"true\"]", ""),
            "build.command",
        ),
        (
            script("").replace("type = \"script/v1\"", "type = \"cargo-build/v1\""),
            "build.command",
        ),
    ];
    for (text, field) in cases {
        match Recipe::parse(&text) {
            Err(RecipeError::Field { field: f, .. }) => assert_eq!(f, field, "{text}"),
            other => panic!("{field}: expected field error, got {other:?}"),
        }
    }
    // Control characters (C0, DEL, C1) in an output name: escape sequences, line breaks.
    for name in [
        "out/\\u001b]52;c;ZXZpbA==\\u0007",
        "out/a\\nVERIFIED",
        "out/\\u009b2J",
        "out/\\u007f",
    ] {
        let text = script("").replace("out/a", name);
        match Recipe::parse(&text) {
            Err(RecipeError::Field { field, reason }) => {
                assert_eq!(field, "build.outputs", "{name}");
                assert!(reason.contains("control character"), "{name}: {reason}");
            }
            other => panic!("{name}: expected a build.outputs error, got {other:?}"),
        }
    }
    // And in a pinned URL, which download errors print.
    let text = script("").replace("https://h/r.tar", "https://h/r.tar\\u001b[2J");
    match Recipe::parse(&text) {
        Err(RecipeError::Field { field, reason }) => {
            assert_eq!(field, "rootfs");
            assert!(reason.contains("control character"), "{reason}");
        }
        other => panic!("expected a rootfs error, got {other:?}"),
    }
    let err = Recipe::parse(&script("surprise = 1")).unwrap_err();
    assert!(matches!(err, RecipeError::Toml(_)), "{err}");
}
