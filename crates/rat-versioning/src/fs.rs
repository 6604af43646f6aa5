//! The local filesystem backend: a durable versioned store in one directory,
//! for the dev platform and single-machine use.
//!
//! Layout under the root directory:
//! - `FORMAT`: marks the directory as a store of this format;
//! - `blobs/ab/<sha256>`: every body once, named by the hex SHA-256 of its
//!   bytes (`ab` is the hash's first two digits);
//! - `keys/…`: one append-only version log per key, JSON lines of
//!   `{version_id, sha256, size, modified, deleted}`, oldest first.
//!
//! Keys become paths segment by segment: directory segments get a `.d`
//! suffix and the last segment a `.v` suffix, so `a/b` is `keys/a.d/b.v`
//! and can coexist with the key `a` (`keys/a.v`). Segments are validated by
//! [`ObjectKey`] (`[A-Za-z0-9._-]+`, never `.` or `..`) and checked again
//! here before a path is built, so no key can leave the root. The store needs
//! a case-sensitive filesystem (checked when opening).
//!
//! Durability: blobs and rewritten logs are written to a temporary file in
//! the same directory, synced, renamed into place, and the directory is
//! synced; appends to a log are synced before the call returns, and new
//! directories and logs are made durable by syncing their parent.
//!
//! Concurrency: several processes may share a root. Each append or rewrite
//! holds an exclusive lock on the key's log (`File::lock`). Because a rewrite
//! replaces the log by rename, a writer that acquired its lock on a file that
//! is no longer the one at the path opens the path again. A torn last line
//! (a crash in the middle of an append) is ignored by readers and cut off by
//! the next writer. Readers take no lock: appends and renames never show them
//! a state other than "before" or "after", except a torn tail they ignore.
//!
//! Deleting a version ([`VersionedStore::delete_version`]) rewrites the log
//! without that entry and removes the log when it becomes empty. Blobs are
//! never removed: they are shared by every version (of any key) with the same
//! content, and a leftover blob is harmless. Empty key directories are left
//! in place for the same reason (removing them would race with writers).
//!
//! Version ids are `{unix micros:016x}{8 random hex digits}`, strictly
//! increasing within one key; the log's order (not the id) decides which
//! entry is the latest. All file IO runs on tokio's blocking pool.
//! Unix only (the inode check of the locking protocol).

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;

use crate::{
    ByteSource, Download, KeyPrefix, ListPage, Object, ObjectError, ObjectHead, ObjectKey, ObjectVersion, StoreError,
    VersionId, VersionedStore, Written, invalid_token, page_size,
};

/// The content of the `FORMAT` file of a store root.
const FORMAT_TEXT: &str = "rat-versioning filesystem store, format 1\n";
const FORMAT_FILE: &str = "FORMAT";
const KEYS_DIR: &str = "keys";
const BLOBS_DIR: &str = "blobs";
/// Suffix of a directory segment (`a/b` → `a.d/b.v`).
const DIR_SUFFIX: &str = ".d";
/// Suffix of a key's version log.
const LOG_SUFFIX: &str = ".v";
/// Suffix of temporary files; never ends in `.d` or `.v`, so listings skip them.
const TMP_SUFFIX: &str = ".tmp";
/// Separates the key from the version id in a `list_versions` page token
/// (keys never contain `|`).
const TOKEN_SEPARATOR: char = '|';

/// The most entries one listing page returns ([`crate::MAX_PAGE_SIZE`]).
pub use crate::MAX_PAGE_SIZE;

/// The local filesystem backend; see the module documentation for the
/// layout and guarantees. Cheap to clone; several instances (and processes)
/// may share one root.
#[derive(Debug, Clone)]
pub struct FsStore {
    root: Arc<PathBuf>,
}

/// One line of a key's version log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct LogEntry {
    /// The version (or delete marker) id.
    version_id: String,
    /// Hex SHA-256 of the body; absent for a delete marker.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    sha256: Option<String>,
    /// Body size in bytes (0 for a delete marker).
    size: u64,
    /// When the entry was written, in nanoseconds since the Unix epoch.
    modified: i64,
    /// True for a delete marker.
    #[serde(default)]
    deleted: bool,
}

impl LogEntry {
    fn version(&self) -> Result<VersionId, StoreError> {
        Ok(VersionId::new(self.version_id.clone())?)
    }

    fn last_modified(&self) -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp_nanos(i128::from(self.modified)).unwrap_or(OffsetDateTime::UNIX_EPOCH)
    }
}

impl FsStore {
    /// Opens the store at `root`, creating the directory and its layout on
    /// first use. Refuses a non-empty directory that is not a store, an
    /// unwritable one, and a case-insensitive filesystem. The file IO runs on
    /// tokio's blocking pool; [`FsStore::open_blocking`] is the same outside
    /// a runtime.
    pub async fn open(root: PathBuf) -> Result<FsStore, StoreError> {
        let key = root.display().to_string();
        tokio::task::spawn_blocking(move || FsStore::open_blocking(root))
            .await
            .map_err(|e| StoreError::Internal {
                operation: "open",
                key,
                source: Box::new(e),
            })?
    }

    /// [`FsStore::open`] for synchronous callers (blocks on file IO).
    pub fn open_blocking(root: PathBuf) -> Result<FsStore, StoreError> {
        let config = |what: &str, path: &Path, e: io::Error| StoreError::Config {
            reason: format!("cannot {what} {}: {e}", path.display()),
        };
        fs::create_dir_all(&root).map_err(|e| config("create the store directory", &root, e))?;
        let root = fs::canonicalize(&root).map_err(|e| config("resolve the store directory", &root, e))?;
        let format_path = root.join(FORMAT_FILE);
        match fs::read_to_string(&format_path) {
            Ok(text) if text == FORMAT_TEXT => {}
            Ok(_) => {
                return Err(StoreError::Config {
                    reason: format!(
                        "{} is not a store of this version (unexpected {FORMAT_FILE} file)",
                        root.display()
                    ),
                });
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                // Never scatter store directories into an unrelated directory
                // someone pointed us at by mistake.
                let foreign = fs::read_dir(&root)
                    .map_err(|e| config("read", &root, e))?
                    .filter_map(Result::ok)
                    .any(|entry| {
                        let name = entry.file_name();
                        name != KEYS_DIR && name != BLOBS_DIR && !name.to_string_lossy().ends_with(TMP_SUFFIX)
                    });
                if foreign {
                    return Err(StoreError::Config {
                        reason: format!(
                            "{} is not empty and is not a file store; choose an empty or new directory",
                            root.display()
                        ),
                    });
                }
                write_atomic(&format_path, FORMAT_TEXT.as_bytes()).map_err(|e| config("write", &format_path, e))?;
            }
            Err(e) => return Err(config("read", &format_path, e)),
        }
        for dir in [KEYS_DIR, BLOBS_DIR] {
            let path = root.join(dir);
            create_dir_synced(&root, &path).map_err(|e| config("create", &path, e))?;
        }
        check_case_sensitive(&root)?;
        Ok(FsStore { root: Arc::new(root) })
    }

    /// The store's root directory (absolute).
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Runs `work` on tokio's blocking pool with the store root.
    async fn blocking<T, F>(&self, operation: &'static str, key: String, work: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Path) -> Result<T, StoreError> + Send + 'static,
    {
        let root = Arc::clone(&self.root);
        tokio::task::spawn_blocking(move || work(&root))
            .await
            .map_err(|e| StoreError::Internal {
                operation,
                key,
                source: Box::new(e),
            })?
    }
}

/// Refuses filesystems that treat `a` and `A` as one name: keys differing
/// only in case would share a log there.
fn check_case_sensitive(root: &Path) -> Result<(), StoreError> {
    let probe = format!(".case-probe-{:016x}", rand::random::<u64>());
    let lower = root.join(format!("{probe}-a{TMP_SUFFIX}"));
    let upper = root.join(format!("{probe}-A{TMP_SUFFIX}"));
    let config = |e: io::Error| StoreError::Config {
        reason: format!("cannot write to the store directory {}: {e}", root.display()),
    };
    File::create(&lower).map_err(config)?;
    let insensitive = upper.exists();
    fs::remove_file(&lower).map_err(config)?;
    if insensitive {
        return Err(StoreError::Config {
            reason: format!(
                "{} is on a case-insensitive filesystem; the file store needs a case-sensitive one",
                root.display()
            ),
        });
    }
    Ok(())
}

/// `Unavailable` for an IO failure of `operation` on `key`.
fn io_error(operation: &'static str, key: &str) -> impl FnOnce(io::Error) -> StoreError {
    let key = key.to_owned();
    move |e| StoreError::Unavailable {
        operation,
        key,
        source: Box::new(e),
    }
}

/// `Internal` for a store that holds something it should not (a corrupt
/// log, a blob with the wrong content).
fn corrupt(operation: &'static str, key: &str, message: String) -> StoreError {
    StoreError::Internal {
        operation,
        key: key.to_owned(),
        source: message.into(),
    }
}

/// Whether `segment` may become a file name: the [`ObjectKey`] segment rules,
/// checked again so that no path is ever built from an unchecked string.
fn is_safe_segment(segment: &str) -> bool {
    !segment.is_empty()
        && segment != "."
        && segment != ".."
        && segment
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// The directory of `prefix` under `keys/` (`a/b/` → `keys/a.d/b.d`).
fn prefix_dir(root: &Path, prefix: &KeyPrefix) -> Result<PathBuf, StoreError> {
    let mut path = root.join(KEYS_DIR);
    if let Some(dirs) = prefix.as_str().strip_suffix('/') {
        for segment in dirs.split('/') {
            if !is_safe_segment(segment) {
                return Err(StoreError::Invalid(ObjectError::InvalidKey {
                    key: prefix.to_string(),
                    reason: format!("unsafe segment {segment:?}"),
                }));
            }
            path.push(format!("{segment}{DIR_SUFFIX}"));
        }
    }
    Ok(path)
}

/// The log of `key` (`a/b` → `keys/a.d/b.v`).
fn log_path(root: &Path, key: &ObjectKey) -> Result<PathBuf, StoreError> {
    let mut path = root.join(KEYS_DIR);
    let mut segments = key.as_str().split('/').peekable();
    while let Some(segment) = segments.next() {
        if !is_safe_segment(segment) {
            return Err(StoreError::Invalid(ObjectError::InvalidKey {
                key: key.to_string(),
                reason: format!("unsafe segment {segment:?}"),
            }));
        }
        let suffix = if segments.peek().is_some() {
            DIR_SUFFIX
        } else {
            LOG_SUFFIX
        };
        path.push(format!("{segment}{suffix}"));
    }
    Ok(path)
}

/// The blob of a hex SHA-256 (`blobs/ab/abcd…`).
fn blob_path(root: &Path, sha256: &str) -> Option<PathBuf> {
    let valid = sha256.len() == 64 && sha256.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
    valid.then(|| root.join(BLOBS_DIR).join(&sha256[..2]).join(sha256))
}

fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

fn now_micros() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_micros()
        .try_into()
        .unwrap_or(u64::MAX)
}

fn now_nanos() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_nanos()
        .try_into()
        .unwrap_or(i64::MAX)
}

/// A new version id for a key whose log holds `existing`: the current time
/// in microseconds, but always later than the newest id in the log (clocks
/// can step back), plus random digits against writers of the same instant.
fn new_version_id(existing: &[LogEntry]) -> String {
    let newest = existing
        .iter()
        .filter_map(|e| e.version_id.get(..16).and_then(|hex| u64::from_str_radix(hex, 16).ok()))
        .max();
    let micros = match newest {
        Some(newest) => now_micros().max(newest.saturating_add(1)),
        None => now_micros(),
    };
    format!("{micros:016x}{:08x}", rand::random::<u32>())
}

/// Syncs a directory, making the creation, rename or removal of its entries durable.
fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Creates `dir` (whose parent exists) unless it exists, syncing the parent
/// when it was created.
fn create_dir_synced(parent: &Path, dir: &Path) -> io::Result<()> {
    match fs::create_dir(dir) {
        Ok(()) => sync_dir(parent),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists && dir.is_dir() => Ok(()),
        Err(e) => Err(e),
    }
}

/// Creates every missing directory between `base` (which exists) and `dir`.
fn create_dirs_under(base: &Path, dir: &Path) -> io::Result<()> {
    let Ok(relative) = dir.strip_prefix(base) else {
        return Err(io::Error::other(format!(
            "{} is not under {}",
            dir.display(),
            base.display()
        )));
    };
    let mut current = base.to_path_buf();
    for component in relative.components() {
        let parent = current.clone();
        current.push(component);
        create_dir_synced(&parent, &current)?;
    }
    Ok(())
}

/// Writes `bytes` to `path` durably: a temporary file in the same directory,
/// synced, renamed over `path`, then the directory synced.
fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let dir = path
        .parent()
        .ok_or_else(|| io::Error::other("path without a parent directory"))?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let temp = dir.join(format!(".{name}.{:016x}{TMP_SUFFIX}", rand::random::<u64>()));
    let result = (|| {
        let mut file = OpenOptions::new().write(true).create_new(true).open(&temp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        drop(file);
        fs::rename(&temp, path)?;
        sync_dir(dir)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&temp);
    }
    result
}

/// Stores `body` under its hash unless a blob of that hash and size exists.
fn write_blob(root: &Path, sha256: &str, body: &[u8]) -> io::Result<()> {
    let path = blob_path(root, sha256).ok_or_else(|| io::Error::other("invalid blob hash"))?;
    if let Ok(meta) = fs::metadata(&path)
        && meta.len() == body.len() as u64
    {
        return Ok(());
    }
    let blobs = root.join(BLOBS_DIR);
    if let Some(dir) = path.parent() {
        create_dirs_under(&blobs, dir)?;
    }
    write_atomic(&path, body)
}

/// Parses a log. Every complete line must parse, except the last one, which
/// may be the remains of a crash (a torn line without its newline is never
/// complete and is always ignored). Returns the entries and the length of
/// the valid part.
fn parse_log(bytes: &[u8], key: &str) -> Result<(Vec<LogEntry>, usize), StoreError> {
    let complete = bytes.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
    let mut entries = Vec::new();
    let mut valid = 0;
    let mut start = 0;
    while start < complete {
        let end = start
            + bytes[start..complete]
                .iter()
                .position(|b| *b == b'\n')
                .unwrap_or(complete - start);
        let line = &bytes[start..end];
        match serde_json::from_slice::<LogEntry>(line) {
            Ok(entry) => {
                entries.push(entry);
                valid = end + 1;
            }
            Err(_) if end + 1 == complete => {
                tracing::warn!(key, "ignoring an unreadable last line of a version log");
            }
            Err(e) => {
                return Err(corrupt(
                    "read",
                    key,
                    format!("version log corrupt at byte {start}: {e}"),
                ));
            }
        }
        start = end + 1;
    }
    Ok((entries, valid))
}

/// Reads the entries of a key's log; `None` when the key has no log.
fn read_log(path: &Path, key: &str, operation: &'static str) -> Result<Option<Vec<LogEntry>>, StoreError> {
    match fs::read(path) {
        Ok(bytes) => Ok(Some(parse_log(&bytes, key)?.0)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io_error(operation, key)(e)),
    }
}

/// Opens `path` and takes its exclusive lock, making sure the locked file is
/// still the one at `path` (a rewrite may have renamed a new file over it,
/// or an emptied log may have been removed, while we waited). With `create`
/// the log is created if missing; without it, `None` when there is no log.
fn open_locked(path: &Path, create: bool) -> io::Result<Option<File>> {
    loop {
        let file = match OpenOptions::new().read(true).append(true).create(create).open(path) {
            Ok(file) => file,
            Err(e) if e.kind() == io::ErrorKind::NotFound && !create => return Ok(None),
            Err(e) => return Err(e),
        };
        file.lock()?;
        let held = file.metadata()?;
        match fs::metadata(path) {
            Ok(current) if current.dev() == held.dev() && current.ino() == held.ino() => return Ok(Some(file)),
            Ok(_) => continue,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                if create {
                    continue;
                }
                return Ok(None);
            }
            Err(e) => return Err(e),
        }
    }
}

/// Appends one entry to the log of `key` under its lock, after cutting off a
/// torn tail. `make` builds the entry from the log's current entries.
fn append_entry(
    root: &Path,
    key: &ObjectKey,
    operation: &'static str,
    make: impl FnOnce(&[LogEntry]) -> LogEntry,
) -> Result<LogEntry, StoreError> {
    let io = |e| io_error(operation, key.as_str())(e);
    let path = log_path(root, key)?;
    let dir = path
        .parent()
        .ok_or_else(|| corrupt(operation, key.as_str(), "log without a directory".into()))?;
    create_dirs_under(&root.join(KEYS_DIR), dir).map_err(io)?;
    let Some(mut file) = open_locked(&path, true).map_err(io)? else {
        return Err(corrupt(
            operation,
            key.as_str(),
            "version log vanished while creating it".into(),
        ));
    };
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes).map_err(io)?;
    let (entries, valid) = parse_log(&bytes, key.as_str())?;
    if valid < bytes.len() {
        tracing::warn!(
            key = key.as_str(),
            removed = bytes.len() - valid,
            "cutting off a torn tail of a version log"
        );
        file.set_len(valid as u64).map_err(io)?;
    }
    let entry = make(&entries);
    let mut line = serde_json::to_vec(&entry).map_err(|e| corrupt(operation, key.as_str(), e.to_string()))?;
    line.push(b'\n');
    // The file is in append mode: the write lands at the (possibly just
    // shortened) end whatever the cursor says.
    file.write_all(&line).map_err(io)?;
    file.sync_data().map_err(io)?;
    if valid == 0 {
        // A new log: make its directory entry durable too.
        sync_dir(dir).map_err(io)?;
    }
    Ok(entry)
}

/// Moves the synced temporary file `temp` (in the blobs directory) into
/// place as the blob of `sha256`, or removes it when that blob exists.
fn install_blob(root: &Path, sha256: &str, size: u64, temp: &Path) -> io::Result<()> {
    let path = blob_path(root, sha256).ok_or_else(|| io::Error::other("invalid blob hash"))?;
    if let Ok(meta) = fs::metadata(&path)
        && meta.len() == size
    {
        return fs::remove_file(temp);
    }
    let blobs = root.join(BLOBS_DIR);
    let dir = path
        .parent()
        .ok_or_else(|| io::Error::other("blob path without a directory"))?;
    create_dirs_under(&blobs, dir)?;
    fs::rename(temp, &path)?;
    sync_dir(dir)
}

/// Appends a version of `key` whose blob (of `sha256`, `size` bytes) is stored.
fn append_version(root: &Path, key: &ObjectKey, sha256: String, size: u64) -> Result<VersionId, StoreError> {
    let entry = append_entry(root, key, "put", |existing| LogEntry {
        version_id: new_version_id(existing),
        sha256: Some(sha256),
        size,
        modified: now_nanos(),
        deleted: false,
    })?;
    entry.version()
}

/// The log entry of `key` at `version` (or HEAD) and its blob's path;
/// `NotFound` for a missing version or a delete marker.
fn find_version(
    root: &Path,
    key: &ObjectKey,
    version: Option<&VersionId>,
    operation: &'static str,
) -> Result<(LogEntry, PathBuf), StoreError> {
    let not_found = || StoreError::NotFound {
        key: key.to_string(),
        version: version.map(|v| v.to_string()),
    };
    let entries = read_log(&log_path(root, key)?, key.as_str(), operation)?.unwrap_or_default();
    let entry = match version {
        Some(version) => entries.iter().find(|e| e.version_id == version.as_str()),
        None => entries.last(),
    }
    .ok_or_else(not_found)?;
    if entry.deleted {
        return Err(not_found());
    }
    let sha256 = entry.sha256.as_deref().unwrap_or_default();
    let path = blob_path(root, sha256).ok_or_else(|| {
        corrupt(
            operation,
            key.as_str(),
            format!("invalid blob hash {sha256:?} in the version log"),
        )
    })?;
    Ok((entry.clone(), path))
}

fn put_blocking(root: &Path, key: &ObjectKey, body: &[u8]) -> Result<VersionId, StoreError> {
    let sha256 = sha256_hex(body);
    write_blob(root, &sha256, body).map_err(io_error("put", key.as_str()))?;
    append_version(root, key, sha256, body.len() as u64)
}

fn delete_blocking(root: &Path, key: &ObjectKey) -> Result<Option<VersionId>, StoreError> {
    // Like S3 with versioning, a delete always writes a marker, even for a
    // missing or already deleted key.
    let entry = append_entry(root, key, "delete", |existing| LogEntry {
        version_id: new_version_id(existing),
        sha256: None,
        size: 0,
        modified: now_nanos(),
        deleted: true,
    })?;
    entry.version().map(Some)
}

fn get_blocking(root: &Path, key: &ObjectKey, version: Option<&VersionId>) -> Result<Object, StoreError> {
    let (entry, path) = find_version(root, key, version, "get")?;
    let sha256 = entry.sha256.as_deref().unwrap_or_default();
    let body = match fs::read(&path) {
        Ok(body) => body,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Err(corrupt("get", key.as_str(), format!("blob {sha256} is missing")));
        }
        Err(e) => return Err(io_error("get", key.as_str())(e)),
    };
    if body.len() as u64 != entry.size || sha256_hex(&body) != sha256 {
        return Err(corrupt(
            "get",
            key.as_str(),
            format!("blob {sha256} does not match its hash"),
        ));
    }
    Ok(Object {
        version_id: entry.version()?,
        body,
        last_modified: entry.last_modified(),
    })
}

/// The HEAD of `key` from its log entries; `None` when deleted or empty.
fn head_of(key: &ObjectKey, entries: &[LogEntry]) -> Result<Option<ObjectHead>, StoreError> {
    match entries.last() {
        Some(last) if !last.deleted => Ok(Some(ObjectHead {
            key: key.clone(),
            version_id: last.version()?,
            size: last.size,
            last_modified: last.last_modified(),
        })),
        _ => Ok(None),
    }
}

fn head_blocking(root: &Path, key: &ObjectKey) -> Result<Option<ObjectHead>, StoreError> {
    let entries = read_log(&log_path(root, key)?, key.as_str(), "head")?.unwrap_or_default();
    head_of(key, &entries)
}

fn delete_version_blocking(root: &Path, key: &ObjectKey, version: &VersionId) -> Result<(), StoreError> {
    let io = |e| io_error("delete_version", key.as_str())(e);
    let path = log_path(root, key)?;
    // Like S3, removing a version that does not exist is not an error.
    let Some(mut file) = open_locked(&path, false).map_err(io)? else {
        return Ok(());
    };
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes).map_err(io)?;
    let (mut entries, _) = parse_log(&bytes, key.as_str())?;
    let Some(index) = entries.iter().position(|e| e.version_id == version.as_str()) else {
        return Ok(());
    };
    entries.remove(index);
    let dir = path
        .parent()
        .ok_or_else(|| corrupt("delete_version", key.as_str(), "log without a directory".into()))?;
    if entries.is_empty() {
        fs::remove_file(&path).map_err(io)?;
        sync_dir(dir).map_err(io)?;
    } else {
        let mut text = Vec::new();
        for entry in &entries {
            text.extend(serde_json::to_vec(entry).map_err(|e| corrupt("delete_version", key.as_str(), e.to_string()))?);
            text.push(b'\n');
        }
        write_atomic(&path, &text).map_err(io)?;
    }
    // The lock (on the replaced or removed file) is released only now, so
    // writers waiting for it see the new file when they check the path.
    drop(file);
    Ok(())
}

/// Whether a directory or log entry of a listing is a log (a key) or a directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum EntryKind {
    Log,
    Dir,
}

/// Walks the logs under `dir` (the directory of `key_prefix`) in key order,
/// skipping keys before `after` (and `after` itself unless `inclusive`).
/// `visit` returns `false` to stop; so does this function when stopped.
fn walk(
    dir: &Path,
    key_prefix: &str,
    after: Option<&str>,
    inclusive: bool,
    visit: &mut dyn FnMut(ObjectKey, &Path) -> Result<bool, StoreError>,
) -> Result<bool, StoreError> {
    let reader = match fs::read_dir(dir) {
        Ok(reader) => reader,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(true),
        Err(e) => return Err(io_error("list", key_prefix)(e)),
    };
    // Each entry sorts by its key, or for a directory by its key prefix
    // ending in '/': since no segment contains '/', this orders the whole
    // walk exactly like the keys' bytes (S3's order), e.g. `a`, `a-b`,
    // `a.b`, `a/x`, `a0`.
    let mut children: Vec<(String, EntryKind, PathBuf)> = Vec::new();
    for entry in reader {
        let entry = entry.map_err(io_error("list", key_prefix))?;
        let Ok(name) = entry.file_name().into_string() else {
            continue;
        };
        let (segment, kind) = if let Some(segment) = name.strip_suffix(LOG_SUFFIX) {
            (segment, EntryKind::Log)
        } else if let Some(segment) = name.strip_suffix(DIR_SUFFIX) {
            (segment, EntryKind::Dir)
        } else {
            // Temporary files and anything else that is not ours.
            continue;
        };
        if !is_safe_segment(segment) {
            continue;
        }
        let file_type = entry.file_type().map_err(io_error("list", key_prefix))?;
        let sort_key = match kind {
            EntryKind::Log if file_type.is_file() => format!("{key_prefix}{segment}"),
            EntryKind::Dir if file_type.is_dir() => format!("{key_prefix}{segment}/"),
            _ => continue,
        };
        children.push((sort_key, kind, entry.path()));
    }
    children.sort_by(|a, b| a.0.cmp(&b.0));
    for (sort_key, kind, path) in children {
        match kind {
            EntryKind::Log => {
                let skip = after.is_some_and(|after| match sort_key.as_str().cmp(after) {
                    std::cmp::Ordering::Less => true,
                    std::cmp::Ordering::Equal => !inclusive,
                    std::cmp::Ordering::Greater => false,
                });
                if skip {
                    continue;
                }
                let key = ObjectKey::parse(&sort_key)?;
                if !visit(key, &path)? {
                    return Ok(false);
                }
            }
            EntryKind::Dir => {
                // Every key below starts with `sort_key`; when `after` is past
                // that prefix without starting with it, they all come before it.
                if let Some(after) = after
                    && after > sort_key.as_str()
                    && !after.starts_with(sort_key.as_str())
                {
                    continue;
                }
                if !walk(&path, &sort_key, after, inclusive, visit)? {
                    return Ok(false);
                }
            }
        }
    }
    Ok(true)
}

fn list_latest_blocking(
    root: &Path,
    prefix: &KeyPrefix,
    token: Option<&str>,
    limit: usize,
) -> Result<ListPage<ObjectHead>, StoreError> {
    let after = match token {
        Some(token) => Some(ObjectKey::parse(token).map_err(|_| invalid_token(token))?),
        None => None,
    };
    let limit = page_size(limit);
    let mut items: Vec<ObjectHead> = Vec::new();
    let mut more = false;
    let dir = prefix_dir(root, prefix)?;
    walk(
        &dir,
        prefix.as_str(),
        after.as_ref().map(ObjectKey::as_str),
        false,
        &mut |key, path| {
            let entries = read_log(path, key.as_str(), "list")?.unwrap_or_default();
            let Some(head) = head_of(&key, &entries)? else {
                return Ok(true);
            };
            if items.len() == limit {
                more = true;
                return Ok(false);
            }
            items.push(head);
            Ok(true)
        },
    )?;
    let next = if more {
        items.last().map(|head| head.key.to_string())
    } else {
        None
    };
    Ok(ListPage { items, next })
}

fn list_versions_blocking(
    root: &Path,
    prefix: &KeyPrefix,
    token: Option<&str>,
    limit: usize,
) -> Result<ListPage<ObjectVersion>, StoreError> {
    let after = match token {
        Some(token) => {
            let (key, version) = token.split_once(TOKEN_SEPARATOR).ok_or_else(|| invalid_token(token))?;
            let key = ObjectKey::parse(key).map_err(|_| invalid_token(token))?;
            let version = VersionId::new(version).map_err(|_| invalid_token(token))?;
            Some((key, version))
        }
        None => None,
    };
    let limit = page_size(limit);
    let mut items: Vec<ObjectVersion> = Vec::new();
    let mut more = false;
    let dir = prefix_dir(root, prefix)?;
    walk(
        &dir,
        prefix.as_str(),
        after.as_ref().map(|(key, _)| key.as_str()),
        true,
        &mut |key, path| {
            let entries = read_log(path, key.as_str(), "list")?.unwrap_or_default();
            let newest_first: Vec<&LogEntry> = entries.iter().rev().collect();
            // Within the key of the token, continue after the token's version;
            // when that version was removed meanwhile, go on with the next key.
            let skip = match &after {
                Some((after_key, after_version)) if *after_key == key => newest_first
                    .iter()
                    .position(|e| e.version_id == after_version.as_str())
                    .map_or(newest_first.len(), |i| i + 1),
                _ => 0,
            };
            for (index, entry) in newest_first.iter().enumerate().skip(skip) {
                if items.len() == limit {
                    more = true;
                    return Ok(false);
                }
                items.push(ObjectVersion {
                    key: key.clone(),
                    version_id: entry.version()?,
                    is_latest: index == 0,
                    is_delete_marker: entry.deleted,
                    size: entry.size,
                    last_modified: entry.last_modified(),
                });
            }
            Ok(true)
        },
    )?;
    let next = if more {
        items
            .last()
            .map(|v| format!("{}{TOKEN_SEPARATOR}{}", v.key, v.version_id))
    } else {
        None
    };
    Ok(ListPage { items, next })
}

fn check_blocking(root: &Path) -> Result<(), StoreError> {
    let unavailable = |e: io::Error| StoreError::Unavailable {
        operation: "check",
        key: root.display().to_string(),
        source: Box::new(e),
    };
    let probe = root.join(format!(".check-{:016x}{TMP_SUFFIX}", rand::random::<u64>()));
    let text = b"rat-versioning check";
    let result = (|| {
        let mut file = OpenOptions::new().write(true).create_new(true).open(&probe)?;
        file.write_all(text)?;
        file.sync_data()?;
        drop(file);
        if fs::read(&probe)? != text {
            return Err(io::Error::other("the probe file reads back differently"));
        }
        fs::read_dir(root.join(KEYS_DIR))?;
        fs::read_dir(root.join(BLOBS_DIR))?;
        Ok(())
    })();
    let _ = fs::remove_file(&probe);
    result.map_err(unavailable)
}

/// Pieces a streamed read of the filesystem store hands out.
const READ_PIECE: usize = 64 * 1024;

#[async_trait::async_trait]
impl VersionedStore for FsStore {
    async fn put_stream(
        &self,
        key: &ObjectKey,
        body: ByteSource<'_>,
        _content_type: &str,
    ) -> Result<Written, StoreError> {
        use futures_util::StreamExt;
        use tokio::io::AsyncWriteExt;
        // The key is checked before any byte is read.
        log_path(&self.root, key)?;
        let io = |e| io_error("put", key.as_str())(e);
        let temp = self
            .root
            .join(BLOBS_DIR)
            .join(format!(".upload.{:016x}{TMP_SUFFIX}", rand::random::<u64>()));
        let mut file = tokio::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&temp)
            .await
            .map_err(io)?;
        let mut hasher = Sha256::new();
        let mut size = 0_u64;
        let received = async {
            while let Some(piece) = body.next().await {
                let piece = piece.map_err(|source| StoreError::BodyFailed {
                    key: key.to_string(),
                    source,
                })?;
                hasher.update(&piece);
                file.write_all(&piece).await.map_err(io)?;
                size += piece.len() as u64;
            }
            file.sync_all().await.map_err(io)
        }
        .await;
        drop(file);
        if let Err(e) = received {
            let _ = tokio::fs::remove_file(&temp).await;
            return Err(e);
        }
        let sha256 = format!("{:x}", hasher.finalize());
        let key = key.clone();
        let version_id = self
            .blocking("put", key.to_string(), move |root| {
                if let Err(e) = install_blob(root, &sha256, size, &temp) {
                    let _ = fs::remove_file(&temp);
                    return Err(io_error("put", key.as_str())(e));
                }
                append_version(root, &key, sha256, size)
            })
            .await?;
        Ok(Written { version_id, size })
    }

    async fn open(&self, key: &ObjectKey, version: Option<&VersionId>) -> Result<Download, StoreError> {
        let found_key = key.clone();
        let version = version.cloned();
        let (entry, path) = self
            .blocking("get", key.to_string(), move |root| {
                find_version(root, &found_key, version.as_ref(), "get")
            })
            .await?;
        let name = key.to_string();
        let file = match tokio::fs::File::open(&path).await {
            Ok(file) => file,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(corrupt("get", &name, "the blob is missing".to_owned()));
            }
            Err(e) => return Err(io_error("get", &name)(e)),
        };
        // Checked as it is read: a blob that does not match its hash (or
        // size) ends the read with an error instead of its last piece.
        struct Reading {
            file: tokio::fs::File,
            hasher: Sha256,
            left: u64,
            expected: String,
            name: String,
        }
        let reading = Reading {
            file,
            hasher: Sha256::new(),
            left: entry.size,
            expected: entry.sha256.clone().unwrap_or_default(),
            name,
        };
        let body = futures_util::stream::unfold(Some(reading), |reading| async move {
            use tokio::io::AsyncReadExt;
            let mut reading = reading?;
            let mut piece = vec![
                0_u8;
                READ_PIECE
                    .min(usize::try_from(reading.left).unwrap_or(READ_PIECE))
                    .max(1)
            ];
            let read = match reading.file.read(&mut piece).await {
                Ok(read) => read,
                Err(e) => return Some((Err(io_error("get", &reading.name)(e)), None)),
            };
            if read == 0 {
                let whole = reading.left == 0 && format!("{:x}", reading.hasher.finalize()) == reading.expected;
                return if whole {
                    None
                } else {
                    Some((
                        Err(corrupt(
                            "get",
                            &reading.name,
                            "the blob does not match its hash".to_owned(),
                        )),
                        None,
                    ))
                };
            }
            if read as u64 > reading.left {
                return Some((
                    Err(corrupt(
                        "get",
                        &reading.name,
                        "the blob is larger than recorded".to_owned(),
                    )),
                    None,
                ));
            }
            piece.truncate(read);
            reading.hasher.update(&piece);
            reading.left = reading.left.saturating_sub(read as u64);
            Some((Ok(bytes::Bytes::from(piece)), Some(reading)))
        });
        Ok(Download {
            version_id: entry.version()?,
            size: entry.size,
            last_modified: entry.last_modified(),
            body: Box::pin(body),
        })
    }

    async fn put(&self, key: &ObjectKey, body: Vec<u8>, _content_type: &str) -> Result<VersionId, StoreError> {
        let key = key.clone();
        self.blocking("put", key.to_string(), move |root| put_blocking(root, &key, &body))
            .await
    }

    async fn get(&self, key: &ObjectKey, version: Option<&VersionId>) -> Result<Object, StoreError> {
        let key = key.clone();
        let version = version.cloned();
        self.blocking("get", key.to_string(), move |root| {
            get_blocking(root, &key, version.as_ref())
        })
        .await
    }

    async fn head(&self, key: &ObjectKey) -> Result<Option<ObjectHead>, StoreError> {
        let key = key.clone();
        self.blocking("head", key.to_string(), move |root| head_blocking(root, &key))
            .await
    }

    async fn list_latest(
        &self,
        prefix: &KeyPrefix,
        page_token: Option<&str>,
        limit: usize,
    ) -> Result<ListPage<ObjectHead>, StoreError> {
        let prefix = prefix.clone();
        let token = page_token.map(str::to_owned);
        self.blocking("list", prefix.to_string(), move |root| {
            list_latest_blocking(root, &prefix, token.as_deref(), limit)
        })
        .await
    }

    async fn list_versions(
        &self,
        prefix: &KeyPrefix,
        page_token: Option<&str>,
        limit: usize,
    ) -> Result<ListPage<ObjectVersion>, StoreError> {
        let prefix = prefix.clone();
        let token = page_token.map(str::to_owned);
        self.blocking("list", prefix.to_string(), move |root| {
            list_versions_blocking(root, &prefix, token.as_deref(), limit)
        })
        .await
    }

    async fn delete(&self, key: &ObjectKey) -> Result<Option<VersionId>, StoreError> {
        let key = key.clone();
        self.blocking("delete", key.to_string(), move |root| delete_blocking(root, &key))
            .await
    }

    async fn delete_version(&self, key: &ObjectKey, version: &VersionId) -> Result<(), StoreError> {
        let key = key.clone();
        let version = version.clone();
        self.blocking("delete_version", key.to_string(), move |root| {
            delete_version_blocking(root, &key, &version)
        })
        .await
    }

    async fn presign_get(
        &self,
        _key: &ObjectKey,
        _version: &VersionId,
        _ttl: Duration,
    ) -> Result<Option<String>, StoreError> {
        Ok(None)
    }

    async fn check(&self) -> Result<(), StoreError> {
        let root = self.root.display().to_string();
        self.blocking("check", root, check_blocking).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(id: &str, deleted: bool) -> LogEntry {
        LogEntry {
            version_id: id.to_owned(),
            sha256: (!deleted).then(|| "0".repeat(64)),
            size: if deleted { 0 } else { 3 },
            modified: 1_700_000_000_000_000_000,
            deleted,
        }
    }

    fn line(entry: &LogEntry) -> Vec<u8> {
        let mut line = serde_json::to_vec(entry).unwrap();
        line.push(b'\n');
        line
    }

    #[test]
    fn keys_map_to_suffixed_paths_under_the_root() {
        let root = Path::new("/store");
        let path = |key: &str| log_path(root, &ObjectKey::parse(key).unwrap()).unwrap();
        assert_eq!(path("a"), Path::new("/store/keys/a.v"));
        assert_eq!(path("a/b"), Path::new("/store/keys/a.d/b.v"));
        assert_eq!(path("a.d/b.v"), Path::new("/store/keys/a.d.d/b.v.v"));
        assert_eq!(path(".hidden/..x"), Path::new("/store/keys/.hidden.d/..x.v"));
        let prefix = |p: &str| prefix_dir(root, &KeyPrefix::parse(p).unwrap()).unwrap();
        assert_eq!(prefix(""), Path::new("/store/keys"));
        assert_eq!(prefix("a/b/"), Path::new("/store/keys/a.d/b.d"));
    }

    #[test]
    fn unsafe_segments_are_refused_even_if_they_got_through() {
        for bad in ["", ".", "..", "a b", "a\\b", "é", "a\0"] {
            assert!(!is_safe_segment(bad), "{bad:?}");
        }
        for good in ["a", ".a", "..a", "a.", "A-Z_0.9"] {
            assert!(is_safe_segment(good), "{good:?}");
        }
    }

    #[test]
    fn a_torn_or_unreadable_last_line_is_ignored() {
        let mut bytes = line(&entry("0000000000000001aaaaaaaa", false));
        let valid = bytes.len();
        bytes.extend_from_slice(br#"{"version_id":"00"#);
        let (entries, parsed_valid) = parse_log(&bytes, "k").unwrap();
        assert_eq!(entries.len(), 1);
        assert_eq!(parsed_valid, valid);

        let mut bytes = line(&entry("0000000000000001aaaaaaaa", false));
        bytes.extend_from_slice(b"\0\0\0\n");
        let (entries, parsed_valid) = parse_log(&bytes, "k").unwrap();
        assert_eq!(entries.len(), 1);
        assert_eq!(parsed_valid, valid);
    }

    #[test]
    fn a_corrupt_line_before_the_last_is_an_error() {
        let mut bytes = b"garbage\n".to_vec();
        bytes.extend(line(&entry("0000000000000001aaaaaaaa", true)));
        assert!(matches!(parse_log(&bytes, "k"), Err(StoreError::Internal { .. })));
    }

    #[test]
    fn version_ids_increase_within_a_key_even_if_the_clock_steps_back() {
        let future = format!("{:016x}{:08x}", now_micros() + 60_000_000, 7);
        let next = new_version_id(&[entry(&future, false)]);
        assert!(next > future, "{next} <= {future}");
        assert_eq!(next.len(), 24);
        assert!(VersionId::new(next).is_ok());
    }

    #[test]
    fn blob_paths_need_a_real_hash() {
        let root = Path::new("/store");
        let sha = sha256_hex(b"abc");
        assert_eq!(
            blob_path(root, &sha).unwrap(),
            Path::new("/store/blobs/ba").join("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        );
        assert!(blob_path(root, "../../etc/passwd").is_none());
        assert!(blob_path(root, &"G".repeat(64)).is_none());
    }
}
