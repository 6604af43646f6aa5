//! Projects against a real database: who may change a project, which
//! members each caller is shown, and what adding a member needs.

use rat_dao::{access, pipelines, tables};
use rat_domain::{AccessLevel, Layer, MemberType, NamespaceName, ObjectType, PageRequest, Pipeline, TableName};
use rat_service::ServiceError;
use rat_service::identity::Caller;
use rat_service::projects::{self, ProjectChanges};
use time::OffsetDateTime;
use uuid::Uuid;

fn admin() -> Caller {
    Caller {
        admin: true,
        ..Caller::user("root", &["rat-admin"])
    }
}

fn now() -> OffsetDateTime {
    OffsetDateTime::now_utc()
}

/// A pipeline at `default/silver/<name>`, owned by `owner` when given
/// (ownership row and column), else unowned (readable by everyone).
async fn pipeline(client: &impl rat_dao::GenericClient, name: &str, owner: Option<&str>) -> Pipeline {
    let pipeline = rat_testkit::fixtures::pipeline(client, "default", "silver", name).await;
    if let Some(owner) = owner {
        access::set_owner(client, ObjectType::Pipeline, pipeline.id.into(), owner)
            .await
            .unwrap();
    }
    pipeline
}

fn assert_forbidden<T: std::fmt::Debug>(result: Result<T, ServiceError>) {
    assert!(matches!(result, Err(ServiceError::Forbidden { .. })), "{result:?}");
}

fn assert_not_found<T: std::fmt::Debug>(result: Result<T, ServiceError>, what: &str) {
    assert!(
        matches!(&result, Err(ServiceError::NotFound { entity }) if *entity == what),
        "expected {what} not found: {result:?}"
    );
}

fn ids(page: &rat_domain::Page<rat_domain::ListedMember>) -> Vec<Uuid> {
    page.items.iter().map(|m| m.member.object_id).collect()
}

#[tokio::test]
async fn projects_are_created_trimmed_checked_and_unique() {
    let world = crate::common::fs_world().await;
    let alice = Caller::user("alice", &[]);
    let created = projects::create(&world.services, &alice, "  Revenue reporting ", Some("Finance"))
        .await
        .unwrap();
    assert_eq!(created.name, "Revenue reporting");
    assert_eq!(created.description, "Finance");
    assert_eq!(created.created_by.as_deref(), Some("alice"));
    assert_eq!(projects::get(&world.services, created.id).await.unwrap(), created);

    for (name, description) in [
        ("", None),
        ("   ", None),
        ("bad\u{7}name", None),
        (&*"x".repeat(256), None),
        ("ok", Some(&*"d".repeat(5_001))),
    ] {
        let refused = projects::create(&world.services, &alice, name, description).await;
        assert!(
            matches!(refused, Err(ServiceError::InvalidInput { .. })),
            "{name:?}: {refused:?}"
        );
    }
    let taken = projects::create(&world.services, &Caller::user("bob", &[]), "Revenue reporting", None).await;
    assert!(
        matches!(taken, Err(ServiceError::AlreadyExists { entity: "project" })),
        "{taken:?}"
    );
    assert_not_found(projects::get(&world.services, Uuid::new_v4()).await, "project");

    // Searching is case-insensitive, literal and bounded.
    projects::create(&world.services, &alice, "100% costs", None)
        .await
        .unwrap();
    let page = PageRequest::default();
    let found = projects::list(&world.services, Some("REVENUE"), page).await.unwrap();
    assert_eq!((found.total, found.items[0].id), (1, created.id));
    assert_eq!(projects::list(&world.services, Some("%"), page).await.unwrap().total, 1);
    assert_eq!(
        projects::list(&world.services, Some("  "), page).await.unwrap().total,
        2
    );
    let long = "x".repeat(256);
    assert!(matches!(
        projects::list(&world.services, Some(&long), page).await,
        Err(ServiceError::InvalidInput { .. })
    ));
}

#[tokio::test]
async fn only_the_creator_or_an_admin_changes_or_deletes_a_project() {
    let world = crate::common::fs_world().await;
    let services = &world.services;
    let (alice, bob) = (Caller::user("alice", &[]), Caller::user("bob", &["analysts"]));
    let project = projects::create(services, &alice, "Revenue", None).await.unwrap();
    let rename = |name| ProjectChanges {
        name: Some(name),
        description: None,
    };

    // A stranger reads it (a project grants nothing) but may not change it.
    assert_eq!(projects::get(services, project.id).await.unwrap(), project);
    assert_forbidden(projects::update(services, &bob, project.id, rename("Mine")).await);
    assert_forbidden(projects::delete(services, &bob, project.id).await);
    assert_eq!(projects::get(services, project.id).await.unwrap().name, "Revenue");

    // Bad input is refused before anything is read, whoever asks.
    let bad = ProjectChanges {
        name: Some(" "),
        description: None,
    };
    assert!(matches!(
        projects::update(services, &bob, project.id, bad).await,
        Err(ServiceError::InvalidInput { .. })
    ));

    // The creator changes it; an admin too; absent fields keep their value.
    let renamed = projects::update(services, &alice, project.id, rename(" Revenue 2026 "))
        .await
        .unwrap();
    assert_eq!(
        (renamed.name.as_str(), renamed.description.as_str()),
        ("Revenue 2026", "")
    );
    let described = ProjectChanges {
        name: None,
        description: Some("by the admin"),
    };
    let described = projects::update(services, &admin(), project.id, described)
        .await
        .unwrap();
    assert_eq!(
        (described.name.as_str(), described.description.as_str()),
        ("Revenue 2026", "by the admin")
    );
    let other = projects::create(services, &bob, "Costs", None).await.unwrap();
    assert!(matches!(
        projects::update(services, &bob, other.id, rename("Revenue 2026")).await,
        Err(ServiceError::AlreadyExists { entity: "project" })
    ));

    // A project made in Community mode (a non-personal creator) is changed
    // by admins only, like any unowned object.
    let community = projects::create(services, &Caller::community(), "Shared", None)
        .await
        .unwrap();
    assert_forbidden(projects::update(services, &alice, community.id, rename("Alice's")).await);
    assert_forbidden(projects::delete(services, &alice, community.id).await);
    projects::delete(services, &admin(), community.id).await.unwrap();

    // The creator deletes it; then it is gone for everyone.
    let deleted = projects::delete(services, &alice, project.id).await.unwrap();
    assert_eq!(deleted.id, project.id);
    assert_not_found(projects::get(services, project.id).await, "project");
    assert_not_found(projects::delete(services, &alice, project.id).await, "project");
    assert_not_found(
        projects::update(services, &alice, project.id, rename("x")).await,
        "project",
    );
}

#[tokio::test]
async fn members_are_listed_and_counted_only_where_the_caller_may_read_them() {
    let world = crate::common::fs_world().await;
    let services = &world.services;
    let client = world.db.client().await;
    let alice = Caller::user("alice", &["analysts"]);
    let project = projects::create(services, &alice, "Revenue", None).await.unwrap();

    // Alice's own pipeline; carol's, shared with the analysts role; an
    // unowned table (everyone reads it); and alice's pipeline deleted later.
    let own = pipeline(&client, "own", Some("alice")).await;
    let carols = pipeline(&client, "carols", Some("carol")).await;
    access::grant(
        &client,
        ObjectType::Pipeline,
        carols.id.into(),
        "role:analysts",
        AccessLevel::Read,
        "carol",
        now(),
    )
    .await
    .unwrap();
    let table = tables::upsert(
        &client,
        &NamespaceName::parse("default").unwrap(),
        Layer::Gold,
        &TableName::parse("revenue").unwrap(),
        None,
        None,
        None,
    )
    .await
    .unwrap();
    let doomed = pipeline(&client, "doomed", Some("alice")).await;
    let base = now();
    for (seconds, (member_type, id)) in [
        (MemberType::Pipeline, own.id.into()),
        (MemberType::Pipeline, carols.id.into()),
        (MemberType::Table, table.id),
        (MemberType::Pipeline, doomed.id.into()),
    ]
    .into_iter()
    .enumerate()
    {
        let added_at = base + time::Duration::seconds(seconds as i64);
        projects::add_member(services, &alice, project.id, member_type, id, added_at)
            .await
            .unwrap();
    }
    pipelines::soft_delete(&client, &doomed.address, now()).await.unwrap();

    let page = PageRequest::default();
    let listed = projects::list_members(services, &alice, project.id, page)
        .await
        .unwrap();
    assert_eq!(ids(&listed), [own.id.into(), carols.id.into(), table.id]);
    assert_eq!(listed.total, 3, "a deleted pipeline is no member any more");
    assert_eq!(listed.items[0].display_name(), "default.silver.own");
    assert_eq!(listed.items[2].display_name(), "default.gold.revenue");
    assert_eq!(listed.items[2].member.object_type, MemberType::Table);

    // Bob, without the role, sees only the unowned table, and the total
    // counts only that: the rule is applied in the query.
    let bob = Caller::user("bob", &[]);
    let for_bob = projects::list_members(services, &bob, project.id, page).await.unwrap();
    assert_eq!((ids(&for_bob), for_bob.total), (vec![table.id], 1));
    // Dave has the role: carol's pipeline and the table.
    let dave = Caller::user("dave", &["analysts"]);
    let for_dave = projects::list_members(services, &dave, project.id, page).await.unwrap();
    assert_eq!((ids(&for_dave), for_dave.total), (vec![carols.id.into(), table.id], 2));
    // A share on the namespace covers every pipeline in it.
    let namespace_id: Uuid = client
        .query_one("SELECT id FROM namespaces WHERE name = 'default'", &[])
        .await
        .unwrap()
        .get(0);
    access::grant(
        &client,
        ObjectType::Namespace,
        namespace_id,
        "erin",
        AccessLevel::Read,
        "root",
        now(),
    )
    .await
    .unwrap();
    let erin = Caller::user("erin", &[]);
    assert_eq!(
        projects::list_members(services, &erin, project.id, page)
            .await
            .unwrap()
            .total,
        3
    );
    // An admin sees every live member.
    assert_eq!(
        projects::list_members(services, &admin(), project.id, page)
            .await
            .unwrap()
            .total,
        3
    );

    // Pages of the filtered set: the total stays the filtered count.
    let second = PageRequest::new(Some(1), Some(1)).unwrap();
    let paged = projects::list_members(services, &dave, project.id, second)
        .await
        .unwrap();
    assert_eq!((ids(&paged), paged.total), (vec![table.id], 2));
    let paged = projects::list_members(services, &alice, project.id, second)
        .await
        .unwrap();
    assert_eq!((ids(&paged), paged.total), (vec![carols.id.into()], 3));

    assert_not_found(
        projects::list_members(services, &alice, Uuid::new_v4(), page).await,
        "project",
    );
}

#[tokio::test]
async fn adding_a_member_needs_the_project_and_read_on_a_live_object() {
    let world = crate::common::fs_world().await;
    let services = &world.services;
    let client = world.db.client().await;
    let (bob, carol) = (Caller::user("bob", &[]), Caller::user("carol", &[]));
    let project = projects::create(services, &bob, "Bob's", None).await.unwrap();
    let alices = pipeline(&client, "alices", Some("alice")).await;
    let unowned = pipeline(&client, "unowned", None).await;
    let project_id = project.id;
    let add = |caller: Caller, member_type: MemberType, id: Uuid| async move {
        projects::add_member(services, &caller, project_id, member_type, id, now()).await
    };

    // An object bob may not read answers exactly like one that does not exist.
    assert_not_found(
        add(bob.clone(), MemberType::Pipeline, alices.id.into()).await,
        "pipeline",
    );
    assert_not_found(add(bob.clone(), MemberType::Pipeline, Uuid::new_v4()).await, "pipeline");
    assert_not_found(add(bob.clone(), MemberType::Table, Uuid::new_v4()).await, "table");
    // A pipeline id is not a table.
    assert_not_found(add(bob.clone(), MemberType::Table, unowned.id.into()).await, "table");

    let added = add(bob.clone(), MemberType::Pipeline, unowned.id.into()).await.unwrap();
    assert_eq!(
        (added.project_id, added.object_type, added.object_id),
        (project.id, MemberType::Pipeline, unowned.id.into())
    );
    // Twice is a conflict, not a second row.
    let again = add(bob.clone(), MemberType::Pipeline, unowned.id.into()).await;
    assert!(
        matches!(
            again,
            Err(ServiceError::AlreadyExists {
                entity: "project member"
            })
        ),
        "{again:?}"
    );

    // Carol may read the pipeline but the project is bob's: 403 before the
    // object is even looked at.
    assert_forbidden(add(carol.clone(), MemberType::Pipeline, unowned.id.into()).await);
    assert_forbidden(add(carol.clone(), MemberType::Pipeline, Uuid::new_v4()).await);
    assert_not_found(
        projects::add_member(
            services,
            &bob,
            Uuid::new_v4(),
            MemberType::Pipeline,
            unowned.id.into(),
            now(),
        )
        .await,
        "project",
    );

    // A deleted pipeline cannot be added.
    let gone = pipeline(&client, "gone", Some("bob")).await;
    pipelines::soft_delete(&client, &gone.address, now()).await.unwrap();
    assert_not_found(add(bob.clone(), MemberType::Pipeline, gone.id.into()).await, "pipeline");

    // Once alice shares hers, bob may add it.
    access::grant(
        &client,
        ObjectType::Pipeline,
        alices.id.into(),
        "bob",
        AccessLevel::Read,
        "alice",
        now(),
    )
    .await
    .unwrap();
    add(bob.clone(), MemberType::Pipeline, alices.id.into()).await.unwrap();

    // Removing needs the project only: carol may not; bob may, even a
    // member he can no longer read.
    let remove = |caller: Caller, id: Uuid| async move {
        projects::remove_member(services, &caller, project_id, MemberType::Pipeline, id).await
    };
    assert_forbidden(remove(carol.clone(), unowned.id.into()).await);
    access::revoke(&client, ObjectType::Pipeline, alices.id.into(), "bob")
        .await
        .unwrap();
    let page = PageRequest::default();
    let listed = projects::list_members(services, &bob, project.id, page).await.unwrap();
    assert_eq!((ids(&listed), listed.total), (vec![unowned.id.into()], 1));
    remove(bob.clone(), alices.id.into()).await.unwrap();
    remove(bob.clone(), unowned.id.into()).await.unwrap();
    assert_not_found(remove(bob.clone(), unowned.id.into()).await, "project member");
    let left = projects::list_members(services, &admin(), project.id, page)
        .await
        .unwrap();
    assert_eq!(left.total, 0);
}
