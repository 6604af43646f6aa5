//! `access` repository (ownership and shares) against a real PostgreSQL,
//! including the V6 triggers that forget the grants of deleted objects.

use rat_dao::{DaoError, GenericClient, access, namespaces, pipelines, tables};
use rat_domain::{AccessLevel, Layer, NamespaceName, ObjectType, PageRequest, TableName};
use rat_testkit::{TestDatabase, fixtures};
use time::macros::datetime;
use time::{Duration, OffsetDateTime};
use uuid::Uuid;

fn is_not_found(err: &DaoError, what: &str) -> bool {
    matches!(err, DaoError::NotFound { entity } if *entity == what)
}

async fn grants_of(client: &impl GenericClient, object_id: Uuid) -> (i64, i64) {
    let row = client
        .query_one(
            "SELECT (SELECT count(*) FROM ownership WHERE object_id = $1), \
                    (SELECT count(*) FROM shares WHERE object_id = $1)",
            &[&object_id],
        )
        .await
        .unwrap();
    (row.get(0), row.get(1))
}

#[tokio::test]
async fn ownership_round_trips_and_set_owner_replaces() {
    let db = TestDatabase::new().await;
    let client = db.client().await;
    let object = Uuid::new_v4();
    assert_eq!(
        access::get_owner(&client, ObjectType::Pipeline, object).await.unwrap(),
        None
    );

    let set = access::set_owner(&client, ObjectType::Pipeline, object, "alice")
        .await
        .unwrap();
    assert_eq!(set.object_type, ObjectType::Pipeline);
    assert_eq!(set.object_id, object);
    assert_eq!(set.owner, "alice");
    assert_eq!(
        access::get_owner(&client, ObjectType::Pipeline, object).await.unwrap(),
        Some(set.clone())
    );
    // The same id as another object type is another object.
    assert_eq!(
        access::get_owner(&client, ObjectType::Table, object).await.unwrap(),
        None
    );

    let replaced = access::set_owner(&client, ObjectType::Pipeline, object, "bob")
        .await
        .unwrap();
    assert_eq!(replaced.owner, "bob");
    assert_eq!((replaced.id, replaced.created_at), (set.id, set.created_at));

    access::delete_owner(&client, ObjectType::Pipeline, object)
        .await
        .unwrap();
    assert_eq!(
        access::get_owner(&client, ObjectType::Pipeline, object).await.unwrap(),
        None
    );
    let err = access::delete_owner(&client, ObjectType::Pipeline, object)
        .await
        .unwrap_err();
    assert!(is_not_found(&err, "ownership"), "{err:?}");
}

#[tokio::test]
async fn only_the_owner_can_transfer() {
    let db = TestDatabase::new().await;
    let client = db.client().await;
    let object = Uuid::new_v4();
    let err = access::transfer(&client, ObjectType::Pipeline, object, "alice", "bob")
        .await
        .unwrap_err();
    assert!(is_not_found(&err, "ownership"), "{err:?}");

    access::set_owner(&client, ObjectType::Pipeline, object, "alice")
        .await
        .unwrap();
    let err = access::transfer(&client, ObjectType::Pipeline, object, "mallory", "mallory")
        .await
        .unwrap_err();
    assert!(
        matches!(&err, DaoError::Conflict { constraint } if constraint == access::NOT_OWNER),
        "{err:?}"
    );
    assert_eq!(
        access::get_owner(&client, ObjectType::Pipeline, object)
            .await
            .unwrap()
            .unwrap()
            .owner,
        "alice",
        "a refused transfer changes nothing"
    );

    let moved = access::transfer(&client, ObjectType::Pipeline, object, "alice", "bob")
        .await
        .unwrap();
    assert_eq!(moved.owner, "bob");
    // The previous owner has lost the right to transfer.
    let err = access::transfer(&client, ObjectType::Pipeline, object, "alice", "carol")
        .await
        .unwrap_err();
    assert!(
        matches!(&err, DaoError::Conflict { constraint } if constraint == "not_owner"),
        "{err:?}"
    );
}

#[tokio::test]
async fn share_round_trips_and_grant_upserts() {
    let db = TestDatabase::new().await;
    let client = db.client().await;
    let object = Uuid::new_v4();
    let at = datetime!(2026-02-03 04:05:06 UTC);
    let share = access::grant(
        &client,
        ObjectType::Table,
        object,
        "role:analysts",
        AccessLevel::Read,
        "alice",
        at,
    )
    .await
    .unwrap();
    assert_eq!(share.object_type, ObjectType::Table);
    assert_eq!(share.object_id, object);
    assert_eq!(share.shared_with, "role:analysts");
    assert_eq!(share.access_level, AccessLevel::Read);
    assert_eq!(share.granted_by, "alice");
    assert_eq!(share.granted_at, at);
    let listed = access::list_for_object(&client, ObjectType::Table, object, PageRequest::default())
        .await
        .unwrap();
    assert_eq!(listed.items, std::slice::from_ref(&share));

    let later = at + Duration::days(1);
    let regranted = access::grant(
        &client,
        ObjectType::Table,
        object,
        "role:analysts",
        AccessLevel::Write,
        "bob",
        later,
    )
    .await
    .unwrap();
    assert_eq!(regranted.id, share.id, "the existing share is updated");
    assert_eq!(regranted.access_level, AccessLevel::Write);
    assert_eq!(regranted.granted_by, "bob");
    assert_eq!(regranted.granted_at, later);
    let listed = access::list_for_object(&client, ObjectType::Table, object, PageRequest::default())
        .await
        .unwrap();
    assert_eq!(listed.items, [regranted]);
    assert_eq!(listed.total, 1);
}

#[tokio::test]
async fn revoke_removes_one_share_or_is_not_found() {
    let db = TestDatabase::new().await;
    let client = db.client().await;
    let object = Uuid::new_v4();
    let now = OffsetDateTime::now_utc();
    for who in ["alice", "bob"] {
        access::grant(
            &client,
            ObjectType::Pipeline,
            object,
            who,
            AccessLevel::Read,
            "owner",
            now,
        )
        .await
        .unwrap();
    }
    access::revoke(&client, ObjectType::Pipeline, object, "alice")
        .await
        .unwrap();
    let left = access::list_for_object(&client, ObjectType::Pipeline, object, PageRequest::default())
        .await
        .unwrap();
    assert_eq!(
        left.items.iter().map(|s| s.shared_with.as_str()).collect::<Vec<_>>(),
        ["bob"]
    );
    for err in [
        access::revoke(&client, ObjectType::Pipeline, object, "alice")
            .await
            .unwrap_err(),
        access::revoke(&client, ObjectType::Table, object, "bob")
            .await
            .unwrap_err(),
    ] {
        assert!(is_not_found(&err, "share"), "{err:?}");
    }
}

#[tokio::test]
async fn lists_by_object_and_by_principal_page_with_totals() {
    let db = TestDatabase::new().await;
    let client = db.client().await;
    let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
    let base = datetime!(2026-01-01 00:00:00 UTC);
    let grants = [
        (a, "carol", 0),
        (a, "alice", 1),
        (a, "bob", 2),
        (b, "alice", 3),
        (Uuid::new_v4(), "alice", 4),
    ];
    for (object, who, hour) in grants {
        access::grant(
            &client,
            ObjectType::Pipeline,
            object,
            who,
            AccessLevel::Read,
            "owner",
            base + Duration::hours(hour),
        )
        .await
        .unwrap();
    }
    let page = access::list_for_object(
        &client,
        ObjectType::Pipeline,
        a,
        PageRequest::new(Some(2), Some(0)).unwrap(),
    )
    .await
    .unwrap();
    assert_eq!(
        page.items.iter().map(|s| s.shared_with.as_str()).collect::<Vec<_>>(),
        ["alice", "bob"]
    );
    assert_eq!(page.total, 3);
    let page = access::list_for_object(&client, ObjectType::Namespace, a, PageRequest::default())
        .await
        .unwrap();
    assert_eq!(page.total, 0, "the object type is part of the object's identity");

    let page = access::list_for_principal(&client, "alice", PageRequest::new(Some(2), Some(0)).unwrap())
        .await
        .unwrap();
    let hours: Vec<i64> = page.items.iter().map(|s| (s.granted_at - base).whole_hours()).collect();
    assert_eq!(hours, [4, 3], "newest first");
    assert_eq!(page.total, 3);
    let page = access::list_for_principal(&client, "alice", PageRequest::new(Some(2), Some(2)).unwrap())
        .await
        .unwrap();
    assert_eq!(page.items.len(), 1);
    assert_eq!(page.items[0].object_id, a);
    assert_eq!(page.total, 3);
}

#[tokio::test]
async fn access_level_is_the_highest_level_of_any_principal() {
    let db = TestDatabase::new().await;
    let client = db.client().await;
    let object = Uuid::new_v4();
    let now = OffsetDateTime::now_utc();
    let level = |principals: &'static [&'static str]| {
        let client = &client;
        async move {
            access::access_level(client, ObjectType::Pipeline, object, principals)
                .await
                .unwrap()
        }
    };
    assert_eq!(level(&["alice", "role:analysts"]).await, None);
    assert_eq!(level(&[]).await, None);

    access::grant(
        &client,
        ObjectType::Pipeline,
        object,
        "alice",
        AccessLevel::Read,
        "o",
        now,
    )
    .await
    .unwrap();
    access::grant(
        &client,
        ObjectType::Pipeline,
        object,
        "role:engineers",
        AccessLevel::Write,
        "o",
        now,
    )
    .await
    .unwrap();
    // Another object type with the same id, and another object, do not count.
    access::grant(&client, ObjectType::Table, object, "bob", AccessLevel::Write, "o", now)
        .await
        .unwrap();
    access::grant(
        &client,
        ObjectType::Pipeline,
        Uuid::new_v4(),
        "bob",
        AccessLevel::Write,
        "o",
        now,
    )
    .await
    .unwrap();

    assert_eq!(level(&["alice"]).await, Some(AccessLevel::Read));
    assert_eq!(level(&["alice", "role:analysts"]).await, Some(AccessLevel::Read));
    assert_eq!(level(&["alice", "role:engineers"]).await, Some(AccessLevel::Write));
    assert_eq!(level(&["role:engineers", "alice"]).await, Some(AccessLevel::Write));
    assert_eq!(level(&["bob"]).await, None);
}

#[tokio::test]
async fn grants_of_many_answers_each_question_as_grants_alone_would() {
    let db = TestDatabase::new().await;
    let client = db.client().await;
    let now = OffsetDateTime::now_utc();
    let orders = fixtures::pipeline(&client, "sales", "silver", "orders").await;
    let other = fixtures::pipeline(&client, "default", "silver", "other").await;
    let sales: Uuid = client
        .query_one("SELECT id FROM namespaces WHERE name = 'sales'", &[])
        .await
        .unwrap()
        .get(0);
    access::set_owner(&client, ObjectType::Pipeline, orders.id.into(), "olga")
        .await
        .unwrap();
    access::set_owner(&client, ObjectType::Namespace, sales, "nora")
        .await
        .unwrap();
    for (object_type, object_id, to, level) in [
        (ObjectType::Pipeline, orders.id.into(), "alice", AccessLevel::Read),
        (ObjectType::Namespace, sales, "role:analysts", AccessLevel::Write),
        (ObjectType::Pipeline, other.id.into(), "alice", AccessLevel::Write),
        // The same id as another kind of object is another object.
        (ObjectType::Table, orders.id.into(), "alice", AccessLevel::Write),
    ] {
        access::grant(&client, object_type, object_id, to, level, "olga", now)
            .await
            .unwrap();
    }
    let question =
        |object_type, object_id: Uuid, namespace: Option<&str>, principals: &[&str]| access::GrantsQuestion {
            object_type,
            object_id,
            namespace: namespace.map(str::to_owned),
            principals: principals.iter().map(|p| (*p).to_owned()).collect(),
        };
    let questions = [
        // A name given twice counts once.
        question(
            ObjectType::Pipeline,
            orders.id.into(),
            Some("sales"),
            &["alice", "role:analysts", "alice"],
        ),
        question(ObjectType::Pipeline, orders.id.into(), Some("sales"), &["bob"]),
        question(ObjectType::Namespace, sales, None, &["role:analysts", "alice"]),
        question(ObjectType::Pipeline, other.id.into(), Some("default"), &["alice"]),
        question(ObjectType::Pipeline, Uuid::new_v4(), Some("nowhere"), &["alice"]),
        question(ObjectType::Pipeline, other.id.into(), Some("default"), &[]),
    ];
    let sorted = |grants: access::Grants| {
        let mut shares = grants.shares;
        shares.sort();
        (grants.owner, grants.namespace_owner, shares)
    };
    let together: Vec<_> = access::grants_of_many(&client, &questions)
        .await
        .unwrap()
        .into_iter()
        .map(sorted)
        .collect();
    let (olga, nora) = (Some("olga".to_owned()), Some("nora".to_owned()));
    assert_eq!(
        together,
        vec![
            (
                olga.clone(),
                nora.clone(),
                vec![
                    ("alice".to_owned(), AccessLevel::Read),
                    ("role:analysts".to_owned(), AccessLevel::Write)
                ]
            ),
            (olga, nora.clone(), vec![]),
            // A namespace's own owner is its owner; it holds no namespace.
            (nora, None, vec![("role:analysts".to_owned(), AccessLevel::Write)]),
            (None, None, vec![("alice".to_owned(), AccessLevel::Write)]),
            (None, None, vec![]),
            (None, None, vec![]),
        ]
    );
    for (question, answer) in questions.iter().zip(&together) {
        let alone = access::grants(
            &client,
            question.object_type,
            question.object_id,
            question.namespace.as_deref(),
            &question.principals,
        )
        .await
        .unwrap();
        assert_eq!(&sorted(alone), answer, "{question:?}");
    }
    assert!(access::grants_of_many(&client, &[]).await.unwrap().is_empty());
}

#[tokio::test]
async fn schema_checks_are_invalid_input() {
    let db = TestDatabase::new().await;
    let client = db.client().await;
    for (sql, constraint) in [
        (
            "INSERT INTO ownership (object_type, object_id, owner) VALUES ('schedule', gen_random_uuid(), 'a')",
            "ck_ownership_object_type",
        ),
        (
            "INSERT INTO shares (object_type, object_id, shared_with, access_level, granted_by) \
             VALUES ('pipeline', gen_random_uuid(), 'a', 'admin', 'b')",
            "ck_shares_access_level",
        ),
        (
            "INSERT INTO shares (object_type, object_id, shared_with, access_level, granted_by) \
             VALUES ('run', gen_random_uuid(), 'a', 'read', 'b')",
            "ck_shares_object_type",
        ),
    ] {
        let err = DaoError::from(client.execute(sql, &[]).await.unwrap_err());
        assert!(
            matches!(&err, DaoError::Invalid { constraint: c } if c == constraint),
            "{sql}: {err:?}"
        );
    }
}

#[tokio::test]
async fn purging_a_pipeline_forgets_its_grants_only() {
    let db = TestDatabase::new().await;
    let client = db.client().await;
    let now = OffsetDateTime::now_utc();
    let gone = fixtures::pipeline(&client, "default", "silver", "gone").await;
    let kept = fixtures::pipeline(&client, "default", "silver", "kept").await;
    for p in [&gone, &kept] {
        access::set_owner(&client, ObjectType::Pipeline, p.id.into(), "alice")
            .await
            .unwrap();
        access::grant(
            &client,
            ObjectType::Pipeline,
            p.id.into(),
            "bob",
            AccessLevel::Read,
            "alice",
            now,
        )
        .await
        .unwrap();
    }
    // A table that happens to carry the same id is a different object.
    access::set_owner(&client, ObjectType::Table, gone.id.into(), "carol")
        .await
        .unwrap();

    // Soft delete keeps the grants: the pipeline can still be restored or purged.
    pipelines::soft_delete(&client, &gone.address, now).await.unwrap();
    assert_eq!(grants_of(&client, gone.id.into()).await, (2, 1));

    pipelines::purge(&client, gone.id).await.unwrap();
    assert_eq!(
        access::get_owner(&client, ObjectType::Pipeline, gone.id.into())
            .await
            .unwrap(),
        None
    );
    assert_eq!(grants_of(&client, gone.id.into()).await, (1, 0));
    assert_eq!(
        access::get_owner(&client, ObjectType::Table, gone.id.into())
            .await
            .unwrap()
            .unwrap()
            .owner,
        "carol"
    );
    assert_eq!(grants_of(&client, kept.id.into()).await, (1, 1));
}

#[tokio::test]
async fn deleting_a_namespace_forgets_its_grants_and_those_of_its_pipelines() {
    let db = TestDatabase::new().await;
    let client = db.client().await;
    let now = OffsetDateTime::now_utc();
    let sales = fixtures::pipeline(&client, "sales", "gold", "revenue").await;
    let kept = fixtures::pipeline(&client, "default", "gold", "revenue").await;
    let sales_ns = namespaces::get(&client, &NamespaceName::parse("sales").unwrap())
        .await
        .unwrap();
    let default_ns = namespaces::get(&client, &NamespaceName::default_namespace())
        .await
        .unwrap();
    for (object_type, id) in [
        (ObjectType::Namespace, sales_ns.id),
        (ObjectType::Pipeline, sales.id.into()),
        (ObjectType::Namespace, default_ns.id),
        (ObjectType::Pipeline, kept.id.into()),
    ] {
        access::set_owner(&client, object_type, id, "alice").await.unwrap();
        access::grant(&client, object_type, id, "bob", AccessLevel::Write, "alice", now)
            .await
            .unwrap();
    }

    namespaces::delete(&client, &NamespaceName::parse("sales").unwrap())
        .await
        .unwrap();
    assert_eq!(grants_of(&client, sales_ns.id).await, (0, 0));
    assert_eq!(grants_of(&client, sales.id.into()).await, (0, 0));
    assert_eq!(grants_of(&client, default_ns.id).await, (1, 1));
    assert_eq!(grants_of(&client, kept.id.into()).await, (1, 1));
}

#[tokio::test]
async fn deleting_table_metadata_forgets_its_grants() {
    let db = TestDatabase::new().await;
    let client = db.client().await;
    let now = OffsetDateTime::now_utc();
    let ns = NamespaceName::default_namespace();
    let name = TableName::parse("orders").unwrap();
    let meta = tables::upsert(&client, &ns, Layer::Gold, &name, None, None, None)
        .await
        .unwrap();
    access::set_owner(&client, ObjectType::Table, meta.id, "alice")
        .await
        .unwrap();
    access::grant(
        &client,
        ObjectType::Table,
        meta.id,
        "bob",
        AccessLevel::Read,
        "alice",
        now,
    )
    .await
    .unwrap();
    tables::delete(&client, &ns, Layer::Gold, &name).await.unwrap();
    assert_eq!(grants_of(&client, meta.id).await, (0, 0));
}

async fn generation(client: &impl GenericClient) -> i64 {
    access::access_generation(client).await.unwrap().0
}

#[tokio::test]
async fn the_access_generation_moves_once_per_committed_change_to_what_grants_read() {
    let db = TestDatabase::new().await;
    let mut client = db.client().await;
    let now = OffsetDateTime::now_utc();
    let pipeline = fixtures::pipeline(&client, "default", "silver", "orders").await;
    let object: Uuid = pipeline.id.into();
    let start = generation(&client).await;

    // One transaction changing ownership, shares and namespaces, several
    // rows each: one step, at commit.
    let tx = client.transaction().await.unwrap();
    access::set_owner(&tx, ObjectType::Pipeline, object, "olga")
        .await
        .unwrap();
    for to in ["alice", "bob", "role:analysts"] {
        access::grant(&tx, ObjectType::Pipeline, object, to, AccessLevel::Read, "olga", now)
            .await
            .unwrap();
    }
    fixtures::namespace(&tx, "sales").await;
    assert_eq!(
        access::access_generation(&tx).await.unwrap().0,
        start,
        "bumped at commit, not before"
    );
    tx.commit().await.unwrap();
    assert_eq!(generation(&client).await, start + 1);

    // Rolled back: no step.
    let tx = client.transaction().await.unwrap();
    access::grant(
        &tx,
        ObjectType::Pipeline,
        object,
        "carol",
        AccessLevel::Write,
        "olga",
        now,
    )
    .await
    .unwrap();
    tx.rollback().await.unwrap();
    assert_eq!(generation(&client).await, start + 1);

    // Each statement outside a transaction commits on its own: one step
    // each, for every kind of change to each of the three tables.
    access::grant(
        &client,
        ObjectType::Pipeline,
        object,
        "dave",
        AccessLevel::Read,
        "olga",
        now,
    )
    .await
    .unwrap();
    assert_eq!(generation(&client).await, start + 2);
    access::revoke(&client, ObjectType::Pipeline, object, "dave")
        .await
        .unwrap();
    assert_eq!(generation(&client).await, start + 3);
    access::set_owner(&client, ObjectType::Pipeline, object, "nora")
        .await
        .unwrap();
    assert_eq!(generation(&client).await, start + 4);
    namespaces::delete(&client, &"sales".parse().unwrap()).await.unwrap();
    assert_eq!(generation(&client).await, start + 5);

    // What grants do not read leaves it alone.
    fixtures::pipeline(&client, "default", "gold", "orders").await;
    assert_eq!(generation(&client).await, start + 5);

    // The answer to a batch carries the generation of its own snapshot.
    let (at, _) = access::grants_of_many_at(&client, &[]).await.unwrap();
    assert_eq!(at.0, start + 5);
}

#[tokio::test]
async fn concurrent_changes_to_grants_each_move_the_generation() {
    let db = TestDatabase::new().await;
    let client = db.client().await;
    let start = access::access_generation(&client).await.unwrap().0;
    // Writers committing at once queue on the counter only while they commit;
    // none is lost and none deadlocks.
    let writers: Vec<_> = (0..8)
        .map(|_| {
            let pool = db.pool().clone();
            tokio::spawn(async move {
                let mut client = pool.get().await.unwrap();
                let tx = client.transaction().await.unwrap();
                access::set_owner(&tx, ObjectType::Pipeline, Uuid::new_v4(), "olga")
                    .await
                    .unwrap();
                tx.commit().await.unwrap();
            })
        })
        .collect();
    for writer in writers {
        writer.await.unwrap();
    }
    assert_eq!(access::access_generation(&client).await.unwrap().0, start + 8);
}
