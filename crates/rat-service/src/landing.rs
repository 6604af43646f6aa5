//! Landing zones, their files (in the store), samples and lifecycle.
