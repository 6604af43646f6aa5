//! `/api/v1`: The audit log (contract §12).

use axum::Json;
use axum::extract::State;
use rat_domain::AuditEntry;
use rat_service::audit::AuditFilter;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::error::{ApiError, ApiResult, ErrorEnvelope};
use crate::extract::{ApiQuery, CursorPageParams, Identity, given};
use crate::middleware::Feature;
use crate::state::AppState;

/// The routes of this module, answering 404 while the `audit_log` feature is off.
pub fn router(state: &AppState) -> OpenApiRouter<AppState> {
    crate::app::gated(Feature::AuditLog, state, OpenApiRouter::new().routes(routes!(list)))
}

/// One audit entry (the seed's columns).
#[derive(Debug, Serialize, ToSchema)]
pub struct AuditEntryDto {
    /// Primary key.
    pub id: Uuid,
    /// Who acted.
    pub actor: String,
    /// What was done (`pipeline.create`, or `METHOD /route`).
    pub action: String,
    /// Kind of object acted on, when known.
    pub object_type: Option<String>,
    /// The object's id, when known.
    pub object_id: Option<Uuid>,
    /// Method, path, route, status, request id, client address.
    #[schema(value_type = Option<Object>)]
    pub details: Option<serde_json::Value>,
    /// When.
    #[serde(with = "crate::routes::rfc3339")]
    pub timestamp: OffsetDateTime,
}

impl From<AuditEntry> for AuditEntryDto {
    fn from(e: AuditEntry) -> Self {
        AuditEntryDto {
            id: e.id,
            actor: e.actor,
            action: e.action,
            object_type: e.object_type,
            object_id: e.object_id,
            details: e.details,
            timestamp: e.timestamp,
        }
    }
}

/// A page of audit entries.
#[derive(Debug, Serialize, ToSchema)]
pub struct AuditList {
    /// The page, newest first.
    pub entries: Vec<AuditEntryDto>,
    /// Count of every entry matching the filters.
    pub total: i64,
    /// The `cursor` of the next page; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

/// Filters of `GET /audit`.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AuditQuery {
    /// Only this actor.
    pub actor: Option<String>,
    /// Only this action.
    pub action: Option<String>,
    /// Only this kind of object.
    pub object_type: Option<String>,
    /// Only entries at or after this time (RFC 3339).
    pub since: Option<String>,
    /// Only entries before this time (RFC 3339, exclusive).
    pub until: Option<String>,
    /// Rows per page (default 50, at most 200).
    pub limit: Option<String>,
    /// Rows to skip; not with `cursor`.
    pub offset: Option<String>,
    /// Where the page starts: the `next_cursor` of the previous page (opaque).
    pub cursor: Option<String>,
}

fn time_param(name: &str, value: Option<&str>) -> ApiResult<Option<OffsetDateTime>> {
    value
        .filter(|v| !v.is_empty())
        .map(|v| {
            OffsetDateTime::parse(v, &Rfc3339)
                .map_err(|_| ApiError::invalid(format!("{name} must be an RFC 3339 time, got {v:?}")))
        })
        .transpose()
}

/// Audit entries, filtered in SQL, newest first.
#[utoipa::path(get, path = "/audit", tag = "audit", params(AuditQuery), responses(
    (status = 200, body = AuditList), (status = 400, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope)))]
pub async fn list(
    State(state): State<AppState>,
    identity: Identity,
    ApiQuery(query): ApiQuery<AuditQuery>,
) -> ApiResult<Json<AuditList>> {
    let (page, cursor) = CursorPageParams {
        limit: query.limit,
        offset: query.offset,
        cursor: query.cursor,
    }
    .page()?;
    let filter = AuditFilter {
        since: time_param("since", query.since.as_deref())?,
        until: time_param("until", query.until.as_deref())?,
        actor: given(query.actor),
        action: given(query.action),
        object_type: given(query.object_type),
    };
    let page = rat_service::audit::list(&state.services, &identity.caller, &filter, page, cursor.as_deref()).await?;
    Ok(Json(AuditList {
        entries: page.items.into_iter().map(AuditEntryDto::from).collect(),
        total: page.total,
        next_cursor: page.next_cursor,
    }))
}
