//! `api`: `GET /api/v1/pipelines/{ns}/{layer}/{name}` under `wrk` at 32
//! connections against the release `rat-api`, in Community mode and, on a
//! second `rat-api` with OIDC on, as a signed-in user who is not an admin
//! (a token of a real OpenID provider, `rat_testkit::oidc`; the pipelines
//! owned by someone else and readable through a share on their namespaces,
//! so each request takes the access rule's real path); then `pgbench` running
//! the same SELECT at 32 clients against the same server. One after the other
//! in alternating rounds (3 by default; medians reported), all over the same
//! set of distinct pipelines (64 by default); and `GET /api/v1/runs?pipeline=…`
//! over the seeded 100,000 runs. Prints requests/s, p50/p99, the CPU time
//! per request of `rat-api` and of PostgreSQL (from `/proc`, so where each
//! side's cost goes shows), the ratios OIDC/Community and to pgbench, and
//! `rat-api`'s peak RSS.
//!
//! With `--via-pgbouncer`, each round also measures, on the same server: a
//! Community `rat-api` behind a private PgBouncer in transaction pooling mode
//! (`RAT_DB_POOLER=transaction`, the direct URL for `LISTEN` and locks),
//! `pgbench` through the same PgBouncer (`-M extended`: PgBouncer 1.18 cannot
//! carry prepared statements, and extended-protocol unnamed statements are
//! what `rat-api` sends through it), and a Community `rat-api` straight to
//! Postgres but forced into unnamed statements (`RAT_DB_STATEMENTS=unnamed`),
//! so what unnamed statements cost without a pooler shows beside what the
//! pooler costs; and pgbench direct with `-M extended` too, pgbench's own
//! like-for-like baseline. PgBouncer's own CPU time is not in the CPU per
//! request figures.

use crate::release_api::ReleaseApi;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, bail};
use rat_service::identity::API_KEY_USER;
use rat_testkit::TestDatabase;
use rat_testkit::oidc::{OidcClient, OidcProvider};
use rat_testkit::pgbouncer::{PgBouncer, PgBouncerOptions, admin_show};
use rat_testkit::seed::{Scale, seed};

/// The audience the OIDC `rat-api` accepts (`RAT_OIDC_AUDIENCE`).
const AUDIENCE: &str = "rat-api";
/// The signed-in user of the OIDC measurement: not an admin.
const READER: &str = "bench-reader";
/// The owner given to the measured pipelines: someone other than [`READER`].
const OWNER: &str = "bench-owner";

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
    /// Rounds of the GET pipeline measurement, each rat-api in Community
    /// mode and with OIDC (in turns, first one then the other) then pgbench;
    /// the figures are the rounds' medians.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=20))]
    rounds: u32,
    /// Distinct pipelines the GET measurement reads in turn (pgbench takes
    /// one script per pipeline, and accepts at most 128).
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..=128))]
    pipelines: u32,
    /// Also measure through a private PgBouncer (transaction pooling): rat-api and pgbench
    /// through it, and rat-api direct with unnamed statements.
    #[arg(long)]
    via_pgbouncer: bool,
    /// PgBouncer's server connections for the benchmark database (`default_pool_size`).
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u16).range(1..=200))]
    pgbouncer_pool_size: u16,
    /// Where the chart of the rounds is written (`api-vs-pgbench.svg`).
    #[arg(long, default_value = "target/bench-api")]
    out: PathBuf,
}

/// What one `wrk` run measured.
#[derive(Debug)]
struct WrkResult {
    requests_per_sec: f64,
    p50_ms: f64,
    p99_ms: f64,
    non_2xx: u64,
    /// CPU time per request of the measured `rat-api` and of the PostgreSQL
    /// server, in microseconds, when they could be read ([`measure`]).
    cpu_us: Option<(f64, f64)>,
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
        cpu_us: None,
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

/// `pgbench` running `scripts` (picked at random) at `clients` with query
/// `mode` (`prepared`, or `extended` through PgBouncer), for `seconds`: its
/// transactions per second.
fn pgbench_tps(url: &str, clients: u32, seconds: u32, scripts: &[PathBuf], mode: &str) -> anyhow::Result<f64> {
    let mut pgbench = Command::new("pgbench");
    pgbench.args([
        "-n",
        "-M",
        mode,
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

/// A wrk script asking for `paths` in turn, each thread from its own offset,
/// with `Authorization: Bearer <bearer>` when given.
fn wrk_rotation(paths: &[String], bearer: Option<&str>) -> String {
    let list = paths.iter().map(|p| format!("{p:?}")).collect::<Vec<_>>().join(",\n  ");
    let authorization = bearer.map_or_else(String::new, |token| {
        format!("wrk.headers[\"Authorization\"] = {:?}\n", format!("Bearer {token}"))
    });
    format!(
        "{authorization}local paths = {{\n  {list}\n}}\nlocal i = math.random(#paths)\n\
         request = function()\n  i = i % #paths + 1\n  return wrk.format(\"GET\", paths[i])\nend\n"
    )
}

/// An access token for `client` from the provider's token endpoint (the
/// `client_credentials` grant).
async fn access_token(http: &reqwest::Client, provider: &OidcProvider, client: &OidcClient) -> anyhow::Result<String> {
    let answer = http
        .post(provider.token_endpoint())
        .basic_auth(&client.id, Some(&client.secret))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .context("asking the OpenID provider for an access token")?;
    let status = answer.status();
    let body: serde_json::Value = answer.json().await.context("reading the token endpoint's answer")?;
    anyhow::ensure!(status.is_success(), "the token endpoint answered {status}: {body}");
    body["access_token"]
        .as_str()
        .map(str::to_owned)
        .with_context(|| format!("the token endpoint answered no access_token: {body}"))
}

/// Linux's `USER_HZ`, the unit of the CPU times in `/proc/<pid>/stat` (100
/// on every architecture Linux runs this on).
const CLOCK_TICKS_PER_SEC: f64 = 100.0;

/// The fields of `/proc/<pid>/stat` after the command name (which may hold
/// spaces), so that the state is `[0]`, the parent's pid `[1]`, utime
/// `[11]`, stime `[12]`, and the reaped children's cutime and cstime `[13]`,
/// `[14]`.
fn stat_fields(pid: u32) -> Option<Vec<String>> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (_, rest) = stat.rsplit_once(") ")?;
    Some(rest.split_whitespace().map(str::to_owned).collect())
}

/// CPU seconds (user and system) the process `pid` used so far, with those
/// of its children it reaped when `with_reaped`.
fn cpu_seconds(pid: u32, with_reaped: bool) -> Option<f64> {
    let fields = stat_fields(pid)?;
    let ticks = |i: usize| fields.get(i).and_then(|f| f.parse::<f64>().ok());
    let mut total = ticks(11)? + ticks(12)?;
    if with_reaped {
        total += ticks(13)? + ticks(14)?;
    }
    Some(total / CLOCK_TICKS_PER_SEC)
}

/// CPU seconds a PostgreSQL server used so far: its postmaster, the
/// backends it reaped, and those alive now.
fn server_cpu_seconds(postmaster: u32) -> Option<f64> {
    let mut total = cpu_seconds(postmaster, true)?;
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else {
            continue;
        };
        let child = stat_fields(pid).is_some_and(|f| f.get(1).is_some_and(|ppid| *ppid == postmaster.to_string()));
        if child {
            total += cpu_seconds(pid, false).unwrap_or(0.0);
        }
    }
    Some(total)
}

/// Which processes' CPU time a measurement reads: the `rat-api` measured
/// and the PostgreSQL server's postmaster (`None` when it runs elsewhere).
#[derive(Debug, Clone, Copy)]
struct CpuOf {
    api: u32,
    postmaster: Option<u32>,
}

impl CpuOf {
    fn now(self) -> Option<(f64, f64)> {
        Some((cpu_seconds(self.api, false)?, server_cpu_seconds(self.postmaster?)?))
    }
}

/// [`wrk`], also reading the CPU time per request of `cpu`'s processes.
fn measure(url: &str, connections: u32, seconds: u32, script: &Path, cpu: CpuOf) -> anyhow::Result<WrkResult> {
    let before = cpu.now();
    let mut result = wrk(url, connections, seconds, Some(script))?;
    let requests = result.requests_per_sec * f64::from(seconds);
    if let (Some((api_before, db_before)), Some((api_after, db_after))) = (before, cpu.now())
        && requests > 0.0
    {
        result.cpu_us = Some((
            (api_after - api_before) / requests * 1e6,
            (db_after - db_before) / requests * 1e6,
        ));
    }
    Ok(result)
}

/// The CPU time per request `(rat-api, PostgreSQL)` as printed.
fn cpu_figures((api, db): (f64, f64)) -> String {
    format!("CPU per request: rat-api {api:.0} µs, PostgreSQL {db:.0} µs")
}

/// One round's figures of one side.
fn round_figures(result: &WrkResult) -> String {
    let cpu = result
        .cpu_us
        .map_or_else(String::new, |cpu| format!("; {}", cpu_figures(cpu)));
    format!(
        "{:.0} requests/s (p50 {:.2} ms, p99 {:.2} ms, non-2xx {}{cpu})",
        result.requests_per_sec, result.p50_ms, result.p99_ms, result.non_2xx
    )
}

/// The highest p99 of the rounds.
fn worst_p99(results: &[&WrkResult]) -> f64 {
    results.iter().map(|r| r.p99_ms).fold(0.0, f64::max)
}

/// The rounds' figures of one side: median throughput and p50, worst p99.
fn summary_figures(results: &[&WrkResult]) -> String {
    let rps = median(results.iter().map(|r| r.requests_per_sec));
    let p50 = median(results.iter().map(|r| r.p50_ms));
    let worst_p99 = worst_p99(results);
    let non_2xx: u64 = results.iter().map(|r| r.non_2xx).sum();
    let cpu: Option<Vec<(f64, f64)>> = results.iter().map(|r| r.cpu_us).collect();
    let cpu = cpu.map_or_else(String::new, |cpu| {
        let api = median(cpu.iter().map(|(api, _)| *api));
        let db = median(cpu.iter().map(|(_, db)| *db));
        format!("; {} (medians)", cpu_figures((api, db)))
    });
    format!(
        "{rps:.0} requests/s (median), p50 {p50:.2} ms (median), p99 {worst_p99:.2} ms (worst round), \
         non-2xx {non_2xx}{cpu}"
    )
}

/// `min%..max%` of `ratios` (percentages).
fn span(ratios: &[f64]) -> String {
    format!(
        "{:.0}%..{:.0}%",
        ratios.iter().copied().fold(f64::INFINITY, f64::min),
        ratios.iter().copied().fold(0.0, f64::max)
    )
}

fn peak_rss_mb(pid: u32) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

/// The `--via-pgbouncer` side: a private PgBouncer, a Community rat-api
/// behind it, and one straight to Postgres with unnamed statements.
struct ViaPgBouncer {
    /// `rat-api` through PgBouncer.
    pooled_api: ReleaseApi,
    pooled_base: String,
    pooled_cpu: CpuOf,
    /// `rat-api` direct, unnamed statements.
    unnamed_api: ReleaseApi,
    unnamed_base: String,
    unnamed_cpu: CpuOf,
    /// The benchmark database through PgBouncer (for pgbench).
    pooled_url: String,
    _stores: (tempfile::TempDir, tempfile::TempDir),
    /// Dropped last: the apis behind it first.
    _bouncer: PgBouncer,
}

impl ViaPgBouncer {
    async fn start(args: &Args, db: &TestDatabase, postmaster: Option<u32>, paths: &[String]) -> anyhow::Result<Self> {
        let dbname = db.name();
        anyhow::ensure!(
            dbname
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'),
            "unexpected database name {dbname:?}"
        );
        // No startup option passes PgBouncer: the role carries what the
        // pool would send (for this database only).
        db.client()
            .await
            .batch_execute(&format!(
                "ALTER ROLE postgres IN DATABASE {dbname} SET search_path = public; \
                 ALTER ROLE postgres IN DATABASE {dbname} SET statement_timeout = '30s'"
            ))
            .await?;
        let url = db.url().to_owned();
        let options = PgBouncerOptions {
            default_pool_size: args.pgbouncer_pool_size,
            ..PgBouncerOptions::default()
        };
        let bouncer = tokio::task::spawn_blocking(move || PgBouncer::start(&url, &options))
            .await?
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        let pooled_url = bouncer.url_for(dbname);
        let stores = (
            tempfile::Builder::new().prefix("rat-bench-store-").tempdir()?,
            tempfile::Builder::new().prefix("rat-bench-store-").tempdir()?,
        );
        let pooled_api = ReleaseApi::start(
            &args.api_bin,
            &pooled_url,
            stores.0.path(),
            32,
            &[("RAT_DATABASE_DIRECT_URL", db.url()), ("RAT_DB_POOLER", "transaction")],
        )
        .await?;
        let unnamed_api = ReleaseApi::start(
            &args.api_bin,
            db.url(),
            stores.1.path(),
            32,
            &[("RAT_DB_STATEMENTS", "unnamed")],
        )
        .await?;
        let http = reqwest::Client::new();
        for base in [&pooled_api.base, &unnamed_api.base] {
            for path in paths {
                let check = http.get(format!("{base}{path}")).send().await?;
                anyhow::ensure!(
                    check.status().is_success(),
                    "GET {base}{path} answered {}",
                    check.status()
                );
            }
        }
        let before = pgbouncer_queries(&bouncer, dbname).await?;
        let _ = http.get(format!("{}{}", pooled_api.base, paths[0])).send().await?;
        anyhow::ensure!(
            pgbouncer_queries(&bouncer, dbname).await? > before,
            "a request to the rat-api behind PgBouncer sent no query through it"
        );
        Ok(ViaPgBouncer {
            pooled_base: pooled_api.base.clone(),
            pooled_cpu: CpuOf {
                api: pooled_api.pid(),
                postmaster,
            },
            unnamed_base: unnamed_api.base.clone(),
            unnamed_cpu: CpuOf {
                api: unnamed_api.pid(),
                postmaster,
            },
            pooled_api,
            unnamed_api,
            pooled_url,
            _stores: stores,
            _bouncer: bouncer,
        })
    }
}

impl Drop for ViaPgBouncer {
    fn drop(&mut self) {
        if let Some(mb) = peak_rss_mb(self.pooled_api.pid()) {
            println!("  rat-api peak RSS: {mb:.1} MB (through PgBouncer)");
        }
        if let Some(mb) = peak_rss_mb(self.unnamed_api.pid()) {
            println!("  rat-api peak RSS: {mb:.1} MB (unnamed statements)");
        }
    }
}

/// Queries PgBouncer passed to the server for `dbname` so far.
async fn pgbouncer_queries(bouncer: &PgBouncer, dbname: &str) -> anyhow::Result<u64> {
    let rows = admin_show(bouncer, "SHOW STATS")
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(rows
        .iter()
        .filter(|row| row.get("database").map(String::as_str) == Some(dbname))
        .filter_map(|row| row.get("total_query_count")?.parse::<u64>().ok())
        .sum())
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
    let rows = client
        .query(
            "SELECT id, namespace, layer, name FROM pipelines WHERE deleted_at IS NULL ORDER BY md5(name) LIMIT $1",
            &[&i64::from(args.pipelines)],
        )
        .await?;
    let ids: Vec<uuid::Uuid> = rows.iter().map(|r| r.get(0)).collect();
    let addresses: Vec<(String, String, String)> = rows.iter().map(|r| (r.get(1), r.get(2), r.get(3))).collect();
    anyhow::ensure!(!addresses.is_empty(), "the seeded database has no pipelines");
    // The signed-in user reads pipelines someone else owns (the ownership
    // row, and the owner column kept equal to it, as a transfer leaves them).
    client
        .execute(
            "INSERT INTO ownership (object_type, object_id, owner) SELECT 'pipeline', id, $1 FROM unnest($2::uuid[]) id",
            &[&OWNER, &ids],
        )
        .await?;
    client
        .execute("UPDATE pipelines SET owner = $1 WHERE id = ANY($2)", &[&OWNER, &ids])
        .await?;

    let store_dir = tempfile::Builder::new().prefix("rat-bench-store-").tempdir()?;
    let api = ReleaseApi::start(&args.api_bin, db.url(), store_dir.path(), 32, &[]).await?;
    if let Some(mb) = peak_rss_mb(api.pid()) {
        println!("rat-api peak RSS at start: {mb:.1} MB");
    }
    let base = api.base.clone();
    let http = reqwest::Client::new();

    // The OIDC side: a real OpenID provider, a second rat-api trusting it,
    // and a token of a user who is not an admin.
    let reader = OidcClient::user("bench-app", READER, &["analysts"]);
    let clients = [reader.clone()];
    let provider = tokio::task::spawn_blocking(move || OidcProvider::try_start(AUDIENCE, &clients))
        .await?
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let oidc_store_dir = tempfile::Builder::new().prefix("rat-bench-store-").tempdir()?;
    let oidc_api = ReleaseApi::start(
        &args.api_bin,
        db.url(),
        oidc_store_dir.path(),
        32,
        &[("RAT_OIDC_ISSUER", provider.issuer()), ("RAT_OIDC_AUDIENCE", AUDIENCE)],
    )
    .await?;
    let oidc_base = oidc_api.base.clone();
    let token = access_token(&http, &provider, &reader).await?;
    let me: serde_json::Value = http
        .get(format!("{oidc_base}/api/v1/me"))
        .bearer_auth(&token)
        .send()
        .await?
        .json()
        .await?;
    anyhow::ensure!(
        me["user_id"] == READER && me["is_admin"] == false,
        "the token should sign in {READER}, not an admin: {me}"
    );

    let paths: Vec<String> = addresses
        .iter()
        .map(|(ns, layer, name)| format!("/api/v1/pipelines/{ns}/{layer}/{name}"))
        .collect();
    // Before the share, the reader may not see the pipelines (404, as if
    // they did not exist): the access rule is really in the path measured.
    let hidden = http
        .get(format!("{oidc_base}{}", paths[0]))
        .bearer_auth(&token)
        .send()
        .await?;
    anyhow::ensure!(
        hidden.status() == 404,
        "GET {} as {READER} before any share answered {}, not 404",
        paths[0],
        hidden.status()
    );
    // A read share on each namespace holding a measured pipeline, as the
    // operator (an admin) would grant it.
    client
        .execute(
            "INSERT INTO shares (object_type, object_id, shared_with, access_level, granted_by) \
             SELECT 'namespace', n.id, $1, 'read', $2 FROM namespaces n \
             WHERE n.name IN (SELECT namespace FROM pipelines WHERE id = ANY($3))",
            &[&READER, &API_KEY_USER, &ids],
        )
        .await?;
    // The server's postmaster (the parent of this connection's backend), to
    // read the server's CPU time; none when the server runs elsewhere (no
    // local `postgres` process has the backend's pid).
    let backend: i32 = client.query_one("SELECT pg_backend_pid()", &[]).await?.get(0);
    let is_postgres =
        |pid: &u32| std::fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|name| name.trim() == "postgres");
    let postmaster = u32::try_from(backend)
        .ok()
        .filter(is_postgres)
        .and_then(stat_fields)
        .and_then(|f| f.get(1).and_then(|ppid| ppid.parse::<u32>().ok()))
        .filter(is_postgres);
    let community_cpu = CpuOf {
        api: api.pid(),
        postmaster,
    };
    let oidc_cpu = CpuOf {
        api: oidc_api.pid(),
        postmaster,
    };
    crate::settle(&client).await?;
    drop(client);
    for path in &paths {
        let check = http.get(format!("{base}{path}")).send().await?;
        anyhow::ensure!(check.status().is_success(), "GET {path} answered {}", check.status());
        let check = http
            .get(format!("{oidc_base}{path}"))
            .bearer_auth(&token)
            .send()
            .await?;
        anyhow::ensure!(
            check.status().is_success(),
            "GET {path} as {READER} answered {}",
            check.status()
        );
    }
    let scratch = tempfile::Builder::new().prefix("rat-bench-api-").tempdir()?;
    let rotation = scratch.path().join("pipelines.lua");
    std::fs::write(&rotation, wrk_rotation(&paths, None))?;
    let oidc_rotation = scratch.path().join("pipelines-oidc.lua");
    std::fs::write(&oidc_rotation, wrk_rotation(&paths, Some(&token)))?;

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

    let via = if args.via_pgbouncer {
        Some(ViaPgBouncer::start(&args, &db, postmaster, &paths).await?)
    } else {
        None
    };
    if let Some(via) = &via {
        wrk(&via.pooled_base, args.connections, 2, Some(&rotation))?;
        wrk(&via.unnamed_base, args.connections, 2, Some(&rotation))?;
    }

    println!(
        "GET /api/v1/pipelines/{{ns}}/{{layer}}/{{name}} over {} distinct pipelines, {} connections, \
         {} rounds of {} s each: rat-api in Community mode and with OIDC (signed in as {READER}, not an \
         admin, reading through a namespace share), in turns, then pgbench:",
        paths.len(),
        args.connections,
        args.rounds,
        args.seconds,
    );
    // Warm-up of both.
    wrk(&base, args.connections, 2, Some(&rotation))?;
    wrk(&oidc_base, args.connections, 2, Some(&oidc_rotation))?;
    // Rounds alternate the three, so a slow spell of this shared machine
    // weighs on every side of the ratios rather than on one; which api goes
    // first alternates too.
    let mut rounds = Vec::new();
    let mut via_rounds: Vec<(WrkResult, WrkResult, f64, f64)> = Vec::new();
    for round in 1..=args.rounds {
        let community_first = round % 2 == 1;
        let community_side = || measure(&base, args.connections, args.seconds, &rotation, community_cpu);
        let oidc_side = || measure(&oidc_base, args.connections, args.seconds, &oidc_rotation, oidc_cpu);
        let first = if community_first {
            community_side()?
        } else {
            oidc_side()?
        };
        let second = if community_first {
            oidc_side()?
        } else {
            community_side()?
        };
        let (community, oidc) = if community_first {
            (first, second)
        } else {
            (second, first)
        };
        let tps = pgbench_tps(db.url(), args.connections, args.seconds, &scripts, "prepared")?;
        if let Some(via) = &via {
            let pooled = measure(
                &via.pooled_base,
                args.connections,
                args.seconds,
                &rotation,
                via.pooled_cpu,
            )?;
            let unnamed = measure(
                &via.unnamed_base,
                args.connections,
                args.seconds,
                &rotation,
                via.unnamed_cpu,
            )?;
            let pooled_tps = pgbench_tps(&via.pooled_url, args.connections, args.seconds, &scripts, "extended")?;
            let extended_tps = pgbench_tps(db.url(), args.connections, args.seconds, &scripts, "extended")?;
            println!(
                "  round {round} (pgbouncer): rat-api through PgBouncer {}, pgbench through PgBouncer (extended) \
                 {pooled_tps:.0} transactions/s, pgbench direct (extended) {extended_tps:.0} transactions/s; \
                 rat-api direct, unnamed statements {}",
                round_figures(&pooled),
                round_figures(&unnamed)
            );
            via_rounds.push((pooled, unnamed, pooled_tps, extended_tps));
        }
        println!(
            "  round {round}: Community {}, OIDC {} = {:.0}% of Community, pgbench {tps:.0} transactions/s",
            round_figures(&community),
            round_figures(&oidc),
            oidc.requests_per_sec / community.requests_per_sec * 100.0
        );
        rounds.push((community, oidc, tps));
    }
    let community: Vec<&WrkResult> = rounds.iter().map(|(c, _, _)| c).collect();
    let oidc: Vec<&WrkResult> = rounds.iter().map(|(_, o, _)| o).collect();
    let community_rps = median(community.iter().map(|r| r.requests_per_sec));
    let oidc_rps = median(oidc.iter().map(|r| r.requests_per_sec));
    let tps = median(rounds.iter().map(|(_, _, tps)| *tps));
    println!("  Community: {}", summary_figures(&community));
    println!("  OIDC:      {}", summary_figures(&oidc));
    println!("  pgbench:   {tps:.0} transactions/s (median; same SELECT, prepared, same pipelines)");
    let per_round = |f: &dyn Fn(&(WrkResult, WrkResult, f64)) -> f64| rounds.iter().map(f).collect::<Vec<f64>>();
    println!(
        "  OIDC/Community: {:.0}%, medians (rounds {}; target >= 85%)",
        oidc_rps / community_rps * 100.0,
        span(&per_round(&|(c, o, _)| o.requests_per_sec / c.requests_per_sec * 100.0))
    );
    println!(
        "  of pgbench: Community {:.0}% (rounds {}), OIDC {:.0}% (rounds {}), medians; target >= 50%",
        community_rps / tps * 100.0,
        span(&per_round(&|(c, _, tps)| c.requests_per_sec / tps * 100.0)),
        oidc_rps / tps * 100.0,
        span(&per_round(&|(_, o, tps)| o.requests_per_sec / tps * 100.0)),
    );
    {
        use rat_testkit::chart::{Chart, Series};
        let ratio = |name: &str, f: &dyn Fn(&(WrkResult, WrkResult, f64)) -> f64| Series {
            name: name.to_owned(),
            points: rounds.iter().enumerate().map(|(i, r)| ((i + 1) as f64, f(r))).collect(),
        };
        std::fs::create_dir_all(&args.out)?;
        Chart {
            title: "GET one pipeline: rat-api throughput as a share of pgbench's, per round",
            x_label: "round",
            y_label: "% of pgbench transactions/s",
            x_log: false,
            y_log: false,
            series: &[
                ratio("Community", &|(c, _, tps)| c.requests_per_sec / tps * 100.0),
                ratio("OIDC", &|(_, o, tps)| o.requests_per_sec / tps * 100.0),
                Series {
                    name: "target 50%".to_owned(),
                    points: vec![(1.0, 50.0), (f64::from(args.rounds.max(2)), 50.0)],
                },
            ],
        }
        .write_svg(&args.out.join("api-vs-pgbench.svg"))?;
        println!("  chart in {}", args.out.join("api-vs-pgbench.svg").display());
    }
    // The median round's p99 beside the worst: a slow spell of this shared
    // machine (pgbench slows in the same round) moves the worst alone.
    println!(
        "  p99: Community {:.2} ms (median of rounds; worst {:.2}), OIDC {:.2} ms (median of rounds; worst {:.2}); \
         target < 5 ms",
        median(community.iter().map(|r| r.p99_ms)),
        worst_p99(&community),
        median(oidc.iter().map(|r| r.p99_ms)),
        worst_p99(&oidc)
    );
    if via.is_some() {
        let pooled: Vec<&WrkResult> = via_rounds.iter().map(|(p, _, _, _)| p).collect();
        let unnamed: Vec<&WrkResult> = via_rounds.iter().map(|(_, u, _, _)| u).collect();
        let pooled_rps = median(pooled.iter().map(|r| r.requests_per_sec));
        let unnamed_rps = median(unnamed.iter().map(|r| r.requests_per_sec));
        let pooled_tps = median(via_rounds.iter().map(|(_, _, t, _)| *t));
        let extended_tps = median(via_rounds.iter().map(|(_, _, _, t)| *t));
        println!(
            "  through PgBouncer (pool_mode = transaction, default_pool_size {}):",
            args.pgbouncer_pool_size
        );
        println!("    rat-api:  {}", summary_figures(&pooled));
        println!("    pgbench:  {pooled_tps:.0} transactions/s (median; -M extended, same SELECT)");
        println!(
            "    of pgbench through PgBouncer: rat-api {:.0}% (rounds {}); direct, for comparison: {:.0}%",
            pooled_rps / pooled_tps * 100.0,
            span(
                &via_rounds
                    .iter()
                    .map(|(p, _, t, _)| p.requests_per_sec / t * 100.0)
                    .collect::<Vec<_>>()
            ),
            community_rps / tps * 100.0
        );
        println!(
            "    rat-api through PgBouncer / direct: {:.0}%; pgbench through PgBouncer (extended) / direct \
             (prepared): {:.0}%, / direct (extended, {extended_tps:.0} transactions/s): {:.0}%",
            pooled_rps / community_rps * 100.0,
            pooled_tps / tps * 100.0,
            pooled_tps / extended_tps * 100.0
        );
        println!("  unnamed statements without a pooler (RAT_DB_STATEMENTS=unnamed, straight to Postgres):");
        println!("    rat-api:  {}", summary_figures(&unnamed));
        println!(
            "    unnamed / named (Community, direct): {:.0}% (rounds {})",
            unnamed_rps / community_rps * 100.0,
            span(
                &rounds
                    .iter()
                    .zip(&via_rounds)
                    .map(|((c, _, _), (_, u, _, _))| u.requests_per_sec / c.requests_per_sec * 100.0)
                    .collect::<Vec<_>>()
            )
        );
    }
    if let Some(mb) = peak_rss_mb(api.pid()) {
        println!("  rat-api peak RSS so far: {mb:.1} MB (Community)");
    }
    if let Some(mb) = peak_rss_mb(oidc_api.pid()) {
        println!("  rat-api peak RSS so far: {mb:.1} MB (OIDC)");
    }
    drop(oidc_api);
    drop(provider);
    drop(via);

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
        let script = wrk_rotation(&["/a/b".to_owned(), "/c\"d".to_owned()], None);
        assert!(script.contains("\"/a/b\""), "{script}");
        assert!(script.contains(r#""/c\"d""#), "{script}");
        assert!(script.contains("i = i % #paths + 1"), "{script}");
        assert!(!script.contains("Authorization"), "{script}");
        let signed_in = wrk_rotation(&["/a/b".to_owned()], Some("x.y.z"));
        assert!(
            signed_in.starts_with("wrk.headers[\"Authorization\"] = \"Bearer x.y.z\"\n"),
            "{signed_in}"
        );
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
