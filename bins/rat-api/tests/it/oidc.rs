//! Signing in with an OpenID Connect issuer's access tokens: a small issuer
//! (discovery document and JWKS over real HTTP) whose keys the test mints
//! tokens with, ES256 keys made by ring, and the api verifying them.
//! The issuer and the helpers to call as a user are shared with the other
//! modules' multi-user tests (`projects`).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::routing::get;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use rat_service::identity::{OidcSettings, OidcVerifier};
use reqwest::Method;
use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};
use serde_json::{Value, json};

use crate::common::{Answer, TestApp};

const AUDIENCE: &str = "rat-api";

/// An ES256 signing key and its public JWK.
pub(crate) struct SigningKey {
    kid: String,
    pkcs8: Vec<u8>,
    jwk: Value,
}

impl SigningKey {
    pub(crate) fn new(kid: &str) -> SigningKey {
        let rng = ring::rand::SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng).unwrap();
        // An uncompressed point: 0x04, then x and y, 32 bytes each.
        let point = pair.public_key().as_ref();
        let jwk = json!({
            "kty": "EC", "crv": "P-256", "use": "sig", "alg": "ES256", "kid": kid,
            "x": URL_SAFE_NO_PAD.encode(&point[1..33]),
            "y": URL_SAFE_NO_PAD.encode(&point[33..65]),
        });
        SigningKey {
            kid: kid.to_owned(),
            pkcs8: pkcs8.as_ref().to_vec(),
            jwk,
        }
    }

    /// A token with these claims, signed with this key under `kid`.
    fn sign(&self, kid: &str, claims: &Value) -> String {
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some(kid.to_owned());
        jsonwebtoken::encode(&header, claims, &EncodingKey::from_ec_der(&self.pkcs8)).unwrap()
    }

    pub(crate) fn mint(&self, claims: &Value) -> String {
        self.sign(&self.kid, claims)
    }
}

/// The issuer: its base URL, and the keys its JWKS publishes (changeable).
pub(crate) struct Issuer {
    url: String,
    published: Arc<Mutex<Vec<Value>>>,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for Issuer {
    fn drop(&mut self) {
        self.server.abort();
    }
}

#[derive(Clone)]
struct IssuerState {
    url: String,
    published: Arc<Mutex<Vec<Value>>>,
}

async fn discovery(State(state): State<IssuerState>) -> Json<Value> {
    Json(json!({"issuer": state.url, "jwks_uri": format!("{}/jwks", state.url)}))
}

async fn jwks(State(state): State<IssuerState>) -> Json<Value> {
    Json(json!({"keys": state.published.lock().unwrap().clone()}))
}

impl Issuer {
    pub(crate) async fn start(keys: &[&SigningKey]) -> Issuer {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let published = Arc::new(Mutex::new(keys.iter().map(|k| k.jwk.clone()).collect()));
        let state = IssuerState {
            url: url.clone(),
            published: published.clone(),
        };
        let app = Router::new()
            .route("/.well-known/openid-configuration", get(discovery))
            .route("/jwks", get(jwks))
            .with_state(state);
        let server = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Issuer { url, published, server }
    }

    fn publish(&self, keys: &[&SigningKey]) {
        *self.published.lock().unwrap() = keys.iter().map(|k| k.jwk.clone()).collect();
    }

    /// Claims for `user` with `roles`, valid for an hour from now.
    pub(crate) fn claims(&self, user: &str, roles: &[&str]) -> Value {
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        json!({
            "iss": self.url, "aud": AUDIENCE, "sub": format!("id-{user}"),
            "preferred_username": user, "email": format!("{user}@example.com"), "name": format!("User {user}"),
            "groups": roles, "iat": now, "nbf": now - 5, "exp": now + 3600,
        })
    }

    async fn verifier(&self, refresh: Duration) -> OidcVerifier {
        let mut settings = OidcSettings::new(&self.url, AUDIENCE);
        settings.leeway = Duration::from_secs(5);
        settings.jwks_refresh_interval = refresh;
        OidcVerifier::discover(settings).await.unwrap()
    }
}

pub(crate) async fn app_with(issuer: &Issuer, refresh: Duration) -> TestApp {
    let verifier = Arc::new(issuer.verifier(refresh).await);
    TestApp::builder()
        .api_key("operator-key")
        .settings(move |settings| settings.oidc = Some(verifier))
        .start()
        .await
}

/// `method path` with `token` as the bearer, and `body` as JSON.
pub(crate) async fn call(app: &TestApp, method: Method, path: &str, token: &str, body: Option<Value>) -> Answer {
    let mut request = app
        .http
        .request(method, format!("{}{path}", app.base))
        .bearer_auth(token);
    if let Some(body) = body {
        request = request.json(&body);
    }
    TestApp::answer(request.send().await.unwrap()).await
}

/// `GET /api/v1/me` with `token` as the bearer.
pub(crate) async fn me(app: &TestApp, token: &str) -> Answer {
    call(app, Method::GET, "/api/v1/me", token, None).await
}

/// `header.payload.signature` with the header replaced (the payload and
/// signature kept), for tokens a real signer would never make.
fn with_header(token: &str, header: &Value) -> String {
    let (_, rest) = token.split_once('.').unwrap();
    format!("{}.{rest}", URL_SAFE_NO_PAD.encode(header.to_string()))
}

#[tokio::test]
async fn a_signed_in_user_is_named_with_their_roles_and_audited_by_name() {
    let key = SigningKey::new("k1");
    let issuer = Issuer::start(&[&key]).await;
    let app = app_with(&issuer, Duration::from_secs(30)).await;

    let alice = key.mint(&issuer.claims("alice", &["analysts"]));
    let answer = me(&app, &alice).await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    assert_eq!(
        answer.json,
        json!({"user_id": "alice", "email": "alice@example.com", "display_name": "User alice",
               "roles": ["analysts"], "is_admin": false})
    );
    let admin = key.mint(&issuer.claims("root", &["rat-admin"]));
    assert_eq!(me(&app, &admin).await.json["is_admin"], true);
    // The operator's key still works, as an admin.
    let operator = me(&app, "operator-key").await;
    assert_eq!(
        (operator.json["user_id"].clone(), operator.json["is_admin"].clone()),
        (json!("api-key"), json!(true))
    );
    // Multi-user mode is announced.
    assert_eq!(
        call(&app, Method::GET, "/api/v1/features", &alice, None).await.json["multi_user"],
        true
    );

    let created = call(
        &app,
        Method::POST,
        "/api/v1/namespaces",
        &alice,
        Some(json!({"name": "sales"})),
    )
    .await;
    assert_eq!(created.status, 201, "{}", created.text);
    let rows = app.audit_rows().await;
    let row = rows.iter().find(|r| r.action == "namespace.create").expect("audited");
    assert_eq!(row.actor, "alice");
}

#[tokio::test]
async fn forged_misaddressed_and_untimely_tokens_are_refused() {
    let key = SigningKey::new("k1");
    let stranger = SigningKey::new("k1");
    let issuer = Issuer::start(&[&key]).await;
    let app = app_with(&issuer, Duration::from_secs(30)).await;
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let good = issuer.claims("alice", &[]);
    assert_eq!(me(&app, &key.mint(&good)).await.status, 200);

    let with = |change: Value| {
        let mut claims = good.clone();
        for (k, v) in change.as_object().unwrap() {
            claims[k] = v.clone();
        }
        claims
    };
    let public_key_as_secret = {
        // HS256 "signed" with the public key: the classic algorithm confusion.
        let secret = serde_json::to_vec(&key.jwk).unwrap();
        let mut header = Header::new(Algorithm::HS256);
        header.kid = Some("k1".to_owned());
        jsonwebtoken::encode(&header, &good, &EncodingKey::from_secret(&secret)).unwrap()
    };
    let cases = [
        ("signed by another key under the same kid", stranger.mint(&good)),
        ("alg none", {
            let unsigned = with_header(&key.mint(&good), &json!({"alg": "none", "typ": "JWT"}));
            format!("{}.", unsigned.rsplit_once('.').unwrap().0)
        }),
        ("HS256 with the public key", public_key_as_secret),
        (
            "another issuer",
            key.mint(&with(json!({"iss": "https://evil.example"}))),
        ),
        ("another audience", key.mint(&with(json!({"aud": "someone-else"})))),
        ("expired", key.mint(&with(json!({"exp": now - 600})))),
        ("not yet valid", key.mint(&with(json!({"nbf": now + 600})))),
        ("no expiry", {
            let mut claims = good.clone();
            claims.as_object_mut().unwrap().remove("exp");
            key.mint(&claims)
        }),
        ("garbage", "a.b.c".to_owned()),
    ];
    for (what, token) in cases {
        let answer = me(&app, &token).await;
        assert_eq!(answer.status, 401, "{what}: {}", answer.text);
        assert_eq!(answer.json["error"]["code"], "UNAUTHENTICATED", "{what}");
    }
    // No credential at all: refused in multi-user mode.
    let bare = TestApp::answer(app.http.get(format!("{}/api/v1/me", app.base)).send().await.unwrap()).await;
    assert_eq!(bare.status, 401);
}

#[tokio::test]
async fn a_rotated_key_is_fetched_and_a_removed_one_stops_verifying() {
    let old = SigningKey::new("old");
    let new = SigningKey::new("new");
    let issuer = Issuer::start(&[&old]).await;
    let app = app_with(&issuer, Duration::ZERO).await;
    let by_old = old.mint(&issuer.claims("alice", &[]));
    assert_eq!(me(&app, &by_old).await.status, 200);

    // The issuer rotates: only the new key is published now.
    issuer.publish(&[&new]);
    let by_new = new.mint(&issuer.claims("bob", &[]));
    let answer = me(&app, &by_new).await;
    assert_eq!(
        answer.status, 200,
        "an unknown kid makes the api fetch the JWKS again: {}",
        answer.text
    );
    assert_eq!(answer.json["user_id"], "bob");
    // The old key is gone from the JWKS: its tokens stop verifying, the
    // cached verification included.
    assert_eq!(me(&app, &by_old).await.status, 401);
}

#[tokio::test]
async fn unknown_key_ids_fetch_the_jwks_at_most_once_per_interval() {
    let first = SigningKey::new("first");
    let later = SigningKey::new("later");
    let issuer = Issuer::start(&[&first]).await;
    // A long interval: the discovery's fetch counts as the last one.
    let app = app_with(&issuer, Duration::from_secs(3600)).await;
    issuer.publish(&[&first, &later]);
    let by_later = later.mint(&issuer.claims("carol", &[]));
    assert_eq!(
        me(&app, &by_later).await.status,
        401,
        "within the interval an unknown kid does not cause a fetch"
    );
}

#[tokio::test]
async fn discovery_refuses_an_issuer_that_names_another() {
    let key = SigningKey::new("k1");
    let issuer = Issuer::start(&[&key]).await;
    let settings = OidcSettings::new(format!("{}/realms/other", issuer.url), AUDIENCE);
    let err = OidcVerifier::discover(settings).await.unwrap_err();
    assert!(err.to_string().contains("discovery document"), "{err}");
}

#[tokio::test]
async fn personal_tokens_act_as_their_user_until_revoked_or_expired() {
    let key = SigningKey::new("k1");
    let issuer = Issuer::start(&[&key]).await;
    let app = app_with(&issuer, Duration::from_secs(30)).await;
    let alice = key.mint(&issuer.claims("alice", &["analysts"]));

    let created = call(
        &app,
        Method::POST,
        "/api/v1/me/tokens",
        &alice,
        Some(json!({"name": "ci", "expires_in_days": 30})),
    )
    .await;
    assert_eq!(created.status, 201, "{}", created.text);
    let token = created.json["token"].as_str().unwrap().to_owned();
    assert!(token.starts_with("ratpat_"), "{token}");
    assert_eq!(created.json["roles"], json!(["analysts"]));
    let id = created.json["id"].as_str().unwrap().to_owned();

    // The token is alice, with the roles she had when she made it.
    let answer = me(&app, &token).await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    assert_eq!(
        (answer.json["user_id"].clone(), answer.json["roles"].clone()),
        (json!("alice"), json!(["analysts"]))
    );
    // Only its hash is stored; listing never shows it.
    let listed = call(&app, Method::GET, "/api/v1/me/tokens", &alice, None).await;
    assert_eq!(listed.json["total"], 1);
    assert!(!listed.text.contains(&token));
    assert!(
        listed.json["tokens"][0]["last_used_at"].is_string(),
        "the use was recorded: {}",
        listed.text
    );
    let client = app.db.client().await;
    let stored: Vec<u8> = client
        .query_one("SELECT token_hash FROM personal_access_tokens", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(stored.len(), 32);
    assert!(!stored.windows(8).any(|w| token.as_bytes().windows(8).any(|t| t == w)));

    // Someone else cannot see or revoke it.
    let bob = key.mint(&issuer.claims("bob", &[]));
    assert_eq!(
        call(&app, Method::GET, "/api/v1/me/tokens", &bob, None).await.json["total"],
        0
    );
    let theirs = call(&app, Method::DELETE, &format!("/api/v1/me/tokens/{id}"), &bob, None).await;
    assert_eq!(theirs.status, 404);
    assert_eq!(me(&app, &token).await.status, 200);
    // A token cannot make another token, nor can the operator's key.
    let by_token = call(
        &app,
        Method::POST,
        "/api/v1/me/tokens",
        &token,
        Some(json!({"name": "x"})),
    )
    .await;
    assert_eq!(by_token.status, 403, "{}", by_token.text);
    let by_key = call(
        &app,
        Method::POST,
        "/api/v1/me/tokens",
        "operator-key",
        Some(json!({"name": "x"})),
    )
    .await;
    assert_eq!(by_key.status, 403);
    for bad in [
        json!({"name": ""}),
        json!({"name": "x", "expires_in_days": 0}),
        json!({"name": "x".repeat(101)}),
    ] {
        let answer = call(&app, Method::POST, "/api/v1/me/tokens", &alice, Some(bad.clone())).await;
        assert_eq!(answer.status, 400, "{bad}: {}", answer.text);
    }

    // Revoked: refused at once.
    let revoked = call(&app, Method::DELETE, &format!("/api/v1/me/tokens/{id}"), &alice, None).await;
    assert_eq!(revoked.status, 204, "{}", revoked.text);
    assert_eq!(me(&app, &token).await.status, 401);
    // Expired: refused.
    let short = call(
        &app,
        Method::POST,
        "/api/v1/me/tokens",
        &alice,
        Some(json!({"name": "short", "expires_in_days": 1})),
    )
    .await;
    let short_token = short.json["token"].as_str().unwrap().to_owned();
    client
        .execute(
            "UPDATE personal_access_tokens SET created_at = now() - interval '3 days', \
             expires_at = now() - interval '1 second' WHERE name = 'short'",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(me(&app, &short_token).await.status, 401);
    // A made-up token of the right shape: refused.
    assert_eq!(
        me(&app, "ratpat_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")
            .await
            .status,
        401
    );
}

#[tokio::test]
async fn personal_tokens_need_multi_user_mode() {
    let app = TestApp::builder().api_key("operator-key").start().await;
    let answer = call(
        &app,
        Method::POST,
        "/api/v1/me/tokens",
        "operator-key",
        Some(json!({"name": "x"})),
    )
    .await;
    assert_eq!(answer.status, 409, "{}", answer.text);
    let me = me(&app, "operator-key").await;
    assert_eq!(me.json["user_id"], "api-key");
    assert_eq!(
        call(&app, Method::GET, "/api/v1/features", "operator-key", None)
            .await
            .json["multi_user"],
        false
    );
}

#[tokio::test]
async fn only_the_owner_or_an_admin_shares_and_a_stranger_sees_nothing() {
    let key = SigningKey::new("k1");
    let issuer = Issuer::start(&[&key]).await;
    let app = app_with(&issuer, Duration::from_secs(30)).await;
    let alice = key.mint(&issuer.claims("alice", &[]));
    let bob = key.mint(&issuer.claims("bob", &["analysts"]));
    let_alice_create_in_default(&app).await;

    let created = call(
        &app,
        Method::POST,
        "/api/v1/pipelines",
        &alice,
        Some(json!({"namespace": "default", "layer": "silver", "name": "orders"})),
    )
    .await;
    assert_eq!(created.status, 201, "{}", created.text);
    let shown = call(
        &app,
        Method::GET,
        "/api/v1/pipelines/default/silver/orders",
        &alice,
        None,
    )
    .await;
    let pipeline_id = shown.json["id"].as_str().unwrap().to_owned();
    let shares_of = format!("/api/v1/sharing?object_type=pipeline&object_id={pipeline_id}");

    // Bob may not read alice's pipeline: its shares are a 404 to him, as if
    // it did not exist, and he cannot share it.
    assert_eq!(call(&app, Method::GET, &shares_of, &bob, None).await.status, 404);
    let grant = |to: &str, level: &str| json!({"object_type": "pipeline", "object_id": pipeline_id, "shared_with": to, "access_level": level});
    let refused = call(&app, Method::POST, "/api/v1/sharing", &bob, Some(grant("bob", "write"))).await;
    assert_eq!(refused.status, 404, "{}", refused.text);

    // Alice shares it: read with bob, write with a role.
    let to_bob = call(
        &app,
        Method::POST,
        "/api/v1/sharing",
        &alice,
        Some(grant("bob", "read")),
    )
    .await;
    assert_eq!(to_bob.status, 201, "{}", to_bob.text);
    assert_eq!(
        (
            to_bob.json["shared_with"].clone(),
            to_bob.json["access_level"].clone(),
            to_bob.json["granted_by"].clone()
        ),
        (json!("bob"), json!("read"), json!("alice"))
    );
    let share_id = to_bob.json["id"].as_str().unwrap().to_owned();
    let to_role = call(
        &app,
        Method::POST,
        "/api/v1/sharing",
        &alice,
        Some(grant("role:analysts", "write")),
    )
    .await;
    assert_eq!(to_role.status, 201, "{}", to_role.text);

    // Now bob may read (and, through his role, write), but not share: 403.
    let listed_by_bob = call(&app, Method::GET, &shares_of, &bob, None).await;
    assert_eq!(listed_by_bob.status, 403, "{}", listed_by_bob.text);
    let bob_shares = call(
        &app,
        Method::POST,
        "/api/v1/sharing",
        &bob,
        Some(grant("carol", "read")),
    )
    .await;
    assert_eq!(bob_shares.status, 403, "{}", bob_shares.text);
    let bob_removes = call(&app, Method::DELETE, &format!("/api/v1/sharing/{share_id}"), &bob, None).await;
    assert_eq!(bob_removes.status, 403, "{}", bob_removes.text);

    // The owner and the operator (an admin) list both; granting again replaces.
    let listed = call(&app, Method::GET, &shares_of, &alice, None).await;
    assert_eq!(listed.status, 200, "{}", listed.text);
    assert_eq!(listed.json["total"], 2);
    assert_eq!(
        call(&app, Method::GET, &shares_of, "operator-key", None).await.json["total"],
        2
    );
    let again = call(
        &app,
        Method::POST,
        "/api/v1/sharing",
        &alice,
        Some(grant("bob", "write")),
    )
    .await;
    assert_eq!(
        (again.json["id"].clone(), again.json["access_level"].clone()),
        (json!(share_id), json!("write"))
    );

    // Removing: the owner may; then the share is gone.
    let removed = call(
        &app,
        Method::DELETE,
        &format!("/api/v1/sharing/{share_id}"),
        &alice,
        None,
    )
    .await;
    assert_eq!(removed.status, 204, "{}", removed.text);
    assert_eq!(call(&app, Method::GET, &shares_of, &alice, None).await.json["total"], 1);
    let gone = call(
        &app,
        Method::DELETE,
        &format!("/api/v1/sharing/{share_id}"),
        &alice,
        None,
    )
    .await;
    assert_eq!(gone.status, 404);

    // Bad requests say what is wrong.
    for (body, what) in [
        (
            json!({"object_type": "run", "object_id": pipeline_id, "shared_with": "x", "access_level": "read"}),
            "object_type",
        ),
        (
            json!({"object_type": "pipeline", "object_id": "nope", "shared_with": "x", "access_level": "read"}),
            "object_id",
        ),
        (
            json!({"object_type": "pipeline", "object_id": pipeline_id, "shared_with": " ", "access_level": "read"}),
            "shared_with",
        ),
        (
            json!({"object_type": "pipeline", "object_id": pipeline_id, "shared_with": "x", "access_level": "admin"}),
            "access_level",
        ),
    ] {
        let answer = call(&app, Method::POST, "/api/v1/sharing", &alice, Some(body)).await;
        assert_eq!(answer.status, 400, "{what}: {}", answer.text);
        assert!(answer.text.contains(what), "{what}: {}", answer.text);
    }
    let unknown = call(
        &app,
        Method::GET,
        &format!(
            "/api/v1/sharing?object_type=pipeline&object_id={}",
            uuid::Uuid::new_v4()
        ),
        &alice,
        None,
    )
    .await;
    assert_eq!(unknown.status, 404);

    // Every change was audited under its author's name.
    let rows = app.audit_rows().await;
    assert!(rows.iter().any(|r| r.action == "share.create" && r.actor == "alice"));
    assert!(rows.iter().any(|r| r.action == "share.delete" && r.actor == "alice"));
}

/// Creating in a namespace needs write on it: the operator shares the seeded
/// `default` namespace (unowned) for writing with alice.
pub(crate) async fn let_alice_create_in_default(app: &TestApp) {
    let client = app.db.client().await;
    let id: uuid::Uuid = client
        .query_one("SELECT id FROM namespaces WHERE name = 'default'", &[])
        .await
        .unwrap()
        .get(0);
    let shared = call(
        app,
        Method::POST,
        "/api/v1/sharing",
        "operator-key",
        Some(json!({"object_type": "namespace", "object_id": id, "shared_with": "alice", "access_level": "write"})),
    )
    .await;
    assert_eq!(shared.status, 201, "{}", shared.text);
}

#[tokio::test]
async fn pipelines_answer_each_user_by_what_they_own_and_were_given() {
    let key = SigningKey::new("k1");
    let issuer = Issuer::start(&[&key]).await;
    let app = app_with(&issuer, Duration::from_secs(30)).await;
    let alice = key.mint(&issuer.claims("alice", &[]));
    let bob = key.mint(&issuer.claims("bob", &["analysts"]));
    let carol = key.mint(&issuer.claims("carol", &[]));
    let pipeline = "/api/v1/pipelines/default/silver/orders";
    let new = json!({"namespace": "default", "layer": "silver", "name": "orders"});

    // Without write on the namespace nobody but an admin creates in it.
    let refused = call(&app, Method::POST, "/api/v1/pipelines", &alice, Some(new.clone())).await;
    assert_eq!(refused.status, 403, "{}", refused.text);
    let_alice_create_in_default(&app).await;
    let created = call(&app, Method::POST, "/api/v1/pipelines", &alice, Some(new)).await;
    assert_eq!(created.status, 201, "{}", created.text);
    let id = call(&app, Method::GET, pipeline, &alice, None).await.json["id"].clone();

    let list_total = |token: String| {
        let app = &app;
        async move { call(app, Method::GET, "/api/v1/pipelines", &token, None).await.json["total"].clone() }
    };
    // Bob sees nothing of it: 404 like a missing pipeline, and not listed.
    assert_eq!(call(&app, Method::GET, pipeline, &bob, None).await.status, 404);
    assert_eq!(list_total(bob.clone()).await, 0);
    let change = json!({"description": "changed"});
    assert_eq!(
        call(&app, Method::PUT, pipeline, &bob, Some(change.clone()))
            .await
            .status,
        404
    );
    assert_eq!(call(&app, Method::DELETE, pipeline, &bob, None).await.status, 404);
    let versions = format!("{pipeline}/versions");
    let publish = format!("{pipeline}/publish");
    assert_eq!(call(&app, Method::GET, &versions, &bob, None).await.status, 404);
    let (tests, triggers) = (format!("{pipeline}/tests"), format!("{pipeline}/triggers"));
    assert_eq!(call(&app, Method::GET, &tests, &bob, None).await.status, 404);
    assert_eq!(call(&app, Method::GET, &triggers, &bob, None).await.status, 404);
    assert_eq!(
        call(&app, Method::POST, &publish, &bob, Some(json!({}))).await.status,
        404
    );
    assert_eq!(list_total(alice.clone()).await, 1);
    assert_eq!(list_total("operator-key".to_owned()).await, 1);

    // A read share: bob reads and lists it, but may not change it (403).
    let grant = |to: &str, level: &str| json!({"object_type": "pipeline", "object_id": id, "shared_with": to, "access_level": level});
    assert_eq!(
        call(
            &app,
            Method::POST,
            "/api/v1/sharing",
            &alice,
            Some(grant("bob", "read"))
        )
        .await
        .status,
        201
    );
    assert_eq!(call(&app, Method::GET, pipeline, &bob, None).await.status, 200);
    assert_eq!(list_total(bob.clone()).await, 1);
    let forbidden = call(&app, Method::PUT, pipeline, &bob, Some(change.clone())).await;
    assert_eq!(forbidden.status, 403, "{}", forbidden.text);
    assert_eq!(forbidden.json["error"]["code"], "FORBIDDEN");
    assert_eq!(call(&app, Method::GET, &versions, &bob, None).await.status, 200);
    assert_eq!(
        call(&app, Method::POST, &publish, &bob, Some(json!({}))).await.status,
        403
    );
    assert_eq!(call(&app, Method::GET, &tests, &bob, None).await.status, 200);
    assert_eq!(call(&app, Method::GET, &triggers, &bob, None).await.status, 200);
    let new_test = json!({"name": "not_null", "sql": "SELECT 1 WHERE false"});
    let test_refused = call(&app, Method::POST, &tests, &bob, Some(new_test.clone())).await;
    assert_eq!(test_refused.status, 403, "{}", test_refused.text);
    let trigger_refused = call(&app, Method::POST, &triggers, &bob, Some(json!({"type": "webhook"}))).await;
    assert_eq!(trigger_refused.status, 403, "{}", trigger_refused.text);
    // A write share to his role: he changes it, but deleting needs ownership.
    let to_role = grant("role:analysts", "write");
    assert_eq!(
        call(&app, Method::POST, "/api/v1/sharing", &alice, Some(to_role))
            .await
            .status,
        201
    );
    let changed = call(&app, Method::PUT, pipeline, &bob, Some(change)).await;
    assert_eq!(changed.status, 200, "{}", changed.text);
    let test_created = call(&app, Method::POST, &tests, &bob, Some(new_test)).await;
    assert_eq!(test_created.status, 201, "{}", test_created.text);
    let published = call(&app, Method::POST, &publish, &bob, Some(json!({"message": "by bob"}))).await;
    assert_eq!(published.status, 200, "{}", published.text);
    let rolled = call(
        &app,
        Method::POST,
        &format!("{pipeline}/rollback"),
        &carol,
        Some(json!({"version": 1})),
    )
    .await;
    assert_eq!(rolled.status, 404, "a stranger cannot roll back: {}", rolled.text);
    assert_eq!(call(&app, Method::DELETE, pipeline, &bob, None).await.status, 403);
    // Carol, with neither, still sees nothing.
    assert_eq!(call(&app, Method::GET, pipeline, &carol, None).await.status, 404);
    assert_eq!(list_total(carol).await, 0);
    // The owner deletes it.
    assert_eq!(call(&app, Method::DELETE, pipeline, &alice, None).await.status, 204);
}

#[tokio::test]
async fn reserved_names_cannot_sign_in() {
    let key = SigningKey::new("k1");
    let issuer = Issuer::start(&[&key]).await;
    let app = app_with(&issuer, Duration::from_secs(30)).await;
    for reserved in ["community", "api-key", "webhook", "role:analysts"] {
        let token = key.mint(&issuer.claims(reserved, &[]));
        assert_eq!(me(&app, &token).await.status, 401, "{reserved}");
    }
}

#[tokio::test]
async fn personal_tokens_through_the_typed_client() {
    let key = SigningKey::new("k1");
    let issuer = Issuer::start(&[&key]).await;
    let app = app_with(&issuer, Duration::from_secs(30)).await;
    let alice = key.mint(&issuer.claims("alice", &["analysts"]));
    let as_alice = rat_client::Builder::new(&app.base).token(alice.into()).api().unwrap();

    let me = as_alice.me().await.expect("me");
    assert_eq!(
        (me.user_id.as_str(), me.roles.as_slice()),
        ("alice", &["analysts".to_owned()][..])
    );
    let created = as_alice
        .create_token(&rat_wire::me::CreateToken {
            name: "ci".to_owned(),
            expires_in_days: Some(30),
        })
        .await
        .expect("token");
    assert!(created.token.starts_with("ratpat_"), "{}", created.token);
    assert_eq!(created.stored.name, "ci");
    let as_token = rat_client::Builder::new(&app.base)
        .token(created.token.clone().into())
        .api()
        .unwrap();
    assert_eq!(as_token.me().await.expect("the token is alice").user_id, "alice");
    let listed = as_alice.list_tokens(Default::default()).await.expect("tokens");
    assert_eq!((listed.total, listed.tokens[0].id), (1, created.stored.id));
    as_alice.revoke_token(created.stored.id).await.expect("revoked");
    let refused = as_token.me().await.expect_err("revoked");
    assert_eq!(refused.status(), Some(401));
}
