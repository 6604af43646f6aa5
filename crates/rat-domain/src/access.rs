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
        /// A landing zone (`landing_zones.id`).
        LandingZone => "landing_zone",
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

impl From<MemberType> for ObjectType {
    fn from(member: MemberType) -> Self {
        match member {
            MemberType::Pipeline => ObjectType::Pipeline,
            MemberType::Table => ObjectType::Table,
        }
    }
}

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
    // Characters, as the `VARCHAR(255)` columns count them.
    if value.chars().count() > MAX_PRINCIPAL_LEN {
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

/// The longest project name, in characters (`projects.name VARCHAR(255)`).
pub const MAX_PROJECT_NAME_CHARS: usize = 255;

/// Checks a project name and returns it trimmed: 1 to
/// [`MAX_PROJECT_NAME_CHARS`] characters once surrounding whitespace is
/// removed, no control characters. Project names are free text otherwise
/// (spaces, capitals, punctuation), unique as stored.
pub fn parse_project_name(value: &str) -> Result<String, DomainError> {
    let name = value.trim();
    if name.is_empty() {
        return Err(DomainError::invalid("name", "must not be empty"));
    }
    crate::text::check_text_len("name", name, MAX_PROJECT_NAME_CHARS)?;
    if name.chars().any(char::is_control) {
        return Err(DomainError::invalid("name", "must not contain control characters"));
    }
    Ok(name.to_owned())
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

/// A project member as it is listed: the membership and where its (live)
/// object is, so a client can show and open it without another request.
#[derive(Debug, Clone, PartialEq)]
pub struct ListedMember {
    /// The membership.
    pub member: ProjectMember,
    /// The object's namespace.
    pub namespace: crate::NamespaceName,
    /// The object's layer.
    pub layer: crate::Layer,
    /// The pipeline's or table's name.
    pub name: String,
}

impl ListedMember {
    /// `namespace.layer.name`, how the platform names a pipeline or table.
    pub fn display_name(&self) -> String {
        format!("{}.{}.{}", self.namespace, self.layer, self.name)
    }
}

/// What a caller may do with an object, in increasing order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Permission {
    /// Nothing: the object is not even shown (404, like a missing one).
    None,
    /// Read it.
    Read,
    /// Read and change it (create inside it, run it, publish it, ...).
    Write,
    /// Everything, deleting, sharing and transferring it included.
    Own,
}

/// Who is asking, as the access rule sees them.
#[derive(Debug, Clone, Copy)]
pub struct Principal<'a> {
    /// The user name.
    pub user: &'a str,
    /// The roles the identity provider gave.
    pub roles: &'a [String],
    /// Whether the caller may do everything.
    pub admin: bool,
}

impl Principal<'_> {
    /// The share principals that name this caller: the user and `role:<name>`
    /// for each role.
    pub fn share_names(&self) -> Vec<String> {
        std::iter::once(self.user.to_owned())
            .chain(self.roles.iter().map(|role| format!("role:{role}")))
            .collect()
    }
}

/// Owners that are not people: what Community mode and the operator's key
/// created. In multi-user mode such objects count as unowned.
pub const NON_PERSONAL_OWNERS: &[&str] = &["community", "api-key"];

/// Whether `user` may be a signed-in user's name: not empty, not one of the
/// [`NON_PERSONAL_OWNERS`] or `webhook`, and not `role:…` (a share principal),
/// so nobody can sign in as the owner of unowned objects or as a role.
pub fn is_personal_name(user: &str) -> bool {
    !user.trim().is_empty() && !NON_PERSONAL_OWNERS.contains(&user) && user != "webhook" && !user.starts_with("role:")
}

/// The access rule, stated once: admins own everything; the owner owns the
/// object, and the owner of a namespace owns everything in it; a share to
/// the user, or to `role:<name>` of one of their roles, gives its level (the
/// highest one counts; shares on the object's namespace count as shares on
/// the object). An object without a personal owner (none, or one of
/// [`NON_PERSONAL_OWNERS`]: made before multi-user mode) may be read by
/// everyone and changed by admins only, unless a share (or owning its
/// namespace) says more.
pub fn permission(
    caller: &Principal<'_>,
    owner: Option<&str>,
    namespace_owner: Option<&str>,
    shares: &[(String, AccessLevel)],
) -> Permission {
    fn personal(owner: Option<&str>) -> Option<&str> {
        owner.filter(|owner| !NON_PERSONAL_OWNERS.contains(owner))
    }
    let owner = personal(owner);
    if caller.admin || owner == Some(caller.user) || personal(namespace_owner) == Some(caller.user) {
        return Permission::Own;
    }
    let names = caller.share_names();
    let shared = shares
        .iter()
        .filter(|(principal, _)| names.contains(principal))
        .map(|(_, level)| match level {
            AccessLevel::Read => Permission::Read,
            AccessLevel::Write => Permission::Write,
        })
        .max()
        .unwrap_or(Permission::None);
    let unowned = if owner.is_none() {
        Permission::Read
    } else {
        Permission::None
    };
    shared.max(unowned)
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
    fn project_names_are_trimmed_and_bounded() {
        assert_eq!(parse_project_name("  Revenue reporting ").unwrap(), "Revenue reporting");
        assert!(parse_project_name("").is_err());
        assert!(parse_project_name(" \t ").is_err());
        assert!(parse_project_name("a\u{0}b").is_err());
        assert_eq!(parse_project_name(&"é".repeat(255)).unwrap().chars().count(), 255);
        let err = parse_project_name(&"x".repeat(256)).unwrap_err();
        assert_eq!(err.to_string(), "invalid name: must be at most 255 characters");
    }

    #[test]
    fn member_types_are_a_subset_of_object_types() {
        for member in MemberType::ALL {
            assert!(member.as_str().parse::<ObjectType>().is_ok());
            assert_eq!(ObjectType::from(*member).as_str(), member.as_str());
        }
    }

    #[test]
    fn the_access_rule() {
        let roles = vec!["analysts".to_owned()];
        let alice = Principal {
            user: "alice",
            roles: &roles,
            admin: false,
        };
        let admin = Principal {
            user: "root",
            roles: &[],
            admin: true,
        };
        let share = |who: &str, level| (who.to_owned(), level);
        assert_eq!(permission(&admin, Some("bob"), None, &[]), Permission::Own);
        assert_eq!(permission(&alice, Some("alice"), None, &[]), Permission::Own);
        assert_eq!(permission(&alice, Some("bob"), None, &[]), Permission::None);
        assert_eq!(
            permission(&alice, Some("bob"), None, &[share("alice", AccessLevel::Read)]),
            Permission::Read
        );
        assert_eq!(
            permission(
                &alice,
                Some("bob"),
                None,
                &[
                    share("alice", AccessLevel::Read),
                    share("role:analysts", AccessLevel::Write)
                ]
            ),
            Permission::Write,
            "the highest share counts, roles included"
        );
        assert_eq!(
            permission(&alice, Some("bob"), None, &[share("role:others", AccessLevel::Write)]),
            Permission::None
        );
        assert_eq!(
            permission(&alice, Some("bob"), None, &[share("analysts", AccessLevel::Write)]),
            Permission::None,
            "a user named like a role is not the role"
        );
        assert_eq!(
            permission(&alice, None, None, &[]),
            Permission::Read,
            "unowned: readable, changed by admins only"
        );
        assert_eq!(
            permission(&alice, None, None, &[share("alice", AccessLevel::Write)]),
            Permission::Write
        );
        assert_eq!(
            permission(&alice, Some("bob"), Some("alice"), &[]),
            Permission::Own,
            "the owner of a namespace owns what is in it"
        );
        assert_eq!(
            permission(&alice, Some("bob"), Some("community"), &[]),
            Permission::None,
            "a namespace without a personal owner gives nothing"
        );
    }
}
