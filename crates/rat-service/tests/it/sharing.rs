//! Ownership transfer against a real database.

use rat_dao::access;
use rat_domain::ObjectType;
use rat_service::ServiceError;
use rat_service::identity::Caller;
use rat_service::sharing;

#[tokio::test]
async fn of_two_concurrent_transfers_by_the_owner_exactly_one_wins() {
    let world = crate::common::fs_world().await;
    let client = world.db.client().await;
    let pipeline = rat_testkit::fixtures::pipeline(&client, "default", "silver", "orders").await;
    access::set_owner(&client, ObjectType::Pipeline, pipeline.id.into(), "alice")
        .await
        .unwrap();
    let alice = Caller::user("alice", &[]);
    for round in 0..5 {
        let (to_bob, to_carol) = tokio::join!(
            sharing::transfer(&world.services, &alice, ObjectType::Pipeline, pipeline.id.into(), "bob"),
            sharing::transfer(
                &world.services,
                &alice,
                ObjectType::Pipeline,
                pipeline.id.into(),
                "carol"
            ),
        );
        // The loser no longer owns the pipeline, nor may it read it: it was
        // transferred away from under it (the two queue on the row lock).
        let winner = match (&to_bob, &to_carol) {
            (Ok(o), Err(ServiceError::NotFound { .. })) | (Err(ServiceError::NotFound { .. }), Ok(o)) => {
                o.owner.clone()
            }
            other => panic!("round {round}: exactly one transfer must win: {other:?}"),
        };
        let stored = access::get_owner(&client, ObjectType::Pipeline, pipeline.id.into())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(stored.owner, winner);
        let column = rat_dao::pipelines::get(&client, pipeline.id).await.unwrap().owner;
        assert_eq!(
            column.as_deref(),
            Some(winner.as_str()),
            "the column agrees with the row"
        );
        // Hand it back for the next round.
        sharing::transfer(
            &world.services,
            &Caller::user(winner.clone(), &[]),
            ObjectType::Pipeline,
            pipeline.id.into(),
            "alice",
        )
        .await
        .unwrap();
    }
}
