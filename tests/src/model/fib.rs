//! The kernel's forwarding tables as `bpf_fib_lookup` reads them, and the
//! answer it gives (README "Fast path", "Hairpinning"): the egress device
//! and the MAC addresses of a resolved next hop, an egress device whose
//! neighbour is not resolved, or "not forwardable here" (no forwarding on
//! the input device, a local or broadcast destination, too big for the
//! route).
//!
//! The tables are the model's copy of a scratch namespace's (the fuzzer
//! reads its routes once and declares its devices and neighbours): the
//! lookup itself — longest prefix, route MTU, neighbour — is the model's
//! own.

use super::parse::ETH_HLEN;

/// What a route does with the destinations it covers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Forwarded to a device (or a gateway on it).
    Unicast,
    /// Anything else: the gateway's own addresses, broadcasts,
    /// unreachable, blackhole... The FIB lookup does not forward those.
    NotForwarded,
}

/// One route.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Route {
    /// Prefix (host order) and its length.
    pub net: u32,
    pub len: u32,
    pub kind: Kind,
    /// Egress device.
    pub dev: u32,
    /// Gateway (host order), if not on-link.
    pub via: Option<u32>,
    /// `mtu lock N`: the route's MTU (else the device's).
    pub mtu_lock: Option<u32>,
}

impl Route {
    fn covers(&self, addr: u32) -> bool {
        let mask = if self.len == 0 {
            0
        } else {
            u32::MAX << (32 - self.len)
        };
        addr & mask == self.net & mask
    }
}

/// A network device of the namespace.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Device {
    pub name: String,
    pub ifindex: u32,
    pub mac: [u8; 6],
    pub mtu: u32,
    /// `net.ipv4.conf.DEV.forwarding`: the FIB forwards nothing that
    /// arrives on a device without it.
    pub forwarding: bool,
}

/// A resolved neighbour entry (permanent: nothing ages).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Neighbour {
    pub dev: u32,
    /// Host order.
    pub addr: u32,
    pub mac: [u8; 6],
}

/// The namespace's devices, routes (the local and main tables as one list:
/// without policy rules the kernel picks the longest prefix over both)
/// and neighbours.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Fib {
    pub devices: Vec<Device>,
    pub routes: Vec<Route>,
    pub neighbours: Vec<Neighbour>,
}

/// What the lookup says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lookup {
    /// Forward through `ifindex` to a resolved next hop.
    Resolved {
        ifindex: u32,
        smac: [u8; 6],
        dmac: [u8; 6],
    },
    /// Forward through `ifindex`; its next hop has no resolved entry.
    NoNeigh { ifindex: u32 },
    /// Not forwardable here: the stack must have it.
    Stack,
}

/// One lookup: addresses as in the packet (network order in a native
/// u32), the device the packet arrived on, and what its size is checked
/// against the egress MTU with.
#[derive(Clone, Copy, Debug)]
pub struct Query {
    pub src: u32,
    pub dst: u32,
    pub iif: u32,
    /// The length the caller asks about (`tot_len` of the lookup): checked
    /// against the route's MTU when not 0.
    pub tot_len: u16,
    /// TC only: the skb's length (the whole frame). With `tot_len` 0 the
    /// kernel checks the skb against the egress device instead (its MTU
    /// plus an Ethernet header and a VLAN tag) once a next hop is
    /// resolved. XDP has no skb: `None`.
    pub skb_len: Option<usize>,
}

/// Room the kernel grants a frame beyond the device MTU when it checks an
/// skb for forwarding: the Ethernet header and one VLAN tag.
const SKB_SLACK: usize = ETH_HLEN + 4;

impl Fib {
    pub fn device(&self, ifindex: u32) -> Option<&Device> {
        self.devices.iter().find(|d| d.ifindex == ifindex)
    }

    pub fn by_name(&self, name: &str) -> Option<&Device> {
        self.devices.iter().find(|d| d.name == name)
    }

    /// The longest-prefix route for `dst` (host order); among equal
    /// prefixes the first listed (the local table comes first).
    fn route(&self, dst: u32) -> Option<&Route> {
        let mut best: Option<&Route> = None;
        for r in self.routes.iter().filter(|r| r.covers(dst)) {
            if best.is_none_or(|b| r.len > b.len) {
                best = Some(r);
            }
        }
        best
    }

    fn neighbour(&self, dev: u32, addr: u32) -> Option<[u8; 6]> {
        self.neighbours
            .iter()
            .find(|n| n.dev == dev && n.addr == addr)
            .map(|n| n.mac)
    }

    pub fn lookup(&self, q: &Query) -> Lookup {
        let Some(iif) = self.device(q.iif) else {
            return Lookup::Stack;
        };
        if !iif.forwarding {
            return Lookup::Stack;
        }
        let dst = u32::from_be(q.dst);
        let Some(route) = self.route(dst) else {
            return Lookup::Stack;
        };
        if route.kind != Kind::Unicast {
            return Lookup::Stack;
        }
        let Some(out) = self.device(route.dev) else {
            return Lookup::Stack;
        };
        let mtu = route.mtu_lock.unwrap_or(out.mtu);
        if u32::from(q.tot_len) > mtu {
            return Lookup::Stack;
        }
        let hop = route.via.unwrap_or(dst);
        let Some(dmac) = self.neighbour(out.ifindex, hop) else {
            return Lookup::NoNeigh {
                ifindex: out.ifindex,
            };
        };
        if q.tot_len == 0
            && let Some(len) = q.skb_len
            && len > out.mtu as usize + SKB_SLACK
        {
            return Lookup::Stack;
        }
        Lookup::Resolved {
            ifindex: out.ifindex,
            smac: out.mac,
            dmac,
        }
    }
}

/// Reads `ip route show table local` / `table main` output into routes;
/// `ifindex` names each device. Lines it cannot read are an error (a route
/// the model would not know about).
pub fn parse_routes(
    text: &str,
    ifindex: impl Fn(&str) -> Option<u32>,
) -> Result<Vec<Route>, String> {
    let mut routes = Vec::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let mut words = line.split_whitespace().peekable();
        let kind = match words.peek().copied() {
            Some("unicast") => {
                words.next();
                Kind::Unicast
            }
            Some(
                "local" | "broadcast" | "anycast" | "multicast" | "unreachable" | "blackhole"
                | "prohibit" | "throw" | "nat",
            ) => {
                words.next();
                Kind::NotForwarded
            }
            _ => Kind::Unicast,
        };
        let dst = words
            .next()
            .ok_or_else(|| format!("no destination: {line}"))?;
        let (net, len) = if dst == "default" {
            (0, 0)
        } else {
            let (a, l) = dst.split_once('/').unwrap_or((dst, "32"));
            let a: std::net::Ipv4Addr = a.parse().map_err(|_| format!("bad prefix: {line}"))?;
            let l: u32 = l.parse().map_err(|_| format!("bad prefix: {line}"))?;
            (u32::from(a), l)
        };
        let mut route = Route {
            net,
            len,
            kind,
            dev: 0,
            via: None,
            mtu_lock: None,
        };
        while let Some(w) = words.next() {
            match w {
                "dev" => {
                    let name = words.next().unwrap_or_default();
                    route.dev = ifindex(name).ok_or_else(|| format!("unknown device: {line}"))?;
                }
                "via" => {
                    let a: std::net::Ipv4Addr = words
                        .next()
                        .unwrap_or_default()
                        .parse()
                        .map_err(|_| format!("bad gateway: {line}"))?;
                    route.via = Some(u32::from(a));
                }
                "mtu" if words.peek() == Some(&"lock") => {
                    words.next();
                    let n = words.next().unwrap_or_default();
                    route.mtu_lock = Some(n.parse().map_err(|_| format!("bad mtu: {line}"))?);
                }
                _ => {}
            }
        }
        routes.push(route);
    }
    Ok(routes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fib() -> Fib {
        let local = "local 10.0.0.254 dev in0 proto kernel scope host src 10.0.0.254\n\
                     broadcast 10.0.0.255 dev in0 proto kernel scope link src 10.0.0.254\n";
        let main = "default via 192.0.2.1 dev ext0\n\
                    8.8.8.0/24 via 192.0.2.1 dev ext0 mtu lock 1280\n\
                    10.0.0.0/24 dev in0 proto kernel scope link src 10.0.0.254 linkdown\n\
                    192.0.2.0/24 dev ext0 proto kernel scope link src 192.0.2.254\n";
        let idx = |n: &str| match n {
            "in0" => Some(2),
            "ext0" => Some(3),
            _ => None,
        };
        let mut routes = parse_routes(local, idx).unwrap();
        routes.extend(parse_routes(main, idx).unwrap());
        Fib {
            devices: vec![
                Device {
                    name: "in0".into(),
                    ifindex: 2,
                    mac: [2, 0, 0, 0, 0, 2],
                    mtu: 1500,
                    forwarding: true,
                },
                Device {
                    name: "ext0".into(),
                    ifindex: 3,
                    mac: [2, 0, 0, 0, 0, 3],
                    mtu: 1500,
                    forwarding: false,
                },
            ],
            routes,
            neighbours: vec![
                Neighbour {
                    dev: 3,
                    addr: u32::from(std::net::Ipv4Addr::new(192, 0, 2, 1)),
                    mac: [2, 0, 0, 0, 0, 0x99],
                },
                Neighbour {
                    dev: 2,
                    addr: u32::from(std::net::Ipv4Addr::new(10, 0, 0, 1)),
                    mac: [2, 0, 0, 0, 0, 0x11],
                },
            ],
        }
    }

    fn q(dst: [u8; 4], iif: u32, tot_len: u16, skb_len: Option<usize>) -> Query {
        Query {
            src: u32::from_ne_bytes([10, 0, 0, 1]),
            dst: u32::from_ne_bytes(dst),
            iif,
            tot_len,
            skb_len,
        }
    }

    #[test]
    fn routes_neighbours_and_mtus() {
        let f = fib();
        let via_rtr = Lookup::Resolved {
            ifindex: 3,
            smac: [2, 0, 0, 0, 0, 3],
            dmac: [2, 0, 0, 0, 0, 0x99],
        };
        assert_eq!(f.lookup(&q([198, 18, 0, 1], 2, 100, None)), via_rtr);
        assert_eq!(f.lookup(&q([8, 8, 8, 8], 2, 1280, None)), via_rtr);
        assert_eq!(f.lookup(&q([8, 8, 8, 8], 2, 1281, None)), Lookup::Stack);
        assert_eq!(f.lookup(&q([198, 18, 0, 1], 2, 1501, None)), Lookup::Stack);
        assert_eq!(
            f.lookup(&q([192, 0, 2, 7], 2, 100, None)),
            Lookup::NoNeigh { ifindex: 3 }
        );
        assert_eq!(f.lookup(&q([10, 0, 0, 254], 2, 100, None)), Lookup::Stack);
        assert_eq!(f.lookup(&q([10, 0, 0, 255], 2, 100, None)), Lookup::Stack);
        assert_eq!(
            f.lookup(&q([198, 18, 0, 1], 3, 100, None)),
            Lookup::Stack,
            "no forwarding on the input device"
        );
        // TC without a length: the skb against the device.
        assert_eq!(f.lookup(&q([8, 8, 8, 8], 2, 0, Some(1518))), via_rtr);
        assert_eq!(f.lookup(&q([8, 8, 8, 8], 2, 0, Some(1519))), Lookup::Stack);
    }
}
