//! Ready-made rows for tests: a namespace, a pipeline, a published pipeline,
//! a run. Each goes through the real repositories.

use rat_dao::{GenericClient, namespaces, pipelines, runs};
use rat_domain::{NamespaceName, Pipeline, PipelineRef, PipelineType, PublishedVersions, Run, trigger_label};
use time::OffsetDateTime;

/// A namespace called `name`, created unless it exists.
pub async fn namespace(client: &impl GenericClient, name: &str) -> NamespaceName {
    let name = NamespaceName::parse(name).expect("fixture namespace name");
    if !namespaces::exists(client, &name).await.expect("namespace lookup") {
        namespaces::create(client, &name, "", None)
            .await
            .expect("create fixture namespace");
    }
    name
}

/// A never-published SQL pipeline at `ns/layer/name` (namespace created if needed).
pub async fn pipeline(client: &impl GenericClient, ns: &str, layer: &str, name: &str) -> Pipeline {
    namespace(client, ns).await;
    let address = PipelineRef::parse(ns, layer, name).expect("fixture pipeline address");
    pipelines::create(
        client,
        &pipelines::NewPipeline {
            address,
            pipeline_type: PipelineType::Sql,
            description: String::new(),
            owner: None,
            max_versions: None,
        },
    )
    .await
    .expect("create fixture pipeline")
}

/// The snapshot fixtures pin: one source file and its config.
pub fn snapshot(pipeline: &Pipeline) -> PublishedVersions {
    PublishedVersions::from_pairs([
        (format!("{}pipeline.sql", pipeline.s3_path), "v-sql-1".to_owned()),
        (format!("{}config.yaml", pipeline.s3_path), "v-cfg-1".to_owned()),
    ])
    .expect("fixture snapshot")
}

/// A pipeline at `ns/layer/name` published with [`snapshot`].
pub async fn published_pipeline(client: &impl GenericClient, ns: &str, layer: &str, name: &str) -> Pipeline {
    let created = pipeline(client, ns, layer, name).await;
    pipelines::set_published(
        client,
        created.id,
        &snapshot(&created),
        OffsetDateTime::now_utc(),
        false,
    )
    .await
    .expect("publish fixture pipeline")
}

/// A pending manual run of `pipeline` executing version 1 of its snapshot.
pub async fn run(client: &impl GenericClient, pipeline: &Pipeline) -> Run {
    run_at(client, pipeline, OffsetDateTime::now_utc()).await
}

/// A pending manual run of `pipeline` created at `created_at`.
pub async fn run_at(client: &impl GenericClient, pipeline: &Pipeline, created_at: OffsetDateTime) -> Run {
    runs::create(
        client,
        &runs::NewRun {
            pipeline_id: pipeline.id,
            trigger: trigger_label::MANUAL.to_owned(),
            version_number: 1,
            published_versions: snapshot(pipeline),
            schedule_id: None,
            trigger_id: None,
            scheduled_for: None,
        },
        created_at,
    )
    .await
    .expect("create fixture run")
}
