//! A typed async client of the RAT metadata plane, over [`reqwest`] (rustls):
//! [`Client`] for the REST API (every route of `/api/v1`, one method each:
//! namespaces, pipelines, files, publish and versions, runs, schedules,
//! triggers, webhooks, quality tests, landing zones, tables, sharing,
//! projects, the audit log, retention and the reaper, the caller and their
//! tokens, features and plugins; and the health routes) and
//! [`RunnerClient`] for the runner protocol of rat-api's internal listener. Bodies and answers are the types of
//! [`rat_wire`], the same the server reads and writes.
//!
//! - A failed answer becomes [`Error::Api`] ([`ApiError`]: status, the
//!   envelope's `code` and `type`, and its message); an error without the
//!   envelope is [`Error::Unexpected`]; a failure to connect is
//!   [`Error::Transport`].
//! - Only idempotent requests (`GET`, `PUT`, `DELETE`) are retried, on a
//!   failed connection, a timeout, or 429/502/503/504, a bounded number of
//!   times with exponential backoff ([`RetryPolicy`]); a `POST` is sent once.
//! - Every request carries the bearer token given to the [`Builder`].
//!
//! What it must never do: retry a `POST`, send the runner token anywhere but
//! the runner listener it was built for (a claim's presigned S3 URLs get no
//! token), or depend on the server's crates (`rat-service`, `rat-dao`): it
//! speaks HTTP and nothing else.
//!
//! ```no_run
//! use rat_client::{Builder, PipelineAddress};
//! use rat_wire::pipelines::CreatePipeline;
//! use rat_wire::runs::CreateRun;
//! use rat_wire::versions::PublishBody;
//!
//! # async fn example() -> Result<(), rat_client::Error> {
//! let client = Builder::new("http://127.0.0.1:8080").token("my-api-key".into()).api()?;
//! client
//!     .create_pipeline(&CreatePipeline {
//!         namespace: "default".into(),
//!         layer: "silver".into(),
//!         name: "orders".into(),
//!         pipeline_type: None,
//!         description: None,
//!         source: None,
//!         unique_key: None,
//!     })
//!     .await?;
//! client
//!     .write_file("default/pipelines/silver/orders/pipeline.sql", "SELECT 1 AS one")
//!     .await?;
//! let orders = PipelineAddress::new("default", "silver", "orders");
//! client.publish(orders, &PublishBody { message: Some("first".into()) }).await?;
//! let run = client
//!     .create_run(&CreateRun {
//!         namespace: "default".into(),
//!         layer: "silver".into(),
//!         pipeline: "orders".into(),
//!         trigger: None,
//!     })
//!     .await?;
//! match client.get_run(run.run_id).await {
//!     Ok(run) => println!("{}", run.status),
//!     Err(e) if e.code() == Some("NOT_FOUND") => println!("gone"),
//!     Err(e) => return Err(e),
//! }
//! # Ok(())
//! # }
//! ```

mod api;
mod error;
mod routes;
mod runner;
mod transport;

use std::time::Duration;

use secrecy::SecretString;

pub use api::{Client, Page, PipelineAddress};
pub use error::{ApiError, Error, Result};
pub use runner::{FetchedFile, RunnerClient};
pub use transport::RetryPolicy;

/// Builds a [`Client`] or a [`RunnerClient`]: base URL, bearer token,
/// timeout, retries.
#[derive(Debug, Clone)]
pub struct Builder {
    base_url: String,
    token: Option<SecretString>,
    timeout: Duration,
    retry: RetryPolicy,
    http: Option<reqwest::Client>,
}

impl Builder {
    /// A client of the server at `base_url` (the api's address for
    /// [`Builder::api`], the runner listener's for [`Builder::runner`]),
    /// without a token, a 30 s timeout and the default [`RetryPolicy`].
    pub fn new(base_url: &str) -> Self {
        Builder {
            base_url: base_url.to_owned(),
            token: None,
            timeout: Duration::from_secs(30),
            retry: RetryPolicy::default(),
            http: None,
        }
    }

    /// The bearer token of every request (an API key, an access token, or
    /// the runner token).
    pub fn token(mut self, token: SecretString) -> Self {
        self.token = Some(token);
        self
    }

    /// How long one attempt may take, from connecting to the answer's end.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// How idempotent requests are retried.
    pub fn retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    /// Sends through this `reqwest` client (its own pool, proxy, TLS roots)
    /// instead of one built from [`Builder::timeout`].
    pub fn http_client(mut self, http: reqwest::Client) -> Self {
        self.http = Some(http);
        self
    }

    fn transport(self) -> Result<transport::Transport> {
        let http = match self.http {
            Some(http) => http,
            None => reqwest::Client::builder()
                .timeout(self.timeout)
                .build()
                .map_err(|e| Error::Config(e.to_string()))?,
        };
        transport::Transport::new(http, &self.base_url, self.token, self.retry)
    }

    /// A client of the REST API.
    pub fn api(self) -> Result<Client> {
        Ok(Client::from_transport(self.transport()?))
    }

    /// A client of the runner listener.
    pub fn runner(self) -> Result<RunnerClient> {
        Ok(RunnerClient::from_transport(self.transport()?))
    }
}
