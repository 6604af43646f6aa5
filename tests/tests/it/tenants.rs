//! Schema per tenant, end to end: two tenants (`tenant_a`, `tenant_b`) in
//! one database, each with its own roles and its own real `rat-api`,
//! `rat-scheduler` and `rat-reaper`; rows, schedules, reaper requests and
//! notifications of one never reach the other; migrating one never waits
//! for the other; a schema name is validated before any use.

use std::time::Duration;

use rat_testkit::TestDatabase;
use rat_testkit::dao::MIGRATION_LOCK_KEY;
use rat_testkit::dao::listen::Listener;
use rat_testkit::dao::runs::LOG_CHANNEL;

use crate::tenancy::{self, Api, count, spawn, stop, wait_until};

/// `(last_run_at is set, run_requested_at is set)` of a tenant's reaper.
async fn reaper_state(client: &tokio_postgres::Client) -> (Option<time::OffsetDateTime>, bool) {
    let row = client
        .query_one(
            "SELECT last_run_at, run_requested_at IS NOT NULL FROM reaper_status WHERE id = 1",
            &[],
        )
        .await
        .unwrap();
    (row.get(0), row.get(1))
}

fn passes_in(log: &std::path::Path) -> usize {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .matches("pass started")
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_tenants_in_one_database_never_see_each_other() {
    let db = TestDatabase::new().await;
    let a = tenancy::provision_tenant(&db, "tenant_a").await;
    let b = tenancy::provision_tenant(&db, "tenant_b").await;
    tenancy::migrate(&a).await;
    tenancy::migrate(&b).await;
    let dir = tests::scratch_dir("rat-tenants");
    let (store_a, store_b) = (dir.join("store-a"), dir.join("store-b"));
    let (client_a, client_b) = (a.app_client().await, b.app_client().await);

    // Rows: a pipeline made through tenant_a's api is not tenant_b's.
    let api_a = Api::start(&a, &store_a, dir.join("api-a.log")).await;
    let api_b = Api::start(&b, &store_b, dir.join("api-b.log")).await;
    api_a.published_pipeline("only_a").await;
    api_b.published_pipeline("only_b").await;
    let (names_a, names_b) = (api_a.pipeline_names().await, api_b.pipeline_names().await);
    assert!(
        names_a.contains(&"only_a".to_owned()) && !names_a.contains(&"only_b".to_owned()),
        "{names_a:?}"
    );
    assert!(
        names_b.contains(&"only_b".to_owned()) && !names_b.contains(&"only_a".to_owned()),
        "{names_b:?}"
    );
    assert_eq!(api_b.status("/pipelines/default/bronze/only_a").await, 404);
    // Naming the other schema does not help: no USAGE on it.
    for (client, other) in [(&client_a, &b), (&client_b, &a)] {
        let error = client
            .query_one(
                &format!("SELECT count(*) FROM {}.pipelines", other.schema.quoted()),
                &[],
            )
            .await
            .expect_err("one tenant's app role read another's table");
        assert_eq!(
            error.code(),
            Some(&tokio_postgres::error::SqlState::INSUFFICIENT_PRIVILEGE),
            "{error:?}"
        );
    }

    // Notifications: a listener of tenant_b never hears tenant_a's channel.
    let mut listener_a = Listener::connect(&a.app_database(), "test-listener-a", &[LOG_CHANNEL])
        .await
        .unwrap();
    let mut listener_b = Listener::connect(&b.app_database(), "test-listener-b", &[LOG_CHANNEL])
        .await
        .unwrap();
    let sender = tenancy::admin(&db).await;
    for (tenant, payload) in [(&a, "for a"), (&b, "for b")] {
        sender
            .execute(
                "SELECT pg_notify($1, $2)",
                &[&tenant.schema.channel(LOG_CHANNEL), &payload],
            )
            .await
            .unwrap();
    }
    // Sent in this order from one session: had tenant_a's reached
    // listener_b, it would come first.
    let heard_b = tokio::time::timeout(Duration::from_secs(10), listener_b.recv())
        .await
        .expect("listener_b hears its own tenant")
        .unwrap();
    assert_eq!(
        (heard_b.channel.as_str(), heard_b.payload.as_str()),
        (LOG_CHANNEL, "for b")
    );
    let heard_a = tokio::time::timeout(Duration::from_secs(10), listener_a.recv())
        .await
        .expect("listener_a hears its own tenant")
        .unwrap();
    assert_eq!(heard_a.payload, "for a");
    assert_eq!(listener_a.drain() + listener_b.drain(), 0, "nothing else was heard");

    // Schedules: both tenants get an every-second schedule, due at once;
    // only tenant_a's scheduler runs. When it has fired tenant_a's, it has
    // looked at everything due it can see: tenant_b's has not fired.
    for (api, pipeline) in [(&api_a, "only_a"), (&api_b, "only_b")] {
        api.schedule_every_second(pipeline).await;
    }
    let mut scheduler_env_a = a.env();
    scheduler_env_a.push(("RAT_SCHEDULER_MAX_SLEEP_SECS", "1".to_owned()));
    let mut scheduler_env_b = b.env();
    scheduler_env_b.push(("RAT_SCHEDULER_MAX_SLEEP_SECS", "1".to_owned()));
    let (scheduler_log_a, scheduler_log_b) = (dir.join("scheduler-a.log"), dir.join("scheduler-b.log"));
    let scheduler_a = spawn("rat-scheduler", &["--no-migrate"], &scheduler_env_a, &scheduler_log_a);
    let scheduled = "SELECT count(*) FROM runs WHERE schedule_id IS NOT NULL";
    wait_until(
        "tenant_a's schedule fires",
        Duration::from_secs(60),
        &[&scheduler_log_a],
        || async { count(&client_a, scheduled).await > 0 },
    )
    .await;
    assert_eq!(
        count(&client_b, scheduled).await,
        0,
        "tenant_a's scheduler fired tenant_b's schedule"
    );
    let scheduler_b = spawn("rat-scheduler", &["--no-migrate"], &scheduler_env_b, &scheduler_log_b);
    wait_until(
        "tenant_b's schedule fires",
        Duration::from_secs(60),
        &[&scheduler_log_b],
        || async { count(&client_b, scheduled).await > 0 },
    )
    .await;
    // Every scheduled run of each schema is of its own schedules.
    for client in [&client_a, &client_b] {
        assert_eq!(
            count(
                client,
                "SELECT count(*) FROM runs r WHERE schedule_id IS NOT NULL \
                 AND NOT EXISTS (SELECT 1 FROM schedules s WHERE s.id = r.schedule_id)"
            )
            .await,
            0
        );
    }

    // Reapers: each makes its first pass; a pass asked of tenant_a's api is
    // run by tenant_a's reaper only.
    let (reaper_log_a, reaper_log_b) = (dir.join("reaper-a.log"), dir.join("reaper-b.log"));
    let mut reapers = Vec::new();
    for (tenant, store, log) in [(&a, &store_a, &reaper_log_a), (&b, &store_b, &reaper_log_b)] {
        let mut env = tenant.env();
        env.push(("RAT_STORE", format!("fs:{}", store.display())));
        env.push(("RAT_REAPER_POLL_SECS", "1".to_owned()));
        reapers.push(spawn("rat-reaper", &["--no-migrate"], &env, log));
    }
    for (client, log) in [(&client_a, &reaper_log_a), (&client_b, &reaper_log_b)] {
        wait_until("the reaper's first pass", Duration::from_secs(60), &[log], || async {
            reaper_state(client).await.0.is_some() && log_has_finished(log)
        })
        .await;
    }
    let (first_b, _) = reaper_state(&client_b).await;
    let (first_a, _) = reaper_state(&client_a).await;
    api_a.request_reaper_pass().await;
    assert!(
        reaper_state(&client_a).await.1,
        "the request is recorded in tenant_a's schema"
    );
    assert!(
        !reaper_state(&client_b).await.1,
        "the request was recorded in tenant_b's schema"
    );
    wait_until(
        "tenant_a's requested pass",
        Duration::from_secs(60),
        &[&reaper_log_a],
        || async { reaper_state(&client_a).await.0 > first_a },
    )
    .await;
    let (last_b, requested_b) = reaper_state(&client_b).await;
    assert_eq!(last_b, first_b, "tenant_b's reaper ran a pass nobody asked it for");
    assert!(!requested_b);
    assert_eq!(
        passes_in(&reaper_log_b),
        1,
        "tenant_b's reaper was woken:\n{}",
        tests::tail(&reaper_log_b, 20)
    );
    assert!(passes_in(&reaper_log_a) >= 2);

    for (child, log) in [
        (scheduler_a, scheduler_log_a),
        (scheduler_b, scheduler_log_b),
        (reapers.remove(0), reaper_log_a),
        (reapers.remove(0), reaper_log_b),
        (api_a.child, api_a.log),
        (api_b.child, api_b.log),
    ] {
        stop(child, &log).await;
    }
    drop((client_a, client_b, listener_a, listener_b));
    tenancy::drop_roles(&db, &a).await;
    tenancy::drop_roles(&db, &b).await;
    let _ = std::fs::remove_dir_all(&dir);
}

fn log_has_finished(log: &std::path::Path) -> bool {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .contains("pass finished")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrating_one_tenant_never_waits_for_another() {
    let db = TestDatabase::new().await;
    let a = tenancy::provision_tenant(&db, "tenant_a").await;
    let b = tenancy::provision_tenant(&db, "tenant_b").await;
    tenancy::migrate(&a).await;

    // tenant_a's migration lock, held by another session (a migration of
    // tenant_a under way).
    let holder = tenancy::admin(&db).await;
    holder
        .execute(
            "SELECT pg_advisory_lock(hashtextextended($2::text || '/' || $1::int8::text, 0))",
            &[&MIGRATION_LOCK_KEY, &a.schema.as_str()],
        )
        .await
        .unwrap();
    // A second migration of tenant_a waits for it…
    let waiting = tokio::spawn({
        let database = a.owner_database();
        async move { rat_testkit::dao::migrate(&database).await }
    });
    let admin = tenancy::admin(&db).await;
    wait_until(
        "tenant_a's migration waits for its lock",
        Duration::from_secs(30),
        &[],
        || async {
            count(
                &admin,
                "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'rat-migrate' \
             AND wait_event_type = 'Lock' AND wait_event = 'advisory' AND datname = current_database()",
            )
            .await
                == 1
        },
    )
    .await;
    // …while tenant_b is migrated from nothing.
    let report = rat_testkit::dao::migrate(&b.owner_database())
        .await
        .expect("tenant_b migrates while tenant_a's lock is held");
    assert_eq!(report.applied.len(), rat_testkit::dao::embedded_migrations().len());
    assert!(!waiting.is_finished(), "tenant_a's migration did not wait for its lock");
    holder.batch_execute("SELECT pg_advisory_unlock_all()").await.unwrap();
    let report = waiting
        .await
        .unwrap()
        .expect("tenant_a's migration ends once the lock is free");
    assert!(report.applied.is_empty());
    drop((holder, admin));
    tenancy::drop_roles(&db, &a).await;
    tenancy::drop_roles(&db, &b).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalid_schema_name_stops_every_binary_before_any_use() {
    let db = TestDatabase::new().await;
    let dir = tests::scratch_dir("rat-tenants-invalid");
    for binary in ["rat-api", "rat-scheduler", "rat-reaper"] {
        for args in [&[][..], &["--no-migrate"][..], &["migrate"][..]] {
            let log = dir.join(format!("{binary}.log"));
            let _ = std::fs::remove_file(&log);
            let env = vec![
                ("RAT_DATABASE_URL", db.url().to_owned()),
                ("RAT_DB_SCHEMA", "x;drop".to_owned()),
                ("RAT_STORE", format!("fs:{}", dir.join("store").display())),
            ];
            let mut child = spawn(binary, args, &env, &log);
            let status = tokio::time::timeout(Duration::from_secs(30), child.wait())
                .await
                .unwrap_or_else(|_| panic!("{binary} {args:?} kept running with RAT_DB_SCHEMA=x;drop"))
                .unwrap();
            assert!(!status.success(), "{binary} {args:?} accepted RAT_DB_SCHEMA=x;drop");
            let stderr = std::fs::read_to_string(&log).unwrap();
            assert!(
                stderr.contains("RAT_DB_SCHEMA") && stderr.contains("schema name \"x;drop\""),
                "{binary} {args:?} does not say what is wrong:\n{stderr}"
            );
        }
    }
    let none: i64 = tenancy::admin(&db)
        .await
        .query_one("SELECT count(*) FROM pg_namespace WHERE nspname LIKE 'x%'", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(none, 0);
    let _ = std::fs::remove_dir_all(&dir);
}
