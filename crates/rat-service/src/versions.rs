//! Publish, version history, rollback, and what a run executes.
//!
//! A publish pins the exact HEAD version id of every file under the
//! pipeline's prefix. The S3 listing happens before the transaction (an S3
//! failure leaves nothing recorded); then one transaction locks the pipeline
//! row, allocates the next version number, records the pinned map on the
//! pipeline and in its history, and prunes history beyond `max_versions`.
//!
//! `draft_dirty` after a publish or rollback tells the truth: it is false
//! only when HEAD equals the pinned map *and* nothing touched the pipeline
//! between the listing and the commit (file writes mark the pipeline dirty
//! after the object is written, which moves `updated_at`); otherwise it is
//! true. It may say "dirty" when a concurrent write happened to change
//! nothing, never "clean" when HEAD differs.

use rat_dao::{pipeline_versions, pipelines};
use rat_domain::text::{MAX_MESSAGE_CHARS, check_text_len};
use rat_domain::{Page, PageRequest, Pipeline, PipelineRef, PipelineVersion, PublishedVersions, parse_version_number};
use rat_versioning::{KeyPrefix, Object, ObjectKey, VersionId, list_all_latest};
use time::OffsetDateTime;

use crate::{ServiceError, Services};

/// The answer to a publish.
#[derive(Debug, Clone)]
pub struct Published {
    /// The new history entry (its number, message and pinned map).
    pub version: PipelineVersion,
}

/// The answer to a rollback.
#[derive(Debug, Clone)]
pub struct RolledBack {
    /// The version whose snapshot was re-pinned.
    pub from_version: i32,
    /// The new history entry re-pinning it.
    pub version: PipelineVersion,
    /// Whether HEAD differs from the re-pinned snapshot.
    pub draft_dirty: bool,
}

/// What a run of a pipeline executes: the published version and its pins.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunSnapshot {
    /// The published version number.
    pub version_number: i32,
    /// `{full key: version id}` of every file of that version.
    pub published_versions: PublishedVersions,
}

/// HEAD of the pipeline's directory as a pinned map.
async fn head_snapshot(services: &Services, pipeline: &Pipeline) -> Result<PublishedVersions, ServiceError> {
    let prefix = KeyPrefix::parse(&pipeline.s3_path)?;
    let heads = list_all_latest(services.store.as_ref(), &prefix).await?;
    Ok(PublishedVersions::from_pairs(heads.into_iter().map(|h| {
        (h.key.as_str().to_owned(), h.version_id.as_str().to_owned())
    }))?)
}

/// Publishes the pipeline at `address`: pins HEAD of every file under its
/// prefix as the next version. `NotFound` for an unknown pipeline,
/// `FailedPrecondition` when it has no file, `Unavailable` when the store
/// fails or answers without version ids (nothing is recorded then).
#[tracing::instrument(skip(services, message), fields(pipeline = %address))]
pub async fn publish(
    services: &Services,
    address: &PipelineRef,
    message: &str,
    now: OffsetDateTime,
) -> Result<Published, ServiceError> {
    check_text_len("message", message, MAX_MESSAGE_CHARS)?;
    let client = services.pool.get().await?;
    let before = pipelines::get_by_ref(&client, address).await?;
    drop(client);
    let snapshot = head_snapshot(services, &before).await?;
    if snapshot.is_empty() {
        return Err(ServiceError::precondition(format!(
            "pipeline {address} has no files to publish"
        )));
    }

    let mut client = services.pool.get().await?;
    let transaction = client.transaction().await?;
    let locked = pipelines::get_by_ref_for_update(&transaction, address).await?;
    if locked.id != before.id {
        // Deleted and re-created while we listed: the listing was of the new one's files.
        return Err(ServiceError::precondition(format!(
            "pipeline {address} was replaced during the publish; retry"
        )));
    }
    let touched_since_listing = locked.updated_at != before.updated_at;
    let version = pipeline_versions::insert_next(&transaction, locked.id, message, &snapshot, now).await?;
    pipelines::set_published(&transaction, locked.id, &snapshot, now, touched_since_listing).await?;
    pipeline_versions::prune(&transaction, locked.id, locked.max_versions).await?;
    transaction.commit().await?;
    tracing::info!(version = version.version_number, files = snapshot.len(), "published");
    Ok(Published { version })
}

/// Re-pins the snapshot of version `target` as a new version (git-revert
/// style: history is never rewritten, no file content is copied). The
/// message defaults to `Rollback to v{N}`. `InvalidInput` for a number below
/// 1, `NotFound` for an unknown or pruned version. When the store cannot be
/// listed the rollback still happens and `draft_dirty` is set (it may be).
#[tracing::instrument(skip(services, message), fields(pipeline = %address))]
pub async fn rollback(
    services: &Services,
    address: &PipelineRef,
    target: i64,
    message: Option<&str>,
    now: OffsetDateTime,
) -> Result<RolledBack, ServiceError> {
    let target = parse_version_number(target)?;
    if let Some(message) = message {
        check_text_len("message", message, MAX_MESSAGE_CHARS)?;
    }
    let client = services.pool.get().await?;
    let before = pipelines::get_by_ref(&client, address).await?;
    let target_version = pipeline_versions::get(&client, before.id, target).await?;
    drop(client);
    let head = match head_snapshot(services, &before).await {
        Ok(head) => Some(head),
        Err(e) => {
            tracing::warn!(error = %e, "cannot list HEAD for a rollback; marking the draft dirty");
            None
        }
    };

    let mut client = services.pool.get().await?;
    let transaction = client.transaction().await?;
    let locked = pipelines::get_by_ref_for_update(&transaction, address).await?;
    if locked.id != before.id {
        return Err(ServiceError::precondition(format!(
            "pipeline {address} was replaced during the rollback; retry"
        )));
    }
    let pins = target_version.published_versions;
    let draft_dirty = locked.updated_at != before.updated_at || head.as_ref() != Some(&pins);
    let message = message
        .filter(|m| !m.trim().is_empty())
        .map_or_else(|| format!("Rollback to v{target}"), str::to_owned);
    let version = pipeline_versions::insert_next(&transaction, locked.id, &message, &pins, now).await?;
    pipelines::set_published(&transaction, locked.id, &pins, now, draft_dirty).await?;
    pipeline_versions::prune(&transaction, locked.id, locked.max_versions).await?;
    transaction.commit().await?;
    tracing::info!(from = target, version = version.version_number, "rolled back");
    Ok(RolledBack {
        from_version: target,
        version,
        draft_dirty,
    })
}

/// The pipeline's version history, newest first.
pub async fn list_versions(
    services: &Services,
    address: &PipelineRef,
    page: PageRequest,
) -> Result<Page<PipelineVersion>, ServiceError> {
    let client = services.pool.get().await?;
    let pipeline = pipelines::get_by_ref(&client, address).await?;
    Ok(pipeline_versions::list(&client, pipeline.id, page).await?)
}

/// One version of the pipeline's history. `InvalidInput` below 1, `NotFound`
/// for an unknown or pruned version.
pub async fn get_version(
    services: &Services,
    address: &PipelineRef,
    number: i64,
) -> Result<PipelineVersion, ServiceError> {
    let number = parse_version_number(number)?;
    let client = services.pool.get().await?;
    let pipeline = pipelines::get_by_ref(&client, address).await?;
    Ok(pipeline_versions::get(&client, pipeline.id, number).await?)
}

/// What a run of `pipeline` executes now: the latest published version and
/// its pinned map. `FailedPrecondition` for a pipeline never published.
pub async fn run_snapshot(
    client: &impl rat_dao::GenericClient,
    pipeline: &Pipeline,
) -> Result<RunSnapshot, ServiceError> {
    match pipeline_versions::latest(client, pipeline.id).await? {
        Some(version) if !version.published_versions.is_empty() => Ok(RunSnapshot {
            version_number: version.version_number,
            published_versions: version.published_versions,
        }),
        _ => Err(ServiceError::precondition(format!(
            "pipeline {} has never been published; publish it before running it",
            pipeline.address
        ))),
    }
}

/// Reads one pinned file at its exact version, whatever happened at HEAD since.
pub async fn read_pinned(services: &Services, key: &str, version: &str) -> Result<Object, ServiceError> {
    let key = ObjectKey::parse(key)?;
    let version = VersionId::new(version)?;
    Ok(services.store.get(&key, Some(&version)).await?)
}
