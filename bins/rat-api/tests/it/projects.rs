//! `/api/v1/projects`: the routes in Community mode (shapes, statuses, the
//! envelope, audit), then signed-in users: who may change a project, which
//! members each one is shown, and what adding a member needs.

use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};

use crate::common::TestApp;
use crate::oidc::{Issuer, SigningKey, app_with, call, let_alice_create_in_default};

const PROJECTS: &str = "/api/v1/projects";

#[tokio::test]
async fn projects_are_created_read_changed_and_deleted_with_their_members() {
    let app = TestApp::new().await;
    let created = app
        .post(PROJECTS, json!({"name": "  Revenue ", "description": "Finance"}))
        .await;
    assert_eq!(created.status, 201, "{}", created.text);
    assert_eq!(created.json["name"], "Revenue", "the name is trimmed");
    assert_eq!(created.json["description"], "Finance");
    assert_eq!(created.json["created_by"], "community");
    let id = created.json["id"].as_str().unwrap().to_owned();
    let project = format!("{PROJECTS}/{id}");
    let members = format!("{project}/members");
    assert_eq!(app.get(&project).await.json, created.json);
    app.post(PROJECTS, json!({"name": "Costs"})).await;

    let listed = app.get(PROJECTS).await;
    assert_eq!(listed.status, 200, "{}", listed.text);
    assert_eq!(listed.json["total"], 2);
    let names: Vec<&str> = listed.json["projects"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["Costs", "Revenue"], "by name");
    let searched = app.get(&format!("{PROJECTS}?search=REV&limit=1")).await;
    assert_eq!(
        (
            searched.json["total"].clone(),
            searched.json["projects"][0]["id"].clone()
        ),
        (json!(1), json!(id))
    );
    assert_eq!(
        app.get(&format!("{PROJECTS}?offset=1")).await.json["projects"][0]["name"],
        "Revenue"
    );

    let renamed = app.put(&project, json!({"name": "Revenue 2026"})).await;
    assert_eq!(renamed.status, 200, "{}", renamed.text);
    assert_eq!(
        (renamed.json["name"].clone(), renamed.json["description"].clone()),
        (json!("Revenue 2026"), json!("Finance")),
        "an absent field is kept"
    );
    app.put(&project, json!({"name": "Costs"}))
        .await
        .assert_error(409, "ALREADY_EXISTS");
    app.post(PROJECTS, json!({"name": "Costs"}))
        .await
        .assert_error(409, "ALREADY_EXISTS");

    // Members: a pipeline and a table, by id, each listed with where it is.
    app.pipeline("default", "silver", "orders").await;
    let pipeline_id = app.get("/api/v1/pipelines/default/silver/orders").await.json["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let table = app
        .put(
            "/api/v1/tables/default/gold/revenue/metadata",
            json!({"description": "d"}),
        )
        .await;
    assert_eq!(table.status, 200, "{}", table.text);
    let table_id = table.json["id"].as_str().unwrap().to_owned();
    let added = app
        .post(&members, json!({"object_type": "pipeline", "object_id": pipeline_id}))
        .await;
    assert_eq!(added.status, 201, "{}", added.text);
    assert_eq!(
        (
            added.json["project_id"].clone(),
            added.json["object_type"].clone(),
            added.json["object_id"].clone()
        ),
        (json!(id), json!("pipeline"), json!(pipeline_id))
    );
    let table_added = app
        .post(&members, json!({"object_type": "table", "object_id": table_id}))
        .await;
    assert_eq!(table_added.status, 201, "{}", table_added.text);
    app.post(&members, json!({"object_type": "pipeline", "object_id": pipeline_id}))
        .await
        .assert_error(409, "ALREADY_EXISTS");
    let listed = app.get(&members).await;
    assert_eq!(listed.status, 200, "{}", listed.text);
    assert_eq!(listed.json["total"], 2);
    let first = &listed.json["members"][0];
    assert_eq!(
        (
            first["object_type"].clone(),
            first["object_id"].clone(),
            first["namespace"].clone(),
            first["layer"].clone(),
            first["name"].clone(),
            first["display_name"].clone()
        ),
        (
            json!("pipeline"),
            json!(pipeline_id),
            json!("default"),
            json!("silver"),
            json!("orders"),
            json!("default.silver.orders")
        )
    );
    assert_eq!(listed.json["members"][1]["display_name"], "default.gold.revenue");
    let page = app.get(&format!("{members}?limit=1&offset=1")).await;
    assert_eq!(
        (page.json["total"].clone(), page.json["members"][0]["object_id"].clone()),
        (json!(2), json!(table_id))
    );

    let removed = app.delete(&format!("{members}/pipeline/{pipeline_id}")).await;
    assert_eq!(removed.status, 204, "{}", removed.text);
    app.delete(&format!("{members}/pipeline/{pipeline_id}"))
        .await
        .assert_error(404, "NOT_FOUND");
    assert_eq!(app.get(&members).await.json["total"], 1);
    let deleted = app.delete(&project).await;
    assert_eq!(deleted.status, 204, "{}", deleted.text);
    app.get(&project).await.assert_error(404, "NOT_FOUND");
    app.get(&members).await.assert_error(404, "NOT_FOUND");
    app.delete(&project).await.assert_error(404, "NOT_FOUND");
    let table_still = app.get("/api/v1/tables/default/gold/revenue/metadata").await;
    assert_eq!(table_still.status, 200, "the members stay: {}", table_still.text);

    // Every change is audited, the member changes naming the member.
    let rows = app.audit_rows().await;
    let actions: Vec<&str> = rows.iter().map(|r| r.action.as_str()).collect();
    for action in [
        "project.create",
        "project.update",
        "project.delete",
        "project_member.add",
        "project_member.remove",
    ] {
        assert!(actions.contains(&action), "{action} in {actions:?}");
    }
    let created_row = rows.iter().find(|r| r.action == "project.create").unwrap();
    assert_eq!(created_row.object_type.as_deref(), Some("project"));
    let removal = rows.iter().find(|r| r.action == "project_member.remove").unwrap();
    assert_eq!(
        (removal.object_type.as_deref(), removal.object_id.map(|u| u.to_string())),
        (Some("pipeline"), Some(pipeline_id.clone()))
    );
}

#[tokio::test]
async fn bad_project_requests_answer_400_with_the_envelope() {
    let app = TestApp::new().await;
    let created = app.post(PROJECTS, json!({"name": "Revenue"})).await;
    let id = created.json["id"].as_str().unwrap().to_owned();
    let project = format!("{PROJECTS}/{id}");
    let members = format!("{project}/members");
    app.pipeline("default", "silver", "orders").await;
    let pipeline_id = app.get("/api/v1/pipelines/default/silver/orders").await.json["id"].clone();

    let long_name = "x".repeat(256);
    let long_description = "d".repeat(5_001);
    let bad_bodies: [(Value, &str); 7] = [
        (json!({"name": ""}), "name"),
        (json!({"name": "  "}), "name"),
        (json!({"name": long_name}), "name"),
        (json!({"name": "ok", "description": long_description}), "description"),
        (json!({"name": 5}), "expected a string"),
        (json!({"name": "ok", "owner": "me"}), "owner"),
        (json!({}), "name"),
    ];
    for (body, what) in bad_bodies {
        let message = app
            .post(PROJECTS, body.clone())
            .await
            .assert_error(400, "INVALID_ARGUMENT");
        assert!(message.contains(what), "{body}: {message}");
    }
    let message = app
        .put(&project, json!({"name": " "}))
        .await
        .assert_error(400, "INVALID_ARGUMENT");
    assert!(message.contains("name"), "{message}");
    for (body, what) in [
        (
            json!({"object_type": "namespace", "object_id": pipeline_id}),
            "object_type",
        ),
        (json!({"object_type": "pipeline", "object_id": "nope"}), "object_id"),
        (json!({"object_type": "pipeline"}), "object_id"),
    ] {
        let message = app
            .post(&members, body.clone())
            .await
            .assert_error(400, "INVALID_ARGUMENT");
        assert!(message.contains(what), "{body}: {message}");
    }
    let unknown = uuid::Uuid::new_v4();
    let message = app
        .post(&members, json!({"object_type": "pipeline", "object_id": unknown}))
        .await
        .assert_error(404, "NOT_FOUND");
    assert_eq!(message, "pipeline not found");
    app.delete(&format!("{members}/run/{unknown}"))
        .await
        .assert_error(400, "INVALID_ARGUMENT");
    app.get(&format!("{PROJECTS}?limit=0"))
        .await
        .assert_error(400, "INVALID_ARGUMENT");
    app.get(&format!("{members}?offset=-1"))
        .await
        .assert_error(400, "INVALID_ARGUMENT");
    app.get(&format!("{PROJECTS}?search={}", "x".repeat(256)))
        .await
        .assert_error(400, "INVALID_ARGUMENT");
    // A malformed or unknown id names no project: 404.
    app.get(&format!("{PROJECTS}/not-a-uuid"))
        .await
        .assert_error(404, "NOT_FOUND");
    app.get(&format!("{PROJECTS}/{unknown}"))
        .await
        .assert_error(404, "NOT_FOUND");
    app.put(&format!("{PROJECTS}/{unknown}"), json!({"name": "x"}))
        .await
        .assert_error(404, "NOT_FOUND");
    app.post(
        &format!("{PROJECTS}/{unknown}/members"),
        json!({"object_type": "pipeline", "object_id": pipeline_id}),
    )
    .await
    .assert_error(404, "NOT_FOUND");
    assert_eq!(app.get(&project).await.json["name"], "Revenue", "nothing changed");
}

#[tokio::test]
async fn projects_are_changed_only_by_their_creator_and_members_shown_only_to_readers() {
    let key = SigningKey::new("k1");
    let issuer = Issuer::start(&[&key]).await;
    let app = app_with(&issuer, Duration::from_secs(30)).await;
    let alice = key.mint(&issuer.claims("alice", &[]));
    let bob = key.mint(&issuer.claims("bob", &[]));
    let operator = "operator-key";
    let_alice_create_in_default(&app).await;

    // Alice's pipeline is hers alone; the operator's is unowned (everyone
    // reads it).
    for (token, name) in [(&*alice, "private"), (operator, "open")] {
        let made = call(
            &app,
            Method::POST,
            "/api/v1/pipelines",
            token,
            Some(json!({"namespace": "default", "layer": "silver", "name": name})),
        )
        .await;
        assert_eq!(made.status, 201, "{}", made.text);
    }
    let id_of = |name: &'static str| {
        let app = &app;
        async move {
            call(
                app,
                Method::GET,
                &format!("/api/v1/pipelines/default/silver/{name}"),
                operator,
                None,
            )
            .await
            .json["id"]
                .as_str()
                .unwrap()
                .to_owned()
        }
    };
    let (private, open) = (id_of("private").await, id_of("open").await);

    let created = call(&app, Method::POST, PROJECTS, &alice, Some(json!({"name": "Alice's"}))).await;
    assert_eq!(created.status, 201, "{}", created.text);
    assert_eq!(created.json["created_by"], "alice");
    let project = format!("{PROJECTS}/{}", created.json["id"].as_str().unwrap());
    let members = format!("{project}/members");
    for object_id in [&private, &open] {
        let added = call(
            &app,
            Method::POST,
            &members,
            &alice,
            Some(json!({"object_type": "pipeline", "object_id": object_id})),
        )
        .await;
        assert_eq!(added.status, 201, "{}", added.text);
    }

    // Bob sees the project (it grants nothing) but may not change it.
    let listed = call(&app, Method::GET, PROJECTS, &bob, None).await;
    assert_eq!(listed.json["total"], 1, "{}", listed.text);
    assert_eq!(call(&app, Method::GET, &project, &bob, None).await.status, 200);
    let refused = call(&app, Method::PUT, &project, &bob, Some(json!({"name": "Bob's now"}))).await;
    let message = refused.assert_error(403, "FORBIDDEN");
    assert!(message.contains("creator"), "{message}");
    call(&app, Method::DELETE, &project, &bob, None)
        .await
        .assert_error(403, "FORBIDDEN");
    call(
        &app,
        Method::POST,
        &members,
        &bob,
        Some(json!({"object_type": "pipeline", "object_id": open})),
    )
    .await
    .assert_error(403, "FORBIDDEN");
    call(&app, Method::DELETE, &format!("{members}/pipeline/{open}"), &bob, None)
        .await
        .assert_error(403, "FORBIDDEN");
    assert_eq!(
        call(&app, Method::GET, &project, &bob, None).await.json["name"],
        "Alice's"
    );

    // Members: bob is shown only the open pipeline, and counts only it.
    let for_bob = call(&app, Method::GET, &members, &bob, None).await;
    assert_eq!(for_bob.status, 200, "{}", for_bob.text);
    assert_eq!(for_bob.json["total"], 1);
    assert_eq!(for_bob.json["members"].as_array().unwrap().len(), 1);
    assert_eq!(for_bob.json["members"][0]["object_id"], open.as_str());
    assert_eq!(call(&app, Method::GET, &members, &alice, None).await.json["total"], 2);
    assert_eq!(call(&app, Method::GET, &members, operator, None).await.json["total"], 2);

    // Bob's own project: alice's pipeline is a 404 to him, like a missing one.
    let his = call(&app, Method::POST, PROJECTS, &bob, Some(json!({"name": "Bob's"}))).await;
    let his_members = format!("{PROJECTS}/{}/members", his.json["id"].as_str().unwrap());
    let hidden = call(
        &app,
        Method::POST,
        &his_members,
        &bob,
        Some(json!({"object_type": "pipeline", "object_id": private})),
    )
    .await;
    assert_eq!(hidden.assert_error(404, "NOT_FOUND"), "pipeline not found");
    let open_added = call(
        &app,
        Method::POST,
        &his_members,
        &bob,
        Some(json!({"object_type": "pipeline", "object_id": open})),
    )
    .await;
    assert_eq!(open_added.status, 201, "{}", open_added.text);
    call(&app, Method::POST, PROJECTS, &bob, Some(json!({"name": ""})))
        .await
        .assert_error(400, "INVALID_ARGUMENT");

    // An admin changes anyone's project; the creator deletes it.
    let by_admin = call(
        &app,
        Method::PUT,
        &project,
        operator,
        Some(json!({"description": "checked"})),
    )
    .await;
    assert_eq!(by_admin.status, 200, "{}", by_admin.text);
    let removed = call(
        &app,
        Method::DELETE,
        &format!("{members}/pipeline/{private}"),
        &alice,
        None,
    )
    .await;
    assert_eq!(removed.status, 204, "{}", removed.text);
    assert_eq!(call(&app, Method::DELETE, &project, &alice, None).await.status, 204);

    // Audited under each author's name.
    let rows = app.audit_rows().await;
    assert!(rows.iter().any(|r| r.action == "project.create" && r.actor == "alice"));
    assert!(
        rows.iter()
            .any(|r| r.action == "project.update" && r.actor == "api-key")
    );
    assert!(
        rows.iter()
            .any(|r| r.action == "project_member.add" && r.actor == "bob")
    );
    assert!(rows.iter().any(|r| r.action == "project.delete" && r.actor == "alice"));
}
