//! Reading and changing files through the store, keeping each pipeline's
//! `draft_dirty` true whenever its HEAD may differ from what is published.

use rat_dao::pipelines;
use rat_domain::PipelineRef;
use rat_versioning::{KeyPrefix, Object, ObjectHead, ObjectKey, VersionId};
use uuid::Uuid;

use crate::pipelines::content_type;
use crate::{ServiceError, Services};

/// A file written: its key and the new version id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WrittenFile {
    /// The file's key.
    pub key: ObjectKey,
    /// The version just written.
    pub version_id: VersionId,
    /// The live pipeline whose directory holds the file, if any.
    pub pipeline_id: Option<Uuid>,
}

/// Marks the live pipeline owning `key` (if any) dirty. Returns the id of
/// the pipeline marked.
async fn mark_dirty(services: &Services, key: &ObjectKey) -> Result<Option<Uuid>, ServiceError> {
    let Some((address, _)) = PipelineRef::from_file_key(key.as_str()) else {
        return Ok(None);
    };
    let client = services.pool.get().await?;
    match pipelines::get_by_ref(&client, &address).await {
        Ok(pipeline) => {
            pipelines::set_draft_dirty(&client, pipeline.id, true).await?;
            Ok(Some(pipeline.id))
        }
        Err(rat_dao::DaoError::NotFound { .. }) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// Writes a new version of the file at `path`.
///
/// Inside a pipeline directory the pipeline is marked dirty before the write
/// (so a crash after the write never leaves it clean) and again after it (so
/// a publish that listed the files before the write landed cannot leave it
/// clean either; see [`crate::versions::publish`]).
#[tracing::instrument(skip(services, body), fields(size = body.len()), err)]
pub async fn write_file(services: &Services, path: &str, body: Vec<u8>) -> Result<WrittenFile, ServiceError> {
    let key = ObjectKey::parse(path)?;
    let pipeline_id = mark_dirty(services, &key).await?;
    let version_id = services.store.put(&key, body, content_type(key.file_name())).await?;
    if pipeline_id.is_some() {
        mark_dirty(services, &key).await?;
    }
    Ok(WrittenFile {
        key,
        version_id,
        pipeline_id,
    })
}

/// Deletes the file at `path` (a delete marker: older versions, and any
/// publish pinning them, stay readable). Marks its pipeline dirty like
/// [`write_file`]. `NotFound` when the file does not exist at HEAD. Returns
/// the id of the live pipeline whose directory held the file, if any.
#[tracing::instrument(skip(services), err)]
pub async fn delete_file(services: &Services, path: &str) -> Result<Option<Uuid>, ServiceError> {
    let key = ObjectKey::parse(path)?;
    if services.store.head(&key).await?.is_none() {
        return Err(ServiceError::NotFound { entity: "file" });
    }
    let pipeline_id = mark_dirty(services, &key).await?;
    services.store.delete(&key).await?;
    if pipeline_id.is_some() {
        mark_dirty(services, &key).await?;
    }
    Ok(pipeline_id)
}

/// Reads the file at `path`, at HEAD or at an exact version.
pub async fn read_file(services: &Services, path: &str, version: Option<&str>) -> Result<Object, ServiceError> {
    let key = ObjectKey::parse(path)?;
    let version = version.map(VersionId::new).transpose()?;
    Ok(services.store.get(&key, version.as_ref()).await?)
}

/// The most files [`list_files`] returns in one answer.
pub const MAX_LISTED_FILES: usize = 10_000;

/// The most files [`list_files`] reads from the store, excluded ones
/// included: excluding nearly everything under a huge prefix must not make
/// one request read all of it.
pub const MAX_SCANNED_FILES: usize = 100_000;

/// Files asked of the store per listing request.
const LIST_PAGE_SIZE: usize = 1000;

/// Files at HEAD under a directory, and whether more were left out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileListing {
    /// The files, in key order.
    pub files: Vec<ObjectHead>,
    /// True when the directory holds more (non-excluded) files than the
    /// limit: the listing stopped there.
    pub truncated: bool,
}

/// Lists the files at HEAD under the directory `prefix` (a `/` is appended
/// when missing, so `ns/pipelines` lists `ns/pipelines/...`), in key order.
///
/// `exclude` holds directory paths relative to the prefix (`landing`,
/// `tests/quality`): a file is left out when its path below the prefix goes
/// through one of them as whole segments, at any depth (`landing` leaves out
/// `landing/a.csv` and `x/landing/b.csv`, not `landing.md`). Leading and
/// trailing `/` of an entry are ignored, empty entries too.
///
/// The listing reads the store page by page and stops after `limit` files
/// (at most [`MAX_LISTED_FILES`]), so a huge prefix costs a bounded amount of
/// work (and after [`MAX_SCANNED_FILES`] read, excluded or not);
/// [`FileListing::truncated`] says so. `InvalidInput` for an empty or
/// invalid prefix.
#[tracing::instrument(skip(services, exclude), err)]
pub async fn list_files(
    services: &Services,
    prefix: &str,
    exclude: &[String],
    limit: usize,
) -> Result<FileListing, ServiceError> {
    if prefix.is_empty() {
        return Err(ServiceError::invalid("prefix is required"));
    }
    let prefix = if prefix.ends_with('/') {
        KeyPrefix::parse(prefix)?
    } else {
        KeyPrefix::parse(&format!("{prefix}/"))?
    };
    let limit = limit.clamp(1, MAX_LISTED_FILES);
    // Matched as "/{entry}/" inside "/{relative path}", so only whole
    // segments match.
    let excluded: Vec<String> = exclude
        .iter()
        .map(|entry| entry.trim_matches('/'))
        .filter(|entry| !entry.is_empty())
        .map(|entry| format!("/{entry}/"))
        .collect();
    let is_excluded = |head: &ObjectHead| {
        let relative = head.key.strip_prefix(&prefix).unwrap_or(head.key.as_str());
        let relative = format!("/{relative}");
        excluded.iter().any(|entry| relative.contains(entry.as_str()))
    };

    let mut files = Vec::new();
    let mut scanned = 0_usize;
    let mut token: Option<String> = None;
    loop {
        if scanned >= MAX_SCANNED_FILES {
            return Ok(FileListing { files, truncated: true });
        }
        let page = services
            .store
            .list_latest(&prefix, token.as_deref(), LIST_PAGE_SIZE)
            .await?;
        scanned += page.items.len();
        for head in page.items {
            if is_excluded(&head) {
                continue;
            }
            if files.len() == limit {
                return Ok(FileListing { files, truncated: true });
            }
            files.push(head);
        }
        match page.next {
            Some(next) => token = Some(next),
            None => {
                return Ok(FileListing {
                    files,
                    truncated: false,
                });
            }
        }
    }
}
