//! `/api/v1/projects`: named groups of pipelines and tables, and their members.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use uuid::Uuid;

/// A project.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ProjectDto {
    /// Its id.
    pub id: Uuid,
    /// Unique name (free text, at most 255 characters).
    pub name: String,
    /// Free text.
    pub description: String,
    /// Who created it (who may change it, beside admins).
    pub created_by: Option<String>,
    /// Creation time.
    #[serde(with = "crate::rfc3339")]
    pub created_at: OffsetDateTime,
}

/// `GET /projects` filters.
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::IntoParams))]
#[cfg_attr(feature = "openapi", into_params(parameter_in = Query))]
pub struct ProjectQuery {
    /// Case-insensitive substring of the name (at most 255 characters).
    pub search: Option<String>,
    /// Rows per page (default 50, at most 200).
    pub limit: Option<String>,
    /// Rows to skip.
    pub offset: Option<String>,
}

/// A page of projects.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ProjectList {
    /// The page, by name.
    pub projects: Vec<ProjectDto>,
    /// Count of every project matching `search`.
    pub total: i64,
}

/// Body of `POST /projects`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct CreateProject {
    /// 1 to 255 characters once trimmed; unique.
    pub name: String,
    /// Free text, at most 5,000 characters.
    #[serde(default)]
    pub description: Option<String>,
}

/// Body of `PUT /projects/{id}`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct UpdateProject {
    /// A new name (1 to 255 characters once trimmed; unique); absent keeps it.
    #[serde(default)]
    pub name: Option<String>,
    /// A new description (at most 5,000 characters); absent keeps it.
    #[serde(default)]
    pub description: Option<String>,
}

/// A member of a project, as listed: the object and where it is.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct MemberDto {
    /// `pipeline` or `table` (a table's metadata).
    pub object_type: String,
    /// The pipeline's or table metadata row's id.
    pub object_id: Uuid,
    /// The object's namespace.
    pub namespace: String,
    /// The object's layer.
    pub layer: String,
    /// The pipeline's or table's name.
    pub name: String,
    /// `namespace.layer.name`.
    pub display_name: String,
    /// When it was added to the project.
    #[serde(with = "crate::rfc3339")]
    pub added_at: OffsetDateTime,
}

/// One page of a project's members.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct MemberList {
    /// Oldest membership first; only objects the caller may read.
    pub members: Vec<MemberDto>,
    /// Count of the project's members the caller may read.
    pub total: i64,
}

/// Body of `POST /projects/{id}/members`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct AddMember {
    /// `pipeline` or `table` (a table's metadata).
    pub object_type: String,
    /// The pipeline's or table metadata row's id.
    pub object_id: String,
}

/// A membership just made.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct MembershipDto {
    /// The project.
    pub project_id: Uuid,
    /// `pipeline` or `table`.
    pub object_type: String,
    /// The object's id.
    pub object_id: Uuid,
    /// When it was added.
    #[serde(with = "crate::rfc3339")]
    pub added_at: OffsetDateTime,
}

#[cfg(feature = "domain")]
impl From<rat_domain::Project> for ProjectDto {
    fn from(project: rat_domain::Project) -> Self {
        ProjectDto {
            id: project.id,
            name: project.name,
            description: project.description,
            created_by: project.created_by,
            created_at: project.created_at,
        }
    }
}

#[cfg(feature = "domain")]
impl From<rat_domain::ListedMember> for MemberDto {
    fn from(listed: rat_domain::ListedMember) -> Self {
        MemberDto {
            display_name: listed.display_name(),
            object_type: listed.member.object_type.as_str().to_owned(),
            object_id: listed.member.object_id,
            namespace: listed.namespace.as_str().to_owned(),
            layer: listed.layer.as_str().to_owned(),
            name: listed.name,
            added_at: listed.member.added_at,
        }
    }
}

#[cfg(feature = "domain")]
impl From<rat_domain::ProjectMember> for MembershipDto {
    fn from(member: rat_domain::ProjectMember) -> Self {
        MembershipDto {
            project_id: member.project_id,
            object_type: member.object_type.as_str().to_owned(),
            object_id: member.object_id,
            added_at: member.added_at,
        }
    }
}
