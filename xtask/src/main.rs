//! `cargo xtask`: project automation.
//!
//! - `cargo xtask test` — formatting check, clippy with `-D warnings`, every test
//! - `cargo xtask dev` — the platform locally on embedded defaults
//! - `cargo xtask db seed` — fill a database with a realistic volume

fn main() {
    eprintln!("not yet");
}
