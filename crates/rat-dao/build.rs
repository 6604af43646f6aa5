//! Rebuilds the crate when a migration is added, changed or removed:
//! `refinery::embed_migrations!` reads `migrations/` at compile time, but
//! cargo does not know it depends on that directory.

fn main() {
    println!("cargo:rerun-if-changed=../../migrations");
}
