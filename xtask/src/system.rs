//! Installing what the tasks need on a fresh Debian machine.

use std::process::Command;

use anyhow::{Context, bail};
use rat_testkit::cluster::{INSTALL_HINT, find_server_binaries};

/// Makes sure the PostgreSQL server binaries are present. When they are not,
/// and this runs as root on a machine with apt, installs Debian's `postgresql`
/// package (saying so); otherwise fails with the install hint.
pub(crate) fn ensure_postgres_server() -> anyhow::Result<()> {
    if find_server_binaries().is_ok() {
        return Ok(());
    }
    let is_root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0");
    let has_apt = Command::new("apt-get")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !(is_root && has_apt) {
        bail!("the PostgreSQL server binaries are missing; {INSTALL_HINT}");
    }
    println!("PostgreSQL server binaries not found: installing Debian's postgresql package");
    for args in [
        &["update"][..],
        &["install", "-y", "--no-install-recommends", "postgresql"][..],
    ] {
        let status = Command::new("apt-get")
            .args(args)
            .env("DEBIAN_FRONTEND", "noninteractive")
            .status()
            .context("running apt-get")?;
        if !status.success() {
            bail!("`apt-get {}` failed ({status}); {INSTALL_HINT}", args.join(" "));
        }
    }
    find_server_binaries().map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(())
}
