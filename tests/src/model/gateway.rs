//! What the inside programs read beyond the NAT tables: the `FAST_PATH`
//! map (the switch and the external interface), `XDP_TARGETS` (the devices
//! that take XDP redirects), and the gateway's forwarding tables, which
//! `bpf_fib_lookup` consults for the interface a packet arrived on.

use std::sync::Arc;

use super::fib::Fib;

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Gateway {
    /// `FAST_PATH[FAST_PATH_ON]` (`--fast-path`).
    pub fast_path: bool,
    /// `FAST_PATH[FAST_PATH_EXT_IFINDEX]`: the external interface; 0 when
    /// unknown (the outbound fast path then sends nothing).
    pub ext_ifindex: u32,
    /// `XDP_TARGETS`: ifindexes an XDP program may redirect to.
    pub xdp_targets: Vec<u32>,
    /// The inside interface the inside programs' frames arrive on.
    pub inside_ifindex: u32,
    /// The external interface the XDP ingress program's frames arrive on
    /// (`XDP_TX` sends back out of it where it takes XDP frames).
    pub ingress_ifindex: u32,
    /// The namespace's devices, routes and neighbours (shared: it never
    /// changes during a run, and states are cloned for every frame).
    pub fib: Arc<Fib>,
}
