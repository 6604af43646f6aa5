//! Limits of free-text fields. Without them a description, message or
//! schema note would be limited only by the request body size (1 MiB), and
//! every list answer carrying it would grow with it.

use crate::DomainError;

/// Longest description (namespaces, pipelines, zones, tables, columns,
/// quality tests), in characters (ratd's limit for quality tests).
pub const MAX_DESCRIPTION_CHARS: usize = 5_000;

/// Longest publish or rollback message, in characters.
pub const MAX_MESSAGE_CHARS: usize = 1_000;

/// Longest `expected_schema` note of a landing zone, in characters.
pub const MAX_SCHEMA_NOTE_CHARS: usize = 20_000;

/// Most column descriptions one table may have.
pub const MAX_COLUMN_DESCRIPTIONS: usize = 2_000;

/// Longest error a runner may record for a run, in characters.
pub const MAX_RUN_ERROR_CHARS: usize = 65_536;

/// `Invalid { field }` when `value` is longer than `max_chars` characters.
pub fn check_text_len(field: &'static str, value: &str, max_chars: usize) -> Result<(), DomainError> {
    // Bytes bound characters from above: most values need no count.
    if value.len() > max_chars && value.chars().nth(max_chars).is_some() {
        return Err(DomainError::invalid(
            field,
            format!("must be at most {max_chars} characters"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_count_characters_not_bytes() {
        assert!(check_text_len("description", &"é".repeat(10), 10).is_ok());
        assert!(check_text_len("description", &"é".repeat(11), 10).is_err());
        assert!(check_text_len("description", "", 0).is_ok());
        let err = check_text_len("message", &"x".repeat(1001), MAX_MESSAGE_CHARS).unwrap_err();
        assert_eq!(err.to_string(), "invalid message: must be at most 1000 characters");
    }
}
