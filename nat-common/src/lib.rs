//! Types shared by xnat's BPF programs (`nat-ebpf`) and its control plane
//! (`nat-userspace`): map keys and values, counter indices, and the Internet
//! checksum arithmetic both sides use.
//!
//! Everything here is `#![no_std]` so the BPF crate can use it; the `user`
//! feature adds `aya::Pod` impls for the map types.
#![no_std]

pub mod bench;
pub mod blocks;
pub mod csum;
pub mod deterministic;
pub mod maps;
pub mod napt;
pub mod nat64;
pub mod stats;
pub mod trace;

pub use maps::*;
pub use napt::*;
pub use stats::Counter;
