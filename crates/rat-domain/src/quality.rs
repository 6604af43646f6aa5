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

/// What a test's SQL file says about the test in its annotation comments,
/// read as ratd reads them: one per line, `-- @key: value` (also without the
/// space after `--`), for the keys `severity`, `description`, `tags` (comma
/// separated) and `remediation`. A key given twice keeps its last value;
/// other comments and keys are ignored.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TestAnnotations {
    /// `@severity` (`warning` means `warn`); `None` when absent or not a
    /// severity.
    pub severity: Option<Severity>,
    /// `@description`.
    pub description: Option<String>,
    /// `@tags`, trimmed, empty ones dropped.
    pub tags: Vec<String>,
    /// `@remediation`.
    pub remediation: Option<String>,
}

impl TestAnnotations {
    /// Reads the annotations of a test's SQL.
    pub fn parse(sql: &str) -> Self {
        let mut annotations = TestAnnotations::default();
        for line in sql.lines() {
            let Some(comment) = line.trim().strip_prefix("--") else {
                continue;
            };
            let Some(annotation) = comment.trim_start().strip_prefix('@') else {
                continue;
            };
            let Some((key, value)) = annotation.split_once(':') else {
                continue;
            };
            let value = value.trim();
            match key.trim() {
                "severity" => {
                    annotations.severity = match value.to_ascii_lowercase().as_str() {
                        "warn" | "warning" => Some(Severity::Warn),
                        "error" => Some(Severity::Error),
                        _ => None,
                    }
                }
                "description" => annotations.description = Some(value.to_owned()),
                "tags" => {
                    annotations.tags = value
                        .split(',')
                        .map(str::trim)
                        .filter(|tag| !tag.is_empty())
                        .map(str::to_owned)
                        .collect()
                }
                "remediation" => annotations.remediation = Some(value.to_owned()),
                _ => {}
            }
        }
        annotations
    }
}

#[cfg(test)]
mod annotation_tests {
    use super::*;

    #[test]
    fn annotations_are_read_with_or_without_the_space() {
        let sql = "-- @severity: warning\n--@description: No nulls\n-- @tags: a, b,, c \n\
                   --   @remediation: fix the loader\n-- plain comment\n-- @other: x\nSELECT 1 -- @tags: no";
        assert_eq!(
            TestAnnotations::parse(sql),
            TestAnnotations {
                severity: Some(Severity::Warn),
                description: Some("No nulls".into()),
                tags: vec!["a".into(), "b".into(), "c".into()],
                remediation: Some("fix the loader".into()),
            }
        );
    }

    #[test]
    fn without_annotations_nothing_is_set() {
        assert_eq!(
            TestAnnotations::parse("SELECT count(*) FROM t"),
            TestAnnotations::default()
        );
        assert_eq!(TestAnnotations::parse("-- @severity: loud").severity, None);
        assert_eq!(
            TestAnnotations::parse("-- @severity: error").severity,
            Some(Severity::Error)
        );
    }
}
