//! Per-test databases cloned from a migrated template.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rat_dao::{Pool, PoolSettings};
use tokio_postgres::NoTls;

use crate::cluster::{Cluster, ClusterOptions, INSTALL_HINT};

/// Points tests at an existing server (a superuser connection string to a
/// maintenance database such as `postgres`) instead of a private cluster.
pub const ADMIN_URL_ENV: &str = "RAT_TEST_DATABASE_URL";

/// Prefix of every per-test database, so leftovers can be found and swept.
const TEST_DB_PREFIX: &str = "rat_t_";
/// Test databases older than this are swept even if their process may live.
const ABANDONED_AFTER: Duration = Duration::from_secs(6 * 3600);
/// Advisory lock key serializing template creation ("RATTMPL").
const TEMPLATE_LOCK_KEY: i64 = 0x0052_4154_544d_504c;

static COUNTER: AtomicU64 = AtomicU64::new(0);

/// Where the admin connection goes, and how to build per-database URLs.
#[derive(Clone)]
enum Server {
    /// The shared private cluster of this checkout.
    Private(Cluster),
    /// `RAT_TEST_DATABASE_URL`.
    External(String),
}

impl Server {
    fn get() -> Server {
        if let Ok(url) = std::env::var(ADMIN_URL_ENV)
            && !url.trim().is_empty()
        {
            return Server::External(url);
        }
        match Cluster::ensure_running(ClusterOptions::for_tests()) {
            Ok(cluster) => Server::Private(cluster),
            Err(e) => panic!("cannot start the test PostgreSQL cluster: {e}\n{INSTALL_HINT}"),
        }
    }

    fn admin_url(&self) -> String {
        match self {
            Server::Private(cluster) => cluster.admin_url(),
            Server::External(url) => url.clone(),
        }
    }

    fn url_for(&self, dbname: &str) -> String {
        match self {
            Server::Private(cluster) => cluster.url_for(dbname),
            Server::External(url) => {
                let mut config = rat_dao::parse_database_url(url).expect("RAT_TEST_DATABASE_URL parses");
                config.dbname(dbname);
                config_to_url(&config)
            }
        }
    }

    fn is_local(&self) -> bool {
        matches!(self, Server::Private(_))
    }
}

/// Renders a parsed config back into a key-value connection string.
fn config_to_url(config: &tokio_postgres::Config) -> String {
    let mut parts = Vec::new();
    if let Some(host) = config.get_hosts().first() {
        match host {
            tokio_postgres::config::Host::Tcp(h) => parts.push(format!("host={h}")),
            tokio_postgres::config::Host::Unix(p) => parts.push(format!("host={}", p.display())),
        }
    }
    if let Some(port) = config.get_ports().first() {
        parts.push(format!("port={port}"));
    }
    if let Some(user) = config.get_user() {
        parts.push(format!("user={user}"));
    }
    if let Some(password) = config.get_password() {
        parts.push(format!(
            "password='{}'",
            String::from_utf8_lossy(password)
                .replace('\\', "\\\\")
                .replace('\'', "\\'")
        ));
    }
    if let Some(dbname) = config.get_dbname() {
        parts.push(format!("dbname={dbname}"));
    }
    parts.join(" ")
}

async fn admin_connect(server: &Server) -> tokio_postgres::Client {
    let url = server.admin_url();
    let (client, connection) = tokio_postgres::connect(&url, NoTls)
        .await
        .unwrap_or_else(|e| panic!("cannot connect to the test PostgreSQL server ({e}); {INSTALL_HINT}"));
    tokio::spawn(async move {
        let _ = connection.await;
    });
    client
}

async fn database_exists(admin: &tokio_postgres::Client, name: &str) -> bool {
    admin
        .query_opt("SELECT 1 FROM pg_database WHERE datname = $1", &[&name])
        .await
        .expect("query pg_database")
        .is_some()
}

/// Creates the template for the current migrations unless it exists, under an
/// advisory lock so concurrent test processes build it once. Templates of
/// older migration sets are dropped.
async fn ensure_template(server: &Server, admin: &tokio_postgres::Client) -> String {
    let template = format!("rat_tmpl_{:016x}", rat_dao::schema_fingerprint());
    if database_exists(admin, &template).await {
        return template;
    }
    admin
        .execute("SELECT pg_advisory_lock($1)", &[&TEMPLATE_LOCK_KEY])
        .await
        .expect("template lock");
    if !database_exists(admin, &template).await {
        let building = format!("{template}_build");
        // Names are made of hex digits and fixed prefixes only.
        // Two statements: DROP/CREATE DATABASE refuse to run in the implicit
        // transaction of a multi-statement batch.
        admin
            .batch_execute(&format!("DROP DATABASE IF EXISTS {building} WITH (FORCE)"))
            .await
            .expect("drop half-built template database");
        admin
            .batch_execute(&format!("CREATE DATABASE {building}"))
            .await
            .expect("create template database");
        rat_dao::migrate(&rat_dao::Database::new(server.url_for(&building)))
            .await
            .unwrap_or_else(|e| panic!("migrating the template database failed: {e:?}"));
        admin
            .batch_execute(&format!("ALTER DATABASE {building} RENAME TO {template}"))
            .await
            .expect("publish template database");
        let stale: Vec<String> = admin
            .query(
                "SELECT datname FROM pg_database WHERE datname LIKE 'rat\\_tmpl\\_%' AND datname <> $1",
                &[&template],
            )
            .await
            .expect("list templates")
            .iter()
            .map(|r| r.get(0))
            .collect();
        for name in stale {
            let _ = admin
                .batch_execute(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
                .await;
        }
    }
    admin
        .execute("SELECT pg_advisory_unlock($1)", &[&TEMPLATE_LOCK_KEY])
        .await
        .expect("template unlock");
    template
}

/// Drops per-test databases left by crashed runs: those whose process is gone
/// (private cluster only) and those older than six hours.
async fn sweep_leftovers(server: &Server, admin: &tokio_postgres::Client) {
    let now = unix_now();
    let names: Vec<String> = admin
        .query("SELECT datname FROM pg_database WHERE datname LIKE 'rat\\_t\\_%'", &[])
        .await
        .expect("list test databases")
        .iter()
        .map(|r| r.get(0))
        .collect();
    for name in names {
        let Some((created, pid)) = parse_test_db_name(&name) else {
            continue;
        };
        let abandoned = now.saturating_sub(created) > ABANDONED_AFTER.as_secs();
        let orphaned =
            server.is_local() && pid != std::process::id() && !std::path::Path::new(&format!("/proc/{pid}")).exists();
        if abandoned || orphaned {
            let _ = admin
                .batch_execute(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
                .await;
        }
    }
}

/// `rat_t_<unix seconds>_<pid>_<n>` → `(seconds, pid)`.
fn parse_test_db_name(name: &str) -> Option<(u64, u32)> {
    let mut parts = name.strip_prefix(TEST_DB_PREFIX)?.split('_');
    let created = parts.next()?.parse().ok()?;
    let pid = parts.next()?.parse().ok()?;
    Some((created, pid))
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// A fresh database for one test, dropped when the value is dropped.
pub struct TestDatabase {
    server: Server,
    name: String,
    url: String,
    pool: Pool,
}

impl TestDatabase {
    /// A database with the current schema and seed rows, cloned from the
    /// migrated template.
    pub async fn new() -> TestDatabase {
        Self::create(true).await
    }

    /// An empty database, for tests of the migrations themselves.
    pub async fn empty() -> TestDatabase {
        Self::create(false).await
    }

    async fn create(migrated: bool) -> TestDatabase {
        let server = tokio::task::spawn_blocking(Server::get).await.expect("server setup");
        let admin = admin_connect(&server).await;
        sweep_leftovers(&server, &admin).await;
        let name = format!(
            "{TEST_DB_PREFIX}{}_{}_{}",
            unix_now(),
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        );
        let create = if migrated {
            let template = ensure_template(&server, &admin).await;
            format!("CREATE DATABASE {name} TEMPLATE {template}")
        } else {
            format!("CREATE DATABASE {name}")
        };
        admin.batch_execute(&create).await.expect("create test database");
        let url = server.url_for(&name);
        let mut settings = PoolSettings::new(url.clone());
        settings.max_size = 8;
        settings.application_name = "rat-test".to_owned();
        // `RAT_TEST_UNNAMED_STATEMENTS=1` runs a test process's statements
        // as they run through a transaction pooler (unnamed, typed), to check
        // every repository query in that mode.
        if std::env::var("RAT_TEST_UNNAMED_STATEMENTS").is_ok_and(|v| v == "1") {
            rat_dao::use_unnamed_statements();
        }
        let pool = rat_dao::create_pool(&settings).expect("test pool");
        TestDatabase {
            server,
            name,
            url,
            pool,
        }
    }

    /// Connection string of this database.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// This database as the binaries' config names it (schema `public`,
    /// no pooler).
    pub fn database(&self) -> rat_dao::Database {
        rat_dao::Database::new(self.url.clone())
    }

    /// The database's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// A pool on this database (8 connections).
    pub fn pool(&self) -> &Pool {
        &self.pool
    }

    /// A pooled connection, panicking with the reason if none can be had.
    pub async fn client(&self) -> rat_dao::PooledClient {
        self.pool.get().await.expect("test database connection")
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        self.pool.close();
        let server = self.server.clone();
        let name = self.name.clone();
        // Dropping needs async IO, and this may run inside a runtime (or while
        // a failed test unwinds): do it on a thread of its own.
        let handle = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            runtime.block_on(async move {
                let admin = admin_connect(&server).await;
                let _ = admin
                    .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                    .await;
            });
        });
        let _ = handle.join();
    }
}
