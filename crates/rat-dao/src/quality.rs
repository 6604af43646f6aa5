//! `quality_tests` and `quality_results`.
