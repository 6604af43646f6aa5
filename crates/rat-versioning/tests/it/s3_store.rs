//! The S3 backend against moto: the shared conformance suite on a fresh
//! bucket per test, plus what only S3 can get wrong (bucket setup and
//! versioning checks, a dead or silent server, presigned URLs).

use std::collections::HashMap;
use std::net::TcpListener;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rat_testkit::s3::{MotoServer, unique_bucket_name};
use rat_versioning::s3::{S3Config, S3Store};
use rat_versioning::{KeyPrefix, ObjectKey, StoreError, VersionedStore};
use s3::creds::Credentials;
use s3::{Bucket, BucketConfiguration, Region};

async fn fresh_store() -> crate::conformance::Fixture {
    (Arc::new(rat_testkit::s3::test_store().await), Box::new(()))
}

crate::conformance_suite!(fresh_store);

/// The same suite with `list_latest`'s one-request fast path disabled (a
/// ListObjectVersions page of one entry is always truncated), so the
/// ListObjectsV2 + HEAD path for long histories is held to the same contract.
mod head_path {
    use super::*;

    async fn fresh_store() -> crate::conformance::Fixture {
        (
            Arc::new(rat_testkit::s3::test_store().await.with_versions_page(1)),
            Box::new(()),
        )
    }

    crate::conformance_suite!(fresh_store);
}

fn key(text: &str) -> ObjectKey {
    ObjectKey::parse(text).unwrap()
}

async fn shared_moto() -> &'static MotoServer {
    tokio::task::spawn_blocking(MotoServer::shared).await.unwrap()
}

/// A raw rust-s3 client on `config`'s bucket, bypassing the store.
fn raw_bucket(config: &S3Config) -> Bucket {
    let region = Region::Custom {
        region: config.region.clone(),
        endpoint: config.endpoint.clone(),
    };
    let credentials = Credentials::new(Some("test"), Some("test"), None, None, None).unwrap();
    *Bucket::new(&config.bucket, region, credentials)
        .unwrap()
        .with_path_style()
}

/// Creates `config`'s bucket without turning versioning on.
async fn create_unversioned_bucket(config: &S3Config) -> Bucket {
    let region = Region::Custom {
        region: config.region.clone(),
        endpoint: config.endpoint.clone(),
    };
    let credentials = Credentials::new(Some("test"), Some("test"), None, None, None).unwrap();
    Bucket::create_with_path_style(&config.bucket, region, credentials, BucketConfiguration::default())
        .await
        .unwrap();
    raw_bucket(config)
}

async fn versioning_status(bucket: &Bucket) -> String {
    let query = HashMap::from([("versioning".to_owned(), String::new())]);
    let response = bucket.with_extra_query(query).unwrap().get_object("/").await.unwrap();
    String::from_utf8(response.to_vec()).unwrap()
}

fn assert_config_error<T: std::fmt::Debug>(result: Result<T, StoreError>, needles: &[&str]) {
    match result {
        Err(error @ StoreError::Config { .. }) => {
            let message = error.to_string();
            for needle in needles {
                assert!(message.contains(needle), "{needle:?} missing from: {message}");
            }
        }
        other => panic!("expected a Config error, got {other:?}"),
    }
}

#[tokio::test]
async fn a_lifecycle_rule_expiring_noncurrent_versions_is_refused() {
    use s3::serde_types::{BucketLifecycleConfiguration, LifecycleFilter, LifecycleRule, NoncurrentVersionExpiration};
    let moto = shared_moto().await;
    let config = moto.new_bucket_config();
    S3Store::connect(config.clone()).await.unwrap();
    let bucket = raw_bucket(&config);
    let everything = LifecycleFilter {
        prefix: Some(String::new()),
        ..Default::default()
    };
    let rule = LifecycleRule::builder("Enabled")
        .id("expire-old-versions")
        .filter(everything)
        .noncurrent_version_expiration(NoncurrentVersionExpiration::new(None, Some(7)))
        .build();
    bucket
        .put_bucket_lifecycle(BucketLifecycleConfiguration::new(vec![rule]))
        .await
        .unwrap();
    let err = S3Store::connect(config).await.unwrap_err();
    assert!(matches!(err, StoreError::Config { .. }), "{err:?}");
    let message = err.to_string();
    assert!(
        message.contains("expire-old-versions") && message.contains("NoncurrentVersionExpiration"),
        "{message}"
    );
}

#[tokio::test]
async fn connect_creates_a_missing_bucket_with_versioning_enabled() {
    let moto = shared_moto().await;
    let config = moto.new_bucket_config();
    let store = S3Store::connect(config.clone()).await.unwrap();
    assert_eq!(store.bucket_name(), config.bucket);
    assert!(
        versioning_status(&raw_bucket(&config))
            .await
            .contains("<Status>Enabled</Status>")
    );
    // Connecting again to the now existing, versioned bucket works.
    let again = S3Store::connect(config).await.unwrap();
    again.check().await.unwrap();
}

#[tokio::test]
async fn connect_creates_buckets_in_us_east_1_too() {
    // rust-s3's create helpers send a LocationConstraint for us-east-1, which
    // S3 refuses; the store must not.
    let moto = shared_moto().await;
    let config = S3Config {
        region: "us-east-1".to_owned(),
        ..moto.new_bucket_config()
    };
    let store = S3Store::connect(config).await.unwrap();
    let version = store.put(&key("f"), b"1".to_vec(), "text/plain").await.unwrap();
    assert_eq!(store.get(&key("f"), Some(&version)).await.unwrap().body, b"1");
}

#[tokio::test]
async fn connect_refuses_an_existing_bucket_without_versioning() {
    let moto = shared_moto().await;
    let config = S3Config {
        create_bucket: false,
        ..moto.new_bucket_config()
    };
    let bucket = create_unversioned_bucket(&config).await;
    assert_config_error(
        S3Store::connect(config.clone()).await,
        &[
            &config.bucket,
            "versioning",
            "never enabled",
            "put-bucket-versioning",
            "Status=Enabled",
        ],
    );
    // Even when allowed to create buckets, a bucket holding unversioned
    // objects is not silently changed.
    bucket.put_object("old-file", b"unversioned").await.unwrap();
    assert_config_error(
        S3Store::connect(S3Config {
            create_bucket: true,
            ..config.clone()
        })
        .await,
        &["versioning"],
    );
    assert!(!versioning_status(&bucket).await.contains("Enabled"));
}

#[tokio::test]
async fn connect_refuses_a_suspended_bucket() {
    let moto = shared_moto().await;
    let config = moto.new_bucket_config();
    S3Store::connect(config.clone()).await.unwrap();
    let bucket = raw_bucket(&config);
    let query = HashMap::from([("versioning".to_owned(), String::new())]);
    let suspend = r#"<VersioningConfiguration xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Status>Suspended</Status></VersioningConfiguration>"#;
    bucket
        .with_extra_query(query)
        .unwrap()
        .put_object_with_content_type("/", suspend.as_bytes(), "application/xml")
        .await
        .unwrap();
    assert_config_error(S3Store::connect(config).await, &["Suspended", "put-bucket-versioning"]);
}

#[tokio::test]
async fn connect_enables_versioning_on_an_empty_bucket_it_may_create() {
    // What a crash between creating the bucket and enabling versioning leaves.
    let moto = shared_moto().await;
    let config = moto.new_bucket_config();
    let bucket = create_unversioned_bucket(&config).await;
    S3Store::connect(config).await.unwrap();
    assert!(versioning_status(&bucket).await.contains("<Status>Enabled</Status>"));
}

#[tokio::test]
async fn connect_refuses_a_missing_bucket_it_may_not_create() {
    let moto = shared_moto().await;
    let config = S3Config {
        create_bucket: false,
        ..moto.new_bucket_config()
    };
    assert_config_error(
        S3Store::connect(config.clone()).await,
        &[&config.bucket, "does not exist"],
    );
}

#[tokio::test]
async fn a_stopped_server_makes_every_call_unavailable_quickly() {
    let moto = tokio::task::spawn_blocking(MotoServer::start).await.unwrap();
    let config = S3Config {
        request_timeout: Duration::from_secs(2),
        ..moto.new_bucket_config()
    };
    let store = S3Store::connect(config).await.unwrap();
    let version = store.put(&key("d/f"), b"1".to_vec(), "text/plain").await.unwrap();
    tokio::task::spawn_blocking(move || moto.kill()).await.unwrap();
    // The per-call bound is 2 × request timeout + 2 s; a refused connection
    // should fail far sooner (at most one retry after 1 s).
    let bound = Duration::from_secs(6);
    let prefix = KeyPrefix::parse("d/").unwrap();
    let k = key("d/f");
    let results: Vec<(&str, Timed)> = vec![
        ("put", timed(store.put(&k, b"2".to_vec(), "text/plain")).await),
        ("get", timed(store.get(&k, Some(&version))).await),
        ("head", timed(store.head(&k)).await),
        ("list_latest", timed(store.list_latest(&prefix, None, 10)).await),
        ("list_versions", timed(store.list_versions(&prefix, None, 10)).await),
        ("delete", timed(store.delete(&k)).await),
        ("delete_version", timed(store.delete_version(&k, &version)).await),
        ("check", timed(store.check()).await),
    ];
    for (operation, (result, elapsed)) in results {
        match result {
            Err(StoreError::Unavailable { .. }) => {}
            other => panic!("{operation} on a stopped server: expected Unavailable, got {other:?}"),
        }
        assert!(elapsed < bound, "{operation} on a stopped server took {elapsed:?}");
    }
}

/// A store call's outcome (without its value) and how long it took.
type Timed = (Result<(), StoreError>, Duration);

/// Runs one store call, timing it.
async fn timed<T>(call: impl std::future::Future<Output = Result<T, StoreError>>) -> Timed {
    let started = Instant::now();
    let result = call.await.map(drop);
    (result, started.elapsed())
}

#[tokio::test]
async fn a_server_that_never_answers_times_out_as_unavailable() {
    // Accepts connections and never says a word.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in listener.incoming() {
            held.push(stream);
        }
    });
    let config = S3Config {
        endpoint: format!("http://127.0.0.1:{port}"),
        region: "eu-west-1".to_owned(),
        bucket: unique_bucket_name(),
        access_key: "test".to_owned(),
        secret_key: "test".to_owned(),
        path_style: true,
        create_bucket: true,
        request_timeout: Duration::from_millis(500),
    };
    let started = Instant::now();
    let result = S3Store::connect(config).await;
    let elapsed = started.elapsed();
    assert!(
        matches!(result, Err(StoreError::Unavailable { .. })),
        "expected Unavailable, got {result:?}"
    );
    // 500 ms, one retry after 1 s, 500 ms; the outer bound is 3 s.
    assert!(elapsed >= Duration::from_millis(450), "gave up after {elapsed:?}");
    assert!(elapsed <= Duration::from_millis(3500), "took {elapsed:?}");
}

#[tokio::test]
async fn presigned_urls_fetch_exactly_their_version() {
    let moto = shared_moto().await;
    let store = S3Store::connect(moto.new_bucket_config()).await.unwrap();
    let k = key("ps/report.csv");
    let v1 = store.put(&k, b"version one".to_vec(), "text/csv").await.unwrap();
    let v2 = store.put(&k, b"version two".to_vec(), "text/csv").await.unwrap();
    store.delete(&k).await.unwrap();
    let client = reqwest::Client::new();
    for (version, body) in [(&v1, &b"version one"[..]), (&v2, b"version two")] {
        let url = store
            .presign_get(&k, version, Duration::from_secs(300))
            .await
            .unwrap()
            .expect("S3 presigns");
        assert!(url.contains("versionId="), "{url}");
        assert!(url.contains("X-Amz-Signature="), "{url}");
        let response = client.get(&url).send().await.unwrap();
        assert_eq!(response.status(), 200, "{url}");
        assert_eq!(
            response.headers().get("x-amz-version-id").and_then(|v| v.to_str().ok()),
            Some(version.as_str())
        );
        assert_eq!(response.bytes().await.unwrap().as_ref(), body);
    }
}

#[tokio::test]
async fn list_latest_of_a_hundred_files() {
    let moto = shared_moto().await;
    let store = S3Store::connect(moto.new_bucket_config()).await.unwrap();
    let mut expected = Vec::new();
    for i in 0..100 {
        let k = key(&format!("many/f{i:03}.sql"));
        let version = store
            .put(&k, format!("select {i}").into_bytes(), "text/plain")
            .await
            .unwrap();
        expected.push((k, version));
    }
    let prefix = KeyPrefix::parse("many/").unwrap();
    let started = Instant::now();
    let page = store.list_latest(&prefix, None, 1000).await.unwrap();
    let elapsed = started.elapsed();
    println!("list_latest of 100 files on moto: {elapsed:?}");
    assert_eq!(page.next, None);
    let listed: Vec<_> = page.items.into_iter().map(|head| (head.key, head.version_id)).collect();
    assert_eq!(listed, expected);
}

#[tokio::test]
async fn foreign_objects_with_unusable_keys_are_skipped() {
    let moto = shared_moto().await;
    let config = moto.new_bucket_config();
    let store = S3Store::connect(config.clone()).await.unwrap();
    let version = store.put(&key("fo/ok"), b"1".to_vec(), "text/plain").await.unwrap();
    raw_bucket(&config).put_object("fo/not ok", b"2").await.unwrap();
    let prefix = KeyPrefix::parse("fo/").unwrap();
    let page = store.list_latest(&prefix, None, 10).await.unwrap();
    let listed: Vec<_> = page.items.into_iter().map(|head| (head.key, head.version_id)).collect();
    assert_eq!(listed, vec![(key("fo/ok"), version)]);
    let versions = store.list_versions(&prefix, None, 10).await.unwrap();
    assert_eq!(versions.items.len(), 1);
}
