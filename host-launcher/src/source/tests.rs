use super::*;
use std::fs;

/// A fresh repository with one commit on `main` holding `files`, tagged `v1`.
pub(crate) fn repo_with(files: &[(&str, &[u8])]) -> kettle_testkit::GitRepo {
    let repo = kettle_testkit::GitRepo::new();
    for (name, content) in files {
        repo.write(name, content);
    }
    repo.commit_all("init");
    repo.git(&["tag", "v1"]);
    repo
}

#[test]
fn resolves_a_checkout_head_and_its_ref() {
    let repo = repo_with(&[("kettle.toml", b"x"), ("src/main.rs", b"fn main() {}\n")]);
    let s = resolve_checkout(repo.path(), None, false).unwrap();
    assert_eq!(s.git_ref, "refs/heads/main");
    assert_eq!(s.object_format, ObjectFormat::Sha1);
    assert_eq!(s.commit.len(), 40);
    assert!(s.repository.starts_with("file:///"), "{}", s.repository);
    let raw = s.commit_object().unwrap();
    assert!(
        raw.starts_with(b"tree "),
        "{}",
        String::from_utf8_lossy(&raw)
    );
    // The commit id is the git object hash of the raw commit object.
    let id = kettle_provenance::git::commit_id(&raw, kettle_provenance::git::ObjectFormat::Sha1)
        .unwrap();
    assert_eq!(id, s.commit);
    assert_eq!(
        s.read_file("kettle.toml").unwrap().as_deref(),
        Some(&b"x"[..])
    );
    assert_eq!(s.read_file("Cargo.lock").unwrap(), None);
    let tar = repo.path().join("../src.tar");
    s.write_archive(&tar).unwrap();
    let bytes = fs::read(&tar).unwrap();
    fs::remove_file(&tar).unwrap();
    assert!(bytes.len() % 512 == 0 && bytes.windows(11).any(|w| w == b"src/main.rs"));
}

#[test]
fn explicit_ref_and_dirty_tree() {
    let repo = repo_with(&[("a", b"1")]);
    let s = resolve_checkout(repo.path(), Some("v1"), false).unwrap();
    assert_eq!(s.git_ref, "refs/tags/v1");
    fs::write(repo.path().join("a"), b"2").unwrap();
    let err = resolve_checkout(repo.path(), None, false).unwrap_err();
    assert!(matches!(err, SourceError::Dirty(_)), "{err}");
    assert!(resolve_checkout(repo.path(), None, true).is_ok());
    let err = resolve_checkout(repo.path(), Some("nope"), false).unwrap_err();
    assert!(err.to_string().contains("nope"), "{err}");
}

#[test]
fn resolves_a_url_with_a_ref() {
    let repo = repo_with(&[("a", b"1")]);
    let local = resolve_checkout(repo.path(), None, false).unwrap();
    let work = tempfile::tempdir().unwrap();
    let url = format!("file://{}", repo.path().display());
    let s = resolve_url(&url, "main", None, work.path()).unwrap();
    assert_eq!(s.commit, local.commit);
    assert_eq!(s.git_ref, "refs/heads/main");
    assert_eq!(s.repository, url);
    assert_eq!(s.commit_object().unwrap(), local.commit_object().unwrap());
}

#[test]
fn a_repository_without_commits_says_commit_first() {
    let repo = kettle_testkit::GitRepo::new();
    repo.write("a", b"1");
    let err = resolve_checkout(repo.path(), None, false).unwrap_err();
    assert!(matches!(err, SourceError::NoCommit(_)), "{err}");
    assert!(err.to_string().contains("git commit"), "{err}");
}

#[test]
fn not_a_checkout_says_what_to_pass() {
    let dir = tempfile::tempdir().unwrap();
    let err = resolve_checkout(dir.path(), None, false).unwrap_err();
    assert!(err.to_string().contains("not a git checkout"), "{err}");
    assert!(is_url("https://github.com/o/r"));
    assert!(!is_url("."));
}

/// What the guest does with a source archive in cached mode: unpack it with the guest's
/// unpacker and limits, hash the tree, and compare it with the tree the verified commit
/// object names. Returns the unpacked directory's (temp dir, computed, expected) tree ids.
fn guest_tree_check(s: &ResolvedSource) -> (tempfile::TempDir, String, String) {
    use kettle_provenance::git;
    use kettle_wire::unpack::{open_archive, unpack, UnpackLimits};
    let tmp = tempfile::tempdir().unwrap();
    let tar = tmp.path().join("source.tar");
    s.write_archive(&tar).unwrap();
    let tree = tmp.path().join("tree");
    unpack(open_archive(&tar).unwrap(), &tree, &UnpackLimits::SOURCE).unwrap();
    let expected = git::verify_commit(&s.commit_object().unwrap(), &s.commit, s.object_format)
        .unwrap()
        .into_string();
    let computed = git::tree_id(&tree, s.object_format).unwrap().into_string();
    (tmp, computed, expected)
}

#[test]
fn the_archive_is_the_commits_tree_whatever_gitattributes_say() {
    // export-ignore drops a file from `git archive`, export-subst rewrites one, and
    // $GIT_DIR/info/attributes (the host's own) counts too: the guest would receive
    // another tree than the commit's and refuse it.
    let repo = repo_with(&[
        (
            ".gitattributes",
            b"secret.txt export-ignore\nversion.txt export-subst\ntests/ export-ignore\n",
        ),
        ("secret.txt", b"left out by git archive\n"),
        ("version.txt", b"commit $Format:%H$\n"),
        ("tests/case.rs", b"#[test] fn t() {}\n"),
        ("kettle.toml", b"x"),
        (
            &format!("{}/long-name.rs", "deep/".repeat(30)),
            b"a path over 100 bytes\n",
        ),
    ]);
    repo.write_executable("run.sh", b"#!/bin/sh\necho hi\n");
    std::os::unix::fs::symlink("version.txt", repo.path().join("link")).unwrap();
    repo.commit_all("more");
    fs::write(
        repo.path().join(".git/info/attributes"),
        "kettle.toml export-ignore\n",
    )
    .unwrap();
    let s = resolve_checkout(repo.path(), None, false).unwrap();
    let (tmp, computed, expected) = guest_tree_check(&s);
    assert_eq!(computed, expected, "the archive is not the commit's tree");
    let tree = tmp.path().join("tree");
    let read = |p: &str| fs::read(tree.join(p)).unwrap();
    assert_eq!(read("version.txt"), b"commit $Format:%H$\n");
    assert_eq!(read("secret.txt"), b"left out by git archive\n");
    assert_eq!(read("kettle.toml"), b"x");
    assert_eq!(read("tests/case.rs"), b"#[test] fn t() {}\n");
    assert_eq!(
        fs::read_link(tree.join("link")).unwrap(),
        Path::new("version.txt")
    );
    use std::os::unix::fs::PermissionsExt;
    let mode = |p: &str| fs::metadata(tree.join(p)).unwrap().permissions().mode() & 0o777;
    assert_eq!((mode("run.sh"), mode("secret.txt")), (0o755, 0o644));
    // Control: `git archive` of the same commit is not the commit's tree.
    let archived = repo.archive(&s.commit);
    let names = kettle_testkit::tarball::entry_names(&archived);
    assert!(
        !names
            .iter()
            .any(|n| n == "secret.txt" || n == "kettle.toml"),
        "{names:?}"
    );
}

#[test]
fn a_submodule_is_refused_naming_it() {
    let repo = repo_with(&[("a", b"1")]);
    let other = repo.rev_parse("HEAD");
    repo.git(&[
        "update-index",
        "--add",
        "--cacheinfo",
        &format!("160000,{other},vendor/lib"),
    ]);
    repo.git(&["commit", "-q", "-m", "a submodule"]);
    let s = resolve_checkout(repo.path(), None, true).unwrap();
    let dest = tempfile::tempdir().unwrap();
    match s.write_archive(&dest.path().join("s.tar")) {
        Err(SourceError::Submodule { commit, path }) => {
            assert_eq!(
                (commit.as_str(), path.as_str()),
                (s.commit.as_str(), "vendor/lib")
            )
        }
        other => panic!("expected the submodule to be refused, got {other:?}"),
    }
}
