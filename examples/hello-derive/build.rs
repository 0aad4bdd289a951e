//! A build script, as many real crates have: it runs inside the sandbox before
//! the crate compiles and hands the compiler a value through the environment.

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    let target = std::env::var("TARGET").unwrap_or_else(|_| "unknown".into());
    println!("cargo:rustc-env=HELLO_DERIVE_TARGET={target}");
}
