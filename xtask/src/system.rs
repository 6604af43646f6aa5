//! Installing what the tasks need on a fresh Debian machine.

use std::process::Command;

use anyhow::{Context, bail};
use rat_testkit::cluster::{INSTALL_HINT, find_server_binaries};

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// Installs Debian packages with apt when running as root on a machine with
/// apt (saying so); otherwise fails with `hint`.
fn apt_install(packages: &[&str], hint: &str) -> anyhow::Result<()> {
    let has_apt = Command::new("apt-get")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !(is_root() && has_apt) {
        bail!("{hint}");
    }
    println!("installing Debian packages: {}", packages.join(" "));
    let mut install = vec!["install", "-y", "--no-install-recommends"];
    install.extend_from_slice(packages);
    for args in [&["update"][..], &install[..]] {
        let status = Command::new("apt-get")
            .args(args)
            .env("DEBIAN_FRONTEND", "noninteractive")
            .status()
            .context("running apt-get")?;
        if !status.success() {
            bail!("`apt-get {}` failed ({status}); {hint}", args.join(" "));
        }
    }
    Ok(())
}

/// Makes sure the PostgreSQL server binaries are present, installing
/// Debian's `postgresql` package when possible.
pub(crate) fn ensure_postgres_server() -> anyhow::Result<()> {
    if find_server_binaries().is_ok() {
        return Ok(());
    }
    apt_install(
        &["postgresql"],
        &format!("the PostgreSQL server binaries are missing; {INSTALL_HINT}"),
    )?;
    find_server_binaries().map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(())
}

/// Makes sure `program` is on `PATH`, installing Debian's `package` when possible.
pub(crate) fn ensure_program(program: &str, package: &str) -> anyhow::Result<()> {
    ensure_program_in(program, package, &[])
}

/// Like [`ensure_program`], also finding `program` in `extra_dirs` (Debian
/// puts daemons such as `pgbouncer` in `/usr/sbin`, off a non-root `PATH`).
pub(crate) fn ensure_program_in(program: &str, package: &str, extra_dirs: &[&str]) -> anyhow::Result<()> {
    let present = |p: &str| {
        extra_dirs.iter().any(|d| std::path::Path::new(d).join(p).is_file())
            || Command::new("sh")
                .args(["-c", &format!("command -v {p}")])
                .output()
                .is_ok_and(|o| o.status.success())
    };
    if present(program) {
        return Ok(());
    }
    apt_install(
        &[package],
        &format!("`{program}` is missing; install it (Debian: apt-get install -y {package})"),
    )?;
    if !present(program) {
        bail!("`{program}` is still missing after installing {package}");
    }
    Ok(())
}
