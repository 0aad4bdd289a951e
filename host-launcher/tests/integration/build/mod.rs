//! `kettle build` on the host side, with a stand-in for QEMU or `--local`.

mod errors;
mod hostile_output_disk;
pub(crate) mod local;
mod signals;
mod stand_in;
