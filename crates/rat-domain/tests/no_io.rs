//! Architecture invariant: `rat-domain` does no IO, so it never depends on an
//! async runtime, a database driver, an S3 client or an HTTP stack.

use std::process::Command;

const FORBIDDEN: &[&str] = &[
    "tokio",
    "tokio-postgres",
    "deadpool",
    "deadpool-postgres",
    "rust-s3",
    "hyper",
    "reqwest",
    "mio",
];

#[test]
fn domain_has_no_io_dependency() {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let output = Command::new(cargo)
        .args([
            "tree",
            "--package",
            "rat-domain",
            "--edges",
            "normal",
            "--prefix",
            "none",
            "--format",
            "{p}",
            "--offline",
        ])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("cargo tree runs");
    assert!(
        output.status.success(),
        "cargo tree failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let tree = String::from_utf8(output.stdout).expect("utf-8 output");
    let crates: Vec<&str> = tree.lines().filter_map(|line| line.split_whitespace().next()).collect();
    assert!(crates.contains(&"rat-domain"), "unexpected cargo tree output: {tree}");
    for forbidden in FORBIDDEN {
        assert!(
            !crates.contains(forbidden),
            "rat-domain depends on {forbidden}, which does IO; move that code to another crate"
        );
    }
}
