//! Installing a test tool (moto, oidc-provider) once under `target/`, for
//! every test process at once.

use std::fs::{self, File};
use std::path::Path;
use std::time::Instant;

use crate::s3::target_dir;

/// Makes sure the tool pinned by `pins` is installed in `dir`, a directory
/// under `target/`: does nothing when it already is, else runs `install`
/// (into an empty `dir`, which it may have to create) under a file lock
/// shared by every process (`target/{lock}`), so concurrent tests install it
/// once. A marker naming the pins is written last, so a half-finished
/// install is never taken for a good one and changing a pin installs again;
/// `complete` is a file the install must leave. `what` names the tool in
/// messages, `hint` says how to get what the install needs.
pub(crate) fn install_once(
    dir: &Path,
    lock: &str,
    pins: &str,
    complete: &Path,
    what: &str,
    hint: &str,
    install: impl FnOnce() -> Result<(), String>,
) -> Result<(), String> {
    let marker = dir.join(".rat-installed");
    let installed = || fs::read_to_string(&marker).is_ok_and(|text| text == pins) && complete.is_file();
    if installed() {
        return Ok(());
    }
    let target = target_dir();
    fs::create_dir_all(&target).map_err(|e| format!("cannot create {}: {e}", target.display()))?;
    let lock_path = target.join(lock);
    let lock = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(|e| format!("cannot open {}: {e}", lock_path.display()))?;
    lock.lock()
        .map_err(|e| format!("cannot lock {}: {e}", lock_path.display()))?;
    if installed() {
        return Ok(());
    }
    if dir.exists() {
        fs::remove_dir_all(dir).map_err(|e| format!("cannot remove the incomplete {}: {e}", dir.display()))?;
    }
    let started = Instant::now();
    install()?;
    if !complete.is_file() {
        return Err(format!("installing {what} left no {}; {hint}", complete.display()));
    }
    let temp = dir.join(".rat-installed.tmp");
    fs::write(&temp, pins)
        .and_then(|()| fs::rename(&temp, &marker))
        .map_err(|e| format!("cannot write {}: {e}", marker.display()))?;
    tracing::info!(
        seconds = started.elapsed().as_secs_f64(),
        "installed {what} for the tests"
    );
    drop(lock);
    Ok(())
}

/// Why an installer's run failed: `doing` and the last lines of its stderr.
pub(crate) fn failed(doing: &str, stderr: &[u8], hint: &str) -> String {
    let stderr = String::from_utf8_lossy(stderr);
    let lines: Vec<&str> = stderr.lines().collect();
    format!(
        "{doing} failed:\n{}\n{hint}",
        lines[lines.len().saturating_sub(15)..].join("\n")
    )
}

/// Creates a virtualenv at `venv` and installs the pinned `packages` into it
/// with pip: the install step of every Python tool of the tests (moto, the
/// OpenAPI tools). `name` names the tool in errors, which end with `hint`.
pub(crate) fn pip_into_venv(venv: &Path, packages: &[&str], name: &str, hint: &str) -> Result<(), String> {
    use std::process::{Command, Stdio};
    let out = Command::new("python3")
        .arg("-m")
        .arg("venv")
        .arg(venv)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run python3 ({e}); {hint}"))?;
    if !out.status.success() {
        return Err(format!(
            "`python3 -m venv {}` failed: {}; {hint}",
            venv.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    let out = Command::new(venv.join("bin").join("python"))
        .args([
            "-m",
            "pip",
            "install",
            "--disable-pip-version-check",
            "--no-input",
            "--quiet",
        ])
        .args(packages)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run pip of {} ({e}); {hint}", venv.display()))?;
    if !out.status.success() {
        return Err(failed(&format!("installing {name} with pip"), &out.stderr, hint));
    }
    Ok(())
}
