//! Retention settings: the seed's defaults, range checks, partial updates and
//! per-pipeline overrides.
//!
//! ratd stored missing keys as 0, and a 0 max age then wiped the audit log on
//! the next reaper pass. Here a partial update keeps the current value of every
//! missing key, every value is range-checked (no value can mean "delete
//! everything"), and a stored value that is missing or out of range is read
//! back as the default and reported, never used.

use serde_json::{Map, Value};

use crate::DomainError;

macro_rules! retention_settings {
    ($( $(#[$meta:meta])* $field:ident: default $default:literal, range $min:literal ..= $max:literal; )+) => {
        /// The effective retention settings (`platform_settings.retention`).
        #[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
        pub struct RetentionSettings {
            $( $(#[$meta])* pub $field: i64, )+
        }

        impl Default for RetentionSettings {
            /// The seed's values.
            fn default() -> Self {
                RetentionSettings { $( $field: $default, )+ }
            }
        }

        impl RetentionSettings {
            /// Every key with its allowed range `(name, min, max)`.
            pub const RANGES: &'static [(&'static str, i64, i64)] = &[ $( (stringify!($field), $min, $max), )+ ];

            fn slot(&mut self, key: &str) -> Option<&mut i64> {
                match key {
                    $( stringify!($field) => Some(&mut self.$field), )+
                    _ => None,
                }
            }

            /// The value of one key.
            pub fn get(&self, key: &str) -> Option<i64> {
                match key {
                    $( stringify!($field) => Some(self.$field), )+
                    _ => None,
                }
            }
        }
    };
}

retention_settings! {
    /// Runs kept per pipeline (newest first).
    runs_max_per_pipeline: default 100, range 1..=1_000_000;
    /// Terminal runs older than this are deleted.
    runs_max_age_days: default 90, range 1..=36_500;
    /// Run logs older than this are cleared.
    logs_max_age_days: default 30, range 1..=36_500;
    /// Quality results kept per test (newest first).
    quality_results_max_per_test: default 100, range 1..=1_000_000;
    /// Soft-deleted pipelines are purged after this many days.
    soft_delete_purge_days: default 30, range 1..=36_500;
    /// Running runs older than this are failed as stuck.
    stuck_run_timeout_minutes: default 120, range 1..=525_600;
    /// Audit entries older than this are deleted.
    audit_log_max_age_days: default 365, range 1..=36_500;
    /// Orphan Nessie branches older than this are deleted.
    nessie_orphan_branch_max_age_hours: default 6, range 1..=87_600;
    /// Minutes between reaper passes.
    reaper_interval_minutes: default 60, range 1..=10_080;
    /// Iceberg snapshots older than this are expired.
    iceberg_snapshot_max_age_days: default 7, range 1..=36_500;
    /// Iceberg orphan files older than this are removed.
    iceberg_orphan_file_max_age_days: default 3, range 1..=36_500;
}

/// Keys a pipeline may override in `pipelines.retention_config`. The two
/// Iceberg keys are what RAT's portal offers per pipeline: they are stored,
/// read back and laid over the system settings for the Iceberg maintenance
/// (outside this metadata plane) to read; the reaper uses the others.
pub const PIPELINE_OVERRIDE_KEYS: &[&str] = &[
    "runs_max_per_pipeline",
    "runs_max_age_days",
    "logs_max_age_days",
    "quality_results_max_per_test",
    "stuck_run_timeout_minutes",
    "iceberg_snapshot_max_age_days",
    "iceberg_orphan_file_max_age_days",
];

fn range_of(key: &str) -> Option<(i64, i64)> {
    RetentionSettings::RANGES
        .iter()
        .find(|(name, _, _)| *name == key)
        .map(|(_, min, max)| (*min, *max))
}

fn static_key(key: &str) -> &'static str {
    RetentionSettings::RANGES
        .iter()
        .find(|(name, _, _)| *name == key)
        .map(|(name, _, _)| *name)
        .unwrap_or("retention")
}

/// Checks one `key: value` pair of a client's object.
fn checked_value(key: &str, value: &Value, allowed: &[&str]) -> Result<i64, DomainError> {
    if !allowed.contains(&key) {
        return Err(DomainError::invalid("retention", format!("unknown key {key:?}")));
    }
    let (min, max) = range_of(key).ok_or_else(|| DomainError::invalid("retention", format!("unknown key {key:?}")))?;
    let number = value
        .as_i64()
        .ok_or_else(|| DomainError::invalid(static_key(key), "must be an integer"))?;
    if !(min..=max).contains(&number) {
        return Err(DomainError::OutOfRange {
            field: static_key(key),
            value: number,
            min,
            max,
        });
    }
    Ok(number)
}

fn all_keys() -> Vec<&'static str> {
    RetentionSettings::RANGES.iter().map(|(name, _, _)| *name).collect()
}

impl RetentionSettings {
    /// Reads the stored JSON leniently: a missing, non-integer or out-of-range
    /// value is replaced by its default, and each such replacement is reported
    /// so the caller can log it. Unknown keys are ignored.
    pub fn from_stored(value: &Value) -> (RetentionSettings, Vec<String>) {
        let mut settings = RetentionSettings::default();
        let mut problems = Vec::new();
        let Some(object) = value.as_object() else {
            problems.push("retention settings are not a JSON object; using defaults".to_owned());
            return (settings, problems);
        };
        for key in all_keys() {
            match object.get(key) {
                None => problems.push(format!("{key} is missing; using the default")),
                Some(raw) => match checked_value(key, raw, &all_keys()) {
                    Ok(number) => *settings.slot(key).expect("known key") = number,
                    Err(e) => problems.push(format!("{e}; using the default")),
                },
            }
        }
        (settings, problems)
    }

    /// Applies a client's partial update: keys present replace the current
    /// value after a range check, missing keys keep it. Unknown keys and
    /// non-integers are refused. Nothing changes unless every key is valid.
    pub fn merged_with(&self, patch: &Value) -> Result<RetentionSettings, DomainError> {
        let object = patch
            .as_object()
            .ok_or_else(|| DomainError::invalid("retention", "must be a JSON object"))?;
        let mut next = *self;
        let keys = all_keys();
        for (key, raw) in object {
            let number = checked_value(key, raw, &keys)?;
            *next.slot(key).expect("checked key") = number;
        }
        Ok(next)
    }

    /// The stored JSON form, every key present.
    pub fn to_json(&self) -> Value {
        serde_json::to_value(self).expect("plain struct serializes")
    }

    /// These settings with a pipeline's overrides laid over them.
    pub fn with_overrides(&self, overrides: &RetentionOverrides) -> RetentionSettings {
        let mut effective = *self;
        for (key, value) in &overrides.0 {
            if let Some(slot) = effective.slot(key) {
                *slot = *value;
            }
        }
        effective
    }
}

/// A pipeline's retention overrides (`pipelines.retention_config`): a subset of
/// [`PIPELINE_OVERRIDE_KEYS`], each range-checked.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RetentionOverrides(Vec<(&'static str, i64)>);

impl RetentionOverrides {
    /// Parses a client's override object, the whole set: `null` for a key
    /// means no override of that key.
    pub fn parse(value: &Value) -> Result<RetentionOverrides, DomainError> {
        let object = value
            .as_object()
            .ok_or_else(|| DomainError::invalid("retention", "must be a JSON object"))?;
        let mut overrides = Vec::new();
        for (key, raw) in object {
            if raw.is_null() {
                if !PIPELINE_OVERRIDE_KEYS.contains(&key.as_str()) {
                    return Err(DomainError::invalid("retention", format!("unknown key {key:?}")));
                }
                continue;
            }
            let number = checked_value(key, raw, PIPELINE_OVERRIDE_KEYS)?;
            overrides.push((static_key(key), number));
        }
        overrides.sort();
        Ok(RetentionOverrides(overrides))
    }

    /// Reads stored overrides leniently, dropping (and reporting) invalid entries.
    pub fn from_stored(value: Option<&Value>) -> (RetentionOverrides, Vec<String>) {
        let mut problems = Vec::new();
        let Some(object) = value.and_then(Value::as_object) else {
            if value.is_some_and(|v| !v.is_null()) {
                problems.push("retention_config is not a JSON object; ignored".to_owned());
            }
            return (RetentionOverrides::default(), problems);
        };
        let mut overrides = Vec::new();
        for (key, raw) in object {
            match checked_value(key, raw, PIPELINE_OVERRIDE_KEYS) {
                Ok(number) => overrides.push((static_key(key), number)),
                Err(e) => problems.push(format!("{e}; override ignored")),
            }
        }
        overrides.sort();
        (RetentionOverrides(overrides), problems)
    }

    /// The stored JSON form; `None` when there is no override.
    pub fn to_json(&self) -> Option<Value> {
        if self.0.is_empty() {
            return None;
        }
        let map: Map<String, Value> = self.0.iter().map(|(k, v)| ((*k).to_owned(), Value::from(*v))).collect();
        Some(Value::Object(map))
    }

    /// `(key, value)` pairs.
    pub fn iter(&self) -> impl Iterator<Item = (&'static str, i64)> + '_ {
        self.0.iter().copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn defaults_are_the_seed_values() {
        let d = RetentionSettings::default();
        assert_eq!(
            d.to_json(),
            json!({
                "runs_max_per_pipeline": 100, "runs_max_age_days": 90, "logs_max_age_days": 30,
                "quality_results_max_per_test": 100, "soft_delete_purge_days": 30,
                "stuck_run_timeout_minutes": 120, "audit_log_max_age_days": 365,
                "nessie_orphan_branch_max_age_hours": 6, "reaper_interval_minutes": 60,
                "iceberg_snapshot_max_age_days": 7, "iceberg_orphan_file_max_age_days": 3
            })
        );
    }

    #[test]
    fn partial_update_keeps_missing_keys() {
        let current = RetentionSettings::default();
        let next = current.merged_with(&json!({"runs_max_age_days": 10})).unwrap();
        assert_eq!(next.runs_max_age_days, 10);
        assert_eq!(next.audit_log_max_age_days, 365);
    }

    #[test]
    fn a_value_that_would_delete_everything_is_refused() {
        let current = RetentionSettings::default();
        for patch in [
            json!({"audit_log_max_age_days": 0}),
            json!({"runs_max_per_pipeline": -1}),
            json!({"runs_max_age_days": "10"}),
            json!({"runs_max_age_days": 1.5}),
            json!({"no_such_key": 1}),
            json!([1]),
        ] {
            assert!(current.merged_with(&patch).is_err(), "{patch}");
        }
    }

    #[test]
    fn stored_zeros_are_read_as_defaults_and_reported() {
        let (settings, problems) = RetentionSettings::from_stored(&json!({"audit_log_max_age_days": 0}));
        assert_eq!(settings.audit_log_max_age_days, 365);
        assert!(problems.iter().any(|p| p.contains("audit_log_max_age_days")));
        let (settings, problems) = RetentionSettings::from_stored(&RetentionSettings::default().to_json());
        assert_eq!(settings, RetentionSettings::default());
        assert!(problems.is_empty());
    }

    #[test]
    fn overrides_lay_over_the_system_settings() {
        let overrides =
            RetentionOverrides::parse(&json!({"runs_max_per_pipeline": 5, "logs_max_age_days": null})).unwrap();
        let effective = RetentionSettings::default().with_overrides(&overrides);
        assert_eq!(effective.runs_max_per_pipeline, 5);
        assert_eq!(effective.logs_max_age_days, 30);
        assert_eq!(overrides.to_json(), Some(json!({"runs_max_per_pipeline": 5})));
        assert!(RetentionOverrides::parse(&json!({"audit_log_max_age_days": 5})).is_err());
        assert!(RetentionOverrides::parse(&json!({"runs_max_per_pipeline": 0})).is_err());
    }
}
