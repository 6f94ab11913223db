//! The gateway of each mode, started in its topology's gateway namespace:
//! xnat's NAT64, TAYGA with nftables masquerade, or nothing beyond the
//! forwarding the topology turned on.

use std::path::Path;

use anyhow::Result;

use super::{
    tayga::{self, Tayga},
    topo::{Mode, PREFIX, Topo},
};
use crate::{bench::agent::Agent, netns};

/// What runs on a gateway until dropped.
pub enum Gateway {
    /// Held to keep the agent running.
    Xnat {
        _agent: Agent,
    },
    Tayga(Tayga),
    Plain,
}

impl Gateway {
    /// The user-space process that translates, if one does (TAYGA): the
    /// UDP runs pin it to the gateway's CPU.
    pub fn translator_pid(&self) -> Option<i32> {
        match self {
            Gateway::Tayga(t) => Some(t.pid()),
            _ => None,
        }
    }
}

/// The xnat command: NAPT with the external address as the pool
/// (`--masquerade`), NAT64 for the IPv6 hosts behind int0. TC on the
/// external interface as in the end-to-end benchmark (XDP there needs
/// checksum offload off on the server's veth, which would change TCP).
pub fn xnat_args() -> Vec<String> {
    [
        "attach",
        "ext0",
        "--ingress",
        "tc",
        "--masquerade",
        "--inside",
        "int0",
        "--nat64",
        PREFIX,
    ]
    .map(String::from)
    .to_vec()
}

pub fn start(t: &Topo, xnat: &Path, tmp: &Path) -> Result<Gateway> {
    Ok(match t.mode {
        Mode::Xnat | Mode::XnatFastTc | Mode::XnatFastXdp => {
            let mut cmd = netns::exec(&t.gw, xnat);
            cmd.args(xnat_args());
            // ext0 takes XDP redirects: its peer, the server's eth0, has
            // NAPI all along (GRO on, see `topo::build`).
            match t.mode {
                Mode::XnatFastTc => cmd.args(["--fast-path", "--inside-hook", "tc"]),
                Mode::XnatFastXdp => cmd.args([
                    "--fast-path",
                    "--inside-hook",
                    "xdp",
                    "--xdp-redirect",
                    "ext0",
                ]),
                _ => &mut cmd,
            };
            Gateway::Xnat {
                _agent: Agent::start(&t.gw, xnat, "ext0", cmd)?,
            }
        }
        Mode::Tayga => Gateway::Tayga(tayga::start(&t.gw, tmp)?),
        Mode::Plain6 => Gateway::Plain,
    })
}
