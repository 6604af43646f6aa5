//! The internal (runner) listener: the runner protocol, served on its own
//! address (`RAT_INTERNAL_LISTEN_ADDR`) by a router of its own, never by the
//! public one.
//!
//! Authentication: `Authorization: Bearer <RAT_RUNNER_TOKEN>`, compared in
//! constant time; user API keys are not accepted here, and the runner token
//! is not accepted on `/api/v1` (the binary refuses to start when both are
//! the same). Without a runner token the listener is open only in community
//! mode (no `RAT_API_KEY`) on a loopback address, or when the operator
//! passed `--insecure-no-auth`; otherwise it answers every request with 401.
//! The binary refuses to bind a non-loopback internal address without a
//! runner token unless `--insecure-no-auth` is given.
//!
//! Routes:
//! - `POST /internal/v1/runs/claim`: hand pending runs to a runner;
//! - `POST /internal/v1/runs/{id}/heartbeat`: extend the lease (or learn to stop);
//! - `POST /internal/v1/runs/{id}/logs`: append log entries;
//! - `POST /internal/v1/runs/{id}/complete`: record the outcome and quality results;
//! - `POST /api/v1/internal/runs/{id}/status`: ratd's runner callback;
//! - `POST /api/v1/internal/failed-merges`: RAT's runner's merge failures;
//! - `POST /api/v1/internal/plugins/register`: a plugin registers (ratd's route);
//! - `POST /api/v1/internal/plugins/{name}/health`: a plugin reports its health;
//! - `GET /internal/v1/files?key=&version=`: one file at one version, for
//!   stores that cannot presign (the filesystem store);
//! - `GET /internal/v1/openapi.json`: this listener's OpenAPI document.
//!
//! Every report about a run the runner does not hold is 409 and changes
//! nothing. Errors use the envelope of the public API; each request is
//! logged (one line, with its request id) but not audited.

use axum::extract::{DefaultBodyLimit, Path, Request, State};
use axum::http::header::{CONTENT_TYPE, LAST_MODIFIED};
use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::middleware::{Next, from_fn_with_state};
use axum::response::{IntoResponse, Response};
use axum::{Json, Router};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use rat_domain::RunId;
use rat_domain::{LogEntry, LogLevel, RunStatus, TestName};
use rat_service::runner::{self, ClaimedRun, Completion, Lease, QualityReport, RunnerId};
use rat_service::runs::RunReport;
use time::OffsetDateTime;
use time::format_description::well_known::{Rfc2822, Rfc3339};
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::error::{ApiError, ApiResult, ErrorEnvelope};
use crate::extract::{ApiJson, ApiQuery, given, path_id};
use crate::middleware;
use crate::routes::runs::RunStatusAnswer;
use crate::state::AppState;
use rat_wire::runner::{
    AcceptedAnswer, CallbackBody, ClaimAnswer, ClaimBody, ClaimedFileDto, ClaimedRunDto, CompleteBody, FailedMergeBody,
    FileQuery, HeartbeatAnswer, HeartbeatBody, IcebergDto, LogsBody, PluginHealthBody, PluginReport,
    RegisterPluginBody,
};

/// The path of the file route (file URLs of claims point here).
pub const FILES_PATH: &str = "/internal/v1/files";

/// The document's fixed parts; paths and schemas come from the handlers.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "RAT runner API",
        description = "The runner protocol of rat-api's internal listener. Every request needs \
                       Authorization: Bearer <RAT_RUNNER_TOKEN>. Every error answers \
                       {\"error\":{\"code\",\"type\",\"message\"}}."
    ),
    components(schemas(crate::error::ErrorEnvelope, crate::error::ErrorBody))
)]
struct InternalDoc;

/// Whether the internal listener, bound to `addr`, may serve without a runner
/// token: in community mode (no API key) on a loopback address, or when the
/// operator asked for no authentication. `Err` (refuse to start) for a
/// non-loopback address without a token or `--insecure-no-auth`.
pub fn open_without_token(
    has_runner_token: bool,
    has_api_key: bool,
    addr: std::net::SocketAddr,
    insecure_no_auth: bool,
) -> Result<bool, String> {
    if has_runner_token {
        return Ok(false);
    }
    if insecure_no_auth {
        return Ok(true);
    }
    if !addr.ip().is_loopback() {
        return Err(format!(
            "refusing to serve the runner listener on {addr} without authentication: set RAT_RUNNER_TOKEN, \
             bind RAT_INTERNAL_LISTEN_ADDR to a loopback address, or pass --insecure-no-auth"
        ));
    }
    Ok(!has_api_key)
}

/// The internal router and its OpenAPI document.
pub fn router_and_openapi(state: AppState) -> (Router, serde_json::Value) {
    let (router, openapi) = OpenApiRouter::with_openapi(InternalDoc::openapi())
        .routes(routes!(claim))
        .routes(routes!(heartbeat))
        .routes(routes!(append_logs))
        .routes(routes!(complete))
        .routes(routes!(callback_status))
        .routes(routes!(failed_merge))
        .routes(routes!(register_plugin))
        .routes(routes!(plugin_health))
        .routes(routes!(file_version))
        .split_for_parts();
    let openapi = crate::openapi::finish(openapi, crate::openapi::Listener::Internal);
    let document = std::sync::Arc::new(openapi.clone());
    let router = router.route(
        "/internal/v1/openapi.json",
        axum::routing::get(move || {
            let document = document.clone();
            async move { Json(document.as_ref().clone()).into_response() }
        }),
    );
    let router = crate::app::with_error_fallbacks(router)
        .layer(from_fn_with_state(state.clone(), middleware::fail_fast))
        .layer(DefaultBodyLimit::max(state.settings.max_json_body))
        // Around the fallback too: an unauthenticated caller learns nothing
        // about which routes exist.
        .layer(from_fn_with_state(state.clone(), authenticate_runner));
    let router = crate::app::outer_layers(router, &state).with_state(state);
    (router, openapi)
}

/// The internal listener's router.
pub fn router(state: AppState) -> Router {
    router_and_openapi(state).0
}

/// Requires `Authorization: Bearer <runner token>` (constant-time compare).
/// Without a configured token, lets requests through only when the listener
/// is open ([`open_without_token`]); otherwise refuses every request.
pub async fn authenticate_runner(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let refusal = match &state.settings.runner_token {
        Some(token) if middleware::bearer_matches(&request, token) => None,
        Some(_) => Some("missing or invalid runner token"),
        None if state.settings.runner_open => None,
        None => Some("the runner listener has no runner token configured (RAT_RUNNER_TOKEN)"),
    };
    if let Some(message) = refusal {
        state.refusals.record(
            crate::refusals::Refusal::Unauthenticated,
            middleware::client_ip(&request),
        );
        return middleware::unauthorized(message);
    }
    next.run(request).await
}

fn duration_ms(value: Option<i64>) -> Result<Option<i32>, ApiError> {
    value
        .map(|ms| {
            i32::try_from(ms)
                .ok()
                .filter(|ms| *ms >= 0)
                .ok_or_else(|| ApiError::invalid(format!("duration_ms must be between 0 and {}", i32::MAX)))
        })
        .transpose()
}

fn rows_written(value: Option<i64>) -> Result<Option<i64>, ApiError> {
    match value {
        Some(rows) if rows < 0 => Err(ApiError::invalid("rows_written must not be negative")),
        other => Ok(other),
    }
}

/// What a query value keeps unescaped: RFC 3986's unreserved characters
/// (ASCII letters and digits, `-`, `.`, `_`, `~`).
const QUERY_VALUE: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_').remove(b'~');

/// Percent-encodes a query value (everything but RFC 3986's unreserved characters).
fn encode_query_value(value: &str) -> String {
    utf8_percent_encode(value, QUERY_VALUE).to_string()
}

/// Records `plugins` for `runner` when the report carries them.
async fn report_plugins(state: &AppState, runner: &RunnerId, plugins: Option<Vec<PluginReport>>) -> ApiResult<()> {
    let Some(plugins) = plugins else {
        return Ok(());
    };
    let plugins: Vec<runner::RunnerPlugin> = plugins
        .into_iter()
        .map(|p| runner::RunnerPlugin {
            name: p.name,
            group: p.group,
            version: p.version,
            package_name: p.package_name,
        })
        .collect();
    runner::report_plugins(&state.services, runner, &plugins, OffsetDateTime::now_utc()).await?;
    Ok(())
}

fn claimed_dto(state: &AppState, claimed: ClaimedRun) -> ClaimedRunDto {
    let base = state.settings.internal_public_url.trim_end_matches('/');
    ClaimedRunDto {
        run_id: claimed.run.id.into(),
        namespace: claimed.pipeline.namespace.as_str().to_owned(),
        layer: claimed.pipeline.layer.as_str().to_owned(),
        pipeline: claimed.pipeline.name.as_str().to_owned(),
        pipeline_type: claimed.pipeline_type.as_str().to_owned(),
        trigger: claimed.run.trigger,
        version_number: claimed.run.version_number.get(),
        lease_expires_at: claimed.run.lease_expires_at,
        iceberg: IcebergDto {
            snapshot_max_age_days: claimed.iceberg.snapshot_max_age_days,
            orphan_file_max_age_days: claimed.iceberg.orphan_file_max_age_days,
        },
        files: claimed
            .files
            .into_iter()
            .map(|file| {
                let url = file.url.unwrap_or_else(|| {
                    format!(
                        "{base}{FILES_PATH}?key={}&version={}",
                        encode_query_value(file.key.as_str()),
                        encode_query_value(file.version_id.as_str())
                    )
                });
                ClaimedFileDto {
                    key: file.key.to_string(),
                    path: file.path,
                    version_id: file.version_id.to_string(),
                    url,
                }
            })
            .collect(),
    }
}

/// Hands up to `max_runs` pending runs, oldest first, to the runner: each is
/// moved to `running` and leased to it, and comes with its pinned files.
#[utoipa::path(post, path = "/internal/v1/runs/claim", tag = "runner", request_body = ClaimBody,
    responses((status = 200, body = ClaimAnswer), (status = 400, body = ErrorEnvelope),
    (status = 401, body = ErrorEnvelope), (status = 503, body = ErrorEnvelope)))]
pub async fn claim(State(state): State<AppState>, ApiJson(body): ApiJson<ClaimBody>) -> ApiResult<Json<ClaimAnswer>> {
    let runner = RunnerId::parse(&body.runner_id)?;
    let max_runs = runner::claim_size(body.max_runs)?;
    let lease = Lease::parse(body.lease_seconds)?;
    report_plugins(&state, &runner, body.plugins).await?;
    let claimed = runner::claim(
        &state.services,
        &runner,
        max_runs,
        lease,
        state.settings.presign_ttl,
        OffsetDateTime::now_utc(),
    )
    .await?;
    Ok(Json(ClaimAnswer {
        runs: claimed.into_iter().map(|c| claimed_dto(&state, c)).collect(),
    }))
}

/// Extends the runner's lease on a run it holds; `stop: true` when the run was cancelled.
#[utoipa::path(post, path = "/internal/v1/runs/{id}/heartbeat", tag = "runner",
    params(("id" = String, Path, description = "run id")), request_body = HeartbeatBody,
    responses((status = 200, body = HeartbeatAnswer), (status = 400, body = ErrorEnvelope),
    (status = 401, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope),
    (status = 409, description = "the runner does not hold the run", body = ErrorEnvelope)))]
pub async fn heartbeat(
    State(state): State<AppState>,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<HeartbeatBody>,
) -> ApiResult<Json<HeartbeatAnswer>> {
    let id: RunId = path_id(&id, "run")?;
    let runner = RunnerId::parse(&body.runner_id)?;
    let lease = body.lease_seconds.map(Lease::seconds).transpose()?;
    report_plugins(&state, &runner, body.plugins).await?;
    let answer = runner::heartbeat(&state.services, id, &runner, lease, OffsetDateTime::now_utc()).await?;
    Ok(Json(HeartbeatAnswer {
        run_id: answer.run_id.into(),
        status: answer.status.as_str().to_owned(),
        lease_expires_at: answer.lease_expires_at,
        stop: answer.stop,
    }))
}

/// Appends log entries to a run the runner holds.
#[utoipa::path(post, path = "/internal/v1/runs/{id}/logs", tag = "runner",
    params(("id" = String, Path, description = "run id")), request_body = LogsBody,
    responses((status = 204, description = "appended"), (status = 400, body = ErrorEnvelope),
    (status = 401, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope),
    (status = 409, description = "the runner does not hold the run", body = ErrorEnvelope),
    (status = 413, body = ErrorEnvelope)))]
pub async fn append_logs(
    State(state): State<AppState>,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<LogsBody>,
) -> ApiResult<StatusCode> {
    let id: RunId = path_id(&id, "run")?;
    let runner = RunnerId::parse(&body.runner_id)?;
    if body.entries.len() > rat_service::runner::MAX_LOG_BATCH {
        return Err(ApiError::invalid(format!(
            "at most {} log entries per request, got {}",
            rat_service::runner::MAX_LOG_BATCH,
            body.entries.len()
        )));
    }
    let entries = body
        .entries
        .into_iter()
        .enumerate()
        .map(|(i, entry)| {
            let timestamp = OffsetDateTime::parse(&entry.timestamp, &Rfc3339).map_err(|_| {
                ApiError::invalid(format!(
                    "entries[{i}].timestamp must be an RFC 3339 time, got {:?}",
                    entry.timestamp
                ))
            })?;
            let level = LogLevel::parse_lenient(&entry.level)
                .map_err(|_| ApiError::invalid(format!("entries[{i}].level {:?} is not a log level", entry.level)))?;
            Ok(LogEntry::new(timestamp, level, entry.message)?)
        })
        .collect::<Result<Vec<_>, ApiError>>()?;
    runner::append_logs(&state.services, id, &runner, &entries, OffsetDateTime::now_utc()).await?;
    Ok(StatusCode::NO_CONTENT)
}

fn terminal_status(text: &str) -> Result<RunStatus, ApiError> {
    match text.parse::<RunStatus>() {
        Ok(status) if status.is_terminal() => Ok(status),
        _ => Err(ApiError::invalid(format!(
            "status must be success, failed or cancelled, got {text:?}"
        ))),
    }
}

/// Records the outcome of a run the runner holds, with its quality results, in one transaction.
#[utoipa::path(post, path = "/internal/v1/runs/{id}/complete", tag = "runner",
    params(("id" = String, Path, description = "run id")), request_body = CompleteBody,
    responses((status = 200, body = RunStatusAnswer),
    (status = 400, description = "bad body, or a quality test the pipeline does not have", body = ErrorEnvelope),
    (status = 401, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope),
    (status = 409, description = "the runner does not hold the run", body = ErrorEnvelope)))]
pub async fn complete(
    State(state): State<AppState>,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<CompleteBody>,
) -> ApiResult<Json<RunStatusAnswer>> {
    let id: RunId = path_id(&id, "run")?;
    let runner = RunnerId::parse(&body.runner_id)?;
    let status = terminal_status(&body.status)?;
    let quality_results = body
        .quality_results
        .into_iter()
        .map(|result| {
            Ok(QualityReport {
                test: TestName::parse(&result.test)?,
                value: result.value,
                expected: result.expected,
                duration_ms: duration_ms(result.duration_ms)?,
                error: given(result.error),
            })
        })
        .collect::<Result<Vec<_>, ApiError>>()?;
    let completion = Completion {
        status,
        report: RunReport {
            error: given(body.error),
            duration_ms: duration_ms(body.duration_ms)?,
            rows_written: rows_written(body.rows_written)?,
            phase_profiles: body.phase_profiles.filter(|p| !p.is_null()),
        },
        quality_results,
    };
    let run = runner::complete(&state.services, id, &runner, &completion, OffsetDateTime::now_utc()).await?;
    Ok(Json(RunStatusAnswer::from(&run)))
}

/// ratd's runner callback: applies the reported status through the run
/// state machine, whoever holds the run (ratd's runners know no leases).
#[utoipa::path(post, path = "/api/v1/internal/runs/{id}/status", tag = "runner",
    params(("id" = String, Path, description = "run id")), request_body = CallbackBody,
    responses((status = 200, body = RunStatusAnswer), (status = 400, body = ErrorEnvelope),
    (status = 401, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope),
    (status = 409, description = "the run already finished, or the move is not allowed", body = ErrorEnvelope)))]
pub async fn callback_status(
    State(state): State<AppState>,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<CallbackBody>,
) -> ApiResult<Json<RunStatusAnswer>> {
    let id: RunId = path_id(&id, "run")?;
    if body.run_id.parse::<RunId>().ok() != Some(id) {
        return Err(ApiError::invalid(
            "run_id in the body must equal the run id in the path",
        ));
    }
    let status = match body.status.parse::<RunStatus>() {
        Ok(status) if status != RunStatus::Pending => status,
        _ => {
            return Err(ApiError::invalid(format!(
                "status must be running, success, failed or cancelled, got {:?}",
                body.status
            )));
        }
    };
    let report = RunReport {
        error: given(body.error),
        duration_ms: duration_ms(body.duration_ms)?,
        rows_written: rows_written(body.rows_written)?,
        phase_profiles: None,
    };
    let run = runner::callback_status(&state.services, id, status, &report, OffsetDateTime::now_utc()).await?;
    Ok(Json(RunStatusAnswer::from(&run)))
}

/// RAT's runner reports a merge that failed; it is stored for admins
/// (`GET /api/v1/admin/failed-merges`) and pruned with the audit log's age.
#[utoipa::path(post, path = "/api/v1/internal/failed-merges", tag = "runner", request_body = FailedMergeBody,
    responses((status = 200, body = AcceptedAnswer), (status = 400, body = ErrorEnvelope),
    (status = 401, body = ErrorEnvelope)))]
pub async fn failed_merge(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<FailedMergeBody>,
) -> ApiResult<Json<AcceptedAnswer>> {
    let report = rat_service::failed_merges::NewFailedMerge {
        run_id: body.run_id,
        branch_name: body.branch_name,
        source_hash: given(body.source_hash),
        target_hash: given(body.target_hash),
        error_kind: body.error_kind,
        error_message: body.error_message,
    };
    rat_service::failed_merges::record(&state.services, &report, OffsetDateTime::now_utc()).await?;
    Ok(Json(AcceptedAnswer {
        status: "accepted".to_owned(),
    }))
}

fn plugin_dto(p: rat_domain::Plugin) -> crate::routes::meta::PluginDto {
    crate::routes::meta::PluginDto {
        name: p.name.into_string(),
        slot: p.slot,
        image: p.image,
        status: p.status.as_str().to_owned(),
        config: p.config,
        last_health: p.last_health,
        created_at: p.created_at,
    }
}

/// A plugin registers, or registers again (an upsert on the name: slot,
/// image and config are replaced; status and last report stay). A new
/// plugin is `unknown` until it reports its health.
#[utoipa::path(post, path = "/api/v1/internal/plugins/register", tag = "runner", request_body = RegisterPluginBody,
    responses((status = 200, body = crate::routes::meta::PluginDto), (status = 400, body = ErrorEnvelope),
    (status = 401, body = ErrorEnvelope)))]
pub async fn register_plugin(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<RegisterPluginBody>,
) -> ApiResult<Json<crate::routes::meta::PluginDto>> {
    let registration = rat_service::platform::PluginRegistration {
        name: rat_domain::PluginName::parse(&body.name)?,
        slot: body.slot,
        image: body.image,
        config: body.config,
    };
    let plugin = rat_service::platform::register_plugin(&state.services, &registration).await?;
    Ok(Json(plugin_dto(plugin)))
}

/// A registered plugin reports its health; the report's time is
/// `last_health`. A plugin that stops reporting is marked `down` by the
/// reaper's pass after `RAT_PLUGIN_REPORT_WINDOW_SECS`.
#[utoipa::path(post, path = "/api/v1/internal/plugins/{name}/health", tag = "runner",
    params(("name" = String, Path)), request_body = PluginHealthBody,
    responses((status = 200, body = crate::routes::meta::PluginDto), (status = 400, body = ErrorEnvelope),
    (status = 401, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope)))]
pub async fn plugin_health(
    State(state): State<AppState>,
    Path(name): Path<String>,
    ApiJson(body): ApiJson<PluginHealthBody>,
) -> ApiResult<Json<crate::routes::meta::PluginDto>> {
    let name = rat_domain::PluginName::parse(&name)?;
    let status: rat_domain::PluginStatus = body.status.parse()?;
    let plugin =
        rat_service::platform::report_plugin_health(&state.services, &name, status, OffsetDateTime::now_utc()).await?;
    Ok(Json(plugin_dto(plugin)))
}

/// One file at one exact version (the URL of claimed files when the store
/// cannot presign). The version served is in `x-amz-version-id`.
#[utoipa::path(get, path = "/internal/v1/files", tag = "runner", params(FileQuery),
    responses((status = 200, description = "the bytes of that version", content_type = "application/octet-stream"),
    (status = 400, body = ErrorEnvelope), (status = 401, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope)))]
pub async fn file_version(State(state): State<AppState>, ApiQuery(query): ApiQuery<FileQuery>) -> ApiResult<Response> {
    let object = runner::read_file_version(&state.services, &query.key, &query.version).await?;
    let version = HeaderValue::from_str(object.version_id.as_str()).map_err(|_| ApiError::internal())?;
    let mut response = (
        [(CONTENT_TYPE, HeaderValue::from_static("application/octet-stream"))],
        object.body,
    )
        .into_response();
    response
        .headers_mut()
        .insert(HeaderName::from_static("x-amz-version-id"), version);
    if let Ok(modified) = object.last_modified.format(&Rfc2822)
        && let Ok(value) = HeaderValue::from_str(&modified)
    {
        response.headers_mut().insert(LAST_MODIFIED, value);
    }
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_values_are_percent_encoded() {
        assert_eq!(encode_query_value("a/b c&d=é"), "a%2Fb%20c%26d%3D%C3%A9");
        assert_eq!(encode_query_value("Az09-._~"), "Az09-._~");
    }

    #[test]
    fn an_open_listener_needs_loopback_and_community_mode() {
        let loopback: std::net::SocketAddr = "127.0.0.1:8090".parse().unwrap();
        let public: std::net::SocketAddr = "0.0.0.0:8090".parse().unwrap();
        assert_eq!(open_without_token(true, false, public, false), Ok(false));
        assert_eq!(open_without_token(false, false, loopback, false), Ok(true));
        assert_eq!(open_without_token(false, true, loopback, false), Ok(false));
        assert!(open_without_token(false, false, public, false).is_err());
        assert_eq!(open_without_token(false, true, public, true), Ok(true));
    }
}
