//! xnat's data plane: XDP and TC programs sharing one translation core.
//! ARCHITECTURE.md at the repository root maps the modules and says
//! where a new setting, counter, map or stage goes.
//!
//! * `xnat_egress_tc`   — TC egress on the external interface: source NAT.
//! * `xnat_ingress_xdp` — XDP on the external interface: destination NAT.
//! * `xnat_ingress_tc`  — the same as a TC ingress program, for devices where
//!   XDP cannot see the skb's checksum state (veth; README, "Ingress
//!   modes and checksum offload").
//! * `xnat_inside_tc`   — TC ingress on inside interfaces: hairpinning and
//!   the outbound fast path; `xnat_inside_xdp` the fast path alone.
//! * `xnat_noop_xdp`    — passes everything (benchmark baseline, veth peers).
//! * `xnat_expire`      — never attached: the agent's expiry walk (expire.rs).
//!
//! The modules are stages, each importing only the ones listed before it:
//!
//! * `verdict`, `maps`, `counters`, `clock` — what every stage shares.
//! * `packet` — byte access, the same for XDP buffers and skbs.
//! * `parse/` — headers into offsets and fields; reads only.
//! * `events` — records for the agent (bindings, port exhaustion).
//! * `rewrite/` — an address or port with every checksum that covers it.
//! * `frag/` — later fragments translated as their first, or held.
//! * `napt/` — dynamic NAPT: ports, sessions, allocation, filtering,
//!   outbound, inbound, ICMP errors.
//! * `translate/` — the core: static 1:1 NAT, then NAPT, then the
//!   gateway's own ICMP errors (parse → look up → rewrite → verdict).
//! * `forward/` — FIB lookup and redirect, hairpinning, the fast path.
//! * `nat64/` — IPv6 <-> IPv4 around the NAT44 core (tail-called).
//! * `trace` — `xnat trace`: what a program did with a matching packet.
//! * `programs` — the entry points the loader attaches by name.
#![cfg_attr(target_arch = "bpf", no_std)]
#![cfg_attr(target_arch = "bpf", no_main)]

#[cfg(target_arch = "bpf")]
mod clock;
#[cfg(target_arch = "bpf")]
mod counters;
#[cfg(target_arch = "bpf")]
mod events;
#[cfg(target_arch = "bpf")]
mod expire;
#[cfg(target_arch = "bpf")]
mod forward;
#[cfg(target_arch = "bpf")]
mod frag;
#[cfg(target_arch = "bpf")]
mod maps;
#[cfg(target_arch = "bpf")]
mod napt;
#[cfg(target_arch = "bpf")]
mod nat64;
#[cfg(target_arch = "bpf")]
mod packet;
#[cfg(target_arch = "bpf")]
mod parse;
#[cfg(target_arch = "bpf")]
mod programs;
#[cfg(target_arch = "bpf")]
mod rewrite;
#[cfg(target_arch = "bpf")]
mod trace;
#[cfg(target_arch = "bpf")]
mod translate;
#[cfg(target_arch = "bpf")]
mod verdict;

#[cfg(target_arch = "bpf")]
mod object;

/// On the host this crate is only type-checked (`cargo clippy --workspace`);
/// the real build targets bpfel-unknown-none.
#[cfg(not(target_arch = "bpf"))]
fn main() {}
