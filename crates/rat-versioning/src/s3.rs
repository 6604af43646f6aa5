//! The S3 backend: any S3-compatible service with object versioning
//! (AWS, MinIO, moto, ...), through rust-s3 0.38.
//!
//! rust-s3 has no versioning API. Every versioning call is an ordinary
//! rust-s3 request with extra query parameters (`Bucket::with_extra_query`
//! adds them before signing): `?versioning` to read or enable versioning,
//! `?versions` for ListObjectVersions, `?versionId=` to read, delete or
//! presign one version. Version ids come from the `x-amz-version-id` header.
//!
//! Time limits: every request carries `request_timeout` (enforced by reqwest)
//! and every call is also wrapped in an outer tokio timeout of
//! `2 × request_timeout + 2 s`, which covers rust-s3's own retry (by default
//! one retry of safe requests after one second; see `s3::set_retries`) and
//! bounds the call whatever that retry setting is.
//!
//! The library never reads environment variables; everything comes from
//! [`S3Config`]. Buckets are created without rust-s3's `create` helpers,
//! which send a `LocationConstraint` even for `us-east-1` (refused by AWS and
//! moto) unless a process-wide variable is set: we send the constraint for
//! every region except `us-east-1`.

use std::collections::HashMap;
use std::future::Future;
use std::time::Duration;

use bytes::Bytes;
use futures_util::stream::{self, StreamExt, TryStreamExt};
use s3::creds::Credentials;
use s3::error::S3Error;
use s3::{Bucket, Region};
use serde::Deserialize;
use time::OffsetDateTime;

use crate::{
    ByteSource, Download, KeyPrefix, ListPage, Object, ObjectHead, ObjectKey, ObjectVersion, StoreError, VersionId,
    VersionedStore, Written, invalid_token, page_size,
};

/// The most entries one listing page returns ([`crate::MAX_PAGE_SIZE`]).
pub use crate::MAX_PAGE_SIZE;

/// How many HEAD requests [`VersionedStore::list_latest`] runs at once.
pub const LIST_HEAD_CONCURRENCY: usize = 16;

/// The longest presigned URL lifetime S3 accepts (7 days).
pub const MAX_PRESIGN_TTL: Duration = Duration::from_secs(604_800);

/// The body of PutBucketVersioning that turns versioning on.
const ENABLE_VERSIONING_XML: &str = r#"<VersioningConfiguration xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Status>Enabled</Status></VersioningConfiguration>"#;

/// Separates the key marker from the version-id marker in a
/// `list_versions` page token (keys never contain `|`).
const TOKEN_SEPARATOR: char = '|';

/// Where and how to reach the bucket. Built by the binary from its own
/// configuration; this crate reads no environment variables.
#[derive(Clone)]
pub struct S3Config {
    /// Base URL of the S3 service, e.g. `https://s3.eu-west-1.amazonaws.com`
    /// or `http://127.0.0.1:9000`.
    pub endpoint: String,
    /// The region requests are signed for, e.g. `eu-west-1`.
    pub region: String,
    /// The bucket holding the files.
    pub bucket: String,
    /// Access key id.
    pub access_key: String,
    /// Secret access key (never printed by `Debug`).
    pub secret_key: String,
    /// Path-style URLs (`endpoint/bucket/key`) instead of virtual-host style
    /// (`bucket.endpoint/key`); needed by most self-hosted services.
    pub path_style: bool,
    /// Create the bucket (with versioning enabled) when it does not exist.
    pub create_bucket: bool,
    /// The time limit of one HTTP request.
    pub request_timeout: Duration,
}

impl std::fmt::Debug for S3Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Config")
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            .field("bucket", &self.bucket)
            .field("access_key", &self.access_key)
            .field("secret_key", &"<redacted>")
            .field("path_style", &self.path_style)
            .field("create_bucket", &self.create_bucket)
            .field("request_timeout", &self.request_timeout)
            .finish()
    }
}

/// The S3 backend. Cheap to clone (the HTTP client is shared).
#[derive(Clone)]
pub struct S3Store {
    bucket: Bucket,
    endpoint: String,
    call_timeout: Duration,
    /// Entries asked of one ListObjectVersions request by [`list_latest`]'s
    /// fast path (see there).
    versions_page: usize,
    /// Size of the parts of a streamed write ([`VersionedStore::put_stream`]):
    /// content up to this size is one PutObject, larger content a multipart
    /// upload of parts this size, so one write holds about one part in memory.
    part_size: usize,
}

/// The default part size of streamed writes: 8 MiB.
pub const DEFAULT_PART_SIZE: usize = 8 * 1024 * 1024;
/// The smallest part S3 accepts (every part of a multipart upload but the last).
pub const MIN_PART_SIZE: usize = 5 * 1024 * 1024;

impl std::fmt::Debug for S3Store {
    // Bucket's own Debug would print the credentials.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Store")
            .field("endpoint", &self.endpoint)
            .field("bucket", &self.bucket.name)
            .field("path_style", &self.bucket.is_path_style())
            .field("call_timeout", &self.call_timeout)
            .field("versions_page", &self.versions_page)
            .field("part_size", &self.part_size)
            .finish()
    }
}

/// What GetBucketVersioning said.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Versioning {
    /// The bucket does not exist.
    NoBucket,
    /// Its status: `Enabled`, `Suspended`, or `None` when never enabled.
    Status(Option<String>),
}

#[derive(Debug, Deserialize)]
struct VersioningConfiguration {
    #[serde(rename = "Status", default)]
    status: Option<String>,
}

/// ListObjectVersions' answer. `Version` and `DeleteMarker` elements may be
/// interleaved, so every child is read as one list of choices.
#[derive(Debug, Deserialize)]
struct ListVersionsResult {
    #[serde(rename = "$value", default)]
    items: Vec<ListVersionsItem>,
}

#[derive(Debug, Deserialize)]
enum ListVersionsItem {
    IsTruncated(String),
    NextKeyMarker(String),
    NextVersionIdMarker(String),
    Version(VersionEntry),
    DeleteMarker(VersionEntry),
    #[serde(other)]
    Other,
}

#[derive(Debug, Deserialize)]
struct VersionEntry {
    #[serde(rename = "Key")]
    key: String,
    #[serde(rename = "VersionId")]
    version_id: String,
    #[serde(rename = "IsLatest", default)]
    is_latest: String,
    #[serde(rename = "LastModified", default)]
    last_modified: String,
    #[serde(rename = "Size", default)]
    size: Option<u64>,
}

fn query(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
}

fn config_error(reason: impl Into<String>) -> StoreError {
    StoreError::Config { reason: reason.into() }
}

/// The error code of an S3 error body (`<Code>NoSuchBucket</Code>`), if any.
fn error_code(body: &str) -> Option<&str> {
    let start = body.find("<Code>")? + "<Code>".len();
    let end = start + body[start..].find("</Code>")?;
    Some(&body[start..end])
}

/// Maps a rust-s3 error of `operation` on `key` (at `version`) to a store error.
fn map_error(operation: &'static str, key: &str, version: Option<&VersionId>, error: S3Error) -> StoreError {
    let not_found = || StoreError::NotFound {
        key: key.to_owned(),
        version: version.map(|v| v.to_string()),
    };
    let unavailable = |error: S3Error| StoreError::Unavailable {
        operation,
        key: key.to_owned(),
        source: Box::new(error),
    };
    match &error {
        S3Error::HttpFailWithBody(_, body) if error_code(body) == Some("NoSuchBucket") => {
            config_error("the bucket does not exist (it was deleted, or the bucket name is wrong)")
        }
        S3Error::HttpFailWithBody(404, _) => not_found(),
        // GET of a delete marker's version id answers 405 Method Not Allowed.
        S3Error::HttpFailWithBody(405, _) if version.is_some() => not_found(),
        // AWS answers 400 InvalidArgument for a version id it could never have issued.
        S3Error::HttpFailWithBody(400, body) if version.is_some() && error_code(body) == Some("InvalidArgument") => {
            not_found()
        }
        S3Error::HttpFailWithBody(status, _) if *status >= 500 || *status == 408 || *status == 429 => {
            unavailable(error)
        }
        S3Error::HttpFailWithBody(403, body) => config_error(format!(
            "access denied during {operation} of {key} (check the credentials and the bucket policy): {}",
            error_code(body).unwrap_or("AccessDenied")
        )),
        // A request that could not even be built is our bug, not an outage.
        S3Error::Reqwest(e) if e.is_builder() => StoreError::Internal {
            operation,
            key: key.to_owned(),
            source: Box::new(error),
        },
        S3Error::Reqwest(_) | S3Error::Io(_) => unavailable(error),
        S3Error::Credentials(_) => config_error(format!("unusable S3 credentials: {error}")),
        _ => StoreError::Internal {
            operation,
            key: key.to_owned(),
            source: Box::new(error),
        },
    }
}

/// The version id in a response's `x-amz-version-id` header; a missing or
/// `null` id means versioning is off.
fn version_from_headers(headers: &HashMap<String, String>, key: &ObjectKey) -> Result<VersionId, StoreError> {
    version_from(headers.get("x-amz-version-id").map(String::as_str), key)
}

fn version_from(id: Option<&str>, key: &ObjectKey) -> Result<VersionId, StoreError> {
    id.and_then(|id| VersionId::new(id).ok())
        .ok_or_else(|| StoreError::NotVersioned { key: key.to_string() })
}

/// Parses an HTTP date (`Sun, 06 Nov 1994 08:49:37 GMT`) or an ISO 8601 /
/// RFC 3339 timestamp (`2024-01-31T12:00:00.000Z`, as in listings).
fn parse_timestamp(text: &str) -> Option<OffsetDateTime> {
    use time::format_description::well_known::{Rfc2822, Rfc3339};
    let http_date = time::macros::format_description!(
        "[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] GMT"
    );
    let text = text.trim();
    time::PrimitiveDateTime::parse(text, http_date)
        .map(time::PrimitiveDateTime::assume_utc)
        .or_else(|_| OffsetDateTime::parse(text, &Rfc3339))
        .or_else(|_| OffsetDateTime::parse(text, &Rfc2822))
        .ok()
}

fn timestamp_or_epoch(text: Option<&str>, key: &str) -> OffsetDateTime {
    match text.and_then(parse_timestamp) {
        Some(at) => at,
        None => {
            tracing::warn!(key, last_modified = ?text, "unreadable last-modified time from S3");
            OffsetDateTime::UNIX_EPOCH
        }
    }
}

fn parse_versions(xml: &[u8], prefix: &str) -> Result<ListPage<ObjectVersion>, StoreError> {
    let internal = |message: String| StoreError::Internal {
        operation: "list",
        key: prefix.to_owned(),
        source: message.into(),
    };
    let text = std::str::from_utf8(xml).map_err(|e| internal(format!("ListObjectVersions is not UTF-8: {e}")))?;
    let result: ListVersionsResult =
        quick_xml::de::from_str(text).map_err(|e| internal(format!("unreadable ListObjectVersions answer: {e}")))?;
    let mut items = Vec::new();
    let mut truncated = false;
    let mut next_key = None;
    let mut next_version = None;
    for item in result.items {
        let (entry, is_delete_marker) = match item {
            ListVersionsItem::IsTruncated(value) => {
                truncated = value.trim() == "true";
                continue;
            }
            ListVersionsItem::NextKeyMarker(value) => {
                next_key = Some(value);
                continue;
            }
            ListVersionsItem::NextVersionIdMarker(value) => {
                next_version = Some(value);
                continue;
            }
            ListVersionsItem::Other => continue,
            ListVersionsItem::Version(entry) => (entry, false),
            ListVersionsItem::DeleteMarker(entry) => (entry, true),
        };
        let Ok(key) = ObjectKey::parse(&entry.key) else {
            // Not a file of ours (nothing we write breaks the key rules).
            tracing::warn!(key = entry.key, "skipping an S3 object whose key breaks the key rules");
            continue;
        };
        let version_id = version_from(Some(&entry.version_id), &key)?;
        items.push(ObjectVersion {
            last_modified: timestamp_or_epoch(Some(&entry.last_modified), key.as_str()),
            key,
            version_id,
            is_latest: entry.is_latest.trim() == "true",
            is_delete_marker,
            size: if is_delete_marker { 0 } else { entry.size.unwrap_or(0) },
        });
    }
    // AWS interleaves versions and delete markers (by key, newest first);
    // moto lists all versions first, then all markers. Restore S3's order
    // within the page: by key, the latest entry first, then newest first. The
    // sort is stable, so entries with equal times keep the server's order.
    items.sort_by(|a, b| {
        a.key
            .cmp(&b.key)
            .then_with(|| b.is_latest.cmp(&a.is_latest))
            .then_with(|| b.last_modified.cmp(&a.last_modified))
    });
    let next = match (truncated, next_key) {
        (false, _) => None,
        (true, Some(key)) => Some(format!("{key}{TOKEN_SEPARATOR}{}", next_version.unwrap_or_default())),
        (true, None) => {
            return Err(internal(
                "a truncated ListObjectVersions answer without NextKeyMarker".into(),
            ));
        }
    };
    Ok(ListPage { items, next })
}

impl S3Store {
    /// Connects to the bucket of `config`. When the bucket is missing and
    /// `create_bucket` is set, creates it and enables versioning right away.
    /// An existing bucket must have versioning `Enabled`; otherwise this
    /// fails with [`StoreError::Config`] saying how to enable it. (One
    /// exception: with `create_bucket`, an existing bucket that is empty and
    /// never had versioning, as left by a crash between creating and
    /// enabling, gets versioning enabled.)
    pub async fn connect(config: S3Config) -> Result<S3Store, StoreError> {
        let store = S3Store::new(&config)?;
        store.ensure_versioned(&config).await?;
        store.refuse_noncurrent_expiration().await?;
        Ok(store)
    }

    /// Builds the client without any network call.
    fn new(config: &S3Config) -> Result<S3Store, StoreError> {
        let endpoint = config.endpoint.trim_end_matches('/').to_owned();
        if !(endpoint.starts_with("http://") || endpoint.starts_with("https://")) {
            return Err(config_error(format!(
                "the S3 endpoint {endpoint:?} must start with http:// or https://"
            )));
        }
        if config.region.is_empty()
            || !config
                .region
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        {
            return Err(config_error(format!(
                "the S3 region {:?} must be made of a-z, 0-9 and '-'",
                config.region
            )));
        }
        let name = &config.bucket;
        let valid_name = (3..=63).contains(&name.len())
            && name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.');
        if !valid_name {
            return Err(config_error(format!(
                "the bucket name {name:?} must be 3 to 63 characters of a-z, 0-9, '-' and '.'"
            )));
        }
        if config.request_timeout.is_zero() {
            return Err(config_error("the S3 request timeout must be longer than zero"));
        }
        let region = Region::Custom {
            region: config.region.clone(),
            endpoint: endpoint.clone(),
        };
        let credentials = Credentials::new(Some(&config.access_key), Some(&config.secret_key), None, None, None)
            .map_err(|e| config_error(format!("unusable S3 credentials: {e}")))?;
        let mut bucket = Bucket::new(name, region, credentials)
            .map_err(|e| config_error(format!("cannot build the S3 client: {e}")))?;
        if config.path_style {
            bucket = bucket.with_path_style();
        }
        let bucket = bucket
            .with_request_timeout(config.request_timeout)
            .map_err(|e| config_error(format!("cannot build the S3 client: {e}")))?;
        Ok(S3Store {
            bucket: *bucket,
            endpoint,
            call_timeout: config
                .request_timeout
                .saturating_mul(2)
                .saturating_add(Duration::from_secs(2)),
            versions_page: MAX_PAGE_SIZE,
            part_size: DEFAULT_PART_SIZE,
        })
    }

    /// Sets the part size of streamed writes (at least [`MIN_PART_SIZE`];
    /// default [`DEFAULT_PART_SIZE`]).
    pub fn with_part_size(mut self, bytes: usize) -> Self {
        self.part_size = bytes.max(MIN_PART_SIZE);
        self
    }

    /// Sets how many entries `list_latest` asks of its one ListObjectVersions
    /// request (1..=1000, default 1000). Listings whose remaining history fits
    /// in one such page take one request; longer ones fall back to
    /// ListObjectsV2 and concurrent HEADs. Exposed so tests can force either path.
    pub fn with_versions_page(mut self, entries: usize) -> Self {
        self.versions_page = entries.clamp(1, MAX_PAGE_SIZE);
        self
    }

    /// The bucket's name.
    pub fn bucket_name(&self) -> &str {
        &self.bucket.name
    }

    /// The bucket with `pairs` as its only extra query parameters.
    fn with_query(&self, pairs: &[(&str, &str)]) -> Bucket {
        let mut bucket = self.bucket.clone();
        // `with_extra_query` replaces the map (and cannot fail); assigning it
        // directly saves a second clone.
        bucket.extra_query = query(pairs);
        bucket
    }

    /// Runs one rust-s3 call under the outer time limit, mapping its errors.
    async fn call<T>(
        &self,
        operation: &'static str,
        key: &str,
        version: Option<&VersionId>,
        request: impl Future<Output = Result<T, S3Error>>,
    ) -> Result<T, StoreError> {
        match tokio::time::timeout(self.call_timeout, request).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(error)) => Err(map_error(operation, key, version, error)),
            Err(_) => Err(StoreError::Unavailable {
                operation,
                key: key.to_owned(),
                source: format!("no answer from {} within {:?}", self.endpoint, self.call_timeout).into(),
            }),
        }
    }

    /// GetBucketVersioning.
    async fn versioning(&self, operation: &'static str) -> Result<Versioning, StoreError> {
        let bucket = self.with_query(&[("versioning", "")]);
        let name = self.bucket.name.clone();
        let answer = match tokio::time::timeout(self.call_timeout, bucket.get_object("/")).await {
            Ok(Err(S3Error::HttpFailWithBody(404, _))) => return Ok(Versioning::NoBucket),
            other => other,
        };
        let response = match answer {
            Ok(result) => result.map_err(|e| map_error(operation, &name, None, e))?,
            Err(_) => {
                return Err(StoreError::Unavailable {
                    operation,
                    key: name,
                    source: format!("no answer from {} within {:?}", self.endpoint, self.call_timeout).into(),
                });
            }
        };
        let text = std::str::from_utf8(response.as_slice()).unwrap_or_default();
        let parsed: VersioningConfiguration = quick_xml::de::from_str(text).map_err(|e| StoreError::Internal {
            operation,
            key: name,
            source: format!("unreadable GetBucketVersioning answer: {e}").into(),
        })?;
        Ok(Versioning::Status(parsed.status.map(|s| s.trim().to_owned())))
    }

    async fn enable_versioning(&self) -> Result<(), StoreError> {
        let bucket = self.with_query(&[("versioning", "")]);
        self.call(
            "connect",
            &self.bucket.name,
            None,
            bucket.put_object_with_content_type("/", ENABLE_VERSIONING_XML.as_bytes(), "application/xml"),
        )
        .await?;
        Ok(())
    }

    /// CreateBucket: a PUT on the bucket itself, with a location constraint
    /// except in `us-east-1` (where sending one is an error).
    async fn create_bucket(&self, region: &str) -> Result<(), StoreError> {
        let body = if region == "us-east-1" {
            String::new()
        } else {
            format!(
                r#"<CreateBucketConfiguration xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><LocationConstraint>{region}</LocationConstraint></CreateBucketConfiguration>"#
            )
        };
        let name = self.bucket.name.clone();
        let request = self
            .bucket
            .put_object_with_content_type("/", body.as_bytes(), "application/xml");
        match tokio::time::timeout(self.call_timeout, request).await {
            Ok(Ok(_)) => Ok(()),
            // Another process created it first: fine.
            Ok(Err(S3Error::HttpFailWithBody(409, body))) if error_code(&body) == Some("BucketAlreadyOwnedByYou") => {
                Ok(())
            }
            Ok(Err(S3Error::HttpFailWithBody(409, body))) => Err(config_error(format!(
                "cannot create bucket {name}: {} (the name may belong to someone else)",
                error_code(&body).unwrap_or("conflict")
            ))),
            Ok(Err(error)) => Err(map_error("connect", &name, None, error)),
            Err(_) => Err(StoreError::Unavailable {
                operation: "connect",
                key: name,
                source: format!("no answer from {} within {:?}", self.endpoint, self.call_timeout).into(),
            }),
        }
    }

    /// Whether the bucket holds no object at all.
    async fn is_empty(&self) -> Result<bool, StoreError> {
        let request = self.bucket.list_page(String::new(), None, None, None, Some(1));
        let (page, _) = self.call("connect", &self.bucket.name, None, request).await?;
        Ok(page.contents.is_empty())
    }

    fn not_versioned_error(&self, status: Option<&str>) -> StoreError {
        let name = &self.bucket.name;
        config_error(format!(
            "bucket {name} does not have object versioning enabled (status: {}), which pinned file versions \
             need; enable it, e.g. with `aws s3api put-bucket-versioning --bucket {name} \
             --versioning-configuration Status=Enabled` (add `--endpoint-url {}` for a service other than AWS)",
            status.unwrap_or("never enabled"),
            self.endpoint
        ))
    }

    /// Refuses a bucket whose lifecycle expires noncurrent versions: a publish
    /// may pin a version for years, and ratd lost pinned code exactly this way.
    async fn refuse_noncurrent_expiration(&self) -> Result<(), StoreError> {
        let lifecycle = match self.call("connect", "", None, self.bucket.get_bucket_lifecycle()).await {
            Ok(lifecycle) => lifecycle,
            // No lifecycle configuration at all (NoSuchLifecycleConfiguration).
            Err(StoreError::NotFound { .. }) => return Ok(()),
            Err(e) => return Err(e),
        };
        let expiring: Vec<String> = lifecycle
            .rules
            .iter()
            .filter(|rule| rule.status == "Enabled" && rule.noncurrent_version_expiration.is_some())
            .map(|rule| rule.id.clone().unwrap_or_else(|| "(unnamed)".to_owned()))
            .collect();
        if expiring.is_empty() {
            return Ok(());
        }
        Err(config_error(format!(
            "bucket {} has lifecycle rules that expire noncurrent versions ({}); they would delete file \
             versions that publishes pin. Remove NoncurrentVersionExpiration from those rules",
            self.bucket.name,
            expiring.join(", ")
        )))
    }

    async fn ensure_versioned(&self, config: &S3Config) -> Result<(), StoreError> {
        match self.versioning("connect").await? {
            Versioning::Status(Some(status)) if status == "Enabled" => return Ok(()),
            Versioning::Status(None) if config.create_bucket && self.is_empty().await? => {
                tracing::info!(bucket = %self.bucket.name, "enabling versioning on an empty bucket");
            }
            Versioning::Status(status) => return Err(self.not_versioned_error(status.as_deref())),
            Versioning::NoBucket if config.create_bucket => {
                tracing::info!(bucket = %self.bucket.name, "creating the bucket with versioning");
                self.create_bucket(&config.region).await?;
            }
            Versioning::NoBucket => {
                return Err(config_error(format!(
                    "bucket {} does not exist at {}; create it with versioning enabled, or allow creating it",
                    self.bucket.name, self.endpoint
                )));
            }
        }
        self.enable_versioning().await?;
        match self.versioning("connect").await? {
            Versioning::Status(Some(status)) if status == "Enabled" => Ok(()),
            Versioning::Status(status) => Err(self.not_versioned_error(status.as_deref())),
            Versioning::NoBucket => Err(config_error(format!(
                "bucket {} vanished right after it was created",
                self.bucket.name
            ))),
        }
    }

    /// HEAD of one key, at `version` or at HEAD, as an [`ObjectHead`];
    /// `None` when missing or deleted (or that version is a delete marker).
    async fn head_key(
        &self,
        key: &ObjectKey,
        version: Option<&VersionId>,
        operation: &'static str,
    ) -> Result<Option<ObjectHead>, StoreError> {
        let bucket = match version {
            Some(version) => self.with_query(&[("versionId", version.as_str())]),
            None => self.bucket.clone(),
        };
        let request = bucket.head_object(key.as_str());
        let head = match self.call(operation, key.as_str(), version, request).await {
            Ok((head, _)) => head,
            Err(StoreError::NotFound { .. }) => return Ok(None),
            Err(e) => return Err(e),
        };
        let version_id = version_from(head.version_id.as_deref(), key)?;
        Ok(Some(ObjectHead {
            key: key.clone(),
            version_id,
            size: head.content_length.and_then(|n| u64::try_from(n).ok()).unwrap_or(0),
            last_modified: timestamp_or_epoch(head.last_modified.as_deref(), key.as_str()),
        }))
    }
}

/// Reads from `body` until `buffer` holds `size` bytes or `body` ends;
/// returns whether it ended. Keeps what goes beyond `size` in `spill`.
async fn fill_part(
    body: ByteSource<'_>,
    buffer: &mut Vec<u8>,
    spill: &mut Bytes,
    size: usize,
    key: &ObjectKey,
) -> Result<bool, StoreError> {
    loop {
        if !spill.is_empty() {
            let take = spill.len().min(size - buffer.len());
            buffer.extend_from_slice(&spill.split_to(take));
        }
        if buffer.len() >= size {
            return Ok(false);
        }
        match body.next().await {
            None => return Ok(true),
            Some(Ok(chunk)) => *spill = chunk,
            Some(Err(source)) => {
                return Err(StoreError::BodyFailed {
                    key: key.to_string(),
                    source,
                });
            }
        }
    }
}

impl S3Store {
    /// The multipart part of [`VersionedStore::put_stream`]: `first` is the
    /// first full part, the rest comes from `body`. Aborts the upload on any
    /// failure, so no parts are left behind.
    async fn put_multipart(
        &self,
        key: &ObjectKey,
        body: ByteSource<'_>,
        first: Vec<u8>,
        mut spill: Bytes,
        content_type: &str,
    ) -> Result<Written, StoreError> {
        let path = key.as_str();
        let started = self
            .call(
                "put",
                path,
                None,
                self.bucket.initiate_multipart_upload(path, content_type),
            )
            .await?;
        let upload_id = started.upload_id;
        let result = async {
            let mut parts = Vec::new();
            let mut size = 0_u64;
            let mut part = first;
            loop {
                let ended = fill_part(body, &mut part, &mut spill, self.part_size, key).await?;
                if part.is_empty() {
                    break;
                }
                size += part.len() as u64;
                let number = u32::try_from(parts.len() + 1).map_err(|_| StoreError::Internal {
                    operation: "put",
                    key: path.to_owned(),
                    source: "too many parts".into(),
                })?;
                let chunk = std::mem::replace(&mut part, Vec::with_capacity(if ended { 0 } else { self.part_size }));
                let uploaded = self
                    .call(
                        "put",
                        path,
                        None,
                        self.bucket
                            .put_multipart_chunk(chunk, path, number, &upload_id, content_type),
                    )
                    .await?;
                parts.push(uploaded);
                if ended {
                    break;
                }
            }
            let done = self
                .call(
                    "put",
                    path,
                    None,
                    self.bucket.complete_multipart_upload(path, &upload_id, parts),
                )
                .await?;
            Ok(Written {
                version_id: version_from_headers(&done.headers(), key)?,
                size,
            })
        }
        .await;
        if result.is_err()
            && let Err(e) = self
                .call("put", path, None, self.bucket.abort_upload(path, &upload_id))
                .await
        {
            tracing::warn!(key = path, error = %e, "could not abort a failed multipart upload");
        }
        result
    }
}

#[async_trait::async_trait]
impl VersionedStore for S3Store {
    async fn put_stream(
        &self,
        key: &ObjectKey,
        body: ByteSource<'_>,
        content_type: &str,
    ) -> Result<Written, StoreError> {
        let mut first = Vec::new();
        let mut spill = Bytes::new();
        let ended = fill_part(body, &mut first, &mut spill, self.part_size, key).await?;
        if ended {
            let size = first.len() as u64;
            let version_id = self.put(key, first, content_type).await?;
            return Ok(Written { version_id, size });
        }
        self.put_multipart(key, body, first, spill, content_type).await
    }

    async fn open(&self, key: &ObjectKey, version: Option<&VersionId>) -> Result<Download, StoreError> {
        // HEAD first, for the version id, size and time, then GET that exact
        // version: the content is the one described even if HEAD moves meanwhile.
        let head = self
            .head_key(key, version, "get")
            .await?
            .ok_or_else(|| StoreError::NotFound {
                key: key.to_string(),
                version: version.map(|v| v.to_string()),
            })?;
        let bucket = self.with_query(&[("versionId", head.version_id.as_str())]);
        let response = self
            .call(
                "get",
                key.as_str(),
                Some(&head.version_id),
                bucket.get_object_stream(key.as_str()),
            )
            .await?;
        // Each piece must come within the call timeout: a store that stops
        // sending mid-file ends the read instead of holding it open.
        let timeout = self.call_timeout;
        let name = key.to_string();
        let body = futures_util::stream::unfold(Some(response.bytes), move |stream| {
            let name = name.clone();
            async move {
                let mut stream = stream?;
                match tokio::time::timeout(timeout, stream.next()).await {
                    Ok(None) => None,
                    Ok(Some(Ok(bytes))) => Some((Ok(bytes), Some(stream))),
                    Ok(Some(Err(e))) => Some((Err(map_error("get", &name, None, e)), None)),
                    Err(_) => Some((
                        Err(StoreError::Unavailable {
                            operation: "get",
                            key: name,
                            source: format!("no data within {timeout:?}").into(),
                        }),
                        None,
                    )),
                }
            }
        });
        Ok(Download {
            version_id: head.version_id,
            size: head.size,
            last_modified: head.last_modified,
            body: Box::pin(body),
        })
    }

    async fn put(&self, key: &ObjectKey, body: Vec<u8>, content_type: &str) -> Result<VersionId, StoreError> {
        let request = self
            .bucket
            .put_object_with_content_type(key.as_str(), &body, content_type);
        let response = self.call("put", key.as_str(), None, request).await?;
        version_from_headers(&response.headers(), key)
    }

    async fn get(&self, key: &ObjectKey, version: Option<&VersionId>) -> Result<Object, StoreError> {
        let bucket = match version {
            Some(version) => self.with_query(&[("versionId", version.as_str())]),
            None => self.bucket.clone(),
        };
        let response = self
            .call("get", key.as_str(), version, bucket.get_object(key.as_str()))
            .await?;
        let headers = response.headers();
        let version_id = version_from_headers(&headers, key)?;
        if let Some(asked) = version
            && *asked != version_id
        {
            return Err(StoreError::Internal {
                operation: "get",
                key: key.to_string(),
                source: format!("asked for version {asked}, S3 answered with {version_id}").into(),
            });
        }
        Ok(Object {
            version_id,
            last_modified: timestamp_or_epoch(headers.get("last-modified").map(String::as_str), key.as_str()),
            body: response.to_vec(),
        })
    }

    async fn head(&self, key: &ObjectKey) -> Result<Option<ObjectHead>, StoreError> {
        self.head_key(key, None, "head").await
    }

    async fn list_latest(
        &self,
        prefix: &KeyPrefix,
        page_token: Option<&str>,
        limit: usize,
    ) -> Result<ListPage<ObjectHead>, StoreError> {
        let limit = page_size(limit);
        // The token is the last key returned; listing resumes after it.
        let start_after = page_token
            .map(|token| ObjectKey::parse(token).map_err(|_| invalid_token(token)))
            .transpose()?;

        // Fast path: when every remaining version under the prefix fits in one
        // ListObjectVersions page, that one request says which entry of each
        // key is the latest (a pipeline directory with a short history: the
        // common case of a publish). Costs one request instead of 1 + N.
        let max_keys = self.versions_page.to_string();
        let mut pairs = vec![
            ("versions", ""),
            ("prefix", prefix.as_str()),
            ("max-keys", max_keys.as_str()),
        ];
        if let Some(key) = &start_after {
            // With a key marker alone, listing starts at the next key.
            pairs.push(("key-marker", key.as_str()));
        }
        let bucket = self.with_query(&pairs);
        let response = self.call("list", prefix.as_str(), None, bucket.get_object("/")).await?;
        let versions = parse_versions(response.as_slice(), prefix.as_str())?;
        if versions.next.is_none() {
            let mut latest: Vec<ObjectHead> = versions
                .items
                .into_iter()
                .filter(|v| v.is_latest && !v.is_delete_marker)
                .map(|v| ObjectHead {
                    key: v.key,
                    version_id: v.version_id,
                    size: v.size,
                    last_modified: v.last_modified,
                })
                .collect();
            let next = (latest.len() > limit).then(|| {
                latest.truncate(limit);
                latest.last().map(|h| h.key.to_string()).unwrap_or_default()
            });
            return Ok(ListPage { items: latest, next });
        }

        // Long histories: ListObjectsV2 for the keys, then HEAD every key, a
        // bounded number at a time, keeping the listing's (key) order. A key
        // deleted since the listing answers 404 and is left out.
        let request = self.bucket.list_page(
            prefix.to_string(),
            None,
            None,
            start_after.map(|k| k.to_string()),
            Some(limit),
        );
        let (page, _) = self.call("list", prefix.as_str(), None, request).await?;
        let keys: Vec<ObjectKey> = page
            .contents
            .iter()
            .filter_map(|object| match ObjectKey::parse(&object.key) {
                Ok(key) => Some(key),
                Err(_) => {
                    tracing::warn!(key = object.key, "skipping an S3 object whose key breaks the key rules");
                    None
                }
            })
            .collect();
        let heads: Vec<Option<ObjectHead>> = stream::iter(keys)
            .map(|key| async move { self.head_key(&key, None, "list").await })
            .buffered(LIST_HEAD_CONCURRENCY)
            .try_collect()
            .await?;
        let next = if page.is_truncated {
            page.contents.last().map(|object| object.key.clone())
        } else {
            None
        };
        Ok(ListPage {
            items: heads.into_iter().flatten().collect(),
            next,
        })
    }

    async fn list_versions(
        &self,
        prefix: &KeyPrefix,
        page_token: Option<&str>,
        limit: usize,
    ) -> Result<ListPage<ObjectVersion>, StoreError> {
        let max_keys = page_size(limit).to_string();
        let mut pairs = vec![
            ("versions", ""),
            ("prefix", prefix.as_str()),
            ("max-keys", max_keys.as_str()),
        ];
        if let Some(token) = page_token {
            let (key, version) = token.split_once(TOKEN_SEPARATOR).ok_or_else(|| invalid_token(token))?;
            if ObjectKey::parse(key).is_err() {
                return Err(invalid_token(token));
            }
            pairs.push(("key-marker", key));
            if !version.is_empty() {
                pairs.push(("version-id-marker", version));
            }
        }
        let bucket = self.with_query(&pairs);
        let response = self.call("list", prefix.as_str(), None, bucket.get_object("/")).await?;
        parse_versions(response.as_slice(), prefix.as_str())
    }

    async fn delete(&self, key: &ObjectKey) -> Result<Option<VersionId>, StoreError> {
        let response = self
            .call("delete", key.as_str(), None, self.bucket.delete_object(key.as_str()))
            .await?;
        // AWS writes a marker even for a missing key; moto writes none and
        // sends no version id then. (Versioning itself was checked at connect.)
        Ok(response
            .headers()
            .get("x-amz-version-id")
            .and_then(|id| VersionId::new(id.as_str()).ok()))
    }

    async fn delete_version(&self, key: &ObjectKey, version: &VersionId) -> Result<(), StoreError> {
        let bucket = self.with_query(&[("versionId", version.as_str())]);
        match self
            .call(
                "delete_version",
                key.as_str(),
                Some(version),
                bucket.delete_object(key.as_str()),
            )
            .await
        {
            // Removing a version that does not exist is not an error (as in S3).
            Ok(_) | Err(StoreError::NotFound { .. }) => Ok(()),
            Err(e) => Err(e),
        }
    }

    async fn presign_get(
        &self,
        key: &ObjectKey,
        version: &VersionId,
        ttl: Duration,
    ) -> Result<Option<String>, StoreError> {
        let seconds = ttl.min(MAX_PRESIGN_TTL).as_secs().max(1);
        let seconds = u32::try_from(seconds).unwrap_or(u32::MAX);
        let request = self
            .bucket
            .presign_get(key.as_str(), seconds, Some(query(&[("versionId", version.as_str())])));
        let url = self.call("presign", key.as_str(), Some(version), request).await?;
        Ok(Some(url))
    }

    async fn check(&self) -> Result<(), StoreError> {
        match self.versioning("check").await? {
            Versioning::Status(Some(status)) if status == "Enabled" => Ok(()),
            Versioning::Status(status) => Err(self.not_versioned_error(status.as_deref())),
            Versioning::NoBucket => Err(config_error(format!(
                "bucket {} does not exist at {}",
                self.bucket.name, self.endpoint
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_versions_keeps_the_document_order_of_versions_and_markers() {
        let xml = r#"<?xml version="1.0" encoding="UTF-8"?>
<ListVersionsResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">
  <Name>bucket</Name><Prefix>a/</Prefix><KeyMarker></KeyMarker><VersionIdMarker></VersionIdMarker>
  <MaxKeys>3</MaxKeys><IsTruncated>true</IsTruncated>
  <NextKeyMarker>a/y</NextKeyMarker><NextVersionIdMarker>v/3+x</NextVersionIdMarker>
  <DeleteMarker><Owner><ID>o</ID><DisplayName>d</DisplayName></Owner><Key>a/x</Key><VersionId>m1</VersionId>
    <IsLatest>true</IsLatest><LastModified>2024-01-31T12:00:01.000Z</LastModified></DeleteMarker>
  <Version><Key>a/x</Key><VersionId>v1</VersionId><IsLatest>false</IsLatest>
    <LastModified>2024-01-31T12:00:00.000Z</LastModified><ETag>&quot;e&quot;</ETag><Size>5</Size>
    <Owner><ID>o</ID></Owner><StorageClass>STANDARD</StorageClass></Version>
  <Version><Key>a/y</Key><VersionId>v/3+x</VersionId><IsLatest>true</IsLatest>
    <LastModified>2024-01-31T12:00:02.000Z</LastModified><Size>7</Size></Version>
</ListVersionsResult>"#;
        let page = parse_versions(xml.as_bytes(), "a/").unwrap();
        let summary: Vec<(&str, &str, bool, bool, u64)> = page
            .items
            .iter()
            .map(|v| {
                (
                    v.key.as_str(),
                    v.version_id.as_str(),
                    v.is_latest,
                    v.is_delete_marker,
                    v.size,
                )
            })
            .collect();
        assert_eq!(
            summary,
            vec![
                ("a/x", "m1", true, true, 0),
                ("a/x", "v1", false, false, 5),
                ("a/y", "v/3+x", true, false, 7)
            ]
        );
        assert_eq!(page.next.as_deref(), Some("a/y|v/3+x"));
        assert_eq!(page.items[1].last_modified.unix_timestamp(), 1_706_702_400);
    }

    #[test]
    fn markers_listed_after_all_versions_are_put_back_in_order() {
        // moto's layout: every Version first, then every DeleteMarker.
        let xml = r#"<ListVersionsResult><IsTruncated>false</IsTruncated>
  <Version><Key>a</Key><VersionId>a2</VersionId><IsLatest>false</IsLatest>
    <LastModified>2024-01-31T12:00:02.000Z</LastModified><Size>1</Size></Version>
  <Version><Key>a</Key><VersionId>a1</VersionId><IsLatest>false</IsLatest>
    <LastModified>2024-01-31T12:00:01.000Z</LastModified><Size>1</Size></Version>
  <Version><Key>b</Key><VersionId>b1</VersionId><IsLatest>true</IsLatest>
    <LastModified>2024-01-31T12:00:00.000Z</LastModified><Size>1</Size></Version>
  <DeleteMarker><Key>a</Key><VersionId>am</VersionId><IsLatest>true</IsLatest>
    <LastModified>2024-01-31T12:00:02.000Z</LastModified></DeleteMarker>
</ListVersionsResult>"#;
        let page = parse_versions(xml.as_bytes(), "").unwrap();
        let order: Vec<&str> = page.items.iter().map(|v| v.version_id.as_str()).collect();
        assert_eq!(order, ["am", "a2", "a1", "b1"]);
    }

    #[test]
    fn a_complete_listing_has_no_next_token_and_null_versions_are_refused() {
        let xml = r#"<ListVersionsResult><IsTruncated>false</IsTruncated></ListVersionsResult>"#;
        let page = parse_versions(xml.as_bytes(), "").unwrap();
        assert!(page.items.is_empty());
        assert_eq!(page.next, None);
        let xml = r#"<ListVersionsResult><IsTruncated>false</IsTruncated><Version><Key>k</Key>
            <VersionId>null</VersionId><IsLatest>true</IsLatest><LastModified>2024-01-31T12:00:00Z</LastModified>
            <Size>1</Size></Version></ListVersionsResult>"#;
        assert!(matches!(
            parse_versions(xml.as_bytes(), ""),
            Err(StoreError::NotVersioned { .. })
        ));
    }

    #[test]
    fn timestamps_in_both_s3_formats_parse() {
        let http = parse_timestamp("Wed, 31 Jan 2024 12:00:00 GMT").unwrap();
        let iso = parse_timestamp("2024-01-31T12:00:00.000Z").unwrap();
        assert_eq!(http, iso);
        assert_eq!(http.unix_timestamp(), 1_706_702_400);
        assert!(parse_timestamp("yesterday").is_none());
    }

    #[test]
    fn errors_map_to_store_errors() {
        let version = VersionId::new("v1").unwrap();
        let fail = |status, body: &str| S3Error::HttpFailWithBody(status, body.to_owned());
        assert!(matches!(
            map_error("get", "k", None, fail(404, "<Error><Code>NoSuchKey</Code></Error>")),
            StoreError::NotFound { version: None, .. }
        ));
        assert!(matches!(
            map_error("get", "k", Some(&version), fail(405, "")),
            StoreError::NotFound { version: Some(_), .. }
        ));
        assert!(matches!(
            map_error(
                "get",
                "k",
                Some(&version),
                fail(400, "<Error><Code>InvalidArgument</Code></Error>")
            ),
            StoreError::NotFound { .. }
        ));
        assert!(matches!(
            map_error("get", "k", None, fail(503, "")),
            StoreError::Unavailable { .. }
        ));
        assert!(matches!(
            map_error(
                "list",
                "p/",
                None,
                fail(404, "<Error><Code>NoSuchBucket</Code></Error>")
            ),
            StoreError::Config { .. }
        ));
        assert!(matches!(
            map_error("put", "k", None, fail(403, "")),
            StoreError::Config { .. }
        ));
        assert!(matches!(
            map_error("put", "k", None, fail(400, "")),
            StoreError::Internal { .. }
        ));
    }

    #[test]
    fn config_is_validated_and_the_secret_never_printed() {
        let config = S3Config {
            endpoint: "http://127.0.0.1:1".into(),
            region: "eu-west-1".into(),
            bucket: "rat-files".into(),
            access_key: "AKID".into(),
            secret_key: "very-secret".into(),
            path_style: true,
            create_bucket: false,
            request_timeout: Duration::from_secs(5),
        };
        assert!(!format!("{config:?}").contains("very-secret"));
        let store = S3Store::new(&config).unwrap();
        assert!(!format!("{store:?}").contains("very-secret"));
        assert_eq!(store.call_timeout, Duration::from_secs(12));
        for bad in [
            S3Config {
                endpoint: "127.0.0.1:9000".into(),
                ..config.clone()
            },
            S3Config {
                bucket: "ab".into(),
                ..config.clone()
            },
            S3Config {
                bucket: "Upper".into(),
                ..config.clone()
            },
            S3Config {
                region: "eu west".into(),
                ..config.clone()
            },
            S3Config {
                request_timeout: Duration::ZERO,
                ..config.clone()
            },
        ] {
            assert!(matches!(S3Store::new(&bad), Err(StoreError::Config { .. })), "{bad:?}");
        }
    }
}
