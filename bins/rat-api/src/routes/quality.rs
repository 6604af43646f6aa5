//! `/api/v1`: Quality tests (contract §10), behind the `quality_tests`
//! feature flag. Definitions are `quality_tests` rows with their SQL in the
//! pipeline's directory (`tests/quality/{name}.sql`); results are the rows
//! runners record in `quality_results`.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::{Extension, Json};
use rat_domain::{Severity, TestName};
use rat_service::quality::NewTest;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::error::{ApiError, ApiResult, ErrorEnvelope};
use crate::extract::{ApiJson, ApiQuery, Identity, PageParams, pipeline_ref};
use crate::middleware::{AuditObject, Feature};
use crate::routes::pipelines::{PipelinePath, address};
use crate::state::AppState;
pub use rat_wire::quality::{CreateTest, CreatedTest, TestDto, TestList, TestResultDto, TestRunDto};

/// The routes of this module, answering 404 while `quality_tests` is off.
pub fn router(state: &AppState) -> OpenApiRouter<AppState> {
    let routes = OpenApiRouter::new()
        .routes(routes!(list, create))
        .routes(routes!(run))
        .routes(routes!(delete))
        .routes(routes!(sdk_list, sdk_create))
        .routes(routes!(sdk_run))
        .routes(routes!(sdk_delete));
    crate::app::gated(Feature::QualityTests, state, routes)
}

/// A test name that cannot be used: `DELETE …/tests/run` would reach the
/// `…/tests/run` route (which only answers POST), so such a test could never
/// be deleted.
const RESERVED_TEST_NAME: &str = "run";

/// The pipeline's quality tests by name, paged, each with its SQL at HEAD.
#[utoipa::path(get, path = "/pipelines/{namespace}/{layer}/{name}/tests", tag = "quality",
    params(("namespace" = String, Path), ("layer" = String, Path), ("name" = String, Path), PageParams),
    responses(
    (status = 200, body = TestList), (status = 400, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope),
    (status = 503, body = ErrorEnvelope)))]
pub async fn list(
    State(state): State<AppState>,
    identity: Identity,
    path: PipelinePath,
    ApiQuery(page): ApiQuery<PageParams>,
) -> ApiResult<Json<TestList>> {
    let address = address(path)?;
    let page = page.page()?;
    let tests = rat_service::quality::list_tests(&state.services, &identity.caller, &address, page).await?;
    Ok(Json(TestList {
        tests: tests
            .items
            .into_iter()
            .map(|t| TestDto {
                severity: t.severity().as_str().to_owned(),
                description: t.description().to_owned(),
                published: t.published,
                tags: t.annotations.tags,
                remediation: t.annotations.remediation.unwrap_or_default(),
                name: t.test.name.into_string(),
                sql: t.sql,
            })
            .collect(),
        total: tests.total,
    }))
}

/// Creates a quality test: writes its SQL to
/// `{ns}/pipelines/{layer}/{name}/tests/quality/{test}.sql` (the pipeline's
/// draft turns dirty) and records it. 409 when the pipeline has a test of
/// that name (its SQL is left untouched).
#[utoipa::path(post, path = "/pipelines/{namespace}/{layer}/{name}/tests", tag = "quality",
    params(("namespace" = String, Path), ("layer" = String, Path), ("name" = String, Path)),
    request_body = CreateTest, responses(
    (status = 201, body = CreatedTest), (status = 400, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope),
    (status = 409, body = ErrorEnvelope), (status = 413, body = ErrorEnvelope), (status = 503, body = ErrorEnvelope)))]
pub async fn create(
    State(state): State<AppState>,
    identity: Identity,
    path: PipelinePath,
    ApiJson(body): ApiJson<CreateTest>,
) -> ApiResult<impl IntoResponse> {
    let address = address(path)?;
    let name = TestName::parse(&body.name)?;
    if name.as_str() == RESERVED_TEST_NAME {
        return Err(ApiError::invalid(
            "test name \"run\" is reserved (it would collide with POST …/tests/run)",
        ));
    }
    let severity = match body.severity.as_deref() {
        None | Some("") => Severity::Error,
        Some(text) => text.parse()?,
    };
    let created = rat_service::quality::create_test(
        &state.services,
        &identity.caller,
        &address,
        NewTest {
            name,
            sql: body.sql,
            severity,
            description: body.description.unwrap_or_default(),
        },
    )
    .await?;
    Ok((
        StatusCode::CREATED,
        Extension(AuditObject::new(
            "quality_test.create",
            "pipeline",
            Some(created.pipeline_id.into()),
        )),
        Json(CreatedTest {
            name: created.name.into_string(),
            severity: created.severity.as_str().to_owned(),
            path: created.s3_path.to_string(),
        }),
    ))
}

/// Deletes a quality test: its row, its results and its SQL file (the
/// pipeline's draft turns dirty). 404 for an unknown test.
#[utoipa::path(delete, path = "/pipelines/{namespace}/{layer}/{name}/tests/{test}", tag = "quality",
    params(("namespace" = String, Path), ("layer" = String, Path), ("name" = String, Path),
        ("test" = String, Path)),
    responses(
    (status = 204), (status = 400, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope),
    (status = 503, body = ErrorEnvelope)))]
pub async fn delete(
    State(state): State<AppState>,
    identity: Identity,
    Path((namespace, layer, name, test)): Path<(String, String, String, String)>,
) -> ApiResult<impl IntoResponse> {
    let address = pipeline_ref(&namespace, &layer, &name)?;
    let test = TestName::parse(&test)?;
    let deleted = rat_service::quality::delete_test(&state.services, &identity.caller, &address, &test).await?;
    Ok((
        StatusCode::NO_CONTENT,
        Extension(AuditObject::new(
            "quality_test.delete",
            "pipeline",
            Some(deleted.pipeline_id.into()),
        )),
    ))
}

/// The newest recorded result of each of the pipeline's tests.
///
/// Deviation from ratd, which executes the tests on this call: this service
/// has no SQL engine. Runners execute quality tests as part of a pipeline
/// run and record one result per test and run in `quality_results`; this
/// route answers with the newest of them, executing nothing. A test that
/// never ran has no entry in `results` (RAT's portal shows any entry
/// whose status is not a result's as an error) but is named in `not_run`,
/// and counts in neither `passed` nor `failed`;
/// `failed` counts `failed`, `warned` and `error` results, as ratd counts
/// everything that did not pass. `passed`, `failed` and `total` cover every
/// test; `results` lists the first 200 by name unless `limit`/`offset` ask
/// for another page.
#[utoipa::path(post, path = "/pipelines/{namespace}/{layer}/{name}/tests/run", tag = "quality",
    params(("namespace" = String, Path), ("layer" = String, Path), ("name" = String, Path), PageParams),
    responses(
    (status = 200, body = TestRunDto), (status = 400, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope)))]
pub async fn run(
    State(state): State<AppState>,
    identity: Identity,
    path: PipelinePath,
    ApiQuery(page): ApiQuery<PageParams>,
) -> ApiResult<impl IntoResponse> {
    let address = address(path)?;
    // Unlike lists, the default page is the largest: clients of ratd expect
    // every test's result in one answer.
    let page = PageParams {
        limit: page
            .limit
            .or_else(|| Some(rat_domain::PageRequest::MAX_LIMIT.to_string())),
        offset: page.offset,
    }
    .page()?;
    let latest = rat_service::quality::latest_results(&state.services, &identity.caller, &address, page).await?;
    let (passed, failed) = (latest.passed(), latest.failed());
    let (ran, never): (Vec<_>, Vec<_>) = latest.results.into_iter().partition(|t| t.latest.is_some());
    Ok((
        Extension(AuditObject::new(
            "quality_test.run",
            "pipeline",
            Some(latest.pipeline_id.into()),
        )),
        Json(TestRunDto {
            passed,
            failed,
            total: latest.counts.total,
            not_run: never.into_iter().map(|t| t.test.name.into_string()).collect(),
            results: ran
                .into_iter()
                .map(|t| TestResultDto {
                    name: t.test.name.into_string(),
                    severity: t.test.severity.as_str().to_owned(),
                    status: t.latest.as_ref().map(|r| r.status.as_str().to_owned()),
                    value: t.latest.as_ref().and_then(|r| r.value),
                    expected: t.latest.as_ref().and_then(|r| r.expected),
                    duration_ms: t.latest.as_ref().and_then(|r| r.duration_ms),
                    ran_at: t.latest.as_ref().map(|r| r.ran_at),
                    run_id: t.latest.as_ref().and_then(|r| r.run_id).map(Into::into),
                })
                .collect(),
        }),
    ))
}

// RAT's TypeScript SDK (`QualityResource`) calls the same operations under
// `/api/v1/tests/{ns}/{layer}/{name}`, a path ratd never served; these
// aliases answer exactly as the routes above, so the SDK and the portal's
// quality tab work unchanged.

/// The pipeline's quality tests (the SDK's path for
/// `GET /pipelines/{…}/tests`, answering the same).
#[utoipa::path(get, path = "/tests/{namespace}/{layer}/{name}", tag = "quality",
    params(("namespace" = String, Path), ("layer" = String, Path), ("name" = String, Path), PageParams),
    responses(
    (status = 200, body = TestList), (status = 400, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope),
    (status = 503, body = ErrorEnvelope)))]
pub async fn sdk_list(
    state: State<AppState>,
    identity: Identity,
    path: PipelinePath,
    page: ApiQuery<PageParams>,
) -> ApiResult<Json<TestList>> {
    list(state, identity, path, page).await
}

/// Creates a quality test (the SDK's path for `POST /pipelines/{…}/tests`,
/// answering the same).
#[utoipa::path(post, path = "/tests/{namespace}/{layer}/{name}", tag = "quality",
    params(("namespace" = String, Path), ("layer" = String, Path), ("name" = String, Path)),
    request_body = CreateTest, responses(
    (status = 201, body = CreatedTest), (status = 400, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope),
    (status = 409, body = ErrorEnvelope), (status = 413, body = ErrorEnvelope), (status = 503, body = ErrorEnvelope)))]
pub async fn sdk_create(
    state: State<AppState>,
    identity: Identity,
    path: PipelinePath,
    body: ApiJson<CreateTest>,
) -> ApiResult<impl IntoResponse> {
    create(state, identity, path, body).await
}

/// Deletes a quality test (the SDK's path for
/// `DELETE /pipelines/{…}/tests/{test}`, answering the same).
#[utoipa::path(delete, path = "/tests/{namespace}/{layer}/{name}/{test}", tag = "quality",
    params(("namespace" = String, Path), ("layer" = String, Path), ("name" = String, Path),
        ("test" = String, Path)),
    responses(
    (status = 204), (status = 400, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope),
    (status = 503, body = ErrorEnvelope)))]
pub async fn sdk_delete(
    state: State<AppState>,
    identity: Identity,
    path: Path<(String, String, String, String)>,
) -> ApiResult<impl IntoResponse> {
    delete(state, identity, path).await
}

/// The newest recorded result of each test (the SDK's path for
/// `POST /pipelines/{…}/tests/run`, answering the same).
#[utoipa::path(post, path = "/tests/{namespace}/{layer}/{name}/run", tag = "quality",
    params(("namespace" = String, Path), ("layer" = String, Path), ("name" = String, Path), PageParams),
    responses(
    (status = 200, body = TestRunDto), (status = 400, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope)))]
pub async fn sdk_run(
    state: State<AppState>,
    identity: Identity,
    path: PipelinePath,
    page: ApiQuery<PageParams>,
) -> ApiResult<impl IntoResponse> {
    run(state, identity, path, page).await
}
