//! `api`: `GET /api/v1/pipelines/{ns}/{layer}/{name}` under `wrk` at 32
//! connections against the release `rat-api`, then `pgbench` running the
//! same SELECT at 32 clients against the same server, one after the other
//! in alternating rounds (3 by default; medians reported), both over the
//! same set of distinct pipelines (64 by default); and
//! `GET /api/v1/runs?pipeline=…` over the seeded 100,000 runs.
//! Prints requests/s, p50/p99, the ratio to pgbench, and `rat-api`'s peak RSS.

use crate::release_api::ReleaseApi;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, bail};
use rat_testkit::TestDatabase;
use rat_testkit::seed::{Scale, seed};

/// Arguments of the api benchmark.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// The `rat-api` binary (release build).
    #[arg(long, env = "RAT_API_BIN")]
    api_bin: PathBuf,
    /// Connections (wrk) and clients (pgbench).
    #[arg(long, default_value_t = 32)]
    connections: u32,
    /// Seconds per measurement.
    #[arg(long, default_value_t = 8)]
    seconds: u32,
    /// Rounds of the GET pipeline measurement, each rat-api then pgbench;
    /// the figures are the rounds' medians.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=20))]
    rounds: u32,
    /// Distinct pipelines the GET measurement reads in turn (pgbench takes
    /// one script per pipeline, and accepts at most 128).
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..=128))]
    pipelines: u32,
}

/// What one `wrk` run measured.
#[derive(Debug)]
struct WrkResult {
    requests_per_sec: f64,
    p50_ms: f64,
    p99_ms: f64,
    non_2xx: u64,
}

fn parse_duration_ms(text: &str) -> Option<f64> {
    let text = text.trim();
    let (number, factor) = if let Some(n) = text.strip_suffix("us") {
        (n, 0.001)
    } else if let Some(n) = text.strip_suffix("ms") {
        (n, 1.0)
    } else if let Some(n) = text.strip_suffix('s') {
        (n, 1000.0)
    } else {
        return None;
    };
    number.parse::<f64>().ok().map(|n| n * factor)
}

fn parse_wrk(output: &str) -> anyhow::Result<WrkResult> {
    let mut result = WrkResult {
        requests_per_sec: 0.0,
        p50_ms: f64::NAN,
        p99_ms: f64::NAN,
        non_2xx: 0,
    };
    for line in output.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["Requests/sec:", value] => result.requests_per_sec = value.parse()?,
            ["50%", value] => result.p50_ms = parse_duration_ms(value).unwrap_or(f64::NAN),
            ["99%", value] => result.p99_ms = parse_duration_ms(value).unwrap_or(f64::NAN),
            ["Non-2xx", "or", "3xx", "responses:", value] => result.non_2xx = value.parse()?,
            _ => {}
        }
    }
    if result.requests_per_sec == 0.0 {
        bail!("could not read wrk's output:\n{output}");
    }
    Ok(result)
}

/// `wrk` against `url`; with `script`, a Lua script choosing each request.
fn wrk(url: &str, connections: u32, seconds: u32, script: Option<&Path>) -> anyhow::Result<WrkResult> {
    let mut command = Command::new("wrk");
    command.args([
        "-t2",
        &format!("-c{connections}"),
        &format!("-d{seconds}s"),
        "--latency",
    ]);
    if let Some(script) = script {
        command.arg("-s").arg(script);
    }
    let output = command
        .arg(url)
        .output()
        .context("running wrk (Debian: apt-get install -y wrk)")?;
    if !output.status.success() {
        bail!("wrk failed: {}", String::from_utf8_lossy(&output.stderr));
    }
    parse_wrk(&String::from_utf8_lossy(&output.stdout))
}

/// `pgbench` running `scripts` (picked at random) at `clients`, prepared,
/// for `seconds`: its transactions per second.
fn pgbench_tps(url: &str, clients: u32, seconds: u32, scripts: &[PathBuf]) -> anyhow::Result<f64> {
    let mut pgbench = Command::new("pgbench");
    pgbench.args([
        "-n",
        "-M",
        "prepared",
        "-c",
        &clients.to_string(),
        "-j",
        "2",
        "-T",
        &seconds.to_string(),
    ]);
    for script in scripts {
        pgbench.arg("-f").arg(script);
    }
    let output = pgbench
        .arg(url)
        .output()
        .context("running pgbench (Debian: apt-get install -y postgresql-contrib)")?;
    let text = String::from_utf8_lossy(&output.stdout);
    anyhow::ensure!(
        output.status.success(),
        "pgbench failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    text.lines()
        .find_map(|l| l.strip_prefix("tps = "))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .with_context(|| format!("could not read pgbench's output:\n{text}"))
}

/// The median of `values` (the mean of the middle two for an even count).
fn median(values: impl Iterator<Item = f64>) -> f64 {
    let mut values: Vec<f64> = values.collect();
    values.sort_by(f64::total_cmp);
    match values.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => values[n / 2],
        n => (values[n / 2 - 1] + values[n / 2]) / 2.0,
    }
}

/// A wrk script asking for `paths` in turn, each thread from its own offset.
fn wrk_rotation(paths: &[String]) -> String {
    let list = paths.iter().map(|p| format!("{p:?}")).collect::<Vec<_>>().join(",\n  ");
    format!(
        "local paths = {{\n  {list}\n}}\nlocal i = math.random(#paths)\n\
         request = function()\n  i = i % #paths + 1\n  return wrk.format(\"GET\", paths[i])\nend\n"
    )
}

fn peak_rss_mb(pid: u32) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

pub(crate) async fn run(args: Args) -> anyhow::Result<()> {
    let db = TestDatabase::new().await;
    println!("seeding the benchmark volume...");
    seed(db.url(), &Scale::full(), false).await?;
    let client = db.client().await;
    // The pipeline with the most runs, for the runs measurement.
    let row = client
        .query_one(
            "SELECT p.name, count(r.id) FROM pipelines p JOIN runs r ON r.pipeline_id = p.id \
             WHERE p.deleted_at IS NULL GROUP BY p.id ORDER BY count(r.id) DESC LIMIT 1",
            &[],
        )
        .await?;
    let (name, runs): (String, i64) = (row.get(0), row.get(1));
    // Distinct live pipelines, read in turn by both wrk and pgbench: the
    // api's coalesced reads then batch different rows, as real traffic would,
    // instead of answering many requests for one row with one lookup.
    let addresses: Vec<(String, String, String)> = client
        .query(
            "SELECT namespace, layer, name FROM pipelines WHERE deleted_at IS NULL ORDER BY md5(name) LIMIT $1",
            &[&i64::from(args.pipelines)],
        )
        .await?
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    crate::settle(&client).await?;
    drop(client);
    anyhow::ensure!(!addresses.is_empty(), "the seeded database has no pipelines");

    let store_dir = tempfile::Builder::new().prefix("rat-bench-store-").tempdir()?;
    let api = ReleaseApi::start(&args.api_bin, db.url(), store_dir.path(), 32, &[]).await?;
    if let Some(mb) = peak_rss_mb(api.pid()) {
        println!("rat-api peak RSS at start: {mb:.1} MB");
    }
    let base = api.base.clone();
    let http = reqwest::Client::new();

    let paths: Vec<String> = addresses
        .iter()
        .map(|(ns, layer, name)| format!("/api/v1/pipelines/{ns}/{layer}/{name}"))
        .collect();
    for path in &paths {
        let check = http.get(format!("{base}{path}")).send().await?;
        anyhow::ensure!(check.status().is_success(), "GET {path} answered {}", check.status());
    }
    let scratch = tempfile::Builder::new().prefix("rat-bench-api-").tempdir()?;
    let rotation = scratch.path().join("pipelines.lua");
    std::fs::write(&rotation, wrk_rotation(&paths))?;

    // The same SELECT for pgbench, prepared, at the same concurrency, over
    // the same pipelines (one script each, picked at random).
    let mut scripts = Vec::with_capacity(addresses.len());
    for (i, (ns, layer, name)) in addresses.iter().enumerate() {
        let script = scratch.path().join(format!("select-{i}.sql"));
        std::fs::write(
            &script,
            format!(
                "SELECT id, namespace, layer, name, type, s3_path, description, owner, published_at, \
                 published_versions, draft_dirty, max_versions, retention_config, created_at, updated_at, \
                 deleted_at FROM pipelines WHERE namespace = '{ns}' AND layer = '{layer}' AND name = '{name}' \
                 AND deleted_at IS NULL;\n"
            ),
        )?;
        scripts.push(script);
    }

    println!(
        "GET /api/v1/pipelines/{{ns}}/{{layer}}/{{name}} over {} distinct pipelines, {} connections, \
         {} rounds of {} s rat-api then {} s pgbench:",
        paths.len(),
        args.connections,
        args.rounds,
        args.seconds,
        args.seconds
    );
    wrk(&base, args.connections, 2, Some(&rotation))?; // warm-up
    // Rounds alternate the two, so a slow spell of this shared machine
    // weighs on both sides of the ratio rather than on one.
    let mut rounds = Vec::new();
    for round in 1..=args.rounds {
        let api_result = wrk(&base, args.connections, args.seconds, Some(&rotation))?;
        let tps = pgbench_tps(db.url(), args.connections, args.seconds, &scripts)?;
        println!(
            "  round {round}: rat-api {:.0} requests/s (p50 {:.2} ms, p99 {:.2} ms, non-2xx {}), \
             pgbench {tps:.0} transactions/s, ratio {:.0}%",
            api_result.requests_per_sec,
            api_result.p50_ms,
            api_result.p99_ms,
            api_result.non_2xx,
            api_result.requests_per_sec / tps * 100.0
        );
        rounds.push((api_result, tps));
    }
    let api_rps = median(rounds.iter().map(|(r, _)| r.requests_per_sec));
    let tps = median(rounds.iter().map(|(_, tps)| *tps));
    let p50 = median(rounds.iter().map(|(r, _)| r.p50_ms));
    let worst_p99 = rounds.iter().map(|(r, _)| r.p99_ms).fold(0.0, f64::max);
    let non_2xx: u64 = rounds.iter().map(|(r, _)| r.non_2xx).sum();
    let ratios: Vec<f64> = rounds.iter().map(|(r, tps)| r.requests_per_sec / tps * 100.0).collect();
    println!(
        "  rat-api:  {api_rps:.0} requests/s (median), p50 {p50:.2} ms (median), p99 {worst_p99:.2} ms (worst round), \
         non-2xx {non_2xx}"
    );
    println!("  pgbench:  {tps:.0} transactions/s (median; same SELECT, prepared, same pipelines)");
    println!(
        "  ratio:    {:.0}% of pgbench, medians (rounds {:.0}%..{:.0}%; target >= 50%); p99 target < 5 ms",
        api_rps / tps * 100.0,
        ratios.iter().copied().fold(f64::INFINITY, f64::min),
        ratios.iter().copied().fold(0.0, f64::max)
    );
    if let Some(mb) = peak_rss_mb(api.pid()) {
        println!("  rat-api peak RSS so far: {mb:.1} MB");
    }

    let runs_url = format!("{base}/api/v1/runs?pipeline={name}");
    // The first reads after the seed set hint bits and fill the caches.
    wrk(&runs_url, args.connections, 2, None)?;
    let runs_result = wrk(&runs_url, args.connections, args.seconds, None)?;
    println!(
        "GET /api/v1/runs?pipeline={name} ({runs} runs of that pipeline, 100,000 in the table): \
         {:.0} requests/s, p50 {:.2} ms, p99 {:.2} ms (target p99 < 20 ms), non-2xx {}",
        runs_result.requests_per_sec, runs_result.p50_ms, runs_result.p99_ms, runs_result.non_2xx
    );
    match peak_rss_mb(api.pid()) {
        Some(mb) => println!("rat-api peak RSS: {mb:.1} MB (target < 50 MB)"),
        None => println!("rat-api peak RSS: unknown"),
    }
    drop(api);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_wrk_script_asks_for_every_path_in_turn() {
        let script = wrk_rotation(&["/a/b".to_owned(), "/c\"d".to_owned()]);
        assert!(script.contains("\"/a/b\""), "{script}");
        assert!(script.contains(r#""/c\"d""#), "{script}");
        assert!(script.contains("i = i % #paths + 1"), "{script}");
    }

    #[test]
    fn the_median_is_the_middle_value() {
        assert_eq!(median([3.0, 1.0, 2.0].into_iter()), 2.0);
        assert_eq!(median([4.0, 1.0, 3.0, 2.0].into_iter()), 2.5);
        assert!(median(std::iter::empty()).is_nan());
    }

    #[test]
    fn reads_wrk_output() {
        let output = "Running 10s test @ http://x\n  2 threads and 32 connections\n  Latency Distribution\n     \
                      50%  812.00us\n     75%    1.02ms\n     90%    1.50ms\n     99%    3.21ms\n  \
                      100000 requests in 10.00s, 50.00MB read\nRequests/sec:  10000.50\nTransfer/sec:      5.00MB\n";
        let result = parse_wrk(output).unwrap();
        assert_eq!(result.requests_per_sec, 10000.5);
        assert!((result.p50_ms - 0.812).abs() < 1e-9);
        assert!((result.p99_ms - 3.21).abs() < 1e-9);
        assert_eq!(result.non_2xx, 0);
    }
}
