//! Log volume per million new flows, by allocation mode. Dynamic
//! allocation logs every binding twice, created and deleted: as JSON lines
//! (`--log-bindings`) or as IPFIX records (`--ipfix`), written here by the
//! agent's own translation log and exporter (`nat_userspace::agent`), fed
//! the records the data plane and the sweep give it, and measured in
//! bytes written and sent. Block allocation logs each port block twice,
//! allocated and released: its volume per flow is the volume per block
//! over the flows a block serves (reported at one flow a block, the worst
//! case, and at [`FLOWS_PER_BLOCK`]). Deterministic allocation (RFC 7422)
//! needs no log: the layout names the holder of any public port.

use std::net::UdpSocket;

use anyhow::{Context as _, Result};
use nat_common::{
    BindingEvent, EVENT_BINDING_CREATED, EndpointKey, Mapping,
    blocks::{BlockKey, BlockOwner},
};
use nat_userspace::{
    agent::{
        blocks::{BlockEvent, Released},
        ipfix::Exporter,
        translog::TransLog,
    },
    settings::LogTarget,
};
use serde_json::{Value, json};

/// Bindings logged; the figures are scaled to a million.
const BINDINGS: u32 = 100_000;
/// Blocks logged (allocated and released).
const BLOCKS: u32 = 10_000;
/// Flows a 256-port block serves in the typical figure: its size, once.
pub const FLOWS_PER_BLOCK: u32 = 256;

/// Binding `k`: inside 10.x.y.z:port, public 198.18.0.(k % 64):port.
fn binding(k: u32, now: u64) -> (BindingEvent, EndpointKey, Mapping) {
    let inside_addr = u32::from(std::net::Ipv4Addr::new(10, 0, 0, 0)) + k / 16;
    let inside_port = 20000 + (k % 16) as u16;
    let public_addr = u32::from(std::net::Ipv4Addr::new(198, 18, 0, (k % 64) as u8));
    let public_port = 1024 + (k / 64) as u16;
    let ev = BindingEvent {
        kind: EVENT_BINDING_CREATED,
        proto: 17,
        inside_addr: inside_addr.to_be(),
        inside_port: inside_port.to_be(),
        public_addr: public_addr.to_be(),
        public_port: public_port.to_be(),
        time_ns: now,
        ..Default::default()
    };
    let key = EndpointKey {
        addr: ev.inside_addr,
        port: ev.inside_port,
        proto: 17,
        _pad: 0,
    };
    let m = Mapping {
        addr: ev.public_addr,
        port: ev.public_port,
        created: now,
        last_seen: now,
        ..Default::default()
    };
    (ev, key, m)
}

/// Feeds `log` BINDINGS creations, then one sweep that expires them all.
fn feed(log: &mut TransLog) {
    let now = nat_userspace::agent::clock::now_ns();
    let mut expired = Vec::with_capacity(BINDINGS as usize);
    for k in 0..BINDINGS {
        let (ev, key, m) = binding(k, now);
        log.created(&ev);
        expired.push((key, m));
        if k % 1000 == 999 {
            log.flush();
        }
    }
    log.flush();
    log.after_sweep(&expired, &[], u64::MAX);
}

/// Feeds `log` BLOCKS block allocations, then their releases.
fn feed_blocks(log: &mut TransLog) {
    let now = nat_userspace::agent::clock::now_ns();
    let events: Vec<BlockEvent> = (0..BLOCKS)
        .map(|k| {
            let lo = 1024 + (k / 64 % 252) as u16 * 256;
            BlockEvent {
                key: BlockKey {
                    addr: u32::from(std::net::Ipv4Addr::new(198, 18, 0, (k % 64) as u8)).to_be(),
                    index: k / 64 % 252,
                },
                owner: BlockOwner {
                    host: (u32::from(std::net::Ipv4Addr::new(10, 0, 0, 0)) + k).to_be(),
                    _pad: 0,
                    allocated: now,
                },
                ports: (lo, lo + 255),
                released: None,
            }
        })
        .collect();
    log.blocks(&events);
    let released: Vec<BlockEvent> = events
        .into_iter()
        .map(|e| BlockEvent {
            released: Some(Released::Unused),
            ..e
        })
        .collect();
    log.blocks(&released);
}

/// Bytes the agent's log writes as JSON lines and sends as IPFIX when
/// `feed` feeds it.
fn volume(dir: &std::path::Path, feed: impl Fn(&mut TransLog)) -> Result<(u64, u64)> {
    let path = dir.join("volume.jsonl");
    let _ = std::fs::remove_file(&path);
    let mut json_log = TransLog::open(LogTarget::File(path.clone())).context("opening the log")?;
    feed(&mut json_log);
    drop(json_log);
    let json_bytes = std::fs::metadata(&path)?.len();
    let _ = std::fs::remove_file(&path);

    // A collector that never reads: the kernel drops what overflows its
    // buffer, the exporter counts what it sent.
    let sink = UdpSocket::bind("127.0.0.1:0")?;
    let mut ipfix_log = TransLog::new();
    ipfix_log.set_ipfix(Some(Exporter::new(sink.local_addr()?, 1)?));
    feed(&mut ipfix_log);
    Ok((json_bytes, ipfix_log.ipfix_bytes()))
}

pub fn run(dir: &std::path::Path) -> Result<Value> {
    eprintln!("xnat-bench: log volume of {BINDINGS} bindings, created and deleted");
    let scale = 1_000_000.0 / f64::from(BINDINGS);
    let (json_bytes, ipfix_bytes) = volume(dir, feed)?;
    let (block_json, block_ipfix) = volume(dir, feed_blocks)?;
    let per_block = |b: u64| b as f64 / f64::from(BLOCKS);
    Ok(json!({
        "bindings": BINDINGS,
        "json_bytes_per_million": json_bytes as f64 * scale,
        "ipfix_bytes_per_million": ipfix_bytes as f64 * scale,
        "block_json_bytes_per_block": per_block(block_json),
        "block_ipfix_bytes_per_block": per_block(block_ipfix),
        "flows_per_block": FLOWS_PER_BLOCK,
        "deterministic_bytes_per_million": 0,
    }))
}
