//! The short fault suite (`tests::chaos`, the faults that take seconds):
//! the real binaries on a private Postgres and moto, a mixed load, and
//! Postgres restarted, S3 hung and refusing, an api replica, a scheduler
//! and the reaper SIGKILLed, one at a time. Fails when an invariant is
//! violated or a fault is never recovered from. `cargo xtask chaos` runs
//! the whole suite in release mode.

use std::time::Duration;

use tests::chaos::{Config, Fault};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_platform_survives_the_short_fault_suite() {
    let bin_dir = tests::platform_bin_dir();
    let logs = tests::scratch_dir("rat-chaos-short");
    let config = Config {
        bin_dir,
        faults: Fault::short(),
        settle: Duration::from_secs(3),
        logs: logs.clone(),
    };
    let report = tests::chaos::run(config)
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", tests::chaos::log_tails(&logs)));
    println!("{}", report.markdown());
    assert!(
        report.passed(),
        "{}\n{}",
        report.markdown(),
        tests::chaos::log_tails(&logs)
    );
    // The suite measured something: requests went through every fault.
    assert!(report.faults.iter().all(|f| f.requests > 0), "{}", report.markdown());
}
