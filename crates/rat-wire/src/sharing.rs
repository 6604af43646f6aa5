//! `/api/v1/sharing`: shares and ownership transfer (contract §12).

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Body of `POST /sharing/transfer`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct TransferRequest {
    /// `pipeline` (as in ratd) or `table` (a table metadata row).
    pub resource_type: String,
    /// The pipeline's or table metadata row's id.
    pub resource_id: String,
    /// The new owner. ratd's SDK sends it as `new_owner`, which is accepted too.
    #[serde(alias = "new_owner")]
    pub to_user_id: String,
}

/// Answer of a transfer.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Transferred {
    /// Always `true`.
    pub transferred: bool,
    /// The object's id.
    pub resource_id: Uuid,
    /// Its owner now.
    pub new_owner: String,
}

/// Body of `POST /sharing`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ShareRequest {
    /// `pipeline`, `table` or `namespace` (a share on a namespace covers what is in it).
    pub object_type: String,
    /// The object's id.
    pub object_id: String,
    /// A user, or `role:NAME` for everyone with that role.
    pub shared_with: String,
    /// `read` or `write`.
    pub access_level: String,
}

/// A grant.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ShareDto {
    /// Its id (to remove it).
    pub id: Uuid,
    /// The shared object's kind.
    pub object_type: String,
    /// The shared object's id.
    pub object_id: Uuid,
    /// A user, or `role:NAME`.
    pub shared_with: String,
    /// `read` or `write`.
    pub access_level: String,
    /// Who granted it.
    pub granted_by: String,
    /// When.
    #[serde(with = "crate::rfc3339")]
    pub granted_at: time::OffsetDateTime,
}

/// `GET /sharing` filters.
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::IntoParams))]
#[cfg_attr(feature = "openapi", into_params(parameter_in = Query))]
pub struct ShareQuery {
    /// `pipeline`, `table` or `namespace`.
    pub object_type: Option<String>,
    /// The object's id.
    pub object_id: Option<String>,
    /// Rows per page (default 50, at most 200).
    pub limit: Option<String>,
    /// Rows to skip.
    pub offset: Option<String>,
}

/// One page of an object's shares.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ShareList {
    /// By principal.
    pub shares: Vec<ShareDto>,
    /// All the object's shares.
    pub total: i64,
}

#[cfg(feature = "domain")]
impl From<rat_domain::Share> for ShareDto {
    fn from(share: rat_domain::Share) -> Self {
        ShareDto {
            id: share.id,
            object_type: share.object_type.as_str().to_owned(),
            object_id: share.object_id,
            shared_with: share.shared_with,
            access_level: share.access_level.as_str().to_owned(),
            granted_by: share.granted_by,
            granted_at: share.granted_at,
        }
    }
}
