//! Diagnostics through `tracing`, to stderr, filtered by `RUST_LOG`
//! (default `info`; e.g. `RUST_LOG=debug`, `RUST_LOG=nat_userspace=debug`).
//! Under systemd (JOURNAL_STREAM set) timestamps are left to the journal.
//! Command output proper (listings, the ready line) stays on stdout.
use std::io::IsTerminal as _;

use tracing_subscriber::{EnvFilter, fmt};

pub fn init() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false);
    // Ignore a second init (tests); there is nothing better to do.
    let _ = if std::env::var_os("JOURNAL_STREAM").is_some() {
        builder.without_time().try_init()
    } else {
        builder.try_init()
    };
}
