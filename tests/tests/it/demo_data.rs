//! End to end: the demo data set of `cargo xtask dev` is real. Seeded into a
//! fresh database and filesystem store (as `cargo xtask dev` does), then:
//!
//! - a pass of the real `rat-reaper` right after seeding deletes no seeded
//!   run, audit entry or landing file (they are recent);
//! - through the real `rat-api`, every seeded pipeline's files are listed
//!   and readable, its SQL is the seeded SQL (not a starter file), and
//!   every file pinned by each of its published versions exists in the
//!   store at that version;
//! - a run of every published seeded pipeline reaches `success` on the real
//!   dev `rat-runner` (which fetches every pinned file at its pinned
//!   version through the api's runner listener), and so do the seeded runs
//!   still pending;
//! - no seeded run is left `running` with no runner, every finished one has
//!   log lines (served by `GET /runs/{id}/logs`), and every landing file's
//!   content is in the store at its recorded version and size; seeded
//!   tables list their described columns.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use rat_testkit::TestDatabase;
use rat_testkit::demo::{demo_pipelines, seed_demo};
use rat_versioning::fs::FsStore;
use rat_versioning::{ObjectKey, VersionId, VersionedStore};
use serde_json::{Value, json};

async fn count(client: &tokio_postgres::Client, sql: &str) -> i64 {
    client.query_one(sql, &[]).await.unwrap().get(0)
}

async fn get_json(http: &reqwest::Client, url: &str) -> Value {
    let response = http.get(url).send().await.unwrap_or_else(|e| panic!("GET {url}: {e}"));
    let status = response.status();
    let body = response.text().await.unwrap();
    assert!(status.is_success(), "GET {url} answered {status}: {body}");
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("GET {url}: {e}: {body}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_set_has_its_files_survives_the_reaper_and_its_runs_succeed() {
    let db = TestDatabase::new().await;
    let scratch = tests::scratch_dir("demo-data");
    let store_dir = scratch.join("store");
    let store_spec = format!("fs:{}", store_dir.display());
    let store = Arc::new(FsStore::open(store_dir.clone()).await.expect("open the fs store"));
    seed_demo(db.url(), store.clone() as Arc<dyn VersionedStore>, false)
        .await
        .expect("seeding the demo set");

    let client = db.client().await;
    let runs_before: BTreeSet<uuid::Uuid> = client
        .query("SELECT id FROM runs", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    let audit_before = count(&client, "SELECT count(*) FROM audit_log").await;
    let landing_before = count(&client, "SELECT count(*) FROM landing_files").await;
    assert!(runs_before.len() > 100, "seeded runs: {}", runs_before.len());
    assert!(audit_before > 100, "seeded audit entries: {audit_before}");
    // A state a platform could be in: no run `running` without a runner
    // holding it (nothing would ever finish it), every finished run with
    // the lines a runner logs, every landing file's content in the store.
    assert_eq!(
        count(
            &client,
            "SELECT count(*) FROM runs WHERE status = 'running' AND runner_id IS NULL"
        )
        .await,
        0,
        "seeded runs left running with no runner"
    );
    assert_eq!(
        count(
            &client,
            "SELECT count(*) FROM runs r WHERE status IN ('success', 'failed', 'cancelled') AND logs IS NULL \
             AND NOT EXISTS (SELECT 1 FROM run_logs l WHERE l.run_id = r.id)"
        )
        .await,
        0,
        "finished seeded runs without logs"
    );
    let files = client
        .query("SELECT s3_path, s3_version_id, size_bytes FROM landing_files", &[])
        .await
        .unwrap();
    assert_eq!(files.len() as i64, landing_before);
    for file in &files {
        let (path, version, size): (String, Option<String>, i64) = (file.get(0), file.get(1), file.get(2));
        let version = VersionId::new(version.unwrap_or_else(|| panic!("{path}: no version recorded"))).unwrap();
        let object = store
            .get(&ObjectKey::parse(&path).unwrap(), Some(&version))
            .await
            .unwrap_or_else(|e| panic!("landing file {path}@{version}: {e}"));
        assert_eq!(object.body.len() as i64, size, "{path}: size recorded");
        let text = String::from_utf8_lossy(&object.body);
        assert!(
            text.lines().count() > 5 && text.contains(','),
            "{path} is not a CSV:\n{text}"
        );
    }

    // A reaper pass right after seeding, with the default retention.
    let reaper_log = scratch.join("rat-reaper.log");
    let reaper = tests::spawn(
        &tests::binary("rat-reaper"),
        &[
            ("RAT_DATABASE_URL", db.url()),
            ("RAT_DB_POOL_SIZE", "2"),
            ("RAT_STORE", &store_spec),
            ("RAT_REAPER_POLL_SECS", "1"),
            ("RUST_LOG", "info"),
        ],
        &reaper_log,
    );
    let listening =
        rat_testkit::fixtures::wait_for_sessions(&client, "rat-reaper-listener", 1, Duration::from_secs(30)).await;
    assert!(
        listening,
        "rat-reaper did not start listening within 30 s:\n{}",
        tests::tail(&reaper_log, 30)
    );
    let requested = crate::reaper_replicas::request_pass(&client).await;
    crate::reaper_replicas::wait_for_pass_after(&client, requested, &[&reaper_log]).await;
    tests::terminate(&reaper).await;
    drop(reaper);
    let runs_after: BTreeSet<uuid::Uuid> = client
        .query("SELECT id FROM runs", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    let deleted: Vec<_> = runs_before.difference(&runs_after).collect();
    assert!(deleted.is_empty(), "the reaper deleted {} seeded run(s)", deleted.len());
    assert_eq!(
        count(&client, "SELECT count(*) FROM audit_log").await,
        audit_before,
        "the reaper deleted seeded audit entries"
    );
    assert_eq!(
        count(&client, "SELECT count(*) FROM landing_files").await,
        landing_before,
        "the reaper purged seeded landing files"
    );

    // The api and the dev runner, as `cargo xtask dev` starts them.
    let platform = tests::DevPlatform::start(db.url(), &store_spec, &scratch, "demo-test-runner").await;
    let logs = || platform.logs();

    let base = format!("http://{}/api/v1", platform.listen);
    let http = reqwest::Client::new();
    // The run page of a seeded finished run shows its logs.
    let seeded: uuid::Uuid = client
        .query_one(
            "SELECT id FROM runs WHERE status = 'success' AND logs IS NULL ORDER BY created_at DESC LIMIT 1",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    let seeded_logs = get_json(&http, &format!("{base}/runs/{seeded}/logs")).await;
    let lines = seeded_logs["logs"].as_array().cloned().unwrap_or_default();
    assert!(
        lines.len() >= 3
            && lines
                .iter()
                .any(|l| l["message"].as_str().unwrap_or_default().contains("rows written")),
        "the logs of seeded run {seeded}: {seeded_logs}"
    );
    let mut runs = Vec::new();
    for (address, publishes) in demo_pipelines() {
        let (ns, layer, name) = (
            address.namespace.as_str(),
            address.layer.as_str(),
            address.name.as_str(),
        );
        let prefix = format!("{ns}/pipelines/{layer}/{name}/");
        // Files: listed, and each readable.
        let listed = get_json(&http, &format!("{base}/files?prefix={prefix}")).await;
        let paths: BTreeSet<String> = listed["files"]
            .as_array()
            .unwrap_or_else(|| panic!("no files array for {address}: {listed}"))
            .iter()
            .map(|f| f["path"].as_str().unwrap().to_owned())
            .collect();
        for file in ["pipeline.sql", "config.yaml"] {
            assert!(
                paths.contains(&format!("{prefix}{file}")),
                "{address}: {file} not listed in {paths:?}"
            );
        }
        assert!(
            paths.iter().any(|p| p.starts_with(&format!("{prefix}tests/quality/"))),
            "{address}: no quality test listed in {paths:?}"
        );
        for path in &paths {
            let file = get_json(&http, &format!("{base}/files/{path}")).await;
            let content = file["content"].as_str().unwrap_or_default();
            assert!(!content.is_empty(), "{path} reads empty: {file}");
        }
        let sql = get_json(&http, &format!("{base}/files/{prefix}pipeline.sql")).await;
        let sql = sql["content"].as_str().unwrap();
        assert!(
            sql.contains("@merge_strategy") && !sql.contains("SELECT 1 AS id"),
            "{address}: pipeline.sql is not the demo SQL:\n{sql}"
        );
        if layer != "bronze" {
            assert!(sql.contains("{{ ref('"), "{address}: no upstream ref in:\n{sql}");
        }

        // Every published version's pinned files exist in the store, at
        // their pinned versions.
        let versions = get_json(&http, &format!("{base}/pipelines/{ns}/{layer}/{name}/versions")).await;
        let versions = versions["versions"].as_array().unwrap().clone();
        assert_eq!(versions.len(), publishes, "{address}: versions {versions:?}");
        for version in &versions {
            let pins = version["published_versions"].as_object().unwrap();
            assert!(pins.len() >= 3, "{address}: pins {pins:?}");
            for (key, version_id) in pins {
                let key = ObjectKey::parse(key).unwrap();
                let version_id = VersionId::new(version_id.as_str().unwrap()).unwrap();
                let object = store
                    .get(&key, Some(&version_id))
                    .await
                    .unwrap_or_else(|e| panic!("{address}: pinned {key}@{version_id}: {e}"));
                assert!(!object.body.is_empty(), "{key}@{version_id} is empty");
            }
        }
        let pipeline = get_json(&http, &format!("{base}/pipelines/{ns}/{layer}/{name}")).await;
        if publishes == 0 {
            continue;
        }
        assert_eq!(
            pipeline["published_versions"], versions[0]["published_versions"],
            "{address}: the live pins are the newest version's"
        );

        // A run of it.
        let response = http
            .post(format!("{base}/runs"))
            .json(&json!({"namespace": ns, "layer": layer, "pipeline": name}))
            .send()
            .await
            .unwrap();
        let status = response.status();
        let body: Value = response.json().await.unwrap();
        assert_eq!(status.as_u16(), 202, "POST /runs for {address}: {body}");
        runs.push((address.clone(), body["run_id"].as_str().unwrap().to_owned()));
    }
    assert!(runs.len() >= 10, "runs started: {}", runs.len());

    for (address, run_id) in &runs {
        let mut last = Value::Null;
        for _ in 0..600 {
            last = get_json(&http, &format!("{base}/runs/{run_id}")).await;
            if matches!(last["status"].as_str(), Some("success" | "failed" | "cancelled")) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert_eq!(
            last["status"],
            "success",
            "the run of {address} did not succeed: {last}\n{}",
            logs()
        );
    }
    // The explorer's schema tab of a seeded table lists its described columns.
    let table = get_json(&http, &format!("{base}/tables/ecommerce/gold/daily_revenue")).await;
    let columns: Vec<&str> = table["columns"]
        .as_array()
        .map(|c| c.iter().filter_map(|c| c["name"].as_str()).collect())
        .unwrap_or_default();
    for column in ["day", "country", "orders", "revenue"] {
        assert!(columns.contains(&column), "{column} not among the columns of {table}");
    }
    // The seeded queue (runs still pending) is run by the dev runner too.
    let mut pending = -1;
    for _ in 0..300 {
        pending = count(
            &client,
            "SELECT count(*) FROM runs WHERE status IN ('pending', 'running')",
        )
        .await;
        if pending == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(pending, 0, "seeded runs not run by the dev runner\n{}", logs());
    drop(platform);
    let _ = std::fs::remove_dir_all(&scratch);
}
