//! `GET /api/v1/features` and `GET /api/v1/plugins`: what the portal asks on
//! every page.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::State;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::{IntoParams, ToSchema};

use crate::error::{ApiError, ApiResult, ErrorEnvelope};
use crate::extract::ApiQuery;
use crate::state::AppState;
pub use rat_wire::plugins::PluginDto;

/// What this installation offers.
#[derive(Debug, Serialize, ToSchema)]
pub struct Features {
    /// `community`.
    pub edition: &'static str,
    /// Registered plugins by name, in ratd's shape (`{enabled, type}`).
    pub plugins: BTreeMap<String, PluginFeature>,
    /// Namespaces are supported.
    pub namespaces: bool,
    /// Several users with their own identities (an OIDC issuer is configured).
    pub multi_user: bool,
    /// Landing zones (feature flag).
    pub landing_zones: bool,
    /// Quality tests (feature flag).
    pub quality_tests: bool,
    /// The audit log (feature flag).
    pub audit_log: bool,
    /// Event triggers (feature flag).
    pub pipeline_triggers: bool,
    /// Publish, versions and rollback (feature flag).
    pub pipeline_versions: bool,
}

/// One registered plugin in [`Features`]: ratd's `PluginFeature`, plus its
/// health.
#[derive(Debug, Serialize, ToSchema)]
pub struct PluginFeature {
    /// Registered plugins are enabled (as `GET /plugins?status=enabled` lists them).
    pub enabled: bool,
    /// The slot it fills (`auth`, `executor`, ...).
    #[serde(rename = "type")]
    pub slot: String,
    /// Last known health: `healthy`, `degraded`, `down` or `unknown`.
    pub status: String,
}

/// The edition and the features that are on.
#[utoipa::path(get, path = "/features", tag = "platform", responses(
    (status = 200, body = Features), (status = 503, body = ErrorEnvelope)))]
pub async fn features(State(state): State<AppState>) -> ApiResult<Json<Features>> {
    let flags = rat_service::platform::feature_flags(&state.services).await?;
    let plugins = rat_service::platform::plugins(&state.services, None).await?;
    Ok(Json(Features {
        edition: "community",
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

/// Filters of `GET /plugins`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PluginQuery {
    /// `enabled` (every registered plugin) or a health status.
    pub status: Option<String>,
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

/// A plugin a live runner can load (RAT's runner's Python entry points:
/// merge strategies such as `soft_delete`, hooks).
#[derive(Debug, Serialize, ToSchema)]
pub struct RunnerPluginDto {
    /// Entry point name.
    pub name: String,
    /// Entry point group.
    pub group: String,
    /// The providing package's version.
    pub version: String,
    /// The providing package.
    pub package_name: String,
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
