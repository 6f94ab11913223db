//! xnat's data plane: three programs sharing one translation core.
//!
//! * `xnat_egress_tc`   — TC egress on the external interface: source NAT.
//! * `xnat_ingress_xdp` — XDP on the external interface: destination NAT.
//! * `xnat_ingress_tc`  — the same as a TC ingress program, for devices where
//!   XDP cannot see the skb's checksum state (veth; README, "Ingress
//!   modes and checksum offload").
//!
//! Each packet reads top to bottom as parse → look up → rewrite → verdict
//! (`nat.rs`); `packet.rs` hides whether bytes come from an XDP buffer or an
//! skb.
#![cfg_attr(target_arch = "bpf", no_std)]
#![cfg_attr(target_arch = "bpf", no_main)]

#[cfg(target_arch = "bpf")]
mod clock;
#[cfg(target_arch = "bpf")]
mod counters;
#[cfg(target_arch = "bpf")]
mod events;
#[cfg(target_arch = "bpf")]
mod forward;
#[cfg(target_arch = "bpf")]
mod frag;
#[cfg(target_arch = "bpf")]
mod maps;
#[cfg(target_arch = "bpf")]
mod napt;
#[cfg(target_arch = "bpf")]
mod packet;
#[cfg(target_arch = "bpf")]
mod parse;
#[cfg(target_arch = "bpf")]
mod programs;
#[cfg(target_arch = "bpf")]
mod translate;
#[cfg(target_arch = "bpf")]
mod verdict;

#[cfg(target_arch = "bpf")]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    // The verifier rejects any path that could reach a real panic; this only
    // satisfies the compiler.
    loop {}
}

#[cfg(target_arch = "bpf")]
#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 13] = *b"Dual MIT/GPL\0";

/// On the host this crate is only type-checked (`cargo clippy --workspace`);
/// the real build targets bpfel-unknown-none.
#[cfg(not(target_arch = "bpf"))]
fn main() {}
