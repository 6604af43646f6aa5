//! Embedding `rat-service` in a program of your own: connect with the same
//! typed configuration the platform's binaries use (`RAT_DATABASE_URL`,
//! `RAT_STORE`, `RAT_S3_*` ..., through `rat_cli`), then create a namespace
//! and a pipeline, write its SQL, publish it, start a run, and print the
//! run's status. No HTTP server is involved: the program calls the same
//! managers `rat-api` calls, with the same rules and transactions.
//!
//! ```text
//! RAT_DATABASE_URL=postgres://rat@localhost/rat RAT_STORE=fs:/tmp/rat-store \
//!     cargo run -p rat-examples --bin rat-example-embed -- --namespace demo --pipeline orders
//! ```
//!
//! It prints one `key: value` line per step (the end-to-end test
//! `tests/tests/it/examples.rs` reads them). Running it again publishes a new
//! version of the same pipeline and starts another run.

use anyhow::Context;
use clap::Parser;
use rat_domain::{NamespaceName, PipelineRef, PipelineType};
use rat_service::identity::Caller;
use rat_service::pipelines::NewPipeline;
use rat_service::{ServiceError, Services};
use time::OffsetDateTime;

/// Publishes a pipeline and starts a run, in-process.
#[derive(Debug, Parser)]
#[command(name = "rat-example-embed", about)]
struct Cli {
    /// The database, exactly as `rat-api` takes it.
    #[command(flatten)]
    database: rat_cli::DatabaseArgs,
    /// The file store, exactly as `rat-api` takes it.
    #[command(flatten)]
    store: rat_cli::StoreArgs,
    /// Namespace to create (or reuse).
    #[arg(long, default_value = "embedded")]
    namespace: String,
    /// Layer of the pipeline.
    #[arg(long, default_value = "silver")]
    layer: String,
    /// Name of the pipeline to create (or reuse).
    #[arg(long, default_value = "orders")]
    pipeline: String,
    /// The pipeline's SQL.
    #[arg(long, default_value = "SELECT 1 AS id, 'first order' AS label")]
    sql: String,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();

    // Connect as the binaries do: migrate (unless --no-migrate), check the
    // schema, then a pool and the store.
    cli.database.prepare("rat-example-embed").await?;
    let pool =
        rat_service::db::create_pool(&cli.database.pool_settings("rat-example-embed")?).context("creating the pool")?;
    let store = cli.store.open().await?;
    let services = Services::new(pool, store);
    // Community mode's caller (an admin). A program serving users would turn
    // their credentials into a `Caller` with `rat_service::identity::Authenticator`.
    let caller = Caller::community();

    let namespace = NamespaceName::parse(&cli.namespace)?;
    match rat_service::namespaces::create(&services, &caller, &namespace, "made by rat-example-embed").await {
        Ok(_) => println!("namespace: {namespace} (created)"),
        Err(ServiceError::AlreadyExists { .. }) => println!("namespace: {namespace} (exists)"),
        Err(e) => return Err(e).context("creating the namespace"),
    }

    let address = PipelineRef::parse(&cli.namespace, &cli.layer, &cli.pipeline)?;
    let new = NewPipeline {
        address: address.clone(),
        pipeline_type: PipelineType::Sql,
        description: "an embedded example".to_owned(),
        owner: None,
        max_versions: None,
    };
    let prefix = match rat_service::pipelines::create_pipeline(&services, &caller, new).await {
        Ok(created) => {
            println!("pipeline: {address} (created)");
            created.pipeline.s3_path.to_string()
        }
        Err(ServiceError::AlreadyExists { .. }) => {
            println!("pipeline: {address} (exists)");
            rat_service::pipelines::get(&services, &caller, &address)
                .await?
                .s3_path
                .to_string()
        }
        Err(e) => return Err(e).context("creating the pipeline"),
    };

    let key = format!("{prefix}pipeline.sql");
    let written = rat_service::files::write_file(&services, &caller, &key, cli.sql.into_bytes())
        .await
        .context("writing the SQL")?;
    println!("file: {key} at version {}", written.version_id);

    let now = OffsetDateTime::now_utc();
    let published = rat_service::versions::publish(&services, &caller, &address, "published by rat-example-embed", now)
        .await
        .context("publishing")?;
    println!("published: version {}", published.version.version_number.get());

    let run = rat_service::runs::create(&services, &caller, &address, "manual", now)
        .await
        .context("starting a run")?;
    let run = rat_service::runs::get(&services, &caller, run.id).await?;
    println!("run: {} {}", run.id, run.status.as_str());
    Ok(())
}
