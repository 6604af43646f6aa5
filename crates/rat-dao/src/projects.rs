//! `projects` and `project_members`.
