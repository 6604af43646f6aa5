//! `/api/v1`: Runs: create, list, get, cancel, logs (contract §7).

use utoipa_axum::router::OpenApiRouter;

use crate::state::AppState;

/// The routes of this module.
pub fn router(state: &AppState) -> OpenApiRouter<AppState> {
    let _ = state;
    OpenApiRouter::new()
}
