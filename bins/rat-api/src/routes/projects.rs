//! `/api/v1/projects`: named groups of pipelines and tables. A project
//! grants nothing; who may do what is decided in `rat_service::projects`
//! (every signed-in user reads projects; their creator or an admin changes
//! them; members are listed only where the caller may read them).

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::{Extension, Json};
use rat_domain::MemberType;
use rat_service::projects::ProjectChanges;
use time::OffsetDateTime;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::error::{ApiError, ApiResult, ErrorEnvelope};
use crate::extract::{ApiJson, ApiQuery, Identity, PageParams, path_id};
use crate::middleware::AuditObject;
use crate::state::AppState;
pub use rat_wire::projects::{
    AddMember, CreateProject, MemberDto, MemberList, MembershipDto, ProjectDto, ProjectList, ProjectQuery,
    UpdateProject,
};

/// The routes of this module.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list, create))
        .routes(routes!(get, update, delete))
        .routes(routes!(list_members, add_member))
        .routes(routes!(remove_member))
}

/// Projects by name; every signed-in user sees all of them.
#[utoipa::path(get, path = "/projects", tag = "projects", params(ProjectQuery), responses(
    (status = 200, body = ProjectList), (status = 400, body = ErrorEnvelope)))]
pub async fn list(
    State(state): State<AppState>,
    ApiQuery(query): ApiQuery<ProjectQuery>,
) -> ApiResult<Json<ProjectList>> {
    let page = PageParams {
        limit: query.limit,
        offset: query.offset,
    }
    .page()?;
    let page = rat_service::projects::list(&state.services, query.search.as_deref(), page).await?;
    Ok(Json(ProjectList {
        projects: page.items.into_iter().map(ProjectDto::from).collect(),
        total: page.total,
    }))
}

/// Creates a project; the caller is its creator.
#[utoipa::path(post, path = "/projects", tag = "projects", request_body = CreateProject, responses(
    (status = 201, body = ProjectDto), (status = 400, body = ErrorEnvelope), (status = 409, body = ErrorEnvelope)))]
pub async fn create(
    State(state): State<AppState>,
    identity: Identity,
    ApiJson(body): ApiJson<CreateProject>,
) -> ApiResult<impl IntoResponse> {
    let project = rat_service::projects::create(
        &state.services,
        &identity.caller,
        &body.name,
        body.description.as_deref(),
    )
    .await?;
    let audit = AuditObject::new("project.create", "project", Some(project.id));
    Ok((StatusCode::CREATED, Extension(audit), Json(ProjectDto::from(project))))
}

/// A project.
#[utoipa::path(get, path = "/projects/{id}", tag = "projects", params(("id" = Uuid, Path)), responses(
    (status = 200, body = ProjectDto), (status = 404, body = ErrorEnvelope)))]
pub async fn get(State(state): State<AppState>, Path(id): Path<String>) -> ApiResult<Json<ProjectDto>> {
    let id: Uuid = path_id(&id, "project")?;
    Ok(Json(rat_service::projects::get(&state.services, id).await?.into()))
}

/// Renames or redescribes a project; only its creator or an admin may.
#[utoipa::path(put, path = "/projects/{id}", tag = "projects", request_body = UpdateProject,
    params(("id" = Uuid, Path)), responses(
    (status = 200, body = ProjectDto), (status = 400, body = ErrorEnvelope), (status = 403, body = ErrorEnvelope),
    (status = 404, body = ErrorEnvelope), (status = 409, body = ErrorEnvelope)))]
pub async fn update(
    State(state): State<AppState>,
    identity: Identity,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<UpdateProject>,
) -> ApiResult<impl IntoResponse> {
    let id: Uuid = path_id(&id, "project")?;
    let changes = ProjectChanges {
        name: body.name.as_deref(),
        description: body.description.as_deref(),
    };
    let project = rat_service::projects::update(&state.services, &identity.caller, id, changes).await?;
    let audit = AuditObject::new("project.update", "project", Some(project.id));
    Ok((Extension(audit), Json(ProjectDto::from(project))))
}

/// Deletes a project and its memberships (the pipelines and tables stay);
/// only its creator or an admin may.
#[utoipa::path(delete, path = "/projects/{id}", tag = "projects", params(("id" = Uuid, Path)), responses(
    (status = 204), (status = 403, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope)))]
pub async fn delete(
    State(state): State<AppState>,
    identity: Identity,
    Path(id): Path<String>,
) -> ApiResult<impl IntoResponse> {
    let id: Uuid = path_id(&id, "project")?;
    let project = rat_service::projects::delete(&state.services, &identity.caller, id).await?;
    let audit = AuditObject::new("project.delete", "project", Some(project.id));
    Ok((StatusCode::NO_CONTENT, Extension(audit)))
}

/// A project's members whose pipeline or table the caller may read (others
/// are neither listed nor counted).
#[utoipa::path(get, path = "/projects/{id}/members", tag = "projects", params(("id" = Uuid, Path), PageParams),
    responses((status = 200, body = MemberList), (status = 400, body = ErrorEnvelope),
    (status = 404, body = ErrorEnvelope)))]
pub async fn list_members(
    State(state): State<AppState>,
    identity: Identity,
    Path(id): Path<String>,
    ApiQuery(page): ApiQuery<PageParams>,
) -> ApiResult<Json<MemberList>> {
    let id: Uuid = path_id(&id, "project")?;
    let page = rat_service::projects::list_members(&state.services, &identity.caller, id, page.page()?).await?;
    Ok(Json(MemberList {
        members: page.items.into_iter().map(MemberDto::from).collect(),
        total: page.total,
    }))
}

/// Adds a pipeline or table to a project: needs the right to change the
/// project (its creator or an admin) and read access to the object (404
/// otherwise, as for a missing one). Adding a member again is 409.
#[utoipa::path(post, path = "/projects/{id}/members", tag = "projects", request_body = AddMember,
    params(("id" = Uuid, Path)), responses(
    (status = 201, body = MembershipDto), (status = 400, body = ErrorEnvelope), (status = 403, body = ErrorEnvelope),
    (status = 404, body = ErrorEnvelope), (status = 409, body = ErrorEnvelope)))]
pub async fn add_member(
    State(state): State<AppState>,
    identity: Identity,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<AddMember>,
) -> ApiResult<impl IntoResponse> {
    let id: Uuid = path_id(&id, "project")?;
    let member_type: MemberType = body.object_type.parse()?;
    let object_id = Uuid::parse_str(&body.object_id)
        .map_err(|_| ApiError::invalid(format!("invalid object_id {:?}: must be a UUID", body.object_id)))?;
    let member = rat_service::projects::add_member(
        &state.services,
        &identity.caller,
        id,
        member_type,
        object_id,
        OffsetDateTime::now_utc(),
    )
    .await?;
    let audit = AuditObject::new("project_member.add", member_type.as_str(), Some(object_id));
    Ok((StatusCode::CREATED, Extension(audit), Json(MembershipDto::from(member))))
}

/// Removes a pipeline or table from a project (the object stays); only the
/// project's creator or an admin may.
#[utoipa::path(delete, path = "/projects/{id}/members/{object_type}/{object_id}", tag = "projects",
    params(("id" = Uuid, Path), ("object_type" = String, Path, description = "`pipeline` or `table`"),
    ("object_id" = Uuid, Path)), responses(
    (status = 204), (status = 400, body = ErrorEnvelope), (status = 403, body = ErrorEnvelope),
    (status = 404, body = ErrorEnvelope)))]
pub async fn remove_member(
    State(state): State<AppState>,
    identity: Identity,
    Path((id, object_type, object_id)): Path<(String, String, String)>,
) -> ApiResult<impl IntoResponse> {
    let id: Uuid = path_id(&id, "project")?;
    let member_type: MemberType = object_type.parse()?;
    let object_id: Uuid = path_id(&object_id, "project member")?;
    rat_service::projects::remove_member(&state.services, &identity.caller, id, member_type, object_id).await?;
    let audit = AuditObject::new("project_member.remove", member_type.as_str(), Some(object_id));
    Ok((StatusCode::NO_CONTENT, Extension(audit)))
}
