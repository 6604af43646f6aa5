//! `rat-client` against the real api: the life of a run through the typed
//! client on both listeners (the REST API to create, write, publish and
//! start; the runner protocol to claim, fetch the pinned files, beat, log
//! and complete), and the error envelope arriving as a typed error.

use crate::common::TestApp;
use rat_client::{Error, PipelineAddress};
use rat_wire::namespaces::CreateNamespace;
use rat_wire::pipelines::CreatePipeline;
use rat_wire::runner::{ClaimBody, CompleteBody, HeartbeatBody, LogEntryBody, LogsBody};
use rat_wire::runs::CreateRun;
use rat_wire::versions::PublishBody;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

const API_KEY: &str = "client-test-key";
const RUNNER_TOKEN: &str = "client-test-runner-token";

/// An api with a key, and its runner listener with a token.
async fn app_with_runner_listener() -> TestApp {
    TestApp::builder()
        .api_key(API_KEY)
        .internal_listener(Some(RUNNER_TOKEN))
        .start()
        .await
}

#[tokio::test]
async fn a_run_lives_its_whole_life_through_the_typed_client() {
    let app = app_with_runner_listener().await;
    let client = app.client();
    let runner = app.runner_client();

    let namespace = client
        .create_namespace(&CreateNamespace {
            name: "sales".to_owned(),
            description: Some("typed".to_owned()),
        })
        .await
        .expect("namespace created");
    assert_eq!(namespace.name, "sales");
    let created = client
        .create_pipeline(&CreatePipeline {
            namespace: "sales".to_owned(),
            layer: "silver".to_owned(),
            name: "orders".to_owned(),
            pipeline_type: None,
            description: None,
            source: None,
            unique_key: None,
        })
        .await
        .expect("pipeline created");
    assert_eq!(created.s3_path, "sales/pipelines/silver/orders/");
    let key = format!("{}pipeline.sql", created.s3_path);
    let written = client.write_file(&key, "SELECT 42 AS answer").await.expect("written");
    assert_eq!(written.path, key);
    let orders = PipelineAddress::new("sales", "silver", "orders");
    let published = client
        .publish(
            orders,
            &PublishBody {
                message: Some("first".to_owned()),
            },
        )
        .await
        .expect("published");
    assert_eq!(published.version, 1);
    assert_eq!(published.versions[&key], written.version_id);
    assert!(
        client
            .get_pipeline(orders)
            .await
            .expect("pipeline")
            .published_at
            .is_some()
    );

    let started = client
        .create_run(&CreateRun {
            namespace: "sales".to_owned(),
            layer: "silver".to_owned(),
            pipeline: "orders".to_owned(),
            trigger: None,
        })
        .await
        .expect("run created");
    assert_eq!(started.status, "pending");

    let claimed = runner
        .claim(&ClaimBody {
            runner_id: "typed-runner".to_owned(),
            max_runs: Some(5),
            lease_seconds: Some(60),
            plugins: None,
        })
        .await
        .expect("claimed");
    assert_eq!(claimed.runs.len(), 1);
    let run = &claimed.runs[0];
    assert_eq!(run.run_id, started.run_id);
    assert_eq!((run.pipeline.as_str(), run.version_number), ("orders", 1));
    let source = run
        .files
        .iter()
        .find(|f| f.path == "pipeline.sql")
        .expect("pinned source");
    // A presigned URL (moto): fetched without the token, at the pinned version.
    let fetched = runner.fetch_file(source).await.expect("fetched");
    assert_eq!(&fetched.body[..], b"SELECT 42 AS answer");
    assert_eq!(fetched.served_version.as_deref(), Some(source.version_id.as_str()));

    let beat = runner
        .heartbeat(
            run.run_id,
            &HeartbeatBody {
                runner_id: "typed-runner".to_owned(),
                lease_seconds: None,
                plugins: None,
            },
        )
        .await
        .expect("heartbeat");
    assert!(!beat.stop);
    runner
        .append_logs(
            run.run_id,
            &LogsBody {
                runner_id: "typed-runner".to_owned(),
                entries: vec![LogEntryBody {
                    timestamp: OffsetDateTime::now_utc().format(&Rfc3339).unwrap(),
                    level: "info".to_owned(),
                    message: "answered 42".to_owned(),
                }],
            },
        )
        .await
        .expect("logged");
    let done = runner
        .complete(
            run.run_id,
            &CompleteBody {
                duration_ms: Some(12),
                rows_written: Some(1),
                ..CompleteBody::new("typed-runner", "success")
            },
        )
        .await
        .expect("completed");
    assert_eq!(done.status, "success");

    let seen = client.get_run(started.run_id).await.expect("run");
    assert_eq!((seen.status.as_str(), seen.rows_written), ("success", Some(1)));
    let logs = client.run_logs(started.run_id).await.expect("logs");
    assert_eq!(logs.status, "success");
    assert!(logs.logs.iter().any(|l| l.message == "answered 42"), "{logs:?}");
}

#[tokio::test]
async fn error_envelopes_arrive_as_typed_errors() {
    let app = app_with_runner_listener().await;
    let client = app.client();

    let missing = client.get_run(uuid::Uuid::new_v4()).await.expect_err("no such run");
    match &missing {
        Error::Api(e) => {
            assert_eq!(
                (e.status, e.code.as_str(), e.error_type.as_str()),
                (404, "NOT_FOUND", "NOT_FOUND")
            );
            assert!(!e.message.is_empty());
        }
        other => panic!("expected the envelope, got {other:?}"),
    }
    let twice = CreateNamespace {
        name: "twice".to_owned(),
        description: None,
    };
    client.create_namespace(&twice).await.expect("first");
    let again = client
        .create_namespace(&twice)
        .await
        .expect_err("a second is a conflict");
    assert_eq!((again.status(), again.code()), (Some(409), Some("ALREADY_EXISTS")));

    // A wrong token is the envelope's 401, on either listener.
    let stranger = rat_client::Builder::new(&app.base)
        .token("not-the-key".to_owned().into())
        .api()
        .unwrap();
    let refused = stranger.list_namespaces(Default::default()).await.expect_err("refused");
    assert_eq!((refused.status(), refused.code()), (Some(401), Some("UNAUTHENTICATED")));
    let wrong_runner = rat_client::Builder::new(app.internal_base.as_ref().unwrap())
        .token(API_KEY.to_owned().into())
        .runner()
        .unwrap();
    let refused = wrong_runner
        .claim(&ClaimBody {
            runner_id: "r".to_owned(),
            max_runs: None,
            lease_seconds: None,
            plugins: None,
        })
        .await
        .expect_err("the api key is no runner token");
    assert_eq!(refused.status(), Some(401));

    // Completing a run that does not exist is refused, as a typed error
    // carrying the status.
    let runner = app.runner_client();
    let refused = runner
        .complete(uuid::Uuid::new_v4(), &CompleteBody::new("r", "success"))
        .await
        .expect_err("not held");
    assert!(matches!(refused.status(), Some(404 | 409)), "{refused}");
}

#[tokio::test]
async fn schedules_and_triggers_round_trip_through_the_typed_client() {
    let app = TestApp::builder().api_key(API_KEY).start().await;
    app.pipeline("default", "silver", "orders").await;
    let client = app.client();

    let created = client
        .create_schedule(&rat_wire::schedules::CreateSchedule {
            namespace: "default".to_owned(),
            layer: "silver".to_owned(),
            pipeline: "orders".to_owned(),
            cron: "0 3 * * *".to_owned(),
            enabled: Some(false),
            timezone: Some("Europe/Paris".to_owned()),
        })
        .await
        .expect("schedule created");
    assert_eq!((created.cron.as_str(), created.enabled), ("0 3 * * *", false));
    let schedule = client.get_schedule(created.id).await.expect("schedule");
    assert_eq!(schedule.timezone, "Europe/Paris");
    assert_eq!(schedule.next_run_at, None, "a disabled schedule has no next slot");
    let enabled = client
        .update_schedule(
            created.id,
            &rat_wire::schedules::UpdateSchedule {
                enabled: Some(true),
                ..Default::default()
            },
        )
        .await
        .expect("enabled");
    assert!(enabled.enabled && enabled.next_run_at.is_some(), "{enabled:?}");
    let listed = client
        .list_schedules(&rat_wire::schedules::ScheduleQuery {
            pipeline: Some("orders".to_owned()),
            ..Default::default()
        })
        .await
        .expect("listed");
    assert_eq!(listed.total, 1);
    client.delete_schedule(created.id).await.expect("deleted");
    let gone = client.get_schedule(created.id).await.expect_err("deleted");
    assert_eq!(gone.status(), Some(404));

    let orders = PipelineAddress::new("default", "silver", "orders");
    let trigger = client
        .create_trigger(
            orders,
            &rat_wire::triggers::CreateTrigger {
                trigger_type: "cron".to_owned(),
                config: Some(serde_json::json!({"cron_expr": "*/5 * * * *"})),
                enabled: Some(true),
                cooldown_seconds: None,
            },
        )
        .await
        .expect("trigger created");
    assert_eq!(trigger.trigger_type, "cron");
    let listed = client.list_triggers(orders, Default::default()).await.expect("listed");
    assert_eq!(listed.triggers.len(), 1);
    client.delete_trigger(orders, trigger.id).await.expect("deleted");
    assert_eq!(client.list_triggers(orders, Default::default()).await.unwrap().total, 0);
}
