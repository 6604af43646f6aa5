//! The behaviour every [`VersionedStore`] backend must share, written once
//! and run unchanged against each (see `fs_store.rs` and `s3_store.rs`).
//!
//! Each check takes a fresh, empty store. [`conformance_suite!`] turns every
//! check into one `#[tokio::test]` of the including test crate.

use std::sync::Arc;

use bytes::Bytes;
use futures_util::TryStreamExt;
use rat_versioning::{
    KeyPrefix, ListPage, ObjectHead, ObjectKey, ObjectVersion, StoreError, VersionId, VersionedStore,
};
use time::OffsetDateTime;

/// A fresh store for one test, plus whatever must live as long as it (a
/// temporary directory, ...).
pub type Fixture = (Arc<dyn VersionedStore>, Box<dyn std::any::Any + Send>);

/// Generates one `#[tokio::test]` per conformance check; `$fixture` is an
/// `async fn() -> conformance::Fixture` giving a fresh, empty store.
#[macro_export]
macro_rules! conformance_suite {
    ($fixture:path) => {
        $crate::conformance_suite!(@tests $fixture;
            put_returns_distinct_version_ids,
            get_reads_every_version_after_overwrite_and_delete,
            head_tracks_the_latest_version,
            delete_leaves_a_marker_listed_as_latest,
            list_latest_omits_deleted_keys_in_key_order,
            list_latest_pages_with_a_small_limit,
            listings_only_return_keys_under_the_prefix,
            a_key_and_a_directory_of_the_same_name_coexist,
            delete_version_removes_exactly_one_version,
            deleting_the_marker_or_every_version_behaves_like_s3,
            missing_keys_and_versions_are_not_found,
            a_version_of_another_key_is_not_found,
            a_delete_marker_version_cannot_be_read,
            binary_and_empty_bodies_round_trip,
            list_versions_pages_with_a_small_limit,
            deleting_a_missing_key_is_not_an_error,
            a_key_can_be_written_again_after_delete,
            check_succeeds,
            put_stream_writes_small_and_multi_part_content,
            a_failing_stream_writes_nothing,
            open_reads_any_version_in_pieces,
        );
    };
    (@tests $fixture:path; $($check:ident),+ $(,)?) => {
        $(
            #[tokio::test]
            async fn $check() {
                let (store, _guard) = $fixture().await;
                $crate::conformance::$check(store).await;
            }
        )+
    };
}

fn key(text: &str) -> ObjectKey {
    ObjectKey::parse(text).unwrap()
}

fn prefix(text: &str) -> KeyPrefix {
    KeyPrefix::parse(text).unwrap()
}

async fn put(store: &Arc<dyn VersionedStore>, k: &str, body: &[u8]) -> VersionId {
    store.put(&key(k), body.to_vec(), "text/plain").await.unwrap()
}

async fn body_at(store: &Arc<dyn VersionedStore>, k: &str, version: Option<&VersionId>) -> Vec<u8> {
    let object = store.get(&key(k), version).await.unwrap();
    if let Some(version) = version {
        assert_eq!(&object.version_id, version, "get answered another version");
    }
    object.body
}

fn assert_not_found<T: std::fmt::Debug>(result: Result<T, StoreError>, what: &str) {
    match result {
        Err(StoreError::NotFound { .. }) => {}
        other => panic!("{what}: expected NotFound, got {other:?}"),
    }
}

fn assert_recent(at: OffsetDateTime) {
    let age = OffsetDateTime::now_utc() - at;
    assert!(
        age < time::Duration::minutes(5) && age > time::Duration::minutes(-5),
        "last_modified {at} is not close to now"
    );
}

/// Every page of `list_latest` (at most `limit` items each), checking page sizes.
async fn latest_pages(store: &Arc<dyn VersionedStore>, p: &str, limit: usize) -> Vec<ListPage<ObjectHead>> {
    let mut pages = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let page = store.list_latest(&prefix(p), token.as_deref(), limit).await.unwrap();
        assert!(
            page.items.len() <= limit,
            "a page of {} items for limit {limit}",
            page.items.len()
        );
        token = page.next.clone();
        pages.push(page);
        assert!(pages.len() < 1000, "list_latest does not end");
        if token.is_none() {
            return pages;
        }
    }
}

async fn latest(store: &Arc<dyn VersionedStore>, p: &str) -> Vec<(String, VersionId)> {
    latest_pages(store, p, 1000)
        .await
        .into_iter()
        .flat_map(|page| page.items)
        .map(|head| (head.key.to_string(), head.version_id))
        .collect()
}

async fn version_pages(store: &Arc<dyn VersionedStore>, p: &str, limit: usize) -> Vec<ListPage<ObjectVersion>> {
    let mut pages = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let page = store.list_versions(&prefix(p), token.as_deref(), limit).await.unwrap();
        assert!(
            page.items.len() <= limit,
            "a page of {} items for limit {limit}",
            page.items.len()
        );
        token = page.next.clone();
        pages.push(page);
        assert!(pages.len() < 1000, "list_versions does not end");
        if token.is_none() {
            return pages;
        }
    }
}

/// `(key, version, is_latest, is_delete_marker)` of every version under `p`.
async fn versions(store: &Arc<dyn VersionedStore>, p: &str) -> Vec<(String, VersionId, bool, bool)> {
    version_pages(store, p, 1000)
        .await
        .into_iter()
        .flat_map(|page| page.items)
        .map(|v| (v.key.to_string(), v.version_id, v.is_latest, v.is_delete_marker))
        .collect()
}

/// Writing a key again, even with the same bytes, makes a new version.
pub async fn put_returns_distinct_version_ids(store: Arc<dyn VersionedStore>) {
    let ids = [
        put(&store, "p/a.sql", b"select 1").await,
        put(&store, "p/a.sql", b"select 1").await,
        put(&store, "p/a.sql", b"select 2").await,
        put(&store, "p/b.sql", b"select 1").await,
    ];
    for (i, a) in ids.iter().enumerate() {
        for b in &ids[i + 1..] {
            assert_ne!(a, b);
        }
    }
    let listed: Vec<VersionId> = versions(&store, "p/").await.into_iter().map(|v| v.1).collect();
    assert_eq!(
        listed,
        vec![ids[2].clone(), ids[1].clone(), ids[0].clone(), ids[3].clone()]
    );
}

/// Every old version stays readable by id, after overwrites and after a delete.
pub async fn get_reads_every_version_after_overwrite_and_delete(store: Arc<dyn VersionedStore>) {
    let v1 = put(&store, "ns/p/config.yaml", b"one").await;
    assert_eq!(body_at(&store, "ns/p/config.yaml", None).await, b"one");
    let v2 = put(&store, "ns/p/config.yaml", b"two").await;
    let v3 = put(&store, "ns/p/config.yaml", b"three").await;
    let head = store.get(&key("ns/p/config.yaml"), None).await.unwrap();
    assert_eq!(head.version_id, v3);
    assert_eq!(head.body, b"three");
    assert_recent(head.last_modified);
    for (version, body) in [(&v1, &b"one"[..]), (&v2, b"two"), (&v3, b"three")] {
        assert_eq!(body_at(&store, "ns/p/config.yaml", Some(version)).await, body);
    }
    store.delete(&key("ns/p/config.yaml")).await.unwrap();
    assert_not_found(
        store.get(&key("ns/p/config.yaml"), None).await,
        "get at HEAD after delete",
    );
    for (version, body) in [(&v1, &b"one"[..]), (&v2, b"two"), (&v3, b"three")] {
        assert_eq!(body_at(&store, "ns/p/config.yaml", Some(version)).await, body);
    }
}

/// `head` names the current version, and nothing once the key is deleted.
pub async fn head_tracks_the_latest_version(store: Arc<dyn VersionedStore>) {
    let k = key("h/file.txt");
    assert_eq!(store.head(&k).await.unwrap(), None);
    let v1 = put(&store, "h/file.txt", b"12345").await;
    let head = store.head(&k).await.unwrap().unwrap();
    assert_eq!(
        (head.key.clone(), head.version_id.clone(), head.size),
        (k.clone(), v1, 5)
    );
    assert_recent(head.last_modified);
    let v2 = put(&store, "h/file.txt", b"123").await;
    let head = store.head(&k).await.unwrap().unwrap();
    assert_eq!((head.version_id, head.size), (v2, 3));
    store.delete(&k).await.unwrap();
    assert_eq!(store.head(&k).await.unwrap(), None);
    let v3 = put(&store, "h/file.txt", b"1").await;
    assert_eq!(store.head(&k).await.unwrap().unwrap().version_id, v3);
}

/// A delete writes a marker that is the latest entry; the versions stay.
pub async fn delete_leaves_a_marker_listed_as_latest(store: Arc<dyn VersionedStore>) {
    let v1 = put(&store, "d/x", b"first").await;
    let v2 = put(&store, "d/x", b"second!").await;
    let marker = store.delete(&key("d/x")).await.unwrap().expect("a delete marker id");
    assert_ne!(marker, v1);
    assert_ne!(marker, v2);
    let page = store.list_versions(&prefix("d/"), None, 1000).await.unwrap();
    assert_eq!(page.next, None);
    let summary: Vec<(&str, &VersionId, bool, bool, u64)> = page
        .items
        .iter()
        .map(|v| (v.key.as_str(), &v.version_id, v.is_latest, v.is_delete_marker, v.size))
        .collect();
    assert_eq!(
        summary,
        vec![
            ("d/x", &marker, true, true, 0),
            ("d/x", &v2, false, false, 7),
            ("d/x", &v1, false, false, 5),
        ]
    );
    for version in &page.items {
        assert_recent(version.last_modified);
    }
    assert_eq!(body_at(&store, "d/x", Some(&v1)).await, b"first");
    assert_eq!(body_at(&store, "d/x", Some(&v2)).await, b"second!");
    assert_eq!(latest(&store, "d/").await, vec![]);
}

/// `list_latest` is in byte order of the keys (S3's order) and leaves out
/// deleted keys.
pub async fn list_latest_omits_deleted_keys_in_key_order(store: Arc<dyn VersionedStore>) {
    let mut expected = Vec::new();
    for k in ["l/b", "l/a/x", "l/a0", "l/a", "l/c", "l/a.b", "l/a-b", "l/a/y/z", "l/B"] {
        let version = put(&store, k, k.as_bytes()).await;
        expected.push((k.to_owned(), version));
    }
    store.delete(&key("l/c")).await.unwrap();
    store.delete(&key("l/a/x")).await.unwrap();
    expected.retain(|(k, _)| k != "l/c" && k != "l/a/x");
    expected.sort();
    let order: Vec<&str> = expected.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(order, ["l/B", "l/a", "l/a-b", "l/a.b", "l/a/y/z", "l/a0", "l/b"]);
    assert_eq!(latest(&store, "l/").await, expected);
    let heads = latest_pages(&store, "l/", 1000).await.remove(0).items;
    for head in heads {
        assert_eq!(head.size, head.key.as_str().len() as u64);
        assert_recent(head.last_modified);
    }
}

/// Paging with a small limit returns every key once, over several pages.
pub async fn list_latest_pages_with_a_small_limit(store: Arc<dyn VersionedStore>) {
    let mut expected = Vec::new();
    for i in 0..9 {
        let k = format!("pg/f{i}");
        let version = put(&store, &k, b"x").await;
        expected.push((k, version));
    }
    store.delete(&key("pg/f4")).await.unwrap();
    expected.retain(|(k, _)| k != "pg/f4");
    let pages = latest_pages(&store, "pg/", 2).await;
    assert!(pages.len() >= 4, "8 keys with limit 2 came in {} pages", pages.len());
    for page in &pages[..pages.len() - 1] {
        assert!(page.next.is_some());
    }
    let all: Vec<(String, VersionId)> = pages
        .into_iter()
        .flat_map(|page| page.items)
        .map(|head| (head.key.to_string(), head.version_id))
        .collect();
    assert_eq!(all, expected);
}

/// A prefix is a directory: `a/` does not match `ab/x` or `a` itself.
pub async fn listings_only_return_keys_under_the_prefix(store: Arc<dyn VersionedStore>) {
    for k in ["a", "a/x", "a/y/z", "ab/x", "b/a/x", "a-b/x"] {
        put(&store, k, b"1").await;
    }
    let keys = |list: Vec<(String, VersionId)>| list.into_iter().map(|(k, _)| k).collect::<Vec<_>>();
    assert_eq!(keys(latest(&store, "a/").await), ["a/x", "a/y/z"]);
    assert_eq!(keys(latest(&store, "a/y/").await), ["a/y/z"]);
    assert_eq!(keys(latest(&store, "c/").await), Vec::<String>::new());
    assert_eq!(
        keys(latest(&store, "").await),
        ["a", "a-b/x", "a/x", "a/y/z", "ab/x", "b/a/x"]
    );
    let listed: Vec<String> = versions(&store, "a/").await.into_iter().map(|v| v.0).collect();
    assert_eq!(listed, ["a/x", "a/y/z"]);
}

/// A file `a` and a file `a/b` are independent.
pub async fn a_key_and_a_directory_of_the_same_name_coexist(store: Arc<dyn VersionedStore>) {
    let va = put(&store, "n/a", b"file a").await;
    let vab = put(&store, "n/a/b", b"file a/b").await;
    assert_eq!(body_at(&store, "n/a", None).await, b"file a");
    assert_eq!(body_at(&store, "n/a/b", None).await, b"file a/b");
    assert_eq!(
        latest(&store, "n/").await,
        vec![("n/a".to_owned(), va), ("n/a/b".to_owned(), vab.clone())]
    );
    store.delete(&key("n/a")).await.unwrap();
    assert_eq!(latest(&store, "n/").await, vec![("n/a/b".to_owned(), vab)]);
    assert_eq!(body_at(&store, "n/a/b", None).await, b"file a/b");
}

/// `delete_version` removes one version; the others (and HEAD) stay right.
pub async fn delete_version_removes_exactly_one_version(store: Arc<dyn VersionedStore>) {
    let k = key("dv/f");
    let v1 = put(&store, "dv/f", b"1").await;
    let v2 = put(&store, "dv/f", b"22").await;
    let v3 = put(&store, "dv/f", b"333").await;
    let other = put(&store, "dv/g", b"other").await;
    store.delete_version(&k, &v2).await.unwrap();
    assert_not_found(store.get(&k, Some(&v2)).await, "get of a removed version");
    assert_eq!(
        versions(&store, "dv/").await,
        vec![
            ("dv/f".to_owned(), v3.clone(), true, false),
            ("dv/f".to_owned(), v1.clone(), false, false),
            ("dv/g".to_owned(), other.clone(), true, false),
        ]
    );
    assert_eq!(body_at(&store, "dv/f", None).await, b"333");
    // Removing the latest version makes the one before it HEAD again.
    store.delete_version(&k, &v3).await.unwrap();
    assert_eq!(store.head(&k).await.unwrap().unwrap().version_id, v1);
    assert_eq!(body_at(&store, "dv/f", None).await, b"1");
    // Removing a version that is already gone is not an error.
    store.delete_version(&k, &v2).await.unwrap();
    assert_eq!(
        versions(&store, "dv/").await,
        vec![
            ("dv/f".to_owned(), v1, true, false),
            ("dv/g".to_owned(), other, true, false),
        ]
    );
}

/// Removing the delete marker undeletes; removing every version forgets the key.
pub async fn deleting_the_marker_or_every_version_behaves_like_s3(store: Arc<dyn VersionedStore>) {
    let k = key("u/f");
    let v1 = put(&store, "u/f", b"1").await;
    let marker = store.delete(&k).await.unwrap().unwrap();
    assert_eq!(store.head(&k).await.unwrap(), None);
    store.delete_version(&k, &marker).await.unwrap();
    assert_eq!(store.head(&k).await.unwrap().unwrap().version_id, v1);
    assert_eq!(latest(&store, "u/").await, vec![("u/f".to_owned(), v1.clone())]);
    store.delete_version(&k, &v1).await.unwrap();
    assert_eq!(store.head(&k).await.unwrap(), None);
    assert_eq!(versions(&store, "u/").await, vec![]);
    assert_eq!(latest(&store, "u/").await, vec![]);
    assert_not_found(store.get(&k, None).await, "get of a purged key");
    let v2 = put(&store, "u/f", b"again").await;
    assert_eq!(versions(&store, "u/").await, vec![("u/f".to_owned(), v2, true, false)]);
}

/// Missing keys and versions answer `NotFound`, never another error.
pub async fn missing_keys_and_versions_are_not_found(store: Arc<dyn VersionedStore>) {
    assert_not_found(store.get(&key("m/none"), None).await, "get of a missing key");
    let v1 = put(&store, "m/some", b"1").await;
    assert_not_found(
        store.get(&key("m/none"), Some(&v1)).await,
        "get of a missing key at a version",
    );
    let made_up = VersionId::new("00000000000000000000deadbeef").unwrap();
    assert_not_found(
        store.get(&key("m/some"), Some(&made_up)).await,
        "get of a made-up version",
    );
    assert_eq!(latest(&store, "none/").await, vec![]);
    assert_eq!(versions(&store, "none/").await, vec![]);
    match store.get(&key("m/none"), None).await {
        Err(StoreError::NotFound { key, version }) => {
            assert_eq!(key, "m/none");
            assert_eq!(version, None);
        }
        other => panic!("expected NotFound, got {other:?}"),
    }
}

/// A version id is only valid for the key that issued it.
pub async fn a_version_of_another_key_is_not_found(store: Arc<dyn VersionedStore>) {
    let va = put(&store, "o/a", b"a").await;
    let vb = put(&store, "o/b", b"b").await;
    assert_not_found(
        store.get(&key("o/a"), Some(&vb)).await,
        "get with the version of another key",
    );
    assert_eq!(body_at(&store, "o/a", Some(&va)).await, b"a");
    // Removing "the version of another key" changes nothing.
    store.delete_version(&key("o/a"), &vb).await.unwrap();
    assert_eq!(body_at(&store, "o/b", Some(&vb)).await, b"b");
    assert_eq!(body_at(&store, "o/a", Some(&va)).await, b"a");
}

/// A delete marker has no content to read.
pub async fn a_delete_marker_version_cannot_be_read(store: Arc<dyn VersionedStore>) {
    put(&store, "dm/f", b"1").await;
    let marker = store.delete(&key("dm/f")).await.unwrap().unwrap();
    assert_not_found(store.get(&key("dm/f"), Some(&marker)).await, "get of a delete marker");
}

/// Bodies come back byte for byte: 1 MiB of every byte value, and nothing.
pub async fn binary_and_empty_bodies_round_trip(store: Arc<dyn VersionedStore>) {
    let mut state: u32 = 0x1234_5678;
    let body: Vec<u8> = (0..1024 * 1024)
        .map(|i| {
            state = state.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            if i < 256 { i as u8 } else { (state >> 24) as u8 }
        })
        .collect();
    let version = store
        .put(&key("bin/blob.bin"), body.clone(), "application/octet-stream")
        .await
        .unwrap();
    let object = store.get(&key("bin/blob.bin"), Some(&version)).await.unwrap();
    assert!(object.body == body, "the 1 MiB body came back different");
    assert_eq!(
        store.head(&key("bin/blob.bin")).await.unwrap().unwrap().size,
        1024 * 1024
    );
    let empty = put(&store, "bin/empty", b"").await;
    assert_eq!(body_at(&store, "bin/empty", Some(&empty)).await, b"");
    assert_eq!(store.head(&key("bin/empty")).await.unwrap().unwrap().size, 0);
    assert_eq!(body_at(&store, "bin/blob.bin", None).await.len(), 1024 * 1024);
}

/// Paging `list_versions` with a small limit returns every entry once, in
/// order (key, then newest first), even when a page ends inside a key.
pub async fn list_versions_pages_with_a_small_limit(store: Arc<dyn VersionedStore>) {
    let mut expected = Vec::new();
    for k in ["lv/a", "lv/b", "lv/c"] {
        let mut ids = Vec::new();
        for i in 0..3 {
            ids.push((put(&store, k, format!("{k}{i}").as_bytes()).await, false));
        }
        if k == "lv/b" {
            ids.push((store.delete(&key(k)).await.unwrap().unwrap(), true));
        }
        let newest = ids.len() - 1;
        for (i, (id, marker)) in ids.into_iter().enumerate().rev() {
            expected.push((k.to_owned(), id, i == newest, marker));
        }
    }
    assert_eq!(versions(&store, "lv/").await, expected);
    let pages = version_pages(&store, "lv/", 3).await;
    assert!(
        pages.len() >= 4,
        "10 entries with limit 3 came in {} pages",
        pages.len()
    );
    let paged: Vec<(String, VersionId, bool, bool)> = pages
        .into_iter()
        .flat_map(|page| page.items)
        .map(|v| (v.key.to_string(), v.version_id, v.is_latest, v.is_delete_marker))
        .collect();
    assert_eq!(paged, expected);
}

/// Deleting a key that never existed succeeds and changes nothing visible
/// (whether a marker is written differs: AWS and the filesystem store write
/// one, moto does not).
pub async fn deleting_a_missing_key_is_not_an_error(store: Arc<dyn VersionedStore>) {
    store.delete(&key("never/was")).await.unwrap();
    assert_eq!(store.head(&key("never/was")).await.unwrap(), None);
    assert_not_found(store.get(&key("never/was"), None).await, "get of a never written key");
    assert_eq!(latest(&store, "never/").await, vec![]);
}

/// After a delete, a new write makes the key visible again.
pub async fn a_key_can_be_written_again_after_delete(store: Arc<dyn VersionedStore>) {
    let v1 = put(&store, "r/f", b"1").await;
    store.delete(&key("r/f")).await.unwrap();
    let v2 = put(&store, "r/f", b"2").await;
    assert_ne!(v1, v2);
    assert_eq!(latest(&store, "r/").await, vec![("r/f".to_owned(), v2.clone())]);
    assert_eq!(body_at(&store, "r/f", None).await, b"2");
    let listed = versions(&store, "r/").await;
    assert_eq!(listed.len(), 3);
    assert_eq!(listed[0], ("r/f".to_owned(), v2, true, false));
    // The marker is older than v2 and newer than v1, but a server may list
    // them only as exactly as its timestamps allow (moto: whole seconds).
    let older: Vec<(VersionId, bool, bool)> = listed[1..].iter().map(|v| (v.1.clone(), v.2, v.3)).collect();
    assert!(older.contains(&(v1, false, false)), "{older:?}");
    assert_eq!(older.iter().filter(|v| v.2 && !v.1).count(), 1, "{older:?}");
}

/// A healthy store passes its readiness check.
pub async fn check_succeeds(store: Arc<dyn VersionedStore>) {
    store.check().await.unwrap();
    put(&store, "c/f", b"1").await;
    store.check().await.unwrap();
}

/// `total` bytes of a repeating pattern, as pieces of `piece` bytes.
fn pieces(total: usize, piece: usize) -> (Vec<u8>, Vec<std::io::Result<Bytes>>) {
    let content: Vec<u8> = (0..total).map(|i| (i % 251) as u8).collect();
    let chunks = content
        .chunks(piece.max(1))
        .map(|c| Ok(Bytes::copy_from_slice(c)))
        .collect();
    (content, chunks)
}

async fn put_pieces(
    store: &Arc<dyn VersionedStore>,
    k: &str,
    chunks: Vec<std::io::Result<Bytes>>,
) -> Result<rat_versioning::Written, StoreError> {
    let mut source = futures_util::stream::iter(chunks);
    store.put_stream(&key(k), &mut source, "application/octet-stream").await
}

pub async fn put_stream_writes_small_and_multi_part_content(store: Arc<dyn VersionedStore>) {
    // Empty, small, and larger than a part (S3 writes that as a multipart
    // upload), in uneven pieces.
    for (total, piece) in [(0, 1), (3, 1), (11 * 1024 * 1024 + 17, 300_001)] {
        let (content, chunks) = pieces(total, piece);
        let written = put_pieces(&store, "stream/file.bin", chunks).await.unwrap();
        assert_eq!(written.size, total as u64);
        let head = store.head(&key("stream/file.bin")).await.unwrap().unwrap();
        assert_eq!(head.version_id, written.version_id, "{total} bytes");
        assert_eq!(head.size, total as u64);
        assert!(
            body_at(&store, "stream/file.bin", Some(&written.version_id)).await == content,
            "{total} bytes read back as written"
        );
    }
    assert_eq!(versions(&store, "stream/").await.len(), 3);
}

pub async fn a_failing_stream_writes_nothing(store: Arc<dyn VersionedStore>) {
    let before = put(&store, "stream/kept.csv", b"kept").await;
    for total in [10, 9 * 1024 * 1024] {
        let (_, mut chunks) = pieces(total, 1024 * 1024);
        chunks.push(Err(std::io::Error::other("the client went away")));
        let error = put_pieces(&store, "stream/kept.csv", chunks).await.unwrap_err();
        assert!(matches!(error, StoreError::BodyFailed { .. }), "{error:?}");
    }
    let head = store.head(&key("stream/kept.csv")).await.unwrap().unwrap();
    assert_eq!(head.version_id, before, "HEAD is still the version before");
    assert_eq!(versions(&store, "stream/").await.len(), 1, "no version was added");
    assert_eq!(body_at(&store, "stream/kept.csv", None).await, b"kept");
}

pub async fn open_reads_any_version_in_pieces(store: Arc<dyn VersionedStore>) {
    let (content, chunks) = pieces(300 * 1024 + 5, 64 * 1024);
    let first = put_pieces(&store, "open/data.bin", chunks).await.unwrap();
    let second = put(&store, "open/data.bin", b"second").await;
    let read = |version: Option<VersionId>| {
        let store = store.clone();
        async move {
            let download = store.open(&key("open/data.bin"), version.as_ref()).await.unwrap();
            let pieces: Vec<Bytes> = download.body.try_collect().await.unwrap();
            (download.version_id, download.size, pieces.concat())
        }
    };
    let (version, size, body) = read(Some(first.version_id.clone())).await;
    assert_eq!((version, size), (first.version_id.clone(), content.len() as u64));
    assert!(body == content, "the first version, whole");
    assert_eq!(read(None).await, (second.clone(), 6, b"second".to_vec()));
    store.delete(&key("open/data.bin")).await.unwrap();
    assert_not_found(
        store.open(&key("open/data.bin"), None).await.map(|d| d.size),
        "deleted at HEAD",
    );
    assert_not_found(
        store.open(&key("open/none.bin"), None).await.map(|d| d.size),
        "never written",
    );
    let (version, _, _) = read(Some(second.clone())).await;
    assert_eq!(version, second, "older versions stay readable");
}
