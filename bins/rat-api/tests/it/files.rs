//! `/api/v1/files` (contract §5): listing with types and exclusions, reads,
//! writes, uploads and deletes, the draft rule, the path rules and limits.

use crate::common::{Answer, TestApp};
use reqwest::multipart::{Form, Part};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const ORDERS: &str = "default/pipelines/silver/orders";

fn file_url(key: &str) -> String {
    format!("/api/v1/files/{key}")
}

async fn write(app: &TestApp, key: &str, content: &str) -> Answer {
    app.put(&file_url(key), json!({ "content": content })).await
}

async fn draft_dirty(app: &TestApp) -> bool {
    let pipeline = app.get("/api/v1/pipelines/default/silver/orders").await;
    pipeline.json["draft_dirty"].as_bool().expect("draft_dirty")
}

async fn publish(app: &TestApp) {
    let answer = app
        .post("/api/v1/pipelines/default/silver/orders/publish", json!({}))
        .await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    assert!(!draft_dirty(app).await, "a publish leaves the draft clean");
}

async fn upload(app: &TestApp, form: Form) -> Answer {
    let response = app
        .http
        .post(format!("{}/api/v1/files/upload", app.base))
        .multipart(form)
        .send()
        .await
        .expect("upload sent");
    TestApp::answer(response).await
}

/// Sends a request byte for byte (reqwest normalises `..` and `%2e%2e`
/// segments away, so it cannot send the paths the rules must refuse).
async fn raw(app: &TestApp, method: &str, target: &str, body: &str) -> (u16, Value) {
    let address = app.base.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
    let request = format!(
        "{method} {target} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).await.unwrap();
    let answer = String::from_utf8_lossy(&answer).into_owned();
    let status: u16 = answer.split(' ').nth(1).unwrap().parse().unwrap();
    let body = answer.split_once("\r\n\r\n").map_or("", |(_, body)| body);
    (status, serde_json::from_str(body).unwrap_or(Value::Null))
}

fn assert_envelope(status: u16, body: &Value, expected_status: u16, code: &str) {
    assert_eq!(status, expected_status, "{body}");
    assert_eq!(body["error"]["code"], code, "{body}");
    assert!(
        body["error"]["type"].is_string() && body["error"]["message"].is_string(),
        "{body}"
    );
}

fn is_rfc3339(value: &Value) -> bool {
    value
        .as_str()
        .is_some_and(|text| time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339).is_ok())
}

#[tokio::test]
async fn list_answers_every_file_with_its_type_in_key_order() {
    let app = TestApp::new().await;
    app.pipeline("default", "silver", "orders").await;
    for (relative, content) in [
        ("tests/quality/not_null.sql", "select 0"),
        ("tests/quality/deeper/x.sql", "select 0"),
        ("hooks/pre_run.sh", "echo"),
        ("meta.yaml", "owner: x"),
        ("orders.meta.json", "{}"),
        ("README.md", "# Orders"),
        ("data.csv", "a,b"),
        ("models/helper.sql", "select 1"),
    ] {
        assert_eq!(write(&app, &format!("{ORDERS}/{relative}"), content).await.status, 200);
    }
    // Outside the directory, and in a directory whose name only starts alike.
    write(&app, "default/pipelines/silver/orders_old/pipeline.sql", "select 2").await;
    write(&app, "default/notes.md", "notes").await;

    // No trailing '/': the prefix is a directory all the same.
    let listed = app.get(&format!("/api/v1/files?prefix={ORDERS}")).await;
    assert_eq!(listed.status, 200, "{}", listed.text);
    let object = listed.json.as_object().unwrap();
    assert_eq!(
        object.keys().collect::<Vec<_>>(),
        ["files"],
        "no truncated flag below the limit"
    );
    let files = listed.json["files"].as_array().unwrap();
    let seen: Vec<(String, String)> = files
        .iter()
        .map(|f| {
            (
                f["path"].as_str().unwrap().trim_start_matches(ORDERS).to_owned(),
                f["type"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let expected = [
        ("/README.md", "doc"),
        ("/config.yaml", "config"),
        ("/data.csv", ""),
        ("/hooks/pre_run.sh", "hook"),
        ("/meta.yaml", "meta"),
        ("/models/helper.sql", ""),
        ("/orders.meta.json", "meta"),
        ("/pipeline.sql", "pipeline-sql"),
        ("/tests/quality/deeper/x.sql", ""),
        ("/tests/quality/not_null.sql", "test"),
    ];
    assert_eq!(
        seen,
        expected.map(|(p, t)| (p.to_owned(), t.to_owned())),
        "{}",
        listed.text
    );
    for file in files {
        let keys: Vec<&String> = file.as_object().unwrap().keys().collect();
        assert_eq!(keys, ["modified", "path", "size", "type"], "{file}");
        assert!(is_rfc3339(&file["modified"]), "{file}");
    }
    let readme = files
        .iter()
        .find(|f| f["path"] == format!("{ORDERS}/README.md"))
        .unwrap();
    assert_eq!(readme["size"], 8);

    // A python pipeline's source file.
    app.post(
        "/api/v1/pipelines",
        json!({"namespace": "default", "layer": "gold", "name": "model", "type": "python"}),
    )
    .await;
    let python = app.get("/api/v1/files?prefix=default/pipelines/gold/model/").await;
    assert_eq!(python.json["files"][1]["type"], "pipeline-py", "{}", python.text);
}

#[tokio::test]
async fn exclude_leaves_out_whole_directory_segments_below_the_prefix() {
    let app = TestApp::new().await;
    for key in [
        "shop/landing/uploads/a.csv",
        "shop/data/raw/b.csv",
        "shop/pipelines/silver/x/data/c.csv",
        "shop/pipelines/silver/x/tests/quality/t.sql",
        "shop/pipelines/silver/x/tests.md",
        "shop/pipelines/silver/x/landing.md",
        "shop/pipelines/silver/x/pipeline.sql",
    ] {
        // Straight into the store: the files API writes inside pipelines only.
        let key = rat_versioning::ObjectKey::parse(key).unwrap();
        app.services.store.put(&key, b"x".to_vec(), "text/plain").await.unwrap();
    }
    let paths = |answer: &Answer| -> Vec<String> {
        answer.json["files"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["path"].as_str().unwrap().to_owned())
            .collect()
    };
    let all = app.get("/api/v1/files?prefix=shop/").await;
    assert_eq!(paths(&all).len(), 7);
    // ratd's portal call: landing and data directories at any depth.
    let some = app.get("/api/v1/files?prefix=shop&exclude=landing,data").await;
    assert_eq!(
        paths(&some),
        [
            "shop/pipelines/silver/x/landing.md",
            "shop/pipelines/silver/x/pipeline.sql",
            "shop/pipelines/silver/x/tests.md",
            "shop/pipelines/silver/x/tests/quality/t.sql",
        ],
        "files merely named like an excluded directory stay"
    );
    let nested = app
        .get("/api/v1/files?prefix=shop/pipelines/silver/x/&exclude=/tests/quality/,%20,")
        .await;
    assert_eq!(
        paths(&nested),
        [
            "shop/pipelines/silver/x/data/c.csv",
            "shop/pipelines/silver/x/landing.md",
            "shop/pipelines/silver/x/pipeline.sql",
            "shop/pipelines/silver/x/tests.md",
        ],
        "multi-segment entries, surrounding slashes and empty entries"
    );
    let none = app.get("/api/v1/files?prefix=nowhere/").await;
    assert_eq!(none.json, json!({"files": []}));
}

#[tokio::test]
async fn list_errors() {
    let app = TestApp::new().await;
    for query in [
        "",
        "?prefix=",
        "?exclude=landing",
        "?prefix=/default/",
        "?prefix=default/%2e%2e/x",
        "?prefix=default/%252e%252e/",
        "?prefix=default%5Cx",
        "?prefix=default/a%20b",
    ] {
        app.get(&format!("/api/v1/files{query}"))
            .await
            .assert_error(400, "INVALID_ARGUMENT");
    }
    let many = vec!["x"; 65].join(",");
    app.get(&format!("/api/v1/files?prefix=default/&exclude={many}"))
        .await
        .assert_error(400, "INVALID_ARGUMENT");
}

#[tokio::test]
async fn read_answers_the_content_at_head() {
    let app = TestApp::new().await;
    app.pipeline("default", "silver", "orders").await;
    let key = format!("{ORDERS}/pipeline.sql");
    write(&app, &key, "SELECT 'é' AS x\n").await;
    let read = app.get(&file_url(&key)).await;
    assert_eq!(read.status, 200, "{}", read.text);
    let keys: Vec<&String> = read.json.as_object().unwrap().keys().collect();
    assert_eq!(keys, ["content", "modified", "path", "size"]);
    assert_eq!(read.json["path"], key);
    assert_eq!(read.json["content"], "SELECT 'é' AS x\n");
    assert_eq!(read.json["size"], 17, "bytes, not characters");
    assert!(is_rfc3339(&read.json["modified"]));

    app.get(&file_url(&format!("{ORDERS}/missing.sql")))
        .await
        .assert_error(404, "NOT_FOUND");
    app.get(&file_url(ORDERS)).await.assert_error(404, "NOT_FOUND");

    // Binary content is refused rather than mangled into replacement characters.
    let form = Form::new()
        .text("path", format!("{ORDERS}/blob.bin"))
        .part("file", Part::bytes(vec![0xff, 0xfe, 0x00, 0x01]).file_name("blob.bin"));
    assert_eq!(upload(&app, form).await.status, 201);
    let message = app
        .get(&file_url(&format!("{ORDERS}/blob.bin")))
        .await
        .assert_error(422, "INVALID_ARGUMENT");
    assert!(
        message.contains("not text") && message.contains("download"),
        "{message}"
    );
}

#[tokio::test]
async fn write_answers_the_version_and_dirties_the_draft() {
    let app = TestApp::new().await;
    app.pipeline("default", "silver", "orders").await;
    publish(&app).await;
    let key = format!("{ORDERS}/pipeline.sql");
    let written = write(&app, &key, "SELECT 2").await;
    assert_eq!(written.status, 200, "{}", written.text);
    let version = written.json["version_id"].as_str().unwrap().to_owned();
    assert!(!version.is_empty());
    assert_eq!(
        written.json,
        json!({"path": key, "status": "written", "version_id": version})
    );
    assert!(draft_dirty(&app).await, "a write inside the pipeline dirties its draft");
    assert_eq!(app.get(&file_url(&key)).await.json["content"], "SELECT 2");
    let again = write(&app, &key, "SELECT 3").await;
    assert_ne!(again.json["version_id"], version, "every write is a new version");

    // The audit row names the pipeline.
    let audit = app.audit_rows().await;
    let inside = audit.iter().find(|r| r.action == "file.write").unwrap();
    assert_eq!(inside.object_type.as_deref(), Some("pipeline"));
    let id = app.get("/api/v1/pipelines/default/silver/orders").await.json["id"].clone();
    assert_eq!(inside.object_id.map(|u| u.to_string()), id.as_str().map(str::to_owned));
}

#[tokio::test]
async fn write_errors() {
    let app = TestApp::new().await;
    let key = format!("{ORDERS}/pipeline.sql");
    app.put(&file_url(&key), json!({}))
        .await
        .assert_error(400, "INVALID_ARGUMENT");
    app.put(&file_url(&key), json!({"content": 5}))
        .await
        .assert_error(400, "INVALID_ARGUMENT");
    let message = app
        .put(&file_url(&key), json!({"content": "x", "mode": "append"}))
        .await
        .assert_error(400, "INVALID_ARGUMENT");
    assert!(message.contains("mode"), "{message}");
    // The JSON limit (1 MiB) applies to writes; only uploads may be larger.
    let big = "x".repeat(1024 * 1024 + 1);
    app.put(&file_url(&key), json!({ "content": big }))
        .await
        .assert_error(413, "RESOURCE_EXHAUSTED");
    app.get(&file_url(&key)).await.assert_error(404, "NOT_FOUND");
}

#[tokio::test]
async fn upload_answers_201_and_dirties_the_draft() {
    let app = TestApp::new().await;
    app.pipeline("default", "silver", "orders").await;
    publish(&app).await;
    let key = format!("{ORDERS}/seeds/countries.csv");
    let form = Form::new()
        .text("path", key.clone())
        .text("comment", "ignored, as ratd does")
        .part(
            "file",
            Part::bytes(b"code,name\nfr,France\n".to_vec()).file_name("countries.csv"),
        );
    let uploaded = upload(&app, form).await;
    assert_eq!(uploaded.status, 201, "{}", uploaded.text);
    let version = uploaded.json["version_id"].as_str().unwrap().to_owned();
    assert_eq!(
        uploaded.json,
        json!({"path": key, "filename": "countries.csv", "size": 20, "status": "uploaded", "version_id": version})
    );
    assert!(draft_dirty(&app).await);
    assert_eq!(app.get(&file_url(&key)).await.json["content"], "code,name\nfr,France\n");

    // Larger than the JSON limit, well within the upload limit; no file name given.
    let big = vec![b'a'; 2 * 1024 * 1024];
    let form = Form::new()
        .text("path", format!("{ORDERS}/big.txt"))
        .part("file", Part::bytes(big));
    let uploaded = upload(&app, form).await;
    assert_eq!(uploaded.status, 201, "{}", uploaded.text);
    assert_eq!(uploaded.json["filename"], "big.txt");
    assert_eq!(uploaded.json["size"], 2 * 1024 * 1024);

    let audit = app.audit_rows().await;
    assert_eq!(audit[0].action, "file.upload");
    assert_eq!(audit[0].object_type.as_deref(), Some("pipeline"));
    assert!(audit[0].object_id.is_some());
}

#[tokio::test]
async fn upload_errors() {
    let app = TestApp::new().await;
    app.pipeline("default", "silver", "orders").await;
    let key = format!("{ORDERS}/a.csv");
    let file = || Part::bytes(b"x".to_vec()).file_name("a.csv");
    for (form, what) in [
        (Form::new().part("file", file()), "path"),
        // The content streams to the store as it arrives: its key comes first.
        (Form::new().part("file", file()).text("path", key.clone()), "before"),
        (Form::new().text("path", key.clone()), "file"),
        (
            Form::new()
                .text("path", key.clone())
                .text("path", key.clone())
                .part("file", file()),
            "path",
        ),
        (Form::new().text("path", "a/../b.csv").part("file", file()), ".."),
        (Form::new().text("path", "/abs.csv").part("file", file()), "relative"),
        (Form::new().text("path", "").part("file", file()), "required"),
    ] {
        let message = upload(&app, form).await.assert_error(400, "INVALID_ARGUMENT");
        assert!(message.contains(what), "{what}: {message}");
    }
    // Not multipart at all.
    app.post("/api/v1/files/upload", json!({"path": key}))
        .await
        .assert_error(400, "INVALID_ARGUMENT");

    // Over the upload limit (32 MiB): 413, nothing written.
    let form = Form::new()
        .text("path", key.clone())
        .part("file", Part::bytes(vec![b'x'; 32 * 1024 * 1024 + 1]).file_name("a.csv"));
    upload(&app, form).await.assert_error(413, "RESOURCE_EXHAUSTED");
    app.get(&file_url(&key)).await.assert_error(404, "NOT_FOUND");
}

#[tokio::test]
async fn delete_answers_204_and_dirties_the_draft() {
    let app = TestApp::new().await;
    app.pipeline("default", "silver", "orders").await;
    let key = format!("{ORDERS}/extra.sql");
    write(&app, &key, "select 1").await;
    publish(&app).await;
    let deleted = app.delete(&file_url(&key)).await;
    assert_eq!(deleted.status, 204, "{}", deleted.text);
    assert!(deleted.text.is_empty());
    assert!(
        draft_dirty(&app).await,
        "a delete dirties the draft (ratd forgets this)"
    );
    app.get(&file_url(&key)).await.assert_error(404, "NOT_FOUND");
    app.delete(&file_url(&key)).await.assert_error(404, "NOT_FOUND");
    let listed = app.get(&format!("/api/v1/files?prefix={ORDERS}/")).await;
    assert!(
        !listed.text.contains("extra.sql"),
        "deleted files are not listed: {}",
        listed.text
    );

    let audit = app.audit_rows().await;
    let row = audit.iter().find(|r| r.action == "file.delete").unwrap();
    assert_eq!(row.object_type.as_deref(), Some("pipeline"));
}

#[tokio::test]
async fn path_rules_refuse_traversal_encoded_or_not_before_any_store_call() {
    let app = TestApp::new().await;
    app.pipeline("default", "silver", "orders").await;
    let body = r#"{"content":"x"}"#;
    for (target, why) in [
        (
            "/api/v1/files/default/pipelines/silver/orders/../../gold/x/pipeline.sql",
            "'..'",
        ),
        (
            "/api/v1/files/default/pipelines/silver/orders/%2e%2e/%2E%2E/gold/x.sql",
            "'..'",
        ),
        ("/api/v1/files/default/pipelines/silver/orders/%252e%252e/x.sql", "'..'"),
        ("/api/v1/files/..", "'..'"),
        ("/api/v1/files/%2e%2e/etc/passwd", "'..'"),
        ("/api/v1/files//etc/passwd", "relative"),
        ("/api/v1/files/%2Fetc/passwd", "relative"),
        ("/api/v1/files/default/a%5Cb.sql", "backslash"),
        ("/api/v1/files/default/a%255Cb.sql", "backslash"),
        ("/api/v1/files/default/a%00b.sql", "NUL"),
        ("/api/v1/files/default/a%2500b.sql", "NUL"),
        ("/api/v1/files/default/a%20b.sql", "not allowed"),
        ("/api/v1/files/default/./a.sql", "not allowed"),
        ("/api/v1/files/", "required"),
    ] {
        for method in ["GET", "PUT", "DELETE"] {
            let (status, answer) = raw(&app, method, target, body).await;
            assert_envelope(status, &answer, 400, "INVALID_ARGUMENT");
            assert_eq!(answer["error"]["type"], "VALIDATION", "{method} {target}");
            let message = answer["error"]["message"].as_str().unwrap();
            assert!(message.contains(why), "{method} {target}: {message}");
        }
    }
    let long = format!("/api/v1/files/default/{}", "a".repeat(1100));
    let (status, answer) = raw(&app, "PUT", &long, body).await;
    assert_envelope(status, &answer, 400, "INVALID_ARGUMENT");
    assert!(!draft_dirty(&app).await, "no refused write reached the pipeline");
    let listed = app.get("/api/v1/files?prefix=default/").await;
    assert_eq!(
        listed.json["files"].as_array().unwrap().len(),
        2,
        "only the starter files"
    );
}
