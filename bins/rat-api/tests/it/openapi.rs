//! `GET /api/v1/openapi.json` describes every route of the contract, and every
//! route it describes is really routed.

use crate::common::TestApp;
use reqwest::Method;

/// Every route of ratd-contract.md §2–§12 this api serves: (method, path).
const CONTRACT_ROUTES: &[(&str, &str)] = &[
    ("GET", "/health"),
    ("GET", "/health/live"),
    ("GET", "/health/ready"),
    ("GET", "/metrics"),
    ("GET", "/api/v1/features"),
    ("GET", "/api/v1/plugins"),
    ("GET", "/api/v1/namespaces"),
    ("POST", "/api/v1/namespaces"),
    ("PUT", "/api/v1/namespaces/{name}"),
    ("DELETE", "/api/v1/namespaces/{name}"),
    ("GET", "/api/v1/pipelines"),
    ("POST", "/api/v1/pipelines"),
    ("GET", "/api/v1/pipelines/{namespace}/{layer}/{name}"),
    ("PUT", "/api/v1/pipelines/{namespace}/{layer}/{name}"),
    ("DELETE", "/api/v1/pipelines/{namespace}/{layer}/{name}"),
    ("GET", "/api/v1/files"),
    ("GET", "/api/v1/files/{path}"),
    ("PUT", "/api/v1/files/{path}"),
    ("DELETE", "/api/v1/files/{path}"),
    ("POST", "/api/v1/files/upload"),
    ("POST", "/api/v1/pipelines/{namespace}/{layer}/{name}/publish"),
    ("GET", "/api/v1/pipelines/{namespace}/{layer}/{name}/versions"),
    ("GET", "/api/v1/pipelines/{namespace}/{layer}/{name}/versions/{number}"),
    ("POST", "/api/v1/pipelines/{namespace}/{layer}/{name}/rollback"),
    ("GET", "/api/v1/runs"),
    ("POST", "/api/v1/runs"),
    ("GET", "/api/v1/runs/{id}"),
    ("POST", "/api/v1/runs/{id}/cancel"),
    ("GET", "/api/v1/runs/{id}/logs"),
    ("GET", "/api/v1/schedules"),
    ("POST", "/api/v1/schedules"),
    ("GET", "/api/v1/schedules/{id}"),
    ("PUT", "/api/v1/schedules/{id}"),
    ("DELETE", "/api/v1/schedules/{id}"),
    ("GET", "/api/v1/pipelines/{namespace}/{layer}/{name}/triggers"),
    ("POST", "/api/v1/pipelines/{namespace}/{layer}/{name}/triggers"),
    ("GET", "/api/v1/pipelines/{namespace}/{layer}/{name}/triggers/{id}"),
    ("PUT", "/api/v1/pipelines/{namespace}/{layer}/{name}/triggers/{id}"),
    ("DELETE", "/api/v1/pipelines/{namespace}/{layer}/{name}/triggers/{id}"),
    ("POST", "/api/v1/webhooks"),
    ("GET", "/api/v1/pipelines/{namespace}/{layer}/{name}/tests"),
    ("POST", "/api/v1/pipelines/{namespace}/{layer}/{name}/tests"),
    ("DELETE", "/api/v1/pipelines/{namespace}/{layer}/{name}/tests/{test}"),
    ("POST", "/api/v1/pipelines/{namespace}/{layer}/{name}/tests/run"),
    ("GET", "/api/v1/landing-zones"),
    ("POST", "/api/v1/landing-zones"),
    ("GET", "/api/v1/landing-zones/{namespace}/{name}"),
    ("PUT", "/api/v1/landing-zones/{namespace}/{name}"),
    ("DELETE", "/api/v1/landing-zones/{namespace}/{name}"),
    ("GET", "/api/v1/landing-zones/{namespace}/{name}/files"),
    ("POST", "/api/v1/landing-zones/{namespace}/{name}/files"),
    ("GET", "/api/v1/landing-zones/{namespace}/{name}/files/{id}"),
    ("DELETE", "/api/v1/landing-zones/{namespace}/{name}/files/{id}"),
    ("GET", "/api/v1/landing-zones/{namespace}/{name}/samples"),
    ("POST", "/api/v1/landing-zones/{namespace}/{name}/samples"),
    ("DELETE", "/api/v1/landing-zones/{namespace}/{name}/samples/{filename}"),
    ("GET", "/api/v1/landing-zones/{namespace}/{name}/lifecycle"),
    ("PUT", "/api/v1/landing-zones/{namespace}/{name}/lifecycle"),
    ("GET", "/api/v1/tables"),
    ("GET", "/api/v1/tables/{namespace}/{layer}/{name}"),
    ("GET", "/api/v1/schema"),
    ("GET", "/api/v1/runner/plugins"),
    ("GET", "/api/v1/admin/failed-merges"),
    ("GET", "/api/v1/tables/{namespace}/{layer}/{name}/metadata"),
    ("PUT", "/api/v1/tables/{namespace}/{layer}/{name}/metadata"),
    ("POST", "/api/v1/sharing/transfer"),
    ("GET", "/api/v1/audit"),
    ("GET", "/api/v1/admin/retention/config"),
    ("PUT", "/api/v1/admin/retention/config"),
    ("GET", "/api/v1/admin/retention/status"),
    ("POST", "/api/v1/admin/retention/run"),
    ("GET", "/api/v1/pipelines/{namespace}/{layer}/{name}/retention"),
    ("PUT", "/api/v1/pipelines/{namespace}/{layer}/{name}/retention"),
    ("GET", "/api/v1/pipelines/deleted/{id}"),
    ("POST", "/api/v1/pipelines/{namespace}/{layer}/{name}/restore"),
    ("DELETE", "/api/v1/plugins/{name}"),
];

/// The document's `{path: {method: …}}` with path parameters normalised to `{_}`.
fn documented(doc: &serde_json::Value) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for method in item.as_object().unwrap().keys() {
            out.push((method.to_uppercase(), normalise(path)));
        }
    }
    out
}

/// Replaces every `{param}` (whatever its name, `{*rest}` included) by `{_}`.
fn normalise(path: &str) -> String {
    let mut out = String::new();
    let mut inside = false;
    for c in path.chars() {
        match c {
            '{' => {
                inside = true;
                out.push_str("{_}");
            }
            '}' => inside = false,
            _ if inside => {}
            _ => out.push(c),
        }
    }
    out
}

/// A concrete path for a template (placeholder values of the right shape).
fn concrete(template: &str) -> String {
    template
        .replace("{namespace}", "default")
        .replace("{layer}", "silver")
        .replace("{name}", "x")
        .replace("{number}", "1")
        .replace("{id}", "00000000-0000-0000-0000-000000000000")
        .replace("{object_type}", "pipeline")
        .replace("{object_id}", "00000000-0000-0000-0000-000000000000")
        .replace("{test}", "t")
        .replace("{filename}", "f.csv")
        .replace("{path}", "default/pipelines/silver/x/pipeline.sql")
}

#[tokio::test]
async fn every_contract_route_is_documented_and_routed() {
    let app = TestApp::new().await;
    let doc = app.get("/api/v1/openapi.json").await;
    assert_eq!(doc.status, 200, "{}", doc.text);
    assert!(doc.json["openapi"].as_str().unwrap().starts_with("3."));
    let documented = documented(&doc.json);
    let mut missing = Vec::new();
    let mut unrouted = Vec::new();
    for (method, path) in CONTRACT_ROUTES {
        if !documented.contains(&(method.to_string(), normalise(path))) {
            missing.push(format!("{method} {path}"));
        }
        let answer = app
            .request(Method::from_bytes(method.as_bytes()).unwrap(), &concrete(path), None)
            .await;
        let router_miss =
            answer.status == 405 || (answer.status == 404 && answer.json["error"]["message"] == "route not found");
        if router_miss {
            unrouted.push(format!("{method} {path} -> {}", answer.status));
        }
    }
    assert!(missing.is_empty(), "routes missing from openapi.json: {missing:#?}");
    assert!(unrouted.is_empty(), "contract routes not routed: {unrouted:#?}");
}

#[tokio::test]
async fn every_documented_route_is_routed() {
    let app = TestApp::new().await;
    let doc = app.get("/api/v1/openapi.json").await;
    let mut unrouted = Vec::new();
    for (path, item) in doc.json["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            let answer = app
                .request(
                    Method::from_bytes(method.to_uppercase().as_bytes()).unwrap(),
                    &concrete(path),
                    None,
                )
                .await;
            if answer.status == 405 || (answer.status == 404 && answer.json["error"]["message"] == "route not found") {
                unrouted.push(format!("{method} {path}"));
            }
        }
    }
    assert!(unrouted.is_empty(), "documented but not routed: {unrouted:#?}");
}

/// Both listeners' documents validate as OpenAPI 3.1 with a real validator
/// (`openapi-spec-validator`, pinned from PyPI, installed under `target/`):
/// every path template well formed, every `$ref` resolving, every schema
/// valid. The tool's whole output is shown on failure.
#[tokio::test]
async fn both_documents_validate_as_openapi_3_1() {
    let validator = tokio::task::spawn_blocking(|| rat_testkit::pytools::OPENAPI_SPEC_VALIDATOR.installed())
        .await
        .unwrap();
    let app = TestApp::new().await;
    let public = app.get("/api/v1/openapi.json").await;
    assert_eq!(public.status, 200, "{}", public.text);
    let (_, internal) = rat_api::internal::router_and_openapi(app.state.clone());
    let dir = tempfile::tempdir().unwrap();
    for (name, document) in [
        ("public.json", public.json.clone()),
        ("internal.json", serde_json::to_value(&internal).unwrap()),
    ] {
        assert_eq!(document["openapi"], "3.1.0", "{name}");
        for path in document["paths"].as_object().unwrap().keys() {
            assert!(
                !path.contains('*'),
                "{name}: {path} is an axum wildcard, not an OpenAPI path template"
            );
        }
        let file = dir.path().join(name);
        std::fs::write(&file, serde_json::to_vec_pretty(&document).unwrap()).unwrap();
        let output = tokio::process::Command::new(&validator)
            .args(["--schema", "3.1", "--validation-errors", "all"])
            .arg(&file)
            .output()
            .await
            .expect("running openapi-spec-validator");
        let stdout = String::from_utf8_lossy(&output.stdout);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            output.status.success() && stdout.contains(": OK"),
            "{name} is not a valid OpenAPI 3.1 document:\n{stdout}\n{stderr}"
        );
    }
}

/// Every link of either document names an operation of that document, and
/// only parameters that operation has; every create operation links to
/// others (a stateful tester chains them along these links).
#[tokio::test]
async fn links_name_real_operations_and_their_parameters() {
    let app = TestApp::new().await;
    let (_, public) = rat_api::app::router_and_openapi(app.state.clone());
    let (_, internal) = rat_api::internal::router_and_openapi(app.state.clone());
    let mut linked = 0;
    for document in [&public, &internal] {
        let mut operations = std::collections::BTreeMap::new();
        for item in document["paths"].as_object().unwrap().values() {
            for operation in item.as_object().unwrap().values() {
                let id = operation["operationId"].as_str().expect("every operation has an id");
                let parameters: Vec<String> = operation["parameters"]
                    .as_array()
                    .map(|ps| ps.iter().map(|p| p["name"].as_str().unwrap().to_owned()).collect())
                    .unwrap_or_default();
                // The JSON body's properties, which a link's requestBody may set.
                let mut body = &operation["requestBody"]["content"]["application/json"]["schema"];
                if let Some(reference) = body["$ref"].as_str() {
                    let name = reference.rsplit('/').next().unwrap();
                    body = &document["components"]["schemas"][name];
                }
                let fields: Vec<String> = body["properties"]
                    .as_object()
                    .map(|ps| ps.keys().cloned().collect())
                    .unwrap_or_default();
                assert!(
                    operations.insert(id.to_owned(), (parameters, fields)).is_none(),
                    "operationId {id} twice"
                );
            }
        }
        for item in document["paths"].as_object().unwrap().values() {
            for operation in item.as_object().unwrap().values() {
                for response in operation["responses"].as_object().unwrap().values() {
                    for (name, link) in response["links"].as_object().into_iter().flatten() {
                        let target = link["operationId"].as_str().unwrap();
                        let (parameters, fields) = operations
                            .get(target)
                            .unwrap_or_else(|| panic!("link {name} names no operation {target}"));
                        for parameter in link["parameters"].as_object().into_iter().flatten().map(|(k, _)| k) {
                            assert!(parameters.contains(parameter), "{target} has no parameter {parameter}");
                        }
                        for field in link["requestBody"].as_object().into_iter().flatten().map(|(k, _)| k) {
                            assert!(fields.contains(field), "{target}'s body has no field {field}");
                        }
                        assert!(
                            link["parameters"].as_object().is_some_and(|p| !p.is_empty())
                                || link["requestBody"].as_object().is_some_and(|b| !b.is_empty()),
                            "link {name} passes nothing to {target}"
                        );
                        linked += 1;
                    }
                }
            }
        }
    }
    assert!(linked >= 30, "only {linked} links");
    for create in [
        "namespaces_create",
        "pipelines_create",
        "schedules_create",
        "runs_create",
        "projects_create",
    ] {
        let found = public["paths"].as_object().unwrap().values().any(|item| {
            item.as_object().unwrap().values().any(|operation| {
                operation["operationId"] == create
                    && operation["responses"]
                        .as_object()
                        .unwrap()
                        .values()
                        .any(|r| r["links"].as_object().is_some_and(|l| !l.is_empty()))
            })
        });
        assert!(found, "{create} links to nothing");
    }
}
