//! The versioned file store pipeline code lives in: every write makes a new
//! version, older versions stay readable by id, and a delete leaves a delete
//! marker. A publish pins the exact version id of every file.
//!
//! One narrow interface, [`VersionedStore`], speaking our domain (keys,
//! version ids) rather than S3, with two backends:
//! - [`s3::S3Store`]: any S3 with object versioning, through rust-s3;
//! - [`fs::FsStore`]: a durable store on the local filesystem, for the dev
//!   platform and single-machine use.
//!
//! One conformance suite (`tests/`) runs unchanged against both.
//!
//! Architecture invariant: depends on `rat-domain` only among our crates, and
//! only for the store's vocabulary ([`ObjectKey`], [`KeyPrefix`],
//! [`VersionId`]): it knows files and versions, not pipelines.
//!
//! What it must never do: know about pipelines, runs or the database, or let
//! an unvalidated key reach a backend.
//!
//! ```
//! use rat_versioning::{ObjectKey, VersionedStore, fs::FsStore};
//!
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! let dir = tempfile::tempdir().unwrap();
//! let store = FsStore::open(dir.path().to_path_buf()).await.unwrap();
//! let key = ObjectKey::parse("sales/pipelines/silver/orders/pipeline.sql").unwrap();
//! let first = store.put(&key, b"SELECT 1".to_vec(), "text/plain").await.unwrap();
//! store.put(&key, b"SELECT 2".to_vec(), "text/plain").await.unwrap();
//! // HEAD moved on; the first version stays readable by its id.
//! assert_eq!(store.get(&key, None).await.unwrap().body, b"SELECT 2");
//! assert_eq!(store.get(&key, Some(&first)).await.unwrap().body, b"SELECT 1");
//! # });
//! ```

pub mod fs;
pub mod s3;

use std::pin::Pin;
use std::time::Duration;

use bytes::Bytes;
use futures_util::Stream;
pub use rat_domain::object::{KeyPrefix, MAX_KEY_LEN, ObjectError, ObjectKey, VersionId};
use time::OffsetDateTime;

/// The most entries one listing page returns, in every backend (S3's own
/// ceiling for `max-keys`); larger limits are lowered to it, and a limit of
/// 0 is raised to 1.
pub const MAX_PAGE_SIZE: usize = 1000;

/// The page size actually used for a requested `limit`.
pub(crate) fn page_size(limit: usize) -> usize {
    limit.clamp(1, MAX_PAGE_SIZE)
}

/// The error for a page token this store did not hand out.
pub(crate) fn invalid_token(token: &str) -> StoreError {
    StoreError::Invalid(ObjectError::InvalidKey {
        key: token.to_owned(),
        reason: "not a page token of this listing".to_owned(),
    })
}

/// The current (HEAD) version of a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectHead {
    /// The file.
    pub key: ObjectKey,
    /// Its current version.
    pub version_id: VersionId,
    /// Size in bytes.
    pub size: u64,
    /// When this version was written.
    pub last_modified: OffsetDateTime,
}

/// One version (or delete marker) of a file, as listed by [`VersionedStore::list_versions`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectVersion {
    /// The file.
    pub key: ObjectKey,
    /// The version's id.
    pub version_id: VersionId,
    /// True for the current entry of the key (a version or a delete marker).
    pub is_latest: bool,
    /// True for a delete marker (no content).
    pub is_delete_marker: bool,
    /// Size in bytes (0 for a delete marker).
    pub size: u64,
    /// When the version or marker was written.
    pub last_modified: OffsetDateTime,
}

/// A file's content at one version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Object {
    /// The version read.
    pub version_id: VersionId,
    /// The bytes.
    pub body: Vec<u8>,
    /// When this version was written.
    pub last_modified: OffsetDateTime,
}

/// The content of a write arriving in pieces ([`VersionedStore::put_stream`]):
/// an upload's body as it is received. An `Err` item ends the write with
/// [`StoreError::BodyFailed`] and nothing written.
pub type ByteSource<'a> = &'a mut (dyn Stream<Item = std::io::Result<Bytes>> + Send + Unpin);

/// A file's content read in pieces ([`VersionedStore::open`]).
pub type ByteStream = Pin<Box<dyn Stream<Item = Result<Bytes, StoreError>> + Send>>;

/// A version written from a stream: its id and how many bytes it holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Written {
    /// The version just written.
    pub version_id: VersionId,
    /// Its size in bytes.
    pub size: u64,
}

/// A file opened for reading in pieces.
pub struct Download {
    /// The version being read.
    pub version_id: VersionId,
    /// Its size in bytes.
    pub size: u64,
    /// When this version was written.
    pub last_modified: OffsetDateTime,
    /// The content; an `Err` item means the read broke off (the store
    /// failed, or the bytes do not match what was stored).
    pub body: ByteStream,
}

impl std::fmt::Debug for Download {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Download")
            .field("version_id", &self.version_id)
            .field("size", &self.size)
            .field("last_modified", &self.last_modified)
            .finish_non_exhaustive()
    }
}

/// One page of a listing; `next` continues it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListPage<T> {
    /// Entries in key order (versions of one key newest first).
    pub items: Vec<T>,
    /// Opaque token for the next page; `None` on the last page.
    pub next: Option<String>,
}

/// Why a store call failed. `Display` is safe to show to clients.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A key or version id breaks the rules ([`ObjectError`]); nothing was
    /// sent to the store.
    #[error(transparent)]
    Invalid(#[from] ObjectError),
    /// No such file (or no such version of it).
    #[error("{key} not found")]
    NotFound {
        /// The file.
        key: String,
        /// The version asked for, if any.
        version: Option<String>,
    },
    /// The content of a streamed write could not be read (the client went
    /// away, sent too much, or too slowly): nothing was written.
    #[error("the content of {key} could not be read; nothing was written")]
    BodyFailed {
        /// The file.
        key: String,
        /// Why the content stopped.
        #[source]
        source: std::io::Error,
    },
    /// The bucket answered without a version id: versioning is off, so
    /// nothing can be pinned.
    #[error("object {key} has no version id: the bucket does not have versioning enabled")]
    NotVersioned {
        /// The file.
        key: String,
    },
    /// The store cannot be reached, timed out, or failed on its side (5xx).
    #[error("file store unavailable during {operation} of {key}")]
    Unavailable {
        /// What was attempted (`put`, `get`, `head`, `list`, ...).
        operation: &'static str,
        /// The key or prefix.
        key: String,
        /// The underlying error (for logs).
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The store's configuration is unusable (bad endpoint, credentials,
    /// bucket without versioning at startup, unwritable directory).
    #[error("file store misconfigured: {reason}")]
    Config {
        /// What is wrong.
        reason: String,
    },
    /// Anything else the store answered that we do not expect.
    #[error("file store error during {operation} of {key}")]
    Internal {
        /// What was attempted.
        operation: &'static str,
        /// The key or prefix.
        key: String,
        /// The underlying error (for logs).
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

/// The versioned file store. Implementations are cheap to share (`Arc<dyn VersionedStore>`).
#[async_trait::async_trait]
pub trait VersionedStore: Send + Sync + std::fmt::Debug {
    /// Writes a new version of `key`; returns its version id.
    async fn put(&self, key: &ObjectKey, body: Vec<u8>, content_type: &str) -> Result<VersionId, StoreError>;

    /// Writes a new version of `key` from `body` as it arrives, holding only
    /// a bounded part of it in memory (S3: multipart upload in parts of a
    /// few MiB; filesystem: a temporary file). When `body` fails, nothing is
    /// written and the error is [`StoreError::BodyFailed`].
    async fn put_stream(
        &self,
        key: &ObjectKey,
        body: ByteSource<'_>,
        content_type: &str,
    ) -> Result<Written, StoreError>;

    /// Reads `key` at `version`, or at HEAD when `None`. `NotFound` when the
    /// key (or that version) does not exist, or HEAD is a delete marker.
    async fn get(&self, key: &ObjectKey, version: Option<&VersionId>) -> Result<Object, StoreError>;

    /// Opens `key` at `version` (or HEAD) to read it in pieces, for files
    /// too large to hold in memory. Errors as [`VersionedStore::get`].
    async fn open(&self, key: &ObjectKey, version: Option<&VersionId>) -> Result<Download, StoreError>;

    /// The HEAD version of one file; `None` when it does not exist or its
    /// latest entry is a delete marker.
    async fn head(&self, key: &ObjectKey) -> Result<Option<ObjectHead>, StoreError>;

    /// Files under `prefix` with their HEAD version ids, in key order, at most
    /// `limit` per page (deleted files are not listed). Continue with `next`.
    async fn list_latest(
        &self,
        prefix: &KeyPrefix,
        page_token: Option<&str>,
        limit: usize,
    ) -> Result<ListPage<ObjectHead>, StoreError>;

    /// Every version and delete marker under `prefix`, by key, newest first
    /// within a key, at most `limit` per page. Continue with `next`.
    async fn list_versions(
        &self,
        prefix: &KeyPrefix,
        page_token: Option<&str>,
        limit: usize,
    ) -> Result<ListPage<ObjectVersion>, StoreError>;

    /// Deletes `key` by writing a delete marker (older versions stay
    /// readable); returns the marker's id. Deleting a missing key is not an error.
    async fn delete(&self, key: &ObjectKey) -> Result<Option<VersionId>, StoreError>;

    /// Removes one version (or delete marker) for good. Used to purge all
    /// versions of deleted pipelines; never by publish or rollback.
    async fn delete_version(&self, key: &ObjectKey, version: &VersionId) -> Result<(), StoreError>;

    /// A URL from which `key` at `version` can be fetched without
    /// credentials for `ttl`; `None` when the backend cannot presign (the
    /// filesystem store: the api serves those files itself).
    async fn presign_get(
        &self,
        key: &ObjectKey,
        version: &VersionId,
        ttl: Duration,
    ) -> Result<Option<String>, StoreError>;

    /// A cheap round trip proving the store answers (readiness checks).
    async fn check(&self) -> Result<(), StoreError>;
}

/// The most files [`list_all_latest`] collects before refusing: a pipeline
/// directory is small, and an unbounded listing is a bug.
pub const MAX_LISTED_FILES: usize = 100_000;

/// Every file under `prefix` with its HEAD version, following pages, at most
/// [`MAX_LISTED_FILES`].
pub async fn list_all_latest(store: &dyn VersionedStore, prefix: &KeyPrefix) -> Result<Vec<ObjectHead>, StoreError> {
    collect_pages(prefix, MAX_LISTED_FILES, "files", |token| async move {
        store.list_latest(prefix, token.as_deref(), MAX_PAGE_SIZE).await
    })
    .await
}

/// Every version and delete marker under `prefix`, following pages, at most
/// ten times [`MAX_LISTED_FILES`].
pub async fn list_all_versions(
    store: &dyn VersionedStore,
    prefix: &KeyPrefix,
) -> Result<Vec<ObjectVersion>, StoreError> {
    collect_pages(prefix, MAX_LISTED_FILES * 10, "versions", |token| async move {
        store.list_versions(prefix, token.as_deref(), MAX_PAGE_SIZE).await
    })
    .await
}

/// "List every page": calls `page` with each page token in turn until the
/// listing ends, refusing past `limit` entries (an unbounded listing is a bug).
async fn collect_pages<T, F, Fut>(
    prefix: &KeyPrefix,
    limit: usize,
    what: &str,
    mut page: F,
) -> Result<Vec<T>, StoreError>
where
    F: FnMut(Option<String>) -> Fut,
    Fut: std::future::Future<Output = Result<ListPage<T>, StoreError>>,
{
    let mut all = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let listed = page(token.take()).await?;
        all.extend(listed.items);
        if all.len() > limit {
            return Err(StoreError::Internal {
                operation: "list",
                key: prefix.to_string(),
                source: format!("more than {limit} {what} under the prefix").into(),
            });
        }
        match listed.next {
            Some(next) => token = Some(next),
            None => return Ok(all),
        }
    }
}
