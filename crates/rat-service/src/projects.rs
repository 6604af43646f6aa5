//! Projects: named groups of pipelines and tables, and who may change them.
//!
//! A project is organisational only: it grants nothing. Being in a project
//! gives nobody access to a member, and a member's access rule is never
//! widened by its projects. Hence:
//!
//! - every signed-in user may list and read projects (names, descriptions,
//!   creators: nothing a project holds is secret);
//! - changing, deleting a project and adding or removing its members is for
//!   its creator (`created_by`) or an admin. The rule is
//!   [`rat_domain::permission`] with the creator as the owner and no shares,
//!   so a project made in Community mode or with the operator's key (a
//!   non-personal creator) is changed by admins only, like any unowned
//!   object;
//! - a project's member list shows only the members whose object the caller
//!   may read (the access rule, applied in SQL so the page and its total
//!   count exactly those), and only live objects (a deleted pipeline leaves
//!   the list at once; its membership row goes when the pipeline is purged);
//! - adding a member needs, besides the right to change the project, read
//!   access to the object: one the caller may not read is `NotFound`, as if
//!   it did not exist. Adding a member twice is `AlreadyExists` (409): the
//!   answer says nothing the caller may not know, since they may read it;
//! - removing a member needs only the right to change the project (not read
//!   access to the object), so a creator can always tidy their project,
//!   even of an object they lost access to.

use rat_dao::projects;
use rat_domain::text::{MAX_DESCRIPTION_CHARS, check_text_len};
use rat_domain::{
    ListedMember, MemberType, ObjectType, Page, PageRequest, Permission, Project, ProjectMember, parse_project_name,
};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::identity::Caller;
use crate::sharing;
use crate::{ServiceError, Services};

/// Longest `search` text, in characters.
pub const MAX_SEARCH_CHARS: usize = 255;

/// What a project update changes; `None` keeps the current value.
#[derive(Debug, Clone, Copy, Default)]
pub struct ProjectChanges<'a> {
    /// The new name (trimmed, 1..=255 characters, unique).
    pub name: Option<&'a str>,
    /// The new description (at most [`MAX_DESCRIPTION_CHARS`] characters).
    pub description: Option<&'a str>,
}

fn check_description(description: &str) -> Result<(), ServiceError> {
    Ok(check_text_len("description", description, MAX_DESCRIPTION_CHARS)?)
}

/// `Forbidden` unless `caller` may change `project`: its creator or an admin
/// ([`rat_domain::permission`] with the creator as the owner, no shares).
fn require_change(caller: &Caller, project: &Project, doing: &str) -> Result<(), ServiceError> {
    let has = rat_domain::permission(&sharing::principal(caller), project.created_by.as_deref(), None, &[]);
    if has == Permission::Own {
        return Ok(());
    }
    Err(ServiceError::Forbidden {
        message: format!("{doing} the project is for its creator or an admin"),
    })
}

/// Projects ordered by name, optionally only those whose name contains
/// `search` (case-insensitive, taken literally), one page, with the total.
/// Every signed-in user sees every project: a project grants nothing.
pub async fn list(services: &Services, search: Option<&str>, page: PageRequest) -> Result<Page<Project>, ServiceError> {
    let search = search.map(str::trim).filter(|s| !s.is_empty());
    if let Some(search) = search {
        check_text_len("search", search, MAX_SEARCH_CHARS)?;
    }
    let client = services.pool.get().await?;
    Ok(projects::list(&client, search, page).await?)
}

/// Creates a project named `name` (trimmed) made by `caller`.
/// `AlreadyExists` when the name is taken, `InvalidInput` for an empty or
/// too long name or description.
#[tracing::instrument(skip(services, caller, description), fields(user = %caller.user))]
pub async fn create(
    services: &Services,
    caller: &Caller,
    name: &str,
    description: Option<&str>,
) -> Result<Project, ServiceError> {
    let name = parse_project_name(name)?;
    let description = description.unwrap_or("");
    check_description(description)?;
    let client = services.pool.get().await?;
    Ok(projects::create(&client, &name, description, Some(&caller.user)).await?)
}

/// The project `id`; `NotFound` for an unknown one. Any signed-in user may
/// read any project.
pub async fn get(services: &Services, id: Uuid) -> Result<Project, ServiceError> {
    let client = services.pool.get().await?;
    Ok(projects::get(&client, id).await?)
}

/// Renames and/or redescribes the project `id`, for its creator or an
/// admin (`Forbidden` otherwise). Input is checked before anything is read.
#[tracing::instrument(skip(services, caller, changes), fields(user = %caller.user))]
pub async fn update(
    services: &Services,
    caller: &Caller,
    id: Uuid,
    changes: ProjectChanges<'_>,
) -> Result<Project, ServiceError> {
    let name = changes.name.map(parse_project_name).transpose()?;
    if let Some(description) = changes.description {
        check_description(description)?;
    }
    let client = services.pool.get().await?;
    let project = projects::get(&client, id).await?;
    require_change(caller, &project, "changing")?;
    // The creator never changes, so the check cannot be outdated by a
    // concurrent update; a concurrent delete makes this `NotFound`.
    Ok(projects::update(&client, id, name.as_deref(), changes.description).await?)
}

/// Deletes the project `id` and its memberships (the member objects stay),
/// for its creator or an admin. Returns what was deleted.
#[tracing::instrument(skip(services, caller), fields(user = %caller.user))]
pub async fn delete(services: &Services, caller: &Caller, id: Uuid) -> Result<Project, ServiceError> {
    let client = services.pool.get().await?;
    let project = projects::get(&client, id).await?;
    require_change(caller, &project, "deleting")?;
    projects::delete(&client, id).await?;
    Ok(project)
}

/// The members of the project `id` whose object `caller` may read, with
/// where each object is, oldest membership first, one page; the total
/// counts only those (filtered in SQL). `NotFound` for an unknown project.
pub async fn list_members(
    services: &Services,
    caller: &Caller,
    id: Uuid,
    page: PageRequest,
) -> Result<Page<ListedMember>, ServiceError> {
    let client = services.pool.get().await?;
    projects::get(&client, id).await?;
    let readable_by = (!caller.admin).then(|| sharing::share_names(caller));
    Ok(projects::list_live_members(&client, id, readable_by.as_deref(), page).await?)
}

/// Adds the pipeline or table `object_id` to the project `id`, at `now`.
/// `caller` must be able to change the project (`Forbidden`) and to read
/// the object, which must exist and be live (`NotFound` naming the object
/// otherwise, the same answer whether it is missing or hidden).
/// `AlreadyExists` when it is already a member.
///
/// One transaction: the object is held (`FOR KEY SHARE`) from the check to
/// the insert, so it cannot be deleted in between and leave a membership
/// of nothing behind.
#[tracing::instrument(skip(services, caller), fields(user = %caller.user))]
pub async fn add_member(
    services: &Services,
    caller: &Caller,
    id: Uuid,
    member_type: MemberType,
    object_id: Uuid,
    now: OffsetDateTime,
) -> Result<ProjectMember, ServiceError> {
    let mut client = services.pool.get().await?;
    let transaction = client.transaction().await?;
    let project = projects::get(&transaction, id).await?;
    require_change(caller, &project, "adding members to")?;
    projects::lock_live_object(&transaction, member_type, object_id).await?;
    if !caller.admin {
        let target = sharing::target(&transaction, ObjectType::from(member_type), object_id).await?;
        sharing::require(&transaction, caller, &target, Permission::Read, "adding to a project").await?;
    }
    let member = projects::add_member(&transaction, id, member_type, object_id, now).await?;
    transaction.commit().await?;
    Ok(member)
}

/// Removes the pipeline or table `object_id` from the project `id`, for the
/// project's creator or an admin (read access to the object is not needed:
/// see the module's documentation). `NotFound` when it is not a member.
#[tracing::instrument(skip(services, caller), fields(user = %caller.user))]
pub async fn remove_member(
    services: &Services,
    caller: &Caller,
    id: Uuid,
    member_type: MemberType,
    object_id: Uuid,
) -> Result<(), ServiceError> {
    let client = services.pool.get().await?;
    let project = projects::get(&client, id).await?;
    require_change(caller, &project, "removing members from")?;
    Ok(projects::remove_member(&client, id, member_type, object_id).await?)
}
