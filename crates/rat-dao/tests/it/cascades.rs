//! Deleting a namespace, a pipeline or old runs never fails on a reference,
//! and takes exactly what lies below with it.

use rat_dao::{namespaces, pipelines, runs};
use rat_domain::NamespaceName;
use rat_testkit::{TestDatabase, fixtures};
use uuid::Uuid;

/// Child tables of a pipeline or zone, each counted per namespace.
const COUNTS: &[(&str, &str)] = &[
    ("pipelines", "SELECT count(*) FROM pipelines WHERE namespace = $1"),
    (
        "runs",
        "SELECT count(*) FROM runs r JOIN pipelines p ON p.id = r.pipeline_id WHERE p.namespace = $1",
    ),
    (
        "schedules",
        "SELECT count(*) FROM schedules s JOIN pipelines p ON p.id = s.pipeline_id WHERE p.namespace = $1",
    ),
    (
        "pipeline_triggers",
        "SELECT count(*) FROM pipeline_triggers t JOIN pipelines p ON p.id = t.pipeline_id WHERE p.namespace = $1",
    ),
    (
        "pipeline_versions",
        "SELECT count(*) FROM pipeline_versions v JOIN pipelines p ON p.id = v.pipeline_id WHERE p.namespace = $1",
    ),
    (
        "quality_tests",
        "SELECT count(*) FROM quality_tests q JOIN pipelines p ON p.id = q.pipeline_id WHERE p.namespace = $1",
    ),
    (
        "quality_results",
        "SELECT count(*) FROM quality_results r JOIN quality_tests q ON q.id = r.test_id \
         JOIN pipelines p ON p.id = q.pipeline_id WHERE p.namespace = $1",
    ),
    (
        "landing_zones",
        "SELECT count(*) FROM landing_zones WHERE namespace = $1",
    ),
    (
        "landing_files",
        "SELECT count(*) FROM landing_files f JOIN landing_zones z ON z.id = f.zone_id WHERE z.namespace = $1",
    ),
];

async fn counts(client: &impl rat_dao::GenericClient, ns: &str) -> Vec<(&'static str, i64)> {
    let mut out = Vec::new();
    for (table, sql) in COUNTS {
        let row = client.query_one(*sql, &[&ns]).await.unwrap();
        out.push((*table, row.get::<_, i64>(0)));
    }
    out
}

/// One of everything below a published pipeline of namespace `ns`, with the
/// schedule and trigger pointing at the run through `last_run_id`.
async fn populate(client: &impl rat_dao::GenericClient, ns: &str) -> Uuid {
    let pipeline = fixtures::published_pipeline(client, ns, "silver", "orders").await;
    let run = fixtures::run(client, &pipeline).await;
    let statements = [
        "INSERT INTO schedules (pipeline_id, cron_expr, last_run_id) VALUES ($1, '0 * * * *', $2)",
        "INSERT INTO pipeline_triggers (pipeline_id, type, config, last_run_id) VALUES ($1, 'webhook', '{}', $2)",
        "INSERT INTO pipeline_versions (pipeline_id, version_number) SELECT $1, 1 WHERE $2::uuid IS NOT NULL",
        "INSERT INTO quality_tests (pipeline_id, name, s3_path) SELECT $1, 'not_null', 'k' WHERE $2::uuid IS NOT NULL",
        "INSERT INTO quality_results (test_id, run_id, status) \
         SELECT id, $2, 'passed' FROM quality_tests WHERE pipeline_id = $1",
    ];
    for sql in statements {
        client.execute(sql, &[&pipeline.id, &run.id]).await.unwrap();
    }
    client
        .execute(
            "INSERT INTO landing_zones (namespace, name) VALUES ($1, 'uploads')",
            &[&ns],
        )
        .await
        .unwrap();
    client
        .execute(
            "INSERT INTO landing_files (zone_id, filename, s3_path) \
             SELECT id, 'a.csv', 'k' FROM landing_zones WHERE namespace = $1",
            &[&ns],
        )
        .await
        .unwrap();
    run.id.into()
}

#[tokio::test]
async fn deleting_a_namespace_removes_everything_below_it_and_nothing_else() {
    let db = TestDatabase::new().await;
    let client = db.client().await;
    populate(&client, "doomed").await;
    populate(&client, "kept").await;
    let full: Vec<i64> = counts(&client, "doomed").await.into_iter().map(|(_, n)| n).collect();
    assert!(full.iter().all(|n| *n == 1), "fixture has one of each: {full:?}");

    namespaces::delete(&client, &NamespaceName::parse("doomed").unwrap())
        .await
        .unwrap();

    for (table, n) in counts(&client, "doomed").await {
        assert_eq!(n, 0, "{table} rows of the deleted namespace remain");
    }
    for (table, n) in counts(&client, "kept").await {
        assert_eq!(n, 1, "{table} rows of another namespace were touched");
    }
}

#[tokio::test]
async fn purging_a_pipeline_removes_its_children() {
    let db = TestDatabase::new().await;
    let client = db.client().await;
    populate(&client, "shop").await;
    let pipeline = pipelines::get_by_ref(
        &client,
        &rat_domain::PipelineRef::parse("shop", "silver", "orders").unwrap(),
    )
    .await
    .unwrap();
    pipelines::purge(&client, pipeline.id).await.unwrap();
    for (table, n) in counts(&client, "shop").await {
        let expected = if table.starts_with("landing") { 1 } else { 0 };
        assert_eq!(n, expected, "{table}");
    }
}

#[tokio::test]
async fn deleting_a_referenced_run_clears_the_references() {
    let db = TestDatabase::new().await;
    let client = db.client().await;
    let run_id = populate(&client, "shop").await;
    runs::delete(&client, run_id.into()).await.unwrap();
    for sql in [
        "SELECT count(*) FROM schedules WHERE last_run_id IS NULL",
        "SELECT count(*) FROM pipeline_triggers WHERE last_run_id IS NULL",
        "SELECT count(*) FROM quality_results WHERE run_id IS NULL",
    ] {
        let n: i64 = client.query_one(sql, &[]).await.unwrap().get(0);
        assert_eq!(n, 1, "{sql}");
    }
}

#[tokio::test]
async fn deleting_a_schedule_keeps_its_runs_unattributed() {
    let db = TestDatabase::new().await;
    let client = db.client().await;
    let pipeline = fixtures::published_pipeline(&client, "default", "gold", "daily").await;
    let schedule: Uuid = client
        .query_one(
            "INSERT INTO schedules (pipeline_id, cron_expr) VALUES ($1, '0 0 * * *') RETURNING id",
            &[&pipeline.id],
        )
        .await
        .unwrap()
        .get(0);
    let run = fixtures::run(&client, &pipeline).await;
    client
        .execute(
            "UPDATE runs SET schedule_id = $1, scheduled_for = '2026-01-01T00:00:00Z' WHERE id = $2",
            &[&schedule, &run.id],
        )
        .await
        .unwrap();
    client
        .execute("DELETE FROM schedules WHERE id = $1", &[&schedule])
        .await
        .unwrap();
    let after = runs::get(&client, run.id).await.unwrap();
    assert_eq!(after.schedule_id, None);
}

#[tokio::test]
async fn a_schedule_slot_has_at_most_one_run() {
    let db = TestDatabase::new().await;
    let client = db.client().await;
    let pipeline = fixtures::published_pipeline(&client, "default", "gold", "daily").await;
    let schedule: Uuid = client
        .query_one(
            "INSERT INTO schedules (pipeline_id, cron_expr) VALUES ($1, '0 0 * * *') RETURNING id",
            &[&pipeline.id],
        )
        .await
        .unwrap()
        .get(0);
    let slot = time::macros::datetime!(2026-01-01 00:00:00 UTC);
    let new = runs::NewRun {
        pipeline_id: pipeline.id,
        trigger: "schedule:0 0 * * *".to_owned(),
        version_number: rat_domain::VersionNumber::parse(1).unwrap(),
        published_versions: fixtures::snapshot(&pipeline),
        schedule_id: Some(schedule.into()),
        trigger_id: None,
        scheduled_for: Some(slot),
    };
    let now = time::OffsetDateTime::now_utc();
    runs::create(&client, &new, now).await.unwrap();
    let err = runs::create(&client, &new, now).await.unwrap_err();
    assert!(
        matches!(&err, rat_dao::DaoError::Conflict { constraint } if constraint == "uq_runs_schedule_slot"),
        "{err:?}"
    );
    // The next slot is a different run.
    let next = runs::NewRun {
        scheduled_for: Some(slot + time::Duration::days(1)),
        ..new
    };
    runs::create(&client, &next, now).await.unwrap();
}
