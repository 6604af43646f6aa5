//! `rat-api`: the ratd-compatible REST server of the RAT metadata plane.
//!
//! Today it only manages the schema (`rat-api migrate`); the REST server
//! arrives with the API issue. See `rat-cli` for the shared variables.

use clap::{Parser, Subcommand};

/// The RAT metadata REST API.
#[derive(Debug, Parser)]
#[command(name = "rat-api", version, about)]
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

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    cli.log.init();
    match cli.command {
        Some(Command::Migrate) => rat_cli::migrate(&cli.database.database_url).await,
        None => {
            cli.database.migrate_unless_disabled().await?;
            anyhow::bail!("the REST server is not built yet; only `rat-api migrate` works in this version")
        }
    }
}
