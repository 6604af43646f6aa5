//! The seed generator writes the volumes it promises, and every row it writes
//! reads back through the repositories (so it obeys the domain's rules).

use rat_dao::{pipelines, runs, schedules, triggers};
use rat_domain::PageRequest;
use rat_testkit::TestDatabase;
use rat_testkit::seed::{Scale, seed};

#[tokio::test]
async fn seeded_rows_have_the_promised_volume_and_decode() {
    let db = TestDatabase::new().await;
    let scale = Scale::small();
    seed(db.url(), &scale, false).await.unwrap();
    let client = db.client().await;

    let count = |table: &'static str| {
        let client = &client;
        async move {
            let sql = format!("SELECT count(*) FROM {table}");
            client.query_one(sql.as_str(), &[]).await.unwrap().get::<_, i64>(0) as usize
        }
    };
    assert_eq!(
        count("namespaces").await,
        scale.namespaces + 1,
        "plus the default namespace"
    );
    assert_eq!(count("pipelines").await, scale.pipelines);
    assert_eq!(count("runs").await, scale.runs);
    assert_eq!(count("schedules").await, scale.schedules);
    assert_eq!(count("pipeline_triggers").await, scale.triggers);
    assert_eq!(count("audit_log").await, scale.audit);
    assert_eq!(count("landing_files").await, scale.files);

    // Decoding every row through the DAO checks names, layers, snapshots,
    // statuses, cron expressions, time zones and trigger configs.
    let all = PageRequest::new(Some(200), None).unwrap();
    let listed = pipelines::list(&client, &Default::default(), pipelines::DEFAULT_SORT, all)
        .await
        .unwrap();
    assert_eq!(listed.total as usize, scale.pipelines);
    let mut offset = 0;
    loop {
        let page = PageRequest::new(Some(200), Some(offset)).unwrap();
        let listed = runs::list(&client, &Default::default(), runs::DEFAULT_SORT, page, None)
            .await
            .unwrap();
        if listed.items.is_empty() {
            break;
        }
        // Listed runs carry no snapshot; read each whole to check it.
        for run in &listed.items {
            assert!(!runs::get(&client, run.id).await.unwrap().published_versions.is_empty());
        }
        offset += 200;
    }
    assert_eq!(offset as usize, scale.runs.div_ceil(200) * 200);
    let listed = schedules::list(&client, &Default::default(), all).await.unwrap();
    assert_eq!(listed.total as usize, scale.schedules);
    for pipeline in pipelines::list(&client, &Default::default(), pipelines::DEFAULT_SORT, all)
        .await
        .unwrap()
        .items
    {
        triggers::list_for_pipeline(&client, pipeline.id, all).await.unwrap();
    }
}

#[tokio::test]
async fn appending_a_second_seed_makes_names_unique() {
    let db = TestDatabase::new().await;
    assert!(rat_testkit::seed::is_empty(db.url()).await.unwrap());
    seed(db.url(), &Scale::small(), false).await.unwrap();
    assert!(!rat_testkit::seed::is_empty(db.url()).await.unwrap());
    // Appending makes names unique instead of colliding.
    seed(db.url(), &Scale::small(), true).await.unwrap();
    let client = db.client().await;
    let n: i64 = client
        .query_one("SELECT count(*) FROM pipelines", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n as usize, 2 * Scale::small().pipelines);
}
