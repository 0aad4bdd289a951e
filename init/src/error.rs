//! The pipeline's typed failure: which step failed, why, and which input (if any) is to blame.

use std::fmt;

use serde::Serialize;

/// The named steps of the guest pipeline, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
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
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A failed step: the step, a message a user can act on, and the input it names (if any).
#[derive(Debug, thiserror::Error)]
#[error("step {step} failed: {source}")]
pub struct StepError {
    /// Which step failed.
    pub step: Step,
    /// The input the failure is about (e.g. `crate hex 0.4.3`, `source archive`).
    pub input: Option<String>,
    /// The typed cause.
    #[source]
    pub source: Box<dyn std::error::Error + Send + Sync + 'static>,
}

impl StepError {
    /// Wraps `source` as a failure of `step`.
    pub fn new(step: Step, source: impl std::error::Error + Send + Sync + 'static) -> Self {
        StepError {
            step,
            input: None,
            source: Box::new(source),
        }
    }

    /// Names the input the failure is about.
    pub fn with_input(mut self, input: impl Into<String>) -> Self {
        self.input = Some(input.into());
        self
    }

    /// The full cause chain as one line.
    pub fn message(&self) -> String {
        let mut msg = self.source.to_string();
        let mut cur = self.source.source();
        while let Some(e) = cur {
            let s = e.to_string();
            if !msg.contains(&s) {
                msg.push_str(": ");
                msg.push_str(&s);
            }
            cur = e.source();
        }
        msg
    }

    /// The `error.json` document written to the output on failure.
    pub fn to_error_json(&self) -> ErrorReport {
        ErrorReport {
            ok: false,
            step: self.step,
            message: self.message(),
            input: self.input.clone(),
        }
    }
}

/// Contents of `error.json`.
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq)]
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

impl<'de> serde::Deserialize<'de> for Step {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        [
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
        ]
        .into_iter()
        .find(|st| st.name() == s)
        .ok_or_else(|| serde::de::Error::custom(format!("unknown step {s:?}")))
    }
}

/// Extension to turn any typed error into a [`StepError`] of a given step.
pub trait InStep<T> {
    /// Marks the error as a failure of `step`.
    fn in_step(self, step: Step) -> Result<T, StepError>;
    /// Marks the error as a failure of `step` about `input`.
    fn in_step_for(self, step: Step, input: impl Into<String>) -> Result<T, StepError>;
}

impl<T, E: std::error::Error + Send + Sync + 'static> InStep<T> for Result<T, E> {
    fn in_step(self, step: Step) -> Result<T, StepError> {
        self.map_err(|e| StepError::new(step, e))
    }
    fn in_step_for(self, step: Step, input: impl Into<String>) -> Result<T, StepError> {
        self.map_err(|e| StepError::new(step, e).with_input(input))
    }
}
