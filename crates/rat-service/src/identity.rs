//! Who is calling. Every request is authenticated here, once, into a
//! [`Caller`]: the operator's API key (an admin), an OpenID Connect access
//! token verified against the issuer's current keys ([`OidcVerifier`]), or,
//! in Community mode (no key, no issuer), the one trusted local user.
//!
//! OIDC verification: the token's `alg` must be asymmetric (RSA, RSA-PSS,
//! ECDSA or EdDSA; `none` and HMAC are refused before any key is looked at,
//! so a public key can never be used as an HMAC secret), its signature must
//! verify against a key of the issuer's JWKS, `iss` must equal the issuer,
//! `aud` must contain the audience, and `exp`/`nbf` must hold within the
//! leeway. A token naming a key id the verifier does not know makes it fetch
//! the JWKS again (at most once per `jwks_refresh_interval`), so the issuer
//! may rotate keys without a restart; a key gone from the JWKS stops
//! verifying at that refresh, and tokens verified with it leave the cache.
//! Verified tokens are cached until they expire, keyed by a SHA-256 of the
//! token, at most `cache_capacity` of them.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, JwkSet};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use rat_dao::tokens;
use rat_domain::{DomainError, MAX_TOKEN_DAYS, MAX_TOKEN_NAME_CHARS, Page, PageRequest, PersonalToken};
use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use time::OffsetDateTime;
use tokio::sync::{Mutex, RwLock};
use uuid::Uuid;

use crate::ServiceError;
use crate::db::Pool;

/// The actor of Community mode.
pub const COMMUNITY_USER: &str = "community";
/// The actor of the operator's API key.
pub const API_KEY_USER: &str = "api-key";
/// The actor of webhook calls.
pub const WEBHOOK_USER: &str = "webhook";

/// How the caller proved who they are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    /// Community mode: nothing is configured, every caller is the local user.
    Community,
    /// The operator's API key.
    ApiKey,
    /// An OIDC access token.
    Oidc,
    /// A personal access token.
    PersonalToken,
    /// A webhook call, authenticated by its handler with the webhook's token.
    Webhook,
}

/// An authenticated caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// The user name (the audit log's actor).
    pub user: String,
    /// The roles the identity provider gave (empty for the key and Community).
    pub roles: Vec<String>,
    /// Whether the caller may do everything.
    pub admin: bool,
    /// How the caller authenticated.
    pub via: Via,
    /// The token's `email` claim, when it has one.
    pub email: Option<String>,
    /// The token's `name` claim, when it has one.
    pub display_name: Option<String>,
}

impl Caller {
    /// The one user of Community mode, who may do everything.
    pub fn community() -> Self {
        Caller::operator(COMMUNITY_USER, Via::Community)
    }

    /// A signed-in user with these roles, not an admin: how a program
    /// embedding the service acts on behalf of a user it has authenticated
    /// itself (and how tests stand for one).
    pub fn user(name: impl Into<String>, roles: &[&str]) -> Self {
        Caller {
            user: name.into(),
            roles: roles.iter().map(|role| (*role).to_owned()).collect(),
            admin: false,
            via: Via::Oidc,
            email: None,
            display_name: None,
        }
    }

    /// A webhook call (the token it bears is checked by its handler).
    pub fn webhook() -> Self {
        Caller {
            admin: false,
            ..Caller::operator(WEBHOOK_USER, Via::Webhook)
        }
    }

    /// `Forbidden` unless the caller is an admin: the check of every
    /// admin-only operation (system retention settings, the audit log, the
    /// plugin registry, the reaper trigger, files outside any pipeline or
    /// landing zone).
    pub fn require_admin(&self, doing: &str) -> Result<(), crate::ServiceError> {
        if self.admin {
            Ok(())
        } else {
            Err(crate::ServiceError::Forbidden {
                message: format!("{doing} needs an admin"),
            })
        }
    }

    fn operator(user: &str, via: Via) -> Self {
        Caller {
            user: user.to_owned(),
            roles: Vec::new(),
            admin: true,
            via,
            email: None,
            display_name: None,
        }
    }
}

/// Why a request was not authenticated. `Display` is safe to show to clients
/// (it never says which check a token failed beyond what the caller sent).
#[derive(Debug, thiserror::Error)]
pub enum Unauthenticated {
    /// No credential, or one that matches nothing.
    #[error("missing or invalid credentials")]
    Missing,
    /// A bearer token that is not a valid access token of the issuer.
    #[error("invalid access token")]
    Token(#[source] TokenRefused),
    /// The issuer could not be reached to fetch its keys.
    #[error("the identity provider is unavailable")]
    ProviderUnavailable(#[source] OidcError),
    /// The database could not be asked about a personal access token.
    #[error("the token store is unavailable")]
    StoreUnavailable(#[source] ServiceError),
}

/// Why a token was refused (for logs).
#[derive(Debug, thiserror::Error)]
pub enum TokenRefused {
    /// Not a JWT, or a header that does not parse (`alg: none` included).
    #[error("malformed token: {0}")]
    Malformed(String),
    /// A symmetric algorithm: never accepted.
    #[error("algorithm {0:?} is not accepted (asymmetric algorithms only)")]
    Algorithm(Algorithm),
    /// No key of the issuer's JWKS has the token's key id.
    #[error("no current key has id {0:?}")]
    UnknownKey(Option<String>),
    /// The signature or a claim check failed.
    #[error("{0}")]
    Invalid(#[from] jsonwebtoken::errors::Error),
    /// The token names no user.
    #[error("the token has neither the user claim nor `sub`")]
    NoUser,
    /// The token names a user that is not a person (`community`, `api-key`,
    /// `webhook`, `role:…`): signing in as one would borrow its objects.
    #[error("the user name {0:?} is reserved")]
    ReservedUser(String),
}

/// Why the issuer's documents could not be read.
#[derive(Debug, thiserror::Error)]
pub enum OidcError {
    /// The request failed or the answer was not JSON of the expected shape.
    #[error("{what} at {url}: {source}")]
    Fetch {
        /// Which document.
        what: &'static str,
        /// Where it was asked for.
        url: String,
        /// Why it failed.
        #[source]
        source: reqwest::Error,
    },
    /// The discovery document names another issuer.
    #[error("the discovery document names issuer {found:?}, not {expected:?}")]
    IssuerMismatch {
        /// The configured issuer.
        expected: String,
        /// The document's.
        found: String,
    },
    /// The JWKS has no usable signing key.
    #[error("the JWKS at {0} has no usable signing key")]
    NoKeys(String),
}

/// How tokens are checked (`RAT_OIDC_*`).
#[derive(Debug, Clone)]
pub struct OidcSettings {
    /// The issuer URL; its discovery document is `{issuer}/.well-known/openid-configuration`.
    pub issuer: String,
    /// The audience a token must name in `aud`.
    pub audience: String,
    /// The claim holding the user name; `sub` when the token lacks it.
    pub user_claim: String,
    /// The dotted path of the claim holding the roles (`groups`, `realm_access.roles`).
    pub roles_claim: String,
    /// The role that may do everything.
    pub admin_role: String,
    /// Clock skew tolerated on `exp` and `nbf`.
    pub leeway: Duration,
    /// Least time between two JWKS fetches caused by unknown key ids.
    pub jwks_refresh_interval: Duration,
    /// Most verified tokens remembered.
    pub cache_capacity: usize,
}

impl OidcSettings {
    /// The settings for `issuer` and `audience`, the rest at their defaults.
    pub fn new(issuer: impl Into<String>, audience: impl Into<String>) -> Self {
        OidcSettings {
            issuer: issuer.into(),
            audience: audience.into(),
            user_claim: "preferred_username".to_owned(),
            roles_claim: "groups".to_owned(),
            admin_role: "rat-admin".to_owned(),
            leeway: Duration::from_secs(30),
            jwks_refresh_interval: Duration::from_secs(30),
            cache_capacity: 10_000,
        }
    }
}

/// How long one request to the issuer (discovery document, JWKS) may take.
pub const FETCH_TIMEOUT: Duration = Duration::from_secs(10);

/// The RSA and RSA-PSS algorithms an RSA key may verify.
const RSA_ALGORITHMS: &[Algorithm] = &[
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
];

/// Whether a token may be signed with `alg`: asymmetric algorithms only.
fn accepted(alg: Algorithm) -> bool {
    RSA_ALGORITHMS.contains(&alg) || matches!(alg, Algorithm::ES256 | Algorithm::ES384 | Algorithm::EdDSA)
}

/// One signing key of the JWKS, with the algorithms it may verify.
struct Key {
    id: Option<String>,
    algorithms: Vec<Algorithm>,
    key: DecodingKey,
}

/// Verifies access tokens of one issuer.
pub struct OidcVerifier {
    settings: OidcSettings,
    http: reqwest::Client,
    jwks_uri: String,
    keys: RwLock<Vec<Key>>,
    /// When the JWKS was last fetched; held while a fetch runs, so
    /// concurrent unknown key ids cause one fetch.
    fetched: Mutex<Instant>,
    verified: std::sync::Mutex<HashMap<[u8; 32], (Caller, i64)>>,
}

impl std::fmt::Debug for OidcVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OidcVerifier")
            .field("issuer", &self.settings.issuer)
            .field("jwks_uri", &self.jwks_uri)
            .finish_non_exhaustive()
    }
}

#[derive(serde::Deserialize)]
struct Discovery {
    issuer: String,
    jwks_uri: String,
}

/// The issuer without a trailing `/`, as issuers are compared.
fn normalized(issuer: &str) -> &str {
    issuer.strip_suffix('/').unwrap_or(issuer)
}

impl OidcVerifier {
    /// Reads the issuer's discovery document and its JWKS (each request
    /// bounded by [`FETCH_TIMEOUT`]). Fails when either cannot be read, the
    /// document names another issuer, or the JWKS has no usable signing key.
    pub async fn discover(settings: OidcSettings) -> Result<Self, OidcError> {
        let http = reqwest::Client::builder()
            .timeout(FETCH_TIMEOUT)
            .build()
            .map_err(|source| OidcError::Fetch {
                what: "HTTP client",
                url: settings.issuer.clone(),
                source,
            })?;
        let url = format!("{}/.well-known/openid-configuration", normalized(&settings.issuer));
        let discovery: Discovery = fetch_json(&http, "discovery document", &url).await?;
        if normalized(&discovery.issuer) != normalized(&settings.issuer) {
            return Err(OidcError::IssuerMismatch {
                expected: settings.issuer.clone(),
                found: discovery.issuer,
            });
        }
        let keys = fetch_keys(&http, &discovery.jwks_uri).await?;
        if keys.is_empty() {
            return Err(OidcError::NoKeys(discovery.jwks_uri));
        }
        Ok(OidcVerifier {
            settings,
            http,
            jwks_uri: discovery.jwks_uri,
            keys: RwLock::new(keys),
            fetched: Mutex::new(Instant::now()),
            verified: std::sync::Mutex::new(HashMap::new()),
        })
    }

    /// The settings in force.
    pub fn settings(&self) -> &OidcSettings {
        &self.settings
    }

    /// Verifies `token` as of `now` into a caller.
    pub async fn verify(&self, token: &str, now: OffsetDateTime) -> Result<Caller, Unauthenticated> {
        let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        if let Some(caller) = self.cached(&digest, now) {
            return Ok(caller);
        }
        let header = jsonwebtoken::decode_header(token)
            .map_err(|e| Unauthenticated::Token(TokenRefused::Malformed(e.to_string())))?;
        if !accepted(header.alg) {
            return Err(Unauthenticated::Token(TokenRefused::Algorithm(header.alg)));
        }
        let claims = match self.check(token, &header, now).await {
            Err(TokenRefused::UnknownKey(kid)) => {
                if self.refresh().await.map_err(Unauthenticated::ProviderUnavailable)? {
                    self.check(token, &header, now).await
                } else {
                    Err(TokenRefused::UnknownKey(kid))
                }
            }
            other => other,
        }
        .map_err(Unauthenticated::Token)?;
        let caller = self.caller_of(&claims).map_err(Unauthenticated::Token)?;
        let expires = claims.get("exp").and_then(Value::as_i64).unwrap_or(0);
        self.remember(digest, &caller, expires, now);
        Ok(caller)
    }

    /// Checks the signature and claims with the keys held now.
    async fn check(
        &self,
        token: &str,
        header: &jsonwebtoken::Header,
        now: OffsetDateTime,
    ) -> Result<serde_json::Map<String, Value>, TokenRefused> {
        let mut validation = Validation::new(header.alg);
        let issuer = normalized(&self.settings.issuer);
        validation.set_issuer(&[issuer.to_owned(), format!("{issuer}/")]);
        validation.set_audience(&[&self.settings.audience]);
        validation.set_required_spec_claims(&["exp", "iss", "aud"]);
        // Time is checked once, by `check_times`, against the caller's `now`
        // (jsonwebtoken's own check reads the system clock).
        validation.validate_exp = false;
        validation.validate_nbf = false;
        let keys = self.keys.read().await;
        let candidates: Vec<&Key> = keys
            .iter()
            .filter(|k| header.kid.is_none() || k.id == header.kid)
            .filter(|k| k.algorithms.contains(&header.alg))
            .collect();
        if candidates.is_empty() {
            return Err(TokenRefused::UnknownKey(header.kid.clone()));
        }
        let mut last = None;
        for key in candidates {
            match jsonwebtoken::decode::<serde_json::Map<String, Value>>(token, &key.key, &validation) {
                Ok(data) => {
                    check_times(&data.claims, now, self.settings.leeway)?;
                    return Ok(data.claims);
                }
                Err(e) => last = Some(e),
            }
        }
        Err(TokenRefused::Invalid(last.expect("at least one candidate was tried")))
    }

    /// Fetches the JWKS again, unless the last fetch is more recent than
    /// `jwks_refresh_interval` (another request may just have made it: the
    /// keys are checked again either way). Tokens verified with a key that is
    /// gone are forgotten. Whether the keys may have changed.
    async fn refresh(&self) -> Result<bool, OidcError> {
        let mut fetched = self.fetched.lock().await;
        if fetched.elapsed() < self.settings.jwks_refresh_interval {
            return Ok(false);
        }
        *fetched = Instant::now();
        let keys = fetch_keys(&self.http, &self.jwks_uri).await?;
        tracing::info!(keys = keys.len(), jwks_uri = %self.jwks_uri, "fetched the issuer's signing keys");
        *self.keys.write().await = keys;
        self.verified.lock().unwrap_or_else(|p| p.into_inner()).clear();
        Ok(true)
    }

    fn cached(&self, digest: &[u8; 32], now: OffsetDateTime) -> Option<Caller> {
        let cache = self.verified.lock().unwrap_or_else(|p| p.into_inner());
        let (caller, expires) = cache.get(digest)?;
        (now.unix_timestamp() < *expires).then(|| caller.clone())
    }

    fn remember(&self, digest: [u8; 32], caller: &Caller, expires: i64, now: OffsetDateTime) {
        let mut cache = self.verified.lock().unwrap_or_else(|p| p.into_inner());
        if cache.len() >= self.settings.cache_capacity {
            let now = now.unix_timestamp();
            cache.retain(|_, (_, expires)| *expires > now);
            if cache.len() >= self.settings.cache_capacity {
                cache.clear();
            }
        }
        if self.settings.cache_capacity > 0 {
            cache.insert(digest, (caller.clone(), expires));
        }
    }

    /// The caller a verified token names.
    fn caller_of(&self, claims: &serde_json::Map<String, Value>) -> Result<Caller, TokenRefused> {
        let user = claims
            .get(&self.settings.user_claim)
            .and_then(Value::as_str)
            .or_else(|| claims.get("sub").and_then(Value::as_str))
            .filter(|user| !user.is_empty())
            .ok_or(TokenRefused::NoUser)?;
        if !rat_domain::is_personal_name(user) {
            return Err(TokenRefused::ReservedUser(user.to_owned()));
        }
        let roles = roles_at(claims, &self.settings.roles_claim);
        let admin = roles.contains(&self.settings.admin_role);
        Ok(Caller {
            user: user.to_owned(),
            roles,
            admin,
            via: Via::Oidc,
            email: claims.get("email").and_then(Value::as_str).map(str::to_owned),
            display_name: claims.get("name").and_then(Value::as_str).map(str::to_owned),
        })
    }
}

/// `exp` and `nbf` against `now`, with `leeway`.
fn check_times(
    claims: &serde_json::Map<String, Value>,
    now: OffsetDateTime,
    leeway: Duration,
) -> Result<(), TokenRefused> {
    let now = now.unix_timestamp();
    let leeway = i64::try_from(leeway.as_secs()).unwrap_or(i64::MAX);
    let expired = claims
        .get("exp")
        .and_then(Value::as_i64)
        .is_none_or(|exp| exp.saturating_add(leeway) <= now);
    if expired {
        return Err(TokenRefused::Invalid(
            jsonwebtoken::errors::ErrorKind::ExpiredSignature.into(),
        ));
    }
    if claims
        .get("nbf")
        .and_then(Value::as_i64)
        .is_some_and(|nbf| nbf.saturating_sub(leeway) > now)
    {
        return Err(TokenRefused::Invalid(
            jsonwebtoken::errors::ErrorKind::ImmatureSignature.into(),
        ));
    }
    Ok(())
}

/// The strings at a dotted `path` of the claims: an array of strings (other
/// entries ignored) or one string; nothing when the path is missing.
fn roles_at(claims: &serde_json::Map<String, Value>, path: &str) -> Vec<String> {
    let mut parts = path.split('.');
    let Some(first) = parts.next() else {
        return Vec::new();
    };
    let mut value = claims.get(first);
    for part in parts {
        value = value.and_then(|v| v.get(part));
    }
    match value {
        Some(Value::Array(items)) => items.iter().filter_map(Value::as_str).map(str::to_owned).collect(),
        Some(Value::String(role)) => vec![role.clone()],
        _ => Vec::new(),
    }
}

async fn fetch_json<T: serde::de::DeserializeOwned>(
    http: &reqwest::Client,
    what: &'static str,
    url: &str,
) -> Result<T, OidcError> {
    let failed = |source| OidcError::Fetch {
        what,
        url: url.to_owned(),
        source,
    };
    http.get(url)
        .send()
        .await
        .and_then(reqwest::Response::error_for_status)
        .map_err(failed)?
        .json()
        .await
        .map_err(failed)
}

/// The signing keys of the JWKS at `url` that can verify an accepted
/// algorithm; others (encryption keys, HMAC secrets, unknown curves) are skipped.
async fn fetch_keys(http: &reqwest::Client, url: &str) -> Result<Vec<Key>, OidcError> {
    let set: JwkSet = fetch_json(http, "JWKS", url).await?;
    Ok(set
        .keys
        .iter()
        .filter(|jwk| {
            !matches!(
                jwk.common.public_key_use,
                Some(jsonwebtoken::jwk::PublicKeyUse::Encryption)
            )
        })
        .filter_map(|jwk| {
            let algorithms = match &jwk.algorithm {
                AlgorithmParameters::RSA(_) => RSA_ALGORITHMS.to_vec(),
                AlgorithmParameters::EllipticCurve(ec) => match ec.curve {
                    EllipticCurve::P256 => vec![Algorithm::ES256],
                    EllipticCurve::P384 => vec![Algorithm::ES384],
                    _ => return None,
                },
                AlgorithmParameters::OctetKeyPair(okp) if okp.curve == EllipticCurve::Ed25519 => {
                    vec![Algorithm::EdDSA]
                }
                // HMAC secrets and anything else are never verification keys here.
                _ => return None,
            };
            let key = DecodingKey::from_jwk(jwk).ok()?;
            Some(Key {
                id: jwk.common.key_id.clone(),
                algorithms,
                key,
            })
        })
        .collect())
}

/// Turns a request's credential into a [`Caller`]: the operator's key, an
/// OIDC token when an issuer is configured, or Community mode when neither is.
#[derive(Debug, Default)]
pub struct Authenticator {
    api_key: Option<SecretString>,
    oidc: Option<Arc<OidcVerifier>>,
    /// Where personal access tokens are kept (multi-user mode only).
    tokens: Option<Pool>,
}

impl Authenticator {
    /// An authenticator with the operator's key (if any) and an issuer's
    /// verifier (if any); with neither, every caller is the Community user.
    pub fn new(api_key: Option<SecretString>, oidc: Option<Arc<OidcVerifier>>) -> Self {
        Authenticator {
            api_key,
            oidc,
            tokens: None,
        }
    }

    /// Accepts personal access tokens kept in `pool`'s database (in
    /// multi-user mode; without an issuer there are no users to hold them).
    pub fn with_personal_tokens(mut self, pool: Pool) -> Self {
        if self.oidc.is_some() {
            self.tokens = Some(pool);
        }
        self
    }

    /// Whether users are told apart (an issuer is configured).
    pub fn multi_user(&self) -> bool {
        self.oidc.is_some()
    }

    /// Whether any credential is required.
    pub fn requires_credentials(&self) -> bool {
        self.api_key.is_some() || self.oidc.is_some()
    }

    /// The OIDC verifier, when an issuer is configured.
    pub fn oidc(&self) -> Option<&OidcVerifier> {
        self.oidc.as_deref()
    }

    /// Who presents `credential` (a bearer token; `None` when the request has
    /// none) as of `now`.
    pub async fn authenticate(&self, credential: Option<&str>, now: OffsetDateTime) -> Result<Caller, Unauthenticated> {
        if !self.requires_credentials() {
            return Ok(Caller::community());
        }
        let presented = credential
            .map(str::trim)
            .filter(|c| !c.is_empty())
            .ok_or(Unauthenticated::Missing)?;
        if let Some(key) = &self.api_key {
            let key = key.expose_secret().as_bytes();
            if !key.is_empty() && bool::from(presented.as_bytes().ct_eq(key)) {
                return Ok(Caller::operator(API_KEY_USER, Via::ApiKey));
            }
        }
        if presented.starts_with(TOKEN_PREFIX) {
            return self.personal_token(presented, now).await;
        }
        match &self.oidc {
            // Only something shaped like a JWT is worth a verification.
            Some(oidc) if presented.split('.').count() == 3 => oidc.verify(presented, now).await,
            _ => Err(Unauthenticated::Missing),
        }
    }

    /// The caller a personal access token authenticates, if it is known,
    /// not revoked and not expired. The stored hash is compared in constant
    /// time; a use is recorded (at most once a minute).
    async fn personal_token(&self, presented: &str, now: OffsetDateTime) -> Result<Caller, Unauthenticated> {
        let (Some(pool), Some(oidc)) = (&self.tokens, &self.oidc) else {
            return Err(Unauthenticated::Missing);
        };
        let hash: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
        let unavailable = |e: ServiceError| Unauthenticated::StoreUnavailable(e);
        let client = pool.get().await.map_err(|e| unavailable(e.into()))?;
        let found = tokens::find_by_hash(&client, &hash)
            .await
            .map_err(|e| unavailable(e.into()))?;
        let Some((token, stored)) = found else {
            return Err(Unauthenticated::Missing);
        };
        if !bool::from(stored.as_slice().ct_eq(hash.as_slice())) || !token.is_usable(now) {
            return Err(Unauthenticated::Missing);
        }
        if let Err(e) = tokens::touch(&client, token.id, now).await {
            // The request is still theirs; only the "last used" time lags.
            tracing::warn!(error = %e, token = %token.id, "could not record a personal token's use");
        }
        let admin = token.roles.contains(&oidc.settings().admin_role);
        Ok(Caller {
            user: token.user,
            roles: token.roles,
            admin,
            via: Via::PersonalToken,
            email: None,
            display_name: None,
        })
    }

    fn token_store(&self) -> Result<&Pool, ServiceError> {
        self.tokens
            .as_ref()
            .ok_or_else(|| ServiceError::precondition("personal access tokens need multi-user mode (RAT_OIDC_ISSUER)"))
    }

    /// Makes a personal access token for `caller`, a user signed in with the
    /// issuer, named `name`, expiring after `expires_in_days` (never, when
    /// `None`). Returns what is stored and the token, which is shown once.
    pub async fn create_token(
        &self,
        caller: &Caller,
        name: &str,
        expires_in_days: Option<i64>,
        now: OffsetDateTime,
    ) -> Result<(PersonalToken, String), ServiceError> {
        let pool = self.token_store()?;
        if caller.via != Via::Oidc {
            return Err(ServiceError::Forbidden {
                message: "only a user signed in with the identity provider may create personal access tokens"
                    .to_owned(),
            });
        }
        let name = name.trim();
        if name.is_empty() || name.chars().count() > MAX_TOKEN_NAME_CHARS {
            return Err(ServiceError::invalid(format!(
                "name must be 1 to {MAX_TOKEN_NAME_CHARS} characters"
            )));
        }
        let expires_at = match expires_in_days {
            None => None,
            Some(days) if (1..=MAX_TOKEN_DAYS).contains(&days) => Some(now + time::Duration::days(days)),
            Some(days) => {
                return Err(DomainError::OutOfRange {
                    field: "expires_in_days",
                    value: days,
                    min: 1,
                    max: MAX_TOKEN_DAYS,
                }
                .into());
            }
        };
        let mut secret = [0u8; 32];
        rand::fill(&mut secret);
        let token = format!("{TOKEN_PREFIX}{}", URL_SAFE_NO_PAD.encode(secret));
        let hash: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        let client = pool.get().await?;
        let new = tokens::NewToken {
            user: &caller.user,
            name,
            hash: &hash,
            roles: &caller.roles,
            expires_at,
        };
        let stored = tokens::insert(&client, &new, now).await?;
        Ok((stored, token))
    }

    /// `caller`'s personal access tokens, newest first.
    pub async fn list_tokens(&self, caller: &Caller, page: PageRequest) -> Result<Page<PersonalToken>, ServiceError> {
        let client = self.token_store()?.get().await?;
        Ok(tokens::list_for_user(&client, &caller.user, page).await?)
    }

    /// Revokes `caller`'s token `id`; `NotFound` when they have no such token.
    pub async fn revoke_token(
        &self,
        caller: &Caller,
        id: Uuid,
        now: OffsetDateTime,
    ) -> Result<PersonalToken, ServiceError> {
        let client = self.token_store()?.get().await?;
        Ok(tokens::revoke(&client, &caller.user, id, now).await?)
    }
}

/// How every personal access token begins (so it is told from a JWT or the
/// key at a glance, and secret scanners can find leaked ones).
pub const TOKEN_PREFIX: &str = "ratpat_";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_are_read_at_a_dotted_path() {
        let claims: serde_json::Map<String, Value> = serde_json::from_value(serde_json::json!({
            "groups": ["a", 3, "b"],
            "realm_access": {"roles": ["rat-admin"]},
            "single": "solo",
        }))
        .unwrap();
        assert_eq!(roles_at(&claims, "groups"), ["a", "b"]);
        assert_eq!(roles_at(&claims, "realm_access.roles"), ["rat-admin"]);
        assert_eq!(roles_at(&claims, "single"), ["solo"]);
        assert!(roles_at(&claims, "realm_access.missing").is_empty());
        assert!(roles_at(&claims, "nothing").is_empty());
    }

    #[tokio::test]
    async fn community_mode_needs_no_credential_and_a_key_needs_the_key() {
        let now = OffsetDateTime::now_utc();
        let community = Authenticator::default();
        assert_eq!(community.authenticate(None, now).await.unwrap(), Caller::community());
        let keyed = Authenticator::new(Some(SecretString::from("s3cret")), None);
        assert!(matches!(
            keyed.authenticate(None, now).await,
            Err(Unauthenticated::Missing)
        ));
        assert!(matches!(
            keyed.authenticate(Some("wrong"), now).await,
            Err(Unauthenticated::Missing)
        ));
        assert!(matches!(
            keyed.authenticate(Some(""), now).await,
            Err(Unauthenticated::Missing)
        ));
        let operator = keyed.authenticate(Some("s3cret"), now).await.unwrap();
        assert_eq!(
            (operator.user.as_str(), operator.admin, operator.via),
            (API_KEY_USER, true, Via::ApiKey)
        );
    }
}
