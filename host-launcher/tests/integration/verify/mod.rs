//! `kettle verify`, the auditor's command: every test of the verifier's CLI.

mod escaped;
mod hostile;
mod real;
mod simulated;
mod vsa;
