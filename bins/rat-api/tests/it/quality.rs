//! Quality tests (contract §10): definitions as rows with their SQL in the
//! store, `published`, the draft rule, duplicates that leave the existing
//! test alone, results read from `quality_results`, and the feature flag.

use std::sync::Arc;

use crate::common::{Answer, TestApp};
use rat_domain::{FeatureFlags, QualityStatus, TestName};
use rat_testkit::dao::quality::{self, NewQualityResult};
use serde_json::{Value, json};
use time::macros::datetime;
use uuid::Uuid;

const PIPELINE: &str = "/api/v1/pipelines/default/silver/orders";
const TESTS: &str = "/api/v1/pipelines/default/silver/orders/tests";
const QUALITY_DIR: &str = "default/pipelines/silver/orders/tests/quality";

async fn create(app: &TestApp, body: Value) -> Answer {
    app.post(TESTS, body).await
}

async fn draft_dirty(app: &TestApp) -> bool {
    app.get(PIPELINE).await.json["draft_dirty"].as_bool().unwrap()
}

async fn publish(app: &TestApp) {
    let answer = app.post(&format!("{PIPELINE}/publish"), json!({})).await;
    assert_eq!(answer.status, 200, "{}", answer.text);
}

async fn file(app: &TestApp, name: &str) -> Answer {
    app.get(&format!("/api/v1/files/{QUALITY_DIR}/{name}.sql")).await
}

async fn test_rows(app: &TestApp) -> i64 {
    let client = app.db.client().await;
    client
        .query_one("SELECT count(*) FROM quality_tests", &[])
        .await
        .unwrap()
        .get(0)
}

#[tokio::test]
async fn create_writes_the_sql_file_and_the_row() {
    let app = TestApp::new().await;
    app.pipeline("default", "silver", "orders").await;
    publish(&app).await;
    let created = create(
        &app,
        json!({"name": "no_null_ids", "sql": "SELECT count(*) FROM t WHERE id IS NULL"}),
    )
    .await;
    assert_eq!(created.status, 201, "{}", created.text);
    assert_eq!(
        created.json,
        json!({"name": "no_null_ids", "severity": "error", "path": format!("{QUALITY_DIR}/no_null_ids.sql")})
    );
    assert_eq!(
        file(&app, "no_null_ids").await.json["content"],
        "SELECT count(*) FROM t WHERE id IS NULL"
    );
    assert!(draft_dirty(&app).await, "the new SQL file dirties the draft");

    let warn = create(
        &app,
        json!({"name": "fresh", "sql": "select 0", "severity": "warn", "description": "updated today"}),
    )
    .await;
    assert_eq!(warn.status, 201, "{}", warn.text);
    assert_eq!(warn.json["severity"], "warn");

    let client = app.db.client().await;
    let pipeline_id: Uuid = app.get(PIPELINE).await.json["id"].as_str().unwrap().parse().unwrap();
    let row = quality::get_by_name(&client, pipeline_id.into(), &TestName::parse("fresh").unwrap())
        .await
        .unwrap();
    assert_eq!(row.description, "updated today");
    assert_eq!(row.s3_path, format!("{QUALITY_DIR}/fresh.sql"));

    let audit = app.audit_rows().await;
    assert_eq!(audit[0].action, "quality_test.create");
    assert_eq!(audit[0].object_type.as_deref(), Some("pipeline"));
    assert_eq!(audit[0].object_id, Some(pipeline_id));
}

#[tokio::test]
async fn create_errors() {
    let app = TestApp::new().await;
    create(&app, json!({"name": "t", "sql": "select 0"}))
        .await
        .assert_error(404, "NOT_FOUND");
    app.pipeline("default", "silver", "orders").await;
    for (body, why) in [
        (json!({"name": "Bad", "sql": "select 0"}), "test"),
        (json!({"name": "", "sql": "select 0"}), "test"),
        (json!({"name": "a".repeat(129), "sql": "select 0"}), "test"),
        (json!({"name": "run", "sql": "select 0"}), "reserved"),
        (json!({"name": "t", "sql": ""}), "sql"),
        (json!({"name": "t", "sql": " \n\t"}), "sql"),
        (json!({"name": "t"}), "sql"),
        (json!({"name": "t", "sql": "select 0", "severity": "fatal"}), "severity"),
        (json!({"name": "t", "sql": "select 0", "tags": []}), "tags"),
        (
            json!({"name": "t", "sql": "select 0", "description": "d".repeat(5001)}),
            "description",
        ),
    ] {
        let message = create(&app, body).await.assert_error(400, "INVALID_ARGUMENT");
        assert!(message.contains(why), "{why}: {message}");
    }
    app.post(
        "/api/v1/pipelines/default/silver/Orders/tests",
        json!({"name": "t", "sql": "x"}),
    )
    .await
    .assert_error(400, "INVALID_ARGUMENT");
    // SQL over 1 MiB cannot even arrive: the JSON body limit answers first.
    create(&app, json!({"name": "t", "sql": "x".repeat(1024 * 1024 + 1)}))
        .await
        .assert_error(413, "RESOURCE_EXHAUSTED");
    assert_eq!(test_rows(&app).await, 0);
    file(&app, "t").await.assert_error(404, "NOT_FOUND");
    assert!(!draft_dirty(&app).await, "refused creates write nothing");
}

#[tokio::test]
async fn a_duplicate_is_409_and_leaves_the_existing_test_untouched() {
    let app = TestApp::new().await;
    app.pipeline("default", "silver", "orders").await;
    assert_eq!(create(&app, json!({"name": "t", "sql": "select 1"})).await.status, 201);
    let before = file(&app, "t").await.json;
    publish(&app).await;
    create(&app, json!({"name": "t", "sql": "select 2", "severity": "warn"}))
        .await
        .assert_error(409, "ALREADY_EXISTS");
    let after = file(&app, "t").await.json;
    assert_eq!(after["content"], "select 1", "the refused SQL never reached the file");
    assert_eq!(after["modified"], before["modified"]);
    assert!(!draft_dirty(&app).await, "nothing was written");
    assert_eq!(test_rows(&app).await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_creates_of_one_name_make_one_whole_test() {
    let app = Arc::new(TestApp::new().await);
    app.pipeline("default", "silver", "orders").await;
    let creates: Vec<_> = (0..6)
        .map(|i| {
            let app = app.clone();
            tokio::spawn(async move {
                let sql = format!("select {i}");
                (sql.clone(), create(&app, json!({"name": "t", "sql": sql})).await)
            })
        })
        .collect();
    let mut winners = Vec::new();
    for create in creates {
        let (sql, answer) = create.await.unwrap();
        match answer.status.as_u16() {
            201 => winners.push(sql),
            _ => {
                answer.assert_error(409, "ALREADY_EXISTS");
            }
        }
    }
    assert_eq!(winners.len(), 1, "exactly one create wins");
    let listed = app.get(TESTS).await;
    assert_eq!(listed.json["total"], 1);
    assert_eq!(
        listed.json["tests"][0]["sql"], winners[0],
        "the test's SQL is the winner's, not a loser's"
    );
}

#[tokio::test]
async fn list_shows_sql_at_head_and_published() {
    let app = TestApp::new().await;
    app.pipeline("default", "silver", "orders").await;
    let empty = app.get(TESTS).await;
    assert_eq!(empty.status, 200, "{}", empty.text);
    assert_eq!(empty.json, json!({"tests": [], "total": 0}));

    create(
        &app,
        json!({"name": "b_rows", "sql": "select 1", "description": "has rows"}),
    )
    .await;
    publish(&app).await;
    create(&app, json!({"name": "a_ids", "sql": "select 2", "severity": "warn"})).await;
    let listed = app.get(TESTS).await;
    assert_eq!(
        listed.json,
        json!({
            "tests": [
                {"name": "a_ids", "sql": "select 2", "severity": "warn", "description": "", "published": false,
                 "tags": [], "remediation": ""},
                {"name": "b_rows", "sql": "select 1", "severity": "error", "description": "has rows", "published": true,
                 "tags": [], "remediation": ""},
            ],
            "total": 2,
        })
    );

    // The SQL is read at HEAD: an edit through /files shows; a deleted file reads as empty.
    app.put(
        &format!("/api/v1/files/{QUALITY_DIR}/b_rows.sql"),
        json!({"content": "select 3"}),
    )
    .await;
    app.delete(&format!("/api/v1/files/{QUALITY_DIR}/a_ids.sql")).await;
    let listed = app.get(TESTS).await;
    assert_eq!(listed.json["tests"][0]["sql"], "");
    assert_eq!(listed.json["tests"][1]["sql"], "select 3");
    assert_eq!(listed.json["tests"][1]["published"], true, "the key is still pinned");

    let page = app.get(&format!("{TESTS}?limit=1&offset=1")).await;
    assert_eq!(page.json["tests"].as_array().unwrap().len(), 1);
    assert_eq!(page.json["tests"][0]["name"], "b_rows");
    assert_eq!(page.json["total"], 2);

    app.get(&format!("{TESTS}?offset=-1"))
        .await
        .assert_error(400, "INVALID_ARGUMENT");
    app.get("/api/v1/pipelines/default/silver/ghost/tests")
        .await
        .assert_error(404, "NOT_FOUND");
}

#[tokio::test]
async fn delete_removes_the_row_results_and_file() {
    let app = TestApp::new().await;
    app.pipeline("default", "silver", "orders").await;
    create(&app, json!({"name": "t", "sql": "select 0"})).await;
    create(&app, json!({"name": "kept", "sql": "select 0"})).await;
    publish(&app).await;
    let client = app.db.client().await;
    let pipeline_id: Uuid = app.get(PIPELINE).await.json["id"].as_str().unwrap().parse().unwrap();
    let test = quality::get_by_name(&client, pipeline_id.into(), &TestName::parse("t").unwrap())
        .await
        .unwrap();
    quality::insert_result(
        &client,
        &NewQualityResult {
            test_id: test.id,
            run_id: None,
            status: QualityStatus::Passed,
            value: Some(0.0),
            expected: Some(0.0),
            duration_ms: Some(3),
            ran_at: datetime!(2026-06-01 12:00 UTC),
        },
    )
    .await
    .unwrap();

    let deleted = app.delete(&format!("{TESTS}/t")).await;
    assert_eq!(deleted.status, 204, "{}", deleted.text);
    assert!(deleted.text.is_empty());
    file(&app, "t").await.assert_error(404, "NOT_FOUND");
    assert!(draft_dirty(&app).await, "the deleted SQL file dirties the draft");
    let listed = app.get(TESTS).await;
    assert_eq!(listed.json["total"], 1);
    assert_eq!(listed.json["tests"][0]["name"], "kept");
    let results: i64 = client
        .query_one("SELECT count(*) FROM quality_results", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(results, 0, "its results go with it");

    app.delete(&format!("{TESTS}/t")).await.assert_error(404, "NOT_FOUND");
    app.delete(&format!("{TESTS}/Bad"))
        .await
        .assert_error(400, "INVALID_ARGUMENT");
    app.delete("/api/v1/pipelines/default/silver/ghost/tests/t")
        .await
        .assert_error(404, "NOT_FOUND");

    // A test whose file was already deleted through /files can still be deleted.
    app.delete(&format!("/api/v1/files/{QUALITY_DIR}/kept.sql")).await;
    assert_eq!(app.delete(&format!("{TESTS}/kept")).await.status, 204);
    assert_eq!(app.get(TESTS).await.json["total"], 0);

    let audit = app.audit_rows().await;
    let row = audit
        .iter()
        .find(|r| r.action == "quality_test.delete" && r.details.as_ref().unwrap()["status"] == 204);
    assert_eq!(row.unwrap().object_id, Some(pipeline_id));
}

#[tokio::test]
async fn run_answers_the_newest_recorded_result_of_each_test() {
    let app = TestApp::new().await;
    app.pipeline("default", "silver", "orders").await;
    let run_url = format!("{TESTS}/run");
    let none = app.post(&run_url, json!({})).await;
    assert_eq!(none.status, 200, "{}", none.text);
    assert_eq!(
        none.json,
        json!({"results": [], "not_run": [], "passed": 0, "failed": 0, "total": 0})
    );

    for (name, severity) in [
        ("a_pass", "error"),
        ("b_fail", "error"),
        ("c_new", "error"),
        ("d_warn", "warn"),
    ] {
        create(&app, json!({"name": name, "sql": "select 0", "severity": severity})).await;
    }
    let client = app.db.client().await;
    let pipeline_id: Uuid = app.get(PIPELINE).await.json["id"].as_str().unwrap().parse().unwrap();
    let id_of = |name: &'static str| {
        let client = &client;
        async move {
            quality::get_by_name(client, pipeline_id.into(), &TestName::parse(name).unwrap())
                .await
                .unwrap()
                .id
        }
    };
    let (a, b, d) = (id_of("a_pass").await, id_of("b_fail").await, id_of("d_warn").await);
    let result = |test_id, status, value: f64, minute: u8| NewQualityResult {
        test_id,
        run_id: None,
        status,
        value: Some(value),
        expected: Some(0.0),
        duration_ms: Some(40 + i32::from(minute)),
        ran_at: datetime!(2026-06-01 12:00 UTC) + time::Duration::minutes(minute.into()),
    };
    for new in [
        result(a, QualityStatus::Failed, 3.0, 0),
        result(a, QualityStatus::Passed, 0.0, 5),
        result(b, QualityStatus::Failed, 7.0, 6),
        result(d, QualityStatus::Warned, 2.0, 7),
    ] {
        quality::insert_result(&client, &new).await.unwrap();
    }

    // No body at all, as ratd's clients send it.
    let response = app.http.post(format!("{}{run_url}", app.base)).send().await.unwrap();
    let ran = TestApp::answer(response).await;
    assert_eq!(ran.status, 200, "{}", ran.text);
    assert_eq!(
        ran.json,
        json!({
            "results": [
                {"name": "a_pass", "severity": "error", "status": "passed", "value": 0.0, "expected": 0.0,
                 "duration_ms": 45, "ran_at": "2026-06-01T12:05:00Z", "run_id": null},
                {"name": "b_fail", "severity": "error", "status": "failed", "value": 7.0, "expected": 0.0,
                 "duration_ms": 46, "ran_at": "2026-06-01T12:06:00Z", "run_id": null},
                {"name": "d_warn", "severity": "warn", "status": "warned", "value": 2.0, "expected": 0.0,
                 "duration_ms": 47, "ran_at": "2026-06-01T12:07:00Z", "run_id": null},
            ],
            "not_run": ["c_new"],
            "passed": 1,
            "failed": 2,
            "total": 4,
        }),
        "a never-run test is named in not_run, has no result, and counts in neither passed nor failed"
    );

    let page = app.post(&format!("{run_url}?limit=1&offset=3"), json!({})).await;
    assert_eq!(page.json["results"].as_array().unwrap().len(), 1);
    assert_eq!(page.json["results"][0]["name"], "d_warn");
    assert_eq!(page.json["not_run"], json!([]));
    let page = app.post(&format!("{run_url}?limit=1&offset=2"), json!({})).await;
    assert_eq!(
        (&page.json["results"], &page.json["not_run"]),
        (&json!([]), &json!(["c_new"])),
        "a page holding only a never-run test"
    );
    assert_eq!(
        (&page.json["passed"], &page.json["failed"], &page.json["total"]),
        (&json!(1), &json!(2), &json!(4)),
        "the counts cover every test, not the page"
    );
    app.post(&format!("{run_url}?limit=zero"), json!({}))
        .await
        .assert_error(400, "INVALID_ARGUMENT");
    app.post("/api/v1/pipelines/default/silver/ghost/tests/run", json!({}))
        .await
        .assert_error(404, "NOT_FOUND");
}

#[tokio::test]
async fn the_routes_are_gone_while_the_feature_is_off() {
    let app = TestApp::new().await;
    app.pipeline("default", "silver", "orders").await;
    create(&app, json!({"name": "t", "sql": "select 0"})).await;
    let client = app.db.client().await;
    let off = FeatureFlags {
        quality_tests: false,
        ..FeatureFlags::default()
    };
    rat_testkit::dao::settings::put_feature_flags(&client, &off)
        .await
        .unwrap();
    let message = app.get(TESTS).await.assert_error(404, "NOT_FOUND");
    assert!(message.contains("quality_tests"), "{message}");
    create(&app, json!({"name": "u", "sql": "select 0"}))
        .await
        .assert_error(404, "NOT_FOUND");
    app.delete(&format!("{TESTS}/t")).await.assert_error(404, "NOT_FOUND");
    app.post(&format!("{TESTS}/run"), json!({}))
        .await
        .assert_error(404, "NOT_FOUND");
    rat_testkit::dao::settings::put_feature_flags(&client, &FeatureFlags::default())
        .await
        .unwrap();
    assert_eq!(app.get(TESTS).await.json["total"], 1, "nothing changed while off");
}

/// RAT's TypeScript SDK calls `/api/v1/tests/{ns}/{layer}/{name}…`: the same
/// operations, the same answers, behind the same feature flag.
#[tokio::test]
async fn the_sdk_paths_answer_like_the_contract_paths() {
    const SDK: &str = "/api/v1/tests/default/silver/orders";
    let app = TestApp::new().await;
    app.pipeline("default", "silver", "orders").await;
    let created = app.post(SDK, json!({"name": "no_nulls", "sql": "select 0"})).await;
    assert_eq!(created.status, 201, "{}", created.text);
    assert_eq!(
        created.json,
        json!({"name": "no_nulls", "severity": "error", "path": format!("{QUALITY_DIR}/no_nulls.sql")})
    );
    app.post(SDK, json!({"name": "no_nulls", "sql": "select 1"}))
        .await
        .assert_error(409, "ALREADY_EXISTS");
    let listed = app.get(SDK).await;
    assert_eq!(listed.status, 200, "{}", listed.text);
    assert_eq!(listed.json, app.get(TESTS).await.json);
    assert_eq!(listed.json["total"], 1);
    let ran = app.post(&format!("{SDK}/run"), json!({})).await;
    assert_eq!(ran.status, 200, "{}", ran.text);
    assert_eq!(
        (ran.json["total"].clone(), ran.json["passed"].clone()),
        (json!(1), json!(0))
    );
    app.get("/api/v1/tests/default/platinum/orders")
        .await
        .assert_error(400, "INVALID_ARGUMENT");
    app.get("/api/v1/tests/default/silver/missing")
        .await
        .assert_error(404, "NOT_FOUND");

    let client = app.db.client().await;
    let off = FeatureFlags {
        quality_tests: false,
        ..FeatureFlags::default()
    };
    rat_testkit::dao::settings::put_feature_flags(&client, &off)
        .await
        .unwrap();
    app.get(SDK).await.assert_error(404, "NOT_FOUND");
    app.delete(&format!("{SDK}/no_nulls"))
        .await
        .assert_error(404, "NOT_FOUND");
    rat_testkit::dao::settings::put_feature_flags(&client, &FeatureFlags::default())
        .await
        .unwrap();

    let deleted = app.delete(&format!("{SDK}/no_nulls")).await;
    assert_eq!(deleted.status, 204, "{}", deleted.text);
    assert_eq!(test_rows(&app).await, 0);
    app.delete(&format!("{SDK}/no_nulls"))
        .await
        .assert_error(404, "NOT_FOUND");
}

#[tokio::test]
async fn severity_description_tags_and_remediation_come_from_the_annotations() {
    let app = TestApp::new().await;
    app.pipeline("default", "silver", "orders").await;
    let sql = "-- @severity: warning\n--@description: No duplicate ids\n-- @tags: completeness, ids\n\
               -- @remediation: Deduplicate in the bronze loader\nSELECT id FROM t GROUP BY id HAVING count(*) > 1";
    create(
        &app,
        json!({"name": "dupes", "sql": sql, "description": "from the body"}),
    )
    .await;
    let listed = app.get(TESTS).await;
    assert_eq!(listed.status, 200, "{}", listed.text);
    let test = &listed.json["tests"][0];
    assert_eq!(test["severity"], "warn", "`warning` means warn");
    assert_eq!(test["description"], "No duplicate ids");
    assert_eq!(test["tags"], json!(["completeness", "ids"]));
    assert_eq!(test["remediation"], "Deduplicate in the bronze loader");

    // The file is read at HEAD: an edit changes what the test says.
    app.put(
        &format!("/api/v1/files/{QUALITY_DIR}/dupes.sql"),
        json!({"content": "-- @tags: ids\nselect 0"}),
    )
    .await;
    let test = &app.get(TESTS).await.json["tests"][0];
    assert_eq!(
        (
            &test["severity"],
            &test["description"],
            &test["tags"],
            &test["remediation"]
        ),
        (&json!("error"), &json!("from the body"), &json!(["ids"]), &json!("")),
        "without annotations, the row's severity and description"
    );
}
