//! `xnat map add|del|list`: the static 1:1 table of a live attachment.
//! Static NAT64 entries are in it too (their private address a NAT64
//! stand-in): listed by their IPv6 host, changed only by the settings
//! (`--nat64-map`, `[[nat64.map]]`) and a reload.
use std::{net::Ipv4Addr, process::ExitCode};

use clap::Subcommand;
use nat_common::nat64::is_stand_in;
use nat_userspace::{
    tables::nat64::Hosts,
    tables::pins,
    tables::static_map::{StaticTable, to_be},
};

use super::addr::parse_ipv4;

#[derive(Subcommand, Debug)]
pub enum MapCommand {
    /// Map PRIVATE to PUBLIC (takes effect on the next packet).
    Add {
        #[arg(value_parser = parse_ipv4)]
        private: Ipv4Addr,
        #[arg(value_parser = parse_ipv4)]
        public: Ipv4Addr,
    },
    /// Remove the mapping of PRIVATE.
    Del {
        #[arg(value_parser = parse_ipv4)]
        private: Ipv4Addr,
    },
    /// List mappings.
    List {
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
}

pub fn run(cmd: MapCommand, iface: Option<&str>) -> anyhow::Result<ExitCode> {
    let (ifname, dir) = pins::resolve_iface(iface)?;
    let mut table = StaticTable::open(&dir)?;
    match cmd {
        MapCommand::Add { private, public } => {
            let cfg = nat_userspace::settings::napt::read_config(&dir)?;
            if nat_userspace::settings::napt::read_pool(&dir, &cfg)?.contains(&public) {
                anyhow::bail!(
                    "{public} is a NAPT pool address of {ifname}; it cannot also be mapped 1:1"
                );
            }
            table.add(private, public)?;
            println!("xnat: {ifname}: mapped {private} <-> {public}");
        }
        MapCommand::Del { private } => {
            if is_stand_in(to_be(private)) {
                anyhow::bail!(
                    "{private} stands for an IPv6 host of a static NAT64 mapping: change those \
                     in the settings (--nat64-map, [[nat64.map]]) and reload"
                );
            }
            let public = table.remove(private)?;
            println!("xnat: {ifname}: unmapped {private} <-> {public}");
        }
        MapCommand::List { json } => {
            // A static NAT64 entry by its IPv6 host.
            let hosts = Hosts::read(&dir)?;
            let list: Vec<(String, std::net::Ipv4Addr)> = table
                .list()?
                .into_iter()
                .map(|(p, q)| (hosts.inside_addr(to_be(p)).to_string(), q))
                .collect();
            if json {
                let rows: Vec<_> = list
                    .iter()
                    .map(|(p, q)| serde_json::json!({"private": p.to_string(), "public": q.to_string()}))
                    .collect();
                println!("{}", serde_json::to_string_pretty(&rows)?);
            } else {
                println!("{:<16} {:<16}", "PRIVATE", "PUBLIC");
                for (p, q) in list {
                    println!("{p:<16} {:<16}", q.to_string());
                }
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
