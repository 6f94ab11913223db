//! The benchmark's minimal NAT (`nat-ebpf/src/bench_baseline.rs`, object
//! `bench-baseline`) and the end-to-end benchmark's bare XDP redirect in
//! the same object: their program and map names. Only `cargo xtask bench`
//! loads it; `xnat` never does.

/// XDP, inbound: destination endpoint → inside endpoint.
pub const PROG_BASELINE_XDP: &str = "xnat_baseline_xdp";
/// TC, outbound: source endpoint → public endpoint.
pub const PROG_BASELINE_TC: &str = "xnat_baseline_tc";
/// TC, outbound, new bindings: the outbound miss, the inbound entry
/// reserved (BPF_NOEXIST), the outbound one inserted, the rewrite.
pub const PROG_BASELINE_NEW_TC: &str = "xnat_baseline_new_tc";
/// XDP, the end-to-end benchmark's bare XDP redirect: TTL, MACs, redirect
/// to a fixed next hop; no NAT, no FIB lookup.
pub const PROG_BASELINE_REDIRECT_XDP: &str = "xnat_baseline_redirect_xdp";
/// `EndpointKey` (public) → `InsideEndpoint`.
pub const MAP_BASELINE_IN: &str = "BASELINE_IN";
/// `EndpointKey` (inside) → `InsideEndpoint` holding the public endpoint.
pub const MAP_BASELINE_OUT: &str = "BASELINE_OUT";
/// Capacity of each (the benchmark resizes them to its table sizes).
pub const BASELINE_MAX_ENTRIES: u32 = 1024;
/// The bare XDP redirect's one next hop (`RedirectHop`, index 0).
pub const MAP_BASELINE_HOP: &str = "BASELINE_HOP";

/// Where the bare XDP redirect sends every frame it forwards: written by
/// its loader (`xnat-bench --attach-redirect`) before attaching.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RedirectHop {
    /// The egress device (`bpf_redirect`).
    pub ifindex: u32,
    /// The egress device's own MAC: the frames' new source.
    pub smac: [u8; 6],
    /// The next hop's MAC: the frames' new destination.
    pub dmac: [u8; 6],
}

#[cfg(feature = "user")]
// SAFETY: #[repr(C)], Copy, integers only, no padding (4 + 6 + 6 bytes).
unsafe impl aya::Pod for RedirectHop {}

#[cfg(test)]
mod tests {
    #[test]
    fn redirect_hop_has_no_padding() {
        assert_eq!(core::mem::size_of::<super::RedirectHop>(), 16);
    }
}
