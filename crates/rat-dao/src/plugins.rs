//! `plugins`: registered plugins and their health.
