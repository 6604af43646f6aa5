//! `/api/v1/pipelines/{namespace}/{layer}/{name}/triggers`: event triggers of
//! a pipeline (contract §9), behind the `pipeline_triggers` feature flag.
//!
//! A trigger is only reachable through its own pipeline's path. A webhook
//! trigger shows `webhook_url` on every read and its token only in the answer
//! to its creation; the stored config (the token's SHA-256) is never shown.
//! Firing triggers is `rat_service::firing`; `POST /webhooks` is `routes::webhooks`.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::{Extension, Json};
use rat_domain::TriggerId;
use rat_domain::{PipelineRef, Trigger, TriggerConfig, TriggerType, parse_cooldown_seconds};
use rat_service::triggers::{TriggerChanges, TriggerSpec};
use serde_json::Value;
use time::OffsetDateTime;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::error::{ApiError, ApiResult, ErrorEnvelope};
use crate::extract::{ApiJson, ApiQuery, Identity, PageParams, path_id, pipeline_ref};
use crate::middleware::{AuditObject, Feature};
use crate::routes::pipelines::{PipelinePath, address};
use crate::state::AppState;
use rat_wire::triggers::{CreateTrigger, TriggerDto, TriggerList, UpdateTrigger};

/// The routes of this module, answering 404 while `pipeline_triggers` is off.
pub fn router(state: &AppState) -> OpenApiRouter<AppState> {
    let routes = OpenApiRouter::new()
        .routes(routes!(list, create))
        .routes(routes!(get, update, delete));
    crate::app::gated(Feature::PipelineTriggers, state, routes)
}

/// The wire shape of `trigger`; webhook URLs are built from `public_url`.
fn trigger_dto(trigger: Trigger, public_url: &str) -> TriggerDto {
    let webhook_url = matches!(trigger.config, TriggerConfig::Webhook { .. })
        .then(|| format!("{}/api/v1/webhooks", public_url.trim_end_matches('/')));
    TriggerDto {
        id: trigger.id.into(),
        pipeline_id: trigger.pipeline_id.into(),
        trigger_type: trigger.trigger_type().as_str().to_owned(),
        config: trigger.config.to_public_json(),
        enabled: trigger.enabled,
        cooldown_seconds: trigger.cooldown_seconds,
        last_triggered_at: trigger.last_triggered_at,
        last_run_id: trigger.last_run_id.map(Into::into),
        created_at: trigger.created_at,
        updated_at: trigger.updated_at,
        webhook_url,
        webhook_token: None,
    }
}

/// `{namespace}/{layer}/{name}/{id}` of one trigger.
type TriggerPath = Path<(String, String, String, String)>;

/// The pipeline address (bad names are 400) and the trigger id (a malformed
/// id names no trigger, so it is a 404).
fn trigger_path(Path((namespace, layer, name, id)): TriggerPath) -> Result<(PipelineRef, TriggerId), ApiError> {
    let address = pipeline_ref(&namespace, &layer, &name)?;
    let id = path_id(&id, "trigger")?;
    Ok((address, id))
}

fn cooldown(value: Option<i64>) -> Result<Option<i32>, ApiError> {
    Ok(value.map(parse_cooldown_seconds).transpose()?)
}

/// The pipeline's triggers, oldest first, paged.
#[utoipa::path(get, path = "/pipelines/{namespace}/{layer}/{name}/triggers", tag = "triggers",
    params(("namespace" = String, Path), ("layer" = String, Path), ("name" = String, Path), PageParams),
    responses((status = 200, body = TriggerList), (status = 400, body = ErrorEnvelope),
    (status = 404, body = ErrorEnvelope)))]
pub async fn list(
    State(state): State<AppState>,
    identity: Identity,
    path: PipelinePath,
    ApiQuery(paging): ApiQuery<PageParams>,
) -> ApiResult<Json<TriggerList>> {
    let address = address(path)?;
    let page = paging.page()?;
    let page = rat_service::triggers::list(&state.services, &identity.caller, &address, page).await?;
    Ok(Json(TriggerList {
        triggers: page
            .items
            .into_iter()
            .map(|t| trigger_dto(t, &state.settings.public_url))
            .collect(),
        total: page.total,
    }))
}

/// Creates a trigger; a webhook's answer carries its token, shown this once.
#[utoipa::path(post, path = "/pipelines/{namespace}/{layer}/{name}/triggers", tag = "triggers",
    params(("namespace" = String, Path), ("layer" = String, Path), ("name" = String, Path)),
    request_body = CreateTrigger,
    responses((status = 201, body = TriggerDto), (status = 400, body = ErrorEnvelope),
    (status = 404, body = ErrorEnvelope)))]
pub async fn create(
    State(state): State<AppState>,
    identity: Identity,
    path: PipelinePath,
    ApiJson(body): ApiJson<CreateTrigger>,
) -> ApiResult<impl IntoResponse> {
    let address = address(path)?;
    let trigger_type: TriggerType = body.trigger_type.parse()?;
    let config_value = body.config.unwrap_or_else(|| Value::Object(Default::default()));
    let spec = TriggerSpec {
        config: TriggerConfig::from_client(trigger_type, &config_value)?,
        enabled: body.enabled.unwrap_or(true),
        cooldown_seconds: cooldown(body.cooldown_seconds)?.unwrap_or(0),
    };
    let created = rat_service::triggers::create(
        &state.services,
        &identity.caller,
        &address,
        spec,
        OffsetDateTime::now_utc(),
    )
    .await?;
    let mut dto = trigger_dto(created.trigger, &state.settings.public_url);
    dto.webhook_token = created.webhook_token;
    Ok((
        StatusCode::CREATED,
        Extension(AuditObject::new("trigger.create", "trigger", Some(dto.id))),
        Json(dto),
    ))
}

/// One trigger of the pipeline.
#[utoipa::path(get, path = "/pipelines/{namespace}/{layer}/{name}/triggers/{id}", tag = "triggers",
    params(("namespace" = String, Path), ("layer" = String, Path), ("name" = String, Path),
        ("id" = String, Path, description = "trigger id")),
    responses((status = 200, body = TriggerDto), (status = 400, body = ErrorEnvelope),
    (status = 404, body = ErrorEnvelope)))]
pub async fn get(State(state): State<AppState>, identity: Identity, path: TriggerPath) -> ApiResult<Json<TriggerDto>> {
    let (address, id) = trigger_path(path)?;
    let trigger = rat_service::triggers::get(&state.services, &identity.caller, &address, id).await?;
    Ok(Json(trigger_dto(trigger, &state.settings.public_url)))
}

/// Changes a trigger's config, enabled flag or cooldown.
#[utoipa::path(put, path = "/pipelines/{namespace}/{layer}/{name}/triggers/{id}", tag = "triggers",
    params(("namespace" = String, Path), ("layer" = String, Path), ("name" = String, Path),
        ("id" = String, Path, description = "trigger id")),
    request_body = UpdateTrigger,
    responses((status = 200, body = TriggerDto), (status = 400, body = ErrorEnvelope),
    (status = 404, body = ErrorEnvelope)))]
pub async fn update(
    State(state): State<AppState>,
    identity: Identity,
    path: TriggerPath,
    ApiJson(body): ApiJson<UpdateTrigger>,
) -> ApiResult<impl IntoResponse> {
    let (address, id) = trigger_path(path)?;
    // The config can only be checked against the stored type, which the
    // service reads; everything else is checked here.
    let changes = TriggerChanges {
        trigger_type: body
            .trigger_type
            .as_deref()
            .map(str::parse::<TriggerType>)
            .transpose()?,
        config: body.config,
        enabled: body.enabled,
        cooldown_seconds: cooldown(body.cooldown_seconds)?,
    };
    let trigger = rat_service::triggers::update(
        &state.services,
        &identity.caller,
        &address,
        id,
        &changes,
        OffsetDateTime::now_utc(),
    )
    .await?;
    Ok((
        Extension(AuditObject::new("trigger.update", "trigger", Some(trigger.id.into()))),
        Json(trigger_dto(trigger, &state.settings.public_url)),
    ))
}

/// Deletes a trigger; the runs it created stay.
#[utoipa::path(delete, path = "/pipelines/{namespace}/{layer}/{name}/triggers/{id}", tag = "triggers",
    params(("namespace" = String, Path), ("layer" = String, Path), ("name" = String, Path),
        ("id" = String, Path, description = "trigger id")),
    responses((status = 204), (status = 400, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope)))]
pub async fn delete(
    State(state): State<AppState>,
    identity: Identity,
    path: TriggerPath,
) -> ApiResult<impl IntoResponse> {
    let (address, id) = trigger_path(path)?;
    rat_service::triggers::delete(&state.services, &identity.caller, &address, id).await?;
    Ok((
        StatusCode::NO_CONTENT,
        Extension(AuditObject::new("trigger.delete", "trigger", Some(id.into()))),
    ))
}
