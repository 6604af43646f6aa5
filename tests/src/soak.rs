//! The soak behind `cargo xtask soak` (issue 20): the fault suite's mixed
//! load (`crate::platform`) for a fixed time against one replica of each
//! binary, sampled at a fixed interval, and a verdict on whether anything
//! grows that should not.
//!
//! Each sample takes, per process, its resident memory (`VmRSS` of
//! `/proc/PID/status`) and its open Postgres sessions (`pg_stat_activity`,
//! told apart by the `application_name` every binary sets on its
//! connections: see [`binary_of_application`]), and over the interval just
//! ended the api's p99 latency and its errors (a request not answered, or
//! answered 5xx).
//!
//! moto's resident memory is sampled too (it is the platform's store), and
//! shown beside RAT's processes, but it is not judged: moto keeps every
//! object version in memory, so it grows with what the load writes, as a
//! bucket would.
//!
//! The load is the fault suite's mix with its file writes and publishes
//! paced (`SOAK_PACE`): a write a second and a publish every five seconds
//! across the platform, what a busy team does, not tens a second. (Unpaced,
//! moto, whose ListObjectVersions costs time in proportion to the bucket's
//! whole history, fell behind within minutes: docs/reliability.md.)
//!
//! The verdict ignores a warm-up (a fifth of the run: pools fill, caches and
//! allocator arenas reach their working size) and then asks:
//! - **no error** in the whole run;
//! - **no upward trend** in each binary's RSS, each binary's connections and
//!   the p99: the least-squares line through the samples after the warm-up
//!   may not rise, across that span, by more than the series' allowance
//!   ([`Allowance`]; the figures and why are by the constants).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rat_testkit::chart::{Chart, Series};

use crate::platform::{Load, Pace, Platform, Replicas, Sample, pg, prepare_load};

/// How often the soak's load writes a file and publishes, across the whole
/// platform: one file saved every second, one publish every five seconds,
/// more than a team of fifty people editing pipelines all day does (each
/// saving every minute, publishing a few times an hour). The rest of the
/// mix (reads, runs started, the runner's claims) goes as fast as the
/// clients can send it.
pub(crate) const SOAK_PACE: Pace = Pace {
    file_write_every: Duration::from_secs(1),
    publish_every: Duration::from_secs(5),
};

/// The name moto's memory is reported under.
pub const STORE_PROCESS: &str = "moto (store)";

/// What a series may rise by, across the span after the warm-up, along its
/// least-squares line: the larger of a share of its mean and a floor.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Allowance {
    /// Share of the series' mean after the warm-up.
    pub share_of_mean: f64,
    /// In the series' unit.
    pub floor: f64,
}

/// Resident memory may rise by 10% or 4 MiB, whichever is larger. A leak of
/// 1 KiB per request, at the 30 to 150 requests a second the load reaches on
/// a shared 2-core machine, comes to 14 to 70 MiB in eight minutes, while a
/// process at its working size moves by allocator arenas, a few MiB.
pub const RSS_ALLOWANCE: Allowance = Allowance {
    share_of_mean: 0.10,
    floor: 4.0,
};

/// Connections may rise by one: pools are bounded, so after the warm-up a
/// count that keeps rising is sessions left open (a reconnect that does not
/// close its predecessor), while one more idle connection opened late is not.
pub const CONNECTIONS_ALLOWANCE: Allowance = Allowance {
    share_of_mean: 0.0,
    floor: 1.0,
};

/// The p99 may rise by half its mean (or 5 ms). The soak runs on shared
/// machines where another process's burst doubles a ten-second p99 for a
/// sample or two; the straight line through forty samples moves little for
/// that, but a p99 that grows with the data (a query that stopped using its
/// index, a list that is not paged) rises steadily and far more.
pub const P99_ALLOWANCE: Allowance = Allowance {
    share_of_mean: 0.5,
    floor: 5.0,
};

/// How to run the soak.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where `rat-api`, `rat-scheduler`, `rat-reaper` and `rat-runner` are.
    pub bin_dir: PathBuf,
    /// How long the load runs.
    pub duration: Duration,
    /// Time between samples.
    pub interval: Duration,
    /// Where the processes' logs go.
    pub logs: PathBuf,
}

/// One sample.
#[derive(Debug, Clone)]
pub struct Tick {
    /// Since the load started, at the end of the interval.
    pub at: Duration,
    /// Resident memory of each process, in KiB (by process name).
    pub rss_kib: BTreeMap<String, u64>,
    /// moto's resident memory, in KiB (reported, not judged).
    pub store_rss_kib: Option<u64>,
    /// Processes of the platform that were no longer running.
    pub exited: Vec<String>,
    /// Open Postgres sessions of each binary (by binary name).
    pub connections: BTreeMap<String, i64>,
    /// Requests answered in the interval (the last sample also counts
    /// those answered after the load was told to stop).
    pub requests: usize,
    /// Of those, not answered or answered 5xx.
    pub errors: usize,
    /// Of those, answered 4xx (the load's own conflicts, not failures).
    pub client_errors: usize,
    /// The 99th percentile of the interval's latencies.
    pub p99: Option<Duration>,
}

/// One check of the verdict.
#[derive(Debug, Clone)]
pub struct Check {
    /// What is checked.
    pub what: String,
    /// Whether it holds.
    pub holds: bool,
    /// The figures behind it.
    pub detail: String,
}

/// What the soak measured, and its verdict.
#[derive(Debug, Clone)]
pub struct Report {
    /// The samples, in order.
    pub ticks: Vec<Tick>,
    /// Samples before this time are the warm-up.
    pub warm_up: Duration,
    /// The checks of the verdict.
    pub checks: Vec<Check>,
}

impl Report {
    /// Whether every check holds.
    pub fn passed(&self) -> bool {
        !self.checks.is_empty() && self.checks.iter().all(|c| c.holds)
    }

    fn processes(&self) -> Vec<String> {
        let mut names: Vec<String> = self.ticks.iter().flat_map(|t| t.rss_kib.keys().cloned()).collect();
        names.sort();
        names.dedup();
        names
    }

    fn binaries(&self) -> Vec<String> {
        let mut names: Vec<String> = self.ticks.iter().flat_map(|t| t.connections.keys().cloned()).collect();
        names.sort();
        names.dedup();
        names
    }

    /// The samples as a Markdown table, then the verdict.
    pub fn markdown(&self) -> String {
        let (processes, binaries) = (self.processes(), self.binaries());
        let mut out = String::new();
        let _ = write!(out, "| s |");
        for p in &processes {
            let _ = write!(out, " {p} RSS (MiB) |");
        }
        let _ = write!(out, " {STORE_PROCESS} RSS (MiB) |");
        for b in &binaries {
            let _ = write!(out, " {b} conns |");
        }
        let _ = writeln!(out, " requests | errors | 4xx | p99 (ms) |");
        let _ = writeln!(out, "|{}", "---:|".repeat(2 + processes.len() + binaries.len() + 4));
        for t in &self.ticks {
            let warm = if t.at <= self.warm_up { " (warm-up)" } else { "" };
            let _ = write!(out, "| {}{warm} |", t.at.as_secs());
            for p in &processes {
                let rss = t
                    .rss_kib
                    .get(p)
                    .map_or("–".to_owned(), |kib| format!("{:.1}", *kib as f64 / 1024.0));
                let _ = write!(out, " {rss} |");
            }
            let store = t
                .store_rss_kib
                .map_or("–".to_owned(), |kib| format!("{:.1}", kib as f64 / 1024.0));
            let _ = write!(out, " {store} |");
            for b in &binaries {
                let _ = write!(out, " {} |", t.connections.get(b).copied().unwrap_or(0));
            }
            let p99 = t
                .p99
                .map_or("–".to_owned(), |d| format!("{:.1}", d.as_secs_f64() * 1000.0));
            let _ = writeln!(out, " {} | {} | {} | {p99} |", t.requests, t.errors, t.client_errors);
        }
        let requests: usize = self.ticks.iter().map(|t| t.requests).sum();
        let _ = writeln!(
            out,
            "\n{requests} requests in all; warm-up: the first {} s.\n",
            self.warm_up.as_secs()
        );
        let store: Vec<f64> = self
            .ticks
            .iter()
            .filter_map(|t| Some(t.store_rss_kib? as f64 / 1024.0))
            .collect();
        if let (Some(first), Some(last)) = (store.first(), store.last()) {
            let peak = store.iter().copied().fold(f64::MIN, f64::max);
            let _ = writeln!(
                out,
                "{STORE_PROCESS}, not judged (it holds every version written): RSS {first:.1} MiB at the first \
                 sample, {last:.1} MiB at the last, {peak:.1} MiB at most.\n"
            );
        }
        for check in &self.checks {
            let verdict = if check.holds { "holds" } else { "**FAILS**" };
            let _ = writeln!(out, "- {verdict}: {} ({})", check.what, check.detail);
        }
        let _ = writeln!(out, "\nVerdict: {}", if self.passed() { "PASSED" } else { "FAILED" });
        out
    }

    /// Writes the chart of the run: each process's RSS (MiB), each binary's
    /// connections and the p99 (ms) over time, on a logarithmic y axis so
    /// that the three units share it legibly.
    pub fn write_chart(&self, path: &Path) -> Result<(), String> {
        let seconds = |t: &Tick| t.at.as_secs_f64();
        let mut series = Vec::new();
        for p in self.processes() {
            series.push(Series {
                name: format!("{p} RSS (MiB)"),
                points: self
                    .ticks
                    .iter()
                    .filter_map(|t| Some((seconds(t), *t.rss_kib.get(&p)? as f64 / 1024.0)))
                    .collect(),
            });
        }
        series.push(Series {
            name: format!("{STORE_PROCESS} RSS (MiB)"),
            points: self
                .ticks
                .iter()
                .filter_map(|t| Some((seconds(t), t.store_rss_kib? as f64 / 1024.0)))
                .collect(),
        });
        for b in self.binaries() {
            series.push(Series {
                name: format!("{b} Postgres connections"),
                points: self
                    .ticks
                    .iter()
                    .filter_map(|t| Some((seconds(t), *t.connections.get(&b)? as f64)))
                    .collect(),
            });
        }
        series.push(Series {
            name: "rat-api p99 (ms)".to_owned(),
            points: self
                .ticks
                .iter()
                .filter_map(|t| Some((seconds(t), t.p99?.as_secs_f64() * 1000.0)))
                .collect(),
        });
        Chart {
            title: "Soak: resident memory, Postgres connections and p99 latency",
            x_label: "seconds since the load started",
            y_label: "MiB / connections / ms (log scale)",
            x_log: false,
            y_log: true,
            series: &series,
        }
        .write_svg(path)
        .map_err(|e| format!("{e:#}"))
    }
}

/// The binary a Postgres session belongs to, by the `application_name` it
/// set (docs/operations.md, "Sizing"): the pool's (`rat-api`,
/// `rat-scheduler`, `rat-reaper`), and the dedicated sessions
/// (`rat-api-live-logs`, the health probe `rat-probe` that only rat-api
/// runs, `rat-scheduler-listener`, `rat-reaper-listener`,
/// `rat-reaper-lock`). The soak's own session, and the start-up sessions
/// any binary opens (`rat-migrate`, `rat-schema-check`), are `None`.
pub fn binary_of_application(application_name: &str) -> Option<&'static str> {
    match application_name {
        "rat-probe" => Some("rat-api"),
        name if name.starts_with("rat-api") => Some("rat-api"),
        name if name.starts_with("rat-scheduler") => Some("rat-scheduler"),
        name if name.starts_with("rat-reaper") => Some("rat-reaper"),
        _ => None,
    }
}

/// The least-squares slope of `points` (per unit of x), or `None` with
/// fewer than two distinct x.
pub fn slope(points: &[(f64, f64)]) -> Option<f64> {
    let n = points.len() as f64;
    if points.len() < 2 {
        return None;
    }
    let mean_x = points.iter().map(|p| p.0).sum::<f64>() / n;
    let mean_y = points.iter().map(|p| p.1).sum::<f64>() / n;
    let sxx: f64 = points.iter().map(|p| (p.0 - mean_x).powi(2)).sum();
    let sxy: f64 = points.iter().map(|p| (p.0 - mean_x) * (p.1 - mean_y)).sum();
    (sxx > 0.0).then(|| sxy / sxx)
}

/// Whether `points` (after the warm-up) stay flat within `allowance`: the
/// check, with its figures in `unit`.
pub fn trend_check(what: String, points: &[(f64, f64)], allowance: Allowance, unit: &str) -> Check {
    let Some(slope) = slope(points) else {
        return Check {
            what,
            holds: false,
            detail: "fewer than two samples after the warm-up".to_owned(),
        };
    };
    let span = points.last().map_or(0.0, |p| p.0) - points.first().map_or(0.0, |p| p.0);
    let mean = points.iter().map(|p| p.1).sum::<f64>() / points.len() as f64;
    let rise = slope * span;
    let allowed = (allowance.share_of_mean * mean).max(allowance.floor);
    Check {
        what,
        holds: rise <= allowed,
        detail: format!(
            "mean {mean:.1} {unit}; fitted change over {span:.0} s {rise:+.2} {unit}, allowed +{allowed:.2} {unit}"
        ),
    }
}

/// The verdict on `ticks`, with samples up to `warm_up` left out of the
/// trends.
pub fn verdict(ticks: &[Tick], warm_up: Duration) -> Vec<Check> {
    let errors: usize = ticks.iter().map(|t| t.errors).sum();
    let requests: usize = ticks.iter().map(|t| t.requests).sum();
    let mut exited: Vec<String> = ticks.iter().flat_map(|t| t.exited.iter().cloned()).collect();
    exited.sort();
    exited.dedup();
    let mut checks = vec![
        Check {
            what: "every process ran throughout".to_owned(),
            holds: exited.is_empty() && !ticks.is_empty(),
            detail: if exited.is_empty() {
                "none exited".to_owned()
            } else {
                format!("exited: {}", exited.join(", "))
            },
        },
        Check {
            what: "no request failed (unanswered or 5xx)".to_owned(),
            holds: errors == 0 && requests > 0,
            detail: format!("{errors} of {requests}"),
        },
    ];
    let after: Vec<&Tick> = ticks.iter().filter(|t| t.at > warm_up).collect();
    let seconds = |t: &Tick| t.at.as_secs_f64();
    let mut processes: Vec<&String> = after.iter().flat_map(|t| t.rss_kib.keys()).collect();
    processes.sort();
    processes.dedup();
    for p in processes {
        let points: Vec<(f64, f64)> = after
            .iter()
            .filter_map(|t| Some((seconds(t), *t.rss_kib.get(p)? as f64 / 1024.0)))
            .collect();
        checks.push(trend_check(format!("{p} RSS flat"), &points, RSS_ALLOWANCE, "MiB"));
    }
    let mut binaries: Vec<&String> = after.iter().flat_map(|t| t.connections.keys()).collect();
    binaries.sort();
    binaries.dedup();
    for b in binaries {
        let points: Vec<(f64, f64)> = after
            .iter()
            .map(|t| (seconds(t), t.connections.get(b).copied().unwrap_or(0) as f64))
            .collect();
        checks.push(trend_check(
            format!("{b} Postgres connections flat"),
            &points,
            CONNECTIONS_ALLOWANCE,
            "connections",
        ));
    }
    let p99: Vec<(f64, f64)> = after
        .iter()
        .filter_map(|t| Some((seconds(t), t.p99?.as_secs_f64() * 1000.0)))
        .collect();
    checks.push(trend_check("rat-api p99 flat".to_owned(), &p99, P99_ALLOWANCE, "ms"));
    checks
}

/// Runs the soak.
pub async fn run(config: Config) -> Result<Report, String> {
    let replicas = Replicas { apis: 1, schedulers: 1 };
    let mut platform = Platform::start(&config.bin_dir, &config.logs, replicas).await?;
    let result = soak(&platform, &config).await;
    platform.stop().await;
    result
}

async fn soak(platform: &Platform, config: &Config) -> Result<Report, String> {
    prepare_load(platform).await?;
    let mut db = sampling_session(platform).await?;
    let started = Instant::now();
    let load = Load::start(platform.api_bases.clone(), started, Some(SOAK_PACE));
    let mut ticks = Vec::new();
    let mut from = Duration::ZERO;
    // Bounded: one sample per interval until the duration is over.
    while from < config.duration {
        let to = (from + config.interval).min(config.duration);
        tokio::time::sleep_until((started + to).into()).await;
        if db.is_closed() {
            db = sampling_session(platform).await?;
        }
        let samples: Vec<Sample> = load
            .answered_since(from)
            .into_iter()
            .filter(|s| s.answered() < to)
            .collect();
        ticks.push(tick(platform, &db, to, &samples).await?);
        from = to;
    }
    // Requests in flight at the end count too (their errors above all):
    // with the last sample.
    let late: Vec<Sample> = load.stop().await.into_iter().filter(|s| s.answered() >= from).collect();
    if let Some(last) = ticks.last_mut() {
        last.requests += late.len();
        last.errors += late.iter().filter(|s| is_error(s)).count();
        last.client_errors += late.iter().filter(|s| is_client_error(s)).count();
    }
    let warm_up = config.duration / 5;
    let checks = verdict(&ticks, warm_up);
    Ok(Report { ticks, warm_up, checks })
}

async fn sampling_session(platform: &Platform) -> Result<tokio_postgres::Client, String> {
    let db = platform.db().await?;
    db.execute("SET application_name = 'rat-soak'", &[])
        .await
        .map_err(|e| format!("naming the soak's session: {}", pg(e)))?;
    Ok(db)
}

async fn tick(
    platform: &Platform,
    db: &tokio_postgres::Client,
    at: Duration,
    samples: &[Sample],
) -> Result<Tick, String> {
    let mut rss_kib = BTreeMap::new();
    let mut exited = Vec::new();
    for (name, pid) in platform.processes() {
        // An exited child (not reaped yet) has no VmRSS line.
        match resident_kib(pid) {
            Some(kib) => {
                rss_kib.insert(name, kib);
            }
            None => exited.push(name),
        }
    }
    let rows = db
        .query(
            "SELECT application_name, count(*) FROM pg_stat_activity \
             WHERE datname = current_database() AND pid <> pg_backend_pid() GROUP BY 1",
            &[],
        )
        .await
        .map_err(|e| format!("reading pg_stat_activity: {}", pg(e)))?;
    let mut connections = BTreeMap::new();
    for row in &rows {
        if let Some(binary) = binary_of_application(row.get::<_, &str>(0)) {
            *connections.entry(binary.to_owned()).or_insert(0) += row.get::<_, i64>(1);
        }
    }
    let mut latencies: Vec<Duration> = samples.iter().map(|s| s.took).collect();
    latencies.sort();
    Ok(Tick {
        at,
        rss_kib,
        store_rss_kib: resident_kib(platform.moto.pid()),
        exited,
        connections,
        requests: samples.len(),
        errors: samples.iter().filter(|s| is_error(s)).count(),
        client_errors: samples.iter().filter(|s| is_client_error(s)).count(),
        p99: percentile(&latencies, 0.99),
    })
}

/// A request not answered, or answered 5xx.
fn is_error(sample: &Sample) -> bool {
    sample.status == 0 || sample.status >= 500
}

/// A request answered 4xx.
fn is_client_error(sample: &Sample) -> bool {
    (400..500).contains(&sample.status)
}

/// The `q` quantile of sorted `values` (nearest rank).
fn percentile(sorted: &[Duration], q: f64) -> Option<Duration> {
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len().max(1));
    sorted.get(rank - 1).copied()
}

/// `VmRSS` of process `pid`, in KiB (`None` once it is gone).
fn resident_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tick(at: u64, rss_mib: f64, connections: i64, p99_ms: u64, errors: usize) -> Tick {
        Tick {
            at: Duration::from_secs(at),
            rss_kib: BTreeMap::from([("rat-api-0".to_owned(), (rss_mib * 1024.0) as u64)]),
            store_rss_kib: None,
            exited: Vec::new(),
            connections: BTreeMap::from([("rat-api".to_owned(), connections)]),
            requests: 100,
            errors,
            client_errors: 0,
            p99: Some(Duration::from_millis(p99_ms)),
        }
    }

    fn holds(checks: &[Check], what: &str) -> bool {
        checks
            .iter()
            .find(|c| c.what.contains(what))
            .unwrap_or_else(|| panic!("no check {what:?} in {checks:?}"))
            .holds
    }

    #[test]
    fn the_slope_is_the_least_squares_one() {
        assert_eq!(slope(&[(0.0, 1.0), (10.0, 3.0), (20.0, 5.0)]), Some(0.2));
        assert_eq!(slope(&[(0.0, 1.0), (10.0, 1.0)]), Some(0.0));
        assert_eq!(slope(&[(5.0, 1.0)]), None);
        assert_eq!(slope(&[(5.0, 1.0), (5.0, 2.0)]), None);
    }

    #[test]
    fn a_steady_run_passes_and_its_warm_up_does_not_count() {
        // Memory and connections climb during the warm-up, then hold with
        // noise; the p99 wobbles.
        let mut ticks: Vec<Tick> = (1..=3)
            .map(|i| tick(i * 10, 20.0 * i as f64, i as i64 * 2, 80, 0))
            .collect();
        for i in 4..=30 {
            let wobble = if i % 2 == 0 { 1.0 } else { -1.0 };
            ticks.push(tick(i * 10, 60.0 + wobble, 6, if i % 7 == 0 { 150 } else { 60 }, 0));
        }
        let checks = verdict(&ticks, Duration::from_secs(30));
        assert!(checks.iter().all(|c| c.holds), "{checks:?}");
    }

    #[test]
    fn a_leak_a_session_leak_a_slowing_api_and_an_error_each_fail() {
        let ticks: Vec<Tick> = (1..=30)
            .map(|i| {
                tick(
                    i * 10,
                    40.0 + i as f64,
                    4 + i as i64 / 5,
                    20 + 2 * i,
                    usize::from(i == 17),
                )
            })
            .collect();
        let checks = verdict(&ticks, Duration::from_secs(30));
        assert!(!holds(&checks, "RSS"), "{checks:?}");
        assert!(!holds(&checks, "connections"), "{checks:?}");
        assert!(!holds(&checks, "p99"), "{checks:?}");
        assert!(!holds(&checks, "no request failed"), "{checks:?}");
        assert!(holds(&checks, "every process ran"), "{checks:?}");
    }

    #[test]
    fn a_process_that_exited_fails_the_soak() {
        let mut ticks: Vec<Tick> = (1..=10).map(|i| tick(i * 10, 50.0, 4, 20, 0)).collect();
        ticks[6].exited.push("rat-runner".to_owned());
        let checks = verdict(&ticks, Duration::from_secs(20));
        assert!(!holds(&checks, "every process ran"), "{checks:?}");
        assert!(checks.iter().filter(|c| !c.holds).count() == 1, "{checks:?}");
    }

    #[test]
    fn without_samples_after_the_warm_up_the_trends_fail() {
        let checks = verdict(&[tick(10, 20.0, 2, 5, 0)], Duration::from_secs(30));
        assert!(!holds(&checks, "p99"), "{checks:?}");
        assert!(
            !Report {
                ticks: Vec::new(),
                warm_up: Duration::ZERO,
                checks: verdict(&[], Duration::ZERO)
            }
            .passed()
        );
    }

    #[test]
    fn sessions_are_told_apart_by_application_name() {
        assert_eq!(binary_of_application("rat-api"), Some("rat-api"));
        assert_eq!(binary_of_application("rat-api-live-logs"), Some("rat-api"));
        assert_eq!(binary_of_application("rat-probe"), Some("rat-api"));
        assert_eq!(binary_of_application("rat-scheduler"), Some("rat-scheduler"));
        assert_eq!(binary_of_application("rat-scheduler-listener"), Some("rat-scheduler"));
        assert_eq!(binary_of_application("rat-reaper-lock"), Some("rat-reaper"));
        assert_eq!(binary_of_application("rat-migrate"), None);
        assert_eq!(binary_of_application("rat-soak"), None);
        assert_eq!(binary_of_application(""), None);
    }

    #[test]
    fn the_p99_is_the_nearest_rank() {
        let values: Vec<Duration> = (1..=200).map(Duration::from_millis).collect();
        assert_eq!(percentile(&values, 0.99), Some(Duration::from_millis(198)));
        assert_eq!(percentile(&values[..1], 0.99), Some(Duration::from_millis(1)));
        assert_eq!(percentile(&[], 0.99), None);
    }

    #[test]
    fn this_process_has_a_resident_size() {
        assert!(resident_kib(std::process::id()).is_some_and(|kib| kib > 0));
    }
}
