//! `cargo xtask db seed`: fills a database with a realistic volume of metadata
//! (the generator is `rat_testkit::seed`).

use std::time::Instant;

use anyhow::{Context, bail};
use clap::Args;
use rat_testkit::seed::{Scale, is_empty, seed};

/// Arguments of `cargo xtask db seed`.
#[derive(Debug, Args)]
pub(crate) struct SeedArgs {
    /// Database to fill (default: the dev database, started if needed).
    #[arg(long, env = "RAT_DATABASE_URL")]
    database_url: Option<String>,
    /// A small demo set instead of the benchmark volume.
    #[arg(long)]
    small: bool,
    /// Seed even if the database already holds pipelines (namespaces of a
    /// previous seed are reused; names are made unique).
    #[arg(long)]
    append: bool,
}

pub(crate) async fn run(args: SeedArgs) -> anyhow::Result<()> {
    let url = match args.database_url {
        Some(url) => url,
        None => crate::dev::ensure_dev_database(&crate::dev::DevPaths::default()).await?,
    };
    rat_testkit::dao::migrate(&url.as_str().into())
        .await
        .context("migrating before seeding")?;
    if !args.append && !is_empty(&url).await? {
        bail!("the database already holds pipelines; seed an empty database, or pass --append");
    }
    let scale = if args.small { Scale::small() } else { Scale::full() };
    let started = Instant::now();
    seed(&url, &scale, args.append).await?;
    println!("seeded in {:.1} s", started.elapsed().as_secs_f64());
    Ok(())
}
