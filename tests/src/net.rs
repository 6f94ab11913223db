//! One builder for the end-to-end topologies: namespaces, veth links,
//! bridges, MTUs, addresses, routes and sysctls from a short description,
//! one statement a line (`#` starts a comment):
//!
//! ```text
//! hosts a nat srv                     namespaces, created in this order
//! link a:eth0 nat:int0                a veth pair between two namespaces
//! bridge nat:int0 ia ib               a bridge (STP off) over ports of that host
//! mtu 1500 a:eth0 nat:int0            the MTU of interfaces
//! addr nat:EXT 192.0.2.1/24 ...       addresses of an interface (IPv6: nodad)
//! route a default via 10.0.0.1        `ip route add ...` in a namespace
//! sysctl net.ipv4.ip_forward=1 nat    a sysctl in namespaces
//! ```
//!
//! `EXT` stands for the gateway's external interface, whose name is unique
//! to the test (xnat pins its state under a directory named after it).
//! Every interface a `link` or `bridge` names is brought up after the
//! addresses; routes come after that. In XDP ingress mode the outside peer
//! of EXT turns its tx checksum offload off (DESIGN §2: XDP cannot see
//! CHECKSUM_PARTIAL, so that peer must behave like a wire and send
//! complete checksums); all other offloads stay at their defaults.

use crate::netns::{Netns, require_root, xnat_bin};
use crate::topology::{Ingress, pid36, remove_stale_pins, veth};

/// The namespaces of one test, built from a description.
pub struct Net {
    /// The external interface's name (what `EXT` stands for).
    pub ext: String,
    hosts: Vec<(String, Option<Netns>)>,
}

/// An interface of a namespace: `HOST:IFACE`.
fn end<'a>(tok: &'a str, ext: &'a str, line: &str) -> (&'a str, &'a str) {
    let (h, i) = tok
        .split_once(':')
        .unwrap_or_else(|| panic!("want HOST:IFACE, got {tok:?} in {line:?}"));
    (h, if i == "EXT" { ext } else { i })
}

impl Net {
    /// Builds the namespaces of `spec` for test `tag` (≤ 4 alphanumerics,
    /// unique among the tests of the binary) in ingress `mode`. Namespaces
    /// are named `{kind}{pid}-{tag}{m}-HOST` and EXT `{ext}{pid36}{tag}{m}`
    /// (`m` the mode's first letter), so both are unique to the process.
    /// Pins an earlier, killed run left for EXT are removed.
    pub fn build(kind: &str, ext: &str, tag: &str, mode: Ingress, spec: &str) -> Net {
        require_root();
        let _ = xnat_bin(); // fail early and clearly if the binary is missing
        assert!(
            tag.len() <= 4 && tag.chars().all(|c| c.is_ascii_alphanumeric()),
            "test tag {tag:?} must be ≤ 4 alphanumerics"
        );
        let m = &mode.as_str()[..1];
        let prefix = format!("{kind}{}-{tag}{m}", std::process::id());
        let ext = format!("{ext}{}{tag}{m}", pid36());
        assert!(ext.len() <= 15, "interface name {ext} too long");

        let lines: Vec<Vec<&str>> = spec
            .lines()
            .map(|l| l.split('#').next().unwrap().split_whitespace().collect())
            .filter(|w: &Vec<&str>| !w.is_empty())
            .collect();
        for w in &lines {
            assert!(
                matches!(
                    w[0],
                    "hosts" | "link" | "bridge" | "mtu" | "addr" | "route" | "sysctl"
                ),
                "unknown statement {:?}",
                w.join(" ")
            );
        }
        let of = |verb: &'static str| lines.iter().filter(move |w| w[0] == verb);

        let mut net = Net {
            ext: ext.clone(),
            hosts: Vec::new(),
        };
        for w in of("hosts") {
            for h in &w[1..] {
                let ns = Netns::create(format!("{prefix}-{h}"));
                net.hosts.push((h.to_string(), Some(ns)));
            }
        }
        remove_stale_pins(&ext);

        // Interfaces to bring up, per host, in the order they appear.
        let mut up: Vec<(&str, &str)> = Vec::new();
        let mut wire = None;
        for w in of("link") {
            let line = w.join(" ");
            assert_eq!(w.len(), 3, "want `link H:IF H:IF`: {line:?}");
            let (a, b) = (end(w[1], &ext, &line), end(w[2], &ext, &line));
            veth(net.ns(a.0), a.1, net.ns(b.0), b.1);
            up.extend([a, b]);
            if a.1 == ext {
                wire = Some(b);
            } else if b.1 == ext {
                wire = Some(a);
            }
        }
        for w in of("bridge") {
            let line = w.join(" ");
            let (h, br) = end(w[1], &ext, &line);
            let ns = net.ns(h);
            ns.ip(&["link", "add", br, "type", "bridge", "stp_state", "0"]);
            for port in &w[2..] {
                ns.ip(&["link", "set", port, "master", br]);
            }
            up.push((h, br));
        }
        for w in of("mtu") {
            let line = w.join(" ");
            for tok in &w[2..] {
                let (h, i) = end(tok, &ext, &line);
                net.ns(h).ip(&["link", "set", i, "mtu", w[1]]);
            }
        }
        for w in of("addr") {
            let line = w.join(" ");
            let (h, i) = end(w[1], &ext, &line);
            for a in &w[2..] {
                // IPv6 addresses skip duplicate address detection: usable
                // at once, not seconds later.
                if a.contains(':') {
                    net.ns(h).ip(&["addr", "add", a, "dev", i, "nodad"]);
                } else {
                    net.ns(h).ip(&["addr", "add", a, "dev", i]);
                }
            }
        }
        for (h, i) in up {
            net.ns(h).ip(&["link", "set", i, "up"]);
        }
        for w in of("route") {
            let mut args = vec!["route", "add"];
            args.extend_from_slice(&w[2..]);
            net.ns(w[1]).ip(&args);
        }
        for w in of("sysctl") {
            let (k, v) = w[1]
                .split_once('=')
                .unwrap_or_else(|| panic!("want `sysctl KEY=VALUE HOST...`: {w:?}"));
            for h in &w[2..] {
                net.ns(h).sysctl(k, v);
            }
        }
        if mode == Ingress::Xdp {
            let (h, i) = wire.expect("no link of EXT in the description");
            net.ns(h).run_ok(&["ethtool", "-K", i, "tx", "off"]);
        }
        net
    }

    /// The namespace of `host` (not yet taken).
    pub fn ns(&self, host: &str) -> &Netns {
        self.hosts
            .iter()
            .find(|(h, _)| h == host)
            .and_then(|(_, ns)| ns.as_ref())
            .unwrap_or_else(|| panic!("no host {host:?} in the description"))
    }

    /// Takes the namespace of `host` out (it is deleted when that is
    /// dropped; those not taken are deleted with the `Net`).
    pub fn take(&mut self, host: &str) -> Netns {
        self.hosts
            .iter_mut()
            .find(|(h, _)| h == host)
            .and_then(|(_, ns)| ns.take())
            .unwrap_or_else(|| panic!("no host {host:?} left in the description"))
    }
}
