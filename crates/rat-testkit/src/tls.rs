//! A private PostgreSQL cluster serving TLS with certificates made here: a
//! test CA signs a server certificate for `localhost` (not for
//! `127.0.0.1`), and a second CA signs nothing the server presents, so
//! tests can check that `verify-full` accepts the right name, refuses
//! another, and refuses a server its roots do not trust.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};

use crate::cluster::{Cluster, ClusterError, ClusterOptions, give_to_server_user};

/// A running cluster with `ssl=on`, listening on `127.0.0.1` only. Stopped
/// and removed on drop.
#[derive(Debug)]
pub struct TlsCluster {
    cluster: Cluster,
    dir: PathBuf,
    /// The CA that signed the server's certificate (PEM).
    pub ca_pem: PathBuf,
    /// A CA that signed nothing the server presents (PEM).
    pub other_ca_pem: PathBuf,
    /// The TCP port.
    pub port: u16,
}

fn cert_error(e: impl std::fmt::Display) -> ClusterError {
    ClusterError::new(format!("making test certificates: {e}"))
}

fn write(path: &Path, text: &str, mode: u32) -> Result<(), ClusterError> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, text).map_err(|e| ClusterError::new(format!("writing {}: {e}", path.display())))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .map_err(|e| ClusterError::new(format!("chmod {}: {e}", path.display())))?;
    give_to_server_user(path)
}

fn ca(name: &str) -> Result<(rcgen::Certificate, KeyPair), ClusterError> {
    let key = KeyPair::generate().map_err(cert_error)?;
    let mut params = CertificateParams::new(Vec::<String>::new()).map_err(cert_error)?;
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, name);
    let cert = params.self_signed(&key).map_err(cert_error)?;
    Ok((cert, key))
}

impl TlsCluster {
    /// Makes the certificates and starts the cluster on a free port.
    pub fn start() -> Result<TlsCluster, ClusterError> {
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!(
            "rat-tls-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).map_err(|e| ClusterError::new(format!("creating {}: {e}", dir.display())))?;
        give_to_server_user(&dir)?;

        let (ca_cert, ca_key) = ca("rat test CA")?;
        let (other_cert, _) = ca("rat untrusted CA")?;
        let server_key = KeyPair::generate().map_err(cert_error)?;
        let mut params = CertificateParams::new(vec!["localhost".to_owned()]).map_err(cert_error)?;
        params.distinguished_name.push(DnType::CommonName, "localhost");
        let server_cert = params.signed_by(&server_key, &ca_cert, &ca_key).map_err(cert_error)?;

        let ca_pem = dir.join("ca.pem");
        let other_ca_pem = dir.join("other-ca.pem");
        let cert_file = dir.join("server.crt");
        let key_file = dir.join("server.key");
        write(&ca_pem, &ca_cert.pem(), 0o644)?;
        write(&other_ca_pem, &other_cert.pem(), 0o644)?;
        write(&cert_file, &server_cert.pem(), 0o644)?;
        // Postgres refuses a key others can read.
        write(&key_file, &server_key.serialize_pem(), 0o600)?;

        let port = crate::free_port().map_err(ClusterError::new)?;
        let cluster = Cluster::new(ClusterOptions {
            base_dir: dir.join("pg"),
            socket_dir: None,
            tcp: true,
            port,
            durable: false,
            settings: vec![
                "ssl=on".to_owned(),
                format!("ssl_cert_file='{}'", cert_file.display()),
                format!("ssl_key_file='{}'", key_file.display()),
            ],
        })?;
        let tls = TlsCluster {
            cluster,
            dir,
            ca_pem,
            other_ca_pem,
            port,
        };
        tls.cluster.start()?;
        Ok(tls)
    }

    /// A `key=value` connection string to database `postgres` at `host`
    /// with `extra` settings appended (e.g. `sslmode=verify-full`).
    pub fn url(&self, host: &str, extra: &str) -> String {
        format!("host={host} port={} user=postgres dbname=postgres {extra}", self.port)
    }
}

impl Drop for TlsCluster {
    fn drop(&mut self) {
        let _ = self.cluster.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
