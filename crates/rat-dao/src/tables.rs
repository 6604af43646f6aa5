//! `table_metadata`: user-authored table and column descriptions.
