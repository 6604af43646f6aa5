//! Names of namespaces, pipelines, landing zones, quality tests and tables.
//!
//! The rule (ratd contract §1): `^[a-z][a-z0-9_-]*$`, at most 63 characters for
//! a namespace and 128 for the others. Names become S3 key segments and URL
//! path segments, so nothing outside that alphabet is ever accepted.

use crate::DomainError;

/// Checks the name rule; shared by every name type.
pub(crate) fn check_name(field: &'static str, value: &str, max_len: usize) -> Result<(), DomainError> {
    let mut chars = value.chars();
    match chars.next() {
        None => return Err(DomainError::invalid(field, "must not be empty")),
        Some(first) if !first.is_ascii_lowercase() => {
            return Err(DomainError::invalid(field, "must start with a lowercase letter"));
        }
        Some(_) => {}
    }
    if value.len() > max_len {
        return Err(DomainError::invalid(
            field,
            format!("must be at most {max_len} characters"),
        ));
    }
    if let Some(bad) = chars.find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_' || *c == '-')) {
        return Err(DomainError::invalid(
            field,
            format!("character {bad:?} is not allowed (use a-z, 0-9, '_' and '-')"),
        ));
    }
    Ok(())
}

name_type!(
    /// A namespace name, at most 63 characters.
    NamespaceName, "namespace", 63
);
name_type!(
    /// A pipeline name, unique within its namespace and layer among live pipelines.
    PipelineName, "pipeline", 128
);
name_type!(
    /// A landing zone name, unique within its namespace.
    ZoneName, "zone", 128
);
name_type!(
    /// A quality test name, unique within its pipeline.
    TestName, "test", 128
);
name_type!(
    /// The name of a (Iceberg) table that metadata describes.
    TableName, "table", 128
);
name_type!(
    /// A registered plugin's name.
    PluginName, "plugin", 63
);

impl NamespaceName {
    /// The namespace every installation has, which cannot be deleted.
    pub fn default_namespace() -> Self {
        NamespaceName("default".to_owned())
    }

    /// True for the `default` namespace.
    pub fn is_default(&self) -> bool {
        self.0 == "default"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_names_that_follow_the_rule() {
        for ok in ["a", "orders", "clean_orders-v2", "x9"] {
            assert!(PipelineName::parse(ok).is_ok(), "{ok}");
        }
    }

    #[test]
    fn refuses_names_that_break_the_rule() {
        for bad in ["", "Orders", "9lives", "_x", "-x", "a b", "a.b", "a/b", "é", "a\0"] {
            assert!(PipelineName::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn enforces_the_column_lengths() {
        assert!(NamespaceName::parse(&"a".repeat(63)).is_ok());
        assert!(NamespaceName::parse(&"a".repeat(64)).is_err());
        assert!(ZoneName::parse(&"a".repeat(128)).is_ok());
        assert!(ZoneName::parse(&"a".repeat(129)).is_err());
    }

    #[test]
    fn error_names_the_field() {
        let err = NamespaceName::parse("Bad").unwrap_err();
        assert_eq!(err.to_string(), "invalid namespace: must start with a lowercase letter");
    }
}
