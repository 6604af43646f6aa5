//! [`Client`]: the REST API under `/api/v1` (namespaces, pipelines, files,
//! publish and versions, runs, schedules, triggers).

use reqwest::Method;
use serde::Serialize;
use uuid::Uuid;

use rat_wire::files::{FileContent, FileList, WriteFile, WrittenFile};
use rat_wire::namespaces::{CreateNamespace, CreatedNamespace, NamespaceList};
use rat_wire::pipelines::{CreatePipeline, CreatedPipeline, PipelineDto, PipelineList, PipelineQuery, UpdatePipeline};
use rat_wire::runs::{CreateRun, RunDto, RunList, RunLogs, RunQuery, RunStatusAnswer};
use rat_wire::schedules::{CreateSchedule, CreatedSchedule, ScheduleDto, ScheduleList, ScheduleQuery, UpdateSchedule};
use rat_wire::triggers::{CreateTrigger, TriggerDto, TriggerList, UpdateTrigger};
use rat_wire::versions::{PublishBody, PublishedDto, RollbackBody, RolledBackDto, VersionList};

use crate::Builder;
use crate::error::Result;
use crate::transport::{Transport, key_path, segment};

/// A page of a list: `limit` rows after skipping `offset` (the server's
/// default is 50 rows, at most 200).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Page {
    /// Rows per page (`None`: the server's default).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
    /// Rows to skip.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub offset: Option<u64>,
}

/// An unused query (the routes that take none).
pub(crate) const NO_QUERY: Option<&()> = None;

/// A pipeline's address: namespace, layer, name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PipelineAddress<'a> {
    /// Namespace.
    pub namespace: &'a str,
    /// `bronze`, `silver` or `gold`.
    pub layer: &'a str,
    /// Name.
    pub name: &'a str,
}

impl<'a> PipelineAddress<'a> {
    /// The address `namespace/layer/name`.
    pub fn new(namespace: &'a str, layer: &'a str, name: &'a str) -> Self {
        PipelineAddress { namespace, layer, name }
    }

    pub(crate) fn path(&self, rest: &str) -> String {
        format!(
            "/api/v1/pipelines/{}/{}/{}{rest}",
            segment(self.namespace),
            segment(self.layer),
            segment(self.name)
        )
    }
}

/// A client of the REST API (`/api/v1`), with the caller's API key, OIDC
/// access token or personal access token as its bearer token.
///
/// Cheap to clone (clones share one connection pool). `GET`, `PUT` and
/// `DELETE` requests are retried as its [`crate::RetryPolicy`] says;
/// `POST`s never are.
#[derive(Clone)]
pub struct Client {
    pub(crate) transport: Transport,
}

impl Client {
    /// A client of the api at `base_url` (`http://127.0.0.1:8080`, without
    /// `/api/v1`), with the default timeout and retries.
    pub fn new(base_url: &str, token: Option<secrecy::SecretString>) -> Result<Self> {
        let mut builder = Builder::new(base_url);
        if let Some(token) = token {
            builder = builder.token(token);
        }
        builder.api()
    }

    pub(crate) fn from_transport(transport: Transport) -> Self {
        Client { transport }
    }

    /// The base URL requests go to.
    pub fn base_url(&self) -> &str {
        self.transport.base()
    }

    /// `GET /api/v1/namespaces`: a page of namespaces, oldest first.
    pub async fn list_namespaces(&self, page: Page) -> Result<NamespaceList> {
        self.transport
            .json::<(), _>(Method::GET, "/api/v1/namespaces", Some(&page), None)
            .await
    }

    /// `POST /api/v1/namespaces`: creates a namespace.
    pub async fn create_namespace(&self, body: &CreateNamespace) -> Result<CreatedNamespace> {
        self.transport
            .json(Method::POST, "/api/v1/namespaces", NO_QUERY, Some(body))
            .await
    }

    /// `DELETE /api/v1/namespaces/{name}`.
    pub async fn delete_namespace(&self, name: &str) -> Result<()> {
        let path = format!("/api/v1/namespaces/{}", segment(name));
        self.transport.call::<()>(Method::DELETE, &path, NO_QUERY, None).await?;
        Ok(())
    }

    /// `GET /api/v1/pipelines`: live pipelines matching `query`.
    pub async fn list_pipelines(&self, query: &PipelineQuery) -> Result<PipelineList> {
        self.transport
            .json::<(), _>(Method::GET, "/api/v1/pipelines", Some(query), None)
            .await
    }

    /// `POST /api/v1/pipelines`: creates a pipeline and its starter files.
    pub async fn create_pipeline(&self, body: &CreatePipeline) -> Result<CreatedPipeline> {
        self.transport
            .json(Method::POST, "/api/v1/pipelines", NO_QUERY, Some(body))
            .await
    }

    /// `GET /api/v1/pipelines/{namespace}/{layer}/{name}`.
    pub async fn get_pipeline(&self, address: PipelineAddress<'_>) -> Result<PipelineDto> {
        self.transport
            .json::<(), _>(Method::GET, &address.path(""), NO_QUERY, None)
            .await
    }

    /// `PUT /api/v1/pipelines/{namespace}/{layer}/{name}`: changes description, type, owner or history size.
    pub async fn update_pipeline(&self, address: PipelineAddress<'_>, body: &UpdatePipeline) -> Result<PipelineDto> {
        self.transport
            .json(Method::PUT, &address.path(""), NO_QUERY, Some(body))
            .await
    }

    /// `DELETE /api/v1/pipelines/{namespace}/{layer}/{name}` (a soft delete).
    pub async fn delete_pipeline(&self, address: PipelineAddress<'_>) -> Result<()> {
        self.transport
            .call::<()>(Method::DELETE, &address.path(""), NO_QUERY, None)
            .await?;
        Ok(())
    }

    /// `GET /api/v1/files?prefix=`: the files at HEAD under a directory.
    pub async fn list_files(&self, prefix: &str) -> Result<FileList> {
        self.transport
            .json::<(), _>(Method::GET, "/api/v1/files", Some(&[("prefix", prefix)]), None)
            .await
    }

    /// `GET /api/v1/files/{key}`: a text file at HEAD.
    pub async fn read_file(&self, key: &str) -> Result<FileContent> {
        let path = format!("/api/v1/files/{}", key_path(key));
        self.transport.json::<(), _>(Method::GET, &path, NO_QUERY, None).await
    }

    /// `PUT /api/v1/files/{key}`: writes a new version of a text file.
    pub async fn write_file(&self, key: &str, content: &str) -> Result<WrittenFile> {
        let path = format!("/api/v1/files/{}", key_path(key));
        let body = WriteFile {
            content: content.to_owned(),
        };
        self.transport.json(Method::PUT, &path, NO_QUERY, Some(&body)).await
    }

    /// `DELETE /api/v1/files/{key}`.
    pub async fn delete_file(&self, key: &str) -> Result<()> {
        let path = format!("/api/v1/files/{}", key_path(key));
        self.transport.call::<()>(Method::DELETE, &path, NO_QUERY, None).await?;
        Ok(())
    }

    /// `POST …/publish`: pins every file of the pipeline at its HEAD version.
    pub async fn publish(&self, address: PipelineAddress<'_>, body: &PublishBody) -> Result<PublishedDto> {
        self.transport
            .json(Method::POST, &address.path("/publish"), NO_QUERY, Some(body))
            .await
    }

    /// `GET …/versions`: the pipeline's history, newest first.
    pub async fn list_versions(&self, address: PipelineAddress<'_>, page: Page) -> Result<VersionList> {
        self.transport
            .json::<(), _>(Method::GET, &address.path("/versions"), Some(&page), None)
            .await
    }

    /// `POST …/rollback`: a new version re-pinning an older one's files.
    pub async fn rollback(&self, address: PipelineAddress<'_>, body: &RollbackBody) -> Result<RolledBackDto> {
        self.transport
            .json(Method::POST, &address.path("/rollback"), NO_QUERY, Some(body))
            .await
    }

    /// `POST /api/v1/runs`: a pending run of the pipeline's latest published version.
    pub async fn create_run(&self, body: &CreateRun) -> Result<RunStatusAnswer> {
        self.transport
            .json(Method::POST, "/api/v1/runs", NO_QUERY, Some(body))
            .await
    }

    /// `GET /api/v1/runs/{id}`.
    pub async fn get_run(&self, id: Uuid) -> Result<RunDto> {
        let path = format!("/api/v1/runs/{id}");
        self.transport.json::<(), _>(Method::GET, &path, NO_QUERY, None).await
    }

    /// `GET /api/v1/runs`: runs matching `query`.
    pub async fn list_runs(&self, query: &RunQuery) -> Result<RunList> {
        self.transport
            .json::<(), _>(Method::GET, "/api/v1/runs", Some(query), None)
            .await
    }

    /// `POST /api/v1/runs/{id}/cancel`.
    pub async fn cancel_run(&self, id: Uuid) -> Result<RunStatusAnswer> {
        let path = format!("/api/v1/runs/{id}/cancel");
        self.transport.json::<(), _>(Method::POST, &path, NO_QUERY, None).await
    }

    /// `GET /api/v1/runs/{id}/logs`: the run's log entries so far, and its status.
    pub async fn run_logs(&self, id: Uuid) -> Result<RunLogs> {
        let path = format!("/api/v1/runs/{id}/logs");
        self.transport.json::<(), _>(Method::GET, &path, NO_QUERY, None).await
    }

    /// `GET /api/v1/schedules`: schedules matching `query`, oldest first.
    pub async fn list_schedules(&self, query: &ScheduleQuery) -> Result<ScheduleList> {
        self.transport
            .json::<(), _>(Method::GET, "/api/v1/schedules", Some(query), None)
            .await
    }

    /// `POST /api/v1/schedules`: a cron schedule of a pipeline.
    pub async fn create_schedule(&self, body: &CreateSchedule) -> Result<CreatedSchedule> {
        self.transport
            .json(Method::POST, "/api/v1/schedules", NO_QUERY, Some(body))
            .await
    }

    /// `GET /api/v1/schedules/{id}`.
    pub async fn get_schedule(&self, id: Uuid) -> Result<ScheduleDto> {
        let path = format!("/api/v1/schedules/{id}");
        self.transport.json::<(), _>(Method::GET, &path, NO_QUERY, None).await
    }

    /// `PUT /api/v1/schedules/{id}`: changes its expression, time zone or whether it fires.
    pub async fn update_schedule(&self, id: Uuid, body: &UpdateSchedule) -> Result<ScheduleDto> {
        let path = format!("/api/v1/schedules/{id}");
        self.transport.json(Method::PUT, &path, NO_QUERY, Some(body)).await
    }

    /// `DELETE /api/v1/schedules/{id}`.
    pub async fn delete_schedule(&self, id: Uuid) -> Result<()> {
        let path = format!("/api/v1/schedules/{id}");
        self.transport.call::<()>(Method::DELETE, &path, NO_QUERY, None).await?;
        Ok(())
    }

    /// `GET …/triggers`: the pipeline's triggers.
    pub async fn list_triggers(&self, address: PipelineAddress<'_>, page: Page) -> Result<TriggerList> {
        self.transport
            .json::<(), _>(Method::GET, &address.path("/triggers"), Some(&page), None)
            .await
    }

    /// `POST …/triggers`: a trigger of the pipeline (a webhook's token is in the answer, once).
    pub async fn create_trigger(&self, address: PipelineAddress<'_>, body: &CreateTrigger) -> Result<TriggerDto> {
        self.transport
            .json(Method::POST, &address.path("/triggers"), NO_QUERY, Some(body))
            .await
    }

    /// `PUT …/triggers/{id}`.
    pub async fn update_trigger(
        &self,
        address: PipelineAddress<'_>,
        id: Uuid,
        body: &UpdateTrigger,
    ) -> Result<TriggerDto> {
        self.transport
            .json(
                Method::PUT,
                &address.path(&format!("/triggers/{id}")),
                NO_QUERY,
                Some(body),
            )
            .await
    }

    /// `DELETE …/triggers/{id}`.
    pub async fn delete_trigger(&self, address: PipelineAddress<'_>, id: Uuid) -> Result<()> {
        self.transport
            .call::<()>(
                Method::DELETE,
                &address.path(&format!("/triggers/{id}")),
                NO_QUERY,
                None,
            )
            .await?;
        Ok(())
    }
}
