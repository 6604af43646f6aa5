//! `quality_tests` and `quality_results`: quality test definitions (their SQL
//! lives in S3) and the results of running them, pruned per test by the
//! reaper.
//!
//! `value` and `expected` are NUMERIC in SQL; tokio-postgres has no NUMERIC
//! mapping, so they are read as `::float8` and written from `$n::float8`.

use crate::GenericClient;
use rat_domain::{Page, PageRequest, QualityResult, QualityStatus, QualityTest, Severity, TestName};
use rat_domain::{PipelineId, QualityTestId, RunId};
use time::OffsetDateTime;
use tokio_postgres::Row;
use uuid::Uuid;

use crate::DaoError;
use crate::sql::{self, Conditions, OrderBy};

const TEST_COLUMNS: &str = "id, pipeline_id, name, description, severity, s3_path, created_at";

const RESULT_COLUMNS: &str = "id, test_id, run_id, status, value::float8 AS value, \
     expected::float8 AS expected, duration_ms, ran_at";

fn test_from_row(row: &Row) -> Result<QualityTest, DaoError> {
    Ok(QualityTest {
        id: row.try_get("id")?,
        pipeline_id: row.try_get("pipeline_id")?,
        name: sql::parse_column(row, "name")?,
        description: row.try_get::<_, Option<String>>("description")?.unwrap_or_default(),
        severity: sql::parse_column(row, "severity")?,
        s3_path: sql::parse_column(row, "s3_path")?,
        created_at: row.try_get("created_at")?,
    })
}

fn result_from_row(row: &Row) -> Result<QualityResult, DaoError> {
    Ok(QualityResult {
        id: row.try_get("id")?,
        test_id: row.try_get("test_id")?,
        run_id: row.try_get("run_id")?,
        status: sql::parse_column(row, "status")?,
        value: row.try_get("value")?,
        expected: row.try_get("expected")?,
        duration_ms: row.try_get("duration_ms")?,
        ran_at: row.try_get("ran_at")?,
    })
}

/// What creating a quality test needs.
#[derive(Debug, Clone)]
pub struct NewQualityTest {
    /// The pipeline it checks.
    pub pipeline_id: PipelineId,
    /// Unique within the pipeline.
    pub name: TestName,
    /// Free text.
    pub description: String,
    /// How much a failure matters.
    pub severity: Severity,
    /// Key of the test's SQL file.
    pub s3_path: String,
}

/// Creates a quality test; `Conflict { uq_quality_tests_pipeline_name }` when
/// the pipeline has a test of that name, `MissingReference { pipeline }` for
/// an unknown pipeline.
pub async fn create(client: &impl GenericClient, new: &NewQualityTest) -> Result<QualityTest, DaoError> {
    let row = sql::query_one(
        client,
        "quality test",
        &format!(
            "INSERT INTO quality_tests (pipeline_id, name, description, severity, s3_path) \
             VALUES ($1, $2, $3, $4, $5) RETURNING {TEST_COLUMNS}"
        ),
        &[
            &new.pipeline_id,
            &new.name.as_str(),
            &new.description,
            &new.severity.as_str(),
            &new.s3_path,
        ],
    )
    .await?;
    test_from_row(&row)
}

/// The pipeline's test called `name`.
pub async fn get_by_name(
    client: &impl GenericClient,
    pipeline_id: PipelineId,
    name: &TestName,
) -> Result<QualityTest, DaoError> {
    let row = sql::query_one(
        client,
        "quality test",
        &format!("SELECT {TEST_COLUMNS} FROM quality_tests WHERE pipeline_id = $1 AND name = $2"),
        &[&pipeline_id, &name.as_str()],
    )
    .await?;
    test_from_row(&row)
}

/// The pipeline's tests among `names`, in no particular order; names the
/// pipeline has no test of are left out. One statement whatever the count
/// (callers bound `names`).
pub async fn get_by_names(
    client: &impl GenericClient,
    pipeline_id: PipelineId,
    names: &[&str],
) -> Result<Vec<QualityTest>, DaoError> {
    let rows = sql::query(
        client,
        &format!("SELECT {TEST_COLUMNS} FROM quality_tests WHERE pipeline_id = $1 AND name = ANY($2)"),
        &[&pipeline_id, &names],
    )
    .await?;
    rows.iter().map(test_from_row).collect()
}

/// Changes the description and/or severity of the pipeline's test `name`;
/// `None` keeps the current value.
pub async fn update(
    client: &impl GenericClient,
    pipeline_id: PipelineId,
    name: &TestName,
    description: Option<&str>,
    severity: Option<Severity>,
) -> Result<QualityTest, DaoError> {
    let severity = severity.map(Severity::as_str);
    let row = sql::query_one(
        client,
        "quality test",
        &format!(
            "UPDATE quality_tests SET \
                description = COALESCE($3, description), \
                severity = COALESCE($4, severity) \
             WHERE pipeline_id = $1 AND name = $2 RETURNING {TEST_COLUMNS}"
        ),
        &[&pipeline_id, &name.as_str(), &description, &severity],
    )
    .await?;
    test_from_row(&row)
}

/// Deletes the pipeline's test `name` with all its results.
pub async fn delete(client: &impl GenericClient, pipeline_id: PipelineId, name: &TestName) -> Result<(), DaoError> {
    let deleted = sql::execute(
        client,
        "DELETE FROM quality_tests WHERE pipeline_id = $1 AND name = $2",
        &[&pipeline_id, &name.as_str()],
    )
    .await
    .map_err(DaoError::on_delete)?;
    if deleted == 0 {
        return Err(DaoError::NotFound { entity: "quality test" });
    }
    Ok(())
}

/// The pipeline's tests by name, one page, with the total.
pub async fn list_for_pipeline(
    client: &impl GenericClient,
    pipeline_id: PipelineId,
    page: PageRequest,
) -> Result<Page<QualityTest>, DaoError> {
    let mut conditions = Conditions::new();
    conditions.push("pipeline_id = $?", &pipeline_id);
    let order = OrderBy {
        columns: &["name", "id"],
        descending: false,
    };
    sql::fetch_page(
        client,
        TEST_COLUMNS,
        "quality_tests",
        &conditions,
        order,
        page,
        test_from_row,
    )
    .await
}

/// One result to record.
#[derive(Debug, Clone)]
pub struct NewQualityResult {
    /// The test.
    pub test_id: QualityTestId,
    /// The run it belonged to.
    pub run_id: Option<RunId>,
    /// Outcome.
    pub status: QualityStatus,
    /// Violations counted.
    pub value: Option<f64>,
    /// Violations expected.
    pub expected: Option<f64>,
    /// Execution time.
    pub duration_ms: Option<i32>,
    /// When it ran.
    pub ran_at: OffsetDateTime,
}

/// Records a result; `MissingReference { quality test }` or `{ run }` for an
/// unknown test or run.
pub async fn insert_result(client: &impl GenericClient, new: &NewQualityResult) -> Result<QualityResult, DaoError> {
    let row = sql::query_one(
        client,
        "quality result",
        &format!(
            "INSERT INTO quality_results (test_id, run_id, status, value, expected, duration_ms, ran_at) \
             VALUES ($1, $2, $3, $4::float8, $5::float8, $6, $7) RETURNING {RESULT_COLUMNS}"
        ),
        &[
            &new.test_id,
            &new.run_id,
            &new.status.as_str(),
            &new.value,
            &new.expected,
            &new.duration_ms,
            &new.ran_at,
        ],
    )
    .await?;
    result_from_row(&row)
}

/// Records `results` in one statement (callers bound how many); the number
/// of rows written. `MissingReference { quality test }` or `{ run }` when one
/// refers to an unknown test or run, and then none is written.
pub async fn insert_results(client: &impl GenericClient, results: &[NewQualityResult]) -> Result<u64, DaoError> {
    if results.is_empty() {
        return Ok(0);
    }
    let test_ids: Vec<QualityTestId> = results.iter().map(|r| r.test_id).collect();
    let run_ids: Vec<Option<RunId>> = results.iter().map(|r| r.run_id).collect();
    let statuses: Vec<&str> = results.iter().map(|r| r.status.as_str()).collect();
    let values: Vec<Option<f64>> = results.iter().map(|r| r.value).collect();
    let expected: Vec<Option<f64>> = results.iter().map(|r| r.expected).collect();
    let durations: Vec<Option<i32>> = results.iter().map(|r| r.duration_ms).collect();
    let ran_at: Vec<OffsetDateTime> = results.iter().map(|r| r.ran_at).collect();
    sql::execute(
        client,
        "INSERT INTO quality_results (test_id, run_id, status, value, expected, duration_ms, ran_at) \
         SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::text[], $4::float8[], $5::float8[], $6::int4[], \
                              $7::timestamptz[])",
        &[&test_ids, &run_ids, &statuses, &values, &expected, &durations, &ran_at],
    )
    .await
}

/// The test's results, newest first, one page, with the total.
pub async fn list_results_for_test(
    client: &impl GenericClient,
    test_id: QualityTestId,
    page: PageRequest,
) -> Result<Page<QualityResult>, DaoError> {
    let mut conditions = Conditions::new();
    conditions.push("test_id = $?", &test_id);
    let order = OrderBy {
        columns: &["ran_at", "id"],
        descending: true,
    };
    sql::fetch_page(
        client,
        RESULT_COLUMNS,
        "quality_results",
        &conditions,
        order,
        page,
        result_from_row,
    )
    .await
}

/// The results recorded for one run, in the order they ran, at most `limit`.
pub async fn results_for_run(
    client: &impl GenericClient,
    run_id: RunId,
    limit: i64,
) -> Result<Vec<QualityResult>, DaoError> {
    let rows = sql::query(
        client,
        &format!("SELECT {RESULT_COLUMNS} FROM quality_results WHERE run_id = $1 ORDER BY ran_at, id LIMIT $2"),
        &[&run_id, &limit],
    )
    .await?;
    rows.iter().map(result_from_row).collect()
}

/// Deletes results beyond the newest `keep` of each test, at most `batch`
/// rows per call; returns how many were deleted. The reaper calls it until it
/// returns less than `batch`. `Invalid { keep }` / `{ batch }` for a negative
/// `keep` or a `batch` below 1.
pub async fn prune_results_per_test(client: &impl GenericClient, keep: i64, batch: i64) -> Result<u64, DaoError> {
    if keep < 0 {
        return Err(DaoError::Invalid {
            constraint: "keep".to_owned(),
        });
    }
    if batch < 1 {
        return Err(DaoError::Invalid {
            constraint: "batch".to_owned(),
        });
    }
    // The window ranks each test's results newest first; the same order as
    // idx_quality_results_test, with id breaking ties between equal times.
    sql::execute(
        client,
        "DELETE FROM quality_results WHERE id IN ( \
             SELECT id FROM ( \
                 SELECT id, row_number() OVER (PARTITION BY test_id ORDER BY ran_at DESC, id DESC) AS newest_rank \
                 FROM quality_results \
             ) ranked WHERE newest_rank > $1 LIMIT $2)",
        &[&keep, &batch],
    )
    .await
    .map_err(DaoError::on_delete)
}

/// First key of the advisory locks taken by [`lock_test_name`] ("QT" in
/// ASCII), so they never collide with other users of two-key advisory locks.
const TEST_NAME_LOCK_CLASS: i32 = 0x5154;

/// Takes a transaction-scoped advisory lock on the pipeline's test `name`
/// (whether or not the test exists), released at commit or rollback. Creating
/// and deleting a test changes its row and its SQL file in the store; holding
/// this lock across both keeps two requests for one test from interleaving
/// (a refused duplicate never overwrites the existing test's SQL). Call it
/// inside a transaction: outside one it is released as soon as it is taken.
pub async fn lock_test_name(
    client: &impl GenericClient,
    pipeline_id: PipelineId,
    name: &TestName,
) -> Result<(), DaoError> {
    // The two-key form with a class of its own; `hashtext` folds the
    // pipeline and the name into the second key. A hash collision only makes
    // two unrelated tests wait for each other briefly.
    sql::execute(
        client,
        "SELECT pg_advisory_xact_lock($1, hashtext(CAST($2 AS uuid)::text || '/' || $3))",
        &[&TEST_NAME_LOCK_CLASS, &pipeline_id, &name.as_str()],
    )
    .await?;
    Ok(())
}

/// A test and its most recent result, if it ever ran.
#[derive(Debug, Clone, PartialEq)]
pub struct TestWithLatestResult {
    /// The test.
    pub test: QualityTest,
    /// Its newest result (by `ran_at`, then id); `None` when it never ran.
    pub latest: Option<QualityResult>,
}

/// The test columns and the newest result's columns prefixed `latest_`, from
/// [`WITH_LATEST_FROM`].
const WITH_LATEST_COLUMNS: &str = "id, pipeline_id, name, description, severity, s3_path, created_at, \
     latest_id, latest_run_id, latest_status, latest_value, latest_expected, latest_duration_ms, latest_ran_at";

/// Each test joined to its newest result. The lateral subquery reads one row
/// per test from `idx_quality_results_test`; its columns are renamed so the
/// test's own column names stay unambiguous.
const WITH_LATEST_FROM: &str = "quality_tests LEFT JOIN LATERAL ( \
         SELECT r.id AS latest_id, r.run_id AS latest_run_id, r.status AS latest_status, \
                r.value::float8 AS latest_value, r.expected::float8 AS latest_expected, \
                r.duration_ms AS latest_duration_ms, r.ran_at AS latest_ran_at \
         FROM quality_results r WHERE r.test_id = quality_tests.id \
         ORDER BY r.ran_at DESC, r.id DESC LIMIT 1 \
     ) latest ON true";

fn with_latest_from_row(row: &Row) -> Result<TestWithLatestResult, DaoError> {
    let test = test_from_row(row)?;
    let latest = match row.try_get::<_, Option<Uuid>>("latest_id")? {
        None => None,
        Some(id) => Some(QualityResult {
            id,
            test_id: test.id,
            run_id: row.try_get("latest_run_id")?,
            status: sql::parse_column(row, "latest_status")?,
            value: row.try_get("latest_value")?,
            expected: row.try_get("latest_expected")?,
            duration_ms: row.try_get("latest_duration_ms")?,
            ran_at: row.try_get("latest_ran_at")?,
        }),
    };
    Ok(TestWithLatestResult { test, latest })
}

/// The pipeline's tests by name, each with its newest result, one page, with
/// the total count of the pipeline's tests.
pub async fn list_with_latest_result(
    client: &impl GenericClient,
    pipeline_id: PipelineId,
    page: PageRequest,
) -> Result<Page<TestWithLatestResult>, DaoError> {
    let mut conditions = Conditions::new();
    conditions.push("pipeline_id = $?", &pipeline_id);
    let order = OrderBy {
        columns: &["name", "id"],
        descending: false,
    };
    sql::fetch_page(
        client,
        WITH_LATEST_COLUMNS,
        WITH_LATEST_FROM,
        &conditions,
        order,
        page,
        with_latest_from_row,
    )
    .await
}

/// How the newest results of a pipeline's tests are spread over the statuses.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LatestStatusCounts {
    /// Tests of the pipeline.
    pub total: i64,
    /// Tests whose newest result is `passed`.
    pub passed: i64,
    /// Tests whose newest result is `failed`.
    pub failed: i64,
    /// Tests whose newest result is `warned`.
    pub warned: i64,
    /// Tests whose newest result is `error`.
    pub errored: i64,
    /// Tests without any result.
    pub never_run: i64,
}

/// Counts the pipeline's tests by the status of their newest result, over
/// every test of the pipeline (not one page), in one query.
pub async fn latest_status_counts(
    client: &impl GenericClient,
    pipeline_id: PipelineId,
) -> Result<LatestStatusCounts, DaoError> {
    let row = sql::query_one(
        client,
        "quality test",
        &format!(
            "SELECT count(*) AS total, \
                 count(*) FILTER (WHERE latest_status = 'passed') AS passed, \
                 count(*) FILTER (WHERE latest_status = 'failed') AS failed, \
                 count(*) FILTER (WHERE latest_status = 'warned') AS warned, \
                 count(*) FILTER (WHERE latest_status = 'error') AS errored, \
                 count(*) FILTER (WHERE latest_id IS NULL) AS never_run \
             FROM {WITH_LATEST_FROM} WHERE pipeline_id = $1"
        ),
        &[&pipeline_id],
    )
    .await?;
    Ok(LatestStatusCounts {
        total: row.try_get("total")?,
        passed: row.try_get("passed")?,
        failed: row.try_get("failed")?,
        warned: row.try_get("warned")?,
        errored: row.try_get("errored")?,
        never_run: row.try_get("never_run")?,
    })
}
