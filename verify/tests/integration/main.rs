//! kettle-verify's integration tests as one test binary (one link, not one per
//! file): each file here is a module, as ripgrep and rustls fold theirs.

mod hostile_bundle;
mod policy;
mod report;
