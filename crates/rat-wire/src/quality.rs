//! `/api/v1/pipelines/{namespace}/{layer}/{name}/tests`: quality tests and
//! their results (contract §10), behind the `quality_tests` feature flag.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use uuid::Uuid;

/// A quality test with its SQL.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TestDto {
    /// Unique within the pipeline.
    pub name: String,
    /// The SQL at HEAD (empty when its file was deleted through `/files`).
    pub sql: String,
    /// `error` or `warn`: the file's `-- @severity:` annotation, else the
    /// severity given at creation.
    pub severity: String,
    /// The file's `-- @description:` annotation, else the description given
    /// at creation.
    pub description: String,
    /// Whether the pipeline's published snapshot pins the test's SQL file.
    pub published: bool,
    /// The file's `-- @tags: a, b` annotation (empty without one).
    pub tags: Vec<String>,
    /// The file's `-- @remediation:` annotation (empty without one).
    pub remediation: String,
}

/// A page of tests.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TestList {
    /// By name.
    pub tests: Vec<TestDto>,
    /// Tests of the pipeline.
    pub total: i64,
}

/// Body of `POST …/tests`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct CreateTest {
    /// `^[a-z][a-z0-9_-]*$`, at most 128 characters, not `run`.
    pub name: String,
    /// The query counting violations (non-empty, at most 1 MiB).
    pub sql: String,
    /// `error` (default) or `warn`.
    #[serde(default)]
    pub severity: Option<String>,
    /// Free text (at most 5,000 characters).
    #[serde(default)]
    pub description: Option<String>,
}

/// Answer of `POST …/tests`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CreatedTest {
    /// The test's name.
    pub name: String,
    /// `error` or `warn`.
    pub severity: String,
    /// Full key of the test's SQL file.
    pub path: String,
}

/// The newest recorded result of one test.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TestResultDto {
    /// The test.
    pub name: String,
    /// `error` or `warn`.
    pub severity: String,
    /// `passed`, `failed`, `warned` or `error`.
    pub status: Option<String>,
    /// Violations counted.
    pub value: Option<f64>,
    /// Violations expected.
    pub expected: Option<f64>,
    /// Execution time.
    pub duration_ms: Option<i32>,
    /// When it ran.
    #[serde(with = "crate::rfc3339::option")]
    pub ran_at: Option<OffsetDateTime>,
    /// The run it belonged to.
    pub run_id: Option<Uuid>,
}

/// Answer of `POST …/tests/run`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TestRunDto {
    /// One entry per test of the page (by name; the first 200 unless paged)
    /// that ran at least once.
    pub results: Vec<TestResultDto>,
    /// The tests of the page that never ran, by name: they have no result,
    /// so they are neither an error nor a failure.
    pub not_run: Vec<String>,
    /// Tests whose newest result passed.
    pub passed: i64,
    /// Tests whose newest result is `failed`, `warned` or `error`.
    pub failed: i64,
    /// Tests of the pipeline.
    pub total: i64,
}
