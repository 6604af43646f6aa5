//! How a process reaches its database: the connection strings, TLS as their
//! `sslmode` asks, the tenant schema every statement runs in, and whether a
//! transaction pooler (PgBouncer) stands between the pool and Postgres.
//!
//! - **TLS.** `sslmode` (`disable`, `prefer`, `require`, `verify-ca`,
//!   `verify-full`; default `prefer`, as libpq) and `sslrootcert` (a PEM file
//!   of trusted CAs, or `system`) are read from either connection string form
//!   and honoured with rustls. `require` encrypts without checking the
//!   certificate, unless `sslrootcert` is given (then it is `verify-ca`, as
//!   libpq does); `verify-ca` checks the chain; `verify-full` also the host
//!   name. Without `sslrootcert`, the system's CA store is trusted.
//! - **Schema.** Every connection runs in one schema ([`SchemaName`]): set by
//!   the connection's startup options when connecting directly, taken from
//!   the role's `search_path` through a transaction pooler (which cannot pass
//!   startup options), and checked (`current_schema()`) on every new
//!   connection either way, so a misconfigured role fails at once instead of
//!   writing into another tenant's tables.
//! - **Pooler.** Through a transaction pooler, statements are sent unnamed
//!   ([`crate::sql`]) and session-bound work (`LISTEN`, session advisory
//!   locks, migrations) goes over the direct connection string.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::{WebPkiServerVerifier, verify_server_cert_signed_by_trust_anchor};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, RootCertStore, SignatureScheme};
use tokio_postgres::NoTls;
use tokio_postgres_rustls::MakeRustlsConnect;

use crate::DaoError;

/// The schema every binary uses unless told otherwise.
pub const DEFAULT_SCHEMA: &str = "public";

/// Longest schema name: a notification channel is the schema, a dot and the
/// channel's own name, and must fit Postgres' 63-byte identifiers.
pub const MAX_SCHEMA_LEN: usize = 40;

/// A validated schema name: lowercase ASCII letters, digits and `_`, starting
/// with a letter or `_`, at most [`MAX_SCHEMA_LEN`] bytes, not `pg_…` (those
/// are Postgres' own). It is safe to quote into a statement.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SchemaName(String);

impl SchemaName {
    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The name as a quoted SQL identifier (validation leaves nothing to
    /// escape; the quotes keep reserved words usable).
    pub fn quoted(&self) -> String {
        format!("\"{}\"", self.0)
    }

    /// Whether this is the default schema (`public`), whose channel names
    /// and lock keys are unscoped, as before schemas were configurable.
    pub fn is_default(&self) -> bool {
        self.0 == DEFAULT_SCHEMA
    }

    /// `channel` of this schema: `channel` itself in `public`, else
    /// `schema.channel` (the same name `crate::sql::notify` computes in
    /// SQL from `current_schema()`).
    pub fn channel(&self, channel: &str) -> String {
        if self.is_default() {
            channel.to_owned()
        } else {
            format!("{}.{channel}", self.0)
        }
    }
}

impl Default for SchemaName {
    fn default() -> Self {
        SchemaName(DEFAULT_SCHEMA.to_owned())
    }
}

impl fmt::Display for SchemaName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for SchemaName {
    type Err = DaoError;

    fn from_str(name: &str) -> Result<Self, DaoError> {
        check_identifier("schema", name, MAX_SCHEMA_LEN)?;
        Ok(SchemaName(name.to_owned()))
    }
}

/// Checks `name` is a safe unquoted Postgres identifier of our own: lowercase
/// ASCII letters, digits and `_`, starting with a letter or `_`, at most
/// `max_len` bytes, not `pg_…` (Postgres' own). `what` names it in the error
/// (`schema`, `role`).
pub(crate) fn check_identifier(what: &str, name: &str, max_len: usize) -> Result<(), DaoError> {
    let invalid = |why: &str| DaoError::Config {
        reason: format!("{what} name {name:?} {why}"),
    };
    let mut chars = name.chars();
    match chars.next() {
        None => return Err(invalid("is empty")),
        Some(c) if !(c.is_ascii_lowercase() || c == '_') => {
            return Err(invalid("must start with a lowercase letter or `_`"));
        }
        Some(_) => {}
    }
    if !chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_') {
        return Err(invalid("may hold only lowercase letters, digits and `_`"));
    }
    if name.len() > max_len {
        return Err(invalid(&format!("is longer than {max_len} characters")));
    }
    if name.starts_with("pg_") {
        return Err(invalid("starts with `pg_`, which Postgres reserves"));
    }
    Ok(())
}

/// What stands between the pool and Postgres.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PoolerMode {
    /// Postgres itself, or a pooler in session mode: a connection is one
    /// session for as long as it lives.
    #[default]
    Session,
    /// A pooler in transaction mode (PgBouncer `pool_mode = transaction`):
    /// consecutive transactions may run on different server sessions.
    Transaction,
}

impl FromStr for PoolerMode {
    type Err = DaoError;

    fn from_str(s: &str) -> Result<Self, DaoError> {
        match s {
            "session" | "none" | "" => Ok(PoolerMode::Session),
            "transaction" => Ok(PoolerMode::Transaction),
            other => Err(DaoError::Config {
                reason: format!("pooler mode {other:?} is not `session` or `transaction`"),
            }),
        }
    }
}

/// `sslmode`, as libpq spells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SslMode {
    /// Never TLS.
    Disable,
    /// TLS when the server offers it, without checking the certificate.
    Prefer,
    /// TLS always, without checking the certificate (unless a root
    /// certificate is given: then as `VerifyCa`).
    Require,
    /// TLS with a certificate signed by a trusted CA, for any host name.
    VerifyCa,
    /// TLS with a certificate signed by a trusted CA for the host connected to.
    VerifyFull,
}

impl FromStr for SslMode {
    type Err = DaoError;

    fn from_str(s: &str) -> Result<Self, DaoError> {
        Ok(match s {
            "disable" => SslMode::Disable,
            // `allow` tries plain first; TLS-when-offered is the safer reading.
            "allow" | "prefer" => SslMode::Prefer,
            "require" => SslMode::Require,
            "verify-ca" => SslMode::VerifyCa,
            "verify-full" => SslMode::VerifyFull,
            other => {
                return Err(DaoError::Config {
                    reason: format!("sslmode {other:?} is not one of disable, prefer, require, verify-ca, verify-full"),
                });
            }
        })
    }
}

/// One connection string, parsed: the driver's settings and the TLS ones it
/// does not know.
#[derive(Clone)]
pub struct Endpoint {
    config: tokio_postgres::Config,
    ssl_mode: SslMode,
    root_cert: Option<RootCert>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum RootCert {
    File(PathBuf),
    System,
}

impl fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never the password.
        f.debug_struct("Endpoint")
            .field("hosts", &self.config.get_hosts())
            .field("ssl_mode", &self.ssl_mode)
            .field("root_cert", &self.root_cert)
            .finish_non_exhaustive()
    }
}

impl Endpoint {
    /// Parses `url` (`postgres://…?sslmode=…` or `host=… sslmode=…`) without
    /// echoing it (it may hold a password).
    pub fn parse(url: &str) -> Result<Endpoint, DaoError> {
        let (rest, tls) = split_tls_settings(url)?;
        let mut config = tokio_postgres::Config::from_str(&rest).map_err(|e| DaoError::Config {
            reason: format!("database url does not parse: {e}"),
        })?;
        let ssl_mode = match tls.ssl_mode.as_deref() {
            Some(mode) => mode.parse()?,
            None => SslMode::Prefer,
        };
        let root_cert = tls.root_cert.map(|path| {
            if path == "system" {
                RootCert::System
            } else {
                RootCert::File(PathBuf::from(path))
            }
        });
        let ssl_mode = match (ssl_mode, &root_cert) {
            (SslMode::Require, Some(_)) => SslMode::VerifyCa,
            (mode, _) => mode,
        };
        config.ssl_mode(match ssl_mode {
            SslMode::Disable => tokio_postgres::config::SslMode::Disable,
            SslMode::Prefer => tokio_postgres::config::SslMode::Prefer,
            SslMode::Require | SslMode::VerifyCa | SslMode::VerifyFull => tokio_postgres::config::SslMode::Require,
        });
        Ok(Endpoint {
            config,
            ssl_mode,
            root_cert,
        })
    }

    /// The TLS mode in force.
    pub fn ssl_mode(&self) -> SslMode {
        self.ssl_mode
    }

    /// The driver's settings (to add the application name, timeouts).
    pub fn config(&self) -> &tokio_postgres::Config {
        &self.config
    }

    /// The TLS connector `sslmode` asks for; `None` for `disable`.
    pub(crate) fn tls(&self) -> Result<Option<MakeRustlsConnect>, DaoError> {
        let verifier: Arc<dyn ServerCertVerifier> = match self.ssl_mode {
            SslMode::Disable => return Ok(None),
            SslMode::Prefer | SslMode::Require => Arc::new(ChainVerifier::new(None)),
            SslMode::VerifyCa => Arc::new(ChainVerifier::new(Some(self.roots()?))),
            SslMode::VerifyFull => WebPkiServerVerifier::builder_with_provider(Arc::new(self.roots()?), provider())
                .build()
                .map_err(|e| DaoError::Config {
                    reason: format!("TLS verifier: {e}"),
                })?,
        };
        let config = rustls::ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| DaoError::Config {
                reason: format!("TLS versions: {e}"),
            })?
            .dangerous()
            .with_custom_certificate_verifier(verifier)
            .with_no_client_auth();
        Ok(Some(MakeRustlsConnect::new(config)))
    }

    fn roots(&self) -> Result<RootCertStore, DaoError> {
        let mut roots = RootCertStore::empty();
        match &self.root_cert {
            Some(RootCert::File(path)) => {
                let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
                    .and_then(|certs| certs.collect())
                    .map_err(|e| DaoError::Config {
                        reason: format!("sslrootcert {}: {e}", path.display()),
                    })?;
                let (added, _) = roots.add_parsable_certificates(certs);
                if added == 0 {
                    return Err(DaoError::Config {
                        reason: format!("sslrootcert {} holds no usable CA certificate", path.display()),
                    });
                }
            }
            Some(RootCert::System) | None => {
                let found = rustls_native_certs::load_native_certs();
                let (added, _) = roots.add_parsable_certificates(found.certs);
                if added == 0 {
                    return Err(DaoError::Config {
                        reason: format!(
                            "sslmode={} needs trusted CA certificates: the system has none; set sslrootcert",
                            self.ssl_mode.as_str()
                        ),
                    });
                }
            }
        }
        Ok(roots)
    }

    /// Opens one connection with `config` (this endpoint's, adjusted by the
    /// caller), its connection task spawned; it ends when the client is
    /// dropped.
    pub(crate) async fn connect_with(
        &self,
        config: &tokio_postgres::Config,
    ) -> Result<tokio_postgres::Client, DaoError> {
        self.connect_notifying(config, None).await
    }

    /// [`Endpoint::connect_with`], its notifications passed to `notifications`
    /// when given (the connection then also ends when their receiver is gone).
    async fn connect_notifying(
        &self,
        config: &tokio_postgres::Config,
        notifications: Option<tokio::sync::mpsc::Sender<tokio_postgres::Notification>>,
    ) -> Result<tokio_postgres::Client, DaoError> {
        let client = match self.tls()? {
            None => {
                let (client, connection) = config.connect(NoTls).await.map_err(connect_error)?;
                tokio::spawn(drive(connection, notifications));
                client
            }
            Some(tls) => {
                let (client, connection) = config.connect(tls).await.map_err(|e| self.tls_error(e))?;
                tokio::spawn(drive(connection, notifications));
                client
            }
        };
        Ok(client)
    }

    /// A connection failure as the operator needs to read it: a refused
    /// certificate says which check failed, never the password.
    fn tls_error(&self, error: tokio_postgres::Error) -> DaoError {
        let mut source: Option<&(dyn std::error::Error + 'static)> = Some(&error);
        while let Some(e) = source {
            if let Some(rustls::Error::InvalidCertificate(cert)) = e.downcast_ref::<rustls::Error>() {
                return DaoError::Config {
                    reason: certificate_refused(cert, self),
                };
            }
            if let Some(io) = e.downcast_ref::<std::io::Error>()
                && let Some(rustls::Error::InvalidCertificate(cert)) =
                    io.get_ref().and_then(|inner| inner.downcast_ref::<rustls::Error>())
            {
                return DaoError::Config {
                    reason: certificate_refused(cert, self),
                };
            }
            source = e.source();
        }
        connect_error(error)
    }
}

impl SslMode {
    /// As `sslmode` spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            SslMode::Disable => "disable",
            SslMode::Prefer => "prefer",
            SslMode::Require => "require",
            SslMode::VerifyCa => "verify-ca",
            SslMode::VerifyFull => "verify-full",
        }
    }
}

fn certificate_refused(cert: &CertificateError, endpoint: &Endpoint) -> String {
    let mode = endpoint.ssl_mode.as_str();
    let trusted = match &endpoint.root_cert {
        Some(RootCert::File(path)) => format!("the CA certificates of sslrootcert {}", path.display()),
        Some(RootCert::System) | None => "the system's CA certificates".to_owned(),
    };
    match cert {
        CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => format!(
            "the database server's TLS certificate is not valid for the host name connected to \
             (sslmode={mode}); connect with a name the certificate lists, or use sslmode=verify-ca"
        ),
        CertificateError::UnknownIssuer | CertificateError::BadSignature => format!(
            "the database server's TLS certificate is not signed by a trusted CA (sslmode={mode}, \
             trusting {trusted}); set sslrootcert to the CA that signed it"
        ),
        CertificateError::Expired | CertificateError::ExpiredContext { .. } => {
            format!("the database server's TLS certificate has expired (sslmode={mode})")
        }
        other => format!("the database server's TLS certificate was refused (sslmode={mode}): {other:?}"),
    }
}

fn connect_error(error: tokio_postgres::Error) -> DaoError {
    DaoError::Unavailable {
        source: Box::new(error),
    }
}

/// Drives `connection` until the server closes it or it fails, passing its
/// notifications to `notifications` when given (and ending when their
/// receiver is gone).
async fn drive<S, T>(
    mut connection: tokio_postgres::Connection<S, T>,
    notifications: Option<tokio::sync::mpsc::Sender<tokio_postgres::Notification>>,
) where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    loop {
        let notification = match std::future::poll_fn(|cx| connection.poll_message(cx)).await {
            Some(Ok(tokio_postgres::AsyncMessage::Notification(n))) => n,
            Some(Ok(_)) => continue,
            Some(Err(e)) => {
                tracing::warn!(error = %e, "database connection ended with an error");
                return;
            }
            None => return,
        };
        if let Some(sender) = &notifications
            && sender.send(notification).await.is_err()
        {
            return;
        }
    }
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The verifier of `sslmode=prefer|require` (no `roots`: encryption without
/// authentication, as libpq) and of `sslmode=verify-ca` (the chain must lead
/// to one of `roots`; the host name is not checked). `verify-full` uses
/// rustls' own verifier.
#[derive(Debug)]
struct ChainVerifier {
    roots: Option<Arc<RootCertStore>>,
    provider: Arc<rustls::crypto::CryptoProvider>,
}

impl ChainVerifier {
    fn new(roots: Option<RootCertStore>) -> Self {
        ChainVerifier {
            roots: roots.map(Arc::new),
            provider: provider(),
        }
    }
}

impl ServerCertVerifier for ChainVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if let Some(roots) = &self.roots {
            let cert = rustls::server::ParsedCertificate::try_from(end_entity)?;
            verify_server_cert_signed_by_trust_anchor(
                &cert,
                roots,
                intermediates,
                now,
                self.provider.signature_verification_algorithms.all,
            )?;
        }
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider.signature_verification_algorithms.supported_schemes()
    }
}

/// The TLS settings of a connection string the driver does not parse itself.
#[derive(Debug, Default, PartialEq, Eq)]
struct TlsSettings {
    ssl_mode: Option<String>,
    root_cert: Option<String>,
}

/// `url` without its `sslmode` and `sslrootcert`, and their values.
fn split_tls_settings(url: &str) -> Result<(String, TlsSettings), DaoError> {
    let (rest, taken) = take_settings(url, &["sslmode", "sslrootcert"])?;
    let mut tls = TlsSettings::default();
    for (key, value) in taken {
        match key {
            "sslmode" => tls.ssl_mode = Some(value),
            _ => tls.root_cert = Some(value),
        }
    }
    Ok((rest, tls))
}

/// Settings taken out of a connection string: `(key, value)`, in order.
pub(crate) type Taken<'k> = Vec<(&'k str, String)>;

/// `url` without the settings named `keys`, and their values (decoded), in
/// the order written. Both forms of connection string are understood: the
/// query of a `postgres://` URL, or `key = value` pairs (values optionally
/// single-quoted with `\` escapes); everything else is left as written for
/// the driver to parse.
pub(crate) fn take_settings<'k>(url: &str, keys: &[&'k str]) -> Result<(String, Taken<'k>), DaoError> {
    let mut taken = Vec::new();
    let ours = |key: &str| keys.iter().find(|k| **k == key).copied();
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        let Some((base, query)) = url.split_once('?') else {
            return Ok((url.to_owned(), taken));
        };
        let mut kept = Vec::new();
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            match ours(key) {
                Some(key) => taken.push((key, percent_decode(value)?)),
                None => kept.push(pair),
            }
        }
        let rest = if kept.is_empty() {
            base.to_owned()
        } else {
            format!("{base}?{}", kept.join("&"))
        };
        return Ok((rest, taken));
    }
    // `key = value` pairs, values optionally single-quoted with `\` escapes.
    let mut kept = String::new();
    let mut chars = url.char_indices().peekable();
    while let Some(&(start, c)) = chars.peek() {
        if c.is_whitespace() {
            chars.next();
            continue;
        }
        let mut key = String::new();
        while let Some(&(_, c)) = chars.peek() {
            if c == '=' || c.is_whitespace() {
                break;
            }
            key.push(c);
            chars.next();
        }
        while chars.peek().is_some_and(|&(_, c)| c.is_whitespace()) {
            chars.next();
        }
        if chars.next().map(|(_, c)| c) != Some('=') {
            // Not ours to judge: the driver reports it.
            return Ok((url.to_owned(), Vec::new()));
        }
        while chars.peek().is_some_and(|&(_, c)| c.is_whitespace()) {
            chars.next();
        }
        let mut value = String::new();
        if chars.peek().is_some_and(|&(_, c)| c == '\'') {
            chars.next();
            loop {
                match chars.next() {
                    Some((_, '\\')) => {
                        if let Some((_, escaped)) = chars.next() {
                            value.push(escaped);
                        }
                    }
                    Some((_, '\'')) => break,
                    Some((_, c)) => value.push(c),
                    None => {
                        return Err(DaoError::Config {
                            reason: "database url has an unterminated quoted value".to_owned(),
                        });
                    }
                }
            }
        } else {
            while let Some(&(_, c)) = chars.peek() {
                if c.is_whitespace() {
                    break;
                }
                value.push(c);
                chars.next();
            }
        }
        let end = chars.peek().map_or(url.len(), |&(i, _)| i);
        match ours(&key) {
            Some(key) => taken.push((key, value)),
            None => {
                kept.push_str(url[start..end].trim_end());
                kept.push(' ');
            }
        }
    }
    Ok((kept.trim_end().to_owned(), taken))
}

fn percent_decode(value: &str) -> Result<String, DaoError> {
    let bytes = value.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok();
            if let Some(byte) = hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                out.push(byte);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8(out).map_err(|_| DaoError::Config {
        reason: "database url has a percent-encoded value that is not UTF-8".to_owned(),
    })
}

/// Everything a process needs to reach its tenant's database.
#[derive(Debug, Clone)]
pub struct Database {
    /// The connection string of the pool (possibly a pooler).
    pub url: String,
    /// Straight to Postgres, for session-bound work (`LISTEN`, session
    /// advisory locks, migrations); `None`: `url` is direct.
    pub direct_url: Option<String>,
    /// The tenant schema.
    pub schema: SchemaName,
    /// What stands between the pool and Postgres.
    pub pooler: PoolerMode,
}

impl Database {
    /// A direct connection string, schema `public`, no pooler.
    pub fn new(url: impl Into<String>) -> Self {
        Database {
            url: url.into(),
            direct_url: None,
            schema: SchemaName::default(),
            pooler: PoolerMode::Session,
        }
    }

    /// This database in `schema`.
    pub fn in_schema(mut self, schema: SchemaName) -> Self {
        self.schema = schema;
        self
    }

    /// Refuses settings that cannot work: session-bound work through a
    /// transaction pooler.
    pub fn validate(&self) -> Result<(), DaoError> {
        Endpoint::parse(&self.url)?;
        if let Some(direct) = &self.direct_url {
            Endpoint::parse(direct)?;
        }
        if self.pooler == PoolerMode::Transaction && self.direct_url.is_none() {
            return Err(DaoError::Config {
                reason: "through a transaction pooler, LISTEN, session advisory locks and migrations need a \
                         direct connection to Postgres: set RAT_DATABASE_DIRECT_URL"
                    .to_owned(),
            });
        }
        Ok(())
    }

    /// The connection string of session-bound work.
    pub fn session_url(&self) -> &str {
        self.direct_url.as_deref().unwrap_or(&self.url)
    }

    /// Opens one session straight to Postgres, outside any pool, in this
    /// database's schema (checked): for work that must own its session
    /// (`LISTEN`, session advisory locks). The connection task ends when the
    /// client is dropped.
    pub async fn connect_session(&self, application_name: &str) -> Result<tokio_postgres::Client, DaoError> {
        let client = self.connect_session_unchecked(application_name).await?;
        check_schema(&client, &self.schema).await?;
        Ok(client)
    }

    /// [`Database::connect_session`] without the schema check (the schema
    /// may not exist yet: migrations create it).
    pub(crate) async fn connect_session_unchecked(
        &self,
        application_name: &str,
    ) -> Result<tokio_postgres::Client, DaoError> {
        let (endpoint, config) = self.session_config(application_name)?;
        endpoint.connect_with(&config).await
    }

    /// A session like [`Database::connect_session`] whose notifications are
    /// delivered on the returned channel (at most `buffer` waiting); the
    /// channel closes when the connection ends.
    pub(crate) async fn connect_session_notifying(
        &self,
        application_name: &str,
        buffer: usize,
    ) -> Result<
        (
            tokio_postgres::Client,
            tokio::sync::mpsc::Receiver<tokio_postgres::Notification>,
        ),
        DaoError,
    > {
        let (endpoint, config) = self.session_config(application_name)?;
        let (sender, receiver) = tokio::sync::mpsc::channel(buffer);
        let client = endpoint.connect_notifying(&config, Some(sender)).await?;
        check_schema(&client, &self.schema).await?;
        Ok((client, receiver))
    }

    fn session_config(&self, application_name: &str) -> Result<(Endpoint, tokio_postgres::Config), DaoError> {
        let endpoint = Endpoint::parse(self.session_url())?;
        let mut config = endpoint.config().clone();
        config.application_name(application_name);
        config.connect_timeout(Duration::from_secs(10));
        // Idle most of the time: probe it, so a vanished peer is noticed.
        config.keepalives(true);
        config.keepalives_idle(Duration::from_secs(30));
        config.options(search_path_option(&self.schema));
        Ok((endpoint, config))
    }
}

impl From<&str> for Database {
    fn from(url: &str) -> Self {
        Database::new(url)
    }
}

impl From<String> for Database {
    fn from(url: String) -> Self {
        Database::new(url)
    }
}

/// The startup option that puts a session in `schema` (only `schema`:
/// nothing else is ever created or read elsewhere).
pub(crate) fn search_path_option(schema: &SchemaName) -> String {
    format!("-c search_path={}", schema.as_str())
}

/// Fails unless `client`'s session is in `schema`.
pub(crate) async fn check_schema(client: &tokio_postgres::Client, schema: &SchemaName) -> Result<(), DaoError> {
    // Unnamed (`query_typed`: parse, bind and execute in one exchange): a
    // named statement is prepared and run in two exchanges, which a
    // transaction pooler may send to two different server sessions, the
    // second without the statement ("prepared statement … does not exist").
    let rows = client
        .query_typed("SELECT current_schema()::text, current_user::text", &[])
        .await?;
    let row = rows.first().ok_or_else(|| DaoError::Config {
        reason: "SELECT current_schema() returned no row".to_owned(),
    })?;
    let current: Option<String> = row.get(0);
    let user: String = row.get(1);
    match current {
        Some(current) if current == schema.as_str() => Ok(()),
        Some(current) => Err(DaoError::Config {
            reason: format!(
                "connected as {user}, the session is in schema {current:?}, not {schema:?}: through a transaction \
                 pooler the schema comes from the role (ALTER ROLE {user} SET search_path = {schema})",
                schema = schema.as_str()
            ),
        }),
        None => Err(DaoError::Config {
            reason: format!(
                "schema {:?} does not exist, or {user} may not use it: run `migrate` as the schema's owner \
                 (RAT_MIGRATE_DATABASE_URL), or create it with `cargo xtask db tenant create`",
                schema.as_str()
            ),
        }),
    }
}

/// Whether statements are sent unnamed ([`crate::sql`]): once any pool of
/// the process goes through a transaction pooler, every statement of the
/// process is (named statements would outlive the transaction that
/// prepared them, on a server session another client gets next).
static UNNAMED_STATEMENTS: AtomicBool = AtomicBool::new(false);

/// Sends every statement of this process unnamed from now on.
pub fn use_unnamed_statements() {
    UNNAMED_STATEMENTS.store(true, Ordering::Relaxed);
}

pub(crate) fn unnamed_statements() -> bool {
    UNNAMED_STATEMENTS.load(Ordering::Relaxed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schema_names_are_validated() {
        for good in ["public", "tenant_a", "_x", "a1"] {
            assert_eq!(good.parse::<SchemaName>().unwrap().as_str(), good);
        }
        for bad in [
            "",
            "A",
            "1a",
            "a-b",
            "a b",
            "a\"b",
            "pg_catalog",
            "x;drop",
            &"a".repeat(MAX_SCHEMA_LEN + 1),
        ] {
            assert!(bad.parse::<SchemaName>().is_err(), "{bad:?} should be refused");
        }
    }

    #[test]
    fn channels_are_scoped_outside_public() {
        let public = SchemaName::default();
        assert_eq!(public.channel("rat_run_logs"), "rat_run_logs");
        let tenant: SchemaName = "tenant_a".parse().unwrap();
        assert_eq!(tenant.channel("rat_run_logs"), "tenant_a.rat_run_logs");
        assert!(tenant.channel("rat_run_status").len() < 64);
    }

    #[test]
    fn tls_settings_are_taken_from_urls() {
        let (rest, tls) =
            split_tls_settings("postgres://u:p@h:5432/db?sslmode=verify-full&application_name=x&sslrootcert=%2Fca.pem")
                .unwrap();
        assert_eq!(rest, "postgres://u:p@h:5432/db?application_name=x");
        assert_eq!(tls.ssl_mode.as_deref(), Some("verify-full"));
        assert_eq!(tls.root_cert.as_deref(), Some("/ca.pem"));

        let (rest, tls) =
            split_tls_settings("host=h  sslmode = require dbname='my db' sslrootcert='/a b.pem'").unwrap();
        assert_eq!(rest, "host=h dbname='my db'");
        assert_eq!(tls.ssl_mode.as_deref(), Some("require"));
        assert_eq!(tls.root_cert.as_deref(), Some("/a b.pem"));

        let (rest, tls) = split_tls_settings("postgres://h/db").unwrap();
        assert_eq!(rest, "postgres://h/db");
        assert_eq!(tls, TlsSettings::default());
    }

    #[test]
    fn endpoints_honour_sslmode() {
        assert_eq!(Endpoint::parse("host=h").unwrap().ssl_mode(), SslMode::Prefer);
        assert_eq!(
            Endpoint::parse("host=h sslmode=disable").unwrap().ssl_mode(),
            SslMode::Disable
        );
        assert_eq!(
            Endpoint::parse("postgres://h/db?sslmode=verify-ca").unwrap().ssl_mode(),
            SslMode::VerifyCa
        );
        // libpq: `require` with a root certificate verifies the chain.
        assert_eq!(
            Endpoint::parse("host=h sslmode=require sslrootcert=/x.pem")
                .unwrap()
                .ssl_mode(),
            SslMode::VerifyCa
        );
        let e = Endpoint::parse("host=h sslmode=sometimes").unwrap_err().to_string();
        assert!(e.contains("sslmode"), "{e}");
        let e = Endpoint::parse("host=h sslmode=verify-full sslrootcert=/nonexistent.pem")
            .unwrap()
            .tls()
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("/nonexistent.pem"), "{e}");
    }

    #[test]
    fn a_transaction_pooler_needs_a_direct_url() {
        let mut db = Database::new("host=h");
        db.pooler = PoolerMode::Transaction;
        assert!(
            db.validate()
                .unwrap_err()
                .to_string()
                .contains("RAT_DATABASE_DIRECT_URL")
        );
        db.direct_url = Some("host=pg".to_owned());
        db.validate().unwrap();
    }
}
