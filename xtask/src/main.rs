//! `cargo xtask`: project automation. No arguments prints help.
//!
//! - `cargo xtask test` — formatting check, clippy with `-D warnings`, then every
//!   test against a private PostgreSQL cluster (started and stopped here), or
//!   the server named by `RAT_TEST_DATABASE_URL`
//! - `cargo xtask dev` — the platform locally on embedded defaults: a persistent
//!   Postgres under `.rat-dev/`, migrated and seeded when empty; Ctrl-C stops it
//! - `cargo xtask dev stop` — stop a dev Postgres left running
//! - `cargo xtask portal` — RAT's web portal, built from
//!   `../shared/clients/` under `target/rat-clients/`, served against a
//!   running `cargo xtask dev` behind a same-origin proxy on
//!   http://localhost:8000 (`docs/portal.md`)
//! - `cargo xtask db seed` — fill a database with a realistic volume (5
//!   namespaces, 500 pipelines, 100,000 runs, 1,000 schedules, 200 triggers,
//!   100,000 audit rows, ...) for benchmarks
//! - `cargo xtask db migrate` — apply pending migrations
//! - `cargo xtask db url` — print the dev database's connection string
//! - `cargo xtask db roles --owner NAME --app NAME [--schema S]` — the owner
//!   and app roles of a schema (least privilege), printing the services'
//!   connection settings
//! - `cargo xtask db tenant create NAME` — schema NAME with roles
//!   `NAME_owner` and `NAME_app`, migrated as the owner
//! - `cargo xtask bench <name>` — a benchmark of design §6, release build
//!   (`publish`: a 100-file pipeline against moto; `api`: the api's read
//!   path under wrk, in Community mode and signed in with OIDC, against
//!   pgbench, on the seeded volume; `runs`: 10,000
//!   runs claimed and completed by 4 runner loops; `scheduler`: 10,000
//!   schedules due at one instant with one and three `rat-scheduler`s, and
//!   the fire latency of every-second schedules; `reaper`: one pass over
//!   1,000,000 runs and 1,000,000 audit rows past retention under api load
//!   and a concurrent writer)
//! - `cargo xtask chaos [--short]` — the fault suite (`tests::chaos`), release
//!   build: two api replicas, two schedulers, the reaper and the runner under
//!   load, one fault at a time; a report per fault and the invariants
//! - `cargo xtask soak --minutes N [--report FILE] [--chart FILE]` — the
//!   fault suite's load for N minutes against one replica of each binary,
//!   release build; RSS, Postgres connections, p99 and errors every 10 s, a
//!   table, an SVG chart and a verdict (no error, no upward trend)

mod dev;
mod portal;
mod seed;
mod system;
mod tenant;
mod test;

use std::path::PathBuf;
use std::process::Command;

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};

/// Project automation for the RAT metadata plane.
#[derive(Debug, Parser)]
#[command(name = "cargo xtask", arg_required_else_help = true)]
struct Cli {
    #[command(subcommand)]
    task: Task,
}

#[derive(Debug, Subcommand)]
enum Task {
    /// Formatting check, clippy with -D warnings, and every test.
    Test(test::TestArgs),
    /// Run the platform locally on embedded defaults.
    Dev(dev::DevArgs),
    /// Build RAT's web portal (from ../shared/clients/) and serve it against a
    /// running `cargo xtask dev`, behind a same-origin reverse proxy.
    Portal(portal::PortalArgs),
    /// Run a benchmark (release build): `cargo xtask bench publish`.
    Bench {
        /// The benchmark and its options (see `cargo xtask bench -- --help`).
        #[arg(trailing_var_arg = true, allow_hyphen_values = true, required = true)]
        args: Vec<String>,
    },
    /// The fault suite (release build): the real binaries under load, one
    /// fault at a time, and the invariants checked afterwards.
    Chaos {
        /// Only the faults that take seconds (what CI runs, in debug).
        #[arg(long)]
        short: bool,
        /// Seconds of load before each fault and after it cleared.
        #[arg(long, default_value_t = 5)]
        settle_secs: u64,
        /// Also write the report (Markdown) to this file.
        #[arg(long)]
        report: Option<std::path::PathBuf>,
    },
    /// The soak (release build): the chaos suite's load for N minutes on one
    /// replica of each binary, sampled every 10 s, with a verdict.
    Soak {
        /// How long the load runs.
        #[arg(long, value_parser = clap::value_parser!(u64).range(1..=1440))]
        minutes: u64,
        /// Seconds between samples.
        #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=600))]
        interval_secs: u64,
        /// Also write the samples and the verdict (Markdown) to this file.
        #[arg(long)]
        report: Option<std::path::PathBuf>,
        /// Write the chart (SVG) of RSS, connections and p99 to this file.
        #[arg(long)]
        chart: Option<std::path::PathBuf>,
    },
    /// Database chores.
    Db {
        #[command(subcommand)]
        task: DbTask,
    },
}

#[derive(Debug, Subcommand)]
enum DbTask {
    /// Fill a database with a realistic volume of metadata.
    Seed(seed::SeedArgs),
    /// Apply pending migrations.
    Migrate {
        /// Database to migrate (default: the dev database, started if needed).
        #[arg(long, env = "RAT_DATABASE_URL")]
        database_url: Option<String>,
    },
    /// Print the dev database's connection string (starting it if needed).
    Url,
    /// Create or update the owner and app roles of a schema (least privilege).
    Roles(tenant::RolesArgs),
    /// Tenants: one schema each, with its own owner and app roles.
    Tenant {
        #[command(subcommand)]
        task: tenant::TenantTask,
    },
}

/// Builds every binary in release and runs the suite `tool` (`rat-chaos`,
/// `rat-soak`) with `--bin-dir` of those binaries and `args`; fails when
/// the suite does (`what` names it in the error).
fn run_release_suite(tool: &str, args: Vec<String>, what: &str) -> anyhow::Result<()> {
    system::ensure_postgres_server()?;
    cargo(&["build", "--quiet", "--release", "--bins"])?;
    let bin_dir = project_root().join("target/release");
    let status = std::process::Command::new(bin_dir.join(tool))
        .arg("--bin-dir")
        .arg(&bin_dir)
        .args(&args)
        .status()
        .with_context(|| format!("running {tool}"))?;
    anyhow::ensure!(status.success(), "{what} failed ({status})");
    Ok(())
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    match cli.task {
        Task::Test(args) => test::run(args),
        Task::Dev(args) => runtime.block_on(dev::run(args)),
        Task::Portal(args) => runtime.block_on(portal::run(args)),
        Task::Bench { args } => {
            system::ensure_postgres_server()?;
            let mut bench_args: Vec<String> = args.clone();
            let needs_api = matches!(
                args.first().map(String::as_str),
                Some("api" | "runs" | "reaper" | "scale")
            );
            if args.first().map(String::as_str) == Some("api") {
                system::ensure_program("wrk", "wrk")?;
                system::ensure_program("pgbench", "postgresql-contrib")?;
                // The OIDC side signs in with a token of a real OpenID
                // provider (rat_testkit::oidc), run with Node.js.
                system::ensure_program("node", "nodejs")?;
                system::ensure_program("npm", "npm")?;
                if args.iter().any(|a| a == "--via-pgbouncer") {
                    system::ensure_program_in("pgbouncer", "pgbouncer", &["/usr/sbin"])?;
                }
            }
            if needs_api {
                cargo(&["build", "--quiet", "--release", "--package", "rat-api"])?;
                let api_bin = project_root().join("target/release/rat-api");
                bench_args.splice(1..1, ["--api-bin".to_owned(), api_bin.display().to_string()]);
            }
            if matches!(args.first().map(String::as_str), Some("scheduler" | "scale")) {
                cargo(&["build", "--quiet", "--release", "--package", "rat-scheduler"])?;
                let scheduler_bin = project_root().join("target/release/rat-scheduler");
                bench_args.splice(
                    1..1,
                    ["--scheduler-bin".to_owned(), scheduler_bin.display().to_string()],
                );
            }
            let mut cargo_args = vec!["run", "--quiet", "--release", "--package", "rat-bench", "--"];
            cargo_args.extend(bench_args.iter().map(String::as_str));
            cargo(&cargo_args)
        }
        Task::Chaos {
            short,
            settle_secs,
            report,
        } => {
            let mut args = vec!["--settle-secs".to_owned(), settle_secs.to_string()];
            if short {
                args.push("--short".to_owned());
            }
            if let Some(report) = report {
                args.extend(["--report".to_owned(), report.display().to_string()]);
            }
            run_release_suite("rat-chaos", args, "the fault suite")
        }
        Task::Soak {
            minutes,
            interval_secs,
            report,
            chart,
        } => {
            let mut args = vec![
                "--minutes".to_owned(),
                minutes.to_string(),
                "--interval-secs".to_owned(),
                interval_secs.to_string(),
            ];
            if let Some(report) = report {
                args.extend(["--report".to_owned(), report.display().to_string()]);
            }
            if let Some(chart) = chart {
                args.extend(["--chart".to_owned(), chart.display().to_string()]);
            }
            run_release_suite("rat-soak", args, "the soak")
        }
        Task::Db { task } => runtime.block_on(async {
            match task {
                DbTask::Seed(args) => seed::run(args).await,
                DbTask::Migrate { database_url } => {
                    let url = match database_url {
                        Some(url) => url,
                        None => dev::ensure_dev_database(&dev::DevPaths::default()).await?,
                    };
                    let report = rat_testkit::dao::migrate(&url.as_str().into())
                        .await
                        .context("applying migrations")?;
                    println!("applied {} migration(s)", report.applied.len());
                    Ok(())
                }
                DbTask::Roles(args) => tenant::roles(args).await,
                DbTask::Tenant { task } => tenant::tenant(task).await,
                DbTask::Url => {
                    let url = dev::ensure_dev_database(&dev::DevPaths::default()).await?;
                    println!("{url}");
                    Ok(())
                }
            }
        }),
    }
}

/// The workspace root (the parent of `xtask/`).
pub(crate) fn project_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives in the workspace")
        .to_path_buf()
}

/// Runs `cargo <args>` in the workspace root, failing on a non-zero exit.
pub(crate) fn cargo(args: &[&str]) -> anyhow::Result<()> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    println!("$ cargo {}", args.join(" "));
    let status = Command::new(&cargo)
        .args(args)
        .current_dir(project_root())
        .status()
        .with_context(|| format!("running cargo {}", args.join(" ")))?;
    if !status.success() {
        bail!("`cargo {}` failed ({status})", args.join(" "));
    }
    Ok(())
}
