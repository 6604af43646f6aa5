//! Ownership, shares and projects: who owns and who may use an object.

use time::OffsetDateTime;
use uuid::Uuid;

use crate::DomainError;

string_enum!(
    /// Kinds of objects that can be owned and shared.
    ObjectType, "object_type" {
        /// A pipeline (`pipelines.id`).
        Pipeline => "pipeline",
        /// A table's metadata (`table_metadata.id`).
        Table => "table",
        /// A namespace (`namespaces.id`).
        Namespace => "namespace",
    }
);

string_enum!(
    /// Kinds of objects a project can group.
    MemberType, "object_type" {
        /// A pipeline.
        Pipeline => "pipeline",
        /// A table.
        Table => "table",
    }
);

string_enum!(
    /// What a share allows.
    AccessLevel, "access_level" {
        /// Read only.
        Read => "read",
        /// Read and write.
        Write => "write",
    }
);

/// The longest user or role identity stored (`VARCHAR(255)` columns).
pub const MAX_PRINCIPAL_LEN: usize = 255;

/// Checks a user identity or role reference (`alice`, `role:data-engineer`).
pub fn parse_principal(field: &'static str, value: &str) -> Result<String, DomainError> {
    if value.trim().is_empty() {
        return Err(DomainError::invalid(field, "must not be empty"));
    }
    if value.len() > MAX_PRINCIPAL_LEN {
        return Err(DomainError::invalid(
            field,
            format!("must be at most {MAX_PRINCIPAL_LEN} characters"),
        ));
    }
    if value.chars().any(char::is_control) {
        return Err(DomainError::invalid(field, "must not contain control characters"));
    }
    Ok(value.to_owned())
}

/// An object's single owner (`ownership`).
#[derive(Debug, Clone, PartialEq)]
pub struct Ownership {
    /// Primary key.
    pub id: Uuid,
    /// Kind of object.
    pub object_type: ObjectType,
    /// The object's id.
    pub object_id: Uuid,
    /// The owner's identity.
    pub owner: String,
    /// Creation time.
    pub created_at: OffsetDateTime,
}

/// An access grant (`shares`).
#[derive(Debug, Clone, PartialEq)]
pub struct Share {
    /// Primary key.
    pub id: Uuid,
    /// Kind of object.
    pub object_type: ObjectType,
    /// The object's id.
    pub object_id: Uuid,
    /// A user, or `role:<name>`.
    pub shared_with: String,
    /// What the grant allows.
    pub access_level: AccessLevel,
    /// Who granted it.
    pub granted_by: String,
    /// When.
    pub granted_at: OffsetDateTime,
}

/// A project grouping pipelines and tables (`projects`).
#[derive(Debug, Clone, PartialEq)]
pub struct Project {
    /// Primary key.
    pub id: Uuid,
    /// Unique name (free text, at most 255 characters).
    pub name: String,
    /// Free text.
    pub description: String,
    /// Creator.
    pub created_by: Option<String>,
    /// Creation time.
    pub created_at: OffsetDateTime,
}

/// Membership of an object in a project (`project_members`).
#[derive(Debug, Clone, PartialEq)]
pub struct ProjectMember {
    /// The project.
    pub project_id: Uuid,
    /// Kind of object.
    pub object_type: MemberType,
    /// The object's id.
    pub object_id: Uuid,
    /// When it was added.
    pub added_at: OffsetDateTime,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn principals_are_checked() {
        assert!(parse_principal("owner", "alice").is_ok());
        assert!(parse_principal("owner", "role:data-engineer").is_ok());
        assert!(parse_principal("owner", " ").is_err());
        assert!(parse_principal("owner", &"a".repeat(256)).is_err());
        assert!(parse_principal("owner", "a\nb").is_err());
    }

    #[test]
    fn member_types_are_a_subset_of_object_types() {
        for member in MemberType::ALL {
            assert!(member.as_str().parse::<ObjectType>().is_ok());
        }
    }
}
