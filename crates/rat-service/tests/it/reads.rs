//! Coalesced pipeline reads (`rat_service::pipelines::get`) against a real
//! PostgreSQL: every caller gets its own pipeline, and no read is answered
//! by a query sent before the read was made. The same for the access rule's
//! reads of callers who are not admins: each gets what the rule gives them,
//! as of a query sent after they asked.

use rat_service::identity::Caller;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::common::{address, create, fs_world};
use rat_dao::access;
use rat_dao::pipelines::PipelineUpdate;
use rat_domain::{AccessLevel, ObjectType};
use rat_service::{ServiceError, pipelines};
use time::OffsetDateTime;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_reads_each_get_their_own_pipeline() {
    let world = fs_world().await;
    let mut ids = Vec::new();
    for i in 0..20 {
        ids.push(create(&world.services, &format!("p{i}")).await.pipeline.id);
    }
    let reads: Vec<_> = (0..420)
        .map(|i| {
            let services = world.services.clone();
            tokio::spawn(async move {
                let name = if i % 21 == 20 {
                    "missing".to_owned()
                } else {
                    format!("p{}", i % 21)
                };
                (
                    i,
                    pipelines::get(&services, &Caller::community(), &address("default", "silver", &name)).await,
                )
            })
        })
        .collect();
    for read in reads {
        let (i, answer) = read.await.unwrap();
        if i % 21 == 20 {
            assert!(
                matches!(answer, Err(ServiceError::NotFound { entity: "pipeline" })),
                "{answer:?}"
            );
        } else {
            let pipeline = answer.unwrap();
            assert_eq!(pipeline.id, ids[i % 21]);
            assert_eq!(pipeline.address.name.as_str(), format!("p{}", i % 21));
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_made_after_a_change_committed_sees_it_even_with_reads_in_flight() {
    let world = fs_world().await;
    create(&world.services, "watched").await;
    let watched = address("default", "silver", "watched");
    // Background readers keep batches in flight the whole time, so reads
    // below often arrive while an older batch (sent before the change) runs.
    let stop = Arc::new(AtomicBool::new(false));
    let readers: Vec<_> = (0..8)
        .map(|_| {
            let (services, watched, stop) = (world.services.clone(), watched.clone(), stop.clone());
            tokio::spawn(async move {
                let mut reads = 0u32;
                while !stop.load(Ordering::Relaxed) {
                    pipelines::get(&services, &Caller::community(), &watched).await.unwrap();
                    reads += 1;
                }
                reads
            })
        })
        .collect();
    for round in 0..100 {
        let description = format!("round {round}");
        let changes = PipelineUpdate {
            description: Some(description.clone()),
            ..PipelineUpdate::default()
        };
        pipelines::update(&world.services, &Caller::community(), &watched, &changes)
            .await
            .unwrap();
        let read = pipelines::get(&world.services, &Caller::community(), &watched)
            .await
            .unwrap();
        assert_eq!(
            read.description, description,
            "a read after round {round}'s change missed it"
        );
    }
    stop.store(true, Ordering::Relaxed);
    for reader in readers {
        assert!(reader.await.unwrap() > 0);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_reads_by_users_each_get_what_the_rule_gives_them() {
    let world = fs_world().await;
    let client = world.db.client().await;
    let now = OffsetDateTime::now_utc();
    let mut ids = Vec::new();
    for i in 0..10 {
        let id = create(&world.services, &format!("p{i}")).await.pipeline.id;
        access::set_owner(&client, ObjectType::Pipeline, id.into(), "olga")
            .await
            .unwrap();
        // Alice may read the even ones; bob, through his role, the third.
        if i % 2 == 0 {
            access::grant(
                &client,
                ObjectType::Pipeline,
                id.into(),
                "alice",
                AccessLevel::Read,
                "olga",
                now,
            )
            .await
            .unwrap();
        }
        if i == 3 {
            let to = "role:analysts";
            access::grant(
                &client,
                ObjectType::Pipeline,
                id.into(),
                to,
                AccessLevel::Read,
                "olga",
                now,
            )
            .await
            .unwrap();
        }
        ids.push(id);
    }
    let callers = [
        Caller::user("olga", &[]),
        Caller::user("alice", &[]),
        Caller::user("bob", &["analysts"]),
        Caller::user("carol", &["engineers"]),
    ];
    let may_read = |caller: usize, i: usize| match caller {
        0 => true,
        1 => i.is_multiple_of(2),
        2 => i == 3,
        _ => false,
    };
    let reads: Vec<_> = (0..400)
        .map(|n| {
            let (services, caller) = (world.services.clone(), callers[n % 4].clone());
            tokio::spawn(async move {
                let i = (n / 4) % 10;
                let answer = pipelines::get(&services, &caller, &address("default", "silver", &format!("p{i}"))).await;
                (n % 4, i, answer)
            })
        })
        .collect();
    for read in reads {
        let (caller, i, answer) = read.await.unwrap();
        if may_read(caller, i) {
            assert_eq!(answer.unwrap().id, ids[i], "caller {caller}, p{i}");
        } else {
            assert!(
                matches!(answer, Err(ServiceError::NotFound { entity: "pipeline" })),
                "caller {caller}, p{i}: {answer:?}"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_made_after_a_share_changed_sees_it_even_with_reads_in_flight() {
    let world = fs_world().await;
    let client = world.db.client().await;
    let id = create(&world.services, "watched").await.pipeline.id;
    access::set_owner(&client, ObjectType::Pipeline, id.into(), "olga")
        .await
        .unwrap();
    let watched = address("default", "silver", "watched");
    // The owner reads it all the time, so alice's reads below often arrive
    // while an older batch of access reads (sent before the change) runs.
    let stop = Arc::new(AtomicBool::new(false));
    let readers: Vec<_> = (0..8)
        .map(|_| {
            let (services, watched, stop) = (world.services.clone(), watched.clone(), stop.clone());
            tokio::spawn(async move {
                let mut reads = 0u32;
                while !stop.load(Ordering::Relaxed) {
                    pipelines::get(&services, &Caller::user("olga", &[]), &watched)
                        .await
                        .unwrap();
                    reads += 1;
                }
                reads
            })
        })
        .collect();
    let alice = Caller::user("alice", &[]);
    for round in 0..50 {
        let now = OffsetDateTime::now_utc();
        access::grant(
            &client,
            ObjectType::Pipeline,
            id.into(),
            "alice",
            AccessLevel::Read,
            "olga",
            now,
        )
        .await
        .unwrap();
        let read = pipelines::get(&world.services, &alice, &watched).await;
        assert!(
            read.is_ok(),
            "round {round}: a read after the share missed it: {read:?}"
        );
        access::revoke(&client, ObjectType::Pipeline, id.into(), "alice")
            .await
            .unwrap();
        let read = pipelines::get(&world.services, &alice, &watched).await;
        assert!(
            matches!(read, Err(ServiceError::NotFound { .. })),
            "round {round}: a read after the share was removed still saw it: {read:?}"
        );
    }
    stop.store(true, Ordering::Relaxed);
    for reader in readers {
        assert!(reader.await.unwrap() > 0);
    }
}

/// Kept access answers ([`rat_service`]'s grants cache) are checked against
/// the access generation read with the pipeline: a change made through
/// another replica (another `Services` on the same database) is seen by the
/// very next read here, whichever of the rule's inputs it changed.
#[tokio::test]
async fn a_change_made_through_another_replica_is_seen_by_the_next_read() {
    let world = fs_world().await;
    let other_replica = rat_service::Services::new(world.db.pool().clone(), world.services.store.clone());
    let client = world.db.client().await;
    let id = create(&world.services, "watched").await.pipeline.id;
    let namespace: uuid::Uuid = client
        .query_one("SELECT id FROM namespaces WHERE name = 'default'", &[])
        .await
        .unwrap()
        .get(0);
    access::set_owner(&client, ObjectType::Pipeline, id.into(), "olga")
        .await
        .unwrap();
    let watched = address("default", "silver", "watched");
    let (olga, alice) = (Caller::user("olga", &[]), Caller::user("alice", &["analysts"]));
    let may_read = |caller: &Caller| {
        let (services, caller, watched) = (world.services.clone(), caller.clone(), watched.clone());
        async move {
            match pipelines::get(&services, &caller, &watched).await {
                Ok(_) => true,
                Err(ServiceError::NotFound { .. }) => false,
                Err(e) => panic!("{e:?}"),
            }
        }
    };
    for round in 0..5 {
        // Read twice, so the second answer comes from what was kept.
        assert!(!may_read(&alice).await && !may_read(&alice).await, "round {round}");
        // A share of the namespace to one of alice's roles.
        let share = rat_service::sharing::share(
            &other_replica,
            &Caller::community(),
            ObjectType::Namespace,
            namespace,
            "role:analysts",
            AccessLevel::Read,
            OffsetDateTime::now_utc(),
        )
        .await
        .unwrap();
        assert!(may_read(&alice).await && may_read(&alice).await, "round {round}");
        rat_service::sharing::unshare(&other_replica, &Caller::community(), share.id)
            .await
            .unwrap();
        assert!(!may_read(&alice).await, "round {round}: the removed share still counts");
        // A transfer away from the owner who read it a moment ago.
        assert!(may_read(&olga).await && may_read(&olga).await, "round {round}");
        rat_service::sharing::transfer(&other_replica, &olga, ObjectType::Pipeline, id.into(), "alice")
            .await
            .unwrap();
        assert!(!may_read(&olga).await, "round {round}: the old owner still reads it");
        assert!(may_read(&alice).await, "round {round}: the new owner cannot read it");
        rat_service::sharing::transfer(&other_replica, &alice, ObjectType::Pipeline, id.into(), "olga")
            .await
            .unwrap();
    }
}
