//! What `roles.rs` and `tenants.rs` share: a tenant's two roles made with
//! `rat_dao::provision` on a test database, the real binaries started as
//! the app role, and a small HTTP client for `rat-api`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use rat_testkit::TestDatabase;
use rat_testkit::dao::provision::{self, Provision, RoleName, RoleSpec};
use rat_testkit::dao::{Database, SchemaName};

/// One tenant: its schema, its roles and their connection strings.
pub struct Tenant {
    pub schema: SchemaName,
    pub owner: RoleName,
    pub app: RoleName,
    pub owner_url: String,
    pub app_url: String,
}

impl Tenant {
    /// The owner's database (migrations).
    pub fn owner_database(&self) -> Database {
        Database::new(self.owner_url.clone()).in_schema(self.schema.clone())
    }

    /// The app role's database.
    pub fn app_database(&self) -> Database {
        Database::new(self.app_url.clone()).in_schema(self.schema.clone())
    }

    /// The environment of a service of this tenant, as the app role,
    /// migrations by the owner.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("RAT_DATABASE_URL", self.app_url.clone()),
            ("RAT_MIGRATE_DATABASE_URL", self.owner_url.clone()),
            ("RAT_DB_SCHEMA", self.schema.to_string()),
            ("RAT_DB_POOL_SIZE", "4".to_owned()),
            ("RUST_LOG", "info".to_owned()),
        ]
    }

    /// A plain session as the app role (in its schema by the role's own
    /// `search_path`).
    pub async fn app_client(&self) -> tokio_postgres::Client {
        connect(&self.app_url).await
    }

    /// A plain session as the owner.
    pub async fn owner_client(&self) -> tokio_postgres::Client {
        connect(&self.owner_url).await
    }
}

pub async fn connect(url: &str) -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .unwrap_or_else(|e| panic!("connecting: {e}"));
    tokio::spawn(connection);
    client
}

/// A superuser session on the test database.
pub async fn admin(db: &TestDatabase) -> tokio_postgres::Client {
    connect(db.url()).await
}

/// Creates the owner and app roles of `schema` on `db` (role names made
/// unique: roles belong to the whole cluster, which other tests share).
pub async fn provision_tenant(db: &TestDatabase, schema: &str) -> Tenant {
    let unique = format!("{:08x}", rand::random::<u32>());
    let schema: SchemaName = schema.parse().unwrap();
    let owner: RoleName = format!("{schema}_{unique}_owner").parse().unwrap();
    let app: RoleName = format!("{schema}_{unique}_app").parse().unwrap();
    let owner_password = format!("o'{unique}\\pw");
    let app_password = format!("a'{unique}\\pw");
    let spec = Provision {
        owner: RoleSpec {
            name: owner.clone(),
            password: Some(owner_password.clone()),
        },
        app: RoleSpec {
            name: app.clone(),
            password: Some(app_password.clone()),
        },
        ..Provision::new(schema.clone(), owner.clone(), app.clone())
    };
    let mut client = admin(db).await;
    provision::provision(&mut client, &spec).await.expect("provisioning");
    Tenant {
        owner_url: provision::connection_string_as(db.url(), &owner, Some(&owner_password)).unwrap(),
        app_url: provision::connection_string_as(db.url(), &app, Some(&app_password)).unwrap(),
        schema,
        owner,
        app,
    }
}

/// Migrates the tenant's schema as its owner, as `xtask db tenant create`
/// does (which leaves the app role only reading the migration history).
pub async fn migrate(tenant: &Tenant) {
    rat_testkit::dao::migrate(&tenant.owner_database())
        .await
        .expect("migrating as the owner");
}

/// Drops what the tenant's roles own in `db`, then the roles (they belong
/// to the cluster, not to the test database).
pub async fn drop_roles(db: &TestDatabase, tenant: &Tenant) {
    let admin = admin(db).await;
    let statement: String = admin
        .query_one(
            "SELECT format('DROP OWNED BY %I CASCADE; DROP OWNED BY %I CASCADE; DROP ROLE %I; DROP ROLE %I', $2::text, $1::text, $1::text, $2::text)",
            &[&tenant.owner.as_str(), &tenant.app.as_str()],
        )
        .await
        .unwrap()
        .get(0);
    admin.batch_execute(&statement).await.unwrap();
}

/// A running `rat-api`.
pub struct Api {
    pub child: tokio::process::Child,
    pub base: String,
    pub log: PathBuf,
    http: reqwest::Client,
    /// The typed client of the same api (`rat-client`).
    pub client: rat_client::Client,
}

impl Api {
    /// Starts `rat-api` of `tenant` with `--no-migrate`, a filesystem store
    /// in `store`, and waits until it answers.
    pub async fn start(tenant: &Tenant, store: &Path, log: PathBuf) -> Api {
        let port = tests::free_port();
        let listen = format!("127.0.0.1:{port}");
        let internal = format!("127.0.0.1:{}", tests::free_port());
        let mut env = tenant.env();
        env.push(("RAT_STORE", format!("fs:{}", store.display())));
        env.push(("RAT_LISTEN_ADDR", listen.clone()));
        env.push(("RAT_INTERNAL_LISTEN_ADDR", internal));
        let child = spawn("rat-api", &["--no-migrate"], &env, &log);
        let base = format!("http://{listen}");
        let api = Api {
            child,
            client: rat_client::Client::new(&base, None).expect("a client of the api"),
            base,
            log,
            http: reqwest::Client::new(),
        };
        for _ in 0..300 {
            if let Ok(r) = api.http.get(format!("{}/health", api.base)).send().await
                && r.status().is_success()
            {
                return api;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("rat-api did not answer within 30 s:\n{}", tests::tail(&api.log, 40));
    }

    /// The status of `GET /api/v1{path}`.
    pub async fn status(&self, path: &str) -> u16 {
        self.http
            .get(format!("{}/api/v1{path}", self.base))
            .send()
            .await
            .unwrap_or_else(|e| panic!("GET {path}: {e}"))
            .status()
            .as_u16()
    }

    /// Panics with what failed and the end of the api's log.
    pub fn failed(&self, what: &str, error: rat_client::Error) -> ! {
        panic!("{what}: {error}\n{}", tests::tail(&self.log, 20))
    }

    /// Creates and publishes pipeline `default/bronze/{name}`.
    pub async fn published_pipeline(&self, name: &str) {
        let create = rat_wire::pipelines::CreatePipeline {
            namespace: "default".to_owned(),
            layer: "bronze".to_owned(),
            name: name.to_owned(),
            pipeline_type: None,
            description: None,
            source: None,
            unique_key: None,
        };
        if let Err(e) = self.client.create_pipeline(&create).await {
            self.failed("creating a pipeline", e);
        }
        let key = format!("default/pipelines/bronze/{name}/pipeline.sql");
        if let Err(e) = self.client.write_file(&key, "SELECT 1 AS id").await {
            self.failed("writing its file", e);
        }
        let publish = rat_wire::versions::PublishBody {
            message: Some("first".to_owned()),
        };
        let address = rat_client::PipelineAddress::new("default", "bronze", name);
        if let Err(e) = self.client.publish(address, &publish).await {
            self.failed("publishing it", e);
        }
    }

    /// An enabled every-second schedule of `default/bronze/{pipeline}`.
    pub async fn schedule_every_second(&self, pipeline: &str) {
        let schedule = rat_wire::schedules::CreateSchedule {
            namespace: "default".to_owned(),
            layer: "bronze".to_owned(),
            pipeline: pipeline.to_owned(),
            cron: "* * * * * *".to_owned(),
            enabled: Some(true),
            timezone: None,
        };
        if let Err(e) = self.client.create_schedule(&schedule).await {
            self.failed("creating a schedule", e);
        }
    }

    /// Asks the reaper for a pass (`POST /admin/retention/run`).
    pub async fn request_reaper_pass(&self) {
        if let Err(e) = self.client.request_reaper_pass().await {
            self.failed("asking for a reaper pass", e);
        }
    }

    /// Pipeline names this api lists.
    pub async fn pipeline_names(&self) -> Vec<String> {
        let query = rat_wire::pipelines::PipelineQuery {
            limit: Some("200".to_owned()),
            ..Default::default()
        };
        match self.client.list_pipelines(&query).await {
            Ok(list) => list.pipelines.into_iter().map(|p| p.name).collect(),
            Err(e) => self.failed("listing pipelines", e),
        }
    }
}

/// Starts binary `name` with `args` and `env`, stderr to `log`.
pub fn spawn(name: &str, args: &[&str], env: &[(&'static str, String)], log: &Path) -> tokio::process::Child {
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    tests::spawn_args(&tests::binary(name), args, &env, log)
}

/// Stops a child with SIGTERM and asserts a clean exit.
pub async fn stop(mut child: tokio::process::Child, log: &Path) {
    tests::terminate(&child).await;
    let status = tokio::time::timeout(Duration::from_secs(20), child.wait())
        .await
        .unwrap_or_else(|_| panic!("{} did not stop within 20 s of SIGTERM", log.display()))
        .unwrap();
    assert!(status.success(), "exit {status}:\n{}", tests::tail(log, 30));
}

/// Polls `probe` every 100 ms until it is true; panics with `what` and the
/// logs after `within`.
pub async fn wait_until<F, Fut>(what: &str, within: Duration, logs: &[&Path], mut probe: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + within;
    while tokio::time::Instant::now() < deadline {
        if probe().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let logs: Vec<String> = logs
        .iter()
        .map(|log| format!("--- {}\n{}", log.display(), tests::tail(log, 30)))
        .collect();
    panic!("{what}: not within {within:?}\n{}", logs.join("\n"));
}

/// `text` without its ANSI colour sequences (the text log format's).
pub fn plain(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// One number from `sql` on `client`.
pub async fn count(client: &tokio_postgres::Client, sql: &str) -> i64 {
    client.query_one(sql, &[]).await.unwrap().get(0)
}
