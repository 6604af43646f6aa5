//! Landing zones, their files (in the store), samples and lifecycle.
//!
//! A zone's objects live under `{ns}/landing/{zone}/`: uploaded files directly
//! below it (`YYYYMMDD_HHMMSS_<token>_<name>`, a key of their own per upload,
//! one `landing_files` row each, pinning the version written) and curated
//! sample files under `_samples/` (objects only, no rows). The row and the
//! object of an upload are written object first, so a row never points at
//! nothing; a failed row write removes the version again. Uploads arrive as
//! streams and are never held whole in memory.

use rat_dao::landing::{self, NewLandingFile};
pub use rat_dao::landing::{NewLandingZone, ZoneUpdate};
use rat_domain::text::{MAX_DESCRIPTION_CHARS, MAX_SCHEMA_NOTE_CHARS, check_text_len};
use rat_domain::{Cursor, LandingFile, LandingZone, LandingZoneSummary, NamespaceName, Page, PageRequest, ZoneName};
use rat_versioning::{ByteSource, KeyPrefix, ObjectKey, list_all_latest};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::concurrency::{self, IfMatch};
use crate::files::delete_all_under;
use crate::identity::Caller;
use crate::paging::{self, CursorPage};
use crate::sharing::{self, Target};
use crate::{ServiceError, Services, firing};
use rat_dao::access;
use rat_domain::{ObjectType, Permission};

/// The folder of a zone's sample files, below the zone's prefix.
pub const SAMPLES_DIR: &str = "_samples";

/// Longest stored file name (before the upload's timestamp prefix).
pub const MAX_FILENAME_LEN: usize = 255;

/// The name an uploaded file is stored under, from the name the client gave:
/// its last path segment (`/` and `\` both separate directories), with every
/// character outside `[A-Za-z0-9._-]` replaced by `_`, so it is always one
/// valid key segment. Empty names, `.` and `..` are refused.
pub fn stored_basename(uploaded: &str) -> Result<String, ServiceError> {
    let base = original_basename(uploaded);
    if base.is_empty() || base == "." || base == ".." {
        return Err(ServiceError::invalid(format!(
            "invalid file name {uploaded:?}: it must name a file"
        )));
    }
    let reduced: String = base
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '_'
            }
        })
        .collect();
    if reduced.len() > MAX_FILENAME_LEN {
        return Err(ServiceError::invalid(format!(
            "file name must be at most {MAX_FILENAME_LEN} characters"
        )));
    }
    Ok(reduced)
}

/// The last path segment of the name a client gave a file (`/` and `\` both
/// separate directories), unchanged otherwise: what `file_pattern` triggers
/// match, since their globs are written against the names people give files.
pub fn original_basename(uploaded: &str) -> &str {
    uploaded.rsplit(['/', '\\']).next().unwrap_or(uploaded)
}

/// `basename` prefixed with the upload time, `YYYYMMDD_HHMMSS_` in UTC, and
/// `token` (8 hex digits), so repeated uploads of one file keep their history
/// side by side, and two uploads of one name in the same second never share
/// a key (the first would be silently replaced).
pub fn stored_name(basename: &str, now: OffsetDateTime, token: u32) -> String {
    let t = now.to_offset(time::UtcOffset::UTC);
    format!(
        "{:04}{:02}{:02}_{:02}{:02}{:02}_{token:08x}_{basename}",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

fn zone_prefix(namespace: &NamespaceName, zone: &ZoneName) -> Result<KeyPrefix, ServiceError> {
    Ok(LandingZone::s3_prefix(namespace, zone))
}

fn samples_prefix(namespace: &NamespaceName, zone: &ZoneName) -> Result<KeyPrefix, ServiceError> {
    Ok(KeyPrefix::parse(&format!(
        "{}{SAMPLES_DIR}/",
        LandingZone::s3_prefix(namespace, zone)
    ))?)
}

/// Zones (of one namespace, or of all) by namespace then name, each with its
/// file count and total size, one page, with the total.
/// Only zones `caller` may read are listed and counted (filtered in SQL).
pub async fn list_zones(
    services: &Services,
    caller: &Caller,
    namespace: Option<&NamespaceName>,
    page: PageRequest,
) -> Result<Page<LandingZoneSummary>, ServiceError> {
    let client = services.pool.get().await?;
    let readable = (!caller.admin).then(|| sharing::share_names(caller));
    Ok(landing::list(&client, namespace, readable.as_ref(), page).await?)
}

/// The zone `ns/name` without its file statistics, when `caller` has
/// `needed` on it ([`sharing::require`]: `NotFound` when there is none or
/// they may not read it, `Forbidden` when they may read but not `needed`).
/// Every operation on a zone or its files checks through here.
pub(crate) async fn zone_for(
    client: &impl rat_dao::GenericClient,
    caller: &Caller,
    namespace: &NamespaceName,
    name: &ZoneName,
    needed: Permission,
    doing: &str,
) -> Result<LandingZone, ServiceError> {
    let zone = landing::get_without_stats(client, namespace, name).await?;
    sharing::require(client, caller, &Target::of_zone(&zone), needed, doing).await?;
    Ok(zone)
}

/// Creates a zone. `NotFound` for an unknown namespace, `AlreadyExists` for a
/// taken name. Objects left under the zone's prefix by an earlier zone of the
/// same name (deleting a namespace leaves its objects) are deleted before the
/// row commits, so the new zone starts empty: pipelines read a zone by its
/// prefix and would otherwise ingest the old files.
///
/// Creating needs write on the namespace; the zone's owner is `new.owner`,
/// else the caller, and its ownership row is written in the same
/// transaction.
#[tracing::instrument(skip(services, caller, new), fields(zone = %format!("{}/{}", new.namespace, new.name)))]
pub async fn create_zone(
    services: &Services,
    caller: &Caller,
    mut new: NewLandingZone,
) -> Result<LandingZoneSummary, ServiceError> {
    if let Some(owner) = &new.owner {
        rat_domain::parse_principal("owner", owner)?;
    }
    let owner = new.owner.get_or_insert_with(|| caller.user.clone()).clone();
    check_text_len("description", &new.description, MAX_DESCRIPTION_CHARS)?;
    check_text_len("expected_schema", &new.expected_schema, MAX_SCHEMA_NOTE_CHARS)?;
    let mut client = services.pool.get().await?;
    let transaction = client.transaction().await?;
    let doing = "creating a landing zone in";
    crate::namespaces::require_on(&transaction, caller, &new.namespace, Permission::Write, doing).await?;
    // The insert takes the name: a concurrent create of the same zone waits
    // for this transaction, then fails as a duplicate.
    let zone = landing::create(&transaction, &new).await?;
    access::set_owner(&transaction, ObjectType::LandingZone, zone.id.into(), &owner).await?;
    let leftovers = delete_all_under(&services.store, &zone_prefix(&zone.namespace, &zone.name)?).await?;
    if leftovers > 0 {
        tracing::info!(leftovers, "deleted objects left by an earlier zone of the same name");
    }
    transaction.commit().await?;
    Ok(LandingZoneSummary {
        zone,
        file_count: 0,
        total_bytes: 0,
    })
}

/// The zone `ns/name` with its file statistics (read on it needed).
pub async fn get_zone(
    services: &Services,
    caller: &Caller,
    namespace: &NamespaceName,
    name: &ZoneName,
) -> Result<LandingZoneSummary, ServiceError> {
    let client = services.pool.get().await?;
    if !caller.admin {
        zone_for(&client, caller, namespace, name, Permission::Read, "reading").await?;
    }
    Ok(landing::get(&client, namespace, name).await?)
}

/// [`zone_for`] on a connection of its own, held only for the check.
async fn existing_zone(
    services: &Services,
    caller: &Caller,
    namespace: &NamespaceName,
    name: &ZoneName,
    needed: Permission,
    doing: &str,
) -> Result<LandingZone, ServiceError> {
    let client = services.pool.get().await?;
    zone_for(&client, caller, namespace, name, needed, doing).await
}

/// Changes a zone's description, owner or expected schema (absent fields keep
/// their value) on behalf of `caller`, who needs write on it. A new owner is
/// a transfer: refused (`Forbidden`) unless the caller owns the zone (or is
/// an admin), as for pipelines and tables.
pub async fn update_zone(
    services: &Services,
    caller: &Caller,
    namespace: &NamespaceName,
    name: &ZoneName,
    changes: &ZoneUpdate,
) -> Result<LandingZoneSummary, ServiceError> {
    update_zone_if(services, caller, namespace, name, changes, None).await
}

/// [`update_zone`], applied only while the zone is at a version `if_match`
/// names (its `updated_at`): `Stale` otherwise, and nothing changes.
pub async fn update_zone_if(
    services: &Services,
    caller: &Caller,
    namespace: &NamespaceName,
    name: &ZoneName,
    changes: &ZoneUpdate,
    if_match: Option<&IfMatch>,
) -> Result<LandingZoneSummary, ServiceError> {
    if let Some(owner) = &changes.owner {
        rat_domain::parse_principal("owner", owner)?;
    }
    if let Some(description) = &changes.description {
        check_text_len("description", description, MAX_DESCRIPTION_CHARS)?;
    }
    if let Some(schema) = &changes.expected_schema {
        check_text_len("expected_schema", schema, MAX_SCHEMA_NOTE_CHARS)?;
    }
    let mut client = services.pool.get().await?;
    let transaction = client.transaction().await?;
    let zone = landing::get_without_stats_for_update(&transaction, namespace, name).await?;
    let target = Target::of_zone(&zone);
    sharing::require(&transaction, caller, &target, Permission::Write, "changing").await?;
    concurrency::check(
        if_match,
        Some(&concurrency::row_version(zone.updated_at)),
        "landing zone",
    )?;
    if let Some(owner) = &changes.owner
        && zone.owner.as_deref() != Some(owner.as_str())
    {
        sharing::change_owner(&transaction, caller, &target, owner).await?;
    }
    let updated = landing::update(&transaction, namespace, name, changes).await?;
    transaction.commit().await?;
    Ok(updated)
}

/// Deletes a zone, its file rows, and every object under its prefix (files
/// and samples). The objects are deleted while the row deletion is still
/// uncommitted: a store failure rolls the rows back and the request can be
/// retried, so a successful answer never leaves objects behind. Returns the
/// deleted zone.
/// Ownership of the zone needed.
#[tracing::instrument(skip(services, caller))]
pub async fn delete_zone(
    services: &Services,
    caller: &Caller,
    namespace: &NamespaceName,
    name: &ZoneName,
) -> Result<LandingZone, ServiceError> {
    delete_zone_if(services, caller, namespace, name, None).await
}

/// [`delete_zone`], done only while the zone is at a version `if_match`
/// names: `Stale` otherwise, and nothing is deleted.
#[tracing::instrument(skip(services, caller, if_match))]
pub async fn delete_zone_if(
    services: &Services,
    caller: &Caller,
    namespace: &NamespaceName,
    name: &ZoneName,
    if_match: Option<&IfMatch>,
) -> Result<LandingZone, ServiceError> {
    let mut client = services.pool.get().await?;
    let transaction = client.transaction().await?;
    let zone = zone_for(&transaction, caller, namespace, name, Permission::Own, "deleting").await?;
    if if_match.is_some() {
        let locked = landing::get_without_stats_for_update(&transaction, namespace, name).await?;
        concurrency::check(
            if_match,
            Some(&concurrency::row_version(locked.updated_at)),
            "landing zone",
        )?;
    }
    // Deleting the row locks it until the commit: an upload racing with this
    // delete blocks on its file row's foreign key, then fails and removes the
    // object it wrote.
    landing::delete(&transaction, namespace, name).await?;
    delete_all_under(&services.store, &zone_prefix(namespace, name)?).await?;
    transaction.commit().await?;
    Ok(zone)
}

/// The scope of a zone's file cursors.
const FILE_CURSOR_SCOPE: &str = "landing-files:-uploaded_at";

/// The zone's files, newest first, one page, with the total and the cursor
/// of the next page; after the file `cursor` names when given (read on the
/// zone needed).
pub async fn list_files(
    services: &Services,
    caller: &Caller,
    namespace: &NamespaceName,
    name: &ZoneName,
    page: PageRequest,
    cursor: Option<&str>,
) -> Result<CursorPage<LandingFile>, ServiceError> {
    let after = paging::decode(Some(FILE_CURSOR_SCOPE), cursor)?;
    let client = services.pool.get().await?;
    let zone = zone_for(&client, caller, namespace, name, Permission::Read, "reading").await?;
    let listed = landing::list_files(&client, zone.id, page, after).await?;
    Ok(paging::page(listed, Some(FILE_CURSOR_SCOPE), |file| Cursor {
        at: file.uploaded_at,
        id: file.id,
    }))
}

/// A file to store in a zone (its content comes as a stream beside it).
#[derive(Debug, Clone)]
pub struct Upload {
    /// The name to store it under, from [`stored_basename`]; an upload to the
    /// zone's files gets the [`stored_name`] prefix too.
    pub basename: String,
    /// The name the client gave, reduced to its last path segment only
    /// ([`original_basename`]); `file_pattern` triggers match it.
    pub original_name: String,
    /// MIME type as uploaded (at most 128 characters).
    pub content_type: String,
}

/// Longest stored content type (`landing_files.content_type`).
pub const MAX_CONTENT_TYPE_LEN: usize = 128;

fn checked_content_type(content_type: &str) -> Result<(), ServiceError> {
    if content_type.len() > MAX_CONTENT_TYPE_LEN || content_type.chars().any(char::is_control) {
        return Err(ServiceError::invalid(format!(
            "content type must be at most {MAX_CONTENT_TYPE_LEN} printable characters"
        )));
    }
    Ok(())
}

/// Stores an uploaded file in the zone as
/// `{ns}/landing/{zone}/YYYYMMDD_HHMMSS_<token>_<name>` and records it (with
/// the version written); returns the file row. The object is written first,
/// from `body` as it arrives, with no database connection held meanwhile;
/// then one transaction records the row and fires the zone's triggers
/// (`crate::firing::fire_upload`: its `landing_zone_upload` triggers, and its
/// `file_pattern` triggers whose glob matches `upload.original_name`), so the
/// runs exist if and only if the file is recorded. When that transaction
/// fails (the zone was deleted meanwhile, the database failed) the version
/// written is removed again. A trigger that cannot fire never fails the
/// upload. Write on the zone needed.
#[tracing::instrument(skip(services, caller, upload, body))]
pub async fn upload_file(
    services: &Services,
    caller: &Caller,
    namespace: &NamespaceName,
    name: &ZoneName,
    upload: Upload,
    body: ByteSource<'_>,
    now: OffsetDateTime,
) -> Result<LandingFile, ServiceError> {
    checked_content_type(&upload.content_type)?;
    let zone = existing_zone(services, caller, namespace, name, Permission::Write, "uploading to").await?;
    let filename = stored_name(&upload.basename, now, rand::random());
    let key = zone_prefix(namespace, name)?.join(&filename)?;
    let written = services.store.put_stream(&key, body, &upload.content_type).await?;
    let size_bytes = i64::try_from(written.size).map_err(|_| ServiceError::invalid("file is too large"))?;
    let new = NewLandingFile {
        zone_id: zone.id,
        filename,
        s3_path: key.as_str().to_owned(),
        s3_version_id: Some(written.version_id.as_str().to_owned()),
        size_bytes,
        content_type: upload.content_type,
        uploaded_by: Some(caller.user.clone()),
    };
    let recorded = async {
        let mut client = services.pool.get().await?;
        let mut transaction = client.transaction().await?;
        let file = landing::insert_file(&transaction, &new, now).await?;
        // TRIGGER HOOK (uploads): the zone's triggers fire once the row exists,
        // in its transaction.
        firing::fire_upload(&mut transaction, namespace, name, &upload.original_name, now).await?;
        transaction.commit().await?;
        Ok::<_, ServiceError>(file)
    }
    .await;
    match recorded {
        Ok(file) => Ok(file),
        Err(e) => {
            if let Err(cleanup) = services.store.delete_version(&key, &written.version_id).await {
                tracing::warn!(key = %key, error = %cleanup, "could not remove the object of a failed upload");
            }
            Err(e)
        }
    }
}

/// The file `id` of the zone `ns/name`; `NotFound` also when it belongs to
/// another zone. Read on the zone needed.
pub async fn get_file(
    services: &Services,
    caller: &Caller,
    namespace: &NamespaceName,
    name: &ZoneName,
    id: Uuid,
) -> Result<LandingFile, ServiceError> {
    let client = services.pool.get().await?;
    let zone = zone_for(&client, caller, namespace, name, Permission::Read, "reading").await?;
    Ok(landing::get_file(&client, zone.id, id).await?)
}

/// Deletes the file `id` of the zone `ns/name`: the object first (a delete
/// marker), then the row, so a failure in between leaves a row whose delete
/// can simply be retried (deleting a missing object is not an error). Returns
/// the deleted row. Write on the zone needed.
#[tracing::instrument(skip(services, caller))]
pub async fn delete_file(
    services: &Services,
    caller: &Caller,
    namespace: &NamespaceName,
    name: &ZoneName,
    id: Uuid,
) -> Result<LandingFile, ServiceError> {
    let client = services.pool.get().await?;
    let zone = zone_for(
        &client,
        caller,
        namespace,
        name,
        Permission::Write,
        "deleting a file of",
    )
    .await?;
    let file = landing::get_file(&client, zone.id, id).await?;
    let key = file.s3_path.clone();
    services.store.delete(&key).await?;
    Ok(landing::delete_file(&client, zone.id, id).await?)
}

/// A sample file of a zone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sample {
    /// The file name within `_samples/`.
    pub filename: String,
    /// Its full key.
    pub key: ObjectKey,
    /// Size in bytes.
    pub size: u64,
    /// When its current version was written.
    pub modified: OffsetDateTime,
}

/// The zone's sample files by name, one page (sliced from the listing of the
/// store), with the total. Read on the zone needed.
pub async fn list_samples(
    services: &Services,
    caller: &Caller,
    namespace: &NamespaceName,
    name: &ZoneName,
    page: PageRequest,
) -> Result<Page<Sample>, ServiceError> {
    existing_zone(services, caller, namespace, name, Permission::Read, "reading").await?;
    let prefix = samples_prefix(namespace, name)?;
    let samples: Vec<Sample> = list_all_latest(services.store.as_ref(), &prefix)
        .await?
        .into_iter()
        .filter_map(|head| {
            // Only direct children: nothing else is ever written below
            // `_samples/`, but a stray deeper key has no sample name.
            let filename = head.key.strip_prefix(&prefix)?.to_owned();
            (!filename.contains('/')).then_some(Sample {
                filename,
                key: head.key,
                size: head.size,
                modified: head.last_modified,
            })
        })
        .collect();
    let total = samples.len() as i64;
    let items = samples
        .into_iter()
        .skip(usize::try_from(page.offset).unwrap_or(usize::MAX))
        .take(usize::try_from(page.limit).unwrap_or(0))
        .collect();
    Ok(Page { items, total })
}

/// Stores a sample file under `{ns}/landing/{zone}/_samples/<name>`, replacing
/// (as a new version) a sample of the same name, from `body` as it arrives.
/// Write on the zone needed.
#[tracing::instrument(skip(services, caller, upload, body))]
pub async fn upload_sample(
    services: &Services,
    caller: &Caller,
    namespace: &NamespaceName,
    name: &ZoneName,
    upload: Upload,
    body: ByteSource<'_>,
    now: OffsetDateTime,
) -> Result<Sample, ServiceError> {
    checked_content_type(&upload.content_type)?;
    existing_zone(services, caller, namespace, name, Permission::Write, "uploading to").await?;
    let key = samples_prefix(namespace, name)?.join(&upload.basename)?;
    let written = services.store.put_stream(&key, body, &upload.content_type).await?;
    Ok(Sample {
        filename: upload.basename,
        key,
        size: written.size,
        modified: now,
    })
}

/// Deletes the sample `filename` of the zone (a delete marker). `filename`
/// must be a stored sample name (see [`stored_basename`]); `NotFound` when
/// there is no such sample. Write on the zone needed.
#[tracing::instrument(skip(services, caller))]
pub async fn delete_sample(
    services: &Services,
    caller: &Caller,
    namespace: &NamespaceName,
    name: &ZoneName,
    filename: &str,
) -> Result<(), ServiceError> {
    if stored_basename(filename)? != filename {
        return Err(ServiceError::invalid(format!("invalid sample file name {filename:?}")));
    }
    existing_zone(
        services,
        caller,
        namespace,
        name,
        Permission::Write,
        "deleting a sample of",
    )
    .await?;
    let key = samples_prefix(namespace, name)?.join(filename)?;
    if services.store.head(&key).await?.is_none() {
        return Err(ServiceError::NotFound { entity: "sample" });
    }
    services.store.delete(&key).await?;
    Ok(())
}

/// Changes the zone's lifecycle: `processed_max_age_days` `None` keeps it,
/// `Some(None)` clears it (the system default applies), `Some(Some(days))`
/// sets it (1..=36,500, checked by the caller with
/// [`rat_domain::parse_processed_max_age_days`] and again by the schema);
/// `auto_purge` `None` keeps it. Returns the zone. Write on the zone needed.
pub async fn update_lifecycle(
    services: &Services,
    caller: &Caller,
    namespace: &NamespaceName,
    name: &ZoneName,
    processed_max_age_days: Option<Option<i32>>,
    auto_purge: Option<bool>,
) -> Result<LandingZone, ServiceError> {
    let client = services.pool.get().await?;
    if !caller.admin {
        zone_for(&client, caller, namespace, name, Permission::Write, "changing").await?;
    }
    Ok(landing::update_lifecycle(&client, namespace, name, processed_max_age_days, auto_purge).await?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn uploaded_names_are_reduced_to_one_safe_segment() {
        for (given, stored) in [
            ("orders.csv", "orders.csv"),
            ("../../pipelines/victim/pipeline.py", "pipeline.py"),
            ("C:\\Users\\me\\Q1 report (final).xlsx", "Q1_report__final_.xlsx"),
            ("daten-ä.json", "daten-_.json"),
            ("...", "..."),
        ] {
            assert_eq!(stored_basename(given).unwrap(), stored, "{given}");
        }
        for refused in ["", ".", "..", "dir/", "a/..", "a\\."] {
            assert!(stored_basename(refused).is_err(), "{refused:?}");
        }
        assert!(stored_basename(&"a".repeat(MAX_FILENAME_LEN)).is_ok());
        assert!(stored_basename(&"a".repeat(MAX_FILENAME_LEN + 1)).is_err());
    }

    #[test]
    fn uploads_are_prefixed_with_their_utc_time_and_a_token() {
        let at = datetime!(2026-03-07 09:05:03 +02:00);
        assert_eq!(
            stored_name("orders.csv", at, 0xbeef),
            "20260307_070503_0000beef_orders.csv"
        );
        assert_ne!(
            stored_name("orders.csv", at, 1),
            stored_name("orders.csv", at, 2),
            "two uploads in one second get two keys"
        );
    }
}
