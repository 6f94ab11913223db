//! The benchmark's minimal NAT (`nat-ebpf/src/bench_baseline.rs`, object
//! `bench-baseline`) and the end-to-end benchmark's bare XDP redirect in
//! the same object: their program and map names. Only `cargo xtask bench`
//! loads it; `xnat` never does.

/// XDP, inbound: destination endpoint → inside endpoint.
pub const PROG_BASELINE_XDP: &str = "xnat_baseline_xdp";
/// TC, outbound: source endpoint → public endpoint.
pub const PROG_BASELINE_TC: &str = "xnat_baseline_tc";
/// XDP, the end-to-end benchmark's bare XDP redirect: FIB lookup, TTL,
/// MACs, redirect; no NAT.
pub const PROG_BASELINE_REDIRECT_XDP: &str = "xnat_baseline_redirect_xdp";
/// `EndpointKey` (public) → `InsideEndpoint`.
pub const MAP_BASELINE_IN: &str = "BASELINE_IN";
/// `EndpointKey` (inside) → `InsideEndpoint` holding the public endpoint.
pub const MAP_BASELINE_OUT: &str = "BASELINE_OUT";
/// Capacity of each (the benchmark resizes them to its table sizes).
pub const BASELINE_MAX_ENTRIES: u32 = 1024;
