//! The embedding examples (`examples/`) against the real components: the
//! in-process program `rat-example-embed` on a fresh database and a moto
//! bucket, configured through the same `RAT_*` variables as the binaries,
//! publishes a pipeline and starts a run (checked in its output, in the
//! rows and in the bucket); run again, it publishes version 2. Then the
//! real `rat-api` serves that database and bucket, and `rat-example-runner`
//! (over `rat-client`) claims both runs and reports them successful.

use rat_domain::{ObjectKey, RunId, RunStatus, VersionId};
use rat_testkit::TestDatabase;
use rat_testkit::s3::MotoServer;
use rat_versioning::VersionedStore;

/// The `key: value` lines the example printed, as `(key, value)`.
fn lines(stdout: &str) -> Vec<(String, String)> {
    stdout
        .lines()
        .filter_map(|line| line.split_once(": "))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

fn value<'a>(lines: &'a [(String, String)], key: &str) -> &'a str {
    lines
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
        .unwrap_or_else(|| panic!("no {key:?} line in {lines:?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_embedding_example_publishes_and_runs_and_the_example_runner_finishes_the_runs() {
    let db = TestDatabase::new().await;
    let moto = tokio::task::spawn_blocking(MotoServer::shared).await.unwrap();
    let bucket = rat_testkit::s3::unique_bucket_name();
    let endpoint = moto.endpoint();
    let env = [
        ("RAT_DATABASE_URL", db.url()),
        ("RAT_DB_POOL_SIZE", "2"),
        ("RAT_STORE", "s3"),
        ("RAT_S3_ENDPOINT", endpoint.as_str()),
        ("RAT_S3_REGION", "eu-west-1"),
        ("RAT_S3_BUCKET", bucket.as_str()),
        ("RAT_S3_ACCESS_KEY", "test"),
        ("RAT_S3_SECRET_KEY", "test"),
        ("RAT_S3_CREATE_BUCKET", "true"),
        ("RUST_LOG", "warn"),
    ];
    let embed = tests::binary("rat-example-embed");
    let run_example = |sql: &'static str| {
        let embed = embed.clone();
        async move {
            let output = tokio::process::Command::new(&embed)
                .args(["--namespace", "embedded", "--pipeline", "orders", "--sql", sql])
                .envs(env)
                .output()
                .await
                .expect("running rat-example-embed");
            let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
            assert!(
                output.status.success(),
                "rat-example-embed failed:\n{stdout}\n{}",
                String::from_utf8_lossy(&output.stderr)
            );
            lines(&stdout)
        }
    };

    let first = run_example("SELECT 7 AS seven").await;
    assert_eq!(value(&first, "namespace"), "embedded (created)");
    assert_eq!(value(&first, "pipeline"), "embedded/silver/orders (created)");
    assert_eq!(value(&first, "published"), "version 1");
    let (key, version) = value(&first, "file").split_once(" at version ").expect("file line");
    assert_eq!(key, "embedded/pipelines/silver/orders/pipeline.sql");
    let (run_id, status) = value(&first, "run").split_once(' ').expect("run line");
    assert_eq!(status, "pending");

    // The effects: the run row, pinned to version 1, and the file in the bucket.
    let client = db.client().await;
    let run_id: RunId = run_id.parse().expect("a run id");
    let run = rat_testkit::dao::runs::get(&client, run_id)
        .await
        .expect("the run's row");
    assert_eq!((run.status, run.version_number.get()), (RunStatus::Pending, 1));
    let store = rat_versioning::s3::S3Store::connect(moto.s3_config(&bucket))
        .await
        .expect("the example's bucket");
    let key = ObjectKey::parse(key).unwrap();
    let version = VersionId::new(version).unwrap();
    let stored = store.get(&key, Some(&version)).await.expect("the written version");
    assert_eq!(stored.body, b"SELECT 7 AS seven");

    // Again: everything exists, a second version is published and run.
    let second = run_example("SELECT 8 AS eight").await;
    assert_eq!(value(&second, "namespace"), "embedded (exists)");
    assert_eq!(value(&second, "pipeline"), "embedded/silver/orders (exists)");
    assert_eq!(value(&second, "published"), "version 2");

    // The example runner, against the real api on the same database and bucket.
    let scratch = tests::scratch_dir("examples");
    let log = scratch.join("rat-api.log");
    let (listen, internal) = (
        format!("127.0.0.1:{}", tests::free_port()),
        format!("127.0.0.1:{}", tests::free_port()),
    );
    const RUNNER_TOKEN: &str = "examples-runner-token";
    let mut api_env = env.to_vec();
    api_env.extend([
        ("RAT_LISTEN_ADDR", listen.as_str()),
        ("RAT_INTERNAL_LISTEN_ADDR", internal.as_str()),
        ("RAT_API_KEY", "examples-api-key"),
        ("RAT_RUNNER_TOKEN", RUNNER_TOKEN),
    ]);
    let api = tests::spawn(&tests::binary("rat-api"), &api_env, &log);
    tests::wait_listening(&[&listen, &internal], 15, &log).await;
    let output = tokio::process::Command::new(tests::binary("rat-example-runner"))
        .args(["--runs", "2", "--timeout-secs", "30"])
        .env("RAT_RUNNER_API_URL", format!("http://{internal}"))
        .env("RAT_RUNNER_TOKEN", RUNNER_TOKEN)
        .output()
        .await
        .expect("running rat-example-runner");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "rat-example-runner failed:\n{stdout}\n{}\nrat-api log:\n{}",
        String::from_utf8_lossy(&output.stderr),
        tests::tail(&log, 40)
    );
    let finished = lines(&stdout);
    assert_eq!(finished.len(), 2, "{stdout}");
    assert!(
        finished.iter().all(|(k, v)| k == "run" && v.ends_with(" success")),
        "{stdout}"
    );
    let run = rat_testkit::dao::runs::get(&client, run_id).await.unwrap();
    assert_eq!(run.status, RunStatus::Success);
    tests::terminate(&api).await;
}
