//! `POST /api/v1/sharing/transfer` (contract §12) in Community mode, whose
//! user is an admin: the ownership row and the object's `owner` move
//! together. That only the owner (or an admin) may hand an object over is
//! tested with signed-in users in `access.rs`.

use crate::common::TestApp;
use rat_client::PipelineAddress;
use rat_domain::{ObjectType, PipelineRef, PipelineType};
use rat_wire::pipelines::UpdatePipeline;
use rat_wire::sharing::TransferRequest;
use rat_wire::tables::PutMetadata;
use serde_json::json;
use uuid::Uuid;

const TRANSFER: &str = "/api/v1/sharing/transfer";

async fn owner_row(app: &TestApp, object_type: ObjectType, id: Uuid) -> Option<String> {
    let client = app.db.client().await;
    rat_testkit::dao::access::get_owner(&client, object_type, id)
        .await
        .unwrap()
        .map(|o| o.owner)
}

#[tokio::test]
async fn the_owner_transfers_a_pipeline_and_then_no_longer_owns_it() {
    let app = TestApp::new().await;
    app.pipeline("default", "silver", "orders").await;
    let pipeline = app.get("/api/v1/pipelines/default/silver/orders").await.json;
    let id = pipeline["id"].as_str().unwrap().to_owned();
    assert_eq!(pipeline["owner"], "community");

    let answer = app
        .post(
            TRANSFER,
            json!({"resource_type": "pipeline", "resource_id": id, "to_user_id": "alice"}),
        )
        .await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    assert_eq!(
        answer.json,
        json!({"transferred": true, "resource_id": id, "new_owner": "alice"})
    );
    let pipeline = app.get("/api/v1/pipelines/default/silver/orders").await.json;
    assert_eq!(pipeline["owner"], "alice", "the owner column follows");
    let uuid: Uuid = id.parse().unwrap();
    assert_eq!(
        owner_row(&app, ObjectType::Pipeline, uuid).await.as_deref(),
        Some("alice")
    );
    let audit = app.audit_rows().await;
    assert_eq!(audit[0].action, "ownership.transfer");
    assert_eq!(
        (audit[0].object_type.as_deref(), audit[0].object_id),
        (Some("pipeline"), Some(uuid))
    );

    // The caller (community) is not the owner any more, but an admin: it
    // may still hand the pipeline on.
    let again = app
        .post(
            TRANSFER,
            json!({"resource_type": "pipeline", "resource_id": id, "to_user_id": "mallory"}),
        )
        .await;
    assert_eq!(again.status, 200, "{}", again.text);
    assert_eq!(
        owner_row(&app, ObjectType::Pipeline, uuid).await.as_deref(),
        Some("mallory")
    );
    assert_eq!(
        app.get("/api/v1/pipelines/default/silver/orders").await.json["owner"],
        "mallory"
    );
}

#[tokio::test]
async fn ratd_sdk_field_name_new_owner_is_accepted() {
    let app = TestApp::new().await;
    app.pipeline("default", "silver", "orders").await;
    let id = app.get("/api/v1/pipelines/default/silver/orders").await.json["id"].clone();
    let answer = app
        .post(
            TRANSFER,
            json!({"resource_type": "pipeline", "resource_id": id, "new_owner": "bob"}),
        )
        .await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    assert_eq!(answer.json["new_owner"], "bob");
}

#[tokio::test]
async fn a_pipeline_without_an_ownership_row_gets_one_when_transferred() {
    let app = TestApp::new().await;
    let client = app.db.client().await;
    let new = |name: &str, owner: Option<&str>| rat_testkit::dao::pipelines::NewPipeline {
        address: PipelineRef::parse("default", "silver", name).unwrap(),
        pipeline_type: PipelineType::Sql,
        description: String::new(),
        owner: owner.map(str::to_owned),
        max_versions: None,
    };
    let mine = rat_testkit::dao::pipelines::create(&client, &new("mine", Some("community")))
        .await
        .unwrap();
    let theirs = rat_testkit::dao::pipelines::create(&client, &new("theirs", Some("alice")))
        .await
        .unwrap();
    let nobody = rat_testkit::dao::pipelines::create(&client, &new("nobody", None))
        .await
        .unwrap();

    let answer = app
        .post(
            TRANSFER,
            json!({"resource_type": "pipeline", "resource_id": mine.id, "to_user_id": "bob"}),
        )
        .await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    assert_eq!(
        owner_row(&app, ObjectType::Pipeline, mine.id.into()).await.as_deref(),
        Some("bob")
    );
    // An admin transfers whatever the owner column says, or without one.
    for other in [theirs.id, nobody.id] {
        let answer = app
            .post(
                TRANSFER,
                json!({"resource_type": "pipeline", "resource_id": other, "to_user_id": "bob"}),
            )
            .await;
        assert_eq!(answer.status, 200, "{}", answer.text);
        assert_eq!(
            owner_row(&app, ObjectType::Pipeline, other.into()).await.as_deref(),
            Some("bob")
        );
    }
}

#[tokio::test]
async fn table_metadata_can_be_transferred_too() {
    let app = TestApp::new().await;
    let path = "/api/v1/tables/default/gold/revenue/metadata";
    let table = app.put(path, json!({"description": "Revenue"})).await.json;
    let id = table["id"].clone();
    let answer = app
        .post(
            TRANSFER,
            json!({"resource_type": "table", "resource_id": id, "to_user_id": "carol"}),
        )
        .await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    assert_eq!(answer.json["new_owner"], "carol");
    let table = app.get(path).await.json;
    assert_eq!(table["owner"], "carol");
    assert_eq!(table["description"], "Revenue", "nothing else changes");
    let answer = app
        .post(
            TRANSFER,
            json!({"resource_type": "table", "resource_id": id, "to_user_id": "dave"}),
        )
        .await;
    assert_eq!(answer.status, 200, "an admin may: {}", answer.text);
    assert_eq!(app.get(path).await.json["owner"], "dave");
}

#[tokio::test]
async fn unknown_objects_are_404_and_bad_requests_400() {
    let app = TestApp::new().await;
    app.pipeline("default", "silver", "orders").await;
    let id = app.get("/api/v1/pipelines/default/silver/orders").await.json["id"].clone();
    for resource_type in ["pipeline", "table", "namespace", "landing_zone"] {
        app.post(
            TRANSFER,
            json!({"resource_type": resource_type, "resource_id": Uuid::new_v4(), "to_user_id": "alice"}),
        )
        .await
        .assert_error(404, "NOT_FOUND");
    }
    for body in [
        json!({"resource_type": "project", "resource_id": id, "to_user_id": "alice"}),
        json!({"resource_type": "pipeline", "resource_id": "not-a-uuid", "to_user_id": "alice"}),
        json!({"resource_type": "pipeline", "resource_id": id, "to_user_id": ""}),
        json!({"resource_type": "pipeline", "resource_id": id, "to_user_id": "x".repeat(256)}),
        json!({"resource_type": "pipeline", "resource_id": id}),
        json!({"resource_type": "pipeline", "resource_id": id, "to_user_id": "alice", "note": "x"}),
    ] {
        app.post(TRANSFER, body).await.assert_error(400, "INVALID_ARGUMENT");
    }
    // A soft-deleted pipeline is gone.
    assert_eq!(app.delete("/api/v1/pipelines/default/silver/orders").await.status, 204);
    app.post(
        TRANSFER,
        json!({"resource_type": "pipeline", "resource_id": id, "to_user_id": "alice"}),
    )
    .await
    .assert_error(404, "NOT_FOUND");
}

#[tokio::test]
async fn transfer_requires_the_api_key_when_one_is_set() {
    let app = TestApp::builder().api_key("secret").start().await;
    let without_key = rat_client::Builder::new(&app.base).api().unwrap();
    let refused = without_key
        .transfer(&TransferRequest {
            resource_type: "pipeline".to_owned(),
            resource_id: Uuid::new_v4().to_string(),
            to_user_id: "alice".to_owned(),
        })
        .await
        .expect_err("no key");
    assert_eq!((refused.status(), refused.code()), (Some(401), Some("UNAUTHENTICATED")));
}

#[tokio::test]
async fn changing_the_owner_by_put_moves_the_ownership_row_too() {
    let app = TestApp::new().await;
    app.pipeline("default", "silver", "orders").await;
    let client = app.client();
    let orders = PipelineAddress::new("default", "silver", "orders");
    let id = client.get_pipeline(orders).await.unwrap().id;
    assert_eq!(
        owner_row(&app, ObjectType::Pipeline, id).await.as_deref(),
        Some("community")
    );
    let updated = client
        .update_pipeline(
            orders,
            &UpdatePipeline {
                description: None,
                pipeline_type: None,
                owner: Some("carol".to_owned()),
                max_versions: None,
            },
        )
        .await
        .expect("owner changed");
    assert_eq!(updated.owner.as_deref(), Some("carol"));
    assert_eq!(
        owner_row(&app, ObjectType::Pipeline, id).await.as_deref(),
        Some("carol")
    );

    let sales = PipelineAddress::new("default", "gold", "sales");
    let metadata = |owner: Option<&str>| PutMetadata {
        description: Some("x".to_owned()),
        owner: owner.map(str::to_owned),
        column_descriptions: None,
    };
    let table = client
        .put_table_metadata(sales, &metadata(None))
        .await
        .expect("metadata");
    assert_eq!(
        owner_row(&app, ObjectType::Table, table.id).await.as_deref(),
        Some("community")
    );
    client
        .put_table_metadata(sales, &metadata(Some("dave")))
        .await
        .expect("owner changed");
    assert_eq!(
        owner_row(&app, ObjectType::Table, table.id).await.as_deref(),
        Some("dave")
    );
}
