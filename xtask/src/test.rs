//! `cargo xtask test`: what CI runs.

use std::time::Instant;

use anyhow::Context;
use clap::Args;
use rat_testkit::cluster::{Cluster, ClusterOptions, INSTALL_HINT};

use crate::cargo;

/// Arguments of `cargo xtask test`.
#[derive(Debug, Args)]
pub(crate) struct TestArgs {
    /// Extra arguments for `cargo test` (after `--`), e.g. a test name filter.
    #[arg(last = true)]
    cargo_test_args: Vec<String>,
}

pub(crate) fn run(args: TestArgs) -> anyhow::Result<()> {
    let started = Instant::now();
    cargo(&["fmt", "--all", "--", "--check"]).context("formatting differs; run `cargo fmt --all`")?;
    cargo(&["clippy", "--workspace", "--all-targets", "--", "-D", "warnings"])?;
    // The crate docs build without a warning (a broken intra-doc link fails);
    // their examples run as doctests in `cargo test --workspace` below.
    cargo_with_env(
        &["doc", "--no-deps", "--workspace"],
        &[("RUSTDOCFLAGS", std::ffi::OsStr::new("-D warnings"))],
    )
    .context("the docs have warnings")?;

    // Start the tests' database up front, so a machine without PostgreSQL
    // fails here with the install hint, and stop it afterwards if we started it.
    let external = std::env::var(rat_testkit::ADMIN_URL_ENV).is_ok_and(|v| !v.trim().is_empty());
    let cluster = if external {
        println!("tests use RAT_TEST_DATABASE_URL");
        None
    } else {
        crate::system::ensure_postgres_server()?;
        let cluster = Cluster::new(ClusterOptions::for_tests()).map_err(|e| anyhow::anyhow!("{e}"))?;
        let was_running = cluster.is_running();
        cluster
            .start()
            .map_err(|e| anyhow::anyhow!("{e}\n{INSTALL_HINT}"))
            .context("starting the test PostgreSQL cluster")?;
        Some((cluster, was_running))
    };

    // The end-to-end tests behind a transaction pooler run a private PgBouncer.
    crate::system::ensure_program_in("pgbouncer", "pgbouncer", &["/usr/sbin"])?;

    // The S3 tests run against moto in a virtualenv under target/: install it
    // once here, so a missing Python fails with its hint before any test.
    let moto = rat_testkit::s3::ensure_moto_installed().map_err(|e| anyhow::anyhow!("{e}"))?;
    println!("moto: {}", moto.display());
    // Likewise the OpenID provider of the OIDC end-to-end tests (npm).
    let oidc = rat_testkit::oidc::ensure_oidc_provider_installed().map_err(|e| anyhow::anyhow!("{e}"))?;
    println!("oidc-provider: {}", oidc.display());
    // And RAT's TypeScript SDK, built from ../shared/clients/ (npm ci, tsup),
    // which the SDK end-to-end test drives the portal's flows through.
    let sdk = rat_testkit::clients::ensure_sdk_built().map_err(|e| anyhow::anyhow!("{e}"))?;
    println!("RAT's SDK: {}", sdk.display());
    // And the Python tools that check the OpenAPI documents.
    for tool in [
        rat_testkit::pytools::OPENAPI_SPEC_VALIDATOR,
        rat_testkit::pytools::SCHEMATHESIS,
        rat_testkit::pytools::OPENAPI_PYTHON_CLIENT,
    ] {
        let script = tool.ensure_installed().map_err(|e| anyhow::anyhow!("{e}"))?;
        println!("{}: {}", tool.name, script.display());
    }

    // The end-to-end tests in tests/ start the real binaries: build them
    // first, and tell the tests where they are.
    cargo(&["build", "--workspace", "--bins"])?;
    let bin_dir = std::env::var_os("CARGO_TARGET_DIR")
        .map_or_else(|| crate::project_root().join("target"), std::path::PathBuf::from)
        .join("debug");

    let mut test_args = vec!["test", "--workspace", "--no-fail-fast"];
    if !args.cargo_test_args.is_empty() {
        test_args.push("--");
        test_args.extend(args.cargo_test_args.iter().map(String::as_str));
    }
    let mut result = cargo_with_env(&test_args, &[("RAT_BIN_DIR", bin_dir.as_os_str())]);
    // The repositories once more, every statement sent unnamed with declared
    // parameter types, as through a transaction pooler (about a minute): a
    // query whose parameter types only the server's inference accepts fails
    // here, not in production behind PgBouncer.
    if result.is_ok() && args.cargo_test_args.is_empty() {
        result = cargo_with_env(
            &["test", "-p", "rat-dao", "--test", "it"],
            &[("RAT_TEST_UNNAMED_STATEMENTS", std::ffi::OsStr::new("1"))],
        );
    }

    if let Some((cluster, false)) = cluster
        && let Err(e) = cluster.stop()
    {
        eprintln!("warning: could not stop the test cluster: {e}");
    }
    result?;
    println!(
        "cargo xtask test: all checks passed in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// Like [`cargo`], with extra environment variables for the child.
fn cargo_with_env(args: &[&str], env: &[(&str, &std::ffi::OsStr)]) -> anyhow::Result<()> {
    let program = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    println!("$ cargo {}", args.join(" "));
    let status = std::process::Command::new(&program)
        .args(args)
        .envs(env.iter().copied())
        .current_dir(crate::project_root())
        .status()
        .with_context(|| format!("running cargo {}", args.join(" ")))?;
    anyhow::ensure!(status.success(), "`cargo {}` failed ({status})", args.join(" "));
    Ok(())
}
