//! Runs for users: create with the published snapshot, list, get, cancel, logs.
