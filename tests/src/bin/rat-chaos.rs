//! `rat-chaos`: the fault suite (`tests::chaos`), as `cargo xtask chaos`
//! runs it. Prints the report as Markdown (and writes it to `--report FILE`
//! when given); exits 1 when an invariant is violated or a fault was never
//! recovered from.
//!
//! Usage: `rat-chaos --bin-dir DIR [--short] [--settle-secs N] [--report FILE]`

use std::path::PathBuf;
use std::time::Duration;

use tests::chaos::{Config, Fault};

fn usage() -> ! {
    eprintln!("usage: rat-chaos --bin-dir DIR [--short] [--settle-secs N] [--report FILE]");
    std::process::exit(2);
}

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let (mut bin_dir, mut short, mut settle, mut report) = (None, false, 5u64, None);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--bin-dir" => bin_dir = Some(PathBuf::from(args.next().unwrap_or_else(|| usage()))),
            "--short" => short = true,
            "--settle-secs" => {
                settle = args
                    .next()
                    .and_then(|n| n.parse().ok())
                    .filter(|n| (1..=600).contains(n))
                    .unwrap_or_else(|| usage());
            }
            "--report" => report = Some(PathBuf::from(args.next().unwrap_or_else(|| usage()))),
            _ => usage(),
        }
    }
    let bin_dir = bin_dir.unwrap_or_else(|| usage());
    let logs = tests::scratch_dir("rat-chaos");
    let config = Config {
        bin_dir,
        faults: if short { Fault::short() } else { Fault::all() },
        settle: Duration::from_secs(settle),
        logs: logs.clone(),
    };
    eprintln!("rat-chaos: logs in {}", logs.display());
    let outcome = match tests::chaos::run(config).await {
        Ok(outcome) => outcome,
        Err(e) => {
            eprintln!("rat-chaos: {e}\n{}", tests::chaos::log_tails(&logs));
            std::process::exit(1);
        }
    };
    let markdown = outcome.markdown();
    println!("{markdown}");
    if let Some(path) = report
        && let Err(e) = std::fs::write(&path, &markdown)
    {
        eprintln!("rat-chaos: cannot write {}: {e}", path.display());
        std::process::exit(1);
    }
    if !outcome.passed() {
        eprintln!("rat-chaos: FAILED (an invariant is violated or a fault was never recovered from)");
        std::process::exit(1);
    }
}
