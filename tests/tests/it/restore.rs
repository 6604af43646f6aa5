//! Backup and restore of one tenant (docs/operations.md): a tenant's schema
//! is dumped with `pg_dump -n`, restored into a fresh database, and the
//! platform started on it (`--no-migrate`, as the services run) finds the
//! schema at its version and every row as it was.

use rat_testkit::TestDatabase;
use rat_testkit::cluster::find_server_binaries;
use rat_testkit::dao::{SchemaName, SchemaState};

const SCHEMA: &str = "tenant_restore";

/// Every table of the schema with a checksum of all its rows, read in one
/// statement (table names come from the catalog and are quoted by Postgres).
async fn fingerprint(url: &str) -> Vec<(String, i64, String)> {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .expect("connect");
    tokio::spawn(connection);
    let tables = client
        .query(
            "SELECT format('SELECT %L::text, count(*), coalesce(md5(string_agg(t::text, '','' ORDER BY t::text)), '''') \
                            FROM %I.%I t', table_name, table_schema, table_name) \
             FROM information_schema.tables WHERE table_schema = $1 AND table_type = 'BASE TABLE' \
             ORDER BY table_name",
            &[&SCHEMA],
        )
        .await
        .expect("list tables");
    let mut out = Vec::new();
    for row in tables {
        let select: String = row.get(0);
        let row = client.query_one(&select, &[]).await.expect("checksum a table");
        out.push((row.get(0), row.get(1), row.get(2)));
    }
    out
}

async fn run(program: &std::path::Path, args: &[&str]) {
    let output = tokio::process::Command::new(program)
        .args(args)
        .output()
        .await
        .unwrap_or_else(|e| panic!("running {}: {e}", program.display()));
    assert!(
        output.status.success(),
        "{} {args:?}: {}",
        program.display(),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// `GET path` on the api at `listen`; the body as JSON.
async fn get(listen: &str, path: &str) -> serde_json::Value {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(listen)
        .await
        .expect("connect to rat-api");
    let request = format!("GET {path} HTTP/1.1\r\nHost: {listen}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.expect("send");
    let mut response = String::new();
    stream.read_to_string(&mut response).await.expect("read");
    let (head, body) = response.split_once("\r\n\r\n").expect("an HTTP response");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}\n{body}");
    serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {body}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dumped_tenant_schema_restores_into_a_fresh_database_with_every_row() {
    let schema: SchemaName = SCHEMA.parse().unwrap();
    let source = TestDatabase::empty().await;
    rat_testkit::dao::migrate(&source.database().in_schema(schema.clone()))
        .await
        .expect("migrate the tenant schema");
    let in_schema = |url: &str| format!("{url} options='-c search_path={SCHEMA}'");
    rat_testkit::seed::seed(&in_schema(source.url()), &rat_testkit::seed::Scale::small(), false)
        .await
        .expect("seed the tenant");
    let before = fingerprint(source.url()).await;
    assert!(before.len() >= 20, "the schema's tables: {before:?}");
    let pipelines = before.iter().find(|(t, _, _)| t == "pipelines").expect("pipelines");
    assert!(pipelines.1 > 0, "seeded pipelines");

    let scratch = tests::scratch_dir("restore");
    let dump = scratch.join("tenant.dump");
    let bin = find_server_binaries().unwrap_or_else(|e| panic!("{e}"));
    let dump_arg = dump.display().to_string();
    run(
        &bin.join("pg_dump"),
        &[
            "--format=custom",
            "--schema",
            SCHEMA,
            "--file",
            &dump_arg,
            "--dbname",
            source.url(),
        ],
    )
    .await;

    let target = TestDatabase::empty().await;
    // The search extension the dumped indexes use (docs/operations.md, "The
    // search extension"), as provisioning installs it.
    {
        let (client, connection) = tokio_postgres::connect(target.url(), tokio_postgres::NoTls)
            .await
            .expect("connect");
        tokio::spawn(connection);
        client
            .batch_execute(
                "CREATE SCHEMA rat_extensions; CREATE EXTENSION pg_trgm SCHEMA rat_extensions; \
                 GRANT USAGE ON SCHEMA rat_extensions TO PUBLIC",
            )
            .await
            .expect("install pg_trgm");
    }
    run(
        &bin.join("pg_restore"),
        &["--exit-on-error", "--dbname", target.url(), &dump_arg],
    )
    .await;
    let after = fingerprint(target.url()).await;
    assert_eq!(before, after, "every table and row of the tenant restored as it was");

    // The services start on it without migrating, and see the schema at
    // the version this build needs.
    let restored = target.database().in_schema(schema);
    assert!(matches!(
        rat_testkit::dao::schema_state(&restored).await.unwrap(),
        SchemaState::UpToDate { .. }
    ));
    let listen = format!("127.0.0.1:{}", tests::free_port());
    let internal = format!("127.0.0.1:{}", tests::free_port());
    let store = format!("fs:{}", scratch.join("store").display());
    let log = scratch.join("rat-api.log");
    let _api = tests::spawn(
        &tests::binary("rat-api"),
        &[
            ("RAT_DATABASE_URL", target.url()),
            ("RAT_DB_SCHEMA", SCHEMA),
            ("RAT_DB_POOL_SIZE", "2"),
            ("RAT_STORE", &store),
            ("RAT_LISTEN_ADDR", &listen),
            ("RAT_INTERNAL_LISTEN_ADDR", &internal),
            ("RUST_LOG", "warn"),
        ],
        &log,
    );
    tests::wait_listening(&[&listen], 15, &log).await;
    let page = get(&listen, "/api/v1/pipelines?per_page=1").await;
    assert_eq!(page["total"].as_i64(), Some(pipelines.1), "{page}");
    // Nothing was written into `public` of the fresh database.
    let (client, connection) = tokio_postgres::connect(target.url(), tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    let in_public: i64 = client
        .query_one(
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(in_public, 0);
}
