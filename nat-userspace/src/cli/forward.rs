//! `xnat forward add|del|list`: port forwards (DNAT of a public port).
use std::process::ExitCode;

use anyhow::bail;
use clap::{Subcommand, ValueEnum};
use nat_userspace::{
    settings::napt,
    tables::forward::{Forward, Forwards, Proto},
    tables::pins,
    tables::static_map::to_be,
};

use super::addr::parse_endpoint;

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum ProtoArg {
    Tcp,
    Udp,
}

impl From<ProtoArg> for Proto {
    fn from(p: ProtoArg) -> Self {
        match p {
            ProtoArg::Tcp => Proto::Tcp,
            ProtoArg::Udp => Proto::Udp,
        }
    }
}

#[derive(Subcommand, Debug)]
pub enum ForwardCommand {
    /// Forward PUBLIC (ADDR:PORT) to INSIDE (ADDR:PORT).
    Add {
        #[arg(value_enum)]
        proto: ProtoArg,
        #[arg(value_parser = parse_endpoint)]
        public: (std::net::Ipv4Addr, u16),
        #[arg(value_parser = parse_endpoint)]
        inside: (std::net::Ipv4Addr, u16),
    },
    /// Remove the forward on PUBLIC.
    Del {
        #[arg(value_enum)]
        proto: ProtoArg,
        #[arg(value_parser = parse_endpoint)]
        public: (std::net::Ipv4Addr, u16),
    },
    /// List forwards.
    List {
        #[arg(long)]
        json: bool,
    },
}

pub fn run(cmd: ForwardCommand, iface: Option<&str>) -> anyhow::Result<ExitCode> {
    let (ifname, dir) = pins::resolve_iface(iface)?;
    let cfg = napt::read_config(&dir)?;
    if cfg.pool_len == 0 {
        bail!("{ifname}: port forwards need NAPT (attach with --masquerade, --pool or --internal)");
    }
    let mut forwards = Forwards::open(&dir)?;
    match cmd {
        ForwardCommand::Add {
            proto,
            public,
            inside,
        } => {
            let pool = napt::read_pool(&dir, &cfg)?;
            if !pool.contains(&public.0) {
                bail!(
                    "{} is not a pool address of {ifname} (pool: {})",
                    public.0,
                    pool.iter()
                        .map(ToString::to_string)
                        .collect::<Vec<_>>()
                        .join(", ")
                );
            }
            if !internal_contains(&dir, inside.0)? {
                bail!(
                    "{} is not inside any --internal prefix of {ifname}",
                    inside.0
                );
            }
            let f = Forward {
                proto: proto.into(),
                public,
                inside,
            };
            forwards.add(f)?;
            println!(
                "xnat: {ifname}: forwarding {} {}:{} -> {}:{}",
                f.proto.name(),
                public.0,
                public.1,
                inside.0,
                inside.1
            );
        }
        ForwardCommand::Del { proto, public } => {
            let f = forwards.remove(proto.into(), public)?;
            println!(
                "xnat: {ifname}: removed forward {} {}:{} -> {}:{}",
                f.proto.name(),
                f.public.0,
                f.public.1,
                f.inside.0,
                f.inside.1
            );
        }
        ForwardCommand::List { json } => {
            let list = forwards.list()?;
            if json {
                let rows: Vec<_> = list
                    .iter()
                    .map(|f| {
                        serde_json::json!({
                            "proto": f.proto.name(),
                            "public": format!("{}:{}", f.public.0, f.public.1),
                            "inside": format!("{}:{}", f.inside.0, f.inside.1),
                        })
                    })
                    .collect();
                println!("{}", serde_json::to_string_pretty(&rows)?);
            } else {
                println!("{:<6} {:<22} {:<22}", "PROTO", "PUBLIC", "INSIDE");
                for f in list {
                    println!(
                        "{:<6} {:<22} {:<22}",
                        f.proto.name(),
                        format!("{}:{}", f.public.0, f.public.1),
                        format!("{}:{}", f.inside.0, f.inside.1)
                    );
                }
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn internal_contains(dir: &std::path::Path, addr: std::net::Ipv4Addr) -> anyhow::Result<bool> {
    use aya::maps::lpm_trie::Key;
    let trie = nat_userspace::tables::Tables::at(dir).internal()?;
    Ok(trie.get(&Key::new(32, to_be(addr)), 0).is_ok())
}
