//! Files are never held whole in memory: uploads stream to the store as
//! they arrive, only so many are received at once, and a file too large or
//! not text for the editor is refused as JSON and downloaded as bytes.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::common::{Answer, TestApp};
use bytes::Bytes;
use futures_util::StreamExt;
use rat_versioning::{
    ByteSource, Download, KeyPrefix, ListPage, Object, ObjectHead, ObjectKey, ObjectVersion, StoreError, VersionId,
    VersionedStore, Written,
};
use serde_json::json;
use tokio::sync::mpsc;

const ORDERS: &str = "default/pipelines/silver/orders";

/// A store counting the bytes streamed into it so far.
#[derive(Debug)]
struct Observed {
    inner: Arc<dyn VersionedStore>,
    received: Arc<AtomicU64>,
}

#[async_trait::async_trait]
impl VersionedStore for Observed {
    async fn put(&self, key: &ObjectKey, body: Vec<u8>, content_type: &str) -> Result<VersionId, StoreError> {
        self.received.fetch_add(body.len() as u64, Ordering::SeqCst);
        self.inner.put(key, body, content_type).await
    }

    async fn put_stream(
        &self,
        key: &ObjectKey,
        body: ByteSource<'_>,
        content_type: &str,
    ) -> Result<Written, StoreError> {
        let received = self.received.clone();
        let mut counted = body.inspect(move |piece| {
            if let Ok(piece) = piece {
                received.fetch_add(piece.len() as u64, Ordering::SeqCst);
            }
        });
        self.inner.put_stream(key, &mut counted, content_type).await
    }

    async fn get(&self, key: &ObjectKey, version: Option<&VersionId>) -> Result<Object, StoreError> {
        self.inner.get(key, version).await
    }

    async fn open(&self, key: &ObjectKey, version: Option<&VersionId>) -> Result<Download, StoreError> {
        self.inner.open(key, version).await
    }

    async fn head(&self, key: &ObjectKey) -> Result<Option<ObjectHead>, StoreError> {
        self.inner.head(key).await
    }

    async fn list_latest(
        &self,
        prefix: &KeyPrefix,
        token: Option<&str>,
        limit: usize,
    ) -> Result<ListPage<ObjectHead>, StoreError> {
        self.inner.list_latest(prefix, token, limit).await
    }

    async fn list_versions(
        &self,
        prefix: &KeyPrefix,
        token: Option<&str>,
        limit: usize,
    ) -> Result<ListPage<ObjectVersion>, StoreError> {
        self.inner.list_versions(prefix, token, limit).await
    }

    async fn delete(&self, key: &ObjectKey) -> Result<Option<VersionId>, StoreError> {
        self.inner.delete(key).await
    }

    async fn delete_version(&self, key: &ObjectKey, version: &VersionId) -> Result<(), StoreError> {
        self.inner.delete_version(key, version).await
    }

    async fn presign_get(
        &self,
        key: &ObjectKey,
        version: &VersionId,
        ttl: Duration,
    ) -> Result<Option<String>, StoreError> {
        self.inner.presign_get(key, version, ttl).await
    }

    async fn check(&self) -> Result<(), StoreError> {
        self.inner.check().await
    }
}

/// An upload of `path` whose file content is sent through the returned
/// channel, piece by piece, while the request is in flight.
fn streamed_upload(
    app: &TestApp,
    url: &str,
    path: Option<&str>,
) -> (mpsc::Sender<Bytes>, tokio::task::JoinHandle<Answer>) {
    let (sender, mut receiver) = mpsc::channel::<Bytes>(1);
    let content = futures_util::stream::poll_fn(move |cx| receiver.poll_recv(cx)).map(Ok::<_, std::io::Error>);
    let part = reqwest::multipart::Part::stream(reqwest::Body::wrap_stream(content)).file_name("big.csv");
    let mut form = reqwest::multipart::Form::new();
    if let Some(path) = path {
        form = form.text("path", path.to_owned());
    }
    let request = app
        .http
        .post(format!("{}{url}", app.base))
        .multipart(form.part("file", part));
    let sent = tokio::spawn(async move { TestApp::answer(request.send().await.expect("sent")).await });
    (sender, sent)
}

async fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while !done() {
        assert!(tokio::time::Instant::now() < deadline, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn observed_app(configure: impl FnOnce(&mut rat_api::state::ApiSettings) + 'static) -> (TestApp, Arc<AtomicU64>) {
    let received = Arc::new(AtomicU64::new(0));
    let counter = received.clone();
    let app = TestApp::builder()
        .wrap_store(move |inner| {
            Arc::new(Observed {
                inner,
                received: counter,
            })
        })
        .settings(configure)
        .start()
        .await;
    app.pipeline("default", "silver", "orders").await;
    let zone = app
        .post("/api/v1/landing-zones", json!({"namespace": "default", "name": "z"}))
        .await;
    assert_eq!(zone.status, 201, "{}", zone.text);
    (app, received)
}

#[tokio::test]
async fn uploads_reach_the_store_while_they_arrive() {
    let (app, received) = observed_app(|_| {}).await;
    let piece = Bytes::from(vec![b'x'; 1024 * 1024]);
    for (url, path) in [
        ("/api/v1/files/upload", Some(format!("{ORDERS}/big.csv"))),
        ("/api/v1/landing-zones/default/z/files", None),
        ("/api/v1/landing-zones/default/z/samples", None),
    ] {
        let before = received.load(Ordering::SeqCst);
        let (sender, answer) = streamed_upload(&app, url, path.as_deref());
        sender.send(piece.clone()).await.unwrap();
        // The first MiB is in the store's hands before the rest was even sent.
        wait_until("the first piece reached the store", || {
            received.load(Ordering::SeqCst) >= before + piece.len() as u64
        })
        .await;
        for _ in 0..2 {
            sender.send(piece.clone()).await.unwrap();
        }
        drop(sender);
        let answer = answer.await.unwrap();
        assert_eq!(answer.status, 201, "{url}: {}", answer.text);
        assert_eq!(received.load(Ordering::SeqCst), before + 3 * piece.len() as u64);
    }
}

#[tokio::test]
async fn uploads_beyond_the_concurrency_limit_wait_then_answer_503() {
    let (app, _) = observed_app(|s| {
        s.max_concurrent_uploads = 1;
        s.upload_slot_wait = Duration::from_millis(500);
    })
    .await;
    let path = format!("{ORDERS}/a.csv");
    let (sender, first) = streamed_upload(&app, "/api/v1/files/upload", Some(&path));
    sender.send(Bytes::from_static(b"id\n")).await.unwrap();
    // The first upload holds the only slot while its body is still arriving.
    for url in ["/api/v1/landing-zones/default/z/files", "/api/v1/files/upload"] {
        let (more, second) = streamed_upload(&app, url, Some(&path));
        drop(more);
        let second = second.await.unwrap();
        second.assert_error(503, "UNAVAILABLE");
        assert!(second.headers.contains_key("retry-after"));
    }
    sender.send(Bytes::from_static(b"1\n")).await.unwrap();
    drop(sender);
    assert_eq!(first.await.unwrap().status, 201);
    // The slot is free again.
    let (sender, third) = streamed_upload(&app, "/api/v1/files/upload", Some(&path));
    drop(sender);
    assert_eq!(third.await.unwrap().status, 201);
}

#[tokio::test]
async fn files_too_large_or_not_text_for_the_editor_are_refused_and_downloadable() {
    let app = TestApp::builder().settings(|s| s.max_editor_bytes = 1024).start().await;
    app.pipeline("default", "silver", "orders").await;
    let large = format!("{ORDERS}/large.csv");
    let zeros = format!("{ORDERS}/zeros.bin");
    for (key, content) in [(&large, vec![b'a'; 4096]), (&zeros, vec![0_u8; 512])] {
        assert_eq!(app.upload_file(key, &content).await.status, 201);
        let message = app
            .get(&format!("/api/v1/files/{key}"))
            .await
            .assert_error(422, "INVALID_ARGUMENT");
        assert!(message.contains("download=true"), "{message}");

        let download = app
            .http
            .get(format!("{}/api/v1/files/{key}?download=true", app.base))
            .send()
            .await
            .unwrap();
        assert_eq!(download.status(), 200);
        assert_eq!(download.headers()["content-type"], "application/octet-stream");
        assert_eq!(download.headers()["content-length"], content.len().to_string().as_str());
        assert!(download.headers().contains_key("x-version-id"));
        let disposition = download.headers()["content-disposition"].to_str().unwrap().to_owned();
        assert!(disposition.starts_with("attachment; filename="), "{disposition}");
        assert_eq!(download.bytes().await.unwrap().as_ref(), content.as_slice());
    }
    // Text within the limit is still shown, and bad flags are refused.
    let small = format!("{ORDERS}/pipeline.sql");
    assert_eq!(app.get(&format!("/api/v1/files/{small}")).await.status, 200);
    app.get(&format!("/api/v1/files/{small}?download=maybe"))
        .await
        .assert_error(400, "INVALID_ARGUMENT");
    app.get(&format!("/api/v1/files/{ORDERS}/none.csv?download=true"))
        .await
        .assert_error(404, "NOT_FOUND");
}
