//! `ownership` and `shares`: who owns an object and who may use it.
