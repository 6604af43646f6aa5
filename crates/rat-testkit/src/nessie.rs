//! A stand-in for a Nessie server: no Nessie can be installed where the
//! tests run, so this serves the two routes of Nessie's REST API v2 the
//! reaper calls, with the shapes and status codes of Nessie's published
//! OpenAPI document (`projectnessie/nessie`, `api/v2`), held in memory:
//!
//! - `GET /api/v2/trees?maxRecords=&pageToken=` →
//!   `{"references": [{"type": "BRANCH", "name", "hash"}], "hasMore", "token"}`,
//!   references in name order;
//! - `DELETE /api/v2/trees/{name}@{hash}` → 200 `{"reference": {…}}`; 409
//!   with Nessie's error body (`errorCode: "REFERENCE_CONFLICT"`) when the
//!   reference is no longer at `hash`; 404 (`REFERENCE_NOT_FOUND`) when it
//!   does not exist; 400 without `@hash`. `~` in a name stands for `/`.
//!
//! A test can also take it down ([`NessieStandIn::set_down`]: every request
//! answers 503) and move a branch right after it is listed
//! ([`NessieStandIn::move_after_listing`]), to see the conflict answer.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get};
use serde_json::{Value, json};

#[derive(Debug, Default)]
struct Trees {
    /// name → (type, hash).
    references: BTreeMap<String, (&'static str, String)>,
    down: bool,
    move_after_listing: Vec<String>,
    next_hash: u64,
    deleted: Vec<String>,
}

impl Trees {
    fn new_hash(&mut self) -> String {
        self.next_hash += 1;
        format!("{:064x}", self.next_hash)
    }
}

type Shared = Arc<Mutex<Trees>>;

/// A running stand-in, on `127.0.0.1` and a free port; stopped on drop.
#[derive(Debug)]
pub struct NessieStandIn {
    addr: std::net::SocketAddr,
    trees: Shared,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for NessieStandIn {
    fn drop(&mut self) {
        self.server.abort();
    }
}

fn error(status: StatusCode, code: &str, message: String) -> Response {
    (
        status,
        Json(json!({
            "status": status.as_u16(),
            "reason": status.canonical_reason().unwrap_or(""),
            "message": message,
            "errorCode": code,
        })),
    )
        .into_response()
}

fn unavailable() -> Response {
    error(
        StatusCode::SERVICE_UNAVAILABLE,
        "UNKNOWN",
        "the stand-in is down".to_owned(),
    )
}

async fn list(State(trees): State<Shared>, Query(query): Query<BTreeMap<String, String>>) -> Response {
    let mut trees = trees.lock().unwrap();
    if trees.down {
        return unavailable();
    }
    let max: usize = query
        .get("maxRecords")
        .and_then(|m| m.parse().ok())
        .unwrap_or(usize::MAX)
        .max(1);
    let after = query.get("pageToken").cloned();
    let mut page: Vec<Value> = Vec::new();
    let mut has_more = false;
    for (name, (kind, hash)) in &trees.references {
        if after.as_ref().is_some_and(|after| name <= after) {
            continue;
        }
        if page.len() == max {
            has_more = true;
            break;
        }
        page.push(json!({"type": kind, "name": name, "hash": hash}));
    }
    let token = has_more.then(|| page.last().map(|r| r["name"].clone())).flatten();
    for name in std::mem::take(&mut trees.move_after_listing) {
        let hash = trees.new_hash();
        if let Some(entry) = trees.references.get_mut(&name) {
            entry.1 = hash;
        }
    }
    Json(json!({"references": page, "hasMore": has_more, "token": token})).into_response()
}

async fn remove(State(trees): State<Shared>, Path(reference): Path<String>) -> Response {
    let mut trees = trees.lock().unwrap();
    if trees.down {
        return unavailable();
    }
    let Some((name, expected)) = reference.rsplit_once('@') else {
        return error(
            StatusCode::BAD_REQUEST,
            "BAD_REQUEST",
            "Expected hash must be provided".to_owned(),
        );
    };
    let name = name.replace('~', "/");
    let Some((kind, hash)) = trees.references.get(&name).cloned() else {
        return error(
            StatusCode::NOT_FOUND,
            "REFERENCE_NOT_FOUND",
            format!("Named reference '{name}' not found"),
        );
    };
    if hash != expected {
        return error(
            StatusCode::CONFLICT,
            "REFERENCE_CONFLICT",
            format!("Named-reference '{name}' is not at expected hash '{expected}', but at '{hash}'."),
        );
    }
    trees.references.remove(&name);
    trees.deleted.push(name.clone());
    Json(json!({"reference": {"type": kind, "name": name, "hash": hash}})).into_response()
}

impl NessieStandIn {
    /// Starts a stand-in with only `main`.
    pub async fn start() -> NessieStandIn {
        let trees: Shared = Arc::default();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("a free port for the Nessie stand-in");
        let addr = listener.local_addr().expect("its address");
        let router = axum::Router::new()
            .route("/api/v2/trees", get(list))
            .route("/api/v2/trees/{reference}", delete(remove))
            .with_state(trees.clone());
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        });
        let stand_in = NessieStandIn { addr, trees, server };
        stand_in.add_branch("main");
        stand_in
    }

    /// Its URL as `RAT_NESSIE_URL` gives it: `http://127.0.0.1:{port}/api/v2`.
    pub fn url(&self) -> String {
        format!("http://{}/api/v2", self.addr)
    }

    /// Adds (or moves) branch `name`; returns its hash.
    pub fn add_branch(&self, name: &str) -> String {
        self.add(name, "BRANCH")
    }

    /// Adds (or moves) tag `name`; returns its hash.
    pub fn add_tag(&self, name: &str) -> String {
        self.add(name, "TAG")
    }

    fn add(&self, name: &str, kind: &'static str) -> String {
        let mut trees = self.trees.lock().unwrap();
        let hash = trees.new_hash();
        trees.references.insert(name.to_owned(), (kind, hash.clone()));
        hash
    }

    /// The names of every reference, in order.
    pub fn references(&self) -> Vec<String> {
        self.trees.lock().unwrap().references.keys().cloned().collect()
    }

    /// The names deleted through the API, in order.
    pub fn deleted(&self) -> Vec<String> {
        self.trees.lock().unwrap().deleted.clone()
    }

    /// Takes the stand-in down (every request answers 503) or back up.
    pub fn set_down(&self, down: bool) {
        self.trees.lock().unwrap().down = down;
    }

    /// Moves branch `name` to a new hash right after the next listing, as a
    /// writer committing between the reaper's listing and its delete would.
    pub fn move_after_listing(&self, name: &str) {
        self.trees.lock().unwrap().move_after_listing.push(name.to_owned());
    }
}
