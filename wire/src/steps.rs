//! The guest pipeline's named steps, in order, and `error.json`, the record a
//! failed build leaves instead of its outputs.

use std::fmt;

use serde::{Deserialize, Serialize};

/// The named steps of the guest pipeline, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Step {
    /// Mount filesystems, console, entropy.
    Boot,
    /// Read and check the build request.
    Request,
    /// Fetch inputs (cache disk, directory or HTTPS).
    Fetch,
    /// Verify every input against its pin.
    Verify,
    /// Unpack the root filesystem, toolchain and crates.
    Unpack,
    /// Run the recipe in the sandbox.
    Build,
    /// Hash the declared outputs.
    Hash,
    /// Write provenance.json.
    Provenance,
    /// Request the attestation report.
    Attest,
    /// Write everything to the output disk or directory.
    Emit,
}

impl Step {
    /// Every step, in pipeline order.
    pub const ALL: [Step; 10] = [
        Step::Boot,
        Step::Request,
        Step::Fetch,
        Step::Verify,
        Step::Unpack,
        Step::Build,
        Step::Hash,
        Step::Provenance,
        Step::Attest,
        Step::Emit,
    ];

    /// The step's name as logged and written to error.json.
    pub fn name(self) -> &'static str {
        match self {
            Step::Boot => "boot",
            Step::Request => "request",
            Step::Fetch => "fetch",
            Step::Verify => "verify",
            Step::Unpack => "unpack",
            Step::Build => "build",
            Step::Hash => "hash",
            Step::Provenance => "provenance",
            Step::Attest => "attest",
            Step::Emit => "emit",
        }
    }

    /// The step called `name`, if any.
    pub fn from_name(name: &str) -> Option<Step> {
        Step::ALL.into_iter().find(|s| s.name() == name)
    }

    /// The step's place in the pipeline (0 = boot).
    pub fn index(self) -> usize {
        Step::ALL
            .iter()
            .position(|s| *s == self)
            .expect("every step is in ALL")
    }
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Name of the failure record in an output.
pub const ERROR_FILE: &str = "error.json";

/// Contents of `error.json`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ErrorReport {
    /// Always false.
    pub ok: bool,
    /// The step that failed.
    pub step: Step,
    /// What went wrong, including the cause chain.
    pub message: String,
    /// The input named by the failure, if any.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub input: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_in_order() {
        for (i, s) in Step::ALL.into_iter().enumerate() {
            assert_eq!(Step::from_name(s.name()), Some(s));
            assert_eq!(s.index(), i);
            assert_eq!(serde_json::to_string(&s).unwrap(), format!("\"{s}\""));
        }
        assert_eq!(Step::from_name("fetchx"), None);
        assert!(serde_json::from_str::<Step>("\"compile\"").is_err());
    }

    #[test]
    fn error_json_round_trips_and_refuses_unknown_fields() {
        let e = ErrorReport {
            ok: false,
            step: Step::Verify,
            message: "crate hex 0.4.3: sha256 differs".into(),
            input: Some("crate hex 0.4.3".into()),
        };
        let text = serde_json::to_string(&e).unwrap();
        assert_eq!(serde_json::from_str::<ErrorReport>(&text).unwrap(), e);
        assert!(serde_json::from_str::<ErrorReport>(
            r#"{"ok":false,"step":"verify","message":"m","extra":1}"#
        )
        .is_err());
    }
}
