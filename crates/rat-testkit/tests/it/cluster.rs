//! A private cluster paused and resumed (the fault suite's "Postgres
//! unreachable"): while paused, an open session gets no answer and a new one
//! is not served; once resumed, both work again, with nothing restarted.

use std::time::Duration;

use rat_testkit::cluster::PrivateCluster;
use tokio_postgres::NoTls;

async fn connect(url: &str) -> Result<tokio_postgres::Client, tokio_postgres::Error> {
    let (client, connection) = tokio_postgres::connect(url, NoTls).await?;
    tokio::spawn(connection);
    Ok(client)
}

async fn started_at(client: &tokio_postgres::Client) -> time::OffsetDateTime {
    client
        .query_one("SELECT pg_postmaster_start_time()", &[])
        .await
        .unwrap()
        .get(0)
}

#[tokio::test]
async fn a_paused_cluster_answers_nothing_until_resumed() {
    let private = tokio::task::spawn_blocking(PrivateCluster::start)
        .await
        .unwrap()
        .unwrap();
    let url = private.url();
    let open = connect(&url).await.unwrap();
    let before = started_at(&open).await;

    let cluster = private.cluster().clone();
    tokio::task::spawn_blocking(move || cluster.pause())
        .await
        .unwrap()
        .unwrap();
    let silent = Duration::from_secs(2);
    assert!(
        tokio::time::timeout(silent, open.simple_query("SELECT 1"))
            .await
            .is_err(),
        "an open session answered while paused"
    );
    assert!(
        tokio::time::timeout(silent, connect(&url)).await.is_err(),
        "a new session was served while paused"
    );

    let cluster = private.cluster().clone();
    tokio::task::spawn_blocking(move || cluster.resume())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(started_at(&open).await, before, "the open session works again");
    let fresh = connect(&url).await.unwrap();
    assert_eq!(started_at(&fresh).await, before, "not restarted");
}
