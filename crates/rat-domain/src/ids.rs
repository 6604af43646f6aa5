//! Typed ids: a run id and a pipeline id are different types, so one cannot
//! be passed where the other is meant. Each is a UUID on the wire and in the
//! database (with the `postgres` feature, the DAO binds and reads them as
//! `uuid` columns directly).

use uuid::Uuid;

use crate::DomainError;

/// Declares an id newtype over [`Uuid`].
macro_rules! uuid_id {
    ($($(#[$meta:meta])* $name:ident, $field:literal;)+) => {$(
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
        #[serde(transparent)]
        #[cfg_attr(feature = "postgres", derive(postgres_types::ToSql, postgres_types::FromSql))]
        #[cfg_attr(feature = "postgres", postgres(transparent))]
        pub struct $name(Uuid);

        impl $name {
            /// Wraps a UUID.
            pub const fn from_uuid(id: Uuid) -> Self {
                $name(id)
            }

            /// The UUID.
            pub const fn as_uuid(self) -> Uuid {
                self.0
            }
        }

        impl From<Uuid> for $name {
            fn from(id: Uuid) -> Self {
                $name(id)
            }
        }

        impl From<$name> for Uuid {
            fn from(id: $name) -> Self {
                id.0
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                self.0.fmt(f)
            }
        }

        impl std::str::FromStr for $name {
            type Err = DomainError;

            fn from_str(text: &str) -> Result<Self, DomainError> {
                Uuid::parse_str(text)
                    .map($name)
                    .map_err(|_| DomainError::invalid($field, "must be a UUID"))
            }
        }
    )+};
}

uuid_id! {
    /// A pipeline's id (`pipelines.id`).
    PipelineId, "pipeline_id";
    /// A run's id (`runs.id`).
    RunId, "run_id";
    /// A schedule's id (`schedules.id`).
    ScheduleId, "schedule_id";
    /// A trigger's id (`pipeline_triggers.id`).
    TriggerId, "trigger_id";
    /// A quality test's id (`quality_tests.id`).
    QualityTestId, "test_id";
    /// A landing zone's id (`landing_zones.id`).
    ZoneId, "zone_id";
}

/// A version number of a pipeline's publish history: 1, 2, 3, ...
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(transparent)]
#[cfg_attr(feature = "postgres", derive(postgres_types::ToSql, postgres_types::FromSql))]
#[cfg_attr(feature = "postgres", postgres(transparent))]
pub struct VersionNumber(i32);

impl VersionNumber {
    /// The first version.
    pub const FIRST: VersionNumber = VersionNumber(1);

    /// Checks a version number given by a client: versions start at 1.
    pub fn parse(number: i64) -> Result<Self, DomainError> {
        if number < 1 || number > i64::from(i32::MAX) {
            return Err(DomainError::OutOfRange {
                field: "version",
                value: number,
                min: 1,
                max: i64::from(i32::MAX),
            });
        }
        Ok(VersionNumber(number as i32))
    }

    /// The number.
    pub const fn get(self) -> i32 {
        self.0
    }
}

/// Compares with a plain number (a count in a test, a number from a client).
impl PartialEq<i32> for VersionNumber {
    fn eq(&self, other: &i32) -> bool {
        self.0 == *other
    }
}

impl std::fmt::Display for VersionNumber {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_parse_and_print_as_uuids() {
        let text = "6f1c1a52-5d2e-4a8e-9b5e-0c2d3f4a5b6c";
        let id: RunId = text.parse().unwrap();
        assert_eq!(id.to_string(), text);
        assert_eq!(Uuid::from(id), Uuid::parse_str(text).unwrap());
        assert!("not-a-uuid".parse::<PipelineId>().is_err());
        assert_eq!(serde_json::to_string(&id).unwrap(), format!("\"{text}\""));
    }
}
