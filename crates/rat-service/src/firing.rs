//! The one fire path of triggers, shared by every process that fires them.
