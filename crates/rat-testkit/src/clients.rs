//! RAT's own clients — its TypeScript SDK (`@squat-collective/rat-client`)
//! and its web portal (Next.js) — built from the archive of RAT's
//! repository beside the project (`../shared/clients/rat-cdc096f.tar.gz`),
//! for the end-to-end test driving the portal's flows through the SDK and
//! for `cargo xtask portal`. Their code is never copied into the project:
//! each is unpacked under `target/rat-clients/` and installed there with
//! `npm ci` (pinned by its own lock file), once for every process (a file
//! lock, a marker written last), then reused.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::s3::target_dir;

/// The archive's name, and the top folder inside it.
pub const CLIENTS_ARCHIVE: &str = "rat-cdc096f.tar.gz";
const ARCHIVE_TOP: &str = "rat-cdc096f";

/// Overrides where the archive is (a path to the `.tar.gz`).
pub const CLIENTS_ARCHIVE_ENV: &str = "RAT_CLIENTS_ARCHIVE";

/// The line every "cannot build RAT's clients" failure ends with.
pub const CLIENTS_HINT: &str = "RAT's SDK and portal are built from ../shared/clients/rat-cdc096f.tar.gz (beside the \
     checkout; RAT_CLIENTS_ARCHIVE names another path) with node and npm (Debian: `apt-get install -y nodejs npm`; the \
     portal needs Node.js 20.9 or later), and need network access to the npm registry on first use";

/// The archive of RAT's repository: `$RAT_CLIENTS_ARCHIVE`, or else
/// `../shared/clients/rat-cdc096f.tar.gz` relative to the workspace root.
pub fn clients_archive() -> Result<PathBuf, String> {
    let path = match std::env::var_os(CLIENTS_ARCHIVE_ENV) {
        Some(path) => PathBuf::from(path),
        None => workspace_root().join("../shared/clients").join(CLIENTS_ARCHIVE),
    };
    if path.is_file() {
        Ok(path)
    } else {
        Err(format!("{} is not there; {CLIENTS_HINT}", path.display()))
    }
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Where the archive is unpacked: `target/rat-clients/rat-cdc096f`.
pub fn clients_dir() -> PathBuf {
    target_dir().join("rat-clients").join(ARCHIVE_TOP)
}

/// Makes sure RAT's SDK is unpacked, installed (`npm ci`) and built
/// (`npm run build`, tsup) in `target/rat-clients/rat-cdc096f/sdk-typescript`;
/// returns that directory (the ES module is `dist/index.js`).
pub fn ensure_sdk_built() -> Result<PathBuf, String> {
    check_node(18)?;
    let archive = clients_archive()?;
    let dir = clients_dir().join("sdk-typescript");
    let complete = dir.join("dist/index.js");
    let pins = pins(&archive, "sdk-typescript: npm ci, npm run build")?;
    crate::install::install_once(
        &dir,
        "rat-sdk.lock",
        &pins,
        &complete,
        "RAT's SDK",
        CLIENTS_HINT,
        || {
            unpack(&archive, "sdk-typescript")?;
            npm(&dir, &["ci"])?;
            npm(&dir, &["run", "build"])
        },
    )?;
    Ok(dir)
}

/// Makes sure RAT's portal is unpacked and its dependencies installed
/// (`npm ci`, the SDK built first: the portal links `file:../sdk-typescript`)
/// in `target/rat-clients/rat-cdc096f/portal`; returns that directory. It is
/// not built: `next build` bakes the API's origin in.
pub fn ensure_portal_installed() -> Result<PathBuf, String> {
    ensure_sdk_built()?;
    check_node_version(20, 9)?;
    let archive = clients_archive()?;
    let dir = clients_dir().join("portal");
    let complete = dir.join("node_modules/next/package.json");
    let pins = pins(&archive, "portal: npm ci")?;
    crate::install::install_once(
        &dir,
        "rat-portal.lock",
        &pins,
        &complete,
        "RAT's portal",
        CLIENTS_HINT,
        || {
            unpack(&archive, "portal")?;
            npm(&dir, &["ci"])
        },
    )?;
    Ok(dir)
}

/// What identifies an install: the archive (by name and size) and the steps.
fn pins(archive: &Path, steps: &str) -> Result<String, String> {
    let size = fs::metadata(archive)
        .map_err(|e| format!("cannot read {}: {e}", archive.display()))?
        .len();
    Ok(format!("{CLIENTS_ARCHIVE} ({size} bytes)\n{steps}\n"))
}

/// Unpacks the archive's `rat-cdc096f/{folder}` (and its licence) into
/// `target/rat-clients/`.
fn unpack(archive: &Path, folder: &str) -> Result<(), String> {
    let into = target_dir().join("rat-clients");
    fs::create_dir_all(&into).map_err(|e| format!("cannot create {}: {e}", into.display()))?;
    let out = Command::new("tar")
        .arg("-xzf")
        .arg(archive)
        .arg("-C")
        .arg(&into)
        .arg(format!("{ARCHIVE_TOP}/{folder}"))
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run tar ({e}); {CLIENTS_HINT}"))?;
    if !out.status.success() {
        let doing = format!("unpacking {ARCHIVE_TOP}/{folder} from {}", archive.display());
        return Err(crate::install::failed(&doing, &out.stderr, CLIENTS_HINT));
    }
    Ok(())
}

/// Runs `npm {args}` in `dir`, quietly and without audit or funding calls.
fn npm(dir: &Path, args: &[&str]) -> Result<(), String> {
    let out = Command::new("npm")
        .args(args)
        .args(["--no-audit", "--no-fund", "--no-update-notifier"])
        .current_dir(dir)
        .env("NEXT_TELEMETRY_DISABLED", "1")
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run npm ({e}); {CLIENTS_HINT}"))?;
    if !out.status.success() {
        let doing = format!("`npm {}` in {}", args.join(" "), dir.display());
        let mut output = out.stdout;
        output.extend_from_slice(&out.stderr);
        return Err(crate::install::failed(&doing, &output, CLIENTS_HINT));
    }
    Ok(())
}

/// Fails, saying what to install, unless `npm` runs and `node` is at least
/// `major`.
fn check_node(major: u32) -> Result<(), String> {
    check_node_version(major, 0)
}

/// Fails, saying what to install, unless `npm` runs and `node` is at least
/// `major.minor`.
pub fn check_node_version(major: u32, minor: u32) -> Result<(), String> {
    let version = Command::new("node")
        .arg("--version")
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run node ({e}); {CLIENTS_HINT}"))?;
    let text = String::from_utf8_lossy(&version.stdout).trim().to_owned();
    let mut parts = text.strip_prefix('v').unwrap_or(&text).split('.');
    let mut next = || parts.next().and_then(|p| p.parse::<u32>().ok());
    match (next(), next()) {
        (Some(a), Some(b)) if (a, b) >= (major, minor) => {}
        _ => {
            return Err(format!(
                "node --version answered {text:?}, not {major}.{minor} or later; {CLIENTS_HINT}"
            ));
        }
    }
    let npm = Command::new("npm")
        .arg("--version")
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run npm ({e}); {CLIENTS_HINT}"))?;
    if !npm.status.success() {
        return Err(format!("`npm --version` failed; {CLIENTS_HINT}"));
    }
    Ok(())
}
