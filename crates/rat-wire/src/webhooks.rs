//! `POST /api/v1/webhooks`: the answer of a fired webhook trigger (contract §9).

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// The answer to a webhook call that fired its trigger.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct WebhookFired {
    /// The run the trigger created.
    pub run_id: Uuid,
}
