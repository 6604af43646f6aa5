//! Pagination and sorting of list requests.

use crate::DomainError;

/// `limit`/`offset` of a list request, validated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageRequest {
    /// Rows per page, 1..=200.
    pub limit: i64,
    /// Rows skipped.
    pub offset: i64,
}

impl PageRequest {
    /// Default page size.
    pub const DEFAULT_LIMIT: i64 = 50;
    /// Largest page size; larger requests are clamped to it.
    pub const MAX_LIMIT: i64 = 200;

    /// Validates client values: `limit` defaults to 50, must be ≥ 1 and is
    /// clamped to 200; `offset` defaults to 0 and must be ≥ 0.
    pub fn new(limit: Option<i64>, offset: Option<i64>) -> Result<Self, DomainError> {
        let limit = limit.unwrap_or(Self::DEFAULT_LIMIT);
        if limit < 1 {
            return Err(DomainError::invalid("limit", "must be at least 1"));
        }
        let offset = offset.unwrap_or(0);
        if offset < 0 {
            return Err(DomainError::invalid("offset", "must not be negative"));
        }
        Ok(PageRequest {
            limit: limit.min(Self::MAX_LIMIT),
            offset,
        })
    }

    /// A page of `limit` rows from the start; for internal callers.
    pub fn first(limit: i64) -> Self {
        PageRequest {
            limit: limit.clamp(1, Self::MAX_LIMIT),
            offset: 0,
        }
    }
}

impl Default for PageRequest {
    fn default() -> Self {
        PageRequest {
            limit: Self::DEFAULT_LIMIT,
            offset: 0,
        }
    }
}

/// One page of a list and the size of the whole filtered set.
#[derive(Debug, Clone, PartialEq)]
pub struct Page<T> {
    /// The rows of this page.
    pub items: Vec<T>,
    /// Count of every row matching the filters.
    pub total: i64,
}

impl<T> Page<T> {
    /// Converts the rows, keeping the total.
    pub fn map<U>(self, f: impl FnMut(T) -> U) -> Page<U> {
        Page {
            items: self.items.into_iter().map(f).collect(),
            total: self.total,
        }
    }
}

/// A sort key and direction, parsed from `[-]field`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sort<F> {
    /// The field.
    pub field: F,
    /// True for `-field`.
    pub descending: bool,
}

impl<F: std::str::FromStr<Err = DomainError>> Sort<F> {
    /// Parses `name` (ascending) or `-name` (descending).
    pub fn parse(text: &str) -> Result<Self, DomainError> {
        match text.strip_prefix('-') {
            Some(field) => Ok(Sort {
                field: field.parse()?,
                descending: true,
            }),
            None => Ok(Sort {
                field: text.parse()?,
                descending: false,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::PipelineSortField;

    #[test]
    fn limits_default_clamp_and_refuse() {
        assert_eq!(
            PageRequest::new(None, None).unwrap(),
            PageRequest { limit: 50, offset: 0 }
        );
        assert_eq!(
            PageRequest::new(Some(500), Some(3)).unwrap(),
            PageRequest { limit: 200, offset: 3 }
        );
        assert!(PageRequest::new(Some(0), None).is_err());
        assert!(PageRequest::new(Some(-5), None).is_err());
        assert!(PageRequest::new(None, Some(-1)).is_err());
    }

    #[test]
    fn sort_parses_direction() {
        let s: Sort<PipelineSortField> = Sort::parse("-created_at").unwrap();
        assert_eq!(
            s,
            Sort {
                field: PipelineSortField::CreatedAt,
                descending: true
            }
        );
        assert!(Sort::<PipelineSortField>::parse("-owner").is_err());
        assert!(Sort::<PipelineSortField>::parse("--name").is_err());
    }
}
