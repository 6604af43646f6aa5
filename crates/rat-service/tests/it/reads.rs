//! Coalesced pipeline reads (`rat_service::pipelines::get`) against a real
//! PostgreSQL: every caller gets its own pipeline, and no read is answered
//! by a query sent before the read was made.

use rat_service::identity::Caller;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::common::{address, create, fs_world};
use rat_dao::pipelines::PipelineUpdate;
use rat_service::{ServiceError, pipelines};

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
