//! `GET /api/v1/features` and `GET /api/v1/plugins`: what the portal asks on
//! every page.

use axum::Json;
use axum::extract::State;
use time::OffsetDateTime;

use crate::error::{ApiError, ApiResult, ErrorEnvelope};
use crate::extract::ApiQuery;
use crate::state::AppState;
pub use rat_wire::meta::{Features, PluginFeature, PluginQuery, RunnerPluginDto};
pub use rat_wire::plugins::PluginDto;

/// The edition and the features that are on.
#[utoipa::path(get, path = "/features", tag = "platform", responses(
    (status = 200, body = Features), (status = 503, body = ErrorEnvelope)))]
pub async fn features(State(state): State<AppState>) -> ApiResult<Json<Features>> {
    let flags = rat_service::platform::feature_flags(&state.services).await?;
    let plugins = rat_service::platform::plugins(&state.services, None).await?;
    Ok(Json(Features {
        edition: "community".to_owned(),
        plugins: plugins
            .into_iter()
            .map(|p| {
                let feature = PluginFeature {
                    enabled: true,
                    slot: p.slot,
                    status: p.status.as_str().to_owned(),
                };
                (p.name.into_string(), feature)
            })
            .collect(),
        namespaces: true,
        multi_user: state.auth.multi_user(),
        landing_zones: flags.landing_zones,
        quality_tests: flags.quality_tests,
        audit_log: flags.audit_log,
        pipeline_triggers: flags.pipeline_triggers,
        pipeline_versions: flags.pipeline_versions,
    }))
}

/// Registered plugins, as a bare array (empty when none).
#[utoipa::path(get, path = "/plugins", tag = "platform", params(PluginQuery), responses(
    (status = 200, body = [PluginDto]), (status = 400, body = ErrorEnvelope)))]
pub async fn plugins(
    State(state): State<AppState>,
    ApiQuery(query): ApiQuery<PluginQuery>,
) -> ApiResult<Json<Vec<PluginDto>>> {
    // Registered means enabled: `enabled` (what the portal asks) lists all.
    let status = match query.status.as_deref() {
        None | Some("") | Some("enabled") => None,
        Some(other) => Some(
            other
                .parse()
                .map_err(|e: rat_domain::DomainError| ApiError::invalid(e.to_string()))?,
        ),
    };
    let plugins = rat_service::platform::plugins(&state.services, status).await?;
    Ok(Json(
        plugins
            .into_iter()
            .map(|p| PluginDto {
                name: p.name.into_string(),
                slot: p.slot,
                image: p.image,
                status: p.status.as_str().to_owned(),
                config: p.config,
                last_health: p.last_health,
                created_at: p.created_at,
            })
            .collect(),
    ))
}

/// The plugins the runners that claimed or heartbeated within the longest
/// lease (an hour) reported, de-duplicated, as a bare array (empty when
/// none reported).
#[utoipa::path(get, path = "/runner/plugins", tag = "platform", responses(
    (status = 200, body = [RunnerPluginDto])))]
pub async fn runner_plugins(State(state): State<AppState>) -> ApiResult<Json<Vec<RunnerPluginDto>>> {
    let plugins = rat_service::runner::live_plugins(&state.services, OffsetDateTime::now_utc()).await?;
    Ok(Json(
        plugins
            .into_iter()
            .map(|p| RunnerPluginDto {
                name: p.name,
                group: p.group,
                version: p.version,
                package_name: p.package_name,
            })
            .collect(),
    ))
}

/// Unregisters a plugin (admins only). 404 when it is not registered.
#[utoipa::path(delete, path = "/plugins/{name}", tag = "platform", params(("name" = String, Path)), responses(
    (status = 204), (status = 400, body = ErrorEnvelope), (status = 403, body = ErrorEnvelope),
    (status = 404, body = ErrorEnvelope)))]
pub async fn delete_plugin(
    State(state): State<AppState>,
    identity: crate::extract::Identity,
    axum::extract::Path(name): axum::extract::Path<String>,
) -> ApiResult<impl axum::response::IntoResponse> {
    let name = rat_domain::PluginName::parse(&name)?;
    rat_service::platform::remove_plugin(&state.services, &identity.caller, &name).await?;
    Ok((
        axum::http::StatusCode::NO_CONTENT,
        axum::Extension(crate::middleware::AuditObject::new("plugin.delete", "plugin", None)),
    ))
}
