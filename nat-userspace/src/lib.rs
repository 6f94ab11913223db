//! xnat's control plane as a library: the `xnat` binary is a thin CLI on top
//! of it, and the tests crate uses it to load the very same BPF object.
//! ARCHITECTURE.md at the repository root maps the modules and says
//! where a new setting, counter, map or stage goes.

pub mod agent;
pub mod health;
pub mod loader;
pub mod lookup;
pub mod settings;
pub mod tables;

/// The compiled BPF object (all of xnat's programs and maps), embedded at
/// build time by `build.rs`.
pub fn ebpf_object() -> &'static [u8] {
    aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/nat-ebpf"))
}

/// The benchmark's minimal NAT (`nat-ebpf/src/bench_baseline.rs`), built
/// with the programs; `cargo xtask bench` measures xnat against it. The
/// `xnat` binary never refers to it, so the linker leaves it out.
#[doc(hidden)]
pub fn bench_baseline_object() -> &'static [u8] {
    aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/bench-baseline"))
}
