//! `projects` repository (projects and their members) against a real PostgreSQL.

use rat_dao::{DaoError, GenericClient, pipelines, projects};
use rat_domain::{MemberType, PageRequest};
use rat_testkit::{TestDatabase, fixtures};
use time::macros::datetime;
use time::{Duration, OffsetDateTime};
use uuid::Uuid;

fn is_not_found(err: &DaoError, what: &str) -> bool {
    matches!(err, DaoError::NotFound { entity } if *entity == what)
}

async fn memberships_of(client: &impl GenericClient, object_id: Uuid) -> i64 {
    client
        .query_one(
            "SELECT count(*) FROM project_members WHERE object_id = $1",
            &[&object_id],
        )
        .await
        .unwrap()
        .get(0)
}

#[tokio::test]
async fn project_round_trips_every_column() {
    let db = TestDatabase::new().await;
    let client = db.client().await;
    let created = projects::create(&client, "Revenue reporting", "Finance dashboards", Some("alice"))
        .await
        .unwrap();
    assert_eq!(created.name, "Revenue reporting");
    assert_eq!(created.description, "Finance dashboards");
    assert_eq!(created.created_by.as_deref(), Some("alice"));
    assert_eq!(projects::get(&client, created.id).await.unwrap(), created);
    assert_eq!(
        projects::get_by_name(&client, "Revenue reporting").await.unwrap(),
        created
    );

    let anonymous = projects::create(&client, "Scratch", "", None).await.unwrap();
    assert_eq!(anonymous.created_by, None);
    assert_eq!(anonymous.description, "");
}

#[tokio::test]
async fn update_keeps_absent_fields() {
    let db = TestDatabase::new().await;
    let client = db.client().await;
    let created = projects::create(&client, "Revenue", "Finance", Some("alice"))
        .await
        .unwrap();
    let renamed = projects::update(&client, created.id, Some("Revenue 2026"), None)
        .await
        .unwrap();
    assert_eq!(renamed.name, "Revenue 2026");
    assert_eq!(renamed.description, "Finance");
    let redescribed = projects::update(&client, created.id, None, Some("Finance and tax"))
        .await
        .unwrap();
    assert_eq!(redescribed.name, "Revenue 2026");
    assert_eq!(redescribed.description, "Finance and tax");
    assert_eq!(redescribed.created_by.as_deref(), Some("alice"));
    assert_eq!(redescribed.created_at, created.created_at);
    assert_eq!(projects::get(&client, created.id).await.unwrap(), redescribed);
}

#[tokio::test]
async fn names_are_unique_and_bounded_by_the_schema() {
    let db = TestDatabase::new().await;
    let client = db.client().await;
    projects::create(&client, "Revenue", "", None).await.unwrap();
    let other = projects::create(&client, "Costs", "", None).await.unwrap();
    for err in [
        projects::create(&client, "Revenue", "again", None).await.unwrap_err(),
        projects::update(&client, other.id, Some("Revenue"), None)
            .await
            .unwrap_err(),
    ] {
        assert!(
            matches!(&err, DaoError::Conflict { constraint } if constraint == "uq_projects_name"),
            "{err:?}"
        );
    }
    // Names differ by case only: two projects (uniqueness is exact).
    projects::create(&client, "revenue", "", None).await.unwrap();

    let err = projects::create(&client, &"x".repeat(256), "", None).await.unwrap_err();
    assert!(
        matches!(&err, DaoError::Invalid { constraint } if constraint == "value"),
        "{err:?}"
    );
    projects::create(&client, &"x".repeat(255), "", None).await.unwrap();
}

#[tokio::test]
async fn missing_projects_are_not_found() {
    let db = TestDatabase::new().await;
    let client = db.client().await;
    let ghost = Uuid::new_v4();
    for err in [
        projects::get(&client, ghost).await.unwrap_err(),
        projects::get_by_name(&client, "ghost").await.unwrap_err(),
        projects::update(&client, ghost, Some("x"), None).await.unwrap_err(),
        projects::delete(&client, ghost).await.unwrap_err(),
    ] {
        assert!(is_not_found(&err, "project"), "{err:?}");
    }
}

#[tokio::test]
async fn list_orders_by_name_and_searches_case_insensitively() {
    let db = TestDatabase::new().await;
    let client = db.client().await;
    for name in ["Marketing", "taxes-revenue", "Revenue", "50% off", "Costs"] {
        projects::create(&client, name, "", None).await.unwrap();
    }
    let names = |page: &rat_domain::Page<rat_domain::Project>| -> Vec<String> {
        page.items.iter().map(|p| p.name.clone()).collect()
    };
    let all = projects::list(&client, None, PageRequest::default()).await.unwrap();
    // Names chosen to sort the same under any collation.
    assert_eq!(
        names(&all),
        ["50% off", "Costs", "Marketing", "Revenue", "taxes-revenue"]
    );
    assert_eq!(all.total, 5);

    let found = projects::list(&client, Some("REVENUE"), PageRequest::default())
        .await
        .unwrap();
    assert_eq!(names(&found), ["Revenue", "taxes-revenue"]);
    assert_eq!(found.total, 2);

    let page = projects::list(&client, Some("e"), PageRequest::new(Some(2), Some(1)).unwrap())
        .await
        .unwrap();
    assert_eq!(names(&page), ["Revenue", "taxes-revenue"]);
    assert_eq!(page.total, 3);

    // LIKE wildcards are literal.
    let found = projects::list(&client, Some("%"), PageRequest::default())
        .await
        .unwrap();
    assert_eq!(names(&found), ["50% off"]);
    let found = projects::list(&client, Some("_"), PageRequest::default())
        .await
        .unwrap();
    assert_eq!(found.total, 0);
}

#[tokio::test]
async fn members_are_added_listed_and_removed() {
    let db = TestDatabase::new().await;
    let client = db.client().await;
    let project = projects::create(&client, "Revenue", "", None).await.unwrap();
    let other = projects::create(&client, "Costs", "", None).await.unwrap();
    let base = datetime!(2026-01-01 00:00:00 UTC);
    let (p1, t1, p2) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
    let added = projects::add_member(&client, project.id, MemberType::Pipeline, p1, base)
        .await
        .unwrap();
    assert_eq!(added.project_id, project.id);
    assert_eq!(added.object_type, MemberType::Pipeline);
    assert_eq!(added.object_id, p1);
    assert_eq!(added.added_at, base);
    projects::add_member(&client, project.id, MemberType::Table, t1, base + Duration::hours(1))
        .await
        .unwrap();
    projects::add_member(&client, project.id, MemberType::Pipeline, p2, base + Duration::hours(2))
        .await
        .unwrap();
    // One object may belong to several projects.
    projects::add_member(&client, other.id, MemberType::Pipeline, p1, base)
        .await
        .unwrap();

    let all = projects::list_members(&client, project.id, PageRequest::default())
        .await
        .unwrap();
    assert_eq!(all.items[0], added);
    assert_eq!(all.items.iter().map(|m| m.object_id).collect::<Vec<_>>(), [p1, t1, p2]);
    assert_eq!(all.total, 3);
    let page = projects::list_members(&client, project.id, PageRequest::new(Some(1), Some(1)).unwrap())
        .await
        .unwrap();
    assert_eq!(page.items.iter().map(|m| m.object_id).collect::<Vec<_>>(), [t1]);
    assert_eq!(page.total, 3);

    let err = projects::add_member(&client, project.id, MemberType::Pipeline, p1, base)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, DaoError::Conflict { constraint } if constraint == "pk_project_members"),
        "{err:?}"
    );
    // The same id as another member type is another member.
    projects::add_member(&client, project.id, MemberType::Table, p1, base)
        .await
        .unwrap();
    projects::remove_member(&client, project.id, MemberType::Table, p1)
        .await
        .unwrap();

    projects::remove_member(&client, project.id, MemberType::Pipeline, p1)
        .await
        .unwrap();
    let left = projects::list_members(&client, project.id, PageRequest::default())
        .await
        .unwrap();
    assert_eq!(left.items.iter().map(|m| m.object_id).collect::<Vec<_>>(), [t1, p2]);
    assert_eq!(left.total, 2);
    assert_eq!(memberships_of(&client, p1).await, 1, "the other project keeps it");
    for err in [
        projects::remove_member(&client, project.id, MemberType::Pipeline, p1)
            .await
            .unwrap_err(),
        projects::remove_member(&client, project.id, MemberType::Pipeline, t1)
            .await
            .unwrap_err(),
    ] {
        assert!(is_not_found(&err, "project member"), "{err:?}");
    }
}

#[tokio::test]
async fn adding_to_an_unknown_project_is_a_missing_reference() {
    let db = TestDatabase::new().await;
    let client = db.client().await;
    let err = projects::add_member(
        &client,
        Uuid::new_v4(),
        MemberType::Table,
        Uuid::new_v4(),
        OffsetDateTime::now_utc(),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(&err, DaoError::MissingReference { entity: "project", constraint } if constraint == "fk_project_members_project"),
        "{err:?}"
    );
    let empty = projects::list_members(&client, Uuid::new_v4(), PageRequest::default())
        .await
        .unwrap();
    assert!(empty.items.is_empty());
    assert_eq!(empty.total, 0);
}

#[tokio::test]
async fn deleting_a_project_deletes_its_memberships() {
    let db = TestDatabase::new().await;
    let client = db.client().await;
    let now = OffsetDateTime::now_utc();
    let gone = projects::create(&client, "Gone", "", None).await.unwrap();
    let kept = projects::create(&client, "Kept", "", None).await.unwrap();
    let object = Uuid::new_v4();
    for project in [&gone, &kept] {
        projects::add_member(&client, project.id, MemberType::Pipeline, object, now)
            .await
            .unwrap();
    }
    projects::delete(&client, gone.id).await.unwrap();
    assert!(is_not_found(
        &projects::get(&client, gone.id).await.unwrap_err(),
        "project"
    ));
    let left: i64 = client
        .query_one(
            "SELECT count(*) FROM project_members WHERE project_id = $1",
            &[&gone.id],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(left, 0);
    assert_eq!(
        projects::list_members(&client, kept.id, PageRequest::default())
            .await
            .unwrap()
            .total,
        1
    );
}

#[tokio::test]
async fn purging_a_pipeline_removes_its_memberships() {
    let db = TestDatabase::new().await;
    let client = db.client().await;
    let now = OffsetDateTime::now_utc();
    let project = projects::create(&client, "Revenue", "", None).await.unwrap();
    let gone = fixtures::pipeline(&client, "default", "gold", "gone").await;
    let kept = fixtures::pipeline(&client, "default", "gold", "kept").await;
    for p in [&gone, &kept] {
        projects::add_member(&client, project.id, MemberType::Pipeline, p.id.into(), now)
            .await
            .unwrap();
    }
    // A table member carrying the same id is a different object and stays.
    projects::add_member(&client, project.id, MemberType::Table, gone.id.into(), now)
        .await
        .unwrap();

    pipelines::purge(&client, gone.id).await.unwrap();
    let members = projects::list_members(&client, project.id, PageRequest::default())
        .await
        .unwrap();
    let left: Vec<(MemberType, Uuid)> = members.items.iter().map(|m| (m.object_type, m.object_id)).collect();
    assert_eq!(left.len(), 2);
    assert!(left.contains(&(MemberType::Pipeline, kept.id.into())));
    assert!(left.contains(&(MemberType::Table, gone.id.into())));
    assert_eq!(memberships_of(&client, gone.id.into()).await, 1);
}

#[tokio::test]
async fn a_member_s_object_is_held_until_the_membership_commits() {
    let db = TestDatabase::new().await;
    let mut client = db.client().await;
    let other = db.client().await;
    let project = projects::create(&client, "Revenue", "", None).await.unwrap();
    let namespace = fixtures::namespace(&client, "default").await;
    let table = rat_dao::tables::upsert(
        &client,
        &namespace,
        rat_domain::Layer::Gold,
        &rat_domain::TableName::parse("revenue").unwrap(),
        None,
        None,
        None,
    )
    .await
    .unwrap();
    let gone = fixtures::pipeline(&client, "default", "gold", "gone").await;
    pipelines::soft_delete(&client, &gone.address, OffsetDateTime::now_utc())
        .await
        .unwrap();

    // Only live objects can be held: a deleted pipeline, an unknown id, or
    // an id of the other kind is not found, named by the kind asked for.
    for (member_type, id, entity) in [
        (MemberType::Pipeline, gone.id.into(), "pipeline"),
        (MemberType::Pipeline, table.id, "pipeline"),
        (MemberType::Table, Uuid::new_v4(), "table"),
    ] {
        let err = projects::lock_live_object(&client, member_type, id).await.unwrap_err();
        assert!(is_not_found(&err, entity), "{err:?}");
    }

    let transaction = client.transaction().await.unwrap();
    projects::lock_live_object(&transaction, MemberType::Table, table.id)
        .await
        .unwrap();
    projects::add_member(
        &transaction,
        project.id,
        MemberType::Table,
        table.id,
        OffsetDateTime::now_utc(),
    )
    .await
    .unwrap();
    // While the membership is uncommitted, deleting the table waits (here:
    // gives up after its lock timeout) instead of slipping in between.
    other.batch_execute("SET lock_timeout = '200ms'").await.unwrap();
    let blocked = other
        .execute("DELETE FROM table_metadata WHERE id = $1", &[&table.id])
        .await;
    let code = blocked.unwrap_err().code().map(|code| code.code().to_owned());
    assert_eq!(
        code.as_deref(),
        Some("55P03"),
        "the delete must wait (lock_not_available)"
    );
    transaction.commit().await.unwrap();
    assert_eq!(memberships_of(&other, table.id).await, 1);
    // Once it commits, the delete goes through and takes the membership along.
    let deleted = other
        .execute("DELETE FROM table_metadata WHERE id = $1", &[&table.id])
        .await
        .unwrap();
    assert_eq!(deleted, 1);
    assert_eq!(memberships_of(&other, table.id).await, 0);
}

#[tokio::test]
async fn live_members_are_listed_with_where_they_are_and_only_where_readable() {
    let db = TestDatabase::new().await;
    let client = db.client().await;
    let base = datetime!(2026-01-01 00:00:00 UTC);
    let project = projects::create(&client, "Revenue", "", None).await.unwrap();
    let open = fixtures::pipeline(&client, "default", "silver", "open").await;
    let private = fixtures::pipeline(&client, "default", "silver", "private").await;
    rat_dao::access::set_owner(&client, rat_domain::ObjectType::Pipeline, private.id.into(), "alice")
        .await
        .unwrap();
    let deleted = fixtures::pipeline(&client, "default", "silver", "deleted").await;
    for (i, pipeline) in [&open, &private, &deleted].into_iter().enumerate() {
        projects::add_member(
            &client,
            project.id,
            MemberType::Pipeline,
            pipeline.id.into(),
            base + Duration::seconds(i as i64),
        )
        .await
        .unwrap();
    }
    // A membership of nothing (no such table) is never listed.
    projects::add_member(&client, project.id, MemberType::Table, Uuid::new_v4(), base)
        .await
        .unwrap();
    pipelines::soft_delete(&client, &deleted.address, base).await.unwrap();

    let names = |page: &rat_domain::Page<rat_domain::ListedMember>| -> Vec<String> {
        page.items.iter().map(rat_domain::ListedMember::display_name).collect()
    };
    let all = projects::list_live_members(&client, project.id, None, PageRequest::default())
        .await
        .unwrap();
    assert_eq!(names(&all), ["default.silver.open", "default.silver.private"]);
    assert_eq!(all.total, 2);
    let alice = ["alice".to_owned()];
    let for_alice = projects::list_live_members(&client, project.id, Some(&alice), PageRequest::default())
        .await
        .unwrap();
    assert_eq!((names(&for_alice), for_alice.total), (names(&all), 2));
    let bob = ["bob".to_owned(), "role:analysts".to_owned()];
    let first = PageRequest::new(Some(1), Some(0)).unwrap();
    let for_bob = projects::list_live_members(&client, project.id, Some(&bob), first)
        .await
        .unwrap();
    assert_eq!(
        (names(&for_bob), for_bob.total),
        (vec!["default.silver.open".to_owned()], 1)
    );
}
