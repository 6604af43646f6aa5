//! The routes, one module per resource. Each handler parses and validates
//! the request into domain types, calls one service function, and maps the
//! result to the wire shape of the ratd contract.

pub mod admin;
pub mod audit;
pub mod files;
pub mod health;
pub mod landing;
pub mod me;
pub mod meta;
pub mod namespaces;
pub mod pipelines;
pub mod projects;
pub mod quality;
pub mod runs;
pub mod schedules;
pub mod sharing;
pub mod tables;
pub mod triggers;
pub mod versions;
pub mod webhooks;
