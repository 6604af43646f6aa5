//! Pipeline triggers: typed configs, webhook tokens (hashed at rest).
