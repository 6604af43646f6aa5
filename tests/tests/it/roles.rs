//! Least privilege, end to end: a schema's owner role migrates it, and the
//! real `rat-api`, `rat-scheduler` and `rat-reaper` run as its app role with
//! `--no-migrate`; Postgres refuses that role any change of the schema; a
//! service refuses a schema older than it needs and runs on a newer one.

use std::time::Duration;

use rat_testkit::TestDatabase;

use crate::tenancy::{self, Api, Tenant, count, spawn, stop, wait_until};

/// Runs `sql` as `client` and returns the refusal's SQLSTATE and message.
async fn refused(client: &tokio_postgres::Client, sql: &str) -> (String, String) {
    let error = client
        .batch_execute(sql)
        .await
        .expect_err(&format!("{sql} should be refused to the app role"));
    let db = error.as_db_error().unwrap_or_else(|| panic!("{sql}: {error:?}"));
    (db.code().code().to_owned(), db.message().to_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_app_role_runs_every_service_and_may_change_no_schema() {
    let db = TestDatabase::new().await;
    let tenant = tenancy::provision_tenant(&db, "roles_app").await;
    let dir = tests::scratch_dir("rat-roles");
    let store = dir.join("store");

    // Migrations as the owner, the way operators run them: the binary's
    // `migrate` subcommand with RAT_MIGRATE_DATABASE_URL.
    let migrate_log = dir.join("migrate.log");
    let mut migrate = spawn("rat-api", &["migrate"], &tenant.env(), &migrate_log);
    let status = migrate.wait().await.unwrap();
    assert!(status.success(), "migrate: {status}\n{}", tests::tail(&migrate_log, 30));
    let owned: i64 = tenancy::admin(&db)
        .await
        .query_one(
            "SELECT count(*) FROM pg_tables WHERE schemaname = $1 AND tableowner = $2",
            &[&tenant.schema.as_str(), &tenant.owner.as_str()],
        )
        .await
        .unwrap()
        .get(0);
    assert!(owned > 10, "the owner owns the migrated tables ({owned})");

    // The app role: in the schema by its own settings, with a statement timeout.
    let app = tenant.app_client().await;
    let row = app
        .query_one(
            "SELECT current_schema()::text, current_setting('statement_timeout')",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, String>(0), tenant.schema.as_str());
    assert_eq!(row.get::<_, String>(1), "1min");

    // rat-api as the app role: namespace, pipeline, a file, publish, run.
    let api = Api::start(&tenant, &store, dir.join("api.log")).await;
    let namespace = rat_wire::namespaces::CreateNamespace {
        name: "sales".to_owned(),
        description: None,
    };
    if let Err(e) = api.client.create_namespace(&namespace).await {
        api.failed("creating a namespace", e);
    }
    api.published_pipeline("orders").await;
    let run = rat_wire::runs::CreateRun {
        namespace: "default".to_owned(),
        layer: "bronze".to_owned(),
        pipeline: "orders".to_owned(),
        trigger: None,
    };
    let run = match api.client.create_run(&run).await {
        Ok(run) => run,
        Err(e) => api.failed("starting a run", e),
    };
    match api.client.get_run(run.run_id).await {
        Ok(read) => assert_eq!(read.status, "pending"),
        Err(e) => api.failed("reading the run", e),
    }

    // rat-scheduler as the app role: an every-second schedule fires (it
    // hears of the new schedule through LISTEN/NOTIFY).
    let scheduler_log = dir.join("scheduler.log");
    let mut env = tenant.env();
    env.push(("RAT_SCHEDULER_MAX_SLEEP_SECS", "1".to_owned()));
    let scheduler = spawn("rat-scheduler", &["--no-migrate"], &env, &scheduler_log);
    api.published_pipeline("ticking").await;
    api.schedule_every_second("ticking").await;
    wait_until(
        "a scheduled run in the tenant's schema",
        Duration::from_secs(60),
        &[&scheduler_log],
        || async { count(&app, "SELECT count(*) FROM runs WHERE schedule_id IS NOT NULL").await > 0 },
    )
    .await;

    // rat-reaper as the app role: its first pass at start, then one asked
    // for through the api (both under its session advisory lock).
    let reaper_log = dir.join("reaper.log");
    let mut env = tenant.env();
    env.push(("RAT_STORE", format!("fs:{}", store.display())));
    env.push(("RAT_REAPER_POLL_SECS", "1".to_owned()));
    let reaper = spawn("rat-reaper", &["--no-migrate"], &env, &reaper_log);
    let last_run = "SELECT count(*) FROM reaper_status WHERE last_run_at IS NOT NULL";
    wait_until(
        "the reaper's first pass",
        Duration::from_secs(60),
        &[&reaper_log],
        || async { count(&app, last_run).await > 0 },
    )
    .await;
    let before: time::OffsetDateTime = app
        .query_one("SELECT last_run_at FROM reaper_status WHERE id = 1", &[])
        .await
        .unwrap()
        .get(0);
    api.request_reaper_pass().await;
    wait_until(
        "the requested pass",
        Duration::from_secs(60),
        &[&reaper_log],
        || async {
            let at: time::OffsetDateTime = app
                .query_one("SELECT last_run_at FROM reaper_status WHERE id = 1", &[])
                .await
                .unwrap()
                .get(0);
            at > before
        },
    )
    .await;

    // No change of the schema: refused by Postgres.
    let (code, _) = refused(&app, "CREATE TABLE intruder (id int)").await;
    assert_eq!(code, "42501");
    let (code, message) = refused(&app, "ALTER TABLE runs ADD COLUMN intruder int").await;
    assert_eq!(code, "42501");
    assert!(message.contains("must be owner"), "{message}");
    let (code, message) = refused(&app, "DROP TABLE audit_log").await;
    assert_eq!(code, "42501");
    assert!(message.contains("must be owner"), "{message}");
    let (code, _) = refused(&app, "TRUNCATE audit_log").await;
    assert_eq!(code, "42501");
    let (code, _) = refused(&app, "CREATE INDEX intruder ON runs (status)").await;
    assert_eq!(code, "42501");
    let (code, _) = refused(&app, "INSERT INTO refinery_schema_history VALUES (999, 'x', 'x', 'x')").await;
    assert_eq!(code, "42501", "only the owner records migrations");
    let (code, _) = refused(&app, "CREATE SCHEMA intruder").await;
    assert_eq!(code, "42501");

    for (child, log) in [(scheduler, scheduler_log), (reaper, reaper_log)] {
        stop(child, &log).await;
    }
    stop(api.child, &api.log).await;
    drop(app);
    tenancy::drop_roles(&db, &tenant).await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn provisioning_twice_is_harmless_and_later_tables_are_granted() {
    let db = TestDatabase::new().await;
    let tenant = tenancy::provision_tenant(&db, "roles_again").await;
    tenancy::migrate(&tenant).await;
    // Again, with a new password for the app role: it is updated.
    let spec = rat_testkit::dao::provision::Provision {
        app: rat_testkit::dao::provision::RoleSpec {
            name: tenant.app.clone(),
            password: Some("changed".to_owned()),
        },
        ..rat_testkit::dao::provision::Provision::new(tenant.schema.clone(), tenant.owner.clone(), tenant.app.clone())
    };
    let report = rat_testkit::dao::provision::provision(&mut tenancy::admin(&db).await, &spec)
        .await
        .unwrap();
    assert!(!report.owner_created && !report.app_created && !report.schema_created);

    // A table a later migration adds (as the owner) is the app's to use,
    // through the owner's default privileges.
    let owner = tenant.owner_client().await;
    owner
        .batch_execute("CREATE TABLE later (id bigserial PRIMARY KEY, note text)")
        .await
        .unwrap();
    let app = tenant.app_client().await;
    app.batch_execute("INSERT INTO later (note) VALUES ('x'); UPDATE later SET note = 'y'; DELETE FROM later")
        .await
        .unwrap();
    let (code, _) = refused(&app, "TRUNCATE later").await;
    assert_eq!(code, "42501");
    let (code, _) = refused(&app, "INSERT INTO refinery_schema_history VALUES (999, 'x', 'x', 'x')").await;
    assert_eq!(code, "42501");
    drop((owner, app));
    tenancy::drop_roles(&db, &tenant).await;
}

/// The newest migration this build knows.
fn newest_version() -> i32 {
    rat_testkit::dao::embedded_migrations().last().unwrap().0
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_refuses_an_older_schema_and_runs_on_a_newer_one() {
    let db = TestDatabase::new().await;
    let tenant: Tenant = tenancy::provision_tenant(&db, "roles_versions").await;
    tenancy::migrate(&tenant).await;
    let dir = tests::scratch_dir("rat-roles-versions");
    let newest = newest_version();
    let owner = tenant.owner_client().await;

    // Older: the newest migration is not recorded.
    owner
        .execute("DELETE FROM refinery_schema_history WHERE version = $1", &[&newest])
        .await
        .unwrap();
    for binary in ["rat-scheduler", "rat-reaper", "rat-api"] {
        let log = dir.join(format!("{binary}-older.log"));
        let mut env = tenant.env();
        env.push(("RAT_STORE", format!("fs:{}", dir.join("store").display())));
        env.push(("RAT_LISTEN_ADDR", format!("127.0.0.1:{}", tests::free_port())));
        env.push(("RAT_INTERNAL_LISTEN_ADDR", format!("127.0.0.1:{}", tests::free_port())));
        let mut child = spawn(binary, &["--no-migrate"], &env, &log);
        let status = tokio::time::timeout(Duration::from_secs(30), child.wait())
            .await
            .unwrap_or_else(|_| panic!("{binary} kept running on an older schema:\n{}", tests::tail(&log, 20)))
            .unwrap();
        assert!(!status.success(), "{binary} started on an older schema");
        let stderr = tenancy::plain(&std::fs::read_to_string(&log).unwrap());
        assert!(
            stderr.contains(&format!("is at version {}", newest - 1))
                && stderr.contains(&format!("needs version {newest}"))
                && stderr.contains("migrate")
                && stderr.contains("RAT_MIGRATE_DATABASE_URL"),
            "{binary} does not say which version it needs and how to migrate:\n{stderr}"
        );
    }

    // Newer: a version this build does not know is recorded.
    owner
        .execute(
            "INSERT INTO refinery_schema_history (version, name, applied_on, checksum) VALUES ($1, 'from_the_future', '', '0'), ($2, 'restored', '', '0')",
            &[&(newest + 1), &newest],
        )
        .await
        .unwrap();
    let log = dir.join("rat-scheduler-newer.log");
    let scheduler = spawn("rat-scheduler", &["--no-migrate"], &tenant.env(), &log);
    assert!(
        rat_testkit::fixtures::wait_for_sessions(
            &db.client().await,
            "rat-scheduler-listener",
            1,
            Duration::from_secs(30)
        )
        .await,
        "rat-scheduler did not start on a newer schema:\n{}",
        tests::tail(&log, 30)
    );
    stop(scheduler, &log).await;
    let stderr = tenancy::plain(&std::fs::read_to_string(&log).unwrap());
    assert!(
        stderr.contains("migrated by a newer build") && stderr.contains(&format!("found={}", newest + 1)),
        "no warning of a newer schema:\n{stderr}"
    );
    drop(owner);
    tenancy::drop_roles(&db, &tenant).await;
    let _ = std::fs::remove_dir_all(&dir);
}

/// The trigram indexes of pipeline search (V24) in each tenant of `db`.
async fn search_indexes(admin: &tokio_postgres::Client, schema: &str) -> i64 {
    admin
        .query_one(
            "SELECT count(*) FROM pg_indexes WHERE schemaname = $1 AND tablename = 'pipelines' \
             AND indexdef LIKE '%gin_trgm_ops%'",
            &[&schema],
        )
        .await
        .unwrap()
        .get(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn search_is_indexed_when_provisioning_installed_pg_trgm_and_works_without() {
    let db = TestDatabase::empty().await;
    let admin = tenancy::admin(&db).await;

    // Migrated without the extension: the owner, not a superuser, may not
    // install it, and the migration builds no index instead of failing.
    let bare = tenancy::provision_tenant(&db, "search_bare").await;
    admin.batch_execute("DROP EXTENSION pg_trgm").await.unwrap();
    tenancy::migrate(&bare).await;
    assert_eq!(search_indexes(&admin, "search_bare").await, 0);
    let owner = bare.owner_client().await;
    owner
        .batch_execute(
            "INSERT INTO namespaces (name) VALUES ('ns'); \
             INSERT INTO pipelines (namespace, layer, name, s3_path) VALUES ('ns', 'silver', 'orders', 'ns/p/'); \
             INSERT INTO pipelines (namespace, layer, name, s3_path) \
             SELECT 'ns', 'bronze', 'p' || g, 'ns/p' || g || '/' FROM generate_series(1, 5000) g",
        )
        .await
        .unwrap();

    // Provisioning another tenant installs it, in its own schema, and that
    // tenant's migration indexes search.
    let indexed = tenancy::provision_tenant(&db, "search_on").await;
    let home: String = admin
        .query_one(
            "SELECT extnamespace::regnamespace::text FROM pg_extension WHERE extname = 'pg_trgm'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(home, "rat_extensions");
    tenancy::migrate(&indexed).await;
    assert_eq!(search_indexes(&admin, "search_on").await, 2);

    // The statements of docs/operations.md index the bare tenant later, as
    // its owner; its search answers the same, through the index (5,000
    // other pipelines make a scan the dearer plan).
    owner
        .batch_execute(
            "CREATE INDEX idx_pipelines_name_trgm ON pipelines \
                 USING gin (name_folded rat_extensions.gin_trgm_ops) WITH (fastupdate = off) WHERE deleted_at IS NULL; \
             CREATE INDEX idx_pipelines_description_trgm ON pipelines \
                 USING gin (description_folded rat_extensions.gin_trgm_ops) WITH (fastupdate = off) \
                 WHERE deleted_at IS NULL",
        )
        .await
        .unwrap();
    assert_eq!(search_indexes(&admin, "search_bare").await, 2);
    owner.batch_execute("ANALYZE pipelines").await.unwrap();
    let app = bare.app_client().await;
    // The api's own count of a search.
    let search = rat_testkit::dao::pipelines::count_statement(&rat_testkit::dao::pipelines::PipelineFilter {
        search: Some("RDER".to_owned()),
        ..Default::default()
    });
    let plan: String = app
        .query(&format!("EXPLAIN {search}"), &[&"%RDER%"])
        .await
        .unwrap()
        .iter()
        .map(|row| row.get::<_, String>(0))
        .collect::<Vec<_>>()
        .join("\n");
    assert!(plan.contains("idx_pipelines_name_trgm"), "{plan}");
    let found: i64 = app.query_one(search.as_str(), &[&"%RDER%"]).await.unwrap().get(0);
    assert_eq!(found, 1);
    drop((owner, app));
    tenancy::drop_roles(&db, &bare).await;
    tenancy::drop_roles(&db, &indexed).await;
}
