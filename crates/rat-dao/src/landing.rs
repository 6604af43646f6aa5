//! `landing_zones` and `landing_files`.
