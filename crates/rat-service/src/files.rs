//! Reading and changing files through the store, keeping each pipeline's
//! `draft_dirty` true whenever its HEAD may differ from what is published.

use rat_domain::PipelineId;
use std::sync::Arc;

use rat_dao::pipelines;
use rat_domain::PipelineRef;
use rat_versioning::{ByteSource, Download, KeyPrefix, Object, ObjectHead, ObjectKey, VersionId, VersionedStore};

use crate::concurrency::{self, IfMatch};
use crate::identity::Caller;
use crate::pipelines::{content_type, require_on_loaded};
use crate::{ServiceError, Services};
use rat_domain::{NamespaceName, Permission, ZoneName};

/// A file written: its key and the new version id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WrittenFile {
    /// The file's key.
    pub key: ObjectKey,
    /// The version just written.
    pub version_id: VersionId,
    /// Its size in bytes.
    pub size: u64,
    /// The live pipeline whose directory holds the file.
    pub pipeline_id: PipelineId,
}

/// The pipeline whose directory holds `key`. Keys outside every pipeline
/// directory are refused: landing zone files and samples are changed through
/// their own routes (which keep their rows and fire their triggers), and
/// nothing else belongs in the store.
fn pipeline_of(key: &ObjectKey) -> Result<PipelineRef, ServiceError> {
    PipelineRef::from_file_key(key.as_str())
        .map(|(address, _)| address)
        .ok_or_else(|| {
            ServiceError::invalid(format!(
                "{key} is not inside a pipeline's directory: files are written at \
                 {{namespace}}/pipelines/{{layer}}/{{name}}/..., landing zone files through /landing-zones"
            ))
        })
}

/// Whose access rule a store path follows: a pipeline's directory
/// (`{ns}/pipelines/{layer}/{name}/…`), a landing zone's
/// (`{ns}/landing/{zone}/…`), or neither. A directory prefix ends with `/`,
/// so `ns/pipelines/silver/orders/` is the pipeline's directory, while the
/// key `ns/pipelines/silver/orders` (a file beside the pipeline directories)
/// belongs to no pipeline.
#[derive(Debug, Clone, PartialEq, Eq)]
enum PathOwner {
    Pipeline(PipelineRef),
    Zone(NamespaceName, ZoneName),
    Nobody,
}

fn owner_of_path(path: &str) -> PathOwner {
    let parts: Vec<&str> = path.splitn(5, '/').collect();
    match parts.as_slice() {
        [ns, "pipelines", layer, name, _] => PipelineRef::parse(ns, layer, name)
            .map(PathOwner::Pipeline)
            .unwrap_or(PathOwner::Nobody),
        [ns, "landing", zone, _, ..] => match (NamespaceName::parse(ns), ZoneName::parse(zone)) {
            (Ok(ns), Ok(zone)) => PathOwner::Zone(ns, zone),
            _ => PathOwner::Nobody,
        },
        _ => PathOwner::Nobody,
    }
}

/// Requires `needed` of `caller` on what `path` (a key or a directory
/// prefix) belongs to ([`owner_of_path`]): the pipeline, the landing zone,
/// or, for any other path, an admin. Admins pass without a query.
async fn require_on_path(
    services: &Services,
    caller: &Caller,
    path: &str,
    needed: Permission,
) -> Result<(), ServiceError> {
    if caller.admin {
        return Ok(());
    }
    match owner_of_path(path) {
        PathOwner::Pipeline(address) => {
            let client = services.pool.get().await?;
            crate::pipelines::require_on(&client, caller, &address, needed, "reading files of").await
        }
        PathOwner::Zone(namespace, zone) => {
            let client = services.pool.get().await?;
            crate::landing::zone_for(&client, caller, &namespace, &zone, needed, "reading files of").await?;
            Ok(())
        }
        PathOwner::Nobody => caller.require_admin("reading files outside every pipeline and landing zone"),
    }
}

/// The live pipeline whose directory holds `key` ([`pipeline_of`]), marked
/// dirty. One connection, held only for this.
async fn mark_dirty(services: &Services, key: &ObjectKey) -> Result<PipelineId, ServiceError> {
    let address = pipeline_of(key)?;
    let client = services.pool.get().await?;
    let pipeline = pipelines::get_by_ref(&client, &address).await?;
    pipelines::set_draft_dirty(&client, pipeline.id, true).await?;
    Ok(pipeline.id)
}

/// Changes a file of a live pipeline with `change`, keeping its
/// `draft_dirty` true whenever HEAD may differ from what is published: the
/// pipeline is marked dirty before the change (so a crash after it never
/// leaves it clean) and again after it (so a publish that listed the files
/// before the change landed cannot leave it clean either; see
/// [`crate::versions::publish`]). No connection is held during the change.
///
/// `caller` needs write on the pipeline.
async fn change_in_pipeline<T>(
    services: &Services,
    caller: &Caller,
    key: &ObjectKey,
    change: impl std::future::Future<Output = Result<T, ServiceError>>,
) -> Result<(PipelineId, T), ServiceError> {
    let address = pipeline_of(key)?;
    let pipeline_id = {
        let client = services.pool.get().await?;
        let pipeline = pipelines::get_by_ref(&client, &address).await?;
        require_on_loaded(&client, caller, &pipeline, Permission::Write, "changing files of").await?;
        pipelines::set_draft_dirty(&client, pipeline.id, true).await?;
        pipeline.id
    };
    let changed = change.await?;
    mark_dirty(services, key).await?;
    Ok((pipeline_id, changed))
}

/// [`change_in_pipeline`] applied only while the file is at a version
/// `if_match` names (`Stale` otherwise, and nothing changes). The check and
/// the change happen under the pipeline's row lock (`FOR UPDATE`), so two
/// conditional changes of one pipeline's files never interleave (and a
/// publish waits for them); the connection is held during the change.
async fn change_in_pipeline_if<T>(
    services: &Services,
    caller: &Caller,
    key: &ObjectKey,
    if_match: &IfMatch,
    change: impl std::future::Future<Output = Result<T, ServiceError>>,
) -> Result<(PipelineId, T), ServiceError> {
    let address = pipeline_of(key)?;
    let (pipeline_id, changed) = {
        let mut client = services.pool.get().await?;
        let transaction = client.transaction().await?;
        let pipeline = pipelines::get_by_ref_for_update(&transaction, &address).await?;
        require_on_loaded(&transaction, caller, &pipeline, Permission::Write, "changing files of").await?;
        let current = services.store.head(key).await?.map(|head| head.version_id);
        concurrency::check(Some(if_match), current.as_ref().map(VersionId::as_str), "file")?;
        pipelines::set_draft_dirty(&transaction, pipeline.id, true).await?;
        let changed = change.await?;
        transaction.commit().await?;
        (pipeline.id, changed)
    };
    mark_dirty(services, key).await?;
    Ok((pipeline_id, changed))
}

/// Writes a new version of the file at `path`, inside a live pipeline's
/// directory (`InvalidInput` outside one, `NotFound` for an unknown
/// pipeline); the pipeline's draft turns dirty.
#[tracing::instrument(skip(services, caller, body), fields(size = body.len()))]
pub async fn write_file(
    services: &Services,
    caller: &Caller,
    path: &str,
    body: Vec<u8>,
) -> Result<WrittenFile, ServiceError> {
    write_file_if(services, caller, path, body, None).await
}

/// [`write_file`], done only while the file is at a version `if_match`
/// names (its S3 version id; a missing file matches nothing): `Stale`
/// otherwise, and nothing is written.
pub async fn write_file_if(
    services: &Services,
    caller: &Caller,
    path: &str,
    body: Vec<u8>,
    if_match: Option<&IfMatch>,
) -> Result<WrittenFile, ServiceError> {
    let key = ObjectKey::parse(path)?;
    let size = body.len() as u64;
    let put = async { Ok(services.store.put(&key, body, content_type(key.file_name())).await?) };
    let (pipeline_id, version_id) = match if_match {
        Some(if_match) => change_in_pipeline_if(services, caller, &key, if_match, put).await?,
        None => change_in_pipeline(services, caller, &key, put).await?,
    };
    Ok(WrittenFile {
        key,
        version_id,
        size,
        pipeline_id,
    })
}

/// [`write_file`] with the content as it arrives (an upload), never held
/// whole in memory. When `body` fails nothing is written
/// (`StoreError::BodyFailed` becomes `InvalidInput`; the caller knows why).
#[tracing::instrument(skip(services, caller, body))]
pub async fn upload_file(
    services: &Services,
    caller: &Caller,
    path: &str,
    body: ByteSource<'_>,
) -> Result<WrittenFile, ServiceError> {
    let key = ObjectKey::parse(path)?;
    let put = async {
        Ok(services
            .store
            .put_stream(&key, body, content_type(key.file_name()))
            .await?)
    };
    let (pipeline_id, written) = change_in_pipeline(services, caller, &key, put).await?;
    Ok(WrittenFile {
        key,
        version_id: written.version_id,
        size: written.size,
        pipeline_id,
    })
}

/// Deletes the file at `path` inside a live pipeline's directory (a delete
/// marker: older versions, and any publish pinning them, stay readable);
/// the pipeline's draft turns dirty. `NotFound` when the file does not exist
/// at HEAD. Returns the pipeline's id.
#[tracing::instrument(skip(services, caller))]
pub async fn delete_file(services: &Services, caller: &Caller, path: &str) -> Result<PipelineId, ServiceError> {
    delete_file_if(services, caller, path, None).await
}

/// [`delete_file`], done only while the file is at a version `if_match`
/// names: `Stale` otherwise, and nothing is deleted.
pub async fn delete_file_if(
    services: &Services,
    caller: &Caller,
    path: &str,
    if_match: Option<&IfMatch>,
) -> Result<PipelineId, ServiceError> {
    let key = ObjectKey::parse(path)?;
    // Keys outside pipelines, and pipelines the caller may not change, are
    // refused before the store is asked.
    let address = pipeline_of(&key)?;
    if !caller.admin {
        let client = services.pool.get().await?;
        crate::pipelines::require_on(&client, caller, &address, Permission::Write, "changing files of").await?;
    }
    if services.store.head(&key).await?.is_none() {
        return Err(ServiceError::NotFound { entity: "file" });
    }
    let delete = async { Ok(services.store.delete(&key).await?) };
    let (pipeline_id, _) = match if_match {
        Some(if_match) => change_in_pipeline_if(services, caller, &key, if_match, delete).await?,
        None => change_in_pipeline(services, caller, &key, delete).await?,
    };
    Ok(pipeline_id)
}

/// Reads the file at `path`, at HEAD or at an exact version. Read on the
/// pipeline or landing zone holding it needed; any other path is for admins.
pub async fn read_file(
    services: &Services,
    caller: &Caller,
    path: &str,
    version: Option<&str>,
) -> Result<Object, ServiceError> {
    let key = ObjectKey::parse(path)?;
    require_on_path(services, caller, key.as_str(), Permission::Read).await?;
    let version = version.map(VersionId::new).transpose()?;
    Ok(services.store.get(&key, version.as_ref()).await?)
}

/// A file read to be shown and edited as text ([`read_text`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TextFile {
    /// The file, as text.
    Text {
        /// The content.
        content: String,
        /// When the version read was written.
        last_modified: time::OffsetDateTime,
        /// The version read (the file's ETag).
        version_id: VersionId,
    },
    /// Larger than the limit asked for: not read.
    TooLarge {
        /// Its size in bytes.
        size: u64,
    },
    /// Not text: not valid UTF-8, or holding control characters other than
    /// tab, line and form feed and carriage return.
    Binary {
        /// Its size in bytes.
        size: u64,
    },
}

/// `bytes` as text an editor can show and save back unchanged, or `None`
/// when they are not UTF-8 or hold control characters other than tab, line
/// and form feed and carriage return.
pub fn as_text(bytes: Vec<u8>) -> Option<String> {
    let text = String::from_utf8(bytes).ok()?;
    let binary = text
        .chars()
        .any(|c| c.is_control() && !matches!(c, '\t' | '\n' | '\r' | '\u{c}'));
    (!binary).then_some(text)
}

/// The file at `path` at HEAD as text, when it is text of at most
/// `max_bytes`: a larger file is not read at all. `NotFound` when missing.
/// Access as for [`read_file`].
pub async fn read_text(
    services: &Services,
    caller: &Caller,
    path: &str,
    max_bytes: u64,
) -> Result<TextFile, ServiceError> {
    let key = ObjectKey::parse(path)?;
    require_on_path(services, caller, key.as_str(), Permission::Read).await?;
    let head = services
        .store
        .head(&key)
        .await?
        .ok_or(ServiceError::NotFound { entity: "file" })?;
    if head.size > max_bytes {
        return Ok(TextFile::TooLarge { size: head.size });
    }
    let object = services.store.get(&key, Some(&head.version_id)).await?;
    let size = object.body.len() as u64;
    Ok(match as_text(object.body) {
        Some(content) => TextFile::Text {
            content,
            last_modified: object.last_modified,
            version_id: object.version_id,
        },
        None => TextFile::Binary { size },
    })
}

/// Opens the file at `path` (HEAD, or an exact version) to be read in
/// pieces, whatever its size: downloads. Access as for [`read_file`].
pub async fn open_file(
    services: &Services,
    caller: &Caller,
    path: &str,
    version: Option<&str>,
) -> Result<Download, ServiceError> {
    let key = ObjectKey::parse(path)?;
    require_on_path(services, caller, key.as_str(), Permission::Read).await?;
    let version = version.map(VersionId::new).transpose()?;
    Ok(services.store.open(&key, version.as_ref()).await?)
}

/// Objects deleted at once by [`delete_all_under`].
const DELETE_CONCURRENCY: usize = 16;

/// Most listing pages [`delete_all_under`] works through (of 1,000 objects).
const MAX_DELETE_PAGES: usize = 10_000;

/// Deletes every object at HEAD under `prefix` (delete markers: older
/// versions, and publishes pinning them, stay readable), a page at a time
/// and [`DELETE_CONCURRENCY`] at once. Returns how many were deleted.
pub(crate) async fn delete_all_under(
    store: &Arc<dyn VersionedStore>,
    prefix: &KeyPrefix,
) -> Result<usize, ServiceError> {
    let mut deleted = 0;
    for _ in 0..MAX_DELETE_PAGES {
        // Deleted keys leave the listing, so the first page is always next.
        let page = store.list_latest(prefix, None, LIST_PAGE_SIZE).await?;
        if page.items.is_empty() {
            return Ok(deleted);
        }
        let count = page.items.len();
        crate::concurrent::try_map_bounded(&page.items, DELETE_CONCURRENCY, |head| store.delete(&head.key)).await?;
        deleted += count;
    }
    Err(ServiceError::Internal {
        source: format!("more than {} objects under {prefix}", MAX_DELETE_PAGES * LIST_PAGE_SIZE).into(),
    })
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
/// invalid prefix. Read on the pipeline or landing zone whose directory the
/// prefix is (or is inside) needed; any other prefix is for admins.
#[tracing::instrument(skip(services, caller, exclude))]
pub async fn list_files(
    services: &Services,
    caller: &Caller,
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
    require_on_path(services, caller, prefix.as_str(), Permission::Read).await?;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_path_follows_the_pipeline_or_zone_whose_directory_it_is_in() {
        let pipeline = |ns, layer, name| PathOwner::Pipeline(PipelineRef::parse(ns, layer, name).unwrap());
        let zone = |ns, name| PathOwner::Zone(NamespaceName::parse(ns).unwrap(), ZoneName::parse(name).unwrap());
        for (path, owner) in [
            (
                "ns/pipelines/silver/orders/pipeline.sql",
                pipeline("ns", "silver", "orders"),
            ),
            (
                "ns/pipelines/silver/orders/tests/quality/t.sql",
                pipeline("ns", "silver", "orders"),
            ),
            ("ns/pipelines/silver/orders/", pipeline("ns", "silver", "orders")),
            ("ns/landing/drops/20260101_000000_ab_a.csv", zone("ns", "drops")),
            ("ns/landing/drops/", zone("ns", "drops")),
            ("ns/landing/drops/_samples/s.csv", zone("ns", "drops")),
            // Beside the directories, above them, or not a valid name: nobody's.
            ("ns/pipelines/silver/orders", PathOwner::Nobody),
            ("ns/pipelines/silver/", PathOwner::Nobody),
            ("ns/pipelines/platinum/orders/x.sql", PathOwner::Nobody),
            ("ns/landing/drops", PathOwner::Nobody),
            ("ns/", PathOwner::Nobody),
            ("ns/other/a/b/c", PathOwner::Nobody),
        ] {
            assert_eq!(owner_of_path(path), owner, "{path}");
        }
    }
}
