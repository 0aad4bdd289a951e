use super::*;
use crate::recipe::{BuildType, SourceTree};

fn fake_crate(dir: &str) -> Vec<u8> {
    let mut b = tar::Builder::new(flate2::write::GzEncoder::new(
        Vec::new(),
        flate2::Compression::fast(),
    ));
    for (p, data) in [
        (format!("{dir}/Cargo.toml"), &b"[package]\nname=\"x\"\n"[..]),
        (format!("{dir}/src/lib.rs"), &b"pub fn f() {}\n"[..]),
    ] {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        b.append_data(&mut h, p, data).unwrap();
    }
    b.into_inner().unwrap().finish().unwrap()
}

fn locked(bytes: &[u8]) -> Dependency {
    Dependency {
        build_type: BuildType::CargoBuild,
        name: "x".into(),
        version: "1.0.0".into(),
        sha256: Sha256Digest::of_bytes(bytes),
    }
}

#[test]
fn vendors_with_cargo_checksums() {
    let bytes = fake_crate("x-1.0.0");
    let k = locked(&bytes);
    let tmp = tempfile::tempdir().unwrap();
    let dest = vendor_crate(&k, &bytes, tmp.path()).unwrap();
    let sums: serde_json::Value =
        serde_json::from_slice(&fs::read(dest.join(".cargo-checksum.json")).unwrap()).unwrap();
    assert_eq!(sums["package"], k.sha256.to_hex());
    assert_eq!(
        sums["files"]["src/lib.rs"],
        Sha256Digest::of_bytes(b"pub fn f() {}\n").to_hex()
    );
    assert_eq!(sums["files"].as_object().unwrap().len(), 2);
}

/// A .crate tar (uncompressed) from (path, type, data-or-link-target) entries.
fn hostile_crate(entries: &[(&str, tar::EntryType, &[u8])]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (path, kind, data) in entries {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(*kind);
        h.set_mode(0o644);
        if *kind == tar::EntryType::Symlink {
            h.set_size(0);
            b.append_link(&mut h, path, std::str::from_utf8(data).unwrap())
                .unwrap();
        } else {
            h.set_size(data.len() as u64);
            b.append_data(&mut h, path, *data).unwrap();
        }
    }
    b.into_inner().unwrap()
}

#[test]
fn a_checksum_file_linked_out_of_the_vendor_dir_through_a_chain_is_refused() {
    // Lexically every link stays inside the crate; resolved, p/q/y is the vendor dir
    // (after the crate is moved into place) and p/q/x its parent, so the crate's own
    // .cargo-checksum.json link points at <tmp>/outside.json.
    use tar::EntryType as T;
    let bytes = hostile_crate(&[
        ("x-1.0.0/Cargo.toml", T::Regular, b"[package]\nname=\"x\"\n"),
        ("x-1.0.0/p/q/y", T::Symlink, b"../../.."),
        ("x-1.0.0/p/q/x", T::Symlink, b"y/.."),
        (
            "x-1.0.0/.cargo-checksum.json",
            T::Symlink,
            b"p/q/x/outside.json",
        ),
    ]);
    let tmp = tempfile::tempdir().unwrap();
    let vendor = tmp.path().join("vendor");
    fs::create_dir_all(&vendor).unwrap();
    let r = vendor_crate(&locked(&bytes), &bytes, &vendor);
    assert!(r.is_err(), "{r:?}");
    assert!(
        !tmp.path().join("outside.json").exists(),
        "kettle-init wrote .cargo-checksum.json outside the vendor dir"
    );
}

#[test]
fn a_crate_shipping_its_own_checksum_file_gets_ours_written_in_place() {
    use tar::EntryType as T;
    let bytes = hostile_crate(&[
        ("x-1.0.0/Cargo.toml", T::Regular, b"[package]\nname=\"x\"\n"),
        ("x-1.0.0/.cargo-checksum.json", T::Symlink, b"Cargo.toml"),
    ]);
    let tmp = tempfile::tempdir().unwrap();
    let dest = vendor_crate(&locked(&bytes), &bytes, tmp.path()).unwrap();
    let sums = fs::symlink_metadata(dest.join(CARGO_CHECKSUM_FILE)).unwrap();
    assert!(
        sums.is_file(),
        "the crate's link was followed, not replaced"
    );
    assert_eq!(
        fs::read_to_string(dest.join("Cargo.toml")).unwrap(),
        "[package]\nname=\"x\"\n"
    );
}

#[test]
fn a_crate_whose_directory_is_a_symlink_is_refused() {
    use tar::EntryType as T;
    let tmp = tempfile::tempdir().unwrap();
    // What the link would lead to: a directory that looks like a crate.
    let outside = tmp.path().join("outside");
    fs::create_dir_all(&outside).unwrap();
    fs::write(outside.join("Cargo.toml"), "[package]\n").unwrap();
    let vendor = tmp.path().join("vendor");
    fs::create_dir_all(&vendor).unwrap();
    for target in [&b"../../outside"[..], b"."] {
        let bytes = hostile_crate(&[("x-1.0.0", T::Symlink, target)]);
        let r = vendor_crate(&locked(&bytes), &bytes, &vendor);
        assert!(r.is_err(), "{r:?}");
        assert!(!outside.join(CARGO_CHECKSUM_FILE).exists());
        let _ = fs::remove_dir_all(vendor.join(".unpack-x-1.0.0"));
    }
}

#[test]
fn refuses_a_crate_with_the_wrong_top_directory() {
    let bytes = fake_crate("other-9.9.9");
    let tmp = tempfile::tempdir().unwrap();
    assert!(matches!(
        vendor_crate(&locked(&bytes), &bytes, tmp.path()),
        Err(LayoutError::Layout { .. })
    ));
}

#[test]
fn crate_urls_follow_crates_io() {
    let k = locked(b"");
    assert_eq!(
        crate_url(crate::request::DEFAULT_CRATES_URL, &k),
        "https://static.crates.io/crates/x/x-1.0.0.crate"
    );
    assert_eq!(k.label(), "crate x 1.0.0");
    assert_eq!(k.purl().unwrap(), "pkg:cargo/x@1.0.0");
}

const PIN: &str = "0000000000000000000000000000000000000000000000000000000000000000";

fn cargo_recipe(section: &str) -> Result<Recipe, RecipeError> {
    Recipe::parse(&format!(
        "[build]\ntype = \"cargo-build/v1\"\noutputs = [\"target/release/x\"]\n[toolchain]\nurl = \"https://h/t.tar.gz\"\nsha256 = \"{PIN}\"\n[rootfs]\nurl = \"https://h/r.tar\"\nsha256 = \"{PIN}\"\n{section}"
    ))
}

#[test]
fn the_cargo_section_becomes_arguments_and_rustflags() {
    let plain = cargo_recipe("").unwrap();
    assert_eq!(plain.options, RecipeOptions::None);
    assert_eq!(
        CargoBuild.command(&plain),
        ["cargo", "build", "--locked", "--offline", "--release"]
    );
    assert_eq!(release_dir(&plain.options), "target/release/");
    let r = cargo_recipe(
        "[cargo]\npackage = \"kettle\"\nbins = [\"kettle\", \"kettle-x\"]\nfeatures = [\"tls\", \"dep/std\"]\nno_default_features = true\ntarget = \"x86_64-unknown-linux-gnu\"\nrustflags = [\"-C\", \"target-feature=+crt-static\"]\n",
    )
    .unwrap();
    assert_eq!(
        CargoBuild.command(&r),
        [
            "cargo",
            "build",
            "--locked",
            "--offline",
            "--release",
            "-p",
            "kettle",
            "--bin",
            "kettle",
            "--bin",
            "kettle-x",
            "--features",
            "tls,dep/std",
            "--no-default-features",
            "--target",
            "x86_64-unknown-linux-gnu"
        ]
    );
    let env = CargoBuild.environment(&r, "/home");
    assert!(env.contains(&(
        "CARGO_ENCODED_RUSTFLAGS".to_string(),
        "-C\x1ftarget-feature=+crt-static".to_string()
    )));
    assert!(!CargoBuild
        .environment(&plain, "/home")
        .iter()
        .any(|(k, _)| k == "CARGO_ENCODED_RUSTFLAGS"));
    assert_eq!(
        release_dir(&r.options),
        "target/x86_64-unknown-linux-gnu/release/"
    );
}

#[test]
fn cargo_options_that_cargo_would_read_as_flags_are_refused() {
    let cases = [
        ("[cargo]\npackage = \"--config=evil\"\n", "cargo.package"),
        ("[cargo]\nbins = [\"a b\"]\n", "cargo.bins"),
        ("[cargo]\nbins = [\"\"]\n", "cargo.bins"),
        ("[cargo]\nfeatures = [\"a,b\"]\n", "cargo.features"),
        ("[cargo]\ntarget = \"../x\"\n", "cargo.target"),
        ("[cargo]\nrustflags = [\"-C\\nx\"]\n", "cargo.rustflags"),
    ];
    for (section, field) in cases {
        match cargo_recipe(section) {
            Err(RecipeError::Field { field: f, reason }) => {
                assert_eq!(f, field, "{section}: {reason}")
            }
            other => panic!("{section}: expected a {field} error, got {other:?}"),
        }
    }
    let err = cargo_recipe("[cargo]\njobs = 4\n").unwrap_err();
    assert!(matches!(err, RecipeError::Toml(_)), "{err}");
}

#[test]
fn a_section_the_recipe_does_not_read_is_refused_by_name() {
    let err = cargo_recipe("[npm]\nscript = \"build\"\n").unwrap_err();
    assert_eq!(
        err.to_string(),
        "kettle.toml has a [npm] section, which cargo-build/v1 does not read (it reads [build], [toolchain], [rootfs], [cargo]): remove it or fix its name"
    );
    let script = Recipe::parse(&format!(
        "[build]\ntype = \"script/v1\"\noutputs = [\"a\"]\ncommand = [\"true\"]\n[rootfs]\nurl = \"https://h/r.tar\"\nsha256 = \"{PIN}\"\n[cargo]\nbins = [\"a\"]\n"
    ))
    .unwrap_err();
    assert!(
        script
            .to_string()
            .contains("[cargo] section, which script/v1 does not read (it reads [build], [toolchain], [rootfs])"),
        "{script}"
    );
}

#[test]
fn a_top_level_key_no_recipe_reads_is_named() {
    // The key comes before [build]: still named, whatever it holds.
    let text = format!(
        "version = 2\n[build]\ntype = \"cargo-build/v1\"\noutputs = [\"target/release/x\"]\n[toolchain]\nurl = \"https://h/t.tar.gz\"\nsha256 = \"{PIN}\"\n[rootfs]\nurl = \"https://h/r.tar\"\nsha256 = \"{PIN}\"\n"
    );
    match Recipe::parse(&text) {
        Err(RecipeError::UnknownSection { section, .. }) => assert_eq!(section, "version"),
        other => panic!("expected the key named, got {other:?}"),
    }
}

/// A workspace whose `app` has a binary behind a feature, for the source check.
fn gated_tree() -> impl SourceTree {
    struct Files;
    impl SourceTree for Files {
        fn read(&self, path: &str) -> Option<Vec<u8>> {
            match path {
                "Cargo.toml" => Some(b"[package]\nname = \"app\"\nversion = \"0.1.0\"\n\n[[bin]]\nname = \"gated\"\npath = \"g.rs\"\nrequired-features = [\"x\"]\n\n[features]\nx = []\n".to_vec()),
                "src/main.rs" => Some(b"fn main() {}\n".to_vec()),
                _ => None,
            }
        }
        fn list(&self, _dir: &str) -> Vec<String> {
            Vec::new()
        }
    }
    Files
}

#[test]
fn the_source_check_follows_the_cargo_section() {
    let check = |section: &str, output: &str| {
        let mut r = cargo_recipe(section).unwrap();
        r.outputs = vec![output.to_string()];
        CargoBuild.check_source(&r, &gated_tree())
    };
    check("", "target/release/app").unwrap();
    let err = check("", "target/release/gated").unwrap_err();
    assert!(err.to_string().contains("not a binary target"), "{err}");
    // Named with the feature it needs: built.
    check(
        "[cargo]\nbins = [\"gated\"]\nfeatures = [\"x\"]\n",
        "target/release/gated",
    )
    .unwrap();
    let err = check("[cargo]\nbins = [\"nope\"]\n", "target/release/nope").unwrap_err();
    assert!(
        err.to_string().contains("[cargo] bins names \"nope\""),
        "{err}"
    );
    // With a target, outputs are under its directory.
    let err = check(
        "[cargo]\ntarget = \"x86_64-unknown-linux-gnu\"\n",
        "target/release/app",
    )
    .unwrap_err();
    assert!(
        err.to_string()
            .contains("target/x86_64-unknown-linux-gnu/release/"),
        "{err}"
    );
}
