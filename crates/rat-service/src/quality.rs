//! Quality tests: definitions (rows + SQL in the store) and results.
