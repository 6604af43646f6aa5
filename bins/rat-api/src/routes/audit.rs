//! `/api/v1`: The audit log (contract §12).

use utoipa_axum::router::OpenApiRouter;

use crate::state::AppState;

/// The routes of this module.
pub fn router(state: &AppState) -> OpenApiRouter<AppState> {
    // Wrap the routes in `crate::app::gated(Feature::AuditLog, state, routes)`
    // once there are some: a route layer on an empty router panics.
    let _ = state;
    OpenApiRouter::new()
}
