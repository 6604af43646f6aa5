//! Repository policy checks (rust-analyzer's "tidy" idea): rules of
//! `ARCHITECTURE.md` that a reviewer would otherwise have to remember.

use std::fs;
use std::path::{Path, PathBuf};

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            if path
                .file_name()
                .is_some_and(|n| n == "target" || n.to_string_lossy().starts_with('.'))
            {
                continue;
            }
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

fn workspace_sources() -> Vec<PathBuf> {
    let root = workspace_root();
    let mut files = Vec::new();
    for dir in ["crates", "bins", "xtask", "tests"] {
        rust_files(&root.join(dir), &mut files);
    }
    assert!(files.len() > 20, "found only {} files", files.len());
    files
}

#[test]
fn every_rust_file_opens_with_a_module_doc_comment() {
    let missing: Vec<String> = workspace_sources()
        .into_iter()
        .filter(|path| {
            let text = fs::read_to_string(path).unwrap();
            !text.trim_start().starts_with("//!")
        })
        .map(|p| p.display().to_string())
        .collect();
    assert!(missing.is_empty(), "files without a `//!` header: {missing:#?}");
}

#[test]
fn library_crates_never_read_the_environment() {
    // Only binaries (and dev tooling) know environment variables; libraries
    // take typed configuration.
    let root = workspace_root();
    let mut offenders = Vec::new();
    for krate in [
        "rat-domain",
        "rat-dao",
        "rat-versioning",
        "rat-service",
        "rat-wire",
        "rat-client",
    ] {
        let mut files = Vec::new();
        rust_files(&root.join("crates").join(krate).join("src"), &mut files);
        // An empty walk would pass for the wrong reason.
        assert!(!files.is_empty(), "no sources found under crates/{krate}/src");
        for path in files {
            let text = fs::read_to_string(&path).unwrap();
            if text.contains("env::var") || text.contains("std::env::vars") {
                offenders.push(path.display().to_string());
            }
        }
    }
    assert!(
        offenders.is_empty(),
        "library code reads the environment: {offenders:#?}"
    );
}

#[test]
fn migrations_follow_the_naming_rule() {
    let dir = workspace_root().join("migrations");
    let mut versions = Vec::new();
    for entry in fs::read_dir(&dir).unwrap() {
        let name = entry.unwrap().file_name().to_string_lossy().into_owned();
        if name == "README.md" {
            continue;
        }
        let rest = name
            .strip_prefix('V')
            .unwrap_or_else(|| panic!("{name}: must start with V"));
        let (version, tail) = rest
            .split_once("__")
            .unwrap_or_else(|| panic!("{name}: V{{n}}__{{name}}.sql"));
        assert!(tail.ends_with(".sql"), "{name}: must be .sql");
        let stem = tail.trim_end_matches(".sql");
        assert!(
            stem.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'),
            "{name}: snake_case name"
        );
        versions.push(
            version
                .parse::<u32>()
                .unwrap_or_else(|_| panic!("{name}: numeric version")),
        );
    }
    versions.sort_unstable();
    assert!(!versions.is_empty(), "no migrations found in {}", dir.display());
    assert_eq!(
        versions,
        (1..=versions.len() as u32).collect::<Vec<_>>(),
        "versions 1..n without gaps"
    );
}

/// The normal (non-dev) dependency closure of `package`, by crate name.
fn dependency_closure(package: &str) -> Vec<String> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let output = std::process::Command::new(cargo)
        .args([
            "tree",
            "--package",
            package,
            "--edges",
            "normal",
            "--prefix",
            "none",
            "--format",
            "{p}",
            "--offline",
        ])
        .current_dir(workspace_root())
        .output()
        .expect("cargo tree runs");
    assert!(
        output.status.success(),
        "cargo tree: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .filter_map(|line| line.split_whitespace().next().map(str::to_owned))
        .collect()
}

#[test]
fn dependencies_point_one_way() {
    // domain ← dao ← service ← bins, and versioning depends on domain only.
    let rules: &[(&str, &[&str])] = &[
        // (rust-s3 brings an HTTP client, hyper included: that is its job.)
        (
            "rat-versioning",
            &["rat-dao", "rat-service", "tokio-postgres", "deadpool-postgres"],
        ),
        (
            "rat-dao",
            &["rat-service", "rat-versioning", "rust-s3", "hyper", "reqwest"],
        ),
        // Only binaries serve HTTP and parse flags.
        ("rat-service", &["axum", "clap", "rat-cli", "rat-testkit"]),
        // The wire shapes are plain data: no IO, and (without its `domain`
        // feature, which only the server turns on) not even the domain.
        (
            "rat-wire",
            &[
                "tokio",
                "reqwest",
                "hyper",
                "axum",
                "rat-domain",
                "rat-dao",
                "rat-service",
                "utoipa",
            ],
        ),
        // The client speaks HTTP only: none of the server's crates.
        (
            "rat-client",
            &[
                "rat-domain",
                "rat-dao",
                "rat-service",
                "rat-versioning",
                "tokio-postgres",
                "axum",
                "utoipa",
            ],
        ),
    ];
    for (package, forbidden) in rules {
        let closure = dependency_closure(package);
        assert!(
            closure.iter().any(|c| c == package),
            "unexpected cargo tree output for {package}"
        );
        for crate_name in *forbidden {
            assert!(
                !closure.iter().any(|c| c == crate_name),
                "{package} must not depend on {crate_name}"
            );
        }
    }
}

#[test]
fn service_functions_do_not_log_their_own_failures() {
    // `#[instrument(err)]` logs every returned error at ERROR: each 404 and
    // 409 of a request, and each 5xx twice (again where it is handled). A
    // failure is logged once, by whoever handles it (the api, the loops).
    let mut files = Vec::new();
    rust_files(&workspace_root().join("crates/rat-service/src"), &mut files);
    assert!(!files.is_empty(), "no sources found under crates/rat-service/src");
    let offenders: Vec<String> = files
        .into_iter()
        .flat_map(|path| {
            let text = fs::read_to_string(&path).unwrap();
            text.lines()
                .enumerate()
                .filter(|(_, line)| {
                    let line = line.trim();
                    line.starts_with("#[tracing::instrument(") || line.starts_with("#[instrument(")
                })
                .filter(|(_, line)| {
                    line.split(|c: char| !c.is_alphanumeric() && c != '_')
                        .any(|word| word == "err")
                })
                .map(|(n, _)| format!("{}:{}", path.display(), n + 1))
                .collect::<Vec<_>>()
        })
        .collect();
    assert!(offenders.is_empty(), "instrument(err) in rat-service: {offenders:#?}");
}

#[test]
fn only_the_service_layer_reaches_the_repositories() {
    // Binaries (and the crates only they use) reach the database through
    // `rat-service`, so no rule of it can be gone around. Tests and tools
    // that arrange rows directly name the repositories through the dev-only
    // `rat-testkit` (`rat_testkit::dao`).
    let root = workspace_root();
    let allowed = ["crates/rat-dao", "crates/rat-service", "crates/rat-testkit"];
    let mut manifests = Vec::new();
    for dir in ["crates", "bins"] {
        for entry in fs::read_dir(root.join(dir)).unwrap() {
            manifests.push(entry.unwrap().path().join("Cargo.toml"));
        }
    }
    manifests.push(root.join("xtask/Cargo.toml"));
    manifests.push(root.join("tests/Cargo.toml"));
    let mut checked = 0;
    let mut offenders = Vec::new();
    for manifest in manifests.iter().filter(|m| m.exists()) {
        let package = manifest
            .parent()
            .unwrap()
            .strip_prefix(&root)
            .unwrap()
            .display()
            .to_string();
        if allowed.contains(&package.as_str()) {
            continue;
        }
        checked += 1;
        let text = fs::read_to_string(manifest).unwrap();
        if text
            .lines()
            .any(|line| line.trim_start().starts_with("rat-dao") || line.contains("\"rat-dao\""))
        {
            offenders.push(package);
        }
    }
    assert!(checked >= 8, "only {checked} manifests checked");
    assert!(offenders.is_empty(), "these name rat-dao: {offenders:#?}");
}
