//! A short soak (`tests::soak`) against the debug binaries: the load runs
//! for half a minute, and every sample measures what the soak reports —
//! each process's resident memory, each binary's Postgres sessions, the
//! api's requests and p99, and moto's memory — with no request failing. (The trends need the
//! minutes of `cargo xtask soak`; here the warm-up alone is most of the run.)

use std::time::Duration;

use tests::soak::Config;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_short_soak_measures_every_process_without_errors() {
    let bin_dir = tests::platform_bin_dir();
    let logs = tests::scratch_dir("rat-soak-short");
    let config = Config {
        bin_dir,
        duration: Duration::from_secs(30),
        interval: Duration::from_secs(5),
        logs: logs.clone(),
    };
    let report = tests::soak::run(config)
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", tests::chaos::log_tails(&logs)));
    let markdown = report.markdown();
    println!("{markdown}");
    assert_eq!(report.ticks.len(), 6, "{markdown}");
    for tick in &report.ticks {
        let processes: Vec<&str> = tick.rss_kib.keys().map(String::as_str).collect();
        assert_eq!(
            processes,
            ["rat-api-0", "rat-reaper", "rat-runner", "rat-scheduler-0"],
            "{markdown}"
        );
        assert!(tick.rss_kib.values().all(|kib| *kib > 0), "{markdown}");
        assert!(tick.store_rss_kib.is_some_and(|kib| kib > 0), "no moto RSS: {markdown}");
        assert!(tick.exited.is_empty(), "{markdown}\n{}", tests::chaos::log_tails(&logs));
        for binary in ["rat-api", "rat-scheduler", "rat-reaper"] {
            assert!(
                tick.connections.get(binary).is_some_and(|n| *n > 0),
                "no session of {binary}: {markdown}"
            );
        }
        assert!(tick.requests > 0 && tick.p99.is_some(), "{markdown}");
        assert_eq!(tick.errors, 0, "{markdown}\n{}", tests::chaos::log_tails(&logs));
    }
    let checks: Vec<&str> = report.checks.iter().map(|c| c.what.as_str()).collect();
    assert!(checks.contains(&"every process ran throughout"), "{checks:?}");
    assert!(checks.contains(&"no request failed (unanswered or 5xx)"), "{checks:?}");
    assert!(checks.contains(&"rat-api-0 RSS flat"), "{checks:?}");
    assert!(
        checks.contains(&"rat-scheduler Postgres connections flat"),
        "{checks:?}"
    );

    let chart = logs.join("soak.svg");
    report.write_chart(&chart).expect("the chart");
    let svg = std::fs::read_to_string(&chart).expect("the chart's file");
    assert!(
        svg.contains("rat-api-0 RSS (MiB)")
            && svg.contains("moto (store) RSS (MiB)")
            && svg.contains("rat-api p99 (ms)"),
        "{svg}"
    );
}
