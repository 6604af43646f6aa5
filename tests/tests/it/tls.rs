//! TLS to Postgres as `sslmode` asks (issue 16): a private cluster serves a
//! certificate a test CA made for `localhost`. `require` and `verify-full`
//! connect (and the session is really encrypted); `verify-full` against
//! another host name, or with roots that do not trust the server, fails
//! before any query, and a binary refuses to start saying which check failed.

use rat_testkit::dao::{Database, PoolSettings, create_pool};
use rat_testkit::tls::TlsCluster;

/// Whether the pool's session is encrypted (`pg_stat_ssl`).
async fn encrypted_through_pool(url: &str) -> Result<bool, String> {
    let settings = PoolSettings::new(Database::new(url));
    settings.check_connection().await.map_err(|e| e.to_string())?;
    let pool = create_pool(&settings).map_err(|e| e.to_string())?;
    let client = pool.get().await.map_err(|e| e.to_string())?;
    let row = client
        .query_one("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()", &[])
        .await
        .map_err(|e| e.to_string())?;
    Ok(row.get(0))
}

fn cluster() -> TlsCluster {
    TlsCluster::start().unwrap_or_else(|e| panic!("{e}"))
}

#[tokio::test]
async fn sslmodes_are_honoured_against_a_tls_server() {
    let tls = cluster();
    let ca = tls.ca_pem.display().to_string();

    // Encryption without authentication.
    assert!(
        encrypted_through_pool(&tls.url("127.0.0.1", "sslmode=require"))
            .await
            .unwrap()
    );
    // The default (prefer) encrypts when the server offers it.
    assert!(encrypted_through_pool(&tls.url("localhost", "")).await.unwrap());
    // Authenticated: the CA is trusted and the name matches.
    assert!(
        encrypted_through_pool(&tls.url("localhost", &format!("sslmode=verify-full sslrootcert={ca}")))
            .await
            .unwrap()
    );
    // The URL form says the same.
    let url = format!(
        "postgres://postgres@localhost:{}/postgres?sslmode=verify-full&sslrootcert={ca}",
        tls.port
    );
    assert!(encrypted_through_pool(&url).await.unwrap());
    // verify-ca checks the chain but not the name.
    assert!(
        encrypted_through_pool(&tls.url("127.0.0.1", &format!("sslmode=verify-ca sslrootcert={ca}")))
            .await
            .unwrap()
    );
    // disable: plain text, to the same server.
    assert!(
        !encrypted_through_pool(&tls.url("localhost", "sslmode=disable"))
            .await
            .unwrap()
    );

    // The certificate names localhost, not 127.0.0.1.
    let wrong_name = encrypted_through_pool(&tls.url("127.0.0.1", &format!("sslmode=verify-full sslrootcert={ca}")))
        .await
        .unwrap_err();
    assert!(wrong_name.contains("not valid for the host name"), "{wrong_name}");
    // Roots that never signed the server's certificate.
    let other = tls.other_ca_pem.display().to_string();
    let untrusted = encrypted_through_pool(&tls.url("localhost", &format!("sslmode=verify-full sslrootcert={other}")))
        .await
        .unwrap_err();
    assert!(untrusted.contains("not signed by a trusted CA"), "{untrusted}");
    assert!(untrusted.contains(&other), "names the roots it trusted: {untrusted}");
    // Libpq's rule: require with a root certificate verifies the chain.
    let untrusted = encrypted_through_pool(&tls.url("localhost", &format!("sslmode=require sslrootcert={other}")))
        .await
        .unwrap_err();
    assert!(untrusted.contains("not signed by a trusted CA"), "{untrusted}");
}

#[tokio::test]
async fn a_binary_refuses_to_start_naming_the_failed_tls_check() {
    let tls = cluster();
    let ca = tls.ca_pem.display().to_string();
    let scratch = std::env::temp_dir();
    let cases = [
        (
            tls.url("127.0.0.1", &format!("sslmode=verify-full sslrootcert={ca}")),
            "not valid for the host name",
        ),
        (
            tls.url(
                "localhost",
                &format!("sslmode=verify-full sslrootcert={}", tls.other_ca_pem.display()),
            ),
            "not signed by a trusted CA",
        ),
    ];
    for (url, expected) in cases {
        let output = tokio::process::Command::new(tests::binary("rat-scheduler"))
            .env("RAT_DATABASE_URL", &url)
            .env("RAT_LOG_FORMAT", "text")
            .current_dir(&scratch)
            .output()
            .await
            .expect("running rat-scheduler");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "started against {url}: {stderr}");
        assert!(stderr.contains(expected), "{url}: {stderr}");
    }
    // With the right name and roots it migrates and starts; `migrate` exits.
    let output = tokio::process::Command::new(tests::binary("rat-scheduler"))
        .env(
            "RAT_DATABASE_URL",
            tls.url("localhost", &format!("sslmode=verify-full sslrootcert={ca}")),
        )
        .arg("migrate")
        .current_dir(&scratch)
        .output()
        .await
        .expect("running rat-scheduler migrate");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
}
