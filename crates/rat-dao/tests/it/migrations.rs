//! Schema migrations: applied once under an advisory lock however many
//! processes start at once, and a no-op on an up-to-date database.

use std::process::Command;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rat_testkit::TestDatabase;

const CHILD_URL: &str = "RAT_MIGRATE_CHILD_URL";
const CHILD_START_AT: &str = "RAT_MIGRATE_CHILD_START_AT_MS";

fn unix_millis() -> u128 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis()
}

/// Not a test of its own: the body of each child process of
/// `six_processes_started_at_once_migrate_once`, which runs this test binary
/// again with `--ignored --exact migrate_child_process`.
#[tokio::test]
#[ignore = "entry point of the child processes of six_processes_started_at_once_migrate_once"]
async fn migrate_child_process() {
    let url = std::env::var(CHILD_URL).expect("run by the parent test");
    let start_at: u128 = std::env::var(CHILD_START_AT).unwrap().parse().unwrap();
    // All children wait for the same instant, so they really race.
    let wait = start_at.saturating_sub(unix_millis());
    tokio::time::sleep(Duration::from_millis(wait as u64)).await;
    let report = rat_dao::migrate(&url.as_str().into())
        .await
        .expect("migration succeeds in every process");
    println!("APPLIED={}", report.applied.len());
}

#[tokio::test]
async fn six_processes_started_at_once_migrate_once() {
    let db = TestDatabase::empty().await;
    let start_at = unix_millis() + 1500;
    let children: Vec<_> = (0..6)
        .map(|_| {
            Command::new(std::env::current_exe().unwrap())
                .args([
                    "--ignored",
                    "--exact",
                    &test_name("migrate_child_process"),
                    "--nocapture",
                    "--test-threads=1",
                ])
                .env(CHILD_URL, db.url())
                .env(CHILD_START_AT, start_at.to_string())
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let mut applied_total = 0;
    for child in children {
        let output = child.wait_with_output().unwrap();
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(
            output.status.success(),
            "a migrating process failed:\n{stdout}\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
        let applied: usize = stdout
            .lines()
            // The harness may print its "test ... " prefix on the same line.
            .find_map(|l| l.split_once("APPLIED=").map(|(_, n)| n))
            .expect("child reports what it applied")
            .trim()
            .parse()
            .unwrap();
        applied_total += applied;
    }
    let embedded = rat_dao::embedded_migrations();
    assert_eq!(
        applied_total,
        embedded.len(),
        "every migration was applied by exactly one process"
    );

    let client = db.client().await;
    let history: Vec<i32> = client
        .query("SELECT version FROM refinery_schema_history ORDER BY version", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(history, embedded.iter().map(|(v, _)| *v).collect::<Vec<_>>());
    let tables: i64 = client
        .query_one(
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public' AND table_type = 'BASE TABLE'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(
        tables, 28,
        "19 seed tables, run_logs, personal_access_tokens, runner_plugins, failed_merges, access_generation, \
         run_count_deltas, run_counts, run_totals and refinery's history"
    );
}

#[tokio::test]
async fn migrating_an_up_to_date_database_applies_nothing() {
    let db = TestDatabase::new().await;
    let report = rat_dao::migrate(&db.database()).await.unwrap();
    assert!(report.applied.is_empty(), "{report:?}");
}

#[tokio::test]
async fn migrations_are_numbered_without_gaps() {
    let versions: Vec<i32> = rat_dao::embedded_migrations().iter().map(|(v, _)| *v).collect();
    assert_eq!(versions, (1..=versions.len() as i32).collect::<Vec<_>>());
}

/// The name libtest knows the test function `name` of this module by
/// (`module::name`, the test binary's own name left out).
fn test_name(name: &str) -> String {
    let module = module_path!().split_once("::").map_or("", |(_, module)| module);
    format!("{module}::{name}")
}
