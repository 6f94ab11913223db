//! The NAT64 benchmark's topology, one copy per gateway mode: an IPv6-only
//! client, the gateway (IPv6 inside, IPv4 outside), an IPv4-only server.
//!
//! ```text
//!  x64-<m>-c                       x64-<m>-g                                  x64-<m>-s
//!  eth0 2001:db8:64::2/64 --- int0 2001:db8:64::1/64   ext0 198.51.100.1/24 --- eth0 198.51.100.2/24
//!  default via 2001:db8:64::1      default via 198.51.100.2                      + 93.184.216.34/32
//! ```
//!
//! The client reaches the server at 64:ff9b::93.184.216.34, the server sees
//! the gateway's 198.51.100.1. The server's address is a global one, as
//! the well-known prefix requires (RFC 6052 section 3.1): TAYGA takes the
//! documentation ranges (192.0.2.0/24, 198.51.100.0/24, 203.0.113.0/24)
//! and 198.18.0.0/15 for non-global too (RFC 6890) and refuses them under
//! 64:ff9b::/96. 93.184.216.34 was example.com's address for years; the
//! namespaces are closed, nothing leaves the machine. For the plain IPv6
//! forwarding mode the external link gets IPv6 as well (2001:db8:65::/64)
//! and the client sends to the server's 2001:db8:65::2.

use std::{
    fs,
    net::{Ipv4Addr, Ipv6Addr},
    path::Path,
    process::Command,
};

use anyhow::{Context as _, Result};

use super::super::{
    cpu::gw_cpu,
    netdev::{set_gro, set_rps},
};
use crate::{netns, util};

pub const CLIENT_MAC: [u8; 6] = [0x02, 0x00, 0x00, 0x00, 0x64, 0x02];
pub const GW_INT_MAC: [u8; 6] = [0x02, 0x00, 0x00, 0x00, 0x64, 0x01];
pub const CLIENT: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0x64, 0, 0, 0, 0, 2);
const GW_INT: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0x64, 0, 0, 0, 0, 1);
/// The gateway's external address: the NAPT pool of xnat's `--masquerade`
/// and of TAYGA's nftables masquerade.
pub const GW_EXT: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 1);
const SERVER_LINK: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 2);
/// The server as the IPv4 internet knows it (see the module's comment).
pub const SERVER: Ipv4Addr = Ipv4Addr::new(93, 184, 216, 34);
/// The NAT64 prefix: the well-known one, xnat's default.
pub const PREFIX: &str = "64:ff9b::/96";
/// Plain IPv6 forwarding only: the external link's IPv6 addresses.
const GW_EXT6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0x65, 0, 0, 0, 0, 1);
const SERVER6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0x65, 0, 0, 0, 0, 2);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Xnat,
    /// xnat with `--fast-path`, the inside interface's outbound path in TC
    /// (what `--inside-hook auto` picks on a veth).
    XnatFastTc,
    /// xnat with `--fast-path --inside-hook xdp`: established flows'
    /// IPv6 packets translated in XDP on int0 (`xnat_nat64_out_xdp`).
    XnatFastXdp,
    Tayga,
    /// No translation: the server has IPv6 too and the gateway forwards,
    /// the ceiling of the path.
    Plain6,
}

impl Mode {
    /// Every mode, in the report's column order.
    pub const ALL: [Mode; 5] = [
        Mode::Xnat,
        Mode::XnatFastTc,
        Mode::XnatFastXdp,
        Mode::Tayga,
        Mode::Plain6,
    ];

    pub fn key(self) -> &'static str {
        match self {
            Mode::Xnat => "xnat",
            Mode::XnatFastTc => "xnat_fast_tc",
            Mode::XnatFastXdp => "xnat_fast_xdp",
            Mode::Tayga => "tayga",
            Mode::Plain6 => "plain6",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Mode::Xnat => "xnat NAT64",
            Mode::XnatFastTc => "xnat NAT64 --fast-path, TC inside",
            Mode::XnatFastXdp => "xnat NAT64 --fast-path, XDP inside",
            Mode::Tayga => "TAYGA + nftables masquerade",
            Mode::Plain6 => "plain IPv6 forwarding (no translation)",
        }
    }

    fn short(self) -> &'static str {
        match self {
            Mode::Xnat => "xn",
            Mode::XnatFastTc => "ft",
            Mode::XnatFastXdp => "fx",
            Mode::Tayga => "ty",
            Mode::Plain6 => "p6",
        }
    }

    /// Whether the gateway translates to IPv4 (else the server has IPv6).
    pub fn translates(self) -> bool {
        self != Mode::Plain6
    }

    /// Where the client sends to.
    pub fn target(self) -> Ipv6Addr {
        if self.translates() {
            let [a, b, c, d] = SERVER.octets();
            Ipv6Addr::new(
                0x64,
                0xff9b,
                0,
                0,
                0,
                0,
                u16::from_be_bytes([a, b]),
                u16::from_be_bytes([c, d]),
            )
        } else {
            SERVER6
        }
    }
}

/// One copy of the topology: its namespaces.
pub struct Topo {
    pub mode: Mode,
    pub client: String,
    pub gw: String,
    pub server: String,
}

impl Topo {
    pub fn new(mode: Mode) -> Self {
        let p = format!("x64-{}", mode.short());
        Topo {
            mode,
            client: format!("{p}-c"),
            gw: format!("{p}-g"),
            server: format!("{p}-s"),
        }
    }

    pub fn namespaces(&self) -> [&str; 3] {
        [&self.client, &self.gw, &self.server]
    }
}

fn mac(m: [u8; 6]) -> String {
    m.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// Builds `t` in its (existing, empty) namespaces, without a gateway
/// (`super::gateway` starts it). `tmp` takes the server's nftables file.
pub fn build(t: &Topo, tmp: &Path) -> Result<()> {
    let (c, g, s) = (t.client.as_str(), t.gw.as_str(), t.server.as_str());
    for ns in [c, g, s] {
        // No duplicate address detection: an address is usable at once,
        // and the links come up without a wait. Set before the links
        // exist: a new interface takes the namespace's defaults.
        netns::sh(
            ns,
            "echo 0 > /proc/sys/net/ipv6/conf/default/accept_dad; \
             echo 0 > /proc/sys/net/ipv6/conf/all/accept_dad",
        )?;
    }
    util::output(Command::new("ip").args([
        "link",
        "add",
        "eth0",
        "netns",
        c,
        "address",
        &mac(CLIENT_MAC),
        "type",
        "veth",
        "peer",
        "name",
        "int0",
        "netns",
        g,
        "address",
        &mac(GW_INT_MAC),
    ]))?;
    util::output(Command::new("ip").args([
        "link", "add", "ext0", "netns", g, "type", "veth", "peer", "name", "eth0", "netns", s,
    ]))?;

    // The client: IPv6 only.
    netns::ip(
        c,
        &["-6", "addr", "add", &format!("{CLIENT}/64"), "dev", "eth0"],
    )?;
    netns::ip(c, &["link", "set", "eth0", "up"])?;
    if t.mode == Mode::XnatFastXdp {
        // XDP on int0 sees frames, not skbs: the client's packets must
        // carry complete checksums, as off a wire (README "Fast path"; as
        // the end-to-end benchmark's XDP fast path). So its TCP moves
        // MSS-sized packets: Mode::XnatFastTc is the comparison for UDP.
        util::output(netns::exec(c, "ethtool").args(["-K", "eth0", "tx", "off"]))?;
    }
    netns::ip(
        c,
        &["-6", "route", "add", "default", "via", &GW_INT.to_string()],
    )?;

    // The gateway: IPv6 inside, IPv4 outside (and IPv6 there too without
    // translation), forwarding both.
    netns::ip(
        g,
        &["-6", "addr", "add", &format!("{GW_INT}/64"), "dev", "int0"],
    )?;
    netns::ip(g, &["addr", "add", &format!("{GW_EXT}/24"), "dev", "ext0"])?;
    netns::ip(g, &["link", "set", "int0", "up"])?;
    netns::ip(g, &["link", "set", "ext0", "up"])?;
    netns::ip(
        g,
        &["route", "add", "default", "via", &SERVER_LINK.to_string()],
    )?;
    netns::sh(
        g,
        "echo 1 > /proc/sys/net/ipv4/ip_forward; \
         echo 1 > /proc/sys/net/ipv6/conf/all/forwarding",
    )?;

    // The server: IPv4 only, unless the gateway does not translate.
    netns::ip(
        s,
        &["addr", "add", &format!("{SERVER_LINK}/24"), "dev", "eth0"],
    )?;
    netns::ip(s, &["addr", "add", &format!("{SERVER}/32"), "dev", "eth0"])?;
    netns::ip(s, &["link", "set", "eth0", "up"])?;
    if t.mode.translates() {
        netns::sh(s, "echo 1 > /proc/sys/net/ipv6/conf/all/disable_ipv6")?;
    } else {
        netns::ip(
            g,
            &["-6", "addr", "add", &format!("{GW_EXT6}/64"), "dev", "ext0"],
        )?;
        netns::ip(
            s,
            &["-6", "addr", "add", &format!("{SERVER6}/64"), "dev", "eth0"],
        )?;
        netns::ip(
            s,
            &["-6", "route", "add", "default", "via", &GW_EXT6.to_string()],
        )?;
    }
    // As in the end-to-end topologies: NAPI on the server's veth (GRO on),
    // as a NIC has; RPS steering the gateway's receive processing to its
    // CPU and the server's to the other (the UDP runs turn int0's off).
    set_gro(s, "eth0", true)?;
    if let Some(cpu) = gw_cpu() {
        set_rps(g, "int0", Some(cpu))?;
        set_rps(s, "eth0", Some(0))?;
    }

    // Counters for the check before the runs (`super::check`): the test
    // traffic arrives, from the gateway's address where it translates.
    let server_nft = tmp.join(format!("{s}.nft"));
    fs::write(&server_nft, server_counters())?;
    util::output(netns::exec(s, "nft").arg("-f").arg(&server_nft))
        .context("loading the server's nftables counters")?;
    Ok(())
}

/// The server's nftables counters: `rx` counts the test's UDP packets
/// (IPv4 or IPv6), `foreign` those of them from another source than the
/// gateway's address (a NAT64 that did not masquerade). Counted only: the
/// packets go on to the server's UDP stack, which checks their checksums.
fn server_counters() -> String {
    let port = super::UDP_PORT;
    format!(
        "table netdev x64 {{\n\
         \tcounter rx {{ }}\n\
         \tcounter foreign {{ }}\n\
         \tchain in {{\n\
         \t\ttype filter hook ingress device \"eth0\" priority -500; policy accept;\n\
         \t\tether type ip udp dport {port} ip saddr != {GW_EXT} counter name \"foreign\"\n\
         \t\tether type ip udp dport {port} counter name \"rx\"\n\
         \t\tether type ip6 udp dport {port} counter name \"rx\"\n\
         \t}}\n\
         }}\n"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_client_reaches_the_server_under_the_well_known_prefix() {
        assert_eq!(
            Mode::Xnat.target(),
            "64:ff9b::93.184.216.34".parse::<Ipv6Addr>().unwrap()
        );
        assert_eq!(Mode::Tayga.target(), Mode::Xnat.target());
        assert_eq!(Mode::Plain6.target(), SERVER6);
        assert!(PREFIX.starts_with("64:ff9b::/96"));
    }
}
