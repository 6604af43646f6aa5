//! `cargo xtask db seed`: fills a database with a realistic volume of metadata
//! (the generator is `rat_testkit::seed`).

use std::path::PathBuf;
use std::sync::Arc;
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
    /// The demo set of `cargo xtask dev` instead of the benchmark volume:
    /// pipelines created, written and published through the service, their
    /// files in `--store`.
    #[arg(long)]
    small: bool,
    /// File store of the demo set's pipeline files, `fs:<dir>` (default:
    /// the dev store, `.rat-dev/store`). Only `--small` writes files.
    #[arg(long, env = "RAT_STORE")]
    store: Option<String>,
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
    let started = Instant::now();
    if args.small {
        let dir = match &args.store {
            Some(store) => match store.strip_prefix("fs:") {
                Some(dir) => PathBuf::from(dir),
                None => bail!("--store must be `fs:<dir>` (the demo set writes its files there), got {store:?}"),
            },
            None => crate::dev::DevPaths::default().store_dir(),
        };
        let store = rat_versioning::fs::FsStore::open(dir.clone())
            .await
            .with_context(|| format!("opening the file store in {}", dir.display()))?;
        rat_testkit::demo::seed_demo(&url, Arc::new(store), args.append).await?;
    } else {
        seed(&url, &Scale::full(), args.append).await?;
    }
    println!("seeded in {:.1} s", started.elapsed().as_secs_f64());
    Ok(())
}
