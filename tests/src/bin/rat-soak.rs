//! `rat-soak`: the soak (`tests::soak`), as `cargo xtask soak` runs it.
//! Prints the samples and the verdict as Markdown (and writes them to
//! `--report FILE`, the chart to `--chart FILE`); exits 1 when the verdict
//! fails.
//!
//! Usage: `rat-soak --bin-dir DIR --minutes N [--interval-secs N] [--report FILE] [--chart FILE]`

use std::path::PathBuf;
use std::time::Duration;

use tests::soak::Config;

fn usage() -> ! {
    eprintln!("usage: rat-soak --bin-dir DIR --minutes N [--interval-secs N] [--report FILE] [--chart FILE]");
    std::process::exit(2);
}

fn number(value: Option<String>, range: std::ops::RangeInclusive<u64>) -> u64 {
    value
        .and_then(|n| n.parse().ok())
        .filter(|n| range.contains(n))
        .unwrap_or_else(|| usage())
}

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let (mut bin_dir, mut minutes, mut interval, mut report, mut chart) = (None, None, 10, None, None);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--bin-dir" => bin_dir = Some(PathBuf::from(args.next().unwrap_or_else(|| usage()))),
            "--minutes" => minutes = Some(number(args.next(), 1..=24 * 60)),
            "--interval-secs" => interval = number(args.next(), 1..=600),
            "--report" => report = Some(PathBuf::from(args.next().unwrap_or_else(|| usage()))),
            "--chart" => chart = Some(PathBuf::from(args.next().unwrap_or_else(|| usage()))),
            _ => usage(),
        }
    }
    let (Some(bin_dir), Some(minutes)) = (bin_dir, minutes) else {
        usage()
    };
    let logs = tests::scratch_dir("rat-soak");
    let config = Config {
        bin_dir,
        duration: Duration::from_secs(minutes * 60),
        interval: Duration::from_secs(interval),
        logs: logs.clone(),
    };
    eprintln!(
        "rat-soak: {minutes} min, a sample every {interval} s; logs in {}",
        logs.display()
    );
    let outcome = match tests::soak::run(config).await {
        Ok(outcome) => outcome,
        Err(e) => {
            eprintln!("rat-soak: {e}\n{}", tests::chaos::log_tails(&logs));
            std::process::exit(1);
        }
    };
    let markdown = outcome.markdown();
    println!("{markdown}");
    if let Some(path) = report
        && let Err(e) = std::fs::write(&path, &markdown)
    {
        eprintln!("rat-soak: cannot write {}: {e}", path.display());
        std::process::exit(1);
    }
    if let Some(path) = chart
        && let Err(e) = outcome.write_chart(&path)
    {
        eprintln!("rat-soak: {e}");
        std::process::exit(1);
    }
    if !outcome.passed() {
        eprintln!("rat-soak: FAILED (an error, or a trend after the warm-up)");
        std::process::exit(1);
    }
}
