//! Reading and changing files through the store, keeping each pipeline's
//! `draft_dirty` true whenever its HEAD may differ from what is published.

use rat_dao::pipelines;
use rat_domain::PipelineRef;
use rat_versioning::{Object, ObjectKey, VersionId};

use crate::pipelines::content_type;
use crate::{ServiceError, Services};

/// A file written: its key and the new version id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WrittenFile {
    /// The file's key.
    pub key: ObjectKey,
    /// The version just written.
    pub version_id: VersionId,
}

/// Marks the live pipeline owning `key` (if any) dirty. Returns whether a
/// pipeline was marked.
async fn mark_dirty(services: &Services, key: &ObjectKey) -> Result<bool, ServiceError> {
    let Some((address, _)) = PipelineRef::from_file_key(key.as_str()) else {
        return Ok(false);
    };
    let client = services.pool.get().await?;
    match pipelines::get_by_ref(&client, &address).await {
        Ok(pipeline) => {
            pipelines::set_draft_dirty(&client, pipeline.id, true).await?;
            Ok(true)
        }
        Err(rat_dao::DaoError::NotFound { .. }) => Ok(false),
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
    let in_pipeline = mark_dirty(services, &key).await?;
    let version_id = services.store.put(&key, body, content_type(key.file_name())).await?;
    if in_pipeline {
        mark_dirty(services, &key).await?;
    }
    Ok(WrittenFile { key, version_id })
}

/// Deletes the file at `path` (a delete marker: older versions, and any
/// publish pinning them, stay readable). Marks its pipeline dirty like
/// [`write_file`]. `NotFound` when the file does not exist at HEAD.
#[tracing::instrument(skip(services), err)]
pub async fn delete_file(services: &Services, path: &str) -> Result<(), ServiceError> {
    let key = ObjectKey::parse(path)?;
    if services.store.head(&key).await?.is_none() {
        return Err(ServiceError::NotFound { entity: "file" });
    }
    let in_pipeline = mark_dirty(services, &key).await?;
    services.store.delete(&key).await?;
    if in_pipeline {
        mark_dirty(services, &key).await?;
    }
    Ok(())
}

/// Reads the file at `path`, at HEAD or at an exact version.
pub async fn read_file(services: &Services, path: &str, version: Option<&str>) -> Result<Object, ServiceError> {
    let key = ObjectKey::parse(path)?;
    let version = version.map(VersionId::new).transpose()?;
    Ok(services.store.get(&key, version.as_ref()).await?)
}
