//! `/api/v1/runs`: create, list, get, cancel, logs (contract §7).
//!
//! `GET /runs/{id}/logs` answers JSON, or, with `Accept: text/event-stream`,
//! a live SSE stream (see [`crate::live`]): existing entries, new ones as
//! they are appended, then `event: status` and the end of the stream.

use rat_domain::RunId;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use axum::extract::{ConnectInfo, Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::sse::{KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use rat_domain::{Layer, NamespaceName, PipelineName, RunSortField, RunStatus, Sort, trigger_label};
use rat_service::runs::RunFilter;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::error::{ApiError, ApiResult, ErrorEnvelope};
use crate::extract::{ApiJson, ApiQuery, CursorPageParams, Identity, given, path_id, pipeline_ref};
use crate::middleware::AuditObject;
use crate::state::AppState;
pub use rat_wire::runs::{CreateRun, LogEntry, LogQuery, RunDto, RunList, RunLogs, RunQuery, RunStatusAnswer};

/// The routes of this module.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list, create))
        .routes(routes!(get))
        .routes(routes!(cancel))
        .routes(routes!(logs))
}

fn parse_time(name: &str, value: Option<String>) -> Result<Option<OffsetDateTime>, ApiError> {
    given(value)
        .map(|text| {
            OffsetDateTime::parse(&text, &Rfc3339).map_err(|_| {
                ApiError::invalid(format!(
                    "{name} must be an RFC 3339 time such as 2026-01-31T12:00:00Z, got {text:?}"
                ))
            })
        })
        .transpose()
}

/// Runs, filtered, sorted and paged in SQL.
#[utoipa::path(get, path = "/runs", tag = "runs", params(RunQuery), responses(
    (status = 200, body = RunList), (status = 400, body = ErrorEnvelope)))]
pub async fn list(
    State(state): State<AppState>,
    identity: Identity,
    ApiQuery(query): ApiQuery<RunQuery>,
) -> ApiResult<Json<RunList>> {
    let (page, cursor) = CursorPageParams {
        limit: query.limit,
        offset: query.offset,
        cursor: query.cursor,
    }
    .page()?;
    let filter = RunFilter {
        namespace: given(query.namespace)
            .as_deref()
            .map(NamespaceName::parse)
            .transpose()?,
        layer: given(query.layer).as_deref().map(str::parse::<Layer>).transpose()?,
        pipeline: given(query.pipeline).as_deref().map(PipelineName::parse).transpose()?,
        pipeline_id: None,
        status: given(query.status)
            .as_deref()
            .map(str::parse::<RunStatus>)
            .transpose()?,
        started_after: parse_time("started_after", query.started_after)?,
        started_before: parse_time("started_before", query.started_before)?,
        readable_by: None,
    };
    let sort = match given(query.sort) {
        None => rat_service::runs::DEFAULT_SORT,
        Some(text) => Sort::<RunSortField>::parse(&text)?,
    };
    let page = rat_service::runs::list(
        &state.services,
        &identity.caller,
        &filter,
        sort,
        page,
        cursor.as_deref(),
    )
    .await?;
    Ok(Json(RunList {
        runs: page.items.into_iter().map(RunDto::from).collect(),
        total: page.total,
        next_cursor: page.next_cursor,
    }))
}

/// Creates a pending run of the pipeline's latest published version.
#[utoipa::path(post, path = "/runs", tag = "runs", request_body = CreateRun, responses(
    (status = 202, body = RunStatusAnswer), (status = 400, body = ErrorEnvelope),
    (status = 404, body = ErrorEnvelope),
    (status = 409, description = "the pipeline was never published", body = ErrorEnvelope)))]
pub async fn create(
    State(state): State<AppState>,
    identity: Identity,
    ApiJson(body): ApiJson<CreateRun>,
) -> ApiResult<impl IntoResponse> {
    let address = pipeline_ref(&body.namespace, &body.layer, &body.pipeline)?;
    let trigger = match given(body.trigger) {
        None => trigger_label::MANUAL.to_owned(),
        Some(label) => trigger_label::parse_client_label(&label)?,
    };
    let run = rat_service::runs::create(
        &state.services,
        &identity.caller,
        &address,
        &trigger,
        OffsetDateTime::now_utc(),
    )
    .await?;
    Ok((
        StatusCode::ACCEPTED,
        Extension(AuditObject::new("run.create", "run", Some(run.id.into()))),
        Json(RunStatusAnswer::from(&run)),
    ))
}

/// One run.
#[utoipa::path(get, path = "/runs/{id}", tag = "runs", params(("id" = String, Path, description = "run id")),
    responses((status = 200, body = RunDto), (status = 404, body = ErrorEnvelope)))]
pub async fn get(State(state): State<AppState>, identity: Identity, Path(id): Path<String>) -> ApiResult<Json<RunDto>> {
    let id: RunId = path_id(&id, "run")?;
    Ok(Json(
        rat_service::runs::get(&state.services, &identity.caller, id)
            .await?
            .into(),
    ))
}

/// Cancels a pending or running run.
#[utoipa::path(post, path = "/runs/{id}/cancel", tag = "runs", params(("id" = String, Path, description = "run id")),
    responses((status = 200, body = RunStatusAnswer), (status = 404, body = ErrorEnvelope),
    (status = 409, description = "the run already finished", body = ErrorEnvelope)))]
pub async fn cancel(
    State(state): State<AppState>,
    identity: Identity,
    Path(id): Path<String>,
) -> ApiResult<impl IntoResponse> {
    let id: RunId = path_id(&id, "run")?;
    let run = rat_service::runs::cancel(&state.services, &identity.caller, id, OffsetDateTime::now_utc()).await?;
    Ok((
        Extension(AuditObject::new("run.cancel", "run", Some(run.id.into()))),
        Json(RunStatusAnswer::from(&run)),
    ))
}

/// The run's log entries and status: JSON, or with `Accept: text/event-stream`
/// a live stream of `event: log` (`{timestamp, level, message}`, with the
/// entry's id when it has one; `Last-Event-ID` resumes after it) and a final
/// `event: status` (`{status}`) once the run has ended, with `: keep-alive`
/// comments while idle.
#[utoipa::path(get, path = "/runs/{id}/logs", tag = "runs",
    params(("id" = String, Path, description = "run id"),
        ("Last-Event-ID" = Option<String>, Header, description = "SSE only: resume after this entry id"),
        LogQuery),
    responses(
        (status = 200, description = "JSON, or an SSE stream with `Accept: text/event-stream`",
            content((RunLogs = "application/json"), (String = "text/event-stream"))),
        (status = 404, body = ErrorEnvelope),
        (status = 429, description = "too many live streams from this client or on this server",
            body = ErrorEnvelope)))]
pub async fn logs(
    State(state): State<AppState>,
    identity: Identity,
    Path(id): Path<String>,
    connection: Option<Extension<ConnectInfo<SocketAddr>>>,
    headers: HeaderMap,
    ApiQuery(query): ApiQuery<LogQuery>,
) -> ApiResult<Response> {
    let id: RunId = path_id(&id, "run")?;
    let limit = match given(query.limit) {
        None => rat_service::runs::MAX_LOG_ENTRIES,
        Some(text) => match text.trim().parse::<i64>() {
            Ok(limit) if limit >= 1 => limit,
            _ => {
                return Err(ApiError::invalid(format!(
                    "limit must be a whole number from 1, got {text:?}"
                )));
            }
        },
    };
    if wants_event_stream(&headers) {
        // Without connection info (an embedding that does not provide it),
        // every client shares one allowance.
        let client = connection.map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |c| c.0.0.ip());
        return stream_logs(state, identity, id, client, last_event_id(&headers)).await;
    }
    let (logs, next_cursor) = rat_service::runs::log_page(
        &state.services,
        &identity.caller,
        id,
        given(query.cursor).as_deref(),
        limit,
    )
    .await?;
    Ok(Json(RunLogs {
        logs: logs.entries.into_iter().map(LogEntry::from_stored).collect(),
        status: logs.status.as_str().to_owned(),
        next_cursor,
    })
    .into_response())
}

/// Whether the client asked for `text/event-stream` (an explicit media
/// range: `*/*` keeps the JSON answer).
fn wants_event_stream(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .any(|range| {
            range
                .split(';')
                .next()
                .is_some_and(|media| media.trim().eq_ignore_ascii_case("text/event-stream"))
        })
}

/// The entry id in `Last-Event-ID`, if it is one; anything else restarts
/// the stream from the beginning.
fn last_event_id(headers: &HeaderMap) -> Option<i64> {
    headers
        .get("last-event-id")
        .and_then(|value| value.to_str().ok())
        .and_then(|text| text.trim().parse::<i64>().ok())
        .filter(|id| *id >= 0)
}

/// Opens the live stream: a slot first (429 beyond the limits), then the
/// run (404, before anything is streamed), then the events.
async fn stream_logs(
    state: AppState,
    identity: Identity,
    id: RunId,
    client: IpAddr,
    resume_after: Option<i64>,
) -> ApiResult<Response> {
    let settings = &state.settings;
    let slot = state
        .live
        .acquire(client, settings.sse_max_per_client, settings.sse_max_total)
        .map_err(|limit| {
            tracing::warn!(%client, %limit, "live log stream refused");
            ApiError::new(StatusCode::TOO_MANY_REQUESTS, "RESOURCE_EXHAUSTED", limit.to_string())
        })?;
    // Subscribed before the first read: whatever is committed after that
    // read wakes the stream up.
    let wakes = state.live.subscribe();
    let first = rat_service::runs::legacy_log_entries(&state.services, &identity.caller, id).await?;
    // Legacy entries carry no id: a client resuming after an id has them.
    let legacy = match resume_after {
        Some(_) => Vec::new(),
        None => first
            .entries
            .into_iter()
            .map(|entry| serde_json::to_string(&LogEntry::from_stored(entry)).unwrap_or_default())
            .collect(),
    };
    let events = crate::live::log_events(
        state.services.clone(),
        &state.live,
        crate::live::StreamStart {
            run: id,
            caller: identity.caller,
            legacy,
            cursor: resume_after.unwrap_or(0),
            wakes,
            slot,
        },
        crate::live::StreamOptions {
            poll_interval: settings.sse_poll_interval,
        },
    );
    let mut response = Sse::new(events)
        .keep_alive(KeepAlive::new().interval(settings.sse_keep_alive).text("keep-alive"))
        .into_response();
    // Reverse proxies (nginx) would otherwise buffer the stream.
    response
        .headers_mut()
        .insert("x-accel-buffering", HeaderValue::from_static("no"));
    Ok(response)
}
