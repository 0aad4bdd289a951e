//! kettle-init: the guest's PID 1. Reads the build request from the request
//! disk, fetches the pinned inputs, verifies every one of them, builds in a
//! sandbox, hashes the outputs, writes provenance.json (JCS) and requests an
//! SNP report whose report_data binds it, then writes everything to the output
//! disk and ends the VM.
//!
//! * [`steps`]: one module per step, each with its error type.
//! * [`pipeline`]: the one place that runs the steps in order.
//! * [`sandbox`]: the build sandbox, and what a recipe's build sees in it.
//! * [`guest`]: PID 1's life (boot, disks, end of the VM); [`local`]: the same
//!   pipeline as an ordinary process ([`run_local`], `kettle-init --local`).
//!
//! The formats the host reads and writes (request, cache and output disks,
//! kettle.toml, error.json, console lines) are `kettle_wire`'s.
// Unit tests build fixtures with small casts; the lint guards the formats themselves.
#![cfg_attr(test, allow(clippy::cast_possible_truncation))]

pub mod clock;
pub mod disk;
pub mod dns;
pub mod error;
pub mod guest;
pub mod http;
pub mod local;
pub mod pipeline;
pub mod refs;
pub mod sandbox;
pub mod steps;

pub use clock::Clock;
pub use error::{InStep, StepError};
pub use kettle_wire::{ErrorReport, Step};
pub use local::{run_local, LocalOptions, Outcome, HOST_CA_BUNDLE};
pub use pipeline::{Built, Pipeline};
pub use steps::attest::Attestor;
pub use steps::fetch::Inputs;
pub use steps::hash::Subject;
pub use steps::Tools;
