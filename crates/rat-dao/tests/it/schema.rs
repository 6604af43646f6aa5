//! The migrated schema matches the seed: all 19 tables with every column,
//! our four added tables (run_logs, personal_access_tokens, runner_plugins,
//! failed_merges),
//! the seed's indexes (partial and GIN ones included), constraints and seed
//! rows, plus the documented deviations (docs/schema.md).

use std::collections::{BTreeMap, BTreeSet};

use rat_testkit::TestDatabase;

/// `table: column type [null]` for every seed column (and our additions, marked).
const EXPECTED_COLUMNS: &str = "
namespaces: id uuid | name varchar(63) | description text | created_at timestamptz | created_by varchar(255) null
pipelines: id uuid | namespace varchar(63) | layer varchar(10) | name varchar(255) | type varchar(10) | s3_path varchar(1024) \
  | description text null | owner varchar(255) null | published_at timestamptz null | published_versions jsonb \
  | draft_dirty boolean | max_versions integer | retention_config jsonb null | created_at timestamptz \
  | updated_at timestamptz | deleted_at timestamptz null | deleted_by varchar(255) null | deleted_state jsonb null \
  | name_folded text null | description_folded text null
runs: id uuid | pipeline_id uuid | status varchar(20) | trigger varchar(512) | started_at timestamptz null \
  | finished_at timestamptz null | duration_ms integer null | rows_written bigint null | error text null \
  | logs_s3_path varchar(1024) null | logs jsonb null | phase_profiles jsonb null | created_at timestamptz \
  | schedule_id uuid null | trigger_id uuid null | scheduled_for timestamptz null | version_number integer \
  | published_versions jsonb | runner_id varchar(255) null | lease_expires_at timestamptz null | heartbeat_at timestamptz null
schedules: id uuid | pipeline_id uuid | cron_expr varchar(100) | enabled boolean | last_run_id uuid null \
  | last_run_at timestamptz null | next_run_at timestamptz null | created_at timestamptz | updated_at timestamptz \
  | timezone varchar(64)
quality_tests: id uuid | pipeline_id uuid | name varchar(255) | description text null | severity varchar(10) \
  | s3_path varchar(1024) | created_at timestamptz
quality_results: id uuid | test_id uuid | run_id uuid null | status varchar(10) | value numeric null \
  | expected numeric null | duration_ms integer null | ran_at timestamptz
pipeline_triggers: id uuid | pipeline_id uuid | type varchar(50) | config jsonb | enabled boolean \
  | cooldown_seconds integer | last_triggered_at timestamptz null | last_run_id uuid null | created_at timestamptz \
  | updated_at timestamptz | next_fire_at timestamptz null
pipeline_versions: id uuid | pipeline_id uuid | version_number integer | message text | published_versions jsonb \
  | created_at timestamptz
table_metadata: id uuid | namespace varchar(63) | layer varchar(10) | name varchar(255) | description text \
  | owner varchar(255) null | column_descriptions jsonb | created_at timestamptz | updated_at timestamptz
landing_zones: id uuid | namespace varchar(63) | name varchar(255) | description text | owner varchar(255) null \
  | expected_schema text | processed_max_age_days integer null | auto_purge boolean | created_at timestamptz \
  | updated_at timestamptz
landing_files: id uuid | zone_id uuid | filename varchar(1024) | s3_path varchar(1024) | size_bytes bigint \
  | content_type varchar(128) | uploaded_by varchar(255) null | uploaded_at timestamptz \
  | s3_version_id varchar(1024) null
ownership: id uuid | object_type varchar(20) | object_id uuid | owner varchar(255) | created_at timestamptz
shares: id uuid | object_type varchar(20) | object_id uuid | shared_with varchar(255) | access_level varchar(10) \
  | granted_by varchar(255) | granted_at timestamptz
projects: id uuid | name varchar(255) | description text null | created_by varchar(255) null | created_at timestamptz
project_members: project_id uuid | object_type varchar(20) | object_id uuid | added_at timestamptz
plugins: name varchar(63) | slot varchar(20) | image varchar(500) | status varchar(20) | config jsonb null \
  | last_health timestamptz null | created_at timestamptz
audit_log: id uuid | actor varchar(255) | action varchar(100) | object_type varchar(20) null | object_id uuid null \
  | details jsonb null | timestamp timestamptz
platform_settings: key varchar(63) | value jsonb | updated_at timestamptz
run_logs: id bigint | run_id uuid | timestamp timestamptz | level varchar(10) | message text
personal_access_tokens: id uuid | user_name varchar(255) | name varchar(100) | token_hash bytea | roles ARRAY \
  | created_at timestamptz | expires_at timestamptz null | last_used_at timestamptz null | revoked_at timestamptz null
reaper_status: id integer | last_run_at timestamptz null | runs_pruned integer | logs_pruned integer \
  | quality_pruned integer | pipelines_purged integer | runs_failed integer | branches_cleaned integer \
  | lz_files_cleaned integer | audit_pruned integer | updated_at timestamptz | run_requested_at timestamptz null \
  | last_pass_runs_pruned bigint | last_pass_logs_pruned bigint | last_pass_quality_pruned bigint \
  | last_pass_pipelines_purged bigint | last_pass_runs_failed bigint | last_pass_branches_cleaned bigint \
  | last_pass_lz_files_cleaned bigint | last_pass_audit_pruned bigint
runner_plugins: runner_id varchar(255) | plugins jsonb | reported_at timestamptz
failed_merges: id uuid | run_id varchar(255) | branch_name varchar(255) | source_hash varchar(255) null \
  | target_hash varchar(255) null | error_kind varchar(255) | error_message text | created_at timestamptz
access_generation: id boolean | generation bigint | bumped_by xid8 null
run_count_deltas: id bigint | pipeline_id uuid | status text | delta bigint
run_counts: pipeline_id uuid | status text | n bigint
run_totals: status text | n bigint
";

fn expected_columns() -> BTreeMap<String, BTreeSet<String>> {
    let mut tables = BTreeMap::new();
    for line in EXPECTED_COLUMNS.lines().filter(|l| !l.trim().is_empty()) {
        let (table, columns) = line.split_once(':').unwrap();
        let set: BTreeSet<String> = columns
            .split('|')
            .map(|c| c.split_whitespace().collect::<Vec<_>>().join(" "))
            .collect();
        tables.insert(table.trim().to_owned(), set);
    }
    tables
}

async fn one_column(client: &tokio_postgres::Client, sql: &str) -> BTreeSet<String> {
    client.query(sql, &[]).await.unwrap().iter().map(|r| r.get(0)).collect()
}

#[tokio::test]
async fn all_19_tables_have_the_seed_columns() {
    let db = TestDatabase::new().await;
    let client = db.client().await;
    let rows = client
        .query(
            "SELECT c.table_name::text,
                    c.column_name::text || ' ' ||
                    CASE c.data_type
                        WHEN 'character varying' THEN 'varchar(' || c.character_maximum_length || ')'
                        WHEN 'timestamp with time zone' THEN 'timestamptz'
                        ELSE c.data_type END ||
                    CASE WHEN c.is_nullable = 'YES' THEN ' null' ELSE '' END
             FROM information_schema.columns c
             JOIN information_schema.tables t USING (table_schema, table_name)
             WHERE c.table_schema = 'public' AND t.table_type = 'BASE TABLE'
               AND c.table_name <> 'refinery_schema_history'",
            &[],
        )
        .await
        .unwrap();
    let mut actual: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for row in rows {
        actual.entry(row.get(0)).or_default().insert(row.get(1));
    }
    let expected = expected_columns();
    assert_eq!(expected.len(), 27);
    assert_eq!(
        actual.keys().collect::<Vec<_>>(),
        expected.keys().collect::<Vec<_>>(),
        "the schema has exactly the 19 tables of the seed, run_logs, personal_access_tokens, runner_plugins, \
         failed_merges, access_generation and the run counts (docs/schema.md)"
    );
    for (table, columns) in &expected {
        assert_eq!(&actual[table], columns, "columns of {table}");
    }
}

#[tokio::test]
async fn seed_indexes_exist_with_their_shape() {
    let db = TestDatabase::new().await;
    let client = db.client().await;
    let rows = client
        .query(
            "SELECT indexname::text, indexdef FROM pg_indexes WHERE schemaname = 'public'",
            &[],
        )
        .await
        .unwrap();
    let indexes: BTreeMap<String, String> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
    let expect = |name: &str, fragments: &[&str]| {
        let def = indexes.get(name).unwrap_or_else(|| panic!("index {name} is missing"));
        for fragment in fragments {
            assert!(def.contains(fragment), "{name}: {def} lacks {fragment}");
        }
    };
    expect("idx_pipelines_namespace", &["(namespace)"]);
    expect("idx_pipelines_layer", &["(namespace, layer)"]);
    expect("idx_pipelines_owner", &["(owner)", "WHERE (owner IS NOT NULL)"]);
    expect(
        "uq_pipelines_namespace_layer_name",
        &["UNIQUE", "(namespace, layer, name)", "WHERE (deleted_at IS NULL)"],
    );
    // The seed's key columns, plus `id` as a documented last key.
    expect("idx_runs_pipeline", &["(pipeline_id, created_at DESC, id DESC)"]);
    expect("idx_runs_status", &["(status)", "WHERE", "pending", "running"]);
    expect("idx_schedules_next_run", &["(next_run_at)", "WHERE (enabled = true)"]);
    expect("idx_quality_results_test", &["(test_id, ran_at DESC)"]);
    expect("idx_pipeline_triggers_pipeline", &["(pipeline_id)"]);
    expect("idx_pipeline_triggers_type", &["(type)", "WHERE (enabled = true)"]);
    expect(
        "idx_pipeline_triggers_config",
        &["USING gin (config jsonb_path_ops)", "WHERE (enabled = true)"],
    );
    expect(
        "idx_pipeline_versions_pipeline",
        &["(pipeline_id, version_number DESC)"],
    );
    expect("idx_landing_files_zone", &["(zone_id, uploaded_at DESC, id DESC)"]);
    expect("idx_audit_log_actor", &["(actor, \"timestamp\" DESC, id DESC)"]);
    expect("idx_audit_log_action", &["(action, \"timestamp\" DESC, id DESC)"]);
    expect("idx_audit_log_time", &["(\"timestamp\" DESC, id DESC)"]);
    // Seed UNIQUE constraints (as constraint indexes).
    for (name, columns) in [
        ("uq_namespaces_name", "(name)"),
        ("uq_quality_tests_pipeline_name", "(pipeline_id, name)"),
        ("uq_pipeline_versions_pipeline_version", "(pipeline_id, version_number)"),
        ("uq_table_metadata_namespace_layer_name", "(namespace, layer, name)"),
        ("uq_landing_zones_namespace_name", "(namespace, name)"),
        ("uq_ownership_object", "(object_type, object_id)"),
        ("uq_shares_object_shared_with", "(object_type, object_id, shared_with)"),
        ("uq_projects_name", "(name)"),
        ("pk_project_members", "(project_id, object_type, object_id)"),
        ("uq_runs_schedule_slot", "(schedule_id, scheduled_for)"),
        ("uq_runs_trigger_slot", "(trigger_id, scheduled_for)"),
    ] {
        expect(name, &["UNIQUE", columns]);
    }
}

#[tokio::test]
async fn every_foreign_key_states_its_delete_behaviour() {
    let db = TestDatabase::new().await;
    let client = db.client().await;
    let rows = client
        .query(
            "SELECT conname::text, confdeltype::text FROM pg_constraint WHERE contype = 'f' ORDER BY conname",
            &[],
        )
        .await
        .unwrap();
    let actual: BTreeMap<String, String> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
    // c = CASCADE, n = SET NULL. The four references to a run are kept by
    // triggers instead (V26, tests in run_references.rs).
    let expected: BTreeMap<String, String> = [
        ("fk_landing_files_zone", "c"),
        ("fk_landing_zones_namespace", "c"),
        ("fk_pipeline_triggers_pipeline", "c"),
        ("fk_pipeline_versions_pipeline", "c"),
        ("fk_pipelines_namespace", "c"),
        ("fk_project_members_project", "c"),
        ("fk_quality_results_test", "c"),
        ("fk_quality_tests_pipeline", "c"),
        ("fk_runs_pipeline", "c"),
        ("fk_runs_schedule", "n"),
        ("fk_runs_trigger", "n"),
        ("fk_schedules_pipeline", "c"),
    ]
    .into_iter()
    .map(|(a, b)| (a.to_owned(), b.to_owned()))
    .collect();
    assert_eq!(actual, expected);
}

#[tokio::test]
async fn every_updated_at_column_has_its_trigger() {
    let db = TestDatabase::new().await;
    let client = db.client().await;
    let with_column = one_column(
        &client,
        "SELECT table_name::text FROM information_schema.columns
         WHERE table_schema = 'public' AND column_name = 'updated_at'",
    )
    .await;
    let with_trigger = one_column(
        &client,
        "SELECT c.relname::text FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid
         JOIN pg_proc p ON p.oid = t.tgfoid
         WHERE p.proname = 'set_updated_at' AND NOT t.tgisinternal",
    )
    .await;
    assert_eq!(with_column.len(), 7);
    assert_eq!(with_column, with_trigger);
}

#[tokio::test]
async fn seed_rows_are_present() {
    let db = TestDatabase::new().await;
    let client = db.client().await;
    let namespaces = one_column(&client, "SELECT name::text FROM namespaces").await;
    assert_eq!(namespaces, BTreeSet::from(["default".to_owned()]));
    let retention: serde_json::Value = client
        .query_one("SELECT value FROM platform_settings WHERE key = 'retention'", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(retention, rat_domain::RetentionSettings::default().to_json());
    let flags: serde_json::Value = client
        .query_one("SELECT value FROM platform_settings WHERE key = 'feature_flags'", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(flags, rat_domain::FeatureFlags::default().to_json());
    let reaper = client
        .query_one(
            "SELECT id, runs_pruned, audit_pruned, last_run_at IS NULL FROM reaper_status",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(
        (
            reaper.get::<_, i32>(0),
            reaper.get::<_, i32>(1),
            reaper.get::<_, i32>(2)
        ),
        (1, 0, 0)
    );
    assert!(reaper.get::<_, bool>(3));
}

#[tokio::test]
async fn every_foreign_key_maps_to_a_named_entity() {
    let db = TestDatabase::new().await;
    let client = db.client().await;
    // Insert a row violating each foreign key on insert, and check the error
    // names the entity (not the generic fallback).
    let cases = [
        (
            "INSERT INTO pipelines (namespace, layer, name, s3_path) VALUES ('nope', 'gold', 'x', 'p/')",
            "namespace",
        ),
        (
            "INSERT INTO landing_zones (namespace, name) VALUES ('nope', 'z')",
            "namespace",
        ),
        (
            "INSERT INTO runs (pipeline_id, version_number, published_versions) VALUES (gen_random_uuid(), 1, '{}')",
            "pipeline",
        ),
        (
            "INSERT INTO schedules (pipeline_id, cron_expr) VALUES (gen_random_uuid(), '* * * * *')",
            "pipeline",
        ),
        (
            "INSERT INTO pipeline_triggers (pipeline_id, type) VALUES (gen_random_uuid(), 'webhook')",
            "pipeline",
        ),
        (
            "INSERT INTO pipeline_versions (pipeline_id, version_number) VALUES (gen_random_uuid(), 1)",
            "pipeline",
        ),
        (
            "INSERT INTO quality_tests (pipeline_id, name, s3_path) VALUES (gen_random_uuid(), 't', 'k')",
            "pipeline",
        ),
        (
            "INSERT INTO quality_results (test_id, status) VALUES (gen_random_uuid(), 'passed')",
            "quality test",
        ),
        (
            "INSERT INTO landing_files (zone_id, filename, s3_path) VALUES (gen_random_uuid(), 'f', 'k')",
            "landing zone",
        ),
        (
            "INSERT INTO project_members (project_id, object_type, object_id) VALUES (gen_random_uuid(), 'table', gen_random_uuid())",
            "project",
        ),
    ];
    for (sql, entity) in cases {
        let err = rat_dao::DaoError::from(client.execute(sql, &[]).await.unwrap_err());
        assert!(
            matches!(&err, rat_dao::DaoError::MissingReference { entity: e, .. } if *e == entity),
            "{sql}: {err:?}"
        );
    }
}
