//! Creating pipelines: the row and its starter files, all or nothing.

use crate::concurrency::{self, IfMatch};
use crate::identity::Caller;
use crate::sharing::{self, Target};
use rat_dao::access;
use rat_dao::pipelines;
pub use rat_dao::pipelines::{DEFAULT_SORT, NewPipeline, PipelineFilter, PipelineUpdate};
use rat_dao::pipelines::{DeletedPipeline, Deletion};
use rat_domain::Permission;
use rat_domain::text::{MAX_DESCRIPTION_CHARS, check_text_len};
use rat_domain::{
    ObjectType, Page, PageRequest, Pipeline, PipelineId, PipelineRef, PipelineSortField, PipelineType,
    PublishedVersions, Sort,
};
use rat_versioning::{KeyPrefix, ObjectKey, list_all_latest};
use time::OffsetDateTime;

use crate::{ServiceError, Services};

/// The answer to a create: the stored pipeline and the keys of the files written.
#[derive(Debug, Clone)]
pub struct CreatedPipeline {
    /// The new row.
    pub pipeline: Pipeline,
    /// Full keys of the starter files, in the order written.
    pub files_created: Vec<String>,
}

/// The starter files of a new pipeline: its source file and `config.yaml`.
pub fn starter_files(address: &PipelineRef, pipeline_type: PipelineType) -> Vec<(&'static str, String)> {
    let source = match pipeline_type {
        PipelineType::Sql => format!(
            "-- {address}\n\
             -- The SELECT that builds this table. Refer to upstream tables as\n\
             -- {{{{ ref('namespace.layer.table') }}}}.\n\
             SELECT 1 AS id\n"
        ),
        PipelineType::Python => format!(
            "# {address}\n\
             # Build this table: assign a DataFrame or Arrow table to `result`.\n\
             result = None\n"
        ),
    };
    let config = format!(
        "# Configuration of {address}\n\
         description: \"\"\n\
         materialization: table\n"
    );
    vec![(pipeline_type.source_file(), source), ("config.yaml", config)]
}

/// Creates a pipeline: inserts the row and writes its starter files, and
/// commits only when both succeeded, so no half-created pipeline is ever
/// visible. Files left at the pipeline's prefix by a deleted pipeline of the
/// same name are deleted (their versions stay readable), so the new pipeline
/// starts from its starter files only.
#[tracing::instrument(skip(services, new), fields(pipeline = %new.address))]
pub async fn create_pipeline(
    services: &Services,
    caller: &Caller,
    new: NewPipeline,
) -> Result<CreatedPipeline, ServiceError> {
    check_text_len("description", &new.description, MAX_DESCRIPTION_CHARS)?;
    let mut client = services.pool.get().await?;
    // Creating in a namespace needs write on it.
    let doing = "creating a pipeline in";
    crate::namespaces::require_on(&client, caller, &new.address.namespace, Permission::Write, doing).await?;
    let transaction = client.transaction().await?;
    // The insert takes the name: a concurrent create of the same name waits
    // for this transaction and then fails as a duplicate.
    let pipeline = pipelines::create(&transaction, &new).await?;
    if let Some(owner) = &new.owner {
        access::set_owner(&transaction, ObjectType::Pipeline, pipeline.id.into(), owner).await?;
    }

    let prefix = pipeline.s3_path.clone();
    let files = starter_files(&new.address, new.pipeline_type);
    let mut written: Vec<ObjectKey> = Vec::with_capacity(files.len());
    let result: Result<(), ServiceError> = async {
        for (name, content) in &files {
            let key = prefix.join(name)?;
            services
                .store
                .put(&key, content.clone().into_bytes(), content_type(name))
                .await?;
            written.push(key);
        }
        for leftover in list_all_latest(services.store.as_ref(), &prefix).await? {
            if !written.contains(&leftover.key) {
                services.store.delete(&leftover.key).await?;
            }
        }
        Ok(())
    }
    .await;
    let result = match result {
        Ok(()) => transaction.commit().await.map_err(ServiceError::from),
        Err(e) => {
            drop(transaction);
            Err(e)
        }
    };
    if let Err(e) = result {
        // The row is rolled back (or was never committed); remove the
        // starter files we wrote, best effort: the store may be what failed.
        for key in &written {
            if let Err(cleanup) = services.store.delete(key).await {
                tracing::warn!(key = %key, error = %cleanup, "could not remove a starter file of a failed create");
            }
        }
        return Err(e);
    }
    Ok(CreatedPipeline {
        pipeline,
        files_created: written.into_iter().map(|k| k.as_str().to_owned()).collect(),
    })
}

/// The live pipeline at `address`, if `caller` may read it (`NotFound`
/// otherwise, as if it did not exist).
///
/// Concurrent calls share queries ([`crate::coalesce`]), the pipeline's and
/// the access rule's (`sharing::require_coalesced`): each answer is as
/// fresh as a query of its own, and under load one round trip answers many.
/// The access rule's inputs are read again only when they changed since they
/// were last read (`access_cache`). Admins (Community mode's user,
/// the operator's key) need no access query.
pub async fn get(services: &Services, caller: &Caller, address: &PipelineRef) -> Result<Pipeline, ServiceError> {
    let (pipeline, generation) = services
        .pipeline_reads
        .get(address.clone())
        .await?
        .ok_or(ServiceError::NotFound { entity: "pipeline" })?;
    sharing::require_coalesced(
        services,
        caller,
        &Target::of_pipeline(&pipeline),
        generation,
        Permission::Read,
        "reading",
    )
    .await?;
    Ok(pipeline)
}

/// Live pipelines matching `filter` that `caller` may read (filtered in
/// SQL, so the page and its total count only those), sorted, one page.
pub async fn list(
    services: &Services,
    caller: &Caller,
    filter: &PipelineFilter,
    sort: Sort<PipelineSortField>,
    page: PageRequest,
) -> Result<Page<Pipeline>, ServiceError> {
    let client = services.pool.get().await?;
    let mut filter = filter.clone();
    filter.readable_by = (!caller.admin).then(|| sharing::share_names(caller));
    Ok(pipelines::list(&client, &filter, sort, page).await?)
}

/// Requires `needed` of `caller` on the live pipeline at `address`
/// ([`sharing::require`]: `NotFound` when they may not read it, `Forbidden`
/// when they may read but not `needed`); admins pass without a query. Every
/// operation on a pipeline, or on what follows it, checks through here.
pub(crate) async fn require_on(
    client: &impl rat_dao::GenericClient,
    caller: &Caller,
    address: &PipelineRef,
    needed: Permission,
    doing: &str,
) -> Result<(), ServiceError> {
    if caller.admin {
        return Ok(());
    }
    let current = pipelines::get_by_ref(client, address).await?;
    require_on_loaded(client, caller, &current, needed, doing).await
}

/// [`require_on`] for a pipeline already read.
pub(crate) async fn require_on_loaded(
    client: &impl rat_dao::GenericClient,
    caller: &Caller,
    pipeline: &Pipeline,
    needed: Permission,
    doing: &str,
) -> Result<(), ServiceError> {
    if caller.admin {
        return Ok(());
    }
    sharing::require(client, caller, &Target::of_pipeline(pipeline), needed, doing).await
}

/// [`require_on`] for what belongs to the pipeline `id` (live or deleted):
/// a run, a schedule. When the caller may not read the pipeline the answer
/// is `NotFound` naming `entity`, exactly as for an unknown one.
pub(crate) async fn require_on_id(
    client: &impl rat_dao::GenericClient,
    caller: &Caller,
    id: rat_domain::PipelineId,
    needed: Permission,
    doing: &str,
    entity: &'static str,
) -> Result<(), ServiceError> {
    if caller.admin {
        return Ok(());
    }
    let pipeline = pipelines::get(client, id).await.map_err(|e| match e {
        rat_dao::DaoError::NotFound { .. } => ServiceError::NotFound { entity },
        other => other.into(),
    })?;
    match require_on_loaded(client, caller, &pipeline, needed, doing).await {
        Err(ServiceError::NotFound { .. }) => Err(ServiceError::NotFound { entity }),
        other => other,
    }
}

/// Most versions of history a pipeline may keep.
pub const MAX_MAX_VERSIONS: i32 = 10_000;

/// Applies `changes` (absent fields keep their value) on behalf of `caller`.
/// `max_versions` must be 1..=10,000; lowering it takes effect at the next
/// publish. A new `owner` is a transfer: `Forbidden` unless `caller` owns the
/// pipeline (or is an admin), as `POST /sharing/transfer` requires.
pub async fn update(
    services: &Services,
    caller: &Caller,
    address: &PipelineRef,
    changes: &PipelineUpdate,
) -> Result<Pipeline, ServiceError> {
    update_if(services, caller, address, changes, None).await
}

/// [`update`], applied only while the pipeline is at a version `if_match`
/// names ([`crate::concurrency`]; the version is [`Pipeline::updated_at`]):
/// `Stale` otherwise, and nothing changes.
pub async fn update_if(
    services: &Services,
    caller: &Caller,
    address: &PipelineRef,
    changes: &PipelineUpdate,
    if_match: Option<&IfMatch>,
) -> Result<Pipeline, ServiceError> {
    if let Some(max) = changes.max_versions
        && !(1..=MAX_MAX_VERSIONS).contains(&max)
    {
        return Err(ServiceError::invalid(format!(
            "max_versions must be between 1 and {MAX_MAX_VERSIONS}, got {max}"
        )));
    }
    if let Some(owner) = &changes.owner {
        rat_domain::parse_principal("owner", owner)?;
    }
    if let Some(description) = &changes.description {
        check_text_len("description", description, MAX_DESCRIPTION_CHARS)?;
    }
    let mut client = services.pool.get().await?;
    let transaction = client.transaction().await?;
    require_on(&transaction, caller, address, Permission::Write, "changing").await?;
    if if_match.is_some() {
        // Locked until the commit: no change lands between the check and ours.
        let current = pipelines::get_by_ref_for_update(&transaction, address).await?;
        concurrency::check(
            if_match,
            Some(&concurrency::row_version(current.updated_at)),
            "pipeline",
        )?;
    }
    if let Some(owner) = &changes.owner {
        let current = pipelines::get_by_ref_for_update(&transaction, address).await?;
        // A new owner is a transfer: the ownership row moves with the owner
        // column, so the two never drift.
        if current.owner.as_deref() != Some(owner.as_str()) {
            sharing::change_owner(&transaction, caller, &Target::of_pipeline(&current), owner).await?;
        }
    }
    let pipeline = pipelines::update(&transaction, address, changes).await?;
    transaction.commit().await?;
    Ok(pipeline)
}

/// Soft-deletes the live pipeline at `address`: its name is free again at
/// once; the reaper purges the row, its history and its files after
/// `soft_delete_purge_days`, until when [`restore`] brings it back. In the
/// same transaction its pending and running runs are cancelled (no runner
/// claims them any more, and one holding a run learns at its next
/// heartbeat) and its schedules and triggers disabled, so nothing of it
/// keeps running or firing. What the delete changed is recorded with the
/// row (who deleted it, the schedules and triggers it disabled, the HEAD
/// version of every draft file), which is why the file store is listed
/// here: a store that does not answer fails the delete, and nothing changes.
#[tracing::instrument(skip(services), fields(pipeline = %address))]
pub async fn delete(
    services: &Services,
    caller: &Caller,
    address: &PipelineRef,
    now: OffsetDateTime,
) -> Result<Pipeline, ServiceError> {
    delete_if(services, caller, address, None, now).await
}

/// [`delete`], done only while the pipeline is at a version `if_match`
/// names: `Stale` otherwise, and nothing changes.
#[tracing::instrument(skip(services, if_match), fields(pipeline = %address))]
pub async fn delete_if(
    services: &Services,
    caller: &Caller,
    address: &PipelineRef,
    if_match: Option<&IfMatch>,
    now: OffsetDateTime,
) -> Result<Pipeline, ServiceError> {
    let mut client = services.pool.get().await?;
    let transaction = client.transaction().await?;
    require_on(&transaction, caller, address, Permission::Own, "deleting").await?;
    if if_match.is_some() {
        let current = pipelines::get_by_ref_for_update(&transaction, address).await?;
        concurrency::check(
            if_match,
            Some(&concurrency::row_version(current.updated_at)),
            "pipeline",
        )?;
    }
    let deleted = pipelines::soft_delete(&transaction, address, now).await?;
    let cancelled =
        rat_dao::runs::cancel_active_of_pipeline(&transaction, deleted.id, "the pipeline was deleted", now).await?;
    let schedules = rat_dao::schedules::disable_for_pipeline(&transaction, deleted.id).await?;
    let triggers = rat_dao::triggers::disable_for_pipeline(&transaction, deleted.id).await?;
    // The row is locked by the soft delete: file writes through the api
    // (which read the live row) wait or fail, so this is the draft as deleted.
    let files: PublishedVersions = list_all_latest(services.store.as_ref(), &deleted.s3_path)
        .await?
        .into_iter()
        .map(|head| (head.key, head.version_id))
        .collect();
    let deletion = Deletion {
        deleted_by: Some(caller.user.clone()),
        schedules,
        triggers,
        files: Some(files),
    };
    pipelines::record_deletion(&transaction, deleted.id, &deletion).await?;
    transaction.commit().await?;
    tracing::info!(
        runs_cancelled = cancelled.len(),
        schedules = deletion.schedules.len(),
        triggers = deletion.triggers.len(),
        "pipeline deleted"
    );
    Ok(deleted)
}

/// A soft-deleted pipeline as its readers see it.
#[derive(Debug, Clone)]
pub struct DeletedView {
    /// The row (`deleted_at` is set).
    pub pipeline: Pipeline,
    /// Who deleted it (`None` for pipelines deleted before V20).
    pub deleted_by: Option<String>,
    /// When the reaper may purge it: `deleted_at` plus the system's
    /// `soft_delete_purge_days`. Until then it can be restored.
    pub purge_after: OffsetDateTime,
}

fn deleted_view(deleted: DeletedPipeline, purge_days: i64) -> DeletedView {
    let deleted_at = deleted.pipeline.deleted_at.unwrap_or(deleted.pipeline.updated_at);
    DeletedView {
        purge_after: deleted_at + time::Duration::days(purge_days),
        deleted_by: deleted.deletion.deleted_by,
        pipeline: deleted.pipeline,
    }
}

async fn purge_days(client: &impl rat_dao::GenericClient) -> Result<i64, ServiceError> {
    let (settings, problems) = rat_dao::settings::retention(client).await?;
    for problem in problems {
        tracing::warn!(problem = %problem, "stored retention setting is invalid");
    }
    Ok(settings.soft_delete_purge_days)
}

/// Soft-deleted pipelines (not yet purged) matching `filter` that `caller`
/// may read, sorted, one page.
pub async fn list_deleted(
    services: &Services,
    caller: &Caller,
    filter: &PipelineFilter,
    sort: Sort<PipelineSortField>,
    page: PageRequest,
) -> Result<Page<DeletedView>, ServiceError> {
    let client = services.pool.get().await?;
    let mut filter = filter.clone();
    filter.readable_by = (!caller.admin).then(|| sharing::share_names(caller));
    let days = purge_days(&client).await?;
    let page = pipelines::list_deleted(&client, &filter, sort, page).await?;
    Ok(Page {
        items: page.items.into_iter().map(|d| deleted_view(d, days)).collect(),
        total: page.total,
    })
}

/// The soft-deleted pipeline `id`, if `caller` may read it (`NotFound`
/// otherwise, and for a live, restored or purged one).
pub async fn get_deleted(services: &Services, caller: &Caller, id: PipelineId) -> Result<DeletedView, ServiceError> {
    let client = services.pool.get().await?;
    let deleted = pipelines::get_deleted(&client, id).await?;
    require_on_loaded(&client, caller, &deleted.pipeline, Permission::Read, "reading").await?;
    Ok(deleted_view(deleted, purge_days(&client).await?))
}

/// Brings back the soft-deleted pipeline at `address`: the one with `id`
/// when given (`NotFound` unless it is a deleted pipeline at `address`),
/// else the one deleted last there. See [`restore`].
pub async fn restore_at(
    services: &Services,
    caller: &Caller,
    address: &PipelineRef,
    id: Option<PipelineId>,
    now: OffsetDateTime,
) -> Result<Pipeline, ServiceError> {
    let id = match id {
        Some(id) => id,
        None => {
            let client = services.pool.get().await?;
            pipelines::last_deleted_at(&client, address)
                .await?
                .ok_or(ServiceError::NotFound { entity: "pipeline" })?
        }
    };
    restore(services, caller, id, Some(address), now).await
}

/// Brings the soft-deleted pipeline `id` back, as it was when it was
/// deleted: the row (its runs, quality tests, versions and shares never
/// left it), the schedules and triggers its delete disabled (enabled again,
/// each with its next slot after `now`), and its draft files (each file at
/// the version it had at the delete, written again as the new HEAD when it
/// changed since; files written at the prefix since are deleted, their
/// versions kept). Runs the delete cancelled stay cancelled.
///
/// Needs what deleting needs (own the pipeline, or admin). `NotFound` when
/// there is no such deleted pipeline (at `at`, when given), or its grace period
/// (`soft_delete_purge_days`) is over; `FailedPrecondition` (409) when a
/// live pipeline has its address, and then nothing changes. The row is made
/// live only when the files are restored: a failure leaves it deleted.
#[tracing::instrument(skip(services, caller))]
pub async fn restore(
    services: &Services,
    caller: &Caller,
    id: PipelineId,
    at: Option<&PipelineRef>,
    now: OffsetDateTime,
) -> Result<Pipeline, ServiceError> {
    let mut client = services.pool.get().await?;
    let days = purge_days(&client).await?;
    let transaction = client.transaction().await?;
    // Locked: a concurrent restore waits. The reaper purges only rows past
    // the grace period, which this refuses below.
    let deleted = pipelines::get_deleted_for_update(&transaction, id).await?;
    if at.is_some_and(|at| *at != deleted.pipeline.address) {
        return Err(ServiceError::NotFound { entity: "pipeline" });
    }
    require_on_loaded(&transaction, caller, &deleted.pipeline, Permission::Own, "restoring").await?;
    let view = deleted_view(deleted.clone(), days);
    if now >= view.purge_after {
        return Err(ServiceError::NotFound { entity: "pipeline" });
    }
    let address = deleted.pipeline.address.clone();
    // Taking the address back: a live pipeline there refuses it; a create
    // of that address running now waits for this transaction.
    let pipeline = match pipelines::undelete(&transaction, id).await {
        Ok(pipeline) => pipeline,
        Err(rat_dao::DaoError::Conflict { .. }) => {
            return Err(ServiceError::precondition(format!(
                "a live pipeline has taken the name {address} since this one was deleted; \
                 delete it before restoring this one"
            )));
        }
        Err(e) => return Err(e.into()),
    };
    let deletion = deleted.deletion;
    for schedule_id in rat_dao::schedules::enable_for_pipeline(&transaction, id, &deletion.schedules).await? {
        let schedule = rat_dao::schedules::get(&transaction, schedule_id).await?;
        let next = crate::schedules::next_run_at(&schedule.cron_expr, &schedule.timezone, true, now);
        let changes = rat_dao::schedules::ScheduleUpdate {
            next_run_at: Some(next),
            ..Default::default()
        };
        rat_dao::schedules::update(&transaction, schedule_id, &changes).await?;
        rat_dao::schedules::notify_changed(&transaction, schedule_id).await?;
    }
    for trigger_id in rat_dao::triggers::enable_for_pipeline(&transaction, id, &deletion.triggers).await? {
        let trigger = rat_dao::triggers::get(&transaction, trigger_id).await?;
        crate::triggers::reschedule(&transaction, &trigger, now).await?;
    }
    if let Some(files) = &deletion.files {
        restore_files(services, &pipeline.s3_path, files).await?;
    }
    transaction.commit().await?;
    tracing::info!(
        pipeline = %address,
        schedules = deletion.schedules.len(),
        triggers = deletion.triggers.len(),
        "pipeline restored"
    );
    Ok(pipeline)
}

/// Makes the files at `prefix` those of `files`, each at its version:
/// a file whose HEAD differs gets that version's bytes as a new HEAD, a
/// file not in `files` is deleted (a delete marker; its versions stay).
async fn restore_files(services: &Services, prefix: &KeyPrefix, files: &PublishedVersions) -> Result<(), ServiceError> {
    let store = services.store.as_ref();
    let current = list_all_latest(store, prefix).await?;
    for head in &current {
        if files.get(head.key.as_str()).is_none() {
            store.delete(&head.key).await?;
        }
    }
    for (key, version) in files.iter() {
        let unchanged = current.iter().any(|h| &h.key == key && &h.version_id == version);
        if unchanged {
            continue;
        }
        let old = store.get(key, Some(version)).await?;
        store.put(key, old.body, content_type(key.as_str())).await?;
    }
    Ok(())
}

/// The content type stored with a file, from its name.
pub fn content_type(name: &str) -> &'static str {
    match name.rsplit('.').next() {
        Some("sql") => "application/sql",
        Some("py") => "text/x-python",
        Some("yaml") | Some("yml") => "application/yaml",
        Some("json") => "application/json",
        Some("md") => "text/markdown",
        _ => "application/octet-stream",
    }
}
