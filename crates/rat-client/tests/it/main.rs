//! `rat-client`'s own behaviour against a stand-in HTTP server (the real api
//! is exercised in `bins/rat-api/tests/it/client.rs`): which requests are
//! retried, how often, and how answers become errors.

mod retries;
