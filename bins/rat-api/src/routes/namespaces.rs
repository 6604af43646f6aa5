//! `/api/v1/namespaces` (contract §3).

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::{Extension, Json};
use rat_domain::NamespaceName;

use crate::error::{ApiResult, ErrorEnvelope};
use crate::extract::{ApiJson, ApiQuery, Identity, PageParams};
use crate::middleware::AuditObject;
use crate::state::AppState;
use rat_wire::namespaces::{CreateNamespace, CreatedNamespace, NamespaceDto, NamespaceList, UpdateNamespace};

/// Namespaces, oldest first.
#[utoipa::path(get, path = "/namespaces", tag = "namespaces", params(PageParams), responses(
    (status = 200, body = NamespaceList), (status = 400, body = ErrorEnvelope)))]
pub async fn list(
    State(state): State<AppState>,
    identity: Identity,
    ApiQuery(page): ApiQuery<PageParams>,
) -> ApiResult<Json<NamespaceList>> {
    let page = rat_service::namespaces::list(&state.services, &identity.caller, page.page()?).await?;
    Ok(Json(NamespaceList {
        namespaces: page.items.into_iter().map(NamespaceDto::from).collect(),
        total: page.total,
    }))
}

/// Creates a namespace.
#[utoipa::path(post, path = "/namespaces", tag = "namespaces", request_body = CreateNamespace, responses(
    (status = 201, body = CreatedNamespace), (status = 400, body = ErrorEnvelope), (status = 409, body = ErrorEnvelope)))]
pub async fn create(
    State(state): State<AppState>,
    identity: Identity,
    ApiJson(body): ApiJson<CreateNamespace>,
) -> ApiResult<impl IntoResponse> {
    let name = NamespaceName::parse(&body.name)?;
    let created = rat_service::namespaces::create(
        &state.services,
        &identity.caller,
        &name,
        body.description.as_deref().unwrap_or(""),
    )
    .await?;
    Ok((
        StatusCode::CREATED,
        Extension(AuditObject::new("namespace.create", "namespace", Some(created.id))),
        Json(CreatedNamespace {
            id: created.id,
            name: created.name.into_string(),
        }),
    ))
}

/// Replaces a namespace's description.
#[utoipa::path(put, path = "/namespaces/{name}", tag = "namespaces", request_body = UpdateNamespace,
    params(("name" = String, Path, description = "Namespace name")), responses(
    (status = 204), (status = 400, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope)))]
pub async fn update(
    State(state): State<AppState>,
    identity: Identity,
    Path(name): Path<String>,
    ApiJson(body): ApiJson<UpdateNamespace>,
) -> ApiResult<impl IntoResponse> {
    let name = NamespaceName::parse(&name)?;
    let updated = rat_service::namespaces::update_description(
        &state.services,
        &identity.caller,
        &name,
        body.description.as_deref().unwrap_or(""),
    )
    .await?;
    Ok((
        StatusCode::NO_CONTENT,
        Extension(AuditObject::new("namespace.update", "namespace", Some(updated.id))),
    ))
}

/// Deletes a namespace and everything in it; `default` cannot be deleted.
#[utoipa::path(delete, path = "/namespaces/{name}", tag = "namespaces",
    params(("name" = String, Path, description = "Namespace name")), responses(
    (status = 204), (status = 403, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope)))]
pub async fn delete(
    State(state): State<AppState>,
    identity: Identity,
    Path(name): Path<String>,
) -> ApiResult<impl IntoResponse> {
    let name = NamespaceName::parse(&name)?;
    rat_service::namespaces::delete(&state.services, &identity.caller, &name).await?;
    Ok((
        StatusCode::NO_CONTENT,
        Extension(AuditObject::new("namespace.delete", "namespace", None)),
    ))
}
