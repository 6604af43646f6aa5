//! `platform_settings`: retention settings and feature flags.
