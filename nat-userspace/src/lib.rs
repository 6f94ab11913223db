//! xnat's control plane as a library: the `xnat` binary is a thin CLI on top
//! of it, and the tests crate uses it to load the very same BPF object.

pub mod batch;
pub mod bpffs;
pub mod clock;
pub mod config;
pub mod ephemeral;
pub mod events;
pub mod expiry;
mod fasthash;
pub mod flows;
pub mod flush;
pub mod forward;
pub mod http;
pub mod icmp_reply;
pub mod layout;
pub mod lifecycle;
pub mod link;
pub mod loader;
pub mod metrics;
pub mod napt;
pub mod netdev;
pub mod parse;
pub mod pins;
pub mod reconcile;
pub mod runtime;
pub mod sessions;
pub mod settings;
pub mod static_map;
pub mod stats;
pub mod tables;
pub mod translog;

/// The compiled BPF object (all of xnat's programs and maps), embedded at
/// build time by `build.rs`.
pub fn ebpf_object() -> &'static [u8] {
    aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/nat-ebpf"))
}
