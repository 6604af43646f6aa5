//! `TestApp`: the api built in-process on a fresh database and a fresh S3
//! bucket (moto), served on `127.0.0.1:0`, with a client and helpers.

use std::sync::Arc;

use axum::Router;
use rat_api::state::{ApiSettings, AppState};
use rat_service::Services;
use rat_testkit::TestDatabase;
use rat_versioning::VersionedStore;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

/// A running api and what it runs on.
pub struct TestApp {
    /// The database (dropped with the app).
    pub db: TestDatabase,
    /// The services the api uses (for arranging and checking state directly).
    pub services: Services,
    /// `http://127.0.0.1:<port>`.
    pub base: String,
    /// A client without default headers.
    pub http: reqwest::Client,
    /// The API key the app requires, if any.
    pub api_key: Option<String>,
    /// The app's live log machinery (to end its streams as a shutdown would).
    pub live: rat_api::live::LiveLogs,
    /// The app's state (settings, refusal counts, ...).
    pub state: AppState,
    server: tokio::task::JoinHandle<()>,
    /// `http://127.0.0.1:<port>` of the internal (runner) listener, when served.
    pub internal_base: Option<String>,
    /// The runner token the internal listener requires, if any.
    pub runner_token: Option<String>,
    internal_server: Option<tokio::task::JoinHandle<()>>,
    /// A filesystem store's directory, removed with the app.
    _store_dir: Option<tempfile::TempDir>,
}

/// A change to the settings, applied before the app starts.
type ConfigureSettings = Box<dyn FnOnce(&mut ApiSettings)>;

/// Options of a [`TestApp`].
#[derive(Default)]
pub struct Builder {
    api_key: Option<String>,
    extra: Option<Router<AppState>>,
    max_json_body: Option<usize>,
    configure: Option<ConfigureSettings>,
    internal: Option<Option<String>>,
    fs_store: bool,
    pool: Option<(usize, std::time::Duration)>,
    limits: Option<rat_api::server::ServeLimits>,
    wrap_store: Option<WrapStore>,
}

/// Wraps the app's store (to observe or slow down what reaches it).
type WrapStore = Box<dyn FnOnce(Arc<dyn VersionedStore>) -> Arc<dyn VersionedStore>>;

impl Builder {
    /// Requires this bearer key on `/api/v1`.
    pub fn api_key(mut self, key: &str) -> Self {
        self.api_key = Some(key.to_owned());
        self
    }

    /// Adds routes inside every layer (to test failure handling).
    pub fn extra_routes(mut self, extra: Router<AppState>) -> Self {
        self.extra = Some(extra);
        self
    }

    /// Lowers the JSON body limit.
    pub fn max_json_body(mut self, bytes: usize) -> Self {
        self.max_json_body = Some(bytes);
        self
    }

    /// Also serves the internal (runner) listener on another `127.0.0.1:0`
    /// port, requiring `token` (`None`: no runner token, so the listener is
    /// open in community mode and closed when the app has an API key).
    pub fn internal_listener(mut self, token: Option<&str>) -> Self {
        self.internal = Some(token.map(str::to_owned));
        self
    }

    /// Uses a fresh filesystem store instead of an S3 bucket.
    pub fn fs_store(mut self) -> Self {
        self.fs_store = true;
        self
    }

    /// Serves from a pool of its own, of `size` connections, whose callers
    /// wait at most `wait` for one (503 after).
    pub fn pool(mut self, size: usize, wait: std::time::Duration) -> Self {
        self.pool = Some((size, wait));
        self
    }

    /// Serves both listeners with these connection limits.
    pub fn limits(mut self, limits: rat_api::server::ServeLimits) -> Self {
        self.limits = Some(limits);
        self
    }

    /// Serves from `wrap(store)` instead of the fresh store.
    pub fn wrap_store(
        mut self,
        wrap: impl FnOnce(Arc<dyn VersionedStore>) -> Arc<dyn VersionedStore> + 'static,
    ) -> Self {
        self.wrap_store = Some(Box::new(wrap));
        self
    }

    /// Changes any setting before the app starts.
    pub fn settings(mut self, configure: impl FnOnce(&mut ApiSettings) + 'static) -> Self {
        self.configure = Some(Box::new(configure));
        self
    }

    /// Builds and serves the app.
    pub async fn start(self) -> TestApp {
        let db = TestDatabase::new().await;
        let (store, store_dir): (Arc<dyn VersionedStore>, Option<tempfile::TempDir>) = if self.fs_store {
            let dir = tempfile::Builder::new()
                .prefix("rat-api-test-")
                .tempdir()
                .expect("temporary directory");
            let store = rat_versioning::fs::FsStore::open(dir.path().to_path_buf())
                .await
                .expect("fs store");
            (Arc::new(store), Some(dir))
        } else {
            (Arc::new(rat_testkit::s3::test_store().await), None)
        };
        let pool = match self.pool {
            Some((size, wait)) => {
                let mut settings = rat_testkit::dao::PoolSettings::new(db.url());
                settings.max_size = size;
                settings.wait_timeout = wait;
                rat_testkit::dao::create_pool(&settings).expect("pool")
            }
            None => db.pool().clone(),
        };
        let store = match self.wrap_store {
            Some(wrap) => wrap(store),
            None => store,
        };
        let services = Services::new(pool, store);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let mut settings = ApiSettings::new(format!("http://{addr}"));
        settings.api_key = self.api_key.clone().map(secrecy::SecretString::from);
        if let Some(bytes) = self.max_json_body {
            settings.max_json_body = bytes;
        }
        let internal_listener = match &self.internal {
            Some(token) => {
                let internal = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
                let internal_addr = internal.local_addr().unwrap();
                settings.runner_token = token.clone().map(secrecy::SecretString::from);
                settings.runner_open = rat_api::internal::open_without_token(
                    token.is_some(),
                    self.api_key.is_some(),
                    internal_addr,
                    false,
                )
                .unwrap();
                settings.internal_public_url = format!("http://{internal_addr}");
                Some((internal, internal_addr))
            }
            None => None,
        };
        if let Some(configure) = self.configure {
            configure(&mut settings);
        }
        let live = rat_api::live::LiveLogs::new(db.url());
        let state = AppState::new(services.clone(), settings, rat_api::metrics_handle(), live.clone());
        let internal_server = internal_listener
            .as_ref()
            .map(|_| rat_api::internal::router(state.clone()));
        let internal_base = internal_listener.as_ref().map(|(_, addr)| format!("http://{addr}"));
        let limits = self.limits.unwrap_or_default();
        let internal_server = internal_listener.zip(internal_server).map(|((listener, _), router)| {
            tokio::spawn(async move {
                rat_api::server::serve(listener, router, limits, std::future::pending())
                    .await
                    .unwrap();
            })
        });
        let (router, _) = rat_api::app::router_with(state.clone(), self.extra.unwrap_or_default());
        let server = tokio::spawn(async move {
            rat_api::server::serve(listener, router, limits, std::future::pending())
                .await
                .unwrap();
        });
        TestApp {
            db,
            services,
            base: format!("http://{addr}"),
            http: reqwest::Client::new(),
            api_key: self.api_key,
            live,
            state,
            server,
            internal_base,
            runner_token: self.internal.flatten(),
            internal_server,
            _store_dir: store_dir,
        }
    }
}

/// An answer: status, headers and the body parsed as JSON (or `Null`).
#[derive(Debug)]
pub struct Answer {
    /// Status code.
    pub status: StatusCode,
    /// Headers.
    pub headers: reqwest::header::HeaderMap,
    /// The body as JSON, `Null` when empty or not JSON.
    pub json: Value,
    /// The raw body.
    pub text: String,
}

impl Answer {
    /// Asserts the error envelope with `status` and `code`, and returns the message.
    #[track_caller]
    pub fn assert_error(&self, status: u16, code: &str) -> String {
        assert_eq!(self.status.as_u16(), status, "body: {}", self.text);
        let error = &self.json["error"];
        assert_eq!(error["code"], code, "body: {}", self.text);
        let expected_type = match status {
            400 | 422 => "VALIDATION",
            401 => "AUTHENTICATION",
            403 => "AUTHORIZATION",
            404 => "NOT_FOUND",
            409 | 412 => "CONFLICT",
            413 => "PAYLOAD_TOO_LARGE",
            429 => "RATE_LIMIT",
            503 => "UNAVAILABLE",
            s if s >= 500 => "INTERNAL",
            _ => "VALIDATION",
        };
        assert_eq!(error["type"], expected_type, "body: {}", self.text);
        let message = error["message"].as_str().expect("message is a string");
        assert!(!message.is_empty());
        message.to_owned()
    }
}

impl TestApp {
    /// A default app: no auth, fresh database and bucket.
    pub async fn new() -> TestApp {
        Builder::default().start().await
    }

    /// Options.
    pub fn builder() -> Builder {
        Builder::default()
    }

    /// Sends a request with an optional JSON body (authenticated if the app
    /// has a key).
    pub async fn request(&self, method: Method, path: &str, body: Option<Value>) -> Answer {
        let mut request = self.http.request(method, format!("{}{path}", self.base));
        if let Some(key) = &self.api_key {
            request = request.bearer_auth(key);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        Self::answer(request.send().await.expect("request sent")).await
    }

    /// `POST /api/v1/files/upload` of `content` at `path` (path field first).
    pub async fn upload_file(&self, path: &str, content: &[u8]) -> Answer {
        let form = reqwest::multipart::Form::new().text("path", path.to_owned()).part(
            "file",
            reqwest::multipart::Part::bytes(content.to_vec()).file_name("file"),
        );
        let request = self
            .http
            .post(format!("{}/api/v1/files/upload", self.base))
            .multipart(form);
        Self::answer(request.send().await.expect("upload sent")).await
    }

    /// POSTs a multipart body with one `file` part (`text/csv`, named
    /// `filename`) to `path`: a landing file or sample upload.
    pub async fn upload_part(&self, path: &str, filename: &str, body: &[u8]) -> Answer {
        let part = reqwest::multipart::Part::bytes(body.to_vec())
            .file_name(filename.to_owned())
            .mime_str("text/csv")
            .unwrap();
        let request = self
            .http
            .post(format!("{}{path}", self.base))
            .multipart(reqwest::multipart::Form::new().part("file", part));
        Self::answer(request.send().await.expect("upload sent")).await
    }

    /// The keys at HEAD under `prefix` in the app's store.
    pub async fn keys_under(&self, prefix: &str) -> Vec<String> {
        let prefix = rat_versioning::KeyPrefix::parse(prefix).unwrap();
        rat_versioning::list_all_latest(self.services.store.as_ref(), &prefix)
            .await
            .unwrap()
            .into_iter()
            .map(|head| head.key.as_str().to_owned())
            .collect()
    }

    /// Reads a response into an [`Answer`].
    pub async fn answer(response: reqwest::Response) -> Answer {
        let status = response.status();
        let headers = response.headers().clone();
        let text = response.text().await.unwrap_or_default();
        let json = serde_json::from_str(&text).unwrap_or(Value::Null);
        Answer {
            status,
            headers,
            json,
            text,
        }
    }

    /// Sends a request to the internal (runner) listener with an optional
    /// JSON body and bearer token.
    pub async fn internal_request_with(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
        token: Option<&str>,
    ) -> Answer {
        let base = self
            .internal_base
            .as_ref()
            .expect("the app serves no internal listener");
        let mut request = self.http.request(method, format!("{base}{path}"));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        Self::answer(request.send().await.expect("request sent")).await
    }

    /// POST with a JSON body to the internal listener, with the app's runner token.
    pub async fn internal_post(&self, path: &str, body: Value) -> Answer {
        self.internal_request_with(Method::POST, path, Some(body), self.runner_token.as_deref())
            .await
    }

    /// GET on the internal listener, with the app's runner token.
    pub async fn internal_get(&self, path: &str) -> Answer {
        self.internal_request_with(Method::GET, path, None, self.runner_token.as_deref())
            .await
    }

    /// GET.
    pub async fn get(&self, path: &str) -> Answer {
        self.request(Method::GET, path, None).await
    }

    /// POST with a JSON body.
    pub async fn post(&self, path: &str, body: Value) -> Answer {
        self.request(Method::POST, path, Some(body)).await
    }

    /// PUT with a JSON body.
    pub async fn put(&self, path: &str, body: Value) -> Answer {
        self.request(Method::PUT, path, Some(body)).await
    }

    /// DELETE.
    pub async fn delete(&self, path: &str) -> Answer {
        self.request(Method::DELETE, path, None).await
    }

    /// A typed client of the app's public API, with its API key.
    pub fn client(&self) -> rat_client::Client {
        let mut builder = rat_client::Builder::new(&self.base);
        if let Some(key) = &self.api_key {
            builder = builder.token(key.clone().into());
        }
        builder.api().expect("client")
    }

    /// A typed client of the app's runner listener, with its runner token.
    pub fn runner_client(&self) -> rat_client::RunnerClient {
        let base = self
            .internal_base
            .as_ref()
            .expect("the app serves no internal listener");
        let mut builder = rat_client::Builder::new(base);
        if let Some(token) = &self.runner_token {
            builder = builder.token(token.clone().into());
        }
        builder.runner().expect("runner client")
    }

    /// Creates a namespace through the API.
    pub async fn namespace(&self, name: &str) {
        let answer = self.post("/api/v1/namespaces", json!({ "name": name })).await;
        assert_eq!(answer.status, 201, "{}", answer.text);
    }

    /// Creates a SQL pipeline through the API (namespace created if needed).
    pub async fn pipeline(&self, ns: &str, layer: &str, name: &str) -> Value {
        if ns != "default"
            && self.get("/api/v1/namespaces?limit=200").await.json["namespaces"]
                .as_array()
                .is_some_and(|all| !all.iter().any(|n| n["name"] == ns))
        {
            self.namespace(ns).await;
        }
        let answer = self
            .post(
                "/api/v1/pipelines",
                json!({ "namespace": ns, "layer": layer, "name": name }),
            )
            .await;
        assert_eq!(answer.status, 201, "{}", answer.text);
        answer.json
    }

    /// Audit rows, newest first, straight from the database.
    pub async fn audit_rows(&self) -> Vec<rat_domain::AuditEntry> {
        let client = self.db.client().await;
        rat_testkit::dao::audit::list(&client, &Default::default(), rat_domain::PageRequest::first(200), None)
            .await
            .unwrap()
            .items
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.server.abort();
        if let Some(internal) = &self.internal_server {
            internal.abort();
        }
    }
}

/// An api whose store is a moto server of its own, so a test can kill,
/// pause or resume it (the shared moto of [`TestApp`] must never be).
pub struct OwnMotoApp {
    /// The database (dropped with the app).
    pub db: TestDatabase,
    /// `http://127.0.0.1:<port>`.
    pub base: String,
    /// A client without default headers.
    pub http: reqwest::Client,
    /// The app's own moto.
    pub moto: rat_testkit::s3::MotoServer,
    server: tokio::task::JoinHandle<()>,
    /// Stops the prober when the app is dropped.
    _stop: tokio::sync::watch::Sender<bool>,
}

impl OwnMotoApp {
    /// Serves the api on a fresh database and a bucket of its own moto, the
    /// store's requests limited to `request_timeout`; with `probe`, the
    /// dependency prober runs too (`rat_service::health`).
    pub async fn start(
        request_timeout: std::time::Duration,
        probe: Option<rat_service::health::ProbeSettings>,
    ) -> OwnMotoApp {
        Self::start_with_latency(request_timeout, probe, None).await
    }

    /// [`OwnMotoApp::start`], with the store reached through a proxy that
    /// holds every piece of moto's answers back for `latency` first (a slow
    /// store that answers).
    pub async fn start_with_latency(
        request_timeout: std::time::Duration,
        probe: Option<rat_service::health::ProbeSettings>,
        latency: Option<std::time::Duration>,
    ) -> OwnMotoApp {
        let db = TestDatabase::new().await;
        let moto = tokio::task::spawn_blocking(rat_testkit::s3::MotoServer::start)
            .await
            .unwrap();
        let mut config = moto.new_bucket_config();
        config.request_timeout = request_timeout;
        if let Some(latency) = latency {
            let port = slow_proxy(moto.port(), latency).await;
            config.endpoint = format!("http://127.0.0.1:{port}");
        }
        let store = Arc::new(rat_versioning::s3::S3Store::connect(config).await.unwrap()) as Arc<dyn VersionedStore>;
        let services = Services::with_probe_settings(db.pool().clone(), store, probe.unwrap_or_default());
        let (stop, stopping) = tokio::sync::watch::channel(false);
        if let Some(probe) = probe {
            tokio::spawn(rat_service::health::watch(
                services.clone(),
                db.database(),
                probe,
                stopping,
            ));
        }
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let state = AppState::new(
            services,
            ApiSettings::new(format!("http://{addr}")),
            rat_api::metrics_handle(),
            rat_api::live::LiveLogs::new(db.url()),
        );
        let router = rat_api::app::router(state);
        let server = tokio::spawn(async move {
            axum::serve(
                listener,
                router.into_make_service_with_connect_info::<std::net::SocketAddr>(),
            )
            .await
            .unwrap();
        });
        OwnMotoApp {
            db,
            base: format!("http://{addr}"),
            http: reqwest::Client::new(),
            moto,
            server,
            _stop: stop,
        }
    }

    /// The answer to `method path` with an optional JSON body, and how long
    /// it took.
    pub async fn call(&self, method: Method, path: &str, body: Option<Value>) -> (Answer, std::time::Duration) {
        let started = std::time::Instant::now();
        let mut request = self.http.request(method, format!("{}{path}", self.base));
        if let Some(body) = body {
            request = request.json(&body);
        }
        let answer = TestApp::answer(request.send().await.unwrap()).await;
        (answer, started.elapsed())
    }

    /// POSTs `body`.
    pub async fn post(&self, path: &str, body: Value) -> Answer {
        self.call(Method::POST, path, Some(body)).await.0
    }
}

/// A TCP proxy to `127.0.0.1:target` that waits `latency` before passing on
/// each piece of the answers; requests go through at once. Returns its port.
async fn slow_proxy(target: u16, latency: std::time::Duration) -> u16 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((inbound, _)) = listener.accept().await {
            tokio::spawn(async move {
                let Ok(outbound) = tokio::net::TcpStream::connect(("127.0.0.1", target)).await else {
                    return;
                };
                let (mut client_read, mut client_write) = inbound.into_split();
                let (mut moto_read, mut moto_write) = outbound.into_split();
                let requests = tokio::io::copy(&mut client_read, &mut moto_write);
                let answers = async {
                    let mut buffer = vec![0u8; 64 * 1024];
                    while let Ok(n @ 1..) = moto_read.read(&mut buffer).await {
                        tokio::time::sleep(latency).await;
                        if client_write.write_all(&buffer[..n]).await.is_err() {
                            break;
                        }
                    }
                };
                tokio::select! {
                    _ = requests => {}
                    () = answers => {}
                }
            });
        }
    });
    port
}

impl Drop for OwnMotoApp {
    fn drop(&mut self) {
        self.server.abort();
    }
}
