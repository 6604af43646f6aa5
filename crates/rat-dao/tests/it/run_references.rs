//! The four references to a run are kept by triggers (V26), not foreign
//! keys: these tests hold them to what a foreign key guarantees: a missing
//! run is refused with the constraint's name, the run is locked while a
//! writer names it, a delete releases every reference, and concurrent
//! writers and deleters never leave a dangling id.

use rat_dao::{DaoError, GenericClient};
use rat_testkit::{TestDatabase, fixtures};
use uuid::Uuid;

/// A pipeline with one quality test, and `runs` runs of it, each referenced
/// once from every table: a log line, a quality result, a schedule's and a
/// trigger's `last_run_id`. Returns the pipeline id and the run ids.
async fn referenced_runs(client: &impl GenericClient, runs: usize) -> (Uuid, Vec<Uuid>) {
    let pipeline = fixtures::published_pipeline(client, "default", "silver", "orders").await;
    client
        .execute(
            "INSERT INTO quality_tests (pipeline_id, name, s3_path) VALUES ($1, 'not_null', 'k')",
            &[&pipeline.id],
        )
        .await
        .unwrap();
    let mut ids = Vec::with_capacity(runs);
    for _ in 0..runs {
        ids.push(Uuid::from(fixtures::run(client, &pipeline).await.id));
    }
    for sql in [
        "INSERT INTO run_logs (run_id, timestamp, level, message) SELECT r, now(), 'info', 'line' FROM unnest($2::uuid[]) r WHERE $1::uuid IS NOT NULL",
        "INSERT INTO quality_results (test_id, run_id, status) \
         SELECT t.id, r, 'passed' FROM quality_tests t, unnest($2::uuid[]) r WHERE t.pipeline_id = $1",
        "INSERT INTO schedules (pipeline_id, cron_expr, last_run_id) SELECT $1, '0 * * * *', r FROM unnest($2::uuid[]) r",
        "INSERT INTO pipeline_triggers (pipeline_id, type, config, last_run_id) \
         SELECT $1, 'webhook', '{}', r FROM unnest($2::uuid[]) r",
    ] {
        client.execute(sql, &[&Uuid::from(pipeline.id), &ids]).await.unwrap();
    }
    (pipeline.id.into(), ids)
}

/// How many rows of each referencing table name `run`.
async fn references_to(client: &impl GenericClient, run: Uuid) -> [i64; 4] {
    let mut out = [0; 4];
    for (i, sql) in [
        "SELECT count(*) FROM run_logs WHERE run_id = $1",
        "SELECT count(*) FROM quality_results WHERE run_id = $1",
        "SELECT count(*) FROM schedules WHERE last_run_id = $1",
        "SELECT count(*) FROM pipeline_triggers WHERE last_run_id = $1",
    ]
    .into_iter()
    .enumerate()
    {
        out[i] = client.query_one(sql, &[&run]).await.unwrap().get(0);
    }
    out
}

/// The session's backend process id.
async fn backend_pid(client: &impl GenericClient) -> i32 {
    client.query_one("SELECT pg_backend_pid()", &[]).await.unwrap().get(0)
}

fn is_missing_run(err: &DaoError, constraint_name: &str) -> bool {
    matches!(err, DaoError::MissingReference { entity: "run", constraint } if constraint == constraint_name)
}

#[tokio::test]
async fn a_missing_run_is_refused_on_insert_and_on_an_update_that_names_it() {
    let db = TestDatabase::new().await;
    let client = db.client().await;
    let (pipeline, runs) = referenced_runs(&client, 1).await;
    let run = runs[0];
    let missing = Uuid::new_v4();
    let cases = [
        (
            "fk_run_logs_run",
            "INSERT INTO run_logs (run_id, timestamp, level, message) SELECT $2, now(), 'info', 'x' WHERE $1::uuid IS NOT NULL",
            "UPDATE run_logs SET run_id = $2 WHERE $1::uuid IS NOT NULL",
        ),
        (
            "fk_quality_results_run",
            "INSERT INTO quality_results (test_id, run_id, status) SELECT id, $2, 'failed' FROM quality_tests WHERE pipeline_id = $1",
            "UPDATE quality_results SET run_id = $2 WHERE $1::uuid IS NOT NULL",
        ),
        (
            "fk_schedules_last_run",
            "INSERT INTO schedules (pipeline_id, cron_expr, last_run_id) VALUES ($1, '5 * * * *', $2)",
            "UPDATE schedules SET last_run_id = $2 WHERE pipeline_id = $1",
        ),
        (
            "fk_pipeline_triggers_last_run",
            "INSERT INTO pipeline_triggers (pipeline_id, type, config, last_run_id) VALUES ($1, 'webhook', '{}', $2)",
            "UPDATE pipeline_triggers SET last_run_id = $2 WHERE pipeline_id = $1",
        ),
    ];
    for (constraint, insert, update) in cases {
        // Naming a run that does not exist is refused, and changes nothing.
        for sql in [insert, update] {
            let err = DaoError::from(client.execute(sql, &[&pipeline, &missing]).await.unwrap_err());
            assert!(is_missing_run(&err, constraint), "{sql}: {err:?}");
        }
        // An existing run is accepted, and NULL needs no run.
        client.execute(insert, &[&pipeline, &run]).await.unwrap();
        client.execute(update, &[&pipeline, &run]).await.unwrap();
    }
    assert_eq!(references_to(&client, run).await, [2, 2, 2, 2]);
    assert_eq!(references_to(&client, missing).await, [0, 0, 0, 0]);
}

#[tokio::test]
async fn deleting_runs_releases_every_reference_and_nothing_else() {
    let db = TestDatabase::new().await;
    let client = db.client().await;
    let (_, runs) = referenced_runs(&client, 5).await;
    // One statement deleting three runs (the reaper's shape).
    let doomed = &runs[..3];
    let deleted = client
        .execute("DELETE FROM runs WHERE id = ANY($1)", &[&doomed])
        .await
        .unwrap();
    assert_eq!(deleted, 3);
    for run in doomed {
        assert_eq!(references_to(&client, *run).await, [0, 0, 0, 0]);
    }
    for run in &runs[3..] {
        assert_eq!(references_to(&client, *run).await, [1, 1, 1, 1]);
    }
    // The rows that named a deleted run stay, without the reference (SET
    // NULL), except log lines, which go with their run (CASCADE).
    for (sql, expected) in [
        ("SELECT count(*) FROM run_logs", 2),
        ("SELECT count(*) FROM quality_results WHERE run_id IS NULL", 3),
        ("SELECT count(*) FROM schedules WHERE last_run_id IS NULL", 3),
        ("SELECT count(*) FROM pipeline_triggers WHERE last_run_id IS NULL", 3),
    ] {
        let n: i64 = client.query_one(sql, &[]).await.unwrap().get(0);
        assert_eq!(n, expected, "{sql}");
    }
}

#[tokio::test]
async fn a_delete_waits_for_a_writer_naming_the_run_and_then_takes_its_row() {
    let db = TestDatabase::new().await;
    let writer = db.client().await;
    let observer = db.client().await;
    let (_, runs) = referenced_runs(&writer, 1).await;
    let run = runs[0];

    writer.batch_execute("BEGIN").await.unwrap();
    writer
        .execute(
            "INSERT INTO run_logs (run_id, timestamp, level, message) VALUES ($1, now(), 'info', 'late line')",
            &[&run],
        )
        .await
        .unwrap();
    // The writer holds the run FOR KEY SHARE: a delete must wait for it.
    let deleter = db.client().await;
    let deleter_pid = backend_pid(&deleter).await;
    let delete = tokio::spawn(async move { deleter.execute("DELETE FROM runs WHERE id = $1", &[&run]).await });
    fixtures::wait_until_blocked(&observer, deleter_pid).await;
    assert!(!delete.is_finished());
    writer.batch_execute("COMMIT").await.unwrap();
    assert_eq!(delete.await.unwrap().unwrap(), 1);
    // The committed line went with its run: nothing names the deleted run.
    assert_eq!(references_to(&observer, run).await, [0, 0, 0, 0]);
}

#[tokio::test]
async fn a_writer_naming_a_run_being_deleted_fails_once_the_delete_commits() {
    let db = TestDatabase::new().await;
    let deleter = db.client().await;
    let observer = db.client().await;
    let (_, runs) = referenced_runs(&deleter, 2).await;

    for (run, outcome) in [(runs[0], "ROLLBACK"), (runs[1], "COMMIT")] {
        deleter.batch_execute("BEGIN").await.unwrap();
        deleter
            .execute("DELETE FROM runs WHERE id = $1", &[&run])
            .await
            .unwrap();
        let writer = db.client().await;
        let writer_pid = backend_pid(&writer).await;
        let write = tokio::spawn(async move {
            writer
                .execute(
                    "INSERT INTO quality_results (test_id, run_id, status) SELECT id, $1, 'passed' FROM quality_tests",
                    &[&run],
                )
                .await
        });
        fixtures::wait_until_blocked(&observer, writer_pid).await;
        deleter.batch_execute(outcome).await.unwrap();
        let written = write.await.unwrap();
        if outcome == "ROLLBACK" {
            // The run survived: the writer's row names it.
            assert_eq!(written.unwrap(), 1);
            assert_eq!(references_to(&observer, run).await, [1, 2, 1, 1]);
        } else {
            let err = DaoError::from(written.unwrap_err());
            assert!(is_missing_run(&err, "fk_quality_results_run"), "{err:?}");
            assert_eq!(references_to(&observer, run).await, [0, 0, 0, 0]);
        }
    }
}

#[tokio::test]
async fn only_a_changed_reference_locks_its_run() {
    let db = TestDatabase::new().await;
    let writer = db.client().await;
    let other = db.client().await;
    let (pipeline, runs) = referenced_runs(&writer, 2).await;
    let (current, next) = (runs[0], runs[1]);
    // The schedule named `current` already; `next` is not named by it.
    writer
        .execute("DELETE FROM schedules WHERE last_run_id = $1", &[&next])
        .await
        .unwrap();
    let lockable = |run: Uuid| {
        let other = &other;
        async move {
            other.batch_execute("BEGIN").await.unwrap();
            let got = other
                .query("SELECT 1 FROM runs WHERE id = $1 FOR UPDATE NOWAIT", &[&run])
                .await
                .is_ok();
            other.batch_execute("ROLLBACK").await.unwrap();
            got
        }
    };

    writer.batch_execute("BEGIN").await.unwrap();
    // An update leaving the reference alone takes no lock on the run.
    writer
        .execute(
            "UPDATE schedules SET enabled = false WHERE pipeline_id = $1",
            &[&pipeline],
        )
        .await
        .unwrap();
    assert!(lockable(current).await);
    // An update naming another run holds that run until the end.
    writer
        .execute(
            "UPDATE schedules SET last_run_id = $2 WHERE pipeline_id = $1",
            &[&pipeline, &next],
        )
        .await
        .unwrap();
    assert!(!lockable(next).await, "the newly named run is held FOR KEY SHARE");
    writer.batch_execute("COMMIT").await.unwrap();
    assert!(lockable(next).await);
}

#[tokio::test]
async fn runs_are_deleted_at_read_committed_keep_their_ids_and_are_never_truncated() {
    let db = TestDatabase::new().await;
    let client = db.client().await;
    let (_, runs) = referenced_runs(&client, 1).await;
    let run = runs[0];

    for isolation in ["REPEATABLE READ", "SERIALIZABLE"] {
        client
            .batch_execute(&format!("BEGIN ISOLATION LEVEL {isolation}"))
            .await
            .unwrap();
        let err = client
            .execute("DELETE FROM runs WHERE id = $1", &[&run])
            .await
            .unwrap_err();
        assert_eq!(
            err.code(),
            Some(&tokio_postgres::error::SqlState::FEATURE_NOT_SUPPORTED),
            "{isolation}: {err:?}"
        );
        client.batch_execute("ROLLBACK").await.unwrap();
    }
    for sql in [
        "UPDATE runs SET id = gen_random_uuid() WHERE id = $1",
        "TRUNCATE runs CASCADE",
    ] {
        let params: &[&(dyn tokio_postgres::types::ToSql + Sync)] = if sql.contains("$1") { &[&run] } else { &[] };
        assert!(client.execute(sql, params).await.is_err(), "{sql}");
    }
    assert_eq!(references_to(&client, run).await, [1, 1, 1, 1]);
    let left: i64 = client
        .query_one("SELECT count(*) FROM runs WHERE id = $1", &[&run])
        .await
        .unwrap()
        .get(0);
    assert_eq!(left, 1);
}

/// The clean-up reads each referencing table through its index on the
/// reference, never a scan of the table: counted by Postgres for this
/// transaction (`pg_stat_xact_user_tables`), with tables large enough that a
/// scan would be planned if the index could not serve.
#[tokio::test]
async fn the_release_of_a_batch_reads_the_reference_indexes() {
    let db = TestDatabase::new().await;
    let client = db.client().await;
    let (_, runs) = referenced_runs(&client, 1500).await;
    client.batch_execute("ANALYZE").await.unwrap();
    client.batch_execute("BEGIN").await.unwrap();
    let deleted = client
        .execute("DELETE FROM runs WHERE id = ANY($1)", &[&&runs[..3]])
        .await
        .unwrap();
    assert_eq!(deleted, 3);
    let rows = client
        .query(
            "SELECT relname::text, seq_scan, idx_scan FROM pg_stat_xact_user_tables \
             WHERE relname IN ('run_logs', 'quality_results', 'schedules', 'pipeline_triggers') ORDER BY relname",
            &[],
        )
        .await
        .unwrap();
    client.batch_execute("ROLLBACK").await.unwrap();
    let counted: Vec<(String, i64, i64)> = rows.iter().map(|r| (r.get(0), r.get(1), r.get(2))).collect();
    assert_eq!(counted.len(), 4, "{counted:?}");
    for (table, seq, idx) in &counted {
        assert_eq!(*seq, 0, "{table} was scanned: {counted:?}");
        assert!(*idx >= 1, "{table} was not read through an index: {counted:?}");
    }
}
