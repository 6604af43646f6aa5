//! `/api/v1/landing-zones` (contract §11): zones, files, samples, lifecycle.

use std::net::SocketAddr;
use std::sync::Arc;

use crate::common::{Answer, TestApp};
use rat_api::state::{ApiSettings, AppState};
use rat_domain::FeatureFlags;
use rat_service::Services;
use rat_testkit::TestDatabase;
use rat_versioning::{KeyPrefix, ObjectKey, VersionedStore, list_all_latest};
use serde_json::{Value, json};

const ZONES: &str = "/api/v1/landing-zones";

/// Posts a multipart body with one `file` part.
async fn upload_to(base: &str, path: &str, filename: &str, content_type: &str, body: &[u8]) -> Answer {
    let part = reqwest::multipart::Part::bytes(body.to_vec())
        .file_name(filename.to_owned())
        .mime_str(content_type)
        .unwrap();
    let form = reqwest::multipart::Form::new().part("file", part);
    let response = reqwest::Client::new()
        .post(format!("{base}{path}"))
        .multipart(form)
        .send()
        .await
        .unwrap();
    TestApp::answer(response).await
}

async fn upload(app: &TestApp, path: &str, filename: &str, body: &[u8]) -> Answer {
    app.upload_part(path, filename, body).await
}

/// Creates the zone `ns/name` (the namespace must exist) and returns it.
async fn zone(app: &TestApp, ns: &str, name: &str) -> Value {
    let created = app.post(ZONES, json!({"namespace": ns, "name": name})).await;
    assert_eq!(created.status, 201, "{}", created.text);
    created.json
}

#[tokio::test]
async fn zone_create_get_update_list_and_delete_answer_the_contract_shapes() {
    let app = TestApp::new().await;
    let created = app
        .post(
            ZONES,
            json!({"namespace": "default", "name": "uploads", "description": "Raw drops", "expected_schema": "id,amount"}),
        )
        .await;
    assert_eq!(created.status, 201, "{}", created.text);
    let z = &created.json;
    let mut fields: Vec<&str> = z.as_object().unwrap().keys().map(String::as_str).collect();
    fields.sort_unstable();
    assert_eq!(
        fields,
        [
            "auto_purge",
            "created_at",
            "description",
            "expected_schema",
            "file_count",
            "id",
            "name",
            "namespace",
            "owner",
            "processed_max_age_days",
            "total_bytes",
            "updated_at"
        ]
    );
    assert_eq!(z["namespace"], "default");
    assert_eq!(z["name"], "uploads");
    assert_eq!(z["description"], "Raw drops");
    assert_eq!(z["expected_schema"], "id,amount");
    assert_eq!(z["owner"], "community", "the creator owns the zone");
    assert_eq!(z["processed_max_age_days"], Value::Null);
    assert_eq!(z["auto_purge"], false);
    assert_eq!(
        (z["file_count"].clone(), z["total_bytes"].clone()),
        (json!(0), json!(0))
    );
    let audit = app.audit_rows().await;
    assert_eq!(audit[0].action, "landing_zone.create");
    assert_eq!(
        audit[0].object_id.map(|id| id.to_string()),
        z["id"].as_str().map(str::to_owned)
    );

    let got = app.get("/api/v1/landing-zones/default/uploads").await;
    assert_eq!(got.status, 200);
    assert_eq!(&got.json, z);

    let updated = app
        .put(
            "/api/v1/landing-zones/default/uploads",
            json!({"description": "Daily drops", "owner": "alice", "expected_schema": null}),
        )
        .await;
    assert_eq!(updated.status, 200, "{}", updated.text);
    assert_eq!(updated.json["description"], "Daily drops");
    assert_eq!(updated.json["owner"], "alice");
    assert_eq!(updated.json["expected_schema"], "id,amount", "null keeps the value");

    app.namespace("shop").await;
    zone(&app, "shop", "returns").await;
    zone(&app, "default", "archive").await;
    let all = app.get(ZONES).await;
    assert_eq!(all.status, 200);
    assert_eq!(all.json["total"], 3);
    let names: Vec<&str> = all.json["zones"]
        .as_array()
        .unwrap()
        .iter()
        .map(|z| z["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["archive", "uploads", "returns"], "by namespace, then name");
    let filtered = app.get("/api/v1/landing-zones?namespace=shop").await;
    assert_eq!(filtered.json["total"], 1);
    assert_eq!(filtered.json["zones"][0]["name"], "returns");
    let paged = app.get("/api/v1/landing-zones?limit=1&offset=1").await;
    assert_eq!(paged.json["total"], 3, "total counts every zone");
    assert_eq!(paged.json["zones"].as_array().unwrap().len(), 1);
    assert_eq!(paged.json["zones"][0]["name"], "uploads");

    let deleted = app.delete("/api/v1/landing-zones/default/uploads").await;
    assert_eq!(deleted.status, 204, "{}", deleted.text);
    app.get("/api/v1/landing-zones/default/uploads")
        .await
        .assert_error(404, "NOT_FOUND");
    assert_eq!(app.get(ZONES).await.json["total"], 2);
}

#[tokio::test]
async fn zone_errors_answer_the_envelope() {
    let app = TestApp::new().await;
    for body in [
        json!({"namespace": "default", "name": "Uploads"}),
        json!({"namespace": "Default", "name": "uploads"}),
        json!({"namespace": "default"}),
        json!({"namespace": "default", "name": "uploads", "owner": "mallory"}),
    ] {
        app.post(ZONES, body).await.assert_error(400, "INVALID_ARGUMENT");
    }
    app.post(ZONES, json!({"namespace": "ghost", "name": "uploads"}))
        .await
        .assert_error(404, "NOT_FOUND");
    zone(&app, "default", "uploads").await;
    app.post(ZONES, json!({"namespace": "default", "name": "uploads"}))
        .await
        .assert_error(409, "ALREADY_EXISTS");

    let ghost = "/api/v1/landing-zones/default/ghost";
    app.get(ghost).await.assert_error(404, "NOT_FOUND");
    app.put(ghost, json!({"description": "x"}))
        .await
        .assert_error(404, "NOT_FOUND");
    app.delete(ghost).await.assert_error(404, "NOT_FOUND");
    app.get("/api/v1/landing-zones/default/Bad%20Name")
        .await
        .assert_error(400, "INVALID_ARGUMENT");
    app.put("/api/v1/landing-zones/default/uploads", json!({"owner": " "}))
        .await
        .assert_error(400, "INVALID_ARGUMENT");
    // The portal's zone editor sends `owner: ""` for "no owner": no change.
    let kept = app
        .put("/api/v1/landing-zones/default/uploads", json!({"owner": ""}))
        .await;
    assert_eq!(kept.status, 200, "{}", kept.text);
    assert_eq!(kept.json["owner"], "community");
    for bad in ["namespace=Bad", "limit=x", "limit=0", "offset=-1"] {
        app.get(&format!("/api/v1/landing-zones?{bad}"))
            .await
            .assert_error(400, "INVALID_ARGUMENT");
    }
}

#[tokio::test]
async fn an_upload_writes_the_object_then_the_row_under_a_timestamped_safe_name() {
    let app = TestApp::new().await;
    let z = zone(&app, "default", "uploads").await;
    let files = "/api/v1/landing-zones/default/uploads/files";
    let before = time::OffsetDateTime::now_utc().replace_nanosecond(0).unwrap();
    let answer = upload(&app, files, "../../pipelines/x/Q1 report.csv", b"id,amount\n1,10\n").await;
    assert_eq!(answer.status, 201, "{}", answer.text);
    let f = &answer.json;
    let mut fields: Vec<&str> = f.as_object().unwrap().keys().map(String::as_str).collect();
    fields.sort_unstable();
    assert_eq!(
        fields,
        [
            "content_type",
            "filename",
            "id",
            "s3_path",
            "s3_version_id",
            "size_bytes",
            "uploaded_at",
            "uploaded_by",
            "zone_id"
        ]
    );
    let filename = f["filename"].as_str().unwrap();
    let (stamp, rest) = filename.split_at(16);
    let (token, rest) = rest.split_once('_').unwrap();
    assert!(
        token.len() == 8 && token.bytes().all(|b| b.is_ascii_hexdigit()),
        "{filename}"
    );
    assert_eq!(
        rest, "Q1_report.csv",
        "basename only, unsafe characters replaced: {filename}"
    );
    let stamped = time::PrimitiveDateTime::parse(
        stamp,
        time::macros::format_description!("[year][month][day]_[hour][minute][second]_"),
    )
    .unwrap()
    .assume_utc();
    assert!(
        stamped >= before && stamped <= time::OffsetDateTime::now_utc(),
        "{stamp}"
    );
    assert_eq!(f["s3_path"], format!("default/landing/uploads/{filename}"));
    assert_eq!(f["zone_id"], z["id"]);
    assert_eq!(f["size_bytes"], 15);
    assert_eq!(f["content_type"], "text/csv");
    assert_eq!(f["uploaded_by"], "community");

    let key = ObjectKey::parse(f["s3_path"].as_str().unwrap()).unwrap();
    let object = app.services.store.get(&key, None).await.unwrap();
    assert_eq!(object.body, b"id,amount\n1,10\n");
    assert_eq!(
        f["s3_version_id"],
        object.version_id.as_str(),
        "the row pins the version written"
    );

    let listed = app.get(files).await;
    assert_eq!(listed.status, 200);
    assert_eq!(listed.json["total"], 1);
    assert_eq!(&listed.json["files"][0], f);
    let got = app.get(&format!("{files}/{}", f["id"].as_str().unwrap())).await;
    assert_eq!(got.status, 200);
    assert_eq!(&got.json, f);
    let zone_now = app.get("/api/v1/landing-zones/default/uploads").await.json;
    assert_eq!(
        (zone_now["file_count"].clone(), zone_now["total_bytes"].clone()),
        (json!(1), json!(15))
    );
    let audit = app.audit_rows().await;
    assert_eq!(audit[0].action, "landing_file.upload");
    assert_eq!(audit[0].object_id.map(|id| id.to_string()).as_deref(), f["id"].as_str());

    // A second upload is listed first (newest first).
    let second = upload(&app, files, "b.csv", b"x").await;
    assert_eq!(second.status, 201);
    let listed = app.get(&format!("{files}?limit=1")).await;
    assert_eq!(listed.json["total"], 2);
    assert_eq!(listed.json["files"][0]["id"], second.json["id"]);
}

#[tokio::test]
async fn upload_errors_answer_the_envelope_and_store_nothing() {
    let app = TestApp::new().await;
    zone(&app, "default", "uploads").await;
    let files = "/api/v1/landing-zones/default/uploads/files";
    for name in ["..", ".", "dir/", ""] {
        upload(&app, files, name, b"x")
            .await
            .assert_error(400, "INVALID_ARGUMENT");
    }
    // A multipart body without a `file` part.
    let form = reqwest::multipart::Form::new().text("other", "value");
    let response = app
        .http
        .post(format!("{}{files}", app.base))
        .multipart(form)
        .send()
        .await
        .unwrap();
    let message = TestApp::answer(response).await.assert_error(400, "INVALID_ARGUMENT");
    assert!(message.contains("file"), "{message}");
    // Not multipart at all.
    app.post(files, json!({"file": "x"}))
        .await
        .assert_error(400, "INVALID_ARGUMENT");
    upload(&app, "/api/v1/landing-zones/default/ghost/files", "a.csv", b"x")
        .await
        .assert_error(404, "NOT_FOUND");
    upload(&app, "/api/v1/landing-zones/default/BAD/files", "a.csv", b"x")
        .await
        .assert_error(400, "INVALID_ARGUMENT");
    assert!(app.keys_under("default/landing/").await.is_empty());
    assert_eq!(app.get(files).await.json["total"], 0);
}

/// An api with a small upload limit (the default, 32 MiB, is too large to
/// exceed reliably over a socket whose peer stops reading).
struct SmallUploadApp {
    _db: TestDatabase,
    services: Services,
    base: String,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for SmallUploadApp {
    fn drop(&mut self) {
        self.server.abort();
    }
}

async fn small_upload_app(max_upload: usize) -> SmallUploadApp {
    let db = TestDatabase::new().await;
    let store = rat_testkit::s3::test_store().await;
    let services = Services::new(db.pool().clone(), Arc::new(store) as Arc<dyn VersionedStore>);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let mut settings = ApiSettings::new(format!("http://{addr}"));
    settings.max_upload = max_upload;
    let state = AppState::new(
        services.clone(),
        settings,
        rat_api::metrics_handle(),
        rat_api::live::LiveLogs::new(db.url()),
    );
    let router = rat_api::app::router(state);
    let server = tokio::spawn(async move {
        axum::serve(listener, router.into_make_service_with_connect_info::<SocketAddr>())
            .await
            .unwrap();
    });
    SmallUploadApp {
        _db: db,
        services,
        base: format!("http://{addr}"),
        server,
    }
}

#[tokio::test]
async fn uploads_over_the_upload_limit_are_413_and_above_the_json_limit_are_fine() {
    // The JSON limit stays 1 MiB; uploads get their own limit.
    let app = small_upload_app(2 * 1024 * 1024).await;
    let client = reqwest::Client::new();
    let created = client
        .post(format!("{}{ZONES}", app.base))
        .json(&json!({"namespace": "default", "name": "uploads"}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    let files = "/api/v1/landing-zones/default/uploads/files";
    let big = vec![b'x'; 1024 * 1024 + 10];
    let accepted = upload_to(&app.base, files, "big.csv", "text/csv", &big).await;
    assert_eq!(
        accepted.status, 201,
        "above the JSON limit, below the upload limit: {}",
        accepted.text
    );
    assert_eq!(accepted.json["size_bytes"], big.len());

    let small = small_upload_app(4096).await;
    let created = client
        .post(format!("{}{ZONES}", small.base))
        .json(&json!({"namespace": "default", "name": "uploads"}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    for path in [files, "/api/v1/landing-zones/default/uploads/samples"] {
        upload_to(&small.base, path, "big.csv", "text/csv", &[b'x'; 8192])
            .await
            .assert_error(413, "RESOURCE_EXHAUSTED");
    }
    let client_db = small._db.client().await;
    let rows: i64 = client_db
        .query_one("SELECT count(*) FROM landing_files", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(rows, 0);
    let objects = list_all_latest(small.services.store.as_ref(), &KeyPrefix::parse("default/").unwrap())
        .await
        .unwrap();
    assert!(objects.is_empty(), "{objects:?}");
}

#[tokio::test]
async fn a_file_is_reached_only_through_its_own_zone_and_delete_removes_object_and_row() {
    let app = TestApp::new().await;
    zone(&app, "default", "uploads").await;
    zone(&app, "default", "other").await;
    let answer = upload(&app, "/api/v1/landing-zones/default/uploads/files", "a.csv", b"a").await;
    let id = answer.json["id"].as_str().unwrap().to_owned();
    let key = ObjectKey::parse(answer.json["s3_path"].as_str().unwrap()).unwrap();

    let foreign = format!("/api/v1/landing-zones/default/other/files/{id}");
    app.get(&foreign).await.assert_error(404, "NOT_FOUND");
    app.delete(&foreign).await.assert_error(404, "NOT_FOUND");
    let unknown = format!("/api/v1/landing-zones/default/uploads/files/{}", uuid::Uuid::new_v4());
    app.get(&unknown).await.assert_error(404, "NOT_FOUND");
    app.get("/api/v1/landing-zones/default/uploads/files/not-a-uuid")
        .await
        .assert_error(400, "INVALID_ARGUMENT");
    assert!(
        app.services.store.head(&key).await.unwrap().is_some(),
        "a foreign delete removed nothing"
    );

    let own = format!("/api/v1/landing-zones/default/uploads/files/{id}");
    let deleted = app.delete(&own).await;
    assert_eq!(deleted.status, 204, "{}", deleted.text);
    assert!(app.services.store.head(&key).await.unwrap().is_none(), "object deleted");
    let versions = app
        .services
        .store
        .list_versions(&KeyPrefix::parse("default/landing/uploads/").unwrap(), None, 100)
        .await
        .unwrap();
    assert!(
        versions.items.iter().any(|v| v.is_delete_marker) && versions.items.iter().any(|v| !v.is_delete_marker),
        "a delete marker over the kept version: {versions:?}"
    );
    app.get(&own).await.assert_error(404, "NOT_FOUND");
    app.delete(&own).await.assert_error(404, "NOT_FOUND");
    assert_eq!(
        app.get("/api/v1/landing-zones/default/uploads/files").await.json["total"],
        0
    );
    assert_eq!(app.audit_rows().await[1].action, "landing_file.delete");
}

#[tokio::test]
async fn samples_are_objects_under_samples_listed_uploaded_and_deleted() {
    let app = TestApp::new().await;
    zone(&app, "default", "uploads").await;
    let samples = "/api/v1/landing-zones/default/uploads/samples";
    let empty = app.get(samples).await;
    assert_eq!(empty.status, 200);
    assert_eq!(empty.json, json!({"files": [], "total": 0}));

    let uploaded = upload(&app, samples, "C:\\data\\orders sample.csv", b"id\n1\n").await;
    assert_eq!(uploaded.status, 201, "{}", uploaded.text);
    assert_eq!(
        uploaded.json,
        json!({
            "path": "default/landing/uploads/_samples/orders_sample.csv",
            "filename": "orders_sample.csv",
            "size": 5,
            "status": "uploaded"
        })
    );
    upload(&app, samples, "b.json", b"{}").await;
    let listed = app.get(samples).await;
    assert_eq!(listed.json["total"], 2);
    let first = &listed.json["files"][0];
    assert_eq!(first["path"], "default/landing/uploads/_samples/b.json");
    assert_eq!(first["filename"], "b.json");
    assert_eq!(first["size"], 2);
    assert_eq!(first["type"], "");
    assert!(
        time::OffsetDateTime::parse(
            first["modified"].as_str().unwrap(),
            &time::format_description::well_known::Rfc3339
        )
        .is_ok()
    );
    assert_eq!(
        app.get(&format!("{samples}?limit=1&offset=1")).await.json["files"][0]["filename"],
        "orders_sample.csv"
    );
    // Samples are not uploads.
    let zone_now = app.get("/api/v1/landing-zones/default/uploads").await.json;
    assert_eq!(zone_now["file_count"], 0);
    assert_eq!(
        app.get("/api/v1/landing-zones/default/uploads/files").await.json["total"],
        0
    );

    let deleted = app.delete(&format!("{samples}/orders_sample.csv")).await;
    assert_eq!(deleted.status, 204, "{}", deleted.text);
    assert_eq!(
        app.keys_under("default/landing/uploads/_samples/").await,
        ["default/landing/uploads/_samples/b.json"]
    );
    app.delete(&format!("{samples}/orders_sample.csv"))
        .await
        .assert_error(404, "NOT_FOUND");
    for bad in ["a%20b.csv", "a%2F..%2Fb", "%C3%A4.csv"] {
        app.delete(&format!("{samples}/{bad}"))
            .await
            .assert_error(400, "INVALID_ARGUMENT");
    }
    app.get("/api/v1/landing-zones/default/ghost/samples")
        .await
        .assert_error(404, "NOT_FOUND");
    upload(&app, "/api/v1/landing-zones/default/ghost/samples", "a.csv", b"x")
        .await
        .assert_error(404, "NOT_FOUND");
}

#[tokio::test]
async fn lifecycle_is_read_back_and_partially_updated_with_range_checks() {
    let app = TestApp::new().await;
    zone(&app, "default", "uploads").await;
    let path = "/api/v1/landing-zones/default/uploads/lifecycle";
    let read = app.get(path).await;
    assert_eq!(read.status, 200);
    assert_eq!(read.json, json!({"processed_max_age_days": null, "auto_purge": false}));

    let set = app
        .put(path, json!({"processed_max_age_days": 30, "auto_purge": true}))
        .await;
    assert_eq!(set.status, 200, "{}", set.text);
    assert_eq!(set.json, json!({"processed_max_age_days": 30, "auto_purge": true}));
    assert_eq!(app.get(path).await.json, set.json, "read back (ratd never does)");
    let z = app.get("/api/v1/landing-zones/default/uploads").await.json;
    assert_eq!(
        (z["processed_max_age_days"].clone(), z["auto_purge"].clone()),
        (json!(30), json!(true))
    );

    let purge_off = app.put(path, json!({"auto_purge": false})).await;
    assert_eq!(
        purge_off.json,
        json!({"processed_max_age_days": 30, "auto_purge": false})
    );
    let cleared = app.put(path, json!({"processed_max_age_days": null})).await;
    assert_eq!(
        cleared.json,
        json!({"processed_max_age_days": null, "auto_purge": false})
    );

    for body in [
        json!({"processed_max_age_days": 0}),
        json!({"processed_max_age_days": -1}),
        json!({"processed_max_age_days": 36501}),
        json!({"processed_max_age_days": "7"}),
        json!({"auto_purge": "yes"}),
        json!({"retention": 1}),
    ] {
        app.put(path, body).await.assert_error(400, "INVALID_ARGUMENT");
    }
    assert_eq!(app.get(path).await.json, cleared.json, "refused updates change nothing");
    app.get("/api/v1/landing-zones/default/ghost/lifecycle")
        .await
        .assert_error(404, "NOT_FOUND");
    app.put(
        "/api/v1/landing-zones/default/ghost/lifecycle",
        json!({"auto_purge": true}),
    )
    .await
    .assert_error(404, "NOT_FOUND");
}

#[tokio::test]
async fn deleting_a_zone_removes_its_objects_and_a_new_zone_starts_empty() {
    let app = TestApp::new().await;
    zone(&app, "default", "uploads").await;
    zone(&app, "default", "uploads2").await;
    upload(&app, "/api/v1/landing-zones/default/uploads/files", "a.csv", b"a").await;
    upload(&app, "/api/v1/landing-zones/default/uploads/samples", "s.csv", b"s").await;
    upload(&app, "/api/v1/landing-zones/default/uploads2/files", "keep.csv", b"k").await;
    assert_eq!(app.keys_under("default/landing/uploads/").await.len(), 2);

    assert_eq!(app.delete("/api/v1/landing-zones/default/uploads").await.status, 204);
    assert!(app.keys_under("default/landing/uploads/").await.is_empty());
    assert_eq!(
        app.keys_under("default/landing/uploads2/").await.len(),
        1,
        "other zones keep theirs"
    );

    // Objects a deleted namespace left behind are cleared when a zone of the
    // same name is created again.
    let leftover = ObjectKey::parse("default/landing/uploads/_samples/old.csv").unwrap();
    app.services
        .store
        .put(&leftover, b"old".to_vec(), "text/csv")
        .await
        .unwrap();
    zone(&app, "default", "uploads").await;
    assert!(app.keys_under("default/landing/uploads/").await.is_empty());
    let samples = app.get("/api/v1/landing-zones/default/uploads/samples").await;
    assert_eq!(samples.json["total"], 0);
}

#[tokio::test]
async fn landing_routes_answer_404_while_the_feature_is_off() {
    let app = TestApp::new().await;
    zone(&app, "default", "uploads").await;
    let client = app.db.client().await;
    rat_testkit::dao::settings::put_feature_flags(
        &client,
        &FeatureFlags {
            landing_zones: false,
            ..FeatureFlags::default()
        },
    )
    .await
    .unwrap();
    for path in [
        ZONES,
        "/api/v1/landing-zones/default/uploads",
        "/api/v1/landing-zones/default/uploads/files",
        "/api/v1/landing-zones/default/uploads/samples",
        "/api/v1/landing-zones/default/uploads/lifecycle",
    ] {
        let message = app.get(path).await.assert_error(404, "NOT_FOUND");
        assert!(message.contains("FEATURE_DISABLED"), "{path}: {message}");
    }
    app.post(ZONES, json!({"namespace": "default", "name": "more"}))
        .await
        .assert_error(404, "NOT_FOUND");
}

#[tokio::test]
async fn every_landing_route_requires_the_api_key_when_one_is_set() {
    let app = TestApp::builder().api_key("secret").start().await;
    let base = "/api/v1/landing-zones/default/uploads";
    let id = uuid::Uuid::new_v4();
    for (method, path) in [
        (reqwest::Method::GET, ZONES.to_owned()),
        (reqwest::Method::POST, ZONES.to_owned()),
        (reqwest::Method::GET, base.to_owned()),
        (reqwest::Method::PUT, base.to_owned()),
        (reqwest::Method::DELETE, base.to_owned()),
        (reqwest::Method::GET, format!("{base}/files")),
        (reqwest::Method::POST, format!("{base}/files")),
        (reqwest::Method::GET, format!("{base}/files/{id}")),
        (reqwest::Method::DELETE, format!("{base}/files/{id}")),
        (reqwest::Method::GET, format!("{base}/samples")),
        (reqwest::Method::POST, format!("{base}/samples")),
        (reqwest::Method::DELETE, format!("{base}/samples/a.csv")),
        (reqwest::Method::GET, format!("{base}/lifecycle")),
        (reqwest::Method::PUT, format!("{base}/lifecycle")),
    ] {
        let response = app
            .http
            .request(method.clone(), format!("{}{path}", app.base))
            .send()
            .await
            .unwrap();
        TestApp::answer(response).await.assert_error(401, "UNAUTHENTICATED");
    }
    let created = app
        .post(ZONES, json!({"namespace": "default", "name": "uploads"}))
        .await;
    assert_eq!(created.status, 201, "with the key: {}", created.text);
    assert_eq!(
        created.json["owner"], "api-key",
        "the key's identity owns what it creates"
    );
}
