//! The values and rules of the RAT metadata plane, with no IO.
//!
//! Everything the schema stores has a parsed type here: names follow the name
//! rule, layers, types and statuses are closed enums, the run status machine
//! lives in [`RunStatus`], cron expressions are validated by [`CronExpr`], and
//! trigger configs, retention settings, feature flags and published-version
//! maps are typed. A value of these types is valid by construction.
//!
//! Architecture invariant: this crate does no IO. It must never depend on
//! tokio, tokio-postgres, deadpool, rust-s3 or hyper (`tests/no_io.rs` checks).
//!
//! What it must never do: IO of any kind, or hold a wire (JSON) shape of the
//! API (those are `rat-wire`'s).
//!
//! ```
//! use rat_domain::{CronExpr, Layer, NamespaceName, PipelineRef, RunStatus};
//!
//! // Parse once, at the edge; a parsed value is valid for good.
//! let address = PipelineRef::parse("sales", "silver", "orders").unwrap();
//! assert_eq!(address.layer, Layer::Silver);
//! assert!(NamespaceName::parse("Not A Name").is_err());
//! assert!(CronExpr::parse("*/5 * * * *").is_ok());
//!
//! // The run status machine.
//! assert!(RunStatus::Pending.can_transition_to(RunStatus::Running));
//! assert!(!RunStatus::Success.can_transition_to(RunStatus::Running));
//! ```

#[macro_use]
mod macros;

mod access;
mod audit;
mod error;
mod features;
mod ids;
mod landing;
mod names;
mod namespace;
pub mod object;
mod page;
mod pipeline;
mod plugin;
mod quality;
mod reaper;
mod retention;
mod run;
mod schedule;
mod table;
pub mod text;
mod tokens;
mod trigger;
mod versions;

pub use access::{
    AccessLevel, ListedMember, MAX_PROJECT_NAME_CHARS, MemberType, NON_PERSONAL_OWNERS, ObjectType, Ownership,
    Permission, Principal, Project, ProjectMember, Share, is_personal_name, parse_principal, parse_project_name,
    permission,
};
pub use audit::AuditEntry;
pub use error::DomainError;
pub use features::FeatureFlags;
pub use ids::{PipelineId, QualityTestId, RunId, ScheduleId, TriggerId, VersionNumber, ZoneId};
pub use landing::{LandingFile, LandingZone, LandingZoneSummary, parse_processed_max_age_days};
pub use names::{NamespaceName, PipelineName, PluginName, TableName, TestName, ZoneName};
pub use namespace::Namespace;
pub use object::{KeyPrefix, ObjectError, ObjectKey, VersionId};
pub use page::{Cursor, KeysetPage, Page, PageRequest, Sort};
pub use pipeline::{Layer, Pipeline, PipelineRef, PipelineSortField, PipelineType};
pub use plugin::{Plugin, PluginStatus};
pub use quality::{QualityResult, QualityStatus, QualityTest, Severity, TestAnnotations, TestOutcome};
pub use reaper::{NextPass, ReaperCounters, ReaperStatus};
pub use retention::{PIPELINE_OVERRIDE_KEYS, RetentionOverrides, RetentionSettings};
pub use run::{
    LogEntry, LogLevel, MAX_RUNNER_ID_LEN, Run, RunSortField, RunStatus, RunSummary, RunnerId, trigger_label,
};
pub use schedule::{CronExpr, Schedule, ScheduleTimezone};
pub use table::{KnownTable, TableMetadata};
pub use tokens::{MAX_TOKEN_DAYS, MAX_TOKEN_NAME_CHARS, PersonalToken};
pub use trigger::{MAX_DEPENDENCIES, MAX_PATTERN_LEN, Trigger, TriggerConfig, TriggerType, parse_cooldown_seconds};
pub use versions::{PipelineVersion, PublishedVersions};
