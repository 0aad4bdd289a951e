//! The pipeline's typed failure: which step failed, why, and which input (if any) is to blame.

pub use kettle_wire::steps::{ErrorReport, Step};

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
