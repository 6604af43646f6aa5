//! Quality tests: severities, the result-status rule and the stored records.

use time::OffsetDateTime;
use uuid::Uuid;

use crate::TestName;
use crate::ids::{PipelineId, QualityTestId, RunId};
use crate::object::ObjectKey;

string_enum!(
    /// How much a failing test matters.
    Severity, "severity" {
        /// Violations fail the test (and block a merge).
        Error => "error",
        /// Violations are only logged.
        Warn => "warn",
    }
);

string_enum!(
    /// The outcome of one test in one run.
    QualityStatus, "status" {
        /// No violations.
        Passed => "passed",
        /// Violations, severity `error`.
        Failed => "failed",
        /// Violations, severity `warn`.
        Warned => "warned",
        /// The test's SQL itself failed.
        Error => "error",
    }
);

/// What executing a test produced.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum TestOutcome {
    /// The query ran and counted this many violations.
    Violations(f64),
    /// The query could not run.
    ExecutionError,
}

impl QualityStatus {
    /// The seed's rule: `passed` for 0 violations, `failed` for more than 0
    /// with severity `error`, `warned` for more than 0 with severity `warn`,
    /// `error` when the test SQL failed.
    pub fn evaluate(severity: Severity, outcome: TestOutcome) -> QualityStatus {
        match outcome {
            TestOutcome::ExecutionError => QualityStatus::Error,
            TestOutcome::Violations(n) if n.is_nan() => QualityStatus::Error,
            TestOutcome::Violations(n) if n <= 0.0 => QualityStatus::Passed,
            TestOutcome::Violations(_) => match severity {
                Severity::Error => QualityStatus::Failed,
                Severity::Warn => QualityStatus::Warned,
            },
        }
    }
}

/// A quality test definition (`quality_tests`); its SQL lives in S3 at `s3_path`.
#[derive(Debug, Clone, PartialEq)]
pub struct QualityTest {
    /// Primary key.
    pub id: QualityTestId,
    /// The pipeline it checks.
    pub pipeline_id: PipelineId,
    /// Unique within the pipeline.
    pub name: TestName,
    /// Free text.
    pub description: String,
    /// How much a failure matters.
    pub severity: Severity,
    /// Key of the test's SQL file.
    pub s3_path: ObjectKey,
    /// Creation time.
    pub created_at: OffsetDateTime,
}

/// One test's result in one run (`quality_results`).
#[derive(Debug, Clone, PartialEq)]
pub struct QualityResult {
    /// Primary key.
    pub id: Uuid,
    /// The test.
    pub test_id: QualityTestId,
    /// The run it belonged to (cleared when the run is pruned).
    pub run_id: Option<RunId>,
    /// Outcome.
    pub status: QualityStatus,
    /// Violations counted.
    pub value: Option<f64>,
    /// Violations expected (usually 0).
    pub expected: Option<f64>,
    /// Execution time.
    pub duration_ms: Option<i32>,
    /// When it ran.
    pub ran_at: OffsetDateTime,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_rule_of_the_seed() {
        use QualityStatus as S;
        use TestOutcome::*;
        assert_eq!(S::evaluate(Severity::Error, Violations(0.0)), S::Passed);
        assert_eq!(S::evaluate(Severity::Warn, Violations(0.0)), S::Passed);
        assert_eq!(S::evaluate(Severity::Error, Violations(3.0)), S::Failed);
        assert_eq!(S::evaluate(Severity::Warn, Violations(3.0)), S::Warned);
        assert_eq!(S::evaluate(Severity::Warn, ExecutionError), S::Error);
        assert_eq!(S::evaluate(Severity::Error, ExecutionError), S::Error);
        assert_eq!(S::evaluate(Severity::Error, Violations(f64::NAN)), S::Error);
    }
}
