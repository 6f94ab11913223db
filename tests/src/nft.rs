//! Packet counters at a host, with nftables: what arrived on a device,
//! counted in the kernel before any socket or firewall could lose it. The
//! abuse tests count at the inside hosts what got through the NAT.

use serde_json::Value;

use crate::netns::Netns;

/// One nftables counter on the ingress hook of one device in `ns`
/// (a `netdev` table of its own, so it sees every frame the device
/// receives, whatever its destination).
pub struct IngressCounter<'a> {
    ns: &'a Netns,
    table: String,
}

impl<'a> IngressCounter<'a> {
    /// Counts packets arriving on `dev` in `ns` that match the nft
    /// expression `matcher` (e.g. `["ip", "saddr", "203.0.113.0/24"]`).
    /// `name` keeps several counters of one namespace apart.
    pub fn new(ns: &'a Netns, name: &str, dev: &str, matcher: &[&str]) -> IngressCounter<'a> {
        let table = format!("xnat_test_{name}");
        ns.run_ok(&["nft", "add", "table", "netdev", &table]);
        let hook = format!("{{ type filter hook ingress device {dev} priority 0 ; }}");
        ns.run_ok(&["nft", "add", "chain", "netdev", &table, "c", &hook]);
        let mut rule = vec!["nft", "add", "rule", "netdev", &table, "c"];
        rule.extend_from_slice(matcher);
        rule.push("counter");
        ns.run_ok(&rule);
        IngressCounter { ns, table }
    }

    /// Packets counted so far.
    pub fn packets(&self) -> u64 {
        let out = self
            .ns
            .run_ok(&["nft", "-j", "list", "table", "netdev", &self.table]);
        let v: Value = serde_json::from_str(&out)
            .unwrap_or_else(|e| panic!("`nft -j list table` is not JSON ({e}): {out}"));
        let mut n = None;
        find_counters(&v, &mut |p| *n.get_or_insert(0) += p);
        n.unwrap_or_else(|| panic!("no counter in table {}: {out}", self.table))
    }
}

/// Calls `f` with the packets of every `"counter"` object under `v`.
fn find_counters(v: &Value, f: &mut impl FnMut(u64)) {
    match v {
        Value::Object(m) => {
            if let Some(p) = m
                .get("counter")
                .and_then(|c| c.get("packets"))
                .and_then(Value::as_u64)
            {
                f(p);
            }
            m.values().for_each(|x| find_counters(x, f));
        }
        Value::Array(a) => a.iter().for_each(|x| find_counters(x, f)),
        _ => {}
    }
}
