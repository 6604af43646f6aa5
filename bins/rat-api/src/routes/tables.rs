//! `/api/v1`: Table metadata (contract §12).

use utoipa_axum::router::OpenApiRouter;

use crate::state::AppState;

/// The routes of this module.
pub fn router(state: &AppState) -> OpenApiRouter<AppState> {
    let _ = state;
    OpenApiRouter::new()
}
