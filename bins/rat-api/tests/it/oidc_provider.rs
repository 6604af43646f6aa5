//! Signing in end to end with a real OpenID provider: `oidc-provider` (npm,
//! run by `rat_testkit::oidc`) issues JWT access tokens at its real token
//! endpoint to its clients (the `client_credentials` grant), and the api,
//! configured with its issuer and the audience `rat-api`, discovers its keys
//! over HTTP and signs the tokens' users in with their roles.

use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rat_service::identity::{OidcSettings, OidcVerifier};
use rat_testkit::oidc::{OidcClient, OidcProvider};
use reqwest::Method;
use serde_json::{Value, json};

use crate::common::TestApp;
use crate::oidc::{call, me};

const AUDIENCE: &str = "rat-api";

/// An access token for `client`, asked of the provider's token endpoint.
async fn access_token(http: &reqwest::Client, provider: &OidcProvider, client: &OidcClient) -> String {
    let answer = http
        .post(provider.token_endpoint())
        .basic_auth(&client.id, Some(&client.secret))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    let status = answer.status();
    let body: Value = answer.json().await.unwrap();
    assert_eq!(status, 200, "the token endpoint answered {body}");
    assert_eq!(body["token_type"], "Bearer", "{body}");
    body["access_token"].as_str().unwrap().to_owned()
}

/// The part `index` (0: header, 1: payload, 2: signature) of a JWS, decoded.
fn part(token: &str, index: usize) -> Vec<u8> {
    URL_SAFE_NO_PAD.decode(token.split('.').nth(index).unwrap()).unwrap()
}

/// `token` with part `index` replaced by `bytes`, the other parts kept.
fn with_part(token: &str, index: usize, bytes: &[u8]) -> String {
    let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
    parts[index] = URL_SAFE_NO_PAD.encode(bytes);
    parts.join(".")
}

#[tokio::test]
async fn a_real_providers_tokens_sign_users_in_with_their_roles_and_forgeries_are_refused() {
    let alice = OidcClient::user("alice-app", "alice", &["analysts"]);
    let admin = OidcClient::user("admin-app", "root", &["rat-admin"]);
    let clients = [alice.clone(), admin.clone()];
    let provider = tokio::task::spawn_blocking(move || OidcProvider::start(AUDIENCE, &clients))
        .await
        .unwrap();
    // As rat-api's main builds it from RAT_OIDC_ISSUER and RAT_OIDC_AUDIENCE,
    // the other settings at their defaults.
    let verifier = OidcVerifier::discover(OidcSettings::new(provider.issuer(), AUDIENCE))
        .await
        .unwrap_or_else(|e| panic!("discovering {}: {e}", provider.issuer()));
    let app = TestApp::builder()
        .fs_store()
        .settings(move |settings| settings.oidc = Some(Arc::new(verifier)))
        .start()
        .await;

    let alice_token = access_token(&app.http, &provider, &alice).await;
    // What the provider issued: an ES256 JWT access token for the audience,
    // whose subject is the client and whose user name is a claim of its own.
    let header: Value = serde_json::from_slice(&part(&alice_token, 0)).unwrap();
    assert_eq!(
        (header["alg"].as_str(), header["typ"].as_str()),
        (Some("ES256"), Some("at+jwt"))
    );
    let claims: Value = serde_json::from_slice(&part(&alice_token, 1)).unwrap();
    assert_eq!(
        (claims["iss"].as_str(), claims["aud"].as_str(), claims["sub"].as_str()),
        (Some(provider.issuer()), Some(AUDIENCE), Some("alice-app"))
    );

    let answer = me(&app, &alice_token).await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    assert_eq!(
        answer.json,
        json!({"user_id": "alice", "email": "alice@example.com", "display_name": "User alice",
               "roles": ["analysts"], "is_admin": false})
    );
    let admin_token = access_token(&app.http, &provider, &admin).await;
    let answer = me(&app, &admin_token).await;
    assert_eq!(
        (answer.json["user_id"].clone(), answer.json["is_admin"].clone()),
        (json!("root"), json!(true)),
        "{}",
        answer.text
    );

    // Alice may not create in the seeded `default` namespace until the
    // admin shares it with her for writing.
    let new = json!({"namespace": "default", "layer": "silver", "name": "orders"});
    let refused = call(&app, Method::POST, "/api/v1/pipelines", &alice_token, Some(new.clone())).await;
    assert_eq!(refused.status, 403, "{}", refused.text);
    let namespace: uuid::Uuid = app
        .db
        .client()
        .await
        .query_one("SELECT id FROM namespaces WHERE name = 'default'", &[])
        .await
        .unwrap()
        .get(0);
    let shared = call(
        &app,
        Method::POST,
        "/api/v1/sharing",
        &admin_token,
        Some(json!({"object_type": "namespace", "object_id": namespace, "shared_with": "alice", "access_level": "write"})),
    )
    .await;
    assert_eq!(shared.status, 201, "{}", shared.text);
    assert_eq!(shared.json["granted_by"], "root");
    let created = call(&app, Method::POST, "/api/v1/pipelines", &alice_token, Some(new)).await;
    assert_eq!(created.status, 201, "{}", created.text);
    let rows = app.audit_rows().await;
    assert!(
        rows.iter().any(|r| r.action == "pipeline.create" && r.actor == "alice"),
        "the creation is audited under alice's name: {rows:?}"
    );

    // Forgeries of alice's token: a signature with one byte changed, and her
    // payload made an admin's under the provider's signature.
    let mut signature = part(&alice_token, 2);
    signature[10] ^= 0x01;
    let claims_as_admin = {
        let mut claims = claims.clone();
        claims["groups"] = json!(["rat-admin"]);
        serde_json::to_vec(&claims).unwrap()
    };
    for (what, forged) in [
        ("a tampered signature", with_part(&alice_token, 2, &signature)),
        ("a tampered payload", with_part(&alice_token, 1, &claims_as_admin)),
    ] {
        let answer = me(&app, &forged).await;
        assert_eq!(answer.status, 401, "{what}: {}", answer.text);
        assert_eq!(answer.json["error"]["code"], "UNAUTHENTICATED", "{what}");
    }
    // The genuine token still works after the forgeries.
    assert_eq!(me(&app, &alice_token).await.status, 200);
}
