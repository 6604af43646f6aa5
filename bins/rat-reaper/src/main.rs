//! `rat-reaper`: retention passes over the metadata store.
//!
//! Today it only manages the schema (`rat-reaper migrate`); the reaper loop
//! arrives with its own issue. See `rat-cli` for the shared variables.

use clap::{Parser, Subcommand};

/// The RAT reaper.
#[derive(Debug, Parser)]
#[command(name = "rat-reaper", version, about)]
struct Cli {
    #[command(flatten)]
    database: rat_cli::DatabaseArgs,
    #[command(flatten)]
    log: rat_cli::LogArgs,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Apply pending schema migrations and exit.
    Migrate,
}

/// mimalloc: markedly cheaper than the system allocator for the many small,
/// short-lived allocations of request handling.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let _log_writer = cli.log.init();
    match cli.command {
        Some(Command::Migrate) => rat_cli::migrate(&cli.database.database_url).await,
        None => {
            cli.database.migrate_unless_disabled().await?;
            anyhow::bail!("the reaper loop is not built yet; only `rat-reaper migrate` works in this version")
        }
    }
}
