//! [`RunnerClient`]: the runner protocol of rat-api's internal listener
//! (claim, heartbeat, logs, completion, pinned files) and the runner routes
//! under `/api/v1/internal` (ratd's status callback, merge failures, plugins).

use bytes::Bytes;
use reqwest::Method;
use uuid::Uuid;

use rat_wire::plugins::PluginDto;
use rat_wire::runner::{
    AcceptedAnswer, CallbackBody, ClaimAnswer, ClaimBody, ClaimedFileDto, CompleteBody, FailedMergeBody,
    HeartbeatAnswer, HeartbeatBody, LogsBody, PluginHealthBody, RegisterPluginBody,
};
use rat_wire::runs::RunStatusAnswer;

use crate::Builder;
use crate::error::{Error, Result};
use crate::transport::{Transport, segment};

/// An unused query (the routes that take none).
const NO_QUERY: Option<&()> = None;

/// One pinned file, fetched.
#[derive(Debug, Clone)]
pub struct FetchedFile {
    /// Its bytes.
    pub body: Bytes,
    /// The version the server says it served (`x-amz-version-id`), when it says.
    pub served_version: Option<String>,
}

/// A client of the runner listener, with the runner token (`RAT_RUNNER_TOKEN`).
///
/// Every route of the protocol is a `POST` and is sent once (a claim sent
/// twice hands out runs twice); fetching a pinned file is a `GET` and is
/// retried.
#[derive(Clone)]
pub struct RunnerClient {
    transport: Transport,
}

impl RunnerClient {
    /// A client of the runner listener at `base_url` (`http://127.0.0.1:8090`).
    pub fn new(base_url: &str, token: Option<secrecy::SecretString>) -> Result<Self> {
        let mut builder = Builder::new(base_url);
        if let Some(token) = token {
            builder = builder.token(token);
        }
        builder.runner()
    }

    pub(crate) fn from_transport(transport: Transport) -> Self {
        RunnerClient { transport }
    }

    /// The base URL requests go to.
    pub fn base_url(&self) -> &str {
        self.transport.base()
    }

    /// `POST /internal/v1/runs/claim`: up to `max_runs` pending runs, leased to this runner.
    pub async fn claim(&self, body: &ClaimBody) -> Result<ClaimAnswer> {
        self.transport
            .json(Method::POST, "/internal/v1/runs/claim", NO_QUERY, Some(body))
            .await
    }

    /// `POST /internal/v1/runs/{id}/heartbeat`: extends the lease; `stop` says the run was cancelled.
    pub async fn heartbeat(&self, run: Uuid, body: &HeartbeatBody) -> Result<HeartbeatAnswer> {
        let path = format!("/internal/v1/runs/{run}/heartbeat");
        self.transport.json(Method::POST, &path, NO_QUERY, Some(body)).await
    }

    /// `POST /internal/v1/runs/{id}/logs`: appends log entries (at most 1000).
    pub async fn append_logs(&self, run: Uuid, body: &LogsBody) -> Result<()> {
        let path = format!("/internal/v1/runs/{run}/logs");
        self.transport.call(Method::POST, &path, NO_QUERY, Some(body)).await?;
        Ok(())
    }

    /// `POST /internal/v1/runs/{id}/complete`: the run's outcome and quality results.
    pub async fn complete(&self, run: Uuid, body: &CompleteBody) -> Result<RunStatusAnswer> {
        let path = format!("/internal/v1/runs/{run}/complete");
        self.transport.json(Method::POST, &path, NO_QUERY, Some(body)).await
    }

    /// `POST /api/v1/internal/runs/{id}/status`: ratd's runner callback.
    pub async fn callback_status(&self, run: Uuid, body: &CallbackBody) -> Result<RunStatusAnswer> {
        let path = format!("/api/v1/internal/runs/{run}/status");
        self.transport.json(Method::POST, &path, NO_QUERY, Some(body)).await
    }

    /// `POST /api/v1/internal/failed-merges`: reports a branch that did not merge.
    pub async fn report_failed_merge(&self, body: &FailedMergeBody) -> Result<AcceptedAnswer> {
        self.transport
            .json(Method::POST, "/api/v1/internal/failed-merges", NO_QUERY, Some(body))
            .await
    }

    /// `POST /api/v1/internal/plugins/register`: registers (or re-registers) a plugin.
    pub async fn register_plugin(&self, body: &RegisterPluginBody) -> Result<PluginDto> {
        self.transport
            .json(Method::POST, "/api/v1/internal/plugins/register", NO_QUERY, Some(body))
            .await
    }

    /// `POST /api/v1/internal/plugins/{name}/health`: a plugin reports its health.
    pub async fn plugin_health(&self, name: &str, body: &PluginHealthBody) -> Result<PluginDto> {
        let path = format!("/api/v1/internal/plugins/{}/health", segment(name));
        self.transport.json(Method::POST, &path, NO_QUERY, Some(body)).await
    }

    /// Fetches one pinned file of a claim at its URL, and checks the server
    /// served the pinned version when it says which it served. The runner
    /// token goes only to this listener's own file route, never to a
    /// presigned S3 URL.
    pub async fn fetch_file(&self, file: &ClaimedFileDto) -> Result<FetchedFile> {
        let own = file.url.starts_with(&format!("{}/", self.transport.base()));
        let answer = self.transport.send(Method::GET, &file.url, None, None, own).await?;
        let served_version = answer
            .headers
            .get("x-amz-version-id")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        if let Some(served) = &served_version
            && served != &file.version_id
        {
            return Err(Error::Decode(format!(
                "{} was served at version {served}, not the pinned {}",
                file.key, file.version_id
            )));
        }
        Ok(FetchedFile {
            body: answer.body,
            served_version,
        })
    }
}
