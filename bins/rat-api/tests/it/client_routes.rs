//! `rat-client`'s methods for the rest of `/api/v1` (and the health routes)
//! against the real api: each method is called and its answer checked, so a
//! wrong path, method or shape fails here.

use crate::common::TestApp;
use rat_client::{Client, Page, PipelineAddress};
use rat_wire::pipelines::CreatePipeline;
use rat_wire::versions::PublishBody;
use serde_json::json;

const API_KEY: &str = "client-routes-key";

async fn app() -> TestApp {
    TestApp::builder().api_key(API_KEY).start().await
}

/// Creates `default/silver/{name}` with a query, published once; its id.
async fn published_pipeline(client: &Client, name: &str) -> uuid::Uuid {
    let created = client
        .create_pipeline(&CreatePipeline {
            namespace: "default".to_owned(),
            layer: "silver".to_owned(),
            name: name.to_owned(),
            pipeline_type: None,
            description: None,
            source: None,
            unique_key: None,
        })
        .await
        .expect("pipeline created");
    client
        .write_file(&format!("{}pipeline.sql", created.s3_path), "SELECT 1 AS one")
        .await
        .expect("written");
    client
        .publish(
            PipelineAddress::new("default", "silver", name),
            &PublishBody {
                message: Some("first".to_owned()),
            },
        )
        .await
        .expect("published");
    created.id
}

#[tokio::test]
async fn the_platform_routes_answer_through_the_typed_client() {
    let app = app().await;
    let client = app.client();

    assert_eq!(client.health().await.expect("health").status, "ok");
    assert_eq!(client.live().await.expect("live").status, "ok");
    let ready = client.ready().await.expect("ready");
    assert_eq!(
        (
            ready.status.as_str(),
            ready.checks.postgres.status.as_str(),
            ready.checks.s3.status.as_str()
        ),
        ("ready", "ok", "ok")
    );
    let metrics = client.metrics().await.expect("metrics");
    assert!(metrics.contains("# TYPE"), "{metrics}");

    let features = client.features().await.expect("features");
    assert_eq!(features.edition, "community");
    assert!(features.landing_zones && features.quality_tests && features.audit_log);
    assert!(
        client
            .list_plugins(&Default::default())
            .await
            .expect("plugins")
            .is_empty()
    );
    assert!(client.runner_plugins().await.expect("runner plugins").is_empty());
    let unknown = client.delete_plugin("nope").await.expect_err("no such plugin");
    assert_eq!(unknown.status(), Some(404), "{unknown}");

    let me = client.me().await.expect("me");
    assert!(me.is_admin, "{me:?}");
    // Personal tokens are for signed-in users: the operator's key gets the
    // envelope, typed (the multi-user path is in `oidc`).
    let refused = client
        .create_token(&rat_wire::me::CreateToken {
            name: "ci".to_owned(),
            expires_in_days: None,
        })
        .await
        .expect_err("not for the operator");
    assert_eq!(
        (refused.status(), refused.code()),
        (Some(409), Some("FAILED_PRECONDITION")),
        "{refused}"
    );
}

#[tokio::test]
async fn audit_retention_and_the_reaper_answer_through_the_typed_client() {
    let app = app().await;
    let client = app.client();
    let id = published_pipeline(&client, "orders").await;
    let orders = PipelineAddress::new("default", "silver", "orders");

    let audit = client
        .list_audit(&rat_wire::audit::AuditQuery {
            action: Some("pipeline.create".to_owned()),
            ..Default::default()
        })
        .await
        .expect("audit");
    assert_eq!(audit.total, 1, "{audit:?}");
    assert_eq!(audit.entries[0].object_id, Some(id));

    let before = client.retention_config().await.expect("config").config;
    let changed = client
        .update_retention_config(&json!({"runs_max_age_days": before.runs_max_age_days + 1}))
        .await
        .expect("changed")
        .config;
    assert_eq!(changed.runs_max_age_days, before.runs_max_age_days + 1);
    assert_eq!(changed.logs_max_age_days, before.logs_max_age_days);
    let status = client.retention_status().await.expect("status");
    assert_eq!(status.run_requested_at, None);
    let asked = client.request_reaper_pass().await.expect("pass requested");
    assert!(asked.run_requested_at.is_some(), "{asked:?}");
    assert_eq!(
        client.list_failed_merges(Page::default()).await.expect("merges").total,
        0
    );

    let retention = client.pipeline_retention(orders).await.expect("retention");
    assert_eq!(retention.overrides, None);
    let overridden = client
        .set_pipeline_retention(orders, &json!({"runs_max_per_pipeline": 7}))
        .await
        .expect("overridden");
    assert_eq!(overridden.effective.runs_max_per_pipeline, 7);
    assert_eq!(overridden.overrides, Some(json!({"runs_max_per_pipeline": 7})));
}

#[tokio::test]
async fn catalog_routes_answer_through_the_typed_client() {
    let app = app().await;
    let client = app.client();
    let id = published_pipeline(&client, "orders").await;
    let orders = PipelineAddress::new("default", "silver", "orders");

    client
        .update_namespace(
            "default",
            &rat_wire::namespaces::UpdateNamespace {
                description: Some("typed".to_owned()),
            },
        )
        .await
        .expect("namespace updated");
    let listed = client.list_namespaces(Page::default()).await.unwrap();
    assert!(
        listed
            .namespaces
            .iter()
            .any(|n| n.name == "default" && n.description == "typed")
    );

    let version = client.get_version(orders, 1).await.expect("version 1");
    assert_eq!((version.pipeline_id, version.version_number), (id, 1));
    assert!(
        version
            .published_versions
            .contains_key("default/pipelines/silver/orders/pipeline.sql"),
        "{version:?}"
    );
    let uploaded = client
        .upload_file("default/pipelines/silver/orders/notes.md", b"# notes".to_vec())
        .await
        .expect("uploaded");
    assert_eq!(
        (uploaded.path.as_str(), uploaded.size),
        ("default/pipelines/silver/orders/notes.md", 7)
    );
    assert_eq!(
        client
            .read_file("default/pipelines/silver/orders/notes.md")
            .await
            .unwrap()
            .content,
        "# notes"
    );

    // Quality tests: written, listed, their latest results, deleted.
    let test = client
        .create_test(
            orders,
            &rat_wire::quality::CreateTest {
                name: "no_nulls".to_owned(),
                sql: "SELECT * FROM t WHERE one IS NULL".to_owned(),
                severity: Some("warn".to_owned()),
                description: None,
            },
        )
        .await
        .expect("test created");
    assert_eq!((test.name.as_str(), test.severity.as_str()), ("no_nulls", "warn"));
    let tests = client.list_tests(orders, Page::default()).await.expect("tests");
    assert_eq!(tests.total, 1);
    assert_eq!(tests.tests[0].sql, "SELECT * FROM t WHERE one IS NULL");
    let results = client.test_results(orders, Page::default()).await.expect("results");
    assert_eq!((results.passed, results.failed), (0, 0), "{results:?}");
    client.delete_test(orders, "no_nulls").await.expect("test deleted");
    assert_eq!(client.list_tests(orders, Page::default()).await.unwrap().total, 0);

    // Tables and their metadata.
    let tables = client.list_tables(&Default::default()).await.expect("tables");
    assert!(tables.tables.iter().any(|t| t.name == "orders"), "{tables:?}");
    let table = client.get_table(orders).await.expect("table");
    assert_eq!(
        (table.info.namespace.as_str(), table.info.name.as_str()),
        ("default", "orders")
    );
    let metadata = client
        .put_table_metadata(
            orders,
            &rat_wire::tables::PutMetadata {
                description: Some("every order".to_owned()),
                owner: None,
                column_descriptions: Some([("one".to_owned(), "always 1".to_owned())].into()),
            },
        )
        .await
        .expect("metadata written");
    assert_eq!(metadata.description, "every order");
    let read = client.get_table_metadata(orders).await.expect("metadata");
    assert_eq!(read.column_descriptions["one"], "always 1");
    client.schema().await.expect("schema");

    // A trigger read back, and a webhook fired by its token alone.
    let webhook = client
        .create_trigger(
            orders,
            &rat_wire::triggers::CreateTrigger {
                trigger_type: "webhook".to_owned(),
                config: None,
                enabled: Some(true),
                cooldown_seconds: None,
            },
        )
        .await
        .expect("webhook trigger");
    let token = webhook.webhook_token.clone().expect("the token, once");
    let read = client.get_trigger(orders, webhook.id).await.expect("trigger");
    assert_eq!((read.id, read.webhook_token), (webhook.id, None));
    let fired = client.fire_webhook(&token).await.expect("fired");
    assert_eq!(client.get_run(fired.run_id).await.expect("its run").pipeline_id, id);
    let wrong = client.fire_webhook("not-a-token").await.expect_err("unknown token");
    assert_eq!(wrong.status(), Some(404), "{wrong}");

    // Soft delete, read while deleted, restore.
    client.delete_pipeline(orders).await.expect("deleted");
    let deleted = client.get_deleted_pipeline(id).await.expect("deleted pipeline");
    assert_eq!(deleted.name, "orders");
    let restored = client.restore_pipeline(orders).await.expect("restored");
    assert_eq!(restored.id, id);
    client.get_pipeline(orders).await.expect("live again");
}

#[tokio::test]
async fn projects_and_sharing_answer_through_the_typed_client() {
    let app = app().await;
    let client = app.client();
    let id = published_pipeline(&client, "orders").await;

    let project = client
        .create_project(&rat_wire::projects::CreateProject {
            name: "revenue".to_owned(),
            description: Some("money".to_owned()),
        })
        .await
        .expect("project");
    assert_eq!(client.get_project(project.id).await.expect("project").name, "revenue");
    let renamed = client
        .update_project(
            project.id,
            &rat_wire::projects::UpdateProject {
                name: Some("income".to_owned()),
                description: None,
            },
        )
        .await
        .expect("renamed");
    assert_eq!(
        (renamed.name.as_str(), renamed.description.as_str()),
        ("income", "money")
    );
    let listed = client
        .list_projects(&rat_wire::projects::ProjectQuery {
            search: Some("inc".to_owned()),
            limit: None,
            offset: None,
        })
        .await
        .expect("projects");
    assert_eq!(listed.total, 1);
    let member = client
        .add_member(
            project.id,
            &rat_wire::projects::AddMember {
                object_type: "pipeline".to_owned(),
                object_id: id.to_string(),
            },
        )
        .await
        .expect("member added");
    assert_eq!((member.project_id, member.object_id), (project.id, id));
    let members = client.list_members(project.id, Page::default()).await.expect("members");
    assert_eq!((members.total, members.members[0].name.as_str()), (1, "orders"));
    client
        .remove_member(project.id, "pipeline", id)
        .await
        .expect("member removed");
    assert_eq!(client.list_members(project.id, Page::default()).await.unwrap().total, 0);
    client.delete_project(project.id).await.expect("project deleted");
    let gone = client.get_project(project.id).await.expect_err("deleted");
    assert_eq!(gone.status(), Some(404));

    let share = client
        .share(&rat_wire::sharing::ShareRequest {
            object_type: "pipeline".to_owned(),
            object_id: id.to_string(),
            shared_with: "bob".to_owned(),
            access_level: "read".to_owned(),
        })
        .await
        .expect("shared");
    assert_eq!((share.object_id, share.shared_with.as_str()), (id, "bob"));
    let shares = client
        .list_shares(&rat_wire::sharing::ShareQuery {
            object_type: Some("pipeline".to_owned()),
            object_id: Some(id.to_string()),
            ..Default::default()
        })
        .await
        .expect("shares");
    assert_eq!(shares.total, 1);
    client.revoke_share(share.id).await.expect("revoked");
    let shares = client
        .list_shares(&rat_wire::sharing::ShareQuery {
            object_type: Some("pipeline".to_owned()),
            object_id: Some(id.to_string()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(shares.total, 0);
    let moved = client
        .transfer(&rat_wire::sharing::TransferRequest {
            resource_type: "pipeline".to_owned(),
            resource_id: id.to_string(),
            to_user_id: "carol".to_owned(),
        })
        .await
        .expect("transferred");
    assert!(moved.transferred && moved.resource_id == id && moved.new_owner == "carol");
    let owner = client
        .get_pipeline(PipelineAddress::new("default", "silver", "orders"))
        .await
        .unwrap()
        .owner;
    assert_eq!(owner.as_deref(), Some("carol"));
}

#[tokio::test]
async fn landing_zones_answer_through_the_typed_client() {
    let app = app().await;
    let client = app.client();

    let zone = client
        .create_zone(&rat_wire::landing::CreateZone {
            namespace: "default".to_owned(),
            name: "drops".to_owned(),
            description: Some("raw".to_owned()),
            expected_schema: None,
        })
        .await
        .expect("zone");
    assert_eq!((zone.name.as_str(), zone.file_count), ("drops", 0));
    let updated = client
        .update_zone(
            "default",
            "drops",
            &rat_wire::landing::UpdateZone {
                description: Some("raw files".to_owned()),
                ..Default::default()
            },
        )
        .await
        .expect("updated");
    assert_eq!(updated.description, "raw files");
    let zones = client.list_zones(&Default::default()).await.expect("zones");
    assert_eq!(zones.total, 1);

    let file = client
        .upload_zone_file("default", "drops", "orders.csv", b"id\n1\n".to_vec())
        .await
        .expect("uploaded");
    // Stored under a unique name ending in the uploaded one.
    assert!(file.filename.ends_with("_orders.csv"), "{file:?}");
    assert_eq!((file.size_bytes, file.zone_id), (5, zone.id));
    let files = client
        .list_zone_files("default", "drops", Page::default())
        .await
        .expect("files");
    assert_eq!(files.total, 1);
    assert_eq!(client.get_zone("default", "drops").await.expect("zone").file_count, 1);
    let read = client.get_zone_file("default", "drops", file.id).await.expect("file");
    assert_eq!(read.s3_path, file.s3_path);
    client
        .delete_zone_file("default", "drops", file.id)
        .await
        .expect("file deleted");
    assert_eq!(
        client
            .list_zone_files("default", "drops", Page::default())
            .await
            .unwrap()
            .total,
        0
    );

    let lifecycle = client
        .update_lifecycle(
            "default",
            "drops",
            &rat_wire::landing::UpdateLifecycle {
                processed_max_age_days: Some(Some(7)),
                auto_purge: Some(true),
            },
        )
        .await
        .expect("lifecycle");
    assert_eq!(
        (lifecycle.processed_max_age_days, lifecycle.auto_purge),
        (Some(7), true)
    );
    // An absent key keeps its value.
    let kept = client
        .update_lifecycle(
            "default",
            "drops",
            &rat_wire::landing::UpdateLifecycle {
                processed_max_age_days: None,
                auto_purge: Some(false),
            },
        )
        .await
        .expect("lifecycle kept");
    assert_eq!((kept.processed_max_age_days, kept.auto_purge), (Some(7), false));
    let read = client.get_lifecycle("default", "drops").await.expect("lifecycle");
    assert_eq!((read.processed_max_age_days, read.auto_purge), (Some(7), false));

    let sample = client
        .upload_sample("default", "drops", "sample.csv", b"id\n".to_vec())
        .await
        .expect("sample");
    assert_eq!((sample.filename.as_str(), sample.size), ("sample.csv", 3));
    let samples = client.list_samples("default", "drops").await.expect("samples");
    assert_eq!((samples.total, samples.files[0].filename.as_str()), (1, "sample.csv"));
    client
        .delete_sample("default", "drops", "sample.csv")
        .await
        .expect("sample deleted");
    assert_eq!(client.list_samples("default", "drops").await.unwrap().total, 0);

    client.delete_zone("default", "drops").await.expect("zone deleted");
    let gone = client.get_zone("default", "drops").await.expect_err("deleted");
    assert_eq!(gone.status(), Some(404));
}
