//! The filesystem backend: the shared conformance suite on a fresh directory
//! per test, plus what only a filesystem can get wrong (concurrent writers in
//! several processes, torn writes, paths leaving the root, reopening).

use std::collections::HashSet;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rat_versioning::fs::FsStore;
use rat_versioning::{KeyPrefix, ObjectKey, StoreError, VersionId, VersionedStore};
use tempfile::TempDir;

/// Set in the environment of the child processes of
/// `concurrent_processes_writing_one_key_lose_no_version`.
const CHILD_ROOT_ENV: &str = "RAT_FS_STORE_CHILD_ROOT";
const CHILD_TAG_ENV: &str = "RAT_FS_STORE_CHILD_TAG";
const CHILD_PUTS: usize = 40;

/// A fresh directory under cargo's per-target temporary directory, removed on drop.
fn temp_dir() -> TempDir {
    tempfile::Builder::new()
        .prefix("fs-store-")
        .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
        .unwrap()
}

async fn fresh_store() -> crate::conformance::Fixture {
    let dir = temp_dir();
    let store = FsStore::open(dir.path().join("store")).await.unwrap();
    (Arc::new(store), Box::new(dir))
}

crate::conformance_suite!(fresh_store);

fn key(text: &str) -> ObjectKey {
    ObjectKey::parse(text).unwrap()
}

fn prefix(text: &str) -> KeyPrefix {
    KeyPrefix::parse(text).unwrap()
}

async fn all_versions(store: &FsStore, p: &str) -> Vec<VersionId> {
    let page = store.list_versions(&prefix(p), None, 1000).await.unwrap();
    assert_eq!(page.next, None);
    page.items.into_iter().map(|v| v.version_id).collect()
}

fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in fs::read_dir(dir).unwrap() {
        let entry = entry.unwrap();
        if entry.file_type().unwrap().is_dir() {
            files.extend(files_under(&entry.path()));
        } else {
            files.push(entry.path());
        }
    }
    files
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_writers_with_separate_instances_lose_no_version() {
    let dir = temp_dir();
    let root = dir.path().join("store");
    FsStore::open(root.clone()).await.unwrap();
    let mut tasks = Vec::new();
    for writer in 0..4 {
        // A separate instance per writer, as separate processes would have.
        let store = FsStore::open(root.clone()).await.unwrap();
        tasks.push(tokio::spawn(async move {
            let mut ids = Vec::new();
            for i in 0..25 {
                let body = format!("writer {writer} put {i}").into_bytes();
                ids.push(store.put(&key("shared/file"), body, "text/plain").await.unwrap());
            }
            ids
        }));
    }
    let mut written = HashSet::new();
    for task in tasks {
        written.extend(task.await.unwrap());
    }
    assert_eq!(written.len(), 100);
    let store = FsStore::open(root).await.unwrap();
    let listed = all_versions(&store, "shared/").await;
    assert_eq!(listed.len(), 100);
    assert_eq!(listed.into_iter().collect::<HashSet<_>>(), written);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_writers_repairing_a_torn_tail_lose_no_version() {
    // Only the lock keeps a writer that cuts off a torn tail from cutting off
    // the line another writer appended after that tail was seen.
    let dir = temp_dir();
    let root = dir.path().join("store");
    let stores: Vec<FsStore> = (0..4).map(|_| FsStore::open_blocking(root.clone()).unwrap()).collect();
    let log = stores[0].root().join("keys/torn.d/f.v");
    let mut written = HashSet::new();
    written.insert(
        stores[0]
            .put(&key("torn/f"), b"first".to_vec(), "text/plain")
            .await
            .unwrap(),
    );
    for round in 0..30 {
        fs::OpenOptions::new()
            .append(true)
            .open(&log)
            .unwrap()
            .write_all(br#"{"version_id":"torn"#)
            .unwrap();
        let tasks: Vec<_> = stores
            .iter()
            .cloned()
            .enumerate()
            .map(|(writer, store)| {
                tokio::spawn(async move {
                    let body = format!("round {round} writer {writer}").into_bytes();
                    store.put(&key("torn/f"), body, "text/plain").await.unwrap()
                })
            })
            .collect();
        for task in tasks {
            written.insert(task.await.unwrap());
        }
    }
    let listed: HashSet<VersionId> = all_versions(&stores[0], "torn/").await.into_iter().collect();
    assert_eq!(listed.len(), written.len());
    assert_eq!(listed, written);
}

/// Not a test of its own: the body of the child processes of the next test
/// (does nothing unless started by it).
#[tokio::test]
async fn fs_store_child_writer() {
    let (Ok(root), Ok(tag)) = (std::env::var(CHILD_ROOT_ENV), std::env::var(CHILD_TAG_ENV)) else {
        return;
    };
    let store = FsStore::open(PathBuf::from(root)).await.unwrap();
    let mut out = std::io::stdout().lock();
    for i in 0..CHILD_PUTS {
        let version = store
            .put(&key("shared/file"), format!("{tag}-{i}").into_bytes(), "text/plain")
            .await
            .unwrap();
        writeln!(out, "VERSION {version}").unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_processes_writing_one_key_lose_no_version() {
    let dir = temp_dir();
    let root = dir.path().join("store");
    let store = FsStore::open(root.clone()).await.unwrap();
    let exe = std::env::current_exe().unwrap();
    let children: Vec<_> = (0..3)
        .map(|tag| {
            std::process::Command::new(&exe)
                .args([
                    "--exact",
                    &test_name("fs_store_child_writer"),
                    "--nocapture",
                    "--test-threads=1",
                ])
                .env(CHILD_ROOT_ENV, &root)
                .env(CHILD_TAG_ENV, tag.to_string())
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::inherit())
                .spawn()
                .unwrap()
        })
        .collect();
    // This process writes at the same time.
    let mut written = HashSet::new();
    for i in 0..CHILD_PUTS {
        written.insert(
            store
                .put(&key("shared/file"), format!("parent-{i}").into_bytes(), "text/plain")
                .await
                .unwrap(),
        );
    }
    for child in children {
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "a child writer failed");
        let text = String::from_utf8(out.stdout).unwrap();
        let ids: Vec<VersionId> = text
            .lines()
            // libtest may print "test name ... " on the same line first.
            .filter_map(|line| line.split_once("VERSION ").map(|(_, id)| id.trim()))
            .map(|id| VersionId::new(id).unwrap())
            .collect();
        assert_eq!(ids.len(), CHILD_PUTS, "a child reported {} versions", ids.len());
        written.extend(ids);
    }
    assert_eq!(written.len(), 4 * CHILD_PUTS);
    let listed = all_versions(&store, "shared/").await;
    assert_eq!(listed.len(), 4 * CHILD_PUTS);
    assert_eq!(listed.into_iter().collect::<HashSet<_>>(), written);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn removing_versions_while_others_append_loses_nothing() {
    // delete_version replaces the log by rename while appenders wait for the
    // lock of the old file: they must notice and append to the new one.
    let dir = temp_dir();
    let root = dir.path().join("store");
    let store = FsStore::open(root.clone()).await.unwrap();
    let mut old = Vec::new();
    for i in 0..30 {
        old.push(
            store
                .put(&key("race/f"), format!("old {i}").into_bytes(), "text/plain")
                .await
                .unwrap(),
        );
    }
    let remover = {
        let store = FsStore::open(root.clone()).await.unwrap();
        let old = old.clone();
        tokio::spawn(async move {
            for version in old {
                store.delete_version(&key("race/f"), &version).await.unwrap();
            }
        })
    };
    let mut appenders = Vec::new();
    for writer in 0..2 {
        let store = FsStore::open(root.clone()).await.unwrap();
        appenders.push(tokio::spawn(async move {
            let mut ids = Vec::new();
            for i in 0..20 {
                let body = format!("new {writer} {i}").into_bytes();
                ids.push(store.put(&key("race/f"), body, "text/plain").await.unwrap());
            }
            ids
        }));
    }
    remover.await.unwrap();
    let mut new = HashSet::new();
    for task in appenders {
        new.extend(task.await.unwrap());
    }
    let listed: HashSet<VersionId> = all_versions(&store, "race/").await.into_iter().collect();
    assert_eq!(listed, new);
}

#[tokio::test]
async fn a_torn_last_line_is_ignored_and_repaired_by_the_next_append() {
    let dir = temp_dir();
    let store = FsStore::open(dir.path().join("store")).await.unwrap();
    let v1 = store.put(&key("t/f"), b"one".to_vec(), "text/plain").await.unwrap();
    let log = store.root().join("keys/t.d/f.v");
    // A crash in the middle of an append leaves half a line.
    fs::OpenOptions::new()
        .append(true)
        .open(&log)
        .unwrap()
        .write_all(br#"{"version_id":"0000000000000000deadbeef","sha25"#)
        .unwrap();
    assert_eq!(store.head(&key("t/f")).await.unwrap().unwrap().version_id, v1);
    assert_eq!(store.get(&key("t/f"), None).await.unwrap().body, b"one");
    assert_eq!(all_versions(&store, "t/").await, vec![v1.clone()]);

    let v2 = store.put(&key("t/f"), b"two".to_vec(), "text/plain").await.unwrap();
    let text = fs::read_to_string(&log).unwrap();
    assert!(text.ends_with('\n'));
    assert_eq!(text.lines().count(), 2, "the torn tail was not cut off: {text:?}");
    for line in text.lines() {
        serde_json::from_str::<serde_json::Value>(line).unwrap();
    }
    assert_eq!(all_versions(&store, "t/").await, vec![v2.clone(), v1.clone()]);

    // A complete but unreadable last line (e.g. zeros after a crash) too.
    fs::OpenOptions::new()
        .append(true)
        .open(&log)
        .unwrap()
        .write_all(b"\0\0\0\0\n")
        .unwrap();
    assert_eq!(store.head(&key("t/f")).await.unwrap().unwrap().version_id, v2);
    let v3 = store.put(&key("t/f"), b"three".to_vec(), "text/plain").await.unwrap();
    assert_eq!(fs::read_to_string(&log).unwrap().lines().count(), 3);
    assert_eq!(all_versions(&store, "t/").await, vec![v3, v2, v1]);
}

#[tokio::test]
async fn a_corrupt_line_inside_a_log_is_an_error_not_a_guess() {
    let dir = temp_dir();
    let store = FsStore::open(dir.path().join("store")).await.unwrap();
    store.put(&key("c/f"), b"one".to_vec(), "text/plain").await.unwrap();
    let log = store.root().join("keys/c.d/f.v");
    let text = fs::read_to_string(&log).unwrap();
    fs::write(&log, format!("garbage\n{text}")).unwrap();
    assert!(matches!(
        store.head(&key("c/f")).await,
        Err(StoreError::Internal { .. })
    ));
    assert!(matches!(
        store.put(&key("c/f"), b"two".to_vec(), "text/plain").await,
        Err(StoreError::Internal { .. })
    ));
    assert_eq!(
        fs::read_to_string(&log).unwrap(),
        format!("garbage\n{text}"),
        "the log was changed"
    );
}

#[tokio::test]
async fn no_key_leaves_the_root_and_lookalike_names_stay_apart() {
    for bad in [
        "../x",
        "a/../../x",
        "/etc/passwd",
        "a/./b",
        "a\\..\\b",
        "..",
        "a//b",
        "a/",
    ] {
        assert!(ObjectKey::parse(bad).is_err(), "{bad:?} was accepted");
        assert!(KeyPrefix::parse(&format!("{bad}/")).is_err(), "{bad:?}/ was accepted");
    }
    let dir = temp_dir();
    let store = FsStore::open(dir.path().join("store")).await.unwrap();
    // Names that look like our own suffixes, temporary files or dot entries.
    let keys = [
        "..a",
        "...",
        ".d",
        ".v",
        "a",
        "a.d",
        "a.v",
        "a/b",
        "a.d/b.v",
        "x.tmp",
        ".hidden/.x",
        "-/_",
        "keys",
        "blobs",
    ];
    for (i, k) in keys.iter().enumerate() {
        store
            .put(&key(k), format!("{i}").into_bytes(), "text/plain")
            .await
            .unwrap();
    }
    for (i, k) in keys.iter().enumerate() {
        assert_eq!(
            store.get(&key(k), None).await.unwrap().body,
            format!("{i}").into_bytes(),
            "{k}"
        );
    }
    let mut sorted: Vec<&str> = keys.to_vec();
    sorted.sort();
    let listed: Vec<String> = rat_versioning::list_all_latest(&store, &prefix(""))
        .await
        .unwrap()
        .into_iter()
        .map(|head| head.key.to_string())
        .collect();
    assert_eq!(listed, sorted);
    let root = fs::canonicalize(store.root()).unwrap();
    for file in files_under(&root) {
        let file = fs::canonicalize(&file).unwrap();
        assert!(file.starts_with(&root), "{} is outside the store", file.display());
        let relative = file.strip_prefix(&root).unwrap();
        let first = relative.components().next().unwrap().as_os_str().to_str().unwrap();
        assert!(
            ["keys", "blobs", "FORMAT"].contains(&first),
            "unexpected {}",
            relative.display()
        );
        if first == "keys" {
            assert!(
                file.to_str().unwrap().ends_with(".v"),
                "stray file {}",
                relative.display()
            );
        }
    }
}

#[tokio::test]
async fn stray_files_in_key_directories_are_not_listed() {
    let dir = temp_dir();
    let store = FsStore::open(dir.path().join("store")).await.unwrap();
    store.put(&key("s/f"), b"1".to_vec(), "text/plain").await.unwrap();
    let keys_dir = store.root().join("keys/s.d");
    fs::write(keys_dir.join(".f.v.0123456789abcdef.tmp"), b"half written").unwrap();
    fs::write(keys_dir.join("notes.txt"), b"not ours").unwrap();
    fs::write(keys_dir.join("bad name.v"), b"not a key").unwrap();
    fs::create_dir(keys_dir.join("plain-dir")).unwrap();
    let listed: Vec<String> = rat_versioning::list_all_latest(&store, &prefix(""))
        .await
        .unwrap()
        .into_iter()
        .map(|head| head.key.to_string())
        .collect();
    assert_eq!(listed, ["s/f"]);
}

#[tokio::test]
async fn versions_and_markers_are_listed_strictly_newest_first() {
    // S3 servers order markers among older versions only as exactly as their
    // timestamps allow; the log order here is exact.
    let dir = temp_dir();
    let store = FsStore::open(dir.path().join("store")).await.unwrap();
    let k = key("h/f");
    let v1 = store.put(&k, b"1".to_vec(), "text/plain").await.unwrap();
    let m1 = store.delete(&k).await.unwrap().unwrap();
    let v2 = store.put(&k, b"2".to_vec(), "text/plain").await.unwrap();
    let m2 = store.delete(&k).await.unwrap().unwrap();
    let v3 = store.put(&k, b"3".to_vec(), "text/plain").await.unwrap();
    let page = store.list_versions(&prefix("h/"), None, 1000).await.unwrap();
    let listed: Vec<(VersionId, bool, bool)> = page
        .items
        .into_iter()
        .map(|v| (v.version_id, v.is_latest, v.is_delete_marker))
        .collect();
    assert_eq!(
        listed,
        vec![
            (v3.clone(), true, false),
            (m2.clone(), false, true),
            (v2.clone(), false, false),
            (m1.clone(), false, true),
            (v1.clone(), false, false),
        ]
    );
    let ids: Vec<VersionId> = vec![v1, m1, v2, m2, v3];
    let mut sorted = ids.clone();
    sorted.sort();
    assert_eq!(sorted, ids, "version ids do not sort by time");
}

#[tokio::test]
async fn everything_survives_reopening_the_store() {
    let dir = temp_dir();
    let root = dir.path().join("store");
    let (v1, v2, marker) = {
        let store = FsStore::open(root.clone()).await.unwrap();
        let v1 = store.put(&key("k/a"), b"a1".to_vec(), "text/plain").await.unwrap();
        let v2 = store.put(&key("k/a"), b"a2".to_vec(), "text/plain").await.unwrap();
        let marker = store.delete(&key("k/b")).await.unwrap().unwrap();
        (v1, v2, marker)
    };
    let store = FsStore::open(root).await.unwrap();
    assert_eq!(store.get(&key("k/a"), Some(&v1)).await.unwrap().body, b"a1");
    assert_eq!(store.head(&key("k/a")).await.unwrap().unwrap().version_id, v2);
    assert_eq!(all_versions(&store, "k/").await, vec![v2, v1, marker]);
}

#[tokio::test]
async fn identical_bodies_share_one_blob_that_outlives_its_versions() {
    let dir = temp_dir();
    let store = FsStore::open(dir.path().join("store")).await.unwrap();
    let va = store.put(&key("b/a"), b"same".to_vec(), "text/plain").await.unwrap();
    store.put(&key("b/b"), b"same".to_vec(), "text/plain").await.unwrap();
    assert_eq!(files_under(&store.root().join("blobs")).len(), 1);
    store.delete_version(&key("b/a"), &va).await.unwrap();
    assert_eq!(store.get(&key("b/b"), None).await.unwrap().body, b"same");
    assert!(
        !store.root().join("keys/b.d/a.v").exists(),
        "the emptied log was not removed"
    );
}

#[tokio::test]
async fn open_refuses_unusable_directories() {
    let dir = temp_dir();
    let foreign = dir.path().join("foreign");
    fs::create_dir(&foreign).unwrap();
    fs::write(foreign.join("notes.txt"), b"mine").unwrap();
    let err = FsStore::open(foreign.clone()).await.unwrap_err();
    assert!(matches!(err, StoreError::Config { .. }), "{err:?}");
    assert!(err.to_string().contains("not a file store"), "{err}");
    assert!(!foreign.join("keys").exists());

    let file = dir.path().join("a-file");
    fs::write(&file, b"").unwrap();
    assert!(matches!(FsStore::open(file).await, Err(StoreError::Config { .. })));

    let other_format = dir.path().join("other");
    fs::create_dir(&other_format).unwrap();
    fs::write(other_format.join("FORMAT"), b"something else\n").unwrap();
    assert!(matches!(
        FsStore::open(other_format).await,
        Err(StoreError::Config { .. })
    ));
}

#[tokio::test]
async fn presign_is_not_supported_and_check_notices_a_vanished_root() {
    let dir = temp_dir();
    let store = FsStore::open(dir.path().join("store")).await.unwrap();
    let version = store.put(&key("p/f"), b"1".to_vec(), "text/plain").await.unwrap();
    let url = store
        .presign_get(&key("p/f"), &version, std::time::Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(url, None);
    store.check().await.unwrap();
    fs::remove_dir_all(store.root()).unwrap();
    assert!(matches!(store.check().await, Err(StoreError::Unavailable { .. })));
}

#[tokio::test]
async fn page_tokens_are_checked() {
    let dir = temp_dir();
    let store = FsStore::open(dir.path().join("store")).await.unwrap();
    for bad in ["../x", "a b"] {
        assert!(matches!(
            store.list_latest(&prefix(""), Some(bad), 10).await,
            Err(StoreError::Invalid(rat_versioning::ObjectError::InvalidKey { .. }))
        ));
    }
    for bad in ["no-separator", "a|", "a|null", "../x|v"] {
        assert!(matches!(
            store.list_versions(&prefix(""), Some(bad), 10).await,
            Err(StoreError::Invalid(rat_versioning::ObjectError::InvalidKey { .. }))
        ));
    }
}

/// The name libtest knows the test function `name` of this module by
/// (`module::name`, the test binary's own name left out).
fn test_name(name: &str) -> String {
    let module = module_path!().split_once("::").map_or("", |(_, module)| module);
    format!("{module}::{name}")
}
