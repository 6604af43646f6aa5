//! The eight tasks of a pass (see the module above), each walking its
//! table in bounded batches through [`super::pacing`].

use rat_domain::{PipelineId, QualityTestId};
use std::collections::HashSet;
use std::time::Duration;

use rat_dao::{audit, landing, pipelines, reaping};
use rat_domain::{RetentionOverrides, RetentionSettings};
use rat_versioning::{KeyPrefix, ObjectKey, ObjectVersion, StoreError, VersionId};
use time::OffsetDateTime;
use tokio::sync::watch;
use uuid::Uuid;

use crate::{ServiceError, Services};

use super::PassPolicy;
use super::pacing::{batches, check, walk};

pub(super) fn days(n: i64) -> time::Duration {
    time::Duration::days(n)
}

/// The pipelines with overrides, parsed (invalid entries are ignored and logged).
pub(super) async fn overrides(services: &Services) -> Result<Vec<(PipelineId, RetentionOverrides)>, ServiceError> {
    let client = services.pool.get().await?;
    let rows = reaping::pipelines_with_overrides(&client, 10_000).await?;
    Ok(rows
        .into_iter()
        .map(|(id, config)| {
            let (parsed, problems) = RetentionOverrides::from_stored(Some(&config));
            for problem in problems {
                tracing::warn!(pipeline = %id, problem, "ignoring an invalid retention override");
            }
            (id, parsed)
        })
        .filter(|(_, parsed)| parsed.iter().next().is_some())
        .collect())
}

/// The override key of the stuck-run timeout.
pub(super) const STUCK_RUN_TIMEOUT: &str = "stuck_run_timeout_minutes";

pub(super) fn overridden(overrides: &[(PipelineId, RetentionOverrides)], key: &str) -> Vec<PipelineId> {
    overrides
        .iter()
        .filter(|(_, o)| o.iter().any(|(k, _)| k == key))
        .map(|(id, _)| *id)
        .collect()
}

pub(super) async fn prune_runs(
    services: &Services,
    system: &RetentionSettings,
    overrides: &[(PipelineId, RetentionOverrides)],
    now: OffsetDateTime,
    policy: &PassPolicy,
    lost: &watch::Receiver<bool>,
) -> Result<u64, ServiceError> {
    let special: Vec<PipelineId> = overrides.iter().map(|(id, _)| *id).collect();
    let cutoff = now - days(system.runs_max_age_days);
    // Age first, globally, along idx_runs_created_at.
    let mut total = walk(policy, lost, |from, size| {
        let special = &special;
        async move {
            let client = services.pool.get().await?;
            Ok(reaping::delete_runs_older_than(&client, cutoff, special, from, size).await?)
        }
    })
    .await?;
    // Then the per-pipeline count, for pipelines above it.
    let crowded = {
        let client = services.pool.get().await?;
        reaping::pipelines_with_more_runs_than(&client, system.runs_max_per_pipeline).await?
    };
    let mut plans: Vec<(PipelineId, i64, OffsetDateTime)> = crowded
        .into_iter()
        .filter(|id| !special.contains(id))
        .map(|id| (id, system.runs_max_per_pipeline, cutoff))
        .collect();
    for (id, own) in overrides {
        let effective = system.with_overrides(own);
        plans.push((
            *id,
            effective.runs_max_per_pipeline,
            now - days(effective.runs_max_age_days),
        ));
    }
    for (pipeline_id, keep, cutoff) in plans {
        total += batches(policy, lost, |size| async move {
            let client = services.pool.get().await?;
            Ok(reaping::delete_pipeline_runs(&client, pipeline_id, keep, cutoff, size).await?)
        })
        .await?;
    }
    Ok(total)
}

pub(super) async fn prune_logs(
    services: &Services,
    system: &RetentionSettings,
    overrides: &[(PipelineId, RetentionOverrides)],
    now: OffsetDateTime,
    policy: &PassPolicy,
    lost: &watch::Receiver<bool>,
) -> Result<u64, ServiceError> {
    let special = overridden(overrides, "logs_max_age_days");
    let cutoff = now - days(system.logs_max_age_days);
    let excluded = &special;
    let mut total = batches(policy, lost, |size| async move {
        let client = services.pool.get().await?;
        Ok(reaping::clear_logs_older_than(&client, cutoff, excluded, size).await?)
    })
    .await?;
    for (pipeline_id, own) in overrides.iter().filter(|(id, _)| special.contains(id)) {
        let cutoff = now - days(system.with_overrides(own).logs_max_age_days);
        total += batches(policy, lost, |size| async move {
            let client = services.pool.get().await?;
            Ok(reaping::clear_pipeline_logs_older_than(&client, *pipeline_id, cutoff, size).await?)
        })
        .await?;
    }
    Ok(total)
}

pub(super) async fn prune_quality(
    services: &Services,
    system: &RetentionSettings,
    overrides: &[(PipelineId, RetentionOverrides)],
    policy: &PassPolicy,
    lost: &watch::Receiver<bool>,
) -> Result<u64, ServiceError> {
    let special = overridden(overrides, "quality_results_max_per_test");
    let mut plans: Vec<(QualityTestId, i64)> = {
        let client = services.pool.get().await?;
        reaping::tests_with_more_results_than(&client, system.quality_results_max_per_test, &special)
            .await?
            .into_iter()
            .map(|test| (test, system.quality_results_max_per_test))
            .collect()
    };
    for (pipeline_id, own) in overrides.iter().filter(|(id, _)| special.contains(id)) {
        let keep = system.with_overrides(own).quality_results_max_per_test;
        let client = services.pool.get().await?;
        for test in reaping::pipeline_tests_with_more_results_than(&client, *pipeline_id, keep).await? {
            plans.push((test, keep));
        }
    }
    let mut total = 0;
    for (test_id, keep) in plans {
        total += batches(policy, lost, |size| async move {
            let client = services.pool.get().await?;
            Ok(reaping::delete_test_results_beyond(&client, test_id, keep, size).await?)
        })
        .await?;
    }
    Ok(total)
}

pub(super) async fn fail_stuck(
    services: &Services,
    system: &RetentionSettings,
    overrides: &[(PipelineId, RetentionOverrides)],
    now: OffsetDateTime,
    policy: &PassPolicy,
    lost: &watch::Receiver<bool>,
) -> Result<u64, ServiceError> {
    let pending_cutoff = now - policy.pending_claim_timeout;
    // The pipelines' own stuck timeouts, read like every other override.
    let special = overridden(overrides, STUCK_RUN_TIMEOUT);
    let own_timeouts: Vec<(PipelineId, i64)> = overrides
        .iter()
        .filter(|(id, _)| special.contains(id))
        .map(|(id, own)| (*id, system.with_overrides(own).stuck_run_timeout_minutes))
        .collect();
    let own_timeouts = &own_timeouts;
    batches(policy, lost, |size| async move {
        let client = services.pool.get().await?;
        let failed = reaping::fail_stuck_runs(
            &client,
            now,
            system.stuck_run_timeout_minutes,
            own_timeouts,
            pending_cutoff,
            size,
        )
        .await?;
        for run in &failed {
            tracing::info!(run = %run.run_id, reason = %run.reason, "failed a run that could not finish");
        }
        Ok(failed.len() as u64)
    })
    .await
}

/// Deletes `versions` from the store, `concurrency` at a time, retrying each
/// up to `attempts` times; the first lasting failure stops the task.
pub(super) async fn delete_versions(
    services: &Services,
    versions: Vec<(ObjectKey, VersionId)>,
    policy: &PassPolicy,
) -> Result<u64, ServiceError> {
    let attempts = policy.store_attempts.max(1);
    let deleted = crate::concurrent::try_map_bounded(versions, policy.store_concurrency, |(key, version)| async move {
        let mut delay = Duration::from_millis(100);
        for attempt in 1..=attempts {
            match services.store.delete_version(&key, &version).await {
                Ok(()) => return Ok(1u64),
                Err(e @ StoreError::Unavailable { .. }) if attempt < attempts => {
                    tracing::warn!(key = %key, error = %e, attempt, "object deletion failed; retrying");
                    tokio::time::sleep(delay).await;
                    delay *= 2;
                }
                Err(e) => return Err(ServiceError::from(e)),
            }
        }
        unreachable!("the last attempt returns")
    })
    .await?;
    Ok(deleted.iter().sum())
}

/// Every version (and delete marker) under `prefix`.
pub(super) async fn all_versions(services: &Services, prefix: &KeyPrefix) -> Result<Vec<ObjectVersion>, ServiceError> {
    Ok(rat_versioning::list_all_versions(services.store.as_ref(), prefix).await?)
}

pub(super) async fn purge_pipelines(
    services: &Services,
    system: &RetentionSettings,
    now: OffsetDateTime,
    policy: &PassPolicy,
    lost: &watch::Receiver<bool>,
) -> Result<u64, ServiceError> {
    let cutoff = now - days(system.soft_delete_purge_days);
    let mut purged = 0;
    for _ in 0..policy.max_batches_per_task {
        check(lost)?;
        let doomed = {
            let client = services.pool.get().await?;
            pipelines::soft_deleted_before(&client, cutoff, 50).await?
        };
        if doomed.is_empty() {
            break;
        }
        for pipeline in &doomed {
            check(lost)?;
            let prefix = pipeline.s3_path.clone();
            // A live pipeline of the same name shares the prefix: its files
            // (everything it still needs, and everything written since it
            // was created) must survive the purge of its predecessor.
            let keep: Option<(HashSet<(String, String)>, OffsetDateTime)> = {
                let client = services.pool.get().await?;
                match pipelines::get_by_ref(&client, &pipeline.address).await {
                    Ok(live) => Some((reaping::pinned_versions(&client, live.id).await?, live.created_at)),
                    Err(rat_dao::DaoError::NotFound { .. }) => None,
                    Err(e) => return Err(e.into()),
                }
            };
            // Other deleted pipelines of the same name share it too, and may
            // still be restored: what they pin, and the draft their delete
            // recorded, must survive as well.
            let restorable = restorable_versions(services, pipeline).await?;
            let versions: Vec<(ObjectKey, VersionId)> = all_versions(services, &prefix)
                .await?
                .into_iter()
                .filter(|v| !restorable.contains(&(v.key.to_string(), v.version_id.to_string())))
                .filter(|v| match &keep {
                    None => true,
                    Some((pinned, live_since)) => {
                        !v.is_latest
                            && v.last_modified < *live_since
                            && !pinned.contains(&(v.key.to_string(), v.version_id.to_string()))
                    }
                })
                .map(|v| (v.key, v.version_id))
                .collect();
            let objects = delete_versions(services, versions, policy).await?;
            // Objects first, then the row: an interrupted purge leaves a row
            // to retry, never a row pointing at deleted files.
            let client = services.pool.get().await?;
            pipelines::purge(&client, pipeline.id).await?;
            purged += 1;
            tracing::info!(pipeline = %pipeline.address, id = %pipeline.id, objects, "purged a deleted pipeline");
        }
        if doomed.len() < 50 {
            break;
        }
    }
    Ok(purged)
}

/// Most other deleted pipelines of one name whose versions a purge keeps.
const MAX_NAMESAKES: i64 = 1_000;

/// The `(key, version id)`s the other soft-deleted pipelines at `doomed`'s
/// address need to be restored as they were: what they pin (history,
/// snapshot, active runs) and the draft their delete recorded.
async fn restorable_versions(
    services: &Services,
    doomed: &rat_domain::Pipeline,
) -> Result<HashSet<(String, String)>, ServiceError> {
    let client = services.pool.get().await?;
    let mut keep = HashSet::new();
    for other in pipelines::deleted_at_address(&client, &doomed.address, MAX_NAMESAKES).await? {
        if other.pipeline.id == doomed.id {
            continue;
        }
        keep.extend(reaping::pinned_versions(&client, other.pipeline.id).await?);
        if let Some(files) = &other.deletion.files {
            keep.extend(files.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        }
    }
    Ok(keep)
}

pub(super) async fn purge_landing_files(
    services: &Services,
    now: OffsetDateTime,
    policy: &PassPolicy,
    lost: &watch::Receiver<bool>,
) -> Result<u64, ServiceError> {
    let zones = {
        let client = services.pool.get().await?;
        reaping::auto_purge_zones(&client, 10_000).await?
    };
    let mut cleaned = 0;
    for (zone_id, max_age) in zones {
        let age = max_age.map_or(policy.default_processed_max_age_days, i64::from);
        let cutoff = now - days(age);
        for _ in 0..policy.max_batches_per_task {
            check(lost)?;
            let files = {
                let client = services.pool.get().await?;
                landing::files_older_than(&client, zone_id, cutoff, policy.batch_size.min(500)).await?
            };
            if files.is_empty() {
                break;
            }
            let keys: HashSet<&ObjectKey> = files.iter().map(|f| &f.s3_path).collect();
            let mut versions = Vec::new();
            let prefixes: HashSet<KeyPrefix> = keys.iter().map(|k| k.parent()).collect();
            for prefix in prefixes {
                versions.extend(
                    all_versions(services, &prefix)
                        .await?
                        .into_iter()
                        .filter(|v| keys.contains(&v.key))
                        .map(|v| (v.key, v.version_id)),
                );
            }
            delete_versions(services, versions, policy).await?;
            let ids: Vec<Uuid> = files.iter().map(|f| f.id).collect();
            let client = services.pool.get().await?;
            cleaned += reaping::delete_landing_files(&client, &ids).await?;
            if (files.len() as i64) < policy.batch_size.min(500) {
                break;
            }
        }
    }
    Ok(cleaned)
}

pub(super) async fn prune_audit(
    services: &Services,
    system: &RetentionSettings,
    now: OffsetDateTime,
    policy: &PassPolicy,
    lost: &watch::Receiver<bool>,
) -> Result<u64, ServiceError> {
    let cutoff = now - days(system.audit_log_max_age_days);
    walk(policy, lost, |from, size| async move {
        let client = services.pool.get().await?;
        Ok(audit::delete_older_than(&client, cutoff, from, size).await?)
    })
    .await
}

/// Merge failures reported longer ago than `audit_log_max_age_days` (they
/// are kept as long as the audit trail), in batches, oldest first.
pub(super) async fn prune_failed_merges(
    services: &Services,
    system: &RetentionSettings,
    now: OffsetDateTime,
    policy: &PassPolicy,
    lost: &watch::Receiver<bool>,
) -> Result<u64, ServiceError> {
    let cutoff = now - days(system.audit_log_max_age_days);
    batches(policy, lost, |size| async move {
        let client = services.pool.get().await?;
        Ok(rat_dao::failed_merges::delete_older_than(&client, cutoff, size).await?)
    })
    .await
}

/// How long a branch whose merge failed is kept for a person to inspect.
pub const FAILED_MERGE_KEEP: time::Duration = time::Duration::days(7);

/// The run a branch belongs to: `run-{uuid}`.
fn run_of_branch(name: &str) -> Option<rat_domain::RunId> {
    name.strip_prefix("run-")?.parse().ok()
}

/// Orphan Nessie branches: `run-{id}` branches whose run is finished or
/// gone, or pending for longer than `nessie_orphan_branch_max_age_hours`,
/// except those whose merge failed in the last 7 days. Each is deleted at
/// the hash it was listed with: one that moved since (409) is left alone.
/// Nessie not answering fails the task (the others go on).
pub(super) async fn clean_branches(
    services: &Services,
    nessie: &crate::nessie::NessieClient,
    system: &RetentionSettings,
    now: OffsetDateTime,
    lost: &watch::Receiver<bool>,
) -> Result<u64, ServiceError> {
    use rat_domain::RunStatus;
    let unavailable = |e: crate::nessie::NessieError| ServiceError::Unavailable {
        message: "the Nessie catalog is unavailable".to_owned(),
        source: Some(Box::new(e)),
    };
    let branches: Vec<(rat_domain::RunId, String, String)> = nessie
        .references()
        .await
        .map_err(unavailable)?
        .into_iter()
        .filter(|r| r.kind.eq_ignore_ascii_case("BRANCH"))
        .filter_map(|r| Some((run_of_branch(&r.name)?, r.name, r.hash?)))
        .collect();
    let pending_cutoff = now - time::Duration::hours(system.nessie_orphan_branch_max_age_hours);
    let mut cleaned = 0;
    for chunk in
        branches.chunks(rat_dao::runs::MAX_STATES_PER_QUERY.min(rat_dao::failed_merges::MAX_BRANCHES_PER_QUERY))
    {
        check(lost)?;
        let (states, kept) = {
            let client = services.pool.get().await?;
            let ids: Vec<rat_domain::RunId> = chunk.iter().map(|(id, _, _)| *id).collect();
            let names: Vec<String> = chunk.iter().map(|(_, name, _)| name.clone()).collect();
            let states = rat_dao::runs::states(&client, &ids).await?;
            let kept: HashSet<String> =
                rat_dao::failed_merges::branches_failed_since(&client, &names, now - FAILED_MERGE_KEEP)
                    .await?
                    .into_iter()
                    .collect();
            (states, kept)
        };
        for (run_id, name, hash) in chunk {
            if kept.contains(name) {
                tracing::debug!(branch = %name, "branch kept: its merge failed in the last 7 days");
                continue;
            }
            let orphan = match states.iter().find(|(id, _, _)| id == run_id) {
                None => true,
                Some((_, status, created_at)) => match status {
                    RunStatus::Success | RunStatus::Failed | RunStatus::Cancelled => true,
                    RunStatus::Pending => *created_at < pending_cutoff,
                    RunStatus::Running => false,
                },
            };
            if !orphan {
                continue;
            }
            match nessie.delete_branch(name, hash).await.map_err(unavailable)? {
                crate::nessie::Deleted::Yes => {
                    cleaned += 1;
                    tracing::info!(branch = %name, "orphan branch deleted");
                }
                crate::nessie::Deleted::Moved => {
                    tracing::info!(branch = %name, "orphan branch moved since it was listed; left for the next pass");
                }
                crate::nessie::Deleted::Gone => {}
            }
        }
    }
    Ok(cleaned)
}
