//! Managers: the business rules and transaction boundaries above the DAO.
//!
//! Filled by the issues that follow the foundation.
