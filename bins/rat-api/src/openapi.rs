//! The last touches of both listeners' OpenAPI documents, for what no single
//! handler's annotation can say: path templates of wildcard routes, and the
//! answers of the layers every request goes through.
//!
//! - axum's wildcard `{*path}` is no OpenAPI path template: the document
//!   names it `{path}` (the route keeps the wildcard; a client sends the
//!   parameter with or without its `/` escaped, both reach it).
//! - Every operation lists every status the layers around the handler can
//!   answer (authentication, the browser checks, request limits, body
//!   checks, panics, an unavailable database), each with the error envelope;
//!   the handlers' annotations list their own.
//! - Parameters shared by many routes (names, layers, ids, version numbers,
//!   file keys, pages) declare the rules the server enforces on them.
//! - `/api/v1`, `/metrics` and the runner routes declare bearer security.

use std::collections::BTreeMap;

use serde_json::{Value, json};
use utoipa::openapi::path::{Operation, Parameter, ParameterIn, PathItem};
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{ContentBuilder, OpenApi, Ref, RefOr, Response, ResponseBuilder, Schema};

/// The name rule of namespaces, pipelines, zones, tests and tables (contract §1).
pub const NAME_PATTERN: &str = "^[a-z][a-z0-9_-]*$";

/// One segment of a file key: `[A-Za-z0-9._-]`, but not `.` or `..`.
const KEY_SEGMENT: &str = r"([A-Za-z0-9_-][A-Za-z0-9._-]*|\.[A-Za-z0-9_-][A-Za-z0-9._-]*|\.\.[A-Za-z0-9._-]+)";

/// A file key: segments joined by `/`, at most 1,024 bytes.
fn key_schema() -> Value {
    json!({"type": "string", "pattern": format!("^{KEY_SEGMENT}(/{KEY_SEGMENT})*$"), "minLength": 1, "maxLength": 1024})
}

/// A name of at most `max` characters.
fn name_schema(max: u32) -> Value {
    json!({"type": "string", "pattern": NAME_PATTERN, "minLength": 1, "maxLength": max})
}

/// `schema`, or the empty string.
fn or_empty(schema: Value) -> Value {
    json!({"anyOf": [schema, {"type": "string", "maxLength": 0}]})
}

/// A sort order: one of `fields`, optionally with a leading `-`
/// (descending); empty is the default order.
fn sort_schema(fields: &[&str]) -> Value {
    let mut values = vec![String::new()];
    for field in fields {
        values.push((*field).to_owned());
        values.push(format!("-{field}"));
    }
    json!({"type": "string", "enum": values})
}

/// An RFC 3339 time, or empty (no bound).
fn time_or_empty() -> Value {
    or_empty(json!({"type": "string", "format": "date-time"}))
}

/// A pipeline file's key: `{namespace}/pipelines/{layer}/{name}/…`, the
/// only keys `PUT` and `DELETE /files/{path}` take.
fn pipeline_file_schema() -> Value {
    json!({"type": "string", "minLength": 1, "maxLength": 1024, "pattern": format!(
        "^[a-z][a-z0-9_-]{{0,62}}/pipelines/(bronze|silver|gold)/[a-z][a-z0-9_-]{{0,127}}/{KEY_SEGMENT}(/{KEY_SEGMENT})*$"
    )})
}

/// The schema the server enforces for the parameter `name` in `location` of
/// the operation `method` on `path`, and whether it is required, where a
/// rule applies to that name.
fn parameter_schema(path: &str, method: &str, location: &ParameterIn, name: &str) -> Option<(Value, bool)> {
    let in_path = matches!(location, ParameterIn::Path);
    let in_query = matches!(location, ParameterIn::Query);
    let schema = match name {
        "namespace" if in_path => name_schema(63),
        "layer" if in_path => json!({"$ref": "#/components/schemas/Layer"}),
        // Filters of lists: empty is no filter.
        "namespace" if in_query => or_empty(name_schema(63)),
        "pipeline" if in_query => or_empty(name_schema(128)),
        "layer" if in_query => or_empty(json!({"$ref": "#/components/schemas/Layer"})),
        "name" if in_path && path.starts_with("/api/v1/namespaces/") => name_schema(63),
        // Plugin names follow the name rule, at most 63 characters.
        "name" if in_path && path.contains("/plugins/") => name_schema(63),
        "name" | "test" if in_path => name_schema(128),
        "id" | "object_id" if in_path => json!({"type": "string", "format": "uuid"}),
        "object_type" if in_path => enum_schema(&["pipeline", "table"]),
        "filename" if in_path => {
            json!({"type": "string", "minLength": 1, "maxLength": 255, "pattern": format!("^{KEY_SEGMENT}$")})
        }
        "number" if in_path => json!({"type": "integer", "format": "int32", "minimum": 1, "maximum": i32::MAX}),
        "path" if in_path && method == "get" => key_schema(),
        "path" if in_path => pipeline_file_schema(),
        "limit" if in_query => json!({"type": "integer", "format": "int64", "minimum": 1, "maximum": i64::MAX}),
        "offset" if in_query => json!({"type": "integer", "format": "int64", "minimum": 0, "maximum": i64::MAX}),
        // A keyset cursor: base64url without padding (empty is none); only
        // a `next_cursor` of the same list and order is accepted.
        "cursor" if in_query => json!({"type": "string", "maxLength": 256, "pattern": "^[A-Za-z0-9_-]*$"}),
        "sort" if in_query && path == "/api/v1/pipelines" => {
            sort_schema(&["name", "namespace", "layer", "created_at", "updated_at", "type"])
        }
        "sort" if in_query && path == "/api/v1/runs" => {
            sort_schema(&["created_at", "started_at", "finished_at", "duration_ms", "status"])
        }
        "search" if in_query => text_schema(255),
        "status" if in_query && path == "/api/v1/runs" => {
            enum_schema(&["", "pending", "running", "success", "failed", "cancelled"])
        }
        "status" if in_query && path == "/api/v1/plugins" => {
            enum_schema(&["", "enabled", "healthy", "degraded", "down", "unknown"])
        }
        "enabled" if in_query => enum_schema(&["", "true", "false"]),
        "deleted" if in_query && path == "/api/v1/pipelines" => enum_schema(&["", "true", "false"]),
        "id" if in_query && path.ends_with("/restore") => json!({"type": "string", "format": "uuid"}),
        "since" | "until" | "started_after" | "started_before" if in_query => time_or_empty(),
        "object_type" if in_query && path == "/api/v1/sharing" => {
            return Some((enum_schema(&["pipeline", "table", "namespace", "landing_zone"]), true));
        }
        "object_id" if in_query && path == "/api/v1/sharing" => {
            return Some((json!({"type": "string", "format": "uuid"}), true));
        }
        "key" if in_query && path == "/internal/v1/files" => return Some((key_schema(), true)),
        "version" if in_query && path == "/internal/v1/files" => {
            let version = json!({"type": "string", "minLength": 1, "maxLength": 1024, "pattern": NO_CONTROLS,
                "not": {"const": "null"}});
            return Some((version, true));
        }
        "prefix" if in_query && path == "/api/v1/files" => {
            let prefix = format!("^{KEY_SEGMENT}(/{KEY_SEGMENT})*/?$");
            return Some((
                json!({"type": "string", "minLength": 1, "maxLength": 1024, "pattern": prefix}),
                true,
            ));
        }
        _ => return None,
    };
    Some((schema, in_path))
}

/// Puts the server's rules into `parameter`'s schema (see [`parameter_schema`]).
fn constrain(path: &str, method: &str, parameter: &mut Parameter) {
    if let Some((schema, required)) = parameter_schema(path, method, &parameter.parameter_in, &parameter.name) {
        let schema: RefOr<Schema> = serde_json::from_value(schema).expect("the parameter schemas are valid");
        parameter.schema = Some(schema);
        if required {
            parameter.required = utoipa::openapi::Required::True;
        }
    }
}

/// Which listener a document describes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Listener {
    /// The public API (`/api/v1`, health, metrics).
    Public,
    /// The runner listener (`/internal/v1`).
    Internal,
}

/// The shared error answers, by status: `components.responses` names and
/// descriptions.
const COMMON: &[(&str, &str, &str)] = &[
    (
        "400",
        "BadRequest",
        "invalid input: a malformed parameter, query string or body",
    ),
    ("401", "Unauthenticated", "missing or wrong credentials"),
    (
        "403",
        "Forbidden",
        "refused: a state-changing request from an untrusted Origin, a Host this listener does not serve, or a \
         caller without the needed role",
    ),
    ("404", "NotFound", "not found, or the feature is disabled"),
    ("408", "RequestTimeout", "the request body did not arrive in time"),
    ("413", "PayloadTooLarge", "the request body is larger than allowed"),
    ("414", "UriTooLong", "the request target is longer than allowed"),
    ("415", "UnsupportedMediaType", "a request body that is not JSON"),
    ("431", "HeadersTooLarge", "the request headers are larger than allowed"),
    (
        "500",
        "InternalError",
        "an unexpected failure (the cause is logged with the request id)",
    ),
    ("503", "Unavailable", "the database or the file store is unavailable"),
];

/// The statuses every operation of `path` (with `method`) on `listener` can
/// answer before or around its handler.
fn common_statuses(listener: Listener, path: &str, method: &str, has_body: bool) -> Vec<&'static str> {
    let mut statuses = vec!["403", "414", "431", "500", "503"];
    let api = match listener {
        Listener::Public => path.starts_with("/api/v1/"),
        Listener::Internal => true,
    };
    if api {
        statuses.extend(["400", "401", "404"]);
    } else if path == "/metrics" {
        statuses.push("401");
    }
    if has_body || matches!(method, "post" | "put" | "patch") {
        statuses.extend(["408", "413", "415"]);
    }
    statuses
}

/// The security scheme's name: `Authorization: Bearer <credential>`.
const BEARER: &str = "bearer";

/// Whether the operations of `path` need a credential: every `/api/v1`
/// route and `/metrics` (the API key, a signed-in user's token, or the
/// metrics token) and every runner route (the runner token). An api in
/// community mode on loopback needs none; the document describes the
/// authenticated deployments.
fn needs_credentials(listener: Listener, path: &str) -> bool {
    match listener {
        Listener::Public => path.starts_with("/api/v1/") || path == "/metrics",
        Listener::Internal => true,
    }
}

/// The operations of a path item, with their lower-case method names.
fn operations_mut(item: &mut PathItem) -> Vec<(&'static str, &mut Operation)> {
    let PathItem {
        get,
        put,
        post,
        delete,
        options,
        head,
        patch,
        trace,
        ..
    } = item;
    [
        ("get", get),
        ("put", put),
        ("post", post),
        ("delete", delete),
        ("options", options),
        ("head", head),
        ("patch", patch),
        ("trace", trace),
    ]
    .into_iter()
    .filter_map(|(method, operation)| operation.as_mut().map(|operation| (method, operation)))
    .collect()
}

/// `/files/{*path}` → `/files/{path}`.
fn path_template(path: &str) -> String {
    path.replace("{*", "{")
}

/// The error envelope answer, described by `description`.
fn error_response(description: &str) -> Response {
    ResponseBuilder::new()
        .description(description)
        .content(
            "application/json",
            ContentBuilder::new()
                .schema(Some(Ref::from_schema_name("ErrorEnvelope")))
                .build(),
        )
        .build()
}

/// Makes every `operationId` unique and telling: `{tag}_{handler}`
/// (`namespaces_create`, `pipelines_get`); where that is still not unique,
/// the method and path make it so. Links name their targets by these ids,
/// and generated clients name their functions after them.
fn unique_operation_ids(document: &mut OpenApi) {
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    let mut named = Vec::new();
    for (path, item) in &mut document.paths.paths {
        for (method, operation) in operations_mut(item) {
            let tag = operation
                .tags
                .as_ref()
                .and_then(|tags| tags.first())
                .map_or("api", String::as_str);
            let handler = operation.operation_id.as_deref().unwrap_or(method);
            let id = format!("{}_{handler}", slug(tag));
            *seen.entry(id.clone()).or_default() += 1;
            named.push((path.clone(), method, id));
        }
    }
    for (path, item) in &mut document.paths.paths {
        for (method, operation) in operations_mut(item) {
            let (_, _, id) = named
                .iter()
                .find(|(p, m, _)| p == path && *m == method)
                .expect("named above");
            operation.operation_id = Some(if seen[id] == 1 {
                id.clone()
            } else {
                format!("{method}_{}", slug(path))
            });
        }
    }
}

/// `text` with every run of characters other than `[a-z0-9]` made one `_`.
fn slug(text: &str) -> String {
    let mut out = String::new();
    for c in text.to_lowercase().chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c);
        } else if !out.is_empty() && !out.ends_with('_') {
            out.push('_');
        }
    }
    out.trim_end_matches('_').to_owned()
}

/// The pipeline a response names, by its `namespace`, `layer` and `name`.
const PIPELINE_FROM_BODY: &[(&str, &str)] = &[
    ("namespace", "$response.body#/namespace"),
    ("layer", "$response.body#/layer"),
    ("name", "$response.body#/name"),
];

/// The pipeline of the request's path.
const PIPELINE_FROM_PATH: &[(&str, &str)] = &[
    ("namespace", "$request.path.namespace"),
    ("layer", "$request.path.layer"),
    ("name", "$request.path.name"),
];

/// A resource a create answer names: `id` from its body.
const ID_FROM_BODY: &[(&str, &str)] = &[("id", "$response.body#/id")];

/// A link: the target operation and its parameters' runtime expressions.
type LinkRule = (&'static str, &'static [(&'static str, &'static str)]);

/// The links of operations that create a resource to those that read,
/// change and delete it (OpenAPI links, so a stateful tester or a client
/// generator can chain them): (operation, status, links).
const LINKS: &[(&str, &str, &[LinkRule])] = &[
    (
        "namespaces_create",
        "201",
        &[
            ("namespaces_update", &[("name", "$response.body#/name")]),
            ("namespaces_delete", &[("name", "$response.body#/name")]),
            // Creates inside the new namespace: their bodies name it (see
            // LINK_BODIES).
            ("pipelines_create", &[]),
            ("landing_zones_create_zone", &[]),
        ],
    ),
    (
        "pipelines_create",
        "201",
        &[
            ("schedules_create", &[]),
            ("runs_create", &[]),
            ("pipelines_get", PIPELINE_FROM_BODY),
            ("pipelines_update", PIPELINE_FROM_BODY),
            ("pipelines_delete", PIPELINE_FROM_BODY),
            ("versions_publish", PIPELINE_FROM_BODY),
            ("versions_list", PIPELINE_FROM_BODY),
            ("triggers_create", PIPELINE_FROM_BODY),
            ("quality_create", PIPELINE_FROM_BODY),
            ("quality_list", PIPELINE_FROM_BODY),
            ("triggers_list", PIPELINE_FROM_BODY),
            ("retention_get_pipeline_retention", PIPELINE_FROM_BODY),
            ("retention_put_pipeline_retention", PIPELINE_FROM_BODY),
        ],
    ),
    (
        "versions_publish",
        "200",
        &[
            ("versions_list", PIPELINE_FROM_PATH),
            (
                "versions_get",
                &[
                    ("namespace", "$request.path.namespace"),
                    ("layer", "$request.path.layer"),
                    ("name", "$request.path.name"),
                    ("number", "$response.body#/version"),
                ],
            ),
        ],
    ),
    (
        "files_write",
        "200",
        &[
            ("files_read", &[("path", "$response.body#/path")]),
            ("files_delete", &[("path", "$response.body#/path")]),
        ],
    ),
    (
        "schedules_create",
        "201",
        &[
            ("schedules_get", ID_FROM_BODY),
            ("schedules_update", ID_FROM_BODY),
            ("schedules_delete", ID_FROM_BODY),
        ],
    ),
    (
        "runs_create",
        "202",
        &[
            ("runs_get", ID_FROM_BODY),
            ("runs_cancel", ID_FROM_BODY),
            ("runs_logs", ID_FROM_BODY),
        ],
    ),
    (
        "triggers_create",
        "201",
        &[
            ("triggers_get", TRIGGER_FROM_BODY),
            ("triggers_update", TRIGGER_FROM_BODY),
            ("triggers_delete", TRIGGER_FROM_BODY),
        ],
    ),
    (
        "quality_create",
        "201",
        &[(
            "quality_delete",
            &[
                ("namespace", "$request.path.namespace"),
                ("layer", "$request.path.layer"),
                ("name", "$request.path.name"),
                ("test", "$response.body#/name"),
            ],
        )],
    ),
    (
        "landing_zones_create_zone",
        "201",
        &[
            ("landing_zones_get_zone", ZONE_FROM_BODY),
            ("landing_zones_update_zone", ZONE_FROM_BODY),
            ("landing_zones_delete_zone", ZONE_FROM_BODY),
            ("landing_zones_list_files", ZONE_FROM_BODY),
            ("landing_zones_get_lifecycle", ZONE_FROM_BODY),
            ("landing_zones_list_samples", ZONE_FROM_BODY),
            ("landing_zones_upload_file", ZONE_FROM_BODY),
            ("landing_zones_upload_sample", ZONE_FROM_BODY),
        ],
    ),
    (
        "platform_create_token",
        "201",
        &[("platform_revoke_token", ID_FROM_BODY)],
    ),
    (
        "projects_create",
        "201",
        &[
            ("projects_get", ID_FROM_BODY),
            ("projects_update", ID_FROM_BODY),
            ("projects_delete", ID_FROM_BODY),
            ("projects_list_members", ID_FROM_BODY),
        ],
    ),
    ("sharing_create_share", "201", &[("sharing_delete_share", ID_FROM_BODY)]),
];

/// A body field a link sets: its name and runtime expression.
type BodyField = (&'static str, &'static str);

/// The request bodies of links whose target takes the created resource in
/// its body rather than its path: (source, target, fields). Each field's
/// value is a runtime expression; a stateful tester merges the fields into
/// the body it generates, so a pipeline is created in a namespace that
/// exists, a schedule and a run on a pipeline that exists.
const LINK_BODIES: &[(&str, &str, &[BodyField])] = &[
    (
        "namespaces_create",
        "pipelines_create",
        &[("namespace", "$response.body#/name")],
    ),
    (
        "namespaces_create",
        "landing_zones_create_zone",
        &[("namespace", "$response.body#/name")],
    ),
    ("pipelines_create", "schedules_create", PIPELINE_IN_BODY),
    ("pipelines_create", "runs_create", PIPELINE_IN_BODY),
];

/// The pipeline a create answer names, as the body fields of a schedule or
/// a run.
const PIPELINE_IN_BODY: &[BodyField] = &[
    ("namespace", "$response.body#/namespace"),
    ("layer", "$response.body#/layer"),
    ("pipeline", "$response.body#/name"),
];

/// A trigger a create answer names, on the pipeline of the request's path.
const TRIGGER_FROM_BODY: &[(&str, &str)] = &[
    ("namespace", "$request.path.namespace"),
    ("layer", "$request.path.layer"),
    ("name", "$request.path.name"),
    ("id", "$response.body#/id"),
];

/// The landing zone a create answer names.
const ZONE_FROM_BODY: &[(&str, &str)] = &[
    ("namespace", "$response.body#/namespace"),
    ("name", "$response.body#/name"),
];

/// Adds [`LINKS`] to the answers they start from. Rules whose operation is
/// not in `document` (the other listener's) are skipped; the tests check
/// that every rule's operations and statuses exist.
fn add_links(document: &mut OpenApi) {
    for item in document.paths.paths.values_mut() {
        for (_, operation) in operations_mut(item) {
            let Some(id) = operation.operation_id.clone() else {
                continue;
            };
            for (source, status, links) in LINKS {
                if *source != id {
                    continue;
                }
                let Some(RefOr::T(response)) = operation.responses.responses.get_mut(*status) else {
                    continue;
                };
                for (target, parameters) in *links {
                    let mut link = utoipa::openapi::link::LinkBuilder::new().operation_id(*target);
                    for (name, expression) in *parameters {
                        link = link.parameter(*name, *expression);
                    }
                    let body = LINK_BODIES
                        .iter()
                        .find(|(from, to, _)| from == source && to == target)
                        .map(|(_, _, fields)| {
                            fields
                                .iter()
                                .map(|(field, expression)| ((*field).to_owned(), serde_json::Value::from(*expression)))
                                .collect::<serde_json::Map<_, _>>()
                        });
                    link = link.request_body(body);
                    response.links.insert((*target).to_owned(), RefOr::T(link.build()));
                }
            }
        }
    }
}

/// Applies the last touches (see the module's documentation) to `document`.
pub fn finish(document: OpenApi, listener: Listener) -> Value {
    let document = finish_typed(document, listener);
    let mut document = serde_json::to_value(&document).expect("an OpenAPI document serializes");
    describe_responses(&mut document);
    constrain_bodies(&mut document);
    optional_bodies(&mut document);
    document
}

/// Text the server refuses control characters in (`char::is_control`).
const NO_CONTROLS: &str = "^[^\\x00-\\x1f\\x7f-\\x9f]*$";

/// A user or role identity: not blank, no control characters, at most 255
/// characters ([`rat_domain::parse_principal`]).
fn principal_schema() -> Value {
    json!({"type": "string", "minLength": 1, "maxLength": 255,
        "pattern": "^[^\\x00-\\x1f\\x7f-\\x9f]*[^\\s\\x00-\\x1f\\x7f-\\x9f][^\\x00-\\x1f\\x7f-\\x9f]*$"})
}

/// A pattern matching exactly one of `words`, in any case.
fn any_case(words: &[&str]) -> String {
    let alternatives: Vec<String> = words
        .iter()
        .map(|word| {
            word.chars()
                .map(|c| format!("[{}{}]", c.to_ascii_lowercase(), c.to_ascii_uppercase()))
                .collect()
        })
        .collect();
    format!("^({})$", alternatives.join("|"))
}

/// A runner's name: 1 to 255 characters, no control characters.
fn runner_id_schema() -> Value {
    json!({"type": "string", "minLength": 1, "maxLength": 255, "pattern": NO_CONTROLS})
}

/// Text that must not be blank, of at most `max` characters.
/// A plugin's slot or image: not blank, no control characters, at most
/// `max` characters (`rat_service::platform`'s rule).
fn plugin_text(max: u32) -> Value {
    json!({"type": "string", "minLength": 1, "maxLength": max,
        "pattern": "^[^\\x00-\\x1f\\x7f-\\x9f]*[^\\s\\x00-\\x1f\\x7f-\\x9f][^\\x00-\\x1f\\x7f-\\x9f]*$"})
}

fn required_text(max: u32) -> Value {
    json!({"type": "string", "minLength": 1, "maxLength": max, "pattern": "^[^\\x00]*[^\\s\\x00][^\\x00]*$"})
}

/// A project's name: not blank, at most 255 characters.
fn project_name_schema() -> Value {
    let mut schema = principal_schema();
    schema["maxLength"] = json!(rat_domain::MAX_PROJECT_NAME_CHARS);
    schema
}

/// A cron expression. The server takes croner's whole syntax (5 fields, or
/// 6 with leading seconds; lists, ranges, steps, names) provided the
/// expression fires within 29 years; the document declares the part of it
/// that always does: `*`, `*/n` or a number in each field, days of the
/// month up to 28.
fn cron_schema() -> Value {
    json!({"type": "string", "maxLength": 100, "pattern": concat!(
        "^(([1-5]?[0-9]) )?",
        "(\\*(/[1-9])?|[1-5]?[0-9]) ",
        "(\\*(/[1-9])?|1?[0-9]|2[0-3]) ",
        "(\\*|[1-9]|1[0-9]|2[0-8]) ",
        "(\\*|[1-9]|1[0-2]) ",
        "(\\*|[0-6])$"
    )})
}

/// The retention settings a request may set: each key in its range.
fn retention_schema(keys: &[&str], nullable: bool) -> Value {
    let mut properties = serde_json::Map::new();
    for (key, min, max) in rat_domain::RetentionSettings::RANGES {
        if keys.contains(key) {
            let range = int_schema(*min, *max);
            let schema = if nullable {
                json!({"oneOf": [range, {"type": "null"}]})
            } else {
                range
            };
            properties.insert((*key).to_owned(), schema);
        }
    }
    json!({"type": "object", "properties": properties, "additionalProperties": false})
}

/// The bodies of `POST` and `PUT …/triggers`: one variant per type, each
/// with the config that type takes ([`rat_domain::TriggerConfig`]). A
/// webhook's config is empty (the server makes its token). An update may
/// leave `type` out (it must be the trigger's own when given).
fn trigger_schemas() -> (Value, Value, Vec<(String, Value)>) {
    let name63 = name_schema(63);
    let name128 = name_schema(128);
    let layer = json!({"$ref": "#/components/schemas/Layer"});
    let object = |properties: Value| {
        let required: Vec<String> = properties.as_object().unwrap().keys().cloned().collect();
        json!({"type": "object", "properties": properties, "required": required, "additionalProperties": false})
    };
    let dotted = "^[a-z][a-z0-9_-]{0,62}\\.(bronze|silver|gold)\\.[a-z][a-z0-9_-]{0,127}$";
    let configs = [
        (
            "pipeline_success",
            object(json!({"namespace": name63, "layer": layer, "pipeline": name128})),
        ),
        (
            "landing_zone_upload",
            object(json!({"namespace": name63, "zone_name": name128})),
        ),
        (
            "file_pattern",
            object(
                json!({"namespace": name63, "zone_name": name128, "pattern": {"type": "string", "minLength": 1,
                "maxLength": rat_domain::MAX_PATTERN_LEN, "pattern": "^[^/\\x00-\\x1f\\x7f-\\x9f]+$"}}),
            ),
        ),
        ("webhook", json!({"type": "object", "additionalProperties": false})),
        ("cron", object(json!({"cron_expr": cron_schema()}))),
        (
            "cron_dependency",
            object(
                json!({"cron_expr": cron_schema(), "dependencies": {"type": "array", "minItems": 1,
                "maxItems": rat_domain::MAX_DEPENDENCIES, "items": {"type": "string", "pattern": dotted}}}),
            ),
        ),
    ];
    // Each config and each variant is a component of its own, named after
    // its type (client generators name their classes after them).
    let mut components = Vec::new();
    let mut common = |type_required: bool, type_name: &str, config: &Value| {
        let camel: String = type_name
            .split('_')
            .map(|word| word[..1].to_uppercase() + &word[1..])
            .collect();
        let config_name = format!("{camel}TriggerConfig");
        if type_required {
            components.push((config_name.clone(), config.clone()));
        }
        let config = json!({"$ref": format!("#/components/schemas/{config_name}")});
        let config = if type_name == "webhook" || !type_required {
            json!({"oneOf": [config, {"type": "null"}]})
        } else {
            config.clone()
        };
        let mut required = Vec::new();
        if type_required {
            required.push("type");
            if type_name != "webhook" {
                required.push("config");
            }
        }
        json!({"type": "object", "required": required, "additionalProperties": false, "properties": {
            "type": {"type": "string", "const": type_name},
            "config": config,
            "enabled": {"oneOf": [{"type": "boolean"}, {"type": "null"}]},
            "cooldown_seconds": {"oneOf": [int_schema(0, 2_592_000), {"type": "null"}]},
        }})
    };
    let create: Vec<Value> = configs
        .iter()
        .map(|(name, config)| common(true, name, config))
        .collect();
    let update: Vec<Value> = configs
        .iter()
        .map(|(name, config)| common(false, name, config))
        .collect();
    (
        json!({"oneOf": create, "description": "Body of `POST …/triggers`: the type and its config."}),
        json!({"anyOf": update, "description": "Body of `PUT …/triggers/{id}`; absent fields keep their value."}),
        components,
    )
}

/// Request bodies described inline, by operation: (operationId, schema).
fn inline_body_rules() -> Vec<(&'static str, Value)> {
    let all: Vec<&str> = rat_domain::RetentionSettings::RANGES
        .iter()
        .map(|(key, _, _)| *key)
        .collect();
    let settings = retention_schema(&all, false);
    vec![
        (
            "retention_put_config",
            json!({"anyOf": [settings.clone(), {"type": "object", "required": ["config"],
                "properties": {"config": settings}, "additionalProperties": false}]}),
        ),
        (
            "retention_put_pipeline_retention",
            retention_schema(rat_domain::PIPELINE_OVERRIDE_KEYS, true),
        ),
    ]
}

/// Free text of at most `max` characters (PostgreSQL's text holds no NUL).
fn text_schema(max: u32) -> Value {
    json!({"type": "string", "maxLength": max, "pattern": "^[^\\x00]*$"})
}

/// A whole number in `min..=max`.
fn int_schema(min: i64, max: i64) -> Value {
    json!({"type": "integer", "format": "int64", "minimum": min, "maximum": max})
}

/// One of `values`.
fn enum_schema(values: &[&str]) -> Value {
    json!({"type": "string", "enum": values})
}

/// The rules the server enforces on the fields of request bodies: (schema,
/// property, the property's schema; `null` stays allowed where the field is
/// optional).
fn body_rules() -> Vec<(&'static str, &'static str, Value)> {
    let layer = json!({"$ref": "#/components/schemas/Layer"});
    let description = text_schema(rat_domain::text::MAX_DESCRIPTION_CHARS as u32);
    vec![
        ("CreateNamespace", "name", name_schema(63)),
        ("CreateNamespace", "description", description.clone()),
        ("UpdateNamespace", "description", description.clone()),
        ("CreatePipeline", "namespace", name_schema(63)),
        ("CreatePipeline", "layer", layer.clone()),
        ("CreatePipeline", "name", name_schema(128)),
        ("CreatePipeline", "type", enum_schema(&["sql", "python", ""])),
        ("CreatePipeline", "description", description.clone()),
        ("UpdatePipeline", "description", description.clone()),
        ("UpdatePipeline", "type", enum_schema(&["sql", "python"])),
        ("UpdatePipeline", "max_versions", int_schema(1, 10_000)),
        ("CreateRun", "namespace", name_schema(63)),
        ("CreateRun", "layer", layer.clone()),
        ("CreateRun", "pipeline", name_schema(128)),
        (
            "CreateRun",
            "trigger",
            json!({"type": "string", "maxLength": 512, "pattern": NO_CONTROLS}),
        ),
        ("CreateSchedule", "namespace", name_schema(63)),
        ("CreateSchedule", "layer", layer.clone()),
        ("CreateSchedule", "pipeline", name_schema(128)),
        (
            "CreateTest",
            "name",
            json!({"type": "string", "minLength": 1, "maxLength": 128,
                // The name rule, but not `run` (the route that runs the tests).
                "pattern": "^([a-qs-z][a-z0-9_-]*|r|r[a-tv-z0-9_-][a-z0-9_-]*|ru|ru[a-mo-z0-9_-][a-z0-9_-]*|run[a-z0-9_-]+)$"}),
        ),
        (
            "CreateTest",
            "sql",
            // At most 1 MiB, which the body limit (413) already says; a
            // maxLength that large stalls schemathesis' coverage phase.
            json!({"type": "string", "minLength": 1, "pattern": "\\S"}),
        ),
        ("CreateTest", "severity", enum_schema(&["error", "warn"])),
        ("CreateTest", "description", description.clone()),
        (
            "CreateToken",
            "name",
            json!({"type": "string", "minLength": 1, "maxLength": rat_domain::MAX_TOKEN_NAME_CHARS}),
        ),
        (
            "CreateToken",
            "expires_in_days",
            int_schema(1, rat_domain::MAX_TOKEN_DAYS),
        ),
        ("CreateZone", "namespace", name_schema(63)),
        ("CreateZone", "name", name_schema(128)),
        ("CreateZone", "description", description.clone()),
        (
            "CreateZone",
            "expected_schema",
            text_schema(rat_domain::text::MAX_SCHEMA_NOTE_CHARS as u32),
        ),
        ("UpdateZone", "description", description.clone()),
        (
            "UpdateZone",
            "expected_schema",
            text_schema(rat_domain::text::MAX_SCHEMA_NOTE_CHARS as u32),
        ),
        ("UpdateLifecycle", "processed_max_age_days", int_schema(1, 36_500)),
        ("RollbackBody", "version", int_schema(1, i64::from(i32::MAX))),
        (
            "RollbackBody",
            "message",
            text_schema(rat_domain::text::MAX_MESSAGE_CHARS as u32),
        ),
        (
            "PublishBody",
            "message",
            text_schema(rat_domain::text::MAX_MESSAGE_CHARS as u32),
        ),
        (
            "ShareRequest",
            "object_type",
            enum_schema(&["pipeline", "table", "namespace", "landing_zone"]),
        ),
        ("ShareRequest", "object_id", json!({"type": "string", "format": "uuid"})),
        ("ShareRequest", "shared_with", principal_schema()),
        ("ShareRequest", "access_level", enum_schema(&["read", "write"])),
        (
            "TransferRequest",
            "resource_type",
            enum_schema(&["pipeline", "table", "namespace", "landing_zone"]),
        ),
        (
            "TransferRequest",
            "resource_id",
            json!({"type": "string", "format": "uuid"}),
        ),
        ("TransferRequest", "to_user_id", principal_schema()),
        ("AddMember", "object_type", enum_schema(&["pipeline", "table"])),
        ("AddMember", "object_id", json!({"type": "string", "format": "uuid"})),
        // The runner listener's bodies.
        ("ClaimBody", "runner_id", runner_id_schema()),
        ("ClaimBody", "lease_seconds", int_schema(10, 3600)),
        ("ClaimBody", "max_runs", int_schema(1, 100)),
        ("HeartbeatBody", "runner_id", runner_id_schema()),
        ("HeartbeatBody", "lease_seconds", int_schema(10, 3600)),
        ("LogsBody", "runner_id", runner_id_schema()),
        (
            "LogsBody",
            "entries",
            json!({"type": "array", "maxItems": 1000,
            "items": {"$ref": "#/components/schemas/LogEntryBody"}}),
        ),
        (
            "LogEntryBody",
            "timestamp",
            json!({"type": "string", "format": "date-time"}),
        ),
        ("LogEntryBody", "message", text_schema(65_536)),
        ("CompleteBody", "runner_id", runner_id_schema()),
        (
            "CompleteBody",
            "status",
            enum_schema(&["success", "failed", "cancelled"]),
        ),
        (
            "CallbackBody",
            "status",
            enum_schema(&["running", "success", "failed", "cancelled"]),
        ),
        ("CallbackBody", "run_id", json!({"type": "string", "format": "uuid"})),
        ("FailedMergeBody", "run_id", required_text(255)),
        ("FailedMergeBody", "branch_name", required_text(255)),
        ("FailedMergeBody", "error_kind", required_text(255)),
        ("FailedMergeBody", "error_message", text_schema(65_536)),
        ("RegisterPluginBody", "name", name_schema(63)),
        ("RegisterPluginBody", "slot", plugin_text(20)),
        ("RegisterPluginBody", "image", plugin_text(500)),
        // Absent or null is `{}`; anything but an object is refused.
        ("RegisterPluginBody", "config", json!({"type": ["object", "null"]})),
        // `unknown` is what a plugin is before its first report, never a report.
        (
            "PluginHealthBody",
            "status",
            enum_schema(&["healthy", "degraded", "down"]),
        ),
        ("PluginReport", "name", required_text(255)),
        ("QualityResultBody", "test", name_schema(128)),
        ("PluginReport", "group", text_schema(255)),
        ("PluginReport", "version", text_schema(255)),
        ("PluginReport", "package_name", text_schema(255)),
        ("CompleteBody", "rows_written", int_schema(0, i64::MAX)),
        ("CompleteBody", "duration_ms", int_schema(0, i64::from(i32::MAX))),
        ("CallbackBody", "rows_written", int_schema(0, i64::MAX)),
        ("CallbackBody", "duration_ms", int_schema(0, i64::from(i32::MAX))),
        ("QualityResultBody", "duration_ms", int_schema(0, i64::from(i32::MAX))),
        (
            "LogEntryBody",
            "level",
            json!({"type": "string", "pattern": any_case(&[
                "trace", "debug", "info", "warn", "warning", "error", "critical", "fatal",
            ])}),
        ),
        ("FailedMergeBody", "source_hash", text_schema(255)),
        ("FailedMergeBody", "target_hash", text_schema(255)),
        ("CreateProject", "name", project_name_schema()),
        ("UploadForm", "path", pipeline_file_schema()),
        ("CreateProject", "description", description.clone()),
        ("UpdateProject", "name", project_name_schema()),
        ("UpdateProject", "description", description.clone()),
        ("UpdateZone", "owner", or_empty(principal_schema())),
        ("UpdatePipeline", "owner", or_empty(principal_schema())),
        ("PutMetadata", "owner", or_empty(principal_schema())),
        ("PutMetadata", "description", description.clone()),
        (
            "PutMetadata",
            "column_descriptions",
            json!({"type": "object", "maxProperties": rat_domain::text::MAX_COLUMN_DESCRIPTIONS,
                "propertyNames": {"minLength": 1, "maxLength": 255},
                "additionalProperties": text_schema(rat_domain::text::MAX_DESCRIPTION_CHARS as u32)}),
        ),
        ("CreateSchedule", "cron", cron_schema()),
        ("UpdateSchedule", "cron", cron_schema()),
        (
            "CreateSchedule",
            "timezone",
            json!({"$ref": "#/components/schemas/TimeZone"}),
        ),
        (
            "UpdateSchedule",
            "timezone",
            json!({"$ref": "#/components/schemas/TimeZone"}),
        ),
    ]
}

/// Puts [`body_rules`] into the component schemas. An optional property
/// keeps accepting `null` (`serde` reads it as absent).
fn constrain_bodies(document: &mut Value) {
    let schemas = &mut document["components"]["schemas"];
    schemas["Layer"] = json!({"type": "string", "enum": ["bronze", "silver", "gold"],
        "description": "A pipeline's layer."});
    let (create, update, components) = trigger_schemas();
    if schemas.get("CreateTrigger").is_some() {
        schemas["CreateTrigger"] = create;
        schemas["UpdateTrigger"] = update;
        for (name, schema) in components {
            schemas[name.as_str()] = schema;
        }
    }
    // A multipart part's name is a quoted header parameter: no control
    // characters (but tab), no `"` or `\\`, or the body does not parse.
    for form in ["UploadForm", "ZoneUploadForm"] {
        if let Some(form) = schemas.get_mut(form) {
            form["propertyNames"] = json!({"pattern": "^[^\\x00-\\x08\\x0a-\\x1f\\x7f\"\\\\]*$"});
        }
    }
    // utoipa leaves `type` out of some structs' schemas (those with
    // `deny_unknown_fields`): a body of `0` then validated.
    for schema in schemas
        .as_object_mut()
        .into_iter()
        .flat_map(|schemas| schemas.values_mut())
    {
        if schema.get("properties").is_some() && schema.get("type").is_none() {
            schema["type"] = json!("object");
        }
    }
    schemas["TimeZone"] = json!({"type": "string", "enum": rat_domain::ScheduleTimezone::names().collect::<Vec<_>>(),
        "description": "An IANA time zone name."});
    for (schema, property, rule) in body_rules() {
        // The other listener's bodies are not in this document.
        let Some(schema_object) = schemas.get_mut(schema) else {
            continue;
        };
        let required = schema_object["required"]
            .as_array()
            .is_some_and(|required| required.iter().any(|r| r == property));
        let slot = schema_object
            .get_mut("properties")
            .and_then(|properties| properties.get_mut(property))
            .unwrap_or_else(|| panic!("{schema} has no property {property}"));
        let description = slot.get("description").cloned();
        // `null` stays allowed where the field takes it (an `Option`).
        let nullable = slot["type"]
            .as_array()
            .is_some_and(|types| types.iter().any(|t| t == "null"));
        let mut rule = if required || !nullable {
            rule
        } else {
            json!({"oneOf": [rule, {"type": "null"}]})
        };
        if let Some(description) = description {
            rule["description"] = description;
        }
        *slot = rule;
    }
    // A quality result needs its `value` unless its `error` says why there is none.
    if let Some(result) = schemas.get_mut("QualityResultBody") {
        result["anyOf"] = json!([
            {"required": ["value"], "properties": {"value": {"type": "number"}}},
            {"required": ["error"], "properties": {"error": {"type": "string", "minLength": 1}}},
        ]);
    }
}

/// A JSON body whose schema requires no property may be left out (the
/// server reads an empty body as `{}`): such request bodies are optional.
fn optional_bodies(document: &mut Value) {
    let schemas = document["components"]["schemas"].clone();
    let inline = inline_body_rules();
    for_each_operation(document, |_, _, operation| {
        let id = operation["operationId"].as_str().unwrap_or_default().to_owned();
        let Some(body) = operation.get_mut("requestBody") else {
            return;
        };
        if let Some((_, schema)) = inline.iter().find(|(operation, _)| *operation == id) {
            body["content"]["application/json"]["schema"] = schema.clone();
        }
        let schema = &body["content"]["application/json"]["schema"];
        let schema = match schema["$ref"].as_str() {
            Some(reference) => &schemas[reference.trim_start_matches("#/components/schemas/")],
            None if schema.is_object() => schema,
            None => return,
        };
        let resolve = |schema: &Value| match schema["$ref"].as_str() {
            Some(reference) => schemas[reference.trim_start_matches("#/components/schemas/")].clone(),
            None => schema.clone(),
        };
        let requires_a_property =
            |schema: &Value| resolve(schema)["required"].as_array().is_some_and(|r| !r.is_empty());
        // A union (a trigger's variants, say) requires a body when every
        // variant requires a property.
        let variants = ["anyOf", "oneOf"].iter().find_map(|key| schema[*key].as_array());
        let required = match variants {
            Some(variants) => !variants.is_empty() && variants.iter().all(requires_a_property),
            None => requires_a_property(schema),
        };
        if !required {
            body["required"] = json!(false);
        }
    });
}

/// Every response needs a `description` (utoipa leaves it out where the
/// annotation gives none): the status' reason phrase.
fn describe_responses(document: &mut Value) {
    for_each_operation(document, |_, _, operation| {
        let Some(responses) = operation.get_mut("responses").and_then(Value::as_object_mut) else {
            return;
        };
        for (status, response) in responses {
            let Some(response) = response.as_object_mut() else {
                continue;
            };
            if response.contains_key("$ref") {
                continue;
            }
            let missing = response
                .get("description")
                .and_then(Value::as_str)
                .is_none_or(str::is_empty);
            if missing {
                let reason = status
                    .parse::<u16>()
                    .ok()
                    .and_then(|code| axum::http::StatusCode::from_u16(code).ok())
                    .and_then(|code| code.canonical_reason())
                    .unwrap_or("answer");
                response.insert("description".to_owned(), json!(reason));
            }
        }
    });
}

/// Calls `f(path, method, operation)` for every operation of `document`.
fn for_each_operation(document: &mut Value, mut f: impl FnMut(&str, &str, &mut Value)) {
    let Some(paths) = document.get_mut("paths").and_then(Value::as_object_mut) else {
        return;
    };
    for (path, item) in paths {
        let Some(item) = item.as_object_mut() else { continue };
        for (method, operation) in item {
            if matches!(
                method.as_str(),
                "get" | "put" | "post" | "delete" | "options" | "head" | "patch" | "trace"
            ) {
                f(path, method, operation);
            }
        }
    }
}

fn finish_typed(mut document: OpenApi, listener: Listener) -> OpenApi {
    let paths = std::mem::take(&mut document.paths.paths);
    let mut renamed = BTreeMap::new();
    for (path, mut item) in paths {
        for (method, operation) in operations_mut(&mut item) {
            for parameter in operation.parameters.iter_mut().flatten() {
                if let RefOr::T(parameter) = parameter {
                    constrain(&path, method, parameter);
                }
            }
            if needs_credentials(listener, &path) {
                operation.security = Some(vec![SecurityRequirement::new(BEARER, Vec::<String>::new())]);
            }
            let has_body = operation.request_body.is_some();
            for status in common_statuses(listener, &path, method, has_body) {
                let (_, name, _) = COMMON
                    .iter()
                    .find(|(code, _, _)| *code == status)
                    .expect("every common status is described");
                operation
                    .responses
                    .responses
                    .entry(status.to_owned())
                    .or_insert_with(|| RefOr::Ref(Ref::new(format!("#/components/responses/{name}"))));
            }
        }
        renamed.insert(path_template(&path), item);
    }
    document.paths.paths = renamed;
    unique_operation_ids(&mut document);
    add_links(&mut document);
    let components = document.components.get_or_insert_with(Default::default);
    components.security_schemes.insert(
        BEARER.to_owned(),
        RefOr::T(SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer))),
    );
    for (_, name, description) in COMMON {
        components
            .responses
            .insert((*name).to_owned(), RefOr::T(error_response(description)));
    }
    document
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards_become_plain_parameters() {
        assert_eq!(path_template("/api/v1/files/{*path}"), "/api/v1/files/{path}");
        assert_eq!(path_template("/api/v1/runs/{id}"), "/api/v1/runs/{id}");
    }

    #[test]
    fn body_operations_list_the_body_statuses() {
        let statuses = common_statuses(Listener::Public, "/api/v1/namespaces", "post", true);
        for status in ["400", "401", "403", "413", "415", "500", "503"] {
            assert!(statuses.contains(&status), "{status}");
        }
        assert!(!common_statuses(Listener::Public, "/health", "get", false).contains(&"401"));
    }
}
