//! `xnat check --config FILE`: everything `attach` would check about the
//! file and the flags (syntax, keys, values, how they fit together, the
//! interfaces), without attaching. Exit 0 if it would be accepted, 1 if
//! not (with the first problem, naming file, line and key).
use std::process::ExitCode;

use nat_common::blocks::Blocks;
use nat_userspace::settings::{
    deterministic::Deterministic,
    napt::{Allocation, NaptSettings},
};

use super::attach;

pub fn run(a: attach::Args) -> anyhow::Result<ExitCode> {
    let settings = attach::settings_from(a.config.as_deref(), a.layer())?;
    attach::warn_about(&settings);
    let what = a
        .config
        .as_ref()
        .map_or("the command line".to_string(), |p| p.display().to_string());
    println!(
        "xnat: {what} is valid: interface {}, {}",
        settings.ifname,
        attach::describe(&settings)
    );
    if let Some(d) = settings.napt.as_ref().and_then(Deterministic::of) {
        print_layout(&d);
    }
    if let Some(n) = &settings.napt
        && let Allocation::Block {
            size, max_per_host, ..
        } = n.allocation
    {
        print_blocks(n, size, max_per_host);
    }
    Ok(ExitCode::SUCCESS)
}

/// Block allocation's sizing: blocks per pool address, how many hosts get
/// one, what one host may hold.
fn print_blocks(n: &NaptSettings, size: u32, max_per_host: u32) {
    let per_addr = Blocks::of(&n.config()).count();
    let total = u64::from(per_addr) * n.pool.len() as u64;
    let hosts: u64 = n.internal.iter().map(|p| p.size()).sum();
    println!(
        "block allocation: {per_addr} blocks of {size} ports per pool address, {total} in all; \
         an inside address holds 1 to {max_per_host} ({size} to {} ports)",
        max_per_host * size
    );
    if hosts > total {
        println!(
            "note: {hosts} inside addresses and {total} blocks: once every block is held, a host \
             without one gets no port (ports exhausted) until one is released"
        );
    }
}

/// Hosts listed one by one up to this many; beyond, the first and last.
const LIST_ALL_UP_TO: u64 = 1024;
const LIST_ENDS: u64 = 8;

/// The deterministic layout: each inside address's pool address and ports.
fn print_layout(d: &Deterministic) {
    let l = d.layout();
    let hosts = d.hosts();
    println!(
        "deterministic allocation: {hosts} inside address(es), {} per pool address, {} ports each",
        l.hosts_per_addr, l.ports_per_host
    );
    println!("{:<16} {:<16} ports", "inside", "public");
    let line = |i: u64| {
        if let Some(s) = d.host_share(i) {
            println!("{:<16} {:<16} {}-{}", s.inside, s.public, s.lo, s.hi);
        }
    };
    if hosts <= LIST_ALL_UP_TO {
        (0..hosts).for_each(line);
    } else {
        (0..LIST_ENDS).for_each(line);
        println!(
            "... {} more (`xnat lookup --config FILE PUBLIC:PORT` names the holder of one port)",
            hosts - 2 * LIST_ENDS
        );
        (hosts - LIST_ENDS..hosts).for_each(line);
    }
}
