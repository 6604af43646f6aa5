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
use rat_domain::{
    ObjectKey, Page, PageRequest, Pipeline, PipelineRef, PipelineVersion, PublishedVersions, VersionId, VersionNumber,
};
use rat_versioning::{Object, list_all_latest};
use time::OffsetDateTime;

use crate::identity::Caller;
use crate::pipelines::require_on_loaded;
use crate::{ServiceError, Services};
use rat_domain::Permission;

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
    pub from_version: VersionNumber,
    /// The new history entry re-pinning it.
    pub version: PipelineVersion,
    /// Whether HEAD differs from the re-pinned snapshot.
    pub draft_dirty: bool,
}

/// What a run of a pipeline executes: the published version and its pins.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunSnapshot {
    /// The published version number.
    pub version_number: VersionNumber,
    /// `{full key: version id}` of every file of that version.
    pub published_versions: PublishedVersions,
}

/// HEAD of the pipeline's directory as a pinned map.
async fn head_snapshot(services: &Services, pipeline: &Pipeline) -> Result<PublishedVersions, ServiceError> {
    let heads = list_all_latest(services.store.as_ref(), &pipeline.s3_path).await?;
    Ok(heads.into_iter().map(|head| (head.key, head.version_id)).collect())
}

/// Publishes the pipeline at `address`: pins HEAD of every file under its
/// prefix as the next version. `NotFound` for an unknown pipeline,
/// `FailedPrecondition` when it has no file, `Unavailable` when the store
/// fails or answers without version ids (nothing is recorded then).
#[tracing::instrument(skip(services, caller, message), fields(pipeline = %address))]
pub async fn publish(
    services: &Services,
    caller: &Caller,
    address: &PipelineRef,
    message: &str,
    now: OffsetDateTime,
) -> Result<Published, ServiceError> {
    check_text_len("message", message, MAX_MESSAGE_CHARS)?;
    let client = services.pool.get().await?;
    let before = pipelines::get_by_ref(&client, address).await?;
    require_on_loaded(&client, caller, &before, Permission::Write, "publishing").await?;
    drop(client);
    let snapshot = head_snapshot(services, &before).await?;
    if snapshot.is_empty() {
        return Err(ServiceError::precondition(format!(
            "pipeline {address} has no files to publish"
        )));
    }
    // The snapshot is HEAD as listed: the draft is clean unless something
    // touched the pipeline since.
    let (version, _) = record_version(services, "publish", &before, &snapshot, message, false, now).await?;
    tracing::info!(
        version = version.version_number.get(),
        files = snapshot.len(),
        "published"
    );
    Ok(Published { version })
}

/// Re-pins the snapshot of version `target` as a new version (git-revert
/// style: history is never rewritten, no file content is copied). The
/// message defaults to `Rollback to v{N}`. `InvalidInput` for a number below
/// 1, `NotFound` for an unknown or pruned version. When the store cannot be
/// listed the rollback still happens and `draft_dirty` is set (it may be).
#[tracing::instrument(skip(services, caller, message), fields(pipeline = %address))]
pub async fn rollback(
    services: &Services,
    caller: &Caller,
    address: &PipelineRef,
    target: i64,
    message: Option<&str>,
    now: OffsetDateTime,
) -> Result<RolledBack, ServiceError> {
    let target = VersionNumber::parse(target)?;
    if let Some(message) = message {
        check_text_len("message", message, MAX_MESSAGE_CHARS)?;
    }
    let client = services.pool.get().await?;
    let before = pipelines::get_by_ref(&client, address).await?;
    require_on_loaded(&client, caller, &before, Permission::Write, "rolling back").await?;
    let target_version = pipeline_versions::get(&client, before.id, target).await?;
    drop(client);
    let head = match head_snapshot(services, &before).await {
        Ok(head) => Some(head),
        Err(e) => {
            tracing::warn!(error = %e, "cannot list HEAD for a rollback; marking the draft dirty");
            None
        }
    };
    let pins = target_version.published_versions;
    let message = message
        .filter(|m| !m.trim().is_empty())
        .map_or_else(|| format!("Rollback to v{target}"), str::to_owned);
    let head_differs = head.as_ref() != Some(&pins);
    let (version, draft_dirty) =
        record_version(services, "rollback", &before, &pins, &message, head_differs, now).await?;
    tracing::info!(
        from = target.get(),
        version = version.version_number.get(),
        "rolled back"
    );
    Ok(RolledBack {
        from_version: target,
        version,
        draft_dirty,
    })
}

/// The one transaction of a publish or a rollback (`operation`): locks the pipeline `before`
/// was read from, records `pins` as its next version and its published
/// snapshot, and prunes history beyond `max_versions`. The draft is marked
/// dirty when `head_differs`, or when anything touched the pipeline since
/// `before` was read (a file write during the listing). Returns the new
/// version and whether the draft is dirty.
async fn record_version(
    services: &Services,
    operation: &str,
    before: &Pipeline,
    pins: &PublishedVersions,
    message: &str,
    head_differs: bool,
    now: OffsetDateTime,
) -> Result<(PipelineVersion, bool), ServiceError> {
    let mut client = services.pool.get().await?;
    let transaction = client.transaction().await?;
    let locked = pipelines::get_by_ref_for_update(&transaction, &before.address).await?;
    if locked.id != before.id {
        // Deleted and re-created meanwhile: what was read was the old one's.
        return Err(ServiceError::precondition(format!(
            "pipeline {} was replaced during the {operation}; retry",
            before.address
        )));
    }
    let draft_dirty = head_differs || locked.updated_at != before.updated_at;
    let version = pipeline_versions::insert_next(&transaction, locked.id, message, pins, now).await?;
    pipelines::set_published(&transaction, locked.id, pins, now, draft_dirty).await?;
    pipeline_versions::prune(&transaction, locked.id, locked.max_versions).await?;
    transaction.commit().await?;
    Ok((version, draft_dirty))
}

/// The pipeline's version history, newest first.
pub async fn list_versions(
    services: &Services,
    caller: &Caller,
    address: &PipelineRef,
    page: PageRequest,
) -> Result<Page<PipelineVersion>, ServiceError> {
    let client = services.pool.get().await?;
    let pipeline = pipelines::get_by_ref(&client, address).await?;
    require_on_loaded(&client, caller, &pipeline, Permission::Read, "reading").await?;
    Ok(pipeline_versions::list(&client, pipeline.id, page).await?)
}

/// One version of the pipeline's history. `InvalidInput` below 1, `NotFound`
/// for an unknown or pruned version.
pub async fn get_version(
    services: &Services,
    caller: &Caller,
    address: &PipelineRef,
    number: i64,
) -> Result<PipelineVersion, ServiceError> {
    let number = VersionNumber::parse(number)?;
    let client = services.pool.get().await?;
    let pipeline = pipelines::get_by_ref(&client, address).await?;
    require_on_loaded(&client, caller, &pipeline, Permission::Read, "reading").await?;
    Ok(pipeline_versions::get(&client, pipeline.id, number).await?)
}

/// What a run of `pipeline` executes now: the latest published version and
/// its pinned map (the rule is [`pipeline_versions::latest_runnable`]'s). `FailedPrecondition` for a pipeline never published.
pub async fn run_snapshot(
    client: &impl rat_dao::GenericClient,
    pipeline: &Pipeline,
) -> Result<RunSnapshot, ServiceError> {
    match pipeline_versions::latest_runnable(client, pipeline.id).await? {
        Some(version) => Ok(RunSnapshot {
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
