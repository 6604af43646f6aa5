//! `api`: `GET /api/v1/pipelines/{ns}/{layer}/{name}` under `wrk` at 32
//! connections against the release `rat-api`, then `pgbench` running the
//! same SELECT at 32 clients against the same server, one after the other;
//! and `GET /api/v1/runs?pipeline=…` over the seeded 100,000 runs.
//! Prints requests/s, p50/p99, the ratio to pgbench, and `rat-api`'s peak RSS.

use crate::release_api::ReleaseApi;
use std::path::PathBuf;
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
    #[arg(long, default_value_t = 10)]
    seconds: u32,
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

fn wrk(url: &str, connections: u32, seconds: u32) -> anyhow::Result<WrkResult> {
    let output = Command::new("wrk")
        .args([
            "-t2",
            &format!("-c{connections}"),
            &format!("-d{seconds}s"),
            "--latency",
            url,
        ])
        .output()
        .context("running wrk (Debian: apt-get install -y wrk)")?;
    if !output.status.success() {
        bail!("wrk failed: {}", String::from_utf8_lossy(&output.stderr));
    }
    parse_wrk(&String::from_utf8_lossy(&output.stdout))
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
    // A pipeline with runs, and its run count, for both measurements.
    let row = client
        .query_one(
            "SELECT p.namespace, p.layer, p.name, count(r.id) FROM pipelines p JOIN runs r ON r.pipeline_id = p.id \
             WHERE p.deleted_at IS NULL GROUP BY p.id ORDER BY count(r.id) DESC LIMIT 1",
            &[],
        )
        .await?;
    let (ns, layer, name, runs): (String, String, String, i64) = (row.get(0), row.get(1), row.get(2), row.get(3));
    drop(client);

    let store_dir = std::env::temp_dir().join(format!("rat-bench-store-{}", std::process::id()));
    let api = ReleaseApi::start(&args.api_bin, db.url(), &store_dir, 32, &[]).await?;
    let base = api.base.clone();
    let http = reqwest::Client::new();

    let pipeline_url = format!("{base}/api/v1/pipelines/{ns}/{layer}/{name}");
    let check = http.get(&pipeline_url).send().await?;
    anyhow::ensure!(check.status().is_success(), "GET pipeline answered {}", check.status());

    println!(
        "GET /api/v1/pipelines/{ns}/{layer}/{name}, {} connections, {} s:",
        args.connections, args.seconds
    );
    wrk(&pipeline_url, args.connections, 2)?; // warm-up
    let api_result = wrk(&pipeline_url, args.connections, args.seconds)?;
    println!(
        "  rat-api:  {:.0} requests/s, p50 {:.2} ms, p99 {:.2} ms, non-2xx {}",
        api_result.requests_per_sec, api_result.p50_ms, api_result.p99_ms, api_result.non_2xx
    );

    // The same SELECT through pgbench, prepared, at the same concurrency.
    let script = std::env::temp_dir().join(format!("rat-bench-{}.sql", std::process::id()));
    std::fs::write(
        &script,
        format!(
            "SELECT id, namespace, layer, name, type, s3_path, description, owner, published_at, published_versions, \
             draft_dirty, max_versions, retention_config, created_at, updated_at, deleted_at FROM pipelines \
             WHERE namespace = '{ns}' AND layer = '{layer}' AND name = '{name}' AND deleted_at IS NULL;\n"
        ),
    )?;
    let pgbench = Command::new("pgbench")
        .args([
            "-n",
            "-M",
            "prepared",
            "-c",
            &args.connections.to_string(),
            "-j",
            "2",
            "-T",
            &args.seconds.to_string(),
            "-f",
            &script.display().to_string(),
            db.url(),
        ])
        .output()
        .context("running pgbench (Debian: apt-get install -y postgresql-contrib)")?;
    let _ = std::fs::remove_file(&script);
    let text = String::from_utf8_lossy(&pgbench.stdout);
    anyhow::ensure!(
        pgbench.status.success(),
        "pgbench failed: {}",
        String::from_utf8_lossy(&pgbench.stderr)
    );
    let tps: f64 = text
        .lines()
        .find_map(|l| l.strip_prefix("tps = "))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .with_context(|| format!("could not read pgbench's output:\n{text}"))?;
    println!("  pgbench:  {tps:.0} transactions/s (same SELECT, prepared)");
    println!(
        "  ratio:    {:.0}% of pgbench (target >= 50%); p99 target < 5 ms",
        api_result.requests_per_sec / tps * 100.0
    );

    let runs_url = format!("{base}/api/v1/runs?pipeline={name}");
    let runs_result = wrk(&runs_url, args.connections, args.seconds)?;
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
    let _ = std::fs::remove_dir_all(&store_dir);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

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
