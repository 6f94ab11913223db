//! `xnat stats`: counters summed over CPUs, drops by reason, table use.
use std::{collections::BTreeMap, process::ExitCode};

use nat_userspace::{
    settings::napt, tables::Tables, tables::pins, tables::sessions, tables::static_map::from_be,
    tables::stats,
};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Machine-readable output.
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: Args, iface: Option<&str>) -> anyhow::Result<ExitCode> {
    let (ifname, dir) = pins::resolve_iface(iface)?;
    let counters = stats::read(&dir)?;
    let cfg = napt::read_config(&dir)?;
    let pool = napt::read_pool(&dir, &cfg)?;
    let ports = napt::PortRange::of(&cfg);
    let snapshot = sessions::read(&dir)?;
    let (mappings, sessions) = (snapshot.mappings.len(), snapshot.sessions);
    let public = Tables::at(&dir).napt_in()?.lookup_all()?;
    let ports_in_use = per_pool_address(&pool, public.iter().map(|(k, _)| k.addr));
    let blocks = (cfg.allocation == nat_common::blocks::ALLOCATION_BLOCK)
        .then(|| blocks_in_use(&dir, &cfg, &pool))
        .transpose()?;
    let mut by_proto: BTreeMap<String, u64> = BTreeMap::new();
    // Sessions opened from outside, against --max-inbound-sessions.
    let inbound = sessions
        .iter()
        .filter(|(_, s)| s.flags & nat_common::SESSION_INBOUND != 0)
        .count();
    for (k, s) in &sessions {
        let name = match k.proto {
            6 => format!(
                "tcp_{}",
                nat_userspace::tables::flows::state_name(k.proto, s.tcp).to_ascii_lowercase()
            ),
            17 => "udp".into(),
            1 => "icmp".into(),
            _ => "other".into(),
        };
        *by_proto.entry(name).or_default() += 1;
    }
    if args.json {
        let map: serde_json::Map<String, serde_json::Value> = counters
            .iter()
            .map(|(c, v)| (c.name().to_string(), (*v).into()))
            .collect();
        let out = serde_json::json!({
            "interface": ifname,
            "ingress": pins::ingress_mode(&dir),
            "counters": map,
            "napt": {
                "enabled": cfg.pool_len != 0,
                "filtering": napt::Filtering::name_of(cfg.filtering),
                "tcp_pickup": napt::TcpPickup::from_code(cfg.tcp_pickup).name(),
                "ports": [ports.min(), ports.max()],
                "mappings": mappings,
                "sessions": sessions.len(),
                "sessions_by_state": by_proto,
                "inbound_sessions": inbound,
                "max_inbound_sessions": cfg.max_inbound_sessions,
                "pool_ports_in_use": ports_in_use,
                "blocks": blocks,
            },
        });
        println!("{}", serde_json::to_string_pretty(&out)?);
    } else {
        println!(
            "interface {ifname} (ingress: {})",
            pins::ingress_mode(&dir).unwrap_or("?")
        );
        for (c, v) in counters {
            println!("  {:<34} {v}", c.name());
        }
        if cfg.pool_len != 0 {
            println!(
                "napt: filtering {}, tcp pickup {}, ports {ports}, {mappings} mapping(s), {} session(s), {inbound} opened from outside (cap {})",
                napt::Filtering::name_of(cfg.filtering),
                napt::TcpPickup::from_code(cfg.tcp_pickup).name(),
                sessions.len(),
                match cfg.max_inbound_sessions {
                    0 => "none".to_string(),
                    n => n.to_string(),
                }
            );
            for (state, n) in by_proto {
                println!("  sessions {state:<18} {n}");
            }
            for (addr, n) in ports_in_use {
                println!("  pool {addr:<16} {n} port(s) in use");
            }
            if let Some(b) = &blocks {
                println!(
                    "blocks: {} ports each, {} per pool address, up to {} per inside address, \
                     released {} s after their last use; {} held",
                    b.size, b.per_address, b.max_per_host, b.hold_down_s, b.held
                );
                for (addr, n) in &b.held_per_address {
                    println!("  pool {addr:<16} {n} of {} block(s) held", b.per_address);
                }
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The port blocks (block allocation): the layout and what is held.
#[derive(serde::Serialize)]
struct BlockUse {
    size: u32,
    per_address: u32,
    max_per_host: u32,
    hold_down_s: u32,
    held: usize,
    held_per_address: BTreeMap<String, u64>,
}

fn blocks_in_use(
    dir: &std::path::Path,
    cfg: &nat_common::NatConfig,
    pool: &[std::net::Ipv4Addr],
) -> anyhow::Result<BlockUse> {
    let held = Tables::at(dir).blocks()?.lookup_all()?;
    let per = per_pool_address(pool, held.iter().map(|(k, _)| k.addr));
    Ok(BlockUse {
        size: cfg.block_size,
        per_address: nat_common::blocks::Blocks::of(cfg).count(),
        max_per_host: cfg.max_blocks_per_host,
        hold_down_s: cfg.block_hold_down,
        held: held.len(),
        held_per_address: per,
    })
}

/// How often each address (network order) of `addrs` occurs, by address,
/// every pool address listed (0 unless counted).
fn per_pool_address(
    pool: &[std::net::Ipv4Addr],
    addrs: impl Iterator<Item = u32>,
) -> BTreeMap<String, u64> {
    let mut per: BTreeMap<String, u64> = pool.iter().map(|a| (a.to_string(), 0)).collect();
    for addr in addrs {
        *per.entry(from_be(addr).to_string()).or_default() += 1;
    }
    per
}
