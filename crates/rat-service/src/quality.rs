//! Quality tests: definitions (rows + SQL in the store) and results.
//!
//! A test is a `quality_tests` row naming its SQL file, which lives in the
//! pipeline's directory at `tests/quality/{name}.sql`, so it is versioned and
//! published with the pipeline's code. Creating or deleting a test changes
//! both, under a per-test advisory lock, in an order that never leaves a test
//! visible without its SQL:
//!
//! - create: lock, refuse a duplicate, write the file (the pipeline turns
//!   dirty), insert the row, commit; a failed write or insert deletes the
//!   file again under the lock (best effort, with a delete marker).
//! - delete: lock, delete the row, delete the file, commit; a failed file
//!   delete rolls the row back.
//!
//! This service executes no SQL of a test: runners do, and record one result
//! per test and run in `quality_results`. [`latest_results`] reports the
//! newest of them.

use rat_domain::PipelineId;

use rat_dao::pipelines;
use rat_dao::quality::{self, LatestStatusCounts, NewQualityTest, TestWithLatestResult};
use rat_domain::{Page, PageRequest, PipelineRef, QualityTest, Severity, TestAnnotations, TestName};
use rat_versioning::{KeyPrefix, ObjectKey, VersionedStore};

use crate::identity::Caller;
use crate::pipelines::content_type;
use crate::pipelines::require_on_loaded;
use crate::{ServiceError, Services};
use rat_domain::Permission;

/// Largest SQL text of one test, in bytes.
pub const MAX_TEST_SQL_BYTES: usize = 1024 * 1024;

/// Longest description of one test, in characters (ratd's limit).
pub const MAX_DESCRIPTION_CHARS: usize = rat_domain::text::MAX_DESCRIPTION_CHARS;

/// Test SQL files read from the store at once by [`list_tests`].
const SQL_READ_CONCURRENCY: usize = 8;

/// A test to create.
#[derive(Debug, Clone)]
pub struct NewTest {
    /// Unique within the pipeline.
    pub name: TestName,
    /// The query counting violations; non-empty, at most [`MAX_TEST_SQL_BYTES`].
    pub sql: String,
    /// How much a failure matters.
    pub severity: Severity,
    /// Free text, at most [`MAX_DESCRIPTION_CHARS`] characters.
    pub description: String,
}

/// A test with its SQL at HEAD.
#[derive(Debug, Clone, PartialEq)]
pub struct TestDefinition {
    /// The row.
    pub test: QualityTest,
    /// The SQL file's content at HEAD; empty when the file was deleted
    /// behind the test's back (through the files API).
    pub sql: String,
    /// Whether the pipeline's published snapshot pins the test's SQL file.
    pub published: bool,
    /// The SQL file's annotation comments (`-- @tags: …`).
    pub annotations: TestAnnotations,
}

impl TestDefinition {
    /// The severity the test's file declares (`-- @severity:`), else the
    /// row's.
    pub fn severity(&self) -> Severity {
        self.annotations.severity.unwrap_or(self.test.severity)
    }

    /// The description the test's file declares (`-- @description:`), else
    /// the row's.
    pub fn description(&self) -> &str {
        self.annotations
            .description
            .as_deref()
            .unwrap_or(&self.test.description)
    }
}

/// The newest recorded result of each test of a pipeline.
#[derive(Debug, Clone, PartialEq)]
pub struct LatestResults {
    /// The pipeline.
    pub pipeline_id: PipelineId,
    /// One page of tests (by name) with their newest result.
    pub results: Vec<TestWithLatestResult>,
    /// Counts over every test of the pipeline, not only this page.
    pub counts: LatestStatusCounts,
}

impl LatestResults {
    /// Tests whose newest result passed.
    pub fn passed(&self) -> i64 {
        self.counts.passed
    }

    /// Tests whose newest result did not pass (`failed`, `warned` or
    /// `error`, as ratd counts them); tests never run are not counted.
    pub fn failed(&self) -> i64 {
        self.counts.failed + self.counts.warned + self.counts.errored
    }
}

/// Key of test `name`'s SQL file in the pipeline directory `prefix`.
fn test_key(prefix: &KeyPrefix, name: &TestName) -> Result<ObjectKey, ServiceError> {
    Ok(prefix.join(&format!("tests/quality/{name}.sql"))?)
}

fn check_new_test(new: &NewTest) -> Result<(), ServiceError> {
    if new.sql.trim().is_empty() {
        return Err(ServiceError::invalid("sql must not be empty"));
    }
    if new.sql.len() > MAX_TEST_SQL_BYTES {
        return Err(ServiceError::invalid(format!(
            "sql must be at most {MAX_TEST_SQL_BYTES} bytes, got {}",
            new.sql.len()
        )));
    }
    rat_domain::text::check_text_len("description", &new.description, MAX_DESCRIPTION_CHARS)?;
    Ok(())
}

/// The pipeline's tests by name, one page with the total, each with its SQL
/// read at HEAD (a few files at a time) and whether it is published.
/// `NotFound` for an unknown pipeline; `Unavailable` when the store fails.
#[tracing::instrument(skip(services, caller), fields(pipeline = %address))]
pub async fn list_tests(
    services: &Services,
    caller: &Caller,
    address: &PipelineRef,
    page: PageRequest,
) -> Result<Page<TestDefinition>, ServiceError> {
    let client = services.pool.get().await?;
    let pipeline = pipelines::get_by_ref(&client, address).await?;
    require_on_loaded(&client, caller, &pipeline, Permission::Read, "reading").await?;
    let tests = quality::list_for_pipeline(&client, pipeline.id, page).await?;
    drop(client);
    let keys: Vec<&ObjectKey> = tests.items.iter().map(|t| &t.s3_path).collect();
    let sql = read_heads(services.store.as_ref(), &keys).await?;
    let items = tests
        .items
        .into_iter()
        .zip(sql)
        .map(|(test, sql)| TestDefinition {
            published: pipeline.published_versions.get(test.s3_path.as_str()).is_some(),
            annotations: TestAnnotations::parse(&sql),
            test,
            sql,
        })
        .collect();
    Ok(Page {
        items,
        total: tests.total,
    })
}

/// Reads every key at HEAD as text, at most [`SQL_READ_CONCURRENCY`] at a
/// time, keeping the order of `keys`. A missing file reads as empty.
async fn read_heads(store: &dyn VersionedStore, keys: &[&ObjectKey]) -> Result<Vec<String>, ServiceError> {
    crate::concurrent::try_map_bounded(keys, SQL_READ_CONCURRENCY, |key| async move {
        Ok(read_text(store, key).await?.unwrap_or_default())
    })
    .await
}

async fn read_text(store: &dyn VersionedStore, key: &ObjectKey) -> Result<Option<String>, ServiceError> {
    match store.get(key, None).await {
        // Test SQL is text; anything else was written behind our back and
        // is shown as well as it can be rather than failing the whole list.
        Ok(object) => Ok(Some(String::from_utf8_lossy(&object.body).into_owned())),
        Err(rat_versioning::StoreError::NotFound { .. }) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// Creates a test: writes its SQL file (marking the pipeline dirty) and
/// inserts its row. `AlreadyExists { quality test }` when the pipeline has a
/// test of that name (its SQL is left untouched), `NotFound` for an unknown
/// pipeline, `InvalidInput` for empty or oversized SQL, `Unavailable` when
/// the store fails (nothing is created then).
///
/// One pooled connection throughout, never a second one while it is held
/// (a request holding one connection and waiting for another would, under
/// load, leave every connection held by a waiter).
#[tracing::instrument(skip(services, caller, new), fields(pipeline = %address, test = %new.name))]
pub async fn create_test(
    services: &Services,
    caller: &Caller,
    address: &PipelineRef,
    new: NewTest,
) -> Result<QualityTest, ServiceError> {
    check_new_test(&new)?;
    let mut client = services.pool.get().await?;
    let pipeline = pipelines::get_by_ref(&client, address).await?;
    require_on_loaded(&client, caller, &pipeline, Permission::Write, "changing").await?;
    let key = test_key(&pipeline.s3_path, &new.name)?;
    // A duplicate is refused before anything changes (and again under the
    // lock below, for one created meanwhile).
    refuse_duplicate(&client, pipeline.id, &new.name).await?;
    // Dirty before the file can change, committed at once: a crash after the
    // write never leaves the pipeline clean.
    pipelines::set_draft_dirty(&client, pipeline.id, true).await?;

    let transaction = client.transaction().await?;
    // Held until commit: a concurrent create of the same name waits here and
    // then sees this one's row, so it never overwrites this test's SQL.
    quality::lock_test_name(&transaction, pipeline.id, &new.name).await?;
    refuse_duplicate(&transaction, pipeline.id, &new.name).await?;
    let row = NewQualityTest {
        pipeline_id: pipeline.id,
        name: new.name,
        description: new.description,
        severity: new.severity,
        s3_path: key.as_str().to_owned(),
    };
    let created = async {
        services
            .store
            .put(&key, new.sql.into_bytes(), content_type(key.file_name()))
            .await?;
        // Dirty again after the write, in this transaction: a publish that
        // listed the files before the write landed cannot leave it clean.
        // The row lock this takes is held only until the commit below.
        pipelines::set_draft_dirty(&transaction, pipeline.id, true).await?;
        Ok::<_, ServiceError>(quality::create(&transaction, &row).await?)
    }
    .await;
    let created = match created {
        Ok(created) => created,
        Err(e) => {
            // No row: take the file back (a failed write may still have
            // landed) so no test SQL lingers without a test. The transaction,
            // and so the lock, is still held: no concurrent create of this
            // name can have written the file since. The pipeline stays
            // marked dirty, which may be needlessly cautious but never wrong.
            if let Err(cleanup) = services.store.delete(&key).await {
                tracing::warn!(key = %key, error = %cleanup, "could not remove the SQL file of a failed test create");
            }
            return Err(e);
        }
    };
    // A failed commit has an unknown outcome: the file is left in place, as
    // removing it could leave a committed test without its SQL, while a
    // stray file without a row is no visible test.
    transaction.commit().await?;
    Ok(created)
}

/// `AlreadyExists { quality test }` when the pipeline has a test `name`.
async fn refuse_duplicate(
    client: &impl rat_dao::GenericClient,
    pipeline_id: PipelineId,
    name: &TestName,
) -> Result<(), ServiceError> {
    match quality::get_by_name(client, pipeline_id, name).await {
        Ok(_) => Err(ServiceError::AlreadyExists { entity: "quality test" }),
        Err(rat_dao::DaoError::NotFound { .. }) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// Deletes the pipeline's test `name`: its row (with its results) and its
/// SQL file (a delete marker; the pipeline turns dirty). Returns the deleted
/// test. `NotFound` for an unknown pipeline or test; when the store fails the
/// row is kept (`Unavailable`). One pooled connection throughout.
#[tracing::instrument(skip(services, caller), fields(pipeline = %address))]
pub async fn delete_test(
    services: &Services,
    caller: &Caller,
    address: &PipelineRef,
    name: &TestName,
) -> Result<QualityTest, ServiceError> {
    let mut client = services.pool.get().await?;
    let pipeline = pipelines::get_by_ref(&client, address).await?;
    require_on_loaded(&client, caller, &pipeline, Permission::Write, "changing").await?;
    // An unknown test is refused before anything changes.
    quality::get_by_name(&client, pipeline.id, name).await?;
    pipelines::set_draft_dirty(&client, pipeline.id, true).await?;
    let transaction = client.transaction().await?;
    quality::lock_test_name(&transaction, pipeline.id, name).await?;
    let test = quality::get_by_name(&transaction, pipeline.id, name).await?;
    quality::delete(&transaction, pipeline.id, name).await?;
    let key = test.s3_path.clone();
    // A file already gone (deleted through the files API) is what we want.
    if services.store.head(&key).await?.is_some() {
        services.store.delete(&key).await?;
    }
    pipelines::set_draft_dirty(&transaction, pipeline.id, true).await?;
    transaction.commit().await?;
    Ok(test)
}

/// The newest recorded result of each of the pipeline's tests (one page, by
/// name) and the counts over all of them. Runners execute tests and record
/// results; this reads what they recorded and executes nothing.
/// `NotFound` for an unknown pipeline.
pub async fn latest_results(
    services: &Services,
    caller: &Caller,
    address: &PipelineRef,
    page: PageRequest,
) -> Result<LatestResults, ServiceError> {
    let client = services.pool.get().await?;
    let pipeline = pipelines::get_by_ref(&client, address).await?;
    require_on_loaded(&client, caller, &pipeline, Permission::Read, "reading").await?;
    let results = quality::list_with_latest_result(&client, pipeline.id, page).await?;
    let counts = quality::latest_status_counts(&client, pipeline.id).await?;
    Ok(LatestResults {
        pipeline_id: pipeline.id,
        results: results.items,
        counts,
    })
}
