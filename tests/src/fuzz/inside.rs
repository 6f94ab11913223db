//! The gateway the inside programs run on (`xnat_inside_tc`,
//! `xnat_inside_xdp`), built in the fuzzer's scratch network namespace so
//! that `bpf_fib_lookup` answers the same way every time and the model
//! knows the answer:
//!
//! ```text
//!  in0   10.0.0.254/24     the inside interface the frames arrive on
//!                          (forwarding on); neighbours 10.0.0.1-3 and the
//!                          static host 10.0.0.9, none for 10.0.0.4
//!  in1   192.168.7.254/24  MTU 1280; neighbour: the static host 192.168.7.7
//!  ext0  192.0.2.254/24    the external interface; the pool and the static
//!                          public addresses (NAT64's too) are its own (/32): to the FIB
//!                          they are local; neighbour 192.0.2.1 (the
//!                          router), none for 192.0.2.2
//!        default via 192.0.2.1, 8.8.8.0/24 via 192.0.2.1 mtu lock 1280
//!  lo    no forwarding: the external interface's TC programs, whose
//!        test runs come from lo, never find a route (see below); the XDP
//!        ingress program's frames come in on ext0 (whether it takes XDP
//!        frames decides NAT64's XDP_TX), which forwards nothing either
//! ```
//!
//! Covered: every FIB answer the inside programs act on — a resolved next
//! hop on the external or either inside interface (MAC addresses, TTL), an
//! unresolved one (TC's `bpf_redirect_neigh`, XDP's fallback), a local or
//! broadcast destination, the route MTU (`mtu lock`) and the egress
//! device's MTU (hairpinning's check of the skb), and routes that do not
//! leave through the external interface. Per epoch the fast path is on or
//! off, the external ifindex is right, unknown (0) or another device's,
//! and the external interface takes XDP redirects or not.
//!
//! Not covered: public addresses routed to the gateway instead of
//! assigned to it (a hairpinned packet whose destination stayed public
//! is then forwarded instead of dropped), route or neighbour changes
//! during a run (the per-tick route cache, `ROUTE_CACHE`, is not compared:
//! with fixed routes its answers are the FIB's), GSO packets, frames
//! arriving on another inside interface, pools of more than eight
//! addresses (the world's has two; the hairpin checks its candidates
//! another way there), what `bpf_clone_redirect` sends besides the frame
//! a program leaves (held fragments released, NAT64's too: only the frame
//! the test run returns is compared), and the inbound fast path of the external
//! interface's programs: their test runs come from `lo`, without
//! forwarding, so with the fast path on they take the same fallback as
//! without it (what the model predicts for them).
//!
//! The veth peers stay in the namespace with no address and no
//! forwarding: what the programs send there (held fragments released by
//! `bpf_clone_redirect`) is dropped.

use std::net::Ipv4Addr;
use std::sync::Arc;

use anyhow::{Context as _, Result, anyhow};
use aya::Ebpf;
use nat_common::{FAST_PATH_EXT_IFINDEX, FAST_PATH_ON, MAP_XDP_TARGETS};
use nat_userspace::tables::Loaded;
use rand::Rng;

use super::world::{INSIDE, STATIC};
use crate::model::fib::{self, Device, Fib, Neighbour};
use crate::model::gateway::Gateway;
use crate::netns::Netns;

/// Interface names, MAC addresses, addresses and MTUs (see the module
/// docs).
struct Link {
    name: &'static str,
    mac: [u8; 6],
    addrs: &'static [&'static str],
    mtu: u32,
    forwarding: bool,
}

const LINKS: [Link; 3] = [
    Link {
        name: "in0",
        mac: [0x02, 0, 0, 0, 0x0a, 0xfe],
        addrs: &["10.0.0.254/24"],
        mtu: 1500,
        forwarding: true,
    },
    Link {
        name: "in1",
        mac: [0x02, 0, 0, 0, 0x0b, 0xfe],
        addrs: &["192.168.7.254/24"],
        mtu: 1280,
        forwarding: true,
    },
    Link {
        name: "ext0",
        mac: [0x02, 0, 0, 0, 0xe0, 0xfe],
        addrs: &[
            "192.0.2.254/24",
            "198.51.100.1/32",
            "198.51.100.2/32",
            "203.0.113.9/32",
            "203.0.113.7/32",
            "203.0.113.64/32",
        ],
        mtu: 1500,
        forwarding: false,
    },
];

/// The router outside (on ext0's link).
const ROUTER: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);

/// Permanent neighbour entries: device, address, MAC.
fn neighbours() -> Vec<(&'static str, Ipv4Addr, [u8; 6])> {
    let mac = |a: Ipv4Addr| {
        let o = a.octets();
        [0x02, 0x01, o[0], o[1], o[2], o[3]]
    };
    let mut v: Vec<_> = INSIDE[..3].iter().map(|a| ("in0", *a, mac(*a))).collect();
    v.push(("in0", STATIC[0].0, mac(STATIC[0].0)));
    v.push(("in1", STATIC[1].0, mac(STATIC[1].0)));
    v.push(("ext0", ROUTER, mac(ROUTER)));
    v
}

/// The gateway in a namespace, as the model sees it.
pub struct Network {
    fib: Arc<Fib>,
    in0: u32,
    in1: u32,
    ext0: u32,
}

fn mac_str(m: [u8; 6]) -> String {
    m.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

impl Network {
    /// Builds the gateway's devices, addresses, routes and neighbours in
    /// `ns` (which must hold nothing but `lo`) and reads back the
    /// ifindexes and routing tables the model needs.
    pub fn create(ns: &Netns) -> Result<Network> {
        // No IPv6 chatter (router solicitations, DAD) on the links.
        for key in ["all", "default"] {
            let _ = ns.run(
                crate::netns::CMD_TIMEOUT,
                &[
                    "sysctl",
                    "-q",
                    "-w",
                    &format!("net.ipv6.conf.{key}.disable_ipv6=1"),
                ],
            );
        }
        ns.sysctl("net.ipv4.conf.all.forwarding", "0");
        for l in &LINKS {
            let peer = format!("{}p", l.name);
            ns.ip(&["link", "add", l.name, "type", "veth", "peer", "name", &peer]);
            ns.ip(&["link", "set", l.name, "address", &mac_str(l.mac)]);
            ns.ip(&["link", "set", l.name, "mtu", &l.mtu.to_string()]);
            ns.ip(&["link", "set", &peer, "mtu", &l.mtu.to_string()]);
            ns.ip(&["link", "set", &peer, "up"]);
            ns.ip(&["link", "set", l.name, "up"]);
            for a in l.addrs {
                ns.ip(&["addr", "add", a, "dev", l.name]);
            }
            if l.forwarding {
                ns.sysctl(&format!("net.ipv4.conf.{}.forwarding", l.name), "1");
            }
        }
        ns.ip(&["route", "add", "default", "via", &ROUTER.to_string()]);
        ns.ip(&[
            "route",
            "add",
            "8.8.8.0/24",
            "via",
            &ROUTER.to_string(),
            "mtu",
            "lock",
            "1280",
        ]);
        for (dev, addr, mac) in neighbours() {
            ns.ip(&[
                "neigh",
                "replace",
                &addr.to_string(),
                "lladdr",
                &mac_str(mac),
                "dev",
                dev,
                "nud",
                "permanent",
            ]);
        }
        let ifindex = |dev: &str| -> Result<u32> {
            let out = ns.ip(&["-o", "link", "show", "dev", dev]);
            out.split(':')
                .next()
                .and_then(|n| n.trim().parse().ok())
                .ok_or_else(|| anyhow!("no ifindex in {out:?}"))
        };
        let mut devices = vec![Device {
            name: "lo".into(),
            ifindex: ifindex("lo")?,
            mac: [0; 6],
            mtu: 65536,
            forwarding: false,
        }];
        for l in &LINKS {
            devices.push(Device {
                name: l.name.into(),
                ifindex: ifindex(l.name)?,
                mac: l.mac,
                mtu: l.mtu,
                forwarding: l.forwarding,
            });
        }
        let by_name = |n: &str| devices.iter().find(|d| d.name == n).map(|d| d.ifindex);
        // The kernel's own routes (local addresses, broadcasts, connected
        // subnets) as it made them, local table first.
        let mut routes = Vec::new();
        for table in ["local", "main"] {
            let text = ns.ip(&["route", "show", "table", table]);
            routes.extend(
                fib::parse_routes(&text, by_name).map_err(|e| anyhow!("table {table}: {e}"))?,
            );
        }
        let neighbours = neighbours()
            .into_iter()
            .map(|(dev, addr, mac)| {
                Ok(Neighbour {
                    dev: by_name(dev).with_context(|| format!("no device {dev}"))?,
                    addr: u32::from(addr),
                    mac,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let fib = Fib {
            devices,
            routes,
            neighbours,
        };
        let idx = |n: &str| fib.by_name(n).map(|d| d.ifindex).expect("declared");
        let (in0, in1, ext0) = (idx("in0"), idx("in1"), idx("ext0"));
        Ok(Network {
            fib: Arc::new(fib),
            in0,
            in1,
            ext0,
        })
    }

    /// The gateway with the fast path off, frames arriving on in0.
    pub fn gateway(&self) -> Gateway {
        Gateway {
            fast_path: false,
            ext_ifindex: self.ext0,
            xdp_targets: Vec::new(),
            inside_ifindex: self.in0,
            ingress_ifindex: self.ext0,
            fib: Arc::clone(&self.fib),
        }
    }

    /// A new epoch's fast-path settings: on or off; the external ifindex
    /// mostly right, now and then unknown or another device's; the
    /// external interface taking XDP redirects or not.
    pub fn new_epoch(&self, g: &mut Gateway, rng: &mut impl Rng) {
        g.fast_path = rng.random_bool(0.6);
        g.ext_ifindex = match rng.random_range(0..10) {
            0 => 0,
            1 => self.in1,
            _ => self.ext0,
        };
        g.xdp_targets = if rng.random_bool(0.7) {
            vec![self.ext0]
        } else {
            Vec::new()
        };
    }
}

/// Writes `g` into the object's `FAST_PATH` and `XDP_TARGETS` (on the
/// namespace's thread: the kernel resolves the devices there).
pub fn write(ebpf: &mut Ebpf, g: &Gateway) -> Result<()> {
    {
        let mut a = Loaded::new(ebpf).fast_path()?;
        a.set(FAST_PATH_ON, u32::from(g.fast_path), 0)?;
        a.set(FAST_PATH_EXT_IFINDEX, g.ext_ifindex, 0)?;
    }
    let mut m = Loaded::new(ebpf).xdp_targets()?;
    for d in &g.fib.devices {
        // Absent already, or removed now.
        let _ = m.remove(d.ifindex);
    }
    for &i in &g.xdp_targets {
        m.insert(i, i, None, 0)
            .with_context(|| format!("inserting {i} into {MAP_XDP_TARGETS}"))?;
    }
    Ok(())
}

/// The settings of a mismatch's epoch, for its report.
pub fn describe(g: &Gateway) -> String {
    let name = |i: u32| {
        g.fib
            .device(i)
            .map_or_else(|| format!("#{i}"), |d| format!("{} (#{i})", d.name))
    };
    let targets: Vec<String> = g.xdp_targets.iter().map(|i| name(*i)).collect();
    format!(
        "gateway: fast path {}, external interface {}, XDP targets [{}]; the frame arrives on {} \
         of the fuzzer's namespace (fuzz::inside: its routes and neighbours; the repro below \
         needs them, as packet_fastpath.rs's FibNs gives them, and the program's \
         __sk_buff or xdp_md naming that device)",
        if g.fast_path { "on" } else { "off" },
        if g.ext_ifindex == 0 {
            "unknown (0)".to_string()
        } else {
            name(g.ext_ifindex)
        },
        targets.join(", "),
        name(g.inside_ifindex),
    )
}

/// A `struct __sk_buff` for BPF_PROG_TEST_RUN naming `ifindex` as the
/// device the packet arrived on (`ingress_ifindex` and `ifindex`, offsets
/// 36 and 40 of the UAPI struct; everything else zero).
pub fn skb_ctx(ifindex: u32) -> Vec<u8> {
    let mut c = vec![0u8; 192];
    c[36..40].copy_from_slice(&ifindex.to_ne_bytes());
    c[40..44].copy_from_slice(&ifindex.to_ne_bytes());
    c
}

/// A `struct xdp_md` for BPF_PROG_TEST_RUN: the whole frame as data, the
/// ingress device `ifindex`, queue 0.
pub fn xdp_ctx(ifindex: u32, len: usize) -> Vec<u8> {
    let mut c = vec![0u8; 24];
    c[4..8].copy_from_slice(&(len as u32).to_ne_bytes()); // data_end
    c[12..16].copy_from_slice(&ifindex.to_ne_bytes()); // ingress_ifindex
    c
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fuzz::world::{POOL, STATIC64};

    #[test]
    fn the_pool_and_static_addresses_are_the_gateways_own() {
        let own: Vec<&str> = LINKS.iter().flat_map(|l| l.addrs.iter().copied()).collect();
        for a in POOL
            .iter()
            .chain(STATIC.iter().map(|(_, p)| p))
            .chain([&STATIC64.2])
        {
            assert!(own.contains(&format!("{a}/32").as_str()), "{a}");
        }
    }
}
