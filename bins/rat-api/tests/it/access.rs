//! The access rule on every route group, table-driven: {admin, owner,
//! write share, read share, role share, stranger} × {every route group} ×
//! {read, write, own} → the expected status, and on refusal nothing changed.
//!
//! Alice owns the namespace `team` and everything in it; the shares are on
//! the namespace (a share on a namespace counts on everything in it): bob
//! may write, carol read, the role `analysts` (dave) write; erin has
//! nothing; root has the admin role.

use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};

use crate::common::TestApp;
use crate::oidc::{Issuer, SigningKey, app_with, call};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Who {
    Admin,
    Owner,
    Writer,
    Reader,
    Role,
    Stranger,
}

const EVERYONE: [Who; 6] = [
    Who::Admin,
    Who::Owner,
    Who::Writer,
    Who::Reader,
    Who::Role,
    Who::Stranger,
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Needs {
    Read,
    Write,
    Own,
    Admin,
}

/// The status class the rule gives: 2xx, 403 or 404.
fn expected(who: Who, needs: Needs) -> u16 {
    match (who, needs) {
        (Who::Admin, _) => 200,
        (_, Needs::Admin) => 403,
        (Who::Stranger, _) => 404,
        (Who::Owner, _) => 200,
        (Who::Writer | Who::Role, Needs::Read | Needs::Write) => 200,
        (Who::Reader, Needs::Read) => 200,
        _ => 403,
    }
}

fn class(status: u16) -> u16 {
    if (200..300).contains(&status) { 200 } else { status }
}

struct Users {
    tokens: Vec<(Who, String)>,
}

impl Users {
    fn name(&self, who: Who) -> &'static str {
        match who {
            Who::Admin => "root",
            Who::Owner => "alice",
            Who::Writer => "bob",
            Who::Reader => "carol",
            Who::Role => "dave",
            Who::Stranger => "erin",
        }
    }

    fn token(&self, who: Who) -> &str {
        &self.tokens.iter().find(|(w, _)| *w == who).unwrap().1
    }
}

/// One request of the matrix: what it needs, and a read (as an admin) whose
/// answer must not change when the request is refused.
struct Case {
    group: &'static str,
    needs: Needs,
    method: Method,
    path: String,
    body: Option<Value>,
    witness: String,
}

fn case(group: &'static str, needs: Needs, method: Method, path: &str, body: Option<Value>, witness: &str) -> Case {
    Case {
        group,
        needs,
        method,
        path: path.to_owned(),
        body,
        witness: witness.to_owned(),
    }
}

/// The answer to `GET path` as the operator, without fields that change on
/// their own (times of runs that go on).
async fn witness(app: &TestApp, path: &str) -> Value {
    let answer = call(app, Method::GET, path, "operator-key", None).await;
    assert_eq!(answer.status, 200, "witness {path}: {}", answer.text);
    answer.json
}

async fn setup() -> (TestApp, Users, Issuer, SigningKey) {
    let key = SigningKey::new("k1");
    let issuer = Issuer::start(&[&key]).await;
    let app = app_with(&issuer, Duration::from_secs(30)).await;
    let tokens = vec![
        (Who::Admin, key.mint(&issuer.claims("root", &["rat-admin"]))),
        (Who::Owner, key.mint(&issuer.claims("alice", &[]))),
        (Who::Writer, key.mint(&issuer.claims("bob", &[]))),
        (Who::Reader, key.mint(&issuer.claims("carol", &[]))),
        (Who::Role, key.mint(&issuer.claims("dave", &["analysts"]))),
        (Who::Stranger, key.mint(&issuer.claims("erin", &[]))),
    ];
    let users = Users { tokens };
    let alice = users.token(Who::Owner).to_owned();
    let ok = |answer: crate::common::Answer, what: &str| {
        assert!(answer.status.is_success(), "{what}: {} {}", answer.status, answer.text);
        answer
    };
    let post = |path: &'static str, body: Value| {
        let (app, alice) = (&app, alice.clone());
        async move { call(app, Method::POST, path, &alice, Some(body)).await }
    };
    // Anyone signed in may create a namespace, and owns it.
    ok(post("/api/v1/namespaces", json!({"name": "team"})).await, "namespace");
    ok(
        post(
            "/api/v1/pipelines",
            json!({"namespace": "team", "layer": "silver", "name": "orders"}),
        )
        .await,
        "pipeline",
    );
    ok(
        post("/api/v1/pipelines/team/silver/orders/publish", json!({"message": "v1"})).await,
        "publish",
    );
    ok(
        post("/api/v1/landing-zones", json!({"namespace": "team", "name": "drop"})).await,
        "zone",
    );
    ok(
        call(
            &app,
            Method::PUT,
            "/api/v1/tables/team/silver/orders/metadata",
            &alice,
            Some(json!({"description": "Orders"})),
        )
        .await,
        "table metadata",
    );
    let schedule = ok(
        post("/api/v1/schedules", json!({"namespace": "team", "layer": "silver", "pipeline": "orders", "cron": "0 3 * * *", "enabled": false})).await,
        "schedule",
    );
    assert_eq!(schedule.json["id"].as_str().map(str::len), Some(36));
    let namespace_id = call(&app, Method::GET, "/api/v1/namespaces", &alice, None).await.json["namespaces"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["name"] == "team")
        .expect("alice lists her namespace")["id"]
        .clone();
    for (to, level) in [("bob", "write"), ("carol", "read"), ("role:analysts", "write")] {
        ok(
            post(
                "/api/v1/sharing",
                json!({"object_type": "namespace", "object_id": namespace_id, "shared_with": to, "access_level": level}),
            )
            .await,
            "share",
        );
    }
    (app, users, issuer, key)
}

fn name_of(who: Who) -> String {
    format!("{who:?}").to_lowercase()
}

#[tokio::test]
async fn every_route_group_answers_each_caller_by_the_rule() {
    let (app, users, _issuer, _key) = setup().await;
    let operator = "operator-key";
    let p = "/api/v1/pipelines/team/silver/orders";
    let schedule_id = call(&app, Method::GET, "/api/v1/schedules?namespace=team", operator, None)
        .await
        .json["schedules"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let run = call(
        &app,
        Method::POST,
        "/api/v1/runs",
        operator,
        Some(json!({"namespace": "team", "layer": "silver", "pipeline": "orders"})),
    )
    .await;
    assert_eq!(run.status, 202, "{}", run.text);
    let run_id = run.json["run_id"]
        .as_str()
        .or(run.json["id"].as_str())
        .unwrap()
        .to_owned();
    let schedule = format!("/api/v1/schedules/{schedule_id}");
    let zone = "/api/v1/landing-zones/team/drop";
    let table = "/api/v1/tables/team/silver/orders/metadata";
    let file = "/api/v1/files/team/pipelines/silver/orders/pipeline.sql";
    let ids: Vec<(String, &str)> = vec![
        (witness(&app, p).await["id"].as_str().unwrap().to_owned(), "pipeline"),
        (
            witness(&app, zone).await["id"].as_str().unwrap().to_owned(),
            "landing_zone",
        ),
        (witness(&app, table).await["id"].as_str().unwrap().to_owned(), "table"),
    ];

    for who in EVERYONE {
        let n = name_of(who);
        let mut cases = vec![
            // Pipelines.
            case("pipeline", Needs::Read, Method::GET, p, None, p),
            case(
                "pipeline",
                Needs::Write,
                Method::PUT,
                p,
                Some(json!({"description": format!("by {n}")})),
                p,
            ),
            // Runs.
            case(
                "runs",
                Needs::Read,
                Method::GET,
                &format!("/api/v1/runs/{run_id}"),
                None,
                p,
            ),
            case(
                "runs",
                Needs::Read,
                Method::GET,
                &format!("/api/v1/runs/{run_id}/logs"),
                None,
                p,
            ),
            case(
                "runs",
                Needs::Write,
                Method::POST,
                "/api/v1/runs",
                Some(json!({"namespace": "team", "layer": "silver", "pipeline": "orders"})),
                "/api/v1/runs?namespace=team",
            ),
            // Schedules.
            case("schedules", Needs::Read, Method::GET, &schedule, None, &schedule),
            case(
                "schedules",
                Needs::Write,
                Method::PUT,
                &schedule,
                Some(json!({"cron": format!("{} 3 * * *", n.len())})),
                &schedule,
            ),
            // Files.
            case("files", Needs::Read, Method::GET, file, None, file),
            case(
                "files",
                Needs::Read,
                Method::GET,
                "/api/v1/files?prefix=team/pipelines/silver/orders",
                None,
                file,
            ),
            case(
                "files",
                Needs::Write,
                Method::PUT,
                file,
                Some(json!({"content": format!("SELECT 1 AS {n}")})),
                file,
            ),
            // The pipeline's retention.
            case(
                "retention",
                Needs::Read,
                Method::GET,
                &format!("{p}/retention"),
                None,
                &format!("{p}/retention"),
            ),
            case(
                "retention",
                Needs::Write,
                Method::PUT,
                &format!("{p}/retention"),
                Some(json!({"runs_max_per_pipeline": 10 + n.len()})),
                &format!("{p}/retention"),
            ),
            // Versions.
            case(
                "versions",
                Needs::Read,
                Method::GET,
                &format!("{p}/versions"),
                None,
                &format!("{p}/versions"),
            ),
            case(
                "versions",
                Needs::Write,
                Method::POST,
                &format!("{p}/publish"),
                Some(json!({"message": n})),
                &format!("{p}/versions"),
            ),
            // Quality tests.
            case(
                "quality",
                Needs::Read,
                Method::GET,
                &format!("{p}/tests"),
                None,
                &format!("{p}/tests"),
            ),
            case(
                "quality",
                Needs::Write,
                Method::POST,
                &format!("{p}/tests"),
                Some(json!({"name": format!("t_{n}"), "sql": "SELECT 1 WHERE false"})),
                &format!("{p}/tests"),
            ),
            // Triggers.
            case(
                "triggers",
                Needs::Read,
                Method::GET,
                &format!("{p}/triggers"),
                None,
                &format!("{p}/triggers"),
            ),
            case(
                "triggers",
                Needs::Write,
                Method::POST,
                &format!("{p}/triggers"),
                Some(json!({"type": "webhook", "config": {}})),
                &format!("{p}/triggers"),
            ),
            // Landing zones and their files.
            case("landing", Needs::Read, Method::GET, zone, None, zone),
            case(
                "landing",
                Needs::Read,
                Method::GET,
                &format!("{zone}/files"),
                None,
                zone,
            ),
            case(
                "landing",
                Needs::Read,
                Method::GET,
                "/api/v1/files?prefix=team/landing/drop",
                None,
                zone,
            ),
            case(
                "landing",
                Needs::Write,
                Method::PUT,
                zone,
                Some(json!({"description": format!("by {n}")})),
                zone,
            ),
            case(
                "landing",
                Needs::Write,
                Method::PUT,
                &format!("{zone}/lifecycle"),
                Some(json!({"processed_max_age_days": 10 + n.len()})),
                &format!("{zone}/lifecycle"),
            ),
            // Table metadata.
            case("tables", Needs::Read, Method::GET, table, None, table),
            case(
                "tables",
                Needs::Write,
                Method::PUT,
                table,
                Some(json!({"description": format!("by {n}")})),
                table,
            ),
            // The namespace.
            case(
                "namespace",
                Needs::Write,
                Method::PUT,
                "/api/v1/namespaces/team",
                Some(json!({"description": n})),
                "/api/v1/namespaces",
            ),
            // Admin only.
            case(
                "admin",
                Needs::Admin,
                Method::PUT,
                "/api/v1/admin/retention/config",
                Some(json!({"runs_max_per_pipeline": 100 + n.len()})),
                "/api/v1/admin/retention/config",
            ),
            case(
                "admin",
                Needs::Admin,
                Method::GET,
                "/api/v1/audit",
                None,
                "/api/v1/admin/retention/config",
            ),
            case(
                "admin",
                Needs::Admin,
                Method::POST,
                "/api/v1/admin/retention/run",
                None,
                "/api/v1/admin/retention/config",
            ),
            case(
                "admin",
                Needs::Admin,
                Method::GET,
                "/api/v1/admin/failed-merges",
                None,
                "/api/v1/admin/retention/config",
            ),
            case(
                "admin",
                Needs::Admin,
                Method::GET,
                "/api/v1/files?prefix=team",
                None,
                "/api/v1/namespaces",
            ),
        ];
        // Sharing each object needs its ownership.
        for (id, object_type) in &ids {
            cases.push(case(
                "sharing",
                Needs::Own,
                Method::POST,
                "/api/v1/sharing",
                Some(json!({"object_type": object_type, "object_id": id, "shared_with": format!("x-{n}"), "access_level": "read"})),
                p,
            ));
            cases.push(case(
                "sharing",
                Needs::Own,
                Method::GET,
                &format!("/api/v1/sharing?object_type={object_type}&object_id={id}"),
                None,
                p,
            ));
        }
        for case in cases {
            let token = users.token(who);
            let before = witness(&app, &case.witness).await;
            let audit_before = app.audit_rows().await.len();
            let answer = call(&app, case.method.clone(), &case.path, token, case.body.clone()).await;
            let want = expected(who, case.needs);
            assert_eq!(
                class(answer.status.as_u16()),
                want,
                "{who:?} {} {} ({}, needs {:?}): {}",
                case.method,
                case.path,
                case.group,
                case.needs,
                answer.text
            );
            if want != 200 {
                assert_eq!(
                    answer.json["error"]["code"],
                    if want == 404 { "NOT_FOUND" } else { "FORBIDDEN" },
                    "{who:?} {} {}",
                    case.method,
                    case.path
                );
                assert_eq!(
                    witness(&app, &case.witness).await,
                    before,
                    "{who:?} {} {}: refused, yet something changed",
                    case.method,
                    case.path
                );
                if case.method != Method::GET {
                    // The attempt is audited, under the caller's name, with
                    // the refusal's status.
                    let rows = app.audit_rows().await;
                    assert_eq!(rows.len(), audit_before + 1, "{who:?} {} {}", case.method, case.path);
                    let details = rows[0].details.clone().unwrap_or_default();
                    assert_eq!(details["status"], answer.status.as_u16(), "{who:?} {}", case.path);
                    assert_eq!(rows[0].actor, users.name(who));
                }
            }
        }
    }

    // Deleting: everyone the rule refuses is refused and nothing goes, then
    // the first one it allows deletes (a schedule needs write on its
    // pipeline, the rest ownership). The order leaves each object's parent
    // in place until its own turn.
    for (path, needs, deleter) in [
        (schedule.as_str(), Needs::Write, Who::Writer),
        (zone, Needs::Own, Who::Owner),
        (p, Needs::Own, Who::Owner),
        ("/api/v1/namespaces/team", Needs::Own, Who::Owner),
    ] {
        for who in [Who::Writer, Who::Reader, Who::Role, Who::Stranger] {
            if expected(who, needs) == 200 {
                continue;
            }
            let answer = call(&app, Method::DELETE, path, users.token(who), None).await;
            assert_eq!(
                class(answer.status.as_u16()),
                expected(who, needs),
                "{who:?} DELETE {path}: {}",
                answer.text
            );
            // (A namespace has no route of its own to read; the final count
            // below shows it went only at its owner's delete.)
            if !path.ends_with("/team") {
                let still = call(&app, Method::GET, path, users.token(Who::Owner), None).await;
                assert_eq!(still.status, 200, "{path} after {who:?}'s refused delete");
            }
        }
        let deleted = call(&app, Method::DELETE, path, users.token(deleter), None).await;
        assert_eq!(deleted.status, 204, "{deleter:?} DELETE {path}: {}", deleted.text);
    }
    let namespaces = witness(&app, "/api/v1/namespaces").await;
    assert_eq!(namespaces["total"], 1, "only `default` is left: {namespaces}");
}

#[tokio::test]
async fn lists_count_exactly_what_the_caller_may_read_under_filters_and_pages() {
    let (app, users, _issuer, _key) = setup().await;
    let alice = users.token(Who::Owner).to_owned();
    // A second namespace of erin's, with two pipelines; nobody shares it.
    let erin = users.token(Who::Stranger).to_owned();
    let created = call(
        &app,
        Method::POST,
        "/api/v1/namespaces",
        &erin,
        Some(json!({"name": "private"})),
    )
    .await;
    assert_eq!(created.status, 201, "{}", created.text);
    for name in ["a", "b"] {
        let body = json!({"namespace": "private", "layer": "bronze", "name": name});
        let answer = call(&app, Method::POST, "/api/v1/pipelines", &erin, Some(body)).await;
        assert_eq!(answer.status, 201, "{}", answer.text);
    }
    let zone = call(
        &app,
        Method::POST,
        "/api/v1/landing-zones",
        &erin,
        Some(json!({"namespace": "private", "name": "mine"})),
    )
    .await;
    assert_eq!(zone.status, 201, "{}", zone.text);
    // Two more pipelines of alice's in team, so pages have something to cut.
    for name in ["x", "y"] {
        let body = json!({"namespace": "team", "layer": "gold", "name": name});
        assert_eq!(
            call(&app, Method::POST, "/api/v1/pipelines", &alice, Some(body))
                .await
                .status,
            201
        );
    }

    let total = |token: String, path: &'static str| {
        let app = &app;
        async move {
            let answer = call(app, Method::GET, path, &token, None).await;
            assert_eq!(answer.status, 200, "{path}: {}", answer.text);
            answer.json
        }
    };
    // (path, what alice and the team see, what erin sees, what the admin sees)
    for (path, team, erin_sees, admin) in [
        ("/api/v1/pipelines", 3, 2, 5),
        ("/api/v1/pipelines?layer=gold", 2, 0, 2),
        ("/api/v1/pipelines?namespace=private", 0, 2, 2),
        ("/api/v1/landing-zones", 1, 1, 2),
        ("/api/v1/schedules", 1, 0, 1),
        // Known tables: the pipelines' outputs (orders also has metadata,
        // which makes no second row).
        ("/api/v1/tables", 3, 2, 5),
        ("/api/v1/tables?layer=gold", 2, 0, 2),
        ("/api/v1/tables?namespace=private", 0, 2, 2),
    ] {
        for who in [Who::Owner, Who::Writer, Who::Reader, Who::Role] {
            assert_eq!(
                total(users.token(who).to_owned(), path).await["total"],
                team,
                "{who:?} {path}"
            );
        }
        assert_eq!(total(erin.clone(), path).await["total"], erin_sees, "erin {path}");
        assert_eq!(
            total(users.token(Who::Admin).to_owned(), path).await["total"],
            admin,
            "admin {path}"
        );
    }
    // A page is cut from the readable rows only: the total stays, the page
    // holds at most `limit`, and the pages together are the readable set.
    let mut seen = Vec::new();
    for offset in 0..3 {
        let path = format!("/api/v1/pipelines?limit=1&offset={offset}&sort=name");
        let page = call(&app, Method::GET, &path, users.token(Who::Reader), None)
            .await
            .json;
        assert_eq!(page["total"], 3);
        let items = page["pipelines"].as_array().unwrap();
        assert!(items.len() <= 1);
        seen.extend(items.iter().map(|p| p["name"].as_str().unwrap().to_owned()));
    }
    seen.sort();
    assert_eq!(seen, ["orders", "x", "y"]);
    let mut seen = Vec::new();
    for offset in 0..3 {
        let path = format!("/api/v1/tables?limit=1&offset={offset}");
        let page = call(&app, Method::GET, &path, users.token(Who::Reader), None)
            .await
            .json;
        assert_eq!(page["total"], 3);
        seen.extend(
            page["tables"]
                .as_array()
                .unwrap()
                .iter()
                .map(|t| t["name"].as_str().unwrap().to_owned()),
        );
    }
    assert_eq!(
        seen,
        ["x", "y", "orders"],
        "ordered by namespace, layer (as text), name"
    );
    let detail = "/api/v1/tables/team/silver/orders";
    assert_eq!(
        call(&app, Method::GET, detail, users.token(Who::Reader), None)
            .await
            .status,
        200
    );
    assert_eq!(call(&app, Method::GET, detail, &erin, None).await.status, 404);
    let schema = call(&app, Method::GET, "/api/v1/schema", &erin, None).await.json;
    let names: Vec<&str> = schema["tables"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["a", "b"], "the schema lists only what erin may read");
    // Runs follow their pipelines.
    let run = call(
        &app,
        Method::POST,
        "/api/v1/runs",
        &alice,
        Some(json!({"namespace": "team", "layer": "silver", "pipeline": "orders"})),
    )
    .await;
    assert_eq!(run.status, 202, "{}", run.text);
    assert_eq!(
        total(users.token(Who::Reader).to_owned(), "/api/v1/runs").await["total"],
        1
    );
    assert_eq!(total(erin.clone(), "/api/v1/runs").await["total"], 0);
    // Namespaces: each sees the ones they may read (the seeded `default` is
    // everyone's to read).
    let names = |json: Value| {
        let mut names: Vec<String> = json["namespaces"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| n["name"].as_str().unwrap().to_owned())
            .collect();
        names.sort();
        names
    };
    assert_eq!(
        names(total(users.token(Who::Reader).to_owned(), "/api/v1/namespaces").await),
        ["default", "team"]
    );
    assert_eq!(
        names(total(erin.clone(), "/api/v1/namespaces").await),
        ["default", "private"]
    );
    assert_eq!(
        names(total(users.token(Who::Admin).to_owned(), "/api/v1/namespaces").await),
        ["default", "private", "team"]
    );
}

#[tokio::test]
async fn only_the_owner_or_an_admin_transfers_and_the_new_owner_takes_over() {
    let (app, users, _issuer, _key) = setup().await;
    let p = "/api/v1/pipelines/team/silver/orders";
    let id = witness(&app, p).await["id"].clone();
    let transfer = |to: &str| json!({"resource_type": "pipeline", "resource_id": id, "to_user_id": to});
    for (who, status) in [(Who::Reader, 403), (Who::Writer, 403), (Who::Stranger, 404)] {
        let answer = call(
            &app,
            Method::POST,
            "/api/v1/sharing/transfer",
            users.token(who),
            Some(transfer("mallory")),
        )
        .await;
        assert_eq!(answer.status, status, "{who:?}: {}", answer.text);
        // Changing the owner by PUT is a transfer too.
        let put = call(
            &app,
            Method::PUT,
            p,
            users.token(who),
            Some(json!({"owner": "mallory"})),
        )
        .await;
        assert_eq!(put.status, status, "{who:?} PUT owner: {}", put.text);
    }
    assert_eq!(witness(&app, p).await["owner"], "alice");
    // The owner hands it to bob, who owns it now. Alice still owns the
    // namespace, and with it everything in it.
    let handed = call(
        &app,
        Method::POST,
        "/api/v1/sharing/transfer",
        users.token(Who::Owner),
        Some(transfer("bob")),
    )
    .await;
    assert_eq!(handed.status, 200, "{}", handed.text);
    assert_eq!(witness(&app, p).await["owner"], "bob");
    let by_alice = call(
        &app,
        Method::PUT,
        p,
        users.token(Who::Owner),
        Some(json!({"description": "still mine"})),
    )
    .await;
    assert_eq!(by_alice.status, 200, "{}", by_alice.text);
    // An admin may transfer anything.
    let by_admin = call(
        &app,
        Method::POST,
        "/api/v1/sharing/transfer",
        users.token(Who::Admin),
        Some(transfer("carol")),
    )
    .await;
    assert_eq!(by_admin.status, 200, "{}", by_admin.text);
    assert_eq!(witness(&app, p).await["owner"], "carol");
    let rows = app.audit_rows().await;
    assert!(
        rows.iter()
            .any(|r| r.action == "ownership.transfer" && r.actor == "root")
    );
}
