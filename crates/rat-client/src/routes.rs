//! [`Client`]'s methods for the rest of the REST API: the platform (health,
//! features, plugins, the caller and their tokens), quality tests, landing
//! zones, tables, sharing, projects, the audit log, retention and the
//! reaper, and webhooks. One method per route; bodies and answers are
//! [`rat_wire`]'s types.
//!
//! The SDK's aliases of the quality routes (`/api/v1/tests/{namespace}/…`)
//! answer exactly as the `…/pipelines/{namespace}/{layer}/{name}/tests`
//! routes these methods call.

use reqwest::Method;
use reqwest::multipart::{Form, Part};
use uuid::Uuid;

use rat_wire::admin::{FailedMergeList, PipelineRetentionDto, ReaperStatusDto, RetentionConfigResponse};
use rat_wire::audit::{AuditList, AuditQuery};
use rat_wire::files::UploadedFile;
use rat_wire::health::{Health, Readiness};
use rat_wire::landing::{
    CreateZone, FileDto, FileList as ZoneFileList, LifecycleDto, SampleList, UpdateLifecycle, UpdateZone,
    UploadedSample, ZoneDto, ZoneList, ZoneQuery,
};
use rat_wire::me::{CreateToken, CreatedToken, Me, TokenList};
use rat_wire::meta::{Features, PluginQuery, RunnerPluginDto};
use rat_wire::namespaces::UpdateNamespace;
use rat_wire::pipelines::PipelineDto;
use rat_wire::plugins::PluginDto;
use rat_wire::projects::{
    AddMember, CreateProject, MemberList, MembershipDto, ProjectDto, ProjectList, ProjectQuery, UpdateProject,
};
use rat_wire::quality::{CreateTest, CreatedTest, TestList, TestRunDto};
use rat_wire::sharing::{ShareDto, ShareList, ShareQuery, ShareRequest, TransferRequest, Transferred};
use rat_wire::tables::{PutMetadata, SchemaDto, TableDetailDto, TableList, TableMetadataDto, TableQuery};
use rat_wire::triggers::TriggerDto;
use rat_wire::versions::VersionDto;
use rat_wire::webhooks::WebhookFired;

use crate::api::NO_QUERY;
use crate::error::{Error, Result};
use crate::transport::segment;
use crate::{Client, Page, PipelineAddress};

/// The header a webhook call carries its token in.
const WEBHOOK_TOKEN_HEADER: &str = "x-webhook-token";

/// The path of a landing zone, `rest` appended.
fn zone_path(namespace: &str, name: &str, rest: &str) -> String {
    format!("/api/v1/landing-zones/{}/{}{rest}", segment(namespace), segment(name))
}

/// The path of a table, `rest` appended.
fn table_path(address: PipelineAddress<'_>, rest: &str) -> String {
    format!(
        "/api/v1/tables/{}/{}/{}{rest}",
        segment(address.namespace),
        segment(address.layer),
        segment(address.name)
    )
}

/// A multipart form with one `file` part.
fn file_form(filename: &str, content: Vec<u8>) -> Form {
    Form::new().part("file", Part::bytes(content).file_name(filename.to_owned()))
}

/// Platform: health, features, plugins.
impl Client {
    /// `GET /health`: the process is up, and its build.
    pub async fn health(&self) -> Result<Health> {
        self.transport
            .json::<(), _>(Method::GET, "/health", NO_QUERY, None)
            .await
    }

    /// `GET /health/live` (the same answer as [`Client::health`]).
    pub async fn live(&self) -> Result<Health> {
        self.transport
            .json::<(), _>(Method::GET, "/health/live", NO_QUERY, None)
            .await
    }

    /// `GET /health/ready`: each dependency's readiness. A 503 (not ready)
    /// is an answer too, not an error: read [`Readiness::status`]. Asked
    /// once (a readiness probe is not retried).
    pub async fn ready(&self) -> Result<Readiness> {
        let (status, body) = self.transport.send_raw(Method::GET, "/health/ready").await?;
        if status.is_success() || status.as_u16() == 503 {
            return serde_json::from_slice(&body).map_err(|e| Error::Decode(e.to_string()));
        }
        Err(Error::Unexpected {
            status: status.as_u16(),
            body: String::from_utf8_lossy(&body).chars().take(500).collect(),
        })
    }

    /// `GET /metrics`: the Prometheus text exposition.
    pub async fn metrics(&self) -> Result<String> {
        let answer = self
            .transport
            .call::<()>(Method::GET, "/metrics", NO_QUERY, None)
            .await?;
        String::from_utf8(answer.body.to_vec()).map_err(|e| Error::Decode(e.to_string()))
    }

    /// `GET /api/v1/features`: the edition, feature flags and plugin slots.
    pub async fn features(&self) -> Result<Features> {
        self.transport
            .json::<(), _>(Method::GET, "/api/v1/features", NO_QUERY, None)
            .await
    }

    /// `GET /api/v1/plugins`: the plugins runners registered.
    pub async fn list_plugins(&self, query: &PluginQuery) -> Result<Vec<PluginDto>> {
        self.transport
            .json::<(), _>(Method::GET, "/api/v1/plugins", Some(query), None)
            .await
    }

    /// `DELETE /api/v1/plugins/{name}` (admins).
    pub async fn delete_plugin(&self, name: &str) -> Result<()> {
        let path = format!("/api/v1/plugins/{}", segment(name));
        self.transport.call::<()>(Method::DELETE, &path, NO_QUERY, None).await?;
        Ok(())
    }

    /// `GET /api/v1/runner/plugins`: the plugins of the live runners.
    pub async fn runner_plugins(&self) -> Result<Vec<RunnerPluginDto>> {
        self.transport
            .json::<(), _>(Method::GET, "/api/v1/runner/plugins", NO_QUERY, None)
            .await
    }
}

/// The caller and their personal access tokens.
impl Client {
    /// `GET /api/v1/me`: who the caller is.
    pub async fn me(&self) -> Result<Me> {
        self.transport
            .json::<(), _>(Method::GET, "/api/v1/me", NO_QUERY, None)
            .await
    }

    /// `GET /api/v1/me/tokens`: the caller's personal access tokens (never their secrets).
    pub async fn list_tokens(&self, page: Page) -> Result<TokenList> {
        self.transport
            .json::<(), _>(Method::GET, "/api/v1/me/tokens", Some(&page), None)
            .await
    }

    /// `POST /api/v1/me/tokens`: a personal access token; its secret is in the answer, once.
    pub async fn create_token(&self, body: &CreateToken) -> Result<CreatedToken> {
        self.transport
            .json(Method::POST, "/api/v1/me/tokens", NO_QUERY, Some(body))
            .await
    }

    /// `DELETE /api/v1/me/tokens/{id}`: revokes a token.
    pub async fn revoke_token(&self, id: Uuid) -> Result<()> {
        let path = format!("/api/v1/me/tokens/{id}");
        self.transport.call::<()>(Method::DELETE, &path, NO_QUERY, None).await?;
        Ok(())
    }
}

/// The namespace, pipeline, file, version and trigger routes not covered above.
impl Client {
    /// `PUT /api/v1/namespaces/{name}`: replaces its description.
    pub async fn update_namespace(&self, name: &str, body: &UpdateNamespace) -> Result<()> {
        let path = format!("/api/v1/namespaces/{}", segment(name));
        self.transport.call(Method::PUT, &path, NO_QUERY, Some(body)).await?;
        Ok(())
    }

    /// `GET /api/v1/pipelines/deleted/{id}`: a soft-deleted pipeline.
    pub async fn get_deleted_pipeline(&self, id: Uuid) -> Result<PipelineDto> {
        let path = format!("/api/v1/pipelines/deleted/{id}");
        self.transport.json::<(), _>(Method::GET, &path, NO_QUERY, None).await
    }

    /// `POST …/restore`: brings a soft-deleted pipeline back.
    pub async fn restore_pipeline(&self, address: PipelineAddress<'_>) -> Result<PipelineDto> {
        self.transport
            .json::<(), _>(Method::POST, &address.path("/restore"), NO_QUERY, None)
            .await
    }

    /// `POST /api/v1/files/upload`: writes `content` at `key` (a multipart upload; not retried).
    pub async fn upload_file(&self, key: &str, content: Vec<u8>) -> Result<UploadedFile> {
        let filename = key.rsplit('/').next().unwrap_or(key).to_owned();
        let form = Form::new()
            .text("path", key.to_owned())
            .part("file", Part::bytes(content).file_name(filename));
        self.transport
            .send_once(Method::POST, "/api/v1/files/upload", true, |r| r.multipart(form))
            .await?
            .json()
    }

    /// `GET …/versions/{number}`: one published version with its pinned files.
    pub async fn get_version(&self, address: PipelineAddress<'_>, number: i32) -> Result<VersionDto> {
        self.transport
            .json::<(), _>(
                Method::GET,
                &address.path(&format!("/versions/{number}")),
                NO_QUERY,
                None,
            )
            .await
    }

    /// `GET …/triggers/{id}`.
    pub async fn get_trigger(&self, address: PipelineAddress<'_>, id: Uuid) -> Result<TriggerDto> {
        self.transport
            .json::<(), _>(Method::GET, &address.path(&format!("/triggers/{id}")), NO_QUERY, None)
            .await
    }

    /// `POST /api/v1/webhooks`: fires the webhook trigger whose token this
    /// is (sent as `X-Webhook-Token`; the client's own token is not sent).
    pub async fn fire_webhook(&self, token: &str) -> Result<WebhookFired> {
        let token = token.to_owned();
        self.transport
            .send_once(Method::POST, "/api/v1/webhooks", false, |r| {
                r.header(WEBHOOK_TOKEN_HEADER, token)
            })
            .await?
            .json()
    }
}

/// Quality tests.
impl Client {
    /// `GET …/tests`: the pipeline's quality tests, with their SQL.
    pub async fn list_tests(&self, address: PipelineAddress<'_>, page: Page) -> Result<TestList> {
        self.transport
            .json::<(), _>(Method::GET, &address.path("/tests"), Some(&page), None)
            .await
    }

    /// `POST …/tests`: writes a quality test's SQL file.
    pub async fn create_test(&self, address: PipelineAddress<'_>, body: &CreateTest) -> Result<CreatedTest> {
        self.transport
            .json(Method::POST, &address.path("/tests"), NO_QUERY, Some(body))
            .await
    }

    /// `DELETE …/tests/{test}`.
    pub async fn delete_test(&self, address: PipelineAddress<'_>, test: &str) -> Result<()> {
        let path = address.path(&format!("/tests/{}", segment(test)));
        self.transport.call::<()>(Method::DELETE, &path, NO_QUERY, None).await?;
        Ok(())
    }

    /// `POST …/tests/run`: the latest result of each of the pipeline's tests.
    pub async fn test_results(&self, address: PipelineAddress<'_>, page: Page) -> Result<TestRunDto> {
        self.transport
            .json::<(), _>(Method::POST, &address.path("/tests/run"), Some(&page), None)
            .await
    }
}

/// Landing zones, their files, samples and lifecycle.
impl Client {
    /// `GET /api/v1/landing-zones`.
    pub async fn list_zones(&self, query: &ZoneQuery) -> Result<ZoneList> {
        self.transport
            .json::<(), _>(Method::GET, "/api/v1/landing-zones", Some(query), None)
            .await
    }

    /// `POST /api/v1/landing-zones`.
    pub async fn create_zone(&self, body: &CreateZone) -> Result<ZoneDto> {
        self.transport
            .json(Method::POST, "/api/v1/landing-zones", NO_QUERY, Some(body))
            .await
    }

    /// `GET /api/v1/landing-zones/{namespace}/{name}`.
    pub async fn get_zone(&self, namespace: &str, name: &str) -> Result<ZoneDto> {
        self.transport
            .json::<(), _>(Method::GET, &zone_path(namespace, name, ""), NO_QUERY, None)
            .await
    }

    /// `PUT /api/v1/landing-zones/{namespace}/{name}`: an absent field keeps its value.
    pub async fn update_zone(&self, namespace: &str, name: &str, body: &UpdateZone) -> Result<ZoneDto> {
        self.transport
            .json(Method::PUT, &zone_path(namespace, name, ""), NO_QUERY, Some(body))
            .await
    }

    /// `DELETE /api/v1/landing-zones/{namespace}/{name}`: the zone and its files.
    pub async fn delete_zone(&self, namespace: &str, name: &str) -> Result<()> {
        self.transport
            .call::<()>(Method::DELETE, &zone_path(namespace, name, ""), NO_QUERY, None)
            .await?;
        Ok(())
    }

    /// `GET …/files`: the zone's files, newest first.
    pub async fn list_zone_files(&self, namespace: &str, name: &str, page: Page) -> Result<ZoneFileList> {
        self.transport
            .json::<(), _>(Method::GET, &zone_path(namespace, name, "/files"), Some(&page), None)
            .await
    }

    /// `POST …/files`: uploads a file into the zone (multipart; not retried).
    pub async fn upload_zone_file(
        &self,
        namespace: &str,
        name: &str,
        filename: &str,
        content: Vec<u8>,
    ) -> Result<FileDto> {
        let form = file_form(filename, content);
        self.transport
            .send_once(Method::POST, &zone_path(namespace, name, "/files"), true, |r| {
                r.multipart(form)
            })
            .await?
            .json()
    }

    /// `GET …/files/{id}`: one file's record.
    pub async fn get_zone_file(&self, namespace: &str, name: &str, id: Uuid) -> Result<FileDto> {
        self.transport
            .json::<(), _>(
                Method::GET,
                &zone_path(namespace, name, &format!("/files/{id}")),
                NO_QUERY,
                None,
            )
            .await
    }

    /// `DELETE …/files/{id}`.
    pub async fn delete_zone_file(&self, namespace: &str, name: &str, id: Uuid) -> Result<()> {
        self.transport
            .call::<()>(
                Method::DELETE,
                &zone_path(namespace, name, &format!("/files/{id}")),
                NO_QUERY,
                None,
            )
            .await?;
        Ok(())
    }

    /// `GET …/lifecycle`: how long processed files are kept.
    pub async fn get_lifecycle(&self, namespace: &str, name: &str) -> Result<LifecycleDto> {
        self.transport
            .json::<(), _>(Method::GET, &zone_path(namespace, name, "/lifecycle"), NO_QUERY, None)
            .await
    }

    /// `PUT …/lifecycle`: an absent field keeps its value.
    pub async fn update_lifecycle(&self, namespace: &str, name: &str, body: &UpdateLifecycle) -> Result<LifecycleDto> {
        self.transport
            .json(
                Method::PUT,
                &zone_path(namespace, name, "/lifecycle"),
                NO_QUERY,
                Some(body),
            )
            .await
    }

    /// `GET …/samples`: the zone's sample files.
    pub async fn list_samples(&self, namespace: &str, name: &str) -> Result<SampleList> {
        self.transport
            .json::<(), _>(Method::GET, &zone_path(namespace, name, "/samples"), NO_QUERY, None)
            .await
    }

    /// `POST …/samples`: uploads a sample file (multipart; not retried).
    pub async fn upload_sample(
        &self,
        namespace: &str,
        name: &str,
        filename: &str,
        content: Vec<u8>,
    ) -> Result<UploadedSample> {
        let form = file_form(filename, content);
        self.transport
            .send_once(Method::POST, &zone_path(namespace, name, "/samples"), true, |r| {
                r.multipart(form)
            })
            .await?
            .json()
    }

    /// `DELETE …/samples/{filename}`.
    pub async fn delete_sample(&self, namespace: &str, name: &str, filename: &str) -> Result<()> {
        self.transport
            .call::<()>(
                Method::DELETE,
                &zone_path(namespace, name, &format!("/samples/{}", segment(filename))),
                NO_QUERY,
                None,
            )
            .await?;
        Ok(())
    }
}

/// Tables and their metadata.
impl Client {
    /// `GET /api/v1/tables`: the tables the caller may read.
    pub async fn list_tables(&self, query: &TableQuery) -> Result<TableList> {
        self.transport
            .json::<(), _>(Method::GET, "/api/v1/tables", Some(query), None)
            .await
    }

    /// `GET /api/v1/tables/{namespace}/{layer}/{name}`: a table with its columns.
    pub async fn get_table(&self, table: PipelineAddress<'_>) -> Result<TableDetailDto> {
        self.transport
            .json::<(), _>(Method::GET, &table_path(table, ""), NO_QUERY, None)
            .await
    }

    /// `GET …/metadata`: the table's user-authored metadata.
    pub async fn get_table_metadata(&self, table: PipelineAddress<'_>) -> Result<TableMetadataDto> {
        self.transport
            .json::<(), _>(Method::GET, &table_path(table, "/metadata"), NO_QUERY, None)
            .await
    }

    /// `PUT …/metadata`: an absent field keeps its value.
    pub async fn put_table_metadata(&self, table: PipelineAddress<'_>, body: &PutMetadata) -> Result<TableMetadataDto> {
        self.transport
            .json(Method::PUT, &table_path(table, "/metadata"), NO_QUERY, Some(body))
            .await
    }

    /// `GET /api/v1/schema`: every readable table with its columns.
    pub async fn schema(&self) -> Result<SchemaDto> {
        self.transport
            .json::<(), _>(Method::GET, "/api/v1/schema", NO_QUERY, None)
            .await
    }
}

/// Shares and ownership transfer.
impl Client {
    /// `GET /api/v1/sharing`: the shares the caller may see.
    pub async fn list_shares(&self, query: &ShareQuery) -> Result<ShareList> {
        self.transport
            .json::<(), _>(Method::GET, "/api/v1/sharing", Some(query), None)
            .await
    }

    /// `POST /api/v1/sharing`: shares an object with a user.
    pub async fn share(&self, body: &ShareRequest) -> Result<ShareDto> {
        self.transport
            .json(Method::POST, "/api/v1/sharing", NO_QUERY, Some(body))
            .await
    }

    /// `DELETE /api/v1/sharing/{id}`: revokes a share.
    pub async fn revoke_share(&self, id: Uuid) -> Result<()> {
        let path = format!("/api/v1/sharing/{id}");
        self.transport.call::<()>(Method::DELETE, &path, NO_QUERY, None).await?;
        Ok(())
    }

    /// `POST /api/v1/sharing/transfer`: gives an object to another owner.
    pub async fn transfer(&self, body: &TransferRequest) -> Result<Transferred> {
        self.transport
            .json(Method::POST, "/api/v1/sharing/transfer", NO_QUERY, Some(body))
            .await
    }
}

/// Projects and their members.
impl Client {
    /// `GET /api/v1/projects`.
    pub async fn list_projects(&self, query: &ProjectQuery) -> Result<ProjectList> {
        self.transport
            .json::<(), _>(Method::GET, "/api/v1/projects", Some(query), None)
            .await
    }

    /// `POST /api/v1/projects`.
    pub async fn create_project(&self, body: &CreateProject) -> Result<ProjectDto> {
        self.transport
            .json(Method::POST, "/api/v1/projects", NO_QUERY, Some(body))
            .await
    }

    /// `GET /api/v1/projects/{id}`.
    pub async fn get_project(&self, id: Uuid) -> Result<ProjectDto> {
        let path = format!("/api/v1/projects/{id}");
        self.transport.json::<(), _>(Method::GET, &path, NO_QUERY, None).await
    }

    /// `PUT /api/v1/projects/{id}`: an absent field keeps its value.
    pub async fn update_project(&self, id: Uuid, body: &UpdateProject) -> Result<ProjectDto> {
        let path = format!("/api/v1/projects/{id}");
        self.transport.json(Method::PUT, &path, NO_QUERY, Some(body)).await
    }

    /// `DELETE /api/v1/projects/{id}` (its members stay where they are).
    pub async fn delete_project(&self, id: Uuid) -> Result<()> {
        let path = format!("/api/v1/projects/{id}");
        self.transport.call::<()>(Method::DELETE, &path, NO_QUERY, None).await?;
        Ok(())
    }

    /// `GET /api/v1/projects/{id}/members`.
    pub async fn list_members(&self, id: Uuid, page: Page) -> Result<MemberList> {
        let path = format!("/api/v1/projects/{id}/members");
        self.transport
            .json::<(), _>(Method::GET, &path, Some(&page), None)
            .await
    }

    /// `POST /api/v1/projects/{id}/members`: adds a pipeline or table.
    pub async fn add_member(&self, id: Uuid, body: &AddMember) -> Result<MembershipDto> {
        let path = format!("/api/v1/projects/{id}/members");
        self.transport.json(Method::POST, &path, NO_QUERY, Some(body)).await
    }

    /// `DELETE /api/v1/projects/{id}/members/{object_type}/{object_id}`.
    pub async fn remove_member(&self, id: Uuid, object_type: &str, object_id: Uuid) -> Result<()> {
        let path = format!("/api/v1/projects/{id}/members/{}/{object_id}", segment(object_type));
        self.transport.call::<()>(Method::DELETE, &path, NO_QUERY, None).await?;
        Ok(())
    }
}

/// The audit log, retention and the reaper.
impl Client {
    /// `GET /api/v1/audit`: audit entries matching `query`, newest first.
    pub async fn list_audit(&self, query: &AuditQuery) -> Result<AuditList> {
        self.transport
            .json::<(), _>(Method::GET, "/api/v1/audit", Some(query), None)
            .await
    }

    /// `GET /api/v1/admin/retention/config`: the system retention settings.
    pub async fn retention_config(&self) -> Result<RetentionConfigResponse> {
        self.transport
            .json::<(), _>(Method::GET, "/api/v1/admin/retention/config", NO_QUERY, None)
            .await
    }

    /// `PUT /api/v1/admin/retention/config`: changes the settings named in
    /// `settings` (an object of some of [`rat_wire::admin::RetentionConfig`]'s
    /// keys); the others keep their value.
    pub async fn update_retention_config(&self, settings: &serde_json::Value) -> Result<RetentionConfigResponse> {
        self.transport
            .json(Method::PUT, "/api/v1/admin/retention/config", NO_QUERY, Some(settings))
            .await
    }

    /// `GET /api/v1/admin/retention/status`: the reaper's last pass and totals.
    pub async fn retention_status(&self) -> Result<ReaperStatusDto> {
        self.transport
            .json::<(), _>(Method::GET, "/api/v1/admin/retention/status", NO_QUERY, None)
            .await
    }

    /// `POST /api/v1/admin/retention/run`: asks the reaper for a pass now.
    pub async fn request_reaper_pass(&self) -> Result<ReaperStatusDto> {
        self.transport
            .json::<(), _>(Method::POST, "/api/v1/admin/retention/run", NO_QUERY, None)
            .await
    }

    /// `GET /api/v1/admin/failed-merges`: merge failures runners reported, newest first.
    pub async fn list_failed_merges(&self, page: Page) -> Result<FailedMergeList> {
        self.transport
            .json::<(), _>(Method::GET, "/api/v1/admin/failed-merges", Some(&page), None)
            .await
    }

    /// `GET …/retention`: a pipeline's retention (system, overrides, effective).
    pub async fn pipeline_retention(&self, address: PipelineAddress<'_>) -> Result<PipelineRetentionDto> {
        self.transport
            .json::<(), _>(Method::GET, &address.path("/retention"), NO_QUERY, None)
            .await
    }

    /// `PUT …/retention`: replaces the pipeline's overrides with `overrides`
    /// (the whole set: `{}` removes every override).
    pub async fn set_pipeline_retention(
        &self,
        address: PipelineAddress<'_>,
        overrides: &serde_json::Value,
    ) -> Result<PipelineRetentionDto> {
        self.transport
            .json(Method::PUT, &address.path("/retention"), NO_QUERY, Some(overrides))
            .await
    }
}
