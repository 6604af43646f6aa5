//! Ownership and its transfer.
