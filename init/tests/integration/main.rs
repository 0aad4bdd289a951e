//! kettle-init's integration tests as one test binary (one link, not one per
//! file): each file here is a module, as ripgrep and rustls fold theirs;
//! `common` is the glue that calls kettle-init itself.

mod common;

mod cargo;
mod cli;
mod guest_disks;
mod hostile_guest;
mod pipeline;
mod sandbox;
mod upstream;
mod verify;
