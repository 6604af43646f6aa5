//! Creating pipelines: the row and its starter files, all or nothing.

use rat_dao::pipelines::{self, NewPipeline};
use rat_domain::{Pipeline, PipelineRef, PipelineType};
use rat_versioning::{KeyPrefix, ObjectKey, list_all_latest};

use crate::{ServiceError, Services};

/// The answer to a create: the stored pipeline and the keys of the files written.
#[derive(Debug, Clone)]
pub struct CreatedPipeline {
    /// The new row.
    pub pipeline: Pipeline,
    /// Full keys of the starter files, in the order written.
    pub files_created: Vec<String>,
}

/// The starter files of a new pipeline: its source file and `config.yaml`.
pub fn starter_files(address: &PipelineRef, pipeline_type: PipelineType) -> Vec<(&'static str, String)> {
    let source = match pipeline_type {
        PipelineType::Sql => format!(
            "-- {address}\n\
             -- The SELECT that builds this table. Refer to upstream tables as\n\
             -- {{{{ ref('namespace.layer.table') }}}}.\n\
             SELECT 1 AS id\n"
        ),
        PipelineType::Python => format!(
            "# {address}\n\
             # Build this table: assign a DataFrame or Arrow table to `result`.\n\
             result = None\n"
        ),
    };
    let config = format!(
        "# Configuration of {address}\n\
         description: \"\"\n\
         materialization: table\n"
    );
    vec![(pipeline_type.source_file(), source), ("config.yaml", config)]
}

/// Creates a pipeline: inserts the row and writes its starter files, and
/// commits only when both succeeded, so no half-created pipeline is ever
/// visible. Files left at the pipeline's prefix by a deleted pipeline of the
/// same name are deleted (their versions stay readable), so the new pipeline
/// starts from its starter files only.
#[tracing::instrument(skip(services, new), fields(pipeline = %new.address), err)]
pub async fn create_pipeline(services: &Services, new: NewPipeline) -> Result<CreatedPipeline, ServiceError> {
    let mut client = services.pool.get().await?;
    let transaction = client.transaction().await?;
    // The insert takes the name: a concurrent create of the same name waits
    // for this transaction and then fails as a duplicate.
    let pipeline = pipelines::create(&transaction, &new).await?;

    let prefix = KeyPrefix::parse(&pipeline.s3_path)?;
    let files = starter_files(&new.address, new.pipeline_type);
    let mut written: Vec<ObjectKey> = Vec::with_capacity(files.len());
    let result: Result<(), ServiceError> = async {
        for (name, content) in &files {
            let key = prefix.join(name)?;
            services
                .store
                .put(&key, content.clone().into_bytes(), content_type(name))
                .await?;
            written.push(key);
        }
        for leftover in list_all_latest(services.store.as_ref(), &prefix).await? {
            if !written.contains(&leftover.key) {
                services.store.delete(&leftover.key).await?;
            }
        }
        Ok(())
    }
    .await;
    let result = match result {
        Ok(()) => transaction.commit().await.map_err(ServiceError::from),
        Err(e) => {
            drop(transaction);
            Err(e)
        }
    };
    if let Err(e) = result {
        // The row is rolled back (or was never committed); remove the
        // starter files we wrote, best effort: the store may be what failed.
        for key in &written {
            if let Err(cleanup) = services.store.delete(key).await {
                tracing::warn!(key = %key, error = %cleanup, "could not remove a starter file of a failed create");
            }
        }
        return Err(e);
    }
    Ok(CreatedPipeline {
        pipeline,
        files_created: written.into_iter().map(|k| k.as_str().to_owned()).collect(),
    })
}

/// The content type stored with a file, from its name.
pub fn content_type(name: &str) -> &'static str {
    match name.rsplit('.').next() {
        Some("sql") => "application/sql",
        Some("py") => "text/x-python",
        Some("yaml") | Some("yml") => "application/yaml",
        Some("json") => "application/json",
        Some("md") => "text/markdown",
        _ => "application/octet-stream",
    }
}
