//! `/api/v1`: Quality tests (contract §10).

use utoipa_axum::router::OpenApiRouter;

use crate::state::AppState;

/// The routes of this module.
pub fn router(state: &AppState) -> OpenApiRouter<AppState> {
    // Wrap the routes in `crate::app::gated(Feature::QualityTests, state, routes)`
    // once there are some: a route layer on an empty router panics.
    let _ = state;
    OpenApiRouter::new()
}
