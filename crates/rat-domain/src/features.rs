//! Feature flags (`platform_settings.feature_flags`).

use serde_json::Value;

/// Which optional features are on. A missing flag reads as on (the seed's value).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct FeatureFlags {
    /// Quality test routes.
    pub quality_tests: bool,
    /// Landing zone routes.
    pub landing_zones: bool,
    /// Audit log.
    pub audit_log: bool,
    /// Trigger routes and firing.
    pub pipeline_triggers: bool,
    /// Publish, versions and rollback.
    pub pipeline_versions: bool,
}

impl Default for FeatureFlags {
    fn default() -> Self {
        FeatureFlags {
            quality_tests: true,
            landing_zones: true,
            audit_log: true,
            pipeline_triggers: true,
            pipeline_versions: true,
        }
    }
}

impl FeatureFlags {
    /// Reads the stored JSON; a missing or non-boolean flag keeps its default.
    pub fn from_stored(value: &Value) -> FeatureFlags {
        let flag = |name: &str, default: bool| value.get(name).and_then(Value::as_bool).unwrap_or(default);
        let d = FeatureFlags::default();
        FeatureFlags {
            quality_tests: flag("quality_tests", d.quality_tests),
            landing_zones: flag("landing_zones", d.landing_zones),
            audit_log: flag("audit_log", d.audit_log),
            pipeline_triggers: flag("pipeline_triggers", d.pipeline_triggers),
            pipeline_versions: flag("pipeline_versions", d.pipeline_versions),
        }
    }

    /// The stored JSON form.
    pub fn to_json(&self) -> Value {
        serde_json::to_value(self).expect("plain struct serializes")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn missing_flags_default_to_on() {
        let flags = FeatureFlags::from_stored(&json!({"audit_log": false}));
        assert!(!flags.audit_log);
        assert!(flags.quality_tests && flags.landing_zones && flags.pipeline_triggers && flags.pipeline_versions);
        assert_eq!(
            FeatureFlags::from_stored(&FeatureFlags::default().to_json()),
            FeatureFlags::default()
        );
    }
}
