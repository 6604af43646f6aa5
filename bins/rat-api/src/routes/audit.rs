//! `/api/v1`: The audit log (contract §12).

use axum::Json;
use axum::extract::State;
use rat_service::audit::AuditFilter;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::error::{ApiError, ApiResult, ErrorEnvelope};
use crate::extract::{ApiQuery, CursorPageParams, Identity, given};
use crate::middleware::Feature;
use crate::state::AppState;
pub use rat_wire::audit::{AuditEntryDto, AuditList, AuditQuery};

/// The routes of this module, answering 404 while the `audit_log` feature is off.
pub fn router(state: &AppState) -> OpenApiRouter<AppState> {
    crate::app::gated(Feature::AuditLog, state, OpenApiRouter::new().routes(routes!(list)))
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
