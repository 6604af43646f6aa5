//! `publish`: one pipeline with `--files` files on moto; each run edits one
//! file and publishes, timing the publish alone (listing HEAD, one
//! transaction, pruning).

use rat_service::identity::Caller;
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use rat_domain::{PipelineRef, PipelineType};
use rat_service::pipelines::NewPipeline;
use rat_service::{Services, files, pipelines, versions};
use rat_testkit::TestDatabase;
use rat_testkit::s3::MotoServer;
use rat_versioning::VersionedStore;
use rat_versioning::s3::S3Store;
use time::OffsetDateTime;

/// Arguments of the publish benchmark.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Files in the pipeline (starter files included).
    #[arg(long, default_value_t = 100)]
    files: usize,
    /// Timed publishes.
    #[arg(long, default_value_t = 15)]
    runs: usize,
}

async fn measure(services: &Services, address: &PipelineRef, runs: usize) -> anyhow::Result<Vec<f64>> {
    let edited = format!("{}pipeline.sql", address.s3_prefix());
    let mut samples = Vec::with_capacity(runs);
    for run in 0..=runs {
        files::write_file(
            services,
            &Caller::community(),
            &edited,
            format!("SELECT {run}").into_bytes(),
        )
        .await?;
        let started = Instant::now();
        versions::publish(
            services,
            &Caller::community(),
            address,
            &format!("run {run}"),
            OffsetDateTime::now_utc(),
        )
        .await?;
        // The first publish warms connections and caches; it is not counted.
        if run > 0 {
            samples.push(started.elapsed().as_secs_f64() * 1000.0);
        }
    }
    Ok(samples)
}

pub(crate) async fn run(args: Args) -> anyhow::Result<()> {
    anyhow::ensure!(args.files >= 2 && args.runs >= 1, "need at least 2 files and 1 run");
    let db = TestDatabase::new().await;
    let moto = tokio::task::spawn_blocking(MotoServer::start).await?;
    let store = S3Store::connect(moto.new_bucket_config())
        .await
        .context("connecting to moto")?;
    let services = Services::new(db.pool().clone(), Arc::new(store.clone()) as Arc<dyn VersionedStore>);

    let address = PipelineRef::parse("default", "silver", "bench")?;
    pipelines::create_pipeline(
        &services,
        &Caller::community(),
        NewPipeline {
            address: address.clone(),
            pipeline_type: PipelineType::Sql,
            description: "publish benchmark".to_owned(),
            owner: None,
            max_versions: None,
        },
    )
    .await?;
    for i in 2..args.files {
        let path = format!("{}models/m{i:04}.sql", address.s3_prefix());
        files::write_file(
            &services,
            &Caller::community(),
            &path,
            format!("SELECT {i} AS id").into_bytes(),
        )
        .await?;
    }

    println!(
        "publish of a {}-file pipeline against moto ({})",
        args.files,
        moto.endpoint()
    );
    let mut fast = measure(&services, &address, args.runs).await?;
    println!(
        "  one-request listing (ListObjectVersions): {}",
        crate::summary(&mut fast)
    );

    // The path long histories take: ListObjectsV2 and 16 concurrent HEADs.
    let head_path = Services::new(
        db.pool().clone(),
        Arc::new(store.with_versions_page(1)) as Arc<dyn VersionedStore>,
    );
    let mut heads = measure(&head_path, &address, args.runs).await?;
    println!(
        "  list + concurrent HEADs (long histories):  {}",
        crate::summary(&mut heads)
    );
    println!("  target (design §6): < 300 ms");
    Ok(())
}
