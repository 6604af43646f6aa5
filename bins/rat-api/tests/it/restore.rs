//! Undoing a delete within the grace period (issue 18; seed 000, "Soft
//! Deletes"): deleted pipelines are listed and read by id, and restored with
//! their schedules, triggers, tests, versions and draft files as they were.

use crate::common::TestApp;
use rat_service::reaper::{PassPolicy, run_pass};
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use tokio::sync::watch;
use uuid::Uuid;

const ORDERS: &str = "/api/v1/pipelines/default/silver/orders";
const SOURCE: &str = "/api/v1/files/default/pipelines/silver/orders/pipeline.sql";
const EXTRA: &str = "/api/v1/files/default/pipelines/silver/orders/extra.sql";

fn time_of(value: &Value) -> OffsetDateTime {
    OffsetDateTime::parse(value.as_str().expect("a time"), &Rfc3339).expect("RFC 3339")
}

async fn put_file(app: &TestApp, path: &str, content: &str) {
    let written = app.put(path, json!({ "content": content })).await;
    assert_eq!(written.status, 200, "{}", written.text);
}

async fn content(app: &TestApp, path: &str) -> Option<String> {
    let read = app.get(path).await;
    match read.status.as_u16() {
        200 => Some(read.json["content"].as_str().expect("content").to_owned()),
        404 => None,
        other => panic!("reading {path} answered {other}: {}", read.text),
    }
}

/// `(id, enabled, has a next time)` of each row `sql` selects for `pipeline`.
async fn switches(app: &TestApp, sql: &str, pipeline: Uuid) -> Vec<(Uuid, bool, bool)> {
    let client = app.db.client().await;
    client
        .query(sql, &[&pipeline])
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect()
}

async fn enabled_schedules(app: &TestApp, pipeline: Uuid) -> Vec<(Uuid, bool, bool)> {
    let sql = "SELECT id, enabled, next_run_at IS NOT NULL FROM schedules WHERE pipeline_id = $1 ORDER BY id";
    switches(app, sql, pipeline).await
}

async fn triggers_state(app: &TestApp, pipeline: Uuid) -> Vec<(Uuid, bool, bool)> {
    let sql = "SELECT id, enabled, next_fire_at IS NOT NULL FROM pipeline_triggers WHERE pipeline_id = $1 ORDER BY id";
    switches(app, sql, pipeline).await
}

/// The deleted pipeline is listed and read with who deleted it and when it
/// will be purged; the restore is refused while another pipeline has the
/// name, and then brings back exactly what was deleted.
#[tokio::test]
async fn a_deleted_pipeline_is_listed_and_restored_as_it_was() {
    let app = TestApp::new().await;
    app.pipeline("default", "silver", "orders").await;
    let id: Uuid = app.get(ORDERS).await.json["id"].as_str().unwrap().parse().unwrap();
    put_file(&app, SOURCE, "SELECT 1 AS published").await;
    let published = app.post(&format!("{ORDERS}/publish"), json!({"message": "v1"})).await;
    assert!(published.status.is_success(), "{}", published.text);
    // The draft at the delete differs from the published version.
    put_file(&app, SOURCE, "SELECT 2 AS draft").await;
    let test = app
        .post(&format!("{ORDERS}/tests"), json!({"name": "t1", "sql": "select 0"}))
        .await;
    assert_eq!(test.status, 201, "{}", test.text);
    let schedule = |enabled: bool| json!({"namespace": "default", "layer": "silver", "pipeline": "orders", "cron": "0 * * * *", "enabled": enabled});
    for enabled in [true, false] {
        let created = app.post("/api/v1/schedules", schedule(enabled)).await;
        assert_eq!(created.status, 201, "{}", created.text);
    }
    for enabled in [true, false] {
        let created = app
            .post(
                &format!("{ORDERS}/triggers"),
                json!({"type": "cron", "config": {"cron_expr": "0 * * * *"}, "enabled": enabled}),
            )
            .await;
        assert_eq!(created.status, 201, "{}", created.text);
    }
    let schedules_before = enabled_schedules(&app, id).await;
    let triggers_before = triggers_state(&app, id).await;
    assert_eq!(
        schedules_before.iter().filter(|s| s.1).count(),
        1,
        "{schedules_before:?}"
    );
    assert_eq!(triggers_before.iter().filter(|t| t.1).count(), 1, "{triggers_before:?}");

    let before_delete = OffsetDateTime::now_utc();
    assert_eq!(app.delete(ORDERS).await.status, 204);
    assert!(
        enabled_schedules(&app, id).await.iter().all(|s| !s.1),
        "the delete disables schedules"
    );

    // Listed and read by id, with who, when and until when.
    let live = app.get("/api/v1/pipelines").await;
    assert_eq!(live.json["total"], 0, "{}", live.text);
    let listed = app.get("/api/v1/pipelines?deleted=true").await;
    assert_eq!(listed.status, 200, "{}", listed.text);
    assert_eq!(listed.json["total"], 1, "{}", listed.text);
    let entry = &listed.json["pipelines"][0];
    assert_eq!(entry["id"], id.to_string());
    assert_eq!(entry["deleted_by"], "community");
    let deleted_at = time_of(&entry["deleted_at"]);
    assert!(deleted_at >= before_delete - time::Duration::seconds(1), "{entry}");
    assert_eq!(time_of(&entry["purge_after"]), deleted_at + time::Duration::days(30));
    let one = app.get(&format!("/api/v1/pipelines/deleted/{id}")).await;
    assert_eq!(one.status, 200, "{}", one.text);
    assert_eq!(&one.json, entry);
    app.get("/api/v1/pipelines?deleted=maybe")
        .await
        .assert_error(400, "INVALID_ARGUMENT");
    app.get(&format!("/api/v1/pipelines/deleted/{}", Uuid::new_v4()))
        .await
        .assert_error(404, "NOT_FOUND");

    // A new pipeline takes the name and writes its own files: the restore
    // is refused and nothing changes.
    app.pipeline("default", "silver", "orders").await;
    let usurper = app.get(ORDERS).await.json["id"].as_str().unwrap().to_owned();
    put_file(&app, EXTRA, "SELECT 'new'").await;
    let refused = app.post(&format!("{ORDERS}/restore"), json!({})).await;
    let message = refused.assert_error(409, "FAILED_PRECONDITION");
    assert!(message.contains("orders") && message.contains("taken"), "{message}");
    assert_eq!(app.get(ORDERS).await.json["id"], usurper.as_str());
    assert_eq!(app.get("/api/v1/pipelines?deleted=true").await.json["total"], 1);
    assert!(
        enabled_schedules(&app, id).await.iter().all(|s| !s.1),
        "nothing re-enabled"
    );
    assert_eq!(content(&app, EXTRA).await.as_deref(), Some("SELECT 'new'"));

    // Once the name is free again, the restore (by id, since two deleted
    // pipelines now had it) brings back the first one as it was.
    assert_eq!(app.delete(ORDERS).await.status, 204);
    let restored = app.post(&format!("{ORDERS}/restore?id={id}"), json!({})).await;
    assert_eq!(restored.status, 200, "{}", restored.text);
    assert_eq!(restored.json["id"], id.to_string());
    assert!(restored.json.get("deleted_at").is_none(), "{}", restored.text);
    let got = app.get(ORDERS).await;
    assert_eq!(got.json["id"], id.to_string());
    assert_eq!(got.json["draft_dirty"], true, "{}", got.text);
    assert_eq!(content(&app, SOURCE).await.as_deref(), Some("SELECT 2 AS draft"));
    assert_eq!(content(&app, EXTRA).await, None, "files written since are gone");
    let after: Vec<(Uuid, bool)> = enabled_schedules(&app, id).await.iter().map(|s| (s.0, s.1)).collect();
    let expected: Vec<(Uuid, bool)> = schedules_before.iter().map(|s| (s.0, s.1)).collect();
    assert_eq!(
        after, expected,
        "the schedule enabled at the delete is enabled again, the other not"
    );
    assert!(
        enabled_schedules(&app, id).await.iter().all(|s| s.1 == s.2),
        "enabled ones have a next slot"
    );
    assert_eq!(triggers_state(&app, id).await, triggers_before);
    let versions = app.get(&format!("{ORDERS}/versions")).await;
    assert_eq!(versions.json["total"], 1, "{}", versions.text);
    let tests = app.get(&format!("{ORDERS}/tests")).await;
    assert_eq!(tests.json["total"], 1, "{}", tests.text);
    let listed = app.get("/api/v1/pipelines?deleted=true").await;
    assert_eq!(listed.json["total"], 1, "the usurper stays deleted: {}", listed.text);
    assert_eq!(listed.json["pipelines"][0]["id"], usurper.as_str());

    let audit = app.audit_rows().await;
    assert!(
        audit
            .iter()
            .any(|e| e.action == "pipeline.restore" && e.object_id == Some(id)),
        "{audit:#?}"
    );
    // Restoring what is live is a 404: nothing deleted with that id there.
    app.post(&format!("{ORDERS}/restore?id={id}"), json!({}))
        .await
        .assert_error(404, "NOT_FOUND");
}

/// Past the grace period the restore is refused, and once the reaper
/// purged the pipeline there is nothing to restore.
#[tokio::test]
async fn restore_after_the_grace_period_or_the_purge_is_404() {
    let app = TestApp::new().await;
    app.pipeline("default", "silver", "orders").await;
    let id: Uuid = app.get(ORDERS).await.json["id"].as_str().unwrap().parse().unwrap();
    assert_eq!(app.delete(ORDERS).await.status, 204);
    // Deleted 31 days ago (the default grace period is 30 days).
    let client = app.db.client().await;
    client
        .execute(
            "UPDATE pipelines SET deleted_at = now() - interval '31 days' WHERE id = $1",
            &[&id],
        )
        .await
        .unwrap();
    app.post(&format!("{ORDERS}/restore"), json!({}))
        .await
        .assert_error(404, "NOT_FOUND");
    let gone: i64 = client
        .query_one(
            "SELECT count(*) FROM pipelines WHERE id = $1 AND deleted_at IS NOT NULL",
            &[&id],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(gone, 1, "a refused restore changes nothing");

    let (_tx, lost) = watch::channel(false);
    let report = run_pass(
        &app.state.services,
        OffsetDateTime::now_utc(),
        &PassPolicy::default(),
        &lost,
    )
    .await
    .unwrap();
    assert_eq!(report.counters.pipelines_purged, 1, "{report:#?}");
    app.post(&format!("{ORDERS}/restore?id={id}"), json!({}))
        .await
        .assert_error(404, "NOT_FOUND");
    app.get(&format!("/api/v1/pipelines/deleted/{id}"))
        .await
        .assert_error(404, "NOT_FOUND");
}

/// Restoring needs what deleting needs (the owner, or an admin); the deleted
/// pipeline is visible only to those who may read it.
#[tokio::test]
async fn only_the_owner_or_an_admin_restores_and_strangers_see_nothing() {
    use crate::oidc::{Issuer, SigningKey, app_with, call};
    use reqwest::Method;
    let key = SigningKey::new("k1");
    let issuer = Issuer::start(&[&key]).await;
    let app = app_with(&issuer, std::time::Duration::from_secs(30)).await;
    let alice = key.mint(&issuer.claims("alice", &[]));
    let bob = key.mint(&issuer.claims("bob", &[]));
    let erin = key.mint(&issuer.claims("erin", &[]));
    let made = call(
        &app,
        Method::POST,
        "/api/v1/namespaces",
        &alice,
        Some(json!({"name": "team"})),
    )
    .await;
    assert_eq!(made.status, 201, "{}", made.text);
    let made = call(
        &app,
        Method::POST,
        "/api/v1/pipelines",
        &alice,
        Some(json!({"namespace": "team", "layer": "silver", "name": "orders"})),
    )
    .await;
    assert_eq!(made.status, 201, "{}", made.text);
    let id = made.json["id"].as_str().unwrap().to_owned();
    let namespace_id = call(&app, Method::GET, "/api/v1/namespaces", &alice, None).await.json["namespaces"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["name"] == "team")
        .unwrap()["id"]
        .clone();
    let shared = call(
        &app,
        Method::POST,
        "/api/v1/sharing",
        &alice,
        Some(json!({"object_type": "namespace", "object_id": namespace_id, "shared_with": "bob", "access_level": "write"})),
    )
    .await;
    assert!(shared.status.is_success(), "{}", shared.text);
    let path = "/api/v1/pipelines/team/silver/orders";
    assert_eq!(call(&app, Method::DELETE, path, &alice, None).await.status, 204);

    // Bob may read it (a write share), not restore it; Erin sees nothing.
    let listed = call(&app, Method::GET, "/api/v1/pipelines?deleted=true", &bob, None).await;
    assert_eq!(listed.json["total"], 1, "{}", listed.text);
    assert_eq!(listed.json["pipelines"][0]["deleted_by"], "alice");
    let listed = call(&app, Method::GET, "/api/v1/pipelines?deleted=true", &erin, None).await;
    assert_eq!(listed.json["total"], 0, "{}", listed.text);
    call(
        &app,
        Method::GET,
        &format!("/api/v1/pipelines/deleted/{id}"),
        &erin,
        None,
    )
    .await
    .assert_error(404, "NOT_FOUND");
    let restore = format!("{path}/restore");
    call(&app, Method::POST, &restore, &bob, None)
        .await
        .assert_error(403, "FORBIDDEN");
    call(&app, Method::POST, &restore, &erin, None)
        .await
        .assert_error(404, "NOT_FOUND");
    let still = call(&app, Method::GET, "/api/v1/pipelines?deleted=true", &alice, None).await;
    assert_eq!(
        still.json["total"], 1,
        "refused restores change nothing: {}",
        still.text
    );

    let restored = call(&app, Method::POST, &restore, &alice, None).await;
    assert_eq!(restored.status, 200, "{}", restored.text);
    assert_eq!(restored.json["id"], id.as_str());
    assert_eq!(call(&app, Method::GET, path, &bob, None).await.status, 200);
}

/// Purging an older deleted pipeline of the same name keeps every version a
/// later deleted one needs to be restored as it was.
#[tokio::test]
async fn purging_an_older_namesake_keeps_what_a_restorable_one_needs() {
    let app = TestApp::new().await;
    app.pipeline("default", "silver", "orders").await;
    let older: Uuid = app.get(ORDERS).await.json["id"].as_str().unwrap().parse().unwrap();
    put_file(&app, SOURCE, "SELECT 'older'").await;
    assert_eq!(app.delete(ORDERS).await.status, 204);

    app.pipeline("default", "silver", "orders").await;
    let later = app.get(ORDERS).await.json["id"].as_str().unwrap().to_owned();
    put_file(&app, SOURCE, "SELECT 'published'").await;
    let published = app.post(&format!("{ORDERS}/publish"), json!({"message": "v1"})).await;
    assert!(published.status.is_success(), "{}", published.text);
    put_file(&app, SOURCE, "SELECT 'draft'").await;
    let pinned = app.get(ORDERS).await.json["published_versions"].clone();
    assert_eq!(app.delete(ORDERS).await.status, 204);

    let client = app.db.client().await;
    client
        .execute(
            "UPDATE pipelines SET deleted_at = now() - interval '31 days' WHERE id = $1",
            &[&older],
        )
        .await
        .unwrap();
    let (_tx, lost) = watch::channel(false);
    let report = run_pass(
        &app.state.services,
        OffsetDateTime::now_utc(),
        &PassPolicy::default(),
        &lost,
    )
    .await
    .unwrap();
    assert_eq!(report.counters.pipelines_purged, 1, "{report:#?}");

    let restored = app.post(&format!("{ORDERS}/restore"), json!({})).await;
    assert_eq!(restored.status, 200, "{}", restored.text);
    assert_eq!(restored.json["id"], later.as_str());
    assert_eq!(content(&app, SOURCE).await.as_deref(), Some("SELECT 'draft'"));
    // The published snapshot's versions are still readable.
    for (key, version) in pinned.as_object().unwrap() {
        let key = rat_versioning::ObjectKey::parse(key).unwrap();
        let version = rat_versioning::VersionId::new(version.as_str().unwrap()).unwrap();
        let object = app.state.services.store.get(&key, Some(&version)).await;
        assert!(object.is_ok(), "{key}@{version}: {object:?}");
    }
}
