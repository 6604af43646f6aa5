//! Ready-made rows for tests: a namespace, a pipeline, a published pipeline,
//! a run (each through the real repositories), and published pipelines with
//! schedules in bulk (set-based SQL), and the plan of a statement.

use rat_dao::{GenericClient, namespaces, pipelines, runs};
use rat_domain::{NamespaceName, Pipeline, PipelineRef, PipelineType, PublishedVersions, Run, trigger_label};
use time::OffsetDateTime;

/// A namespace called `name`, created unless it exists.
pub async fn namespace(client: &impl GenericClient, name: &str) -> NamespaceName {
    let name = NamespaceName::parse(name).expect("fixture namespace name");
    if !namespaces::exists(client, &name).await.expect("namespace lookup") {
        namespaces::create(client, &name, "", None)
            .await
            .expect("create fixture namespace");
    }
    name
}

/// A never-published SQL pipeline at `ns/layer/name` (namespace created if needed).
pub async fn pipeline(client: &impl GenericClient, ns: &str, layer: &str, name: &str) -> Pipeline {
    namespace(client, ns).await;
    let address = PipelineRef::parse(ns, layer, name).expect("fixture pipeline address");
    pipelines::create(
        client,
        &pipelines::NewPipeline {
            address,
            pipeline_type: PipelineType::Sql,
            description: String::new(),
            owner: None,
            max_versions: None,
        },
    )
    .await
    .expect("create fixture pipeline")
}

/// The snapshot fixtures pin: one source file and its config.
pub fn snapshot(pipeline: &Pipeline) -> PublishedVersions {
    PublishedVersions::from_pairs([
        (format!("{}pipeline.sql", pipeline.s3_path), "v-sql-1".to_owned()),
        (format!("{}config.yaml", pipeline.s3_path), "v-cfg-1".to_owned()),
    ])
    .expect("fixture snapshot")
}

/// A pipeline at `ns/layer/name` published with [`snapshot`].
pub async fn published_pipeline(client: &impl GenericClient, ns: &str, layer: &str, name: &str) -> Pipeline {
    let created = pipeline(client, ns, layer, name).await;
    pipelines::set_published(
        client,
        created.id,
        &snapshot(&created),
        OffsetDateTime::now_utc(),
        false,
    )
    .await
    .expect("publish fixture pipeline")
}

/// A pending manual run of `pipeline` executing version 1 of its snapshot.
pub async fn run(client: &impl GenericClient, pipeline: &Pipeline) -> Run {
    run_at(client, pipeline, OffsetDateTime::now_utc()).await
}

/// A pending manual run of `pipeline` created at `created_at`.
pub async fn run_at(client: &impl GenericClient, pipeline: &Pipeline, created_at: OffsetDateTime) -> Run {
    runs::create(
        client,
        &runs::NewRun {
            pipeline_id: pipeline.id,
            trigger: trigger_label::MANUAL.to_owned(),
            version_number: rat_domain::VersionNumber::FIRST,
            published_versions: snapshot(pipeline),
            schedule_id: None,
            trigger_id: None,
            scheduled_for: None,
        },
        created_at,
    )
    .await
    .expect("create fixture run")
}

/// `count` published pipelines `default/silver/p1…p{count}`, each with one
/// enabled schedule of `cron` whose first slot is `first_slot` (`None`: not
/// scheduled yet), created set-based in one statement (for volumes of
/// thousands), then `ANALYZE`d so the scheduler's plans see them.
pub async fn scheduled_pipelines(
    client: &impl GenericClient,
    count: i32,
    cron: &str,
    first_slot: Option<OffsetDateTime>,
) {
    client
        .execute(
            "WITH p AS ( \
                 INSERT INTO pipelines (namespace, layer, name, s3_path) \
                 SELECT 'default', 'silver', 'p' || g, 'default/pipelines/silver/p' || g || '/' \
                 FROM generate_series(1, $1::int) g RETURNING id, s3_path \
             ), v AS ( \
                 INSERT INTO pipeline_versions (pipeline_id, version_number, published_versions) \
                 SELECT id, 1, jsonb_build_object(s3_path || 'pipeline.sql', 'v1') FROM p RETURNING pipeline_id \
             ) \
             INSERT INTO schedules (pipeline_id, cron_expr, next_run_at) SELECT pipeline_id, $2, $3 FROM v",
            &[&count, &cron, &first_slot],
        )
        .await
        .expect("creating scheduled pipelines");
    client.batch_execute("ANALYZE").await.expect("analyze");
}

/// Waits until at least `count` sessions named `application_name` are
/// connected to the client's database (a started process has reached its
/// loop when its listener is connected); `false` after `within`.
pub async fn wait_for_sessions(
    client: &impl GenericClient,
    application_name: &str,
    count: i64,
    within: std::time::Duration,
) -> bool {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let row = client
            .query_one(
                "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1 AND datname = current_database()",
                &[&application_name],
            )
            .await
            .expect("reading pg_stat_activity");
        if row.get::<_, i64>(0) >= count {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

/// Waits until backend `pid` (a session's `pg_backend_pid()`) is blocked by
/// another session's lock, as `observer` sees it; panics after 5 s.
pub async fn wait_until_blocked(observer: &impl GenericClient, pid: i32) {
    for _ in 0..500 {
        let row = observer
            .query_one("SELECT cardinality(pg_blocking_pids($1)) > 0", &[&pid])
            .await
            .expect("reading the blocking pids");
        if row.get::<_, bool>(0) {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    panic!("backend {pid} never blocked");
}

/// The plan PostgreSQL chooses for `sql` with `params`, one plan line per
/// text line (`EXPLAIN` plans the statement without executing it).
pub async fn explain(
    client: &impl GenericClient,
    sql: &str,
    params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
) -> String {
    let rows = client
        .query(&format!("EXPLAIN {sql}"), params)
        .await
        .expect("explaining the statement");
    rows.iter()
        .map(|row| row.get::<_, String>(0))
        .collect::<Vec<_>>()
        .join("\n")
}
