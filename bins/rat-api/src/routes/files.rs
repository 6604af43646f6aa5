//! `/api/v1`: Files in the store (contract §5).

use utoipa_axum::router::OpenApiRouter;

use crate::state::AppState;

/// The routes of this module.
pub fn router(state: &AppState) -> OpenApiRouter<AppState> {
    let _ = state;
    OpenApiRouter::new()
}
