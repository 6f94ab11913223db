//! `xnat trace` on the tables: switching the data plane's packet reports
//! on and off (`TRACE_FILTER`), and reading them as lines for people or
//! JSON for programs. The records come from the external interface's
//! programs (nat-ebpf's `trace` module) while a trace's pid is in the
//! filter; the agent clears a filter whose tracer died.
use std::{
    net::{Ipv4Addr, Ipv6Addr},
    path::Path,
    time::Duration,
};

use anyhow::{Context as _, bail};
use nat_common::{
    Counter,
    trace::{
        TRACE_DROPPED, TRACE_EGRESS_TC, TRACE_INGRESS_TC, TRACE_INGRESS_XDP, TRACE_NAT64_OUT_TC,
        TRACE_NAT64_OUT_XDP, TRACE_PASSED, TraceFilter, TraceRecord, TraceTuple,
    },
};
use serde::Serialize;

use super::{Tables, flows::proto_name, static_map::from_be};

/// Whether process `pid` is alive (in this PID namespace).
fn alive(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

/// Turns tracing on with `filter` for this process. Refused while another
/// live `xnat trace` holds the interface.
pub fn start(dir: &Path, mut filter: TraceFilter) -> anyhow::Result<()> {
    let mut map = Tables::at(dir).trace_filter()?;
    let now = map.get(&0, 0).context("reading TRACE_FILTER")?;
    if now.tracer != 0 && now.tracer != std::process::id() && alive(now.tracer) {
        bail!(
            "a trace is already running on this interface (pid {})",
            now.tracer
        );
    }
    filter.tracer = std::process::id();
    map.set(0, filter, 0).context("writing TRACE_FILTER")?;
    Ok(())
}

/// Turns tracing off (if this process, or a dead one, holds it).
pub fn stop(dir: &Path) -> anyhow::Result<()> {
    let mut map = Tables::at(dir).trace_filter()?;
    let now = map.get(&0, 0)?;
    if now.tracer == std::process::id() || (now.tracer != 0 && !alive(now.tracer)) {
        map.set(0, TraceFilter::default(), 0)?;
    }
    Ok(())
}

/// For the agent, once a tick: a trace killed without cleaning up leaves
/// the programs reporting to nobody; switch them off. True if it did.
pub fn clear_if_orphaned(dir: &Path) -> anyhow::Result<bool> {
    let mut map = Tables::at(dir).trace_filter()?;
    let now = map.get(&0, 0)?;
    if now.tracer != 0 && !alive(now.tracer) {
        map.set(0, TraceFilter::default(), 0)?;
        return Ok(true);
    }
    Ok(false)
}

/// A record decoded from the ring, as `--json` prints it.
#[derive(Debug, Serialize, PartialEq, Eq)]
pub struct Event {
    /// RFC 3339, UTC, microseconds.
    pub time: String,
    pub program: &'static str,
    pub proto: &'static str,
    pub before: Flow,
    pub after: Flow,
    /// "translated", "passed" or "dropped".
    pub verdict: &'static str,
    /// The counters the packet moved (why it was passed or dropped, what
    /// it created).
    pub reasons: Vec<&'static str>,
}

#[derive(Debug, Serialize, PartialEq, Eq)]
pub struct Flow {
    pub src: String,
    pub dst: String,
}

fn endpoint(proto: u8, addr: u32, port_be: u16, with_port: bool) -> String {
    let a = from_be(addr);
    match (proto, with_port) {
        (6 | 17, true) => format!("{a}:{}", u16::from_be(port_be)),
        (1, true) if port_be != 0 => format!("{a} id {}", u16::from_be(port_be)),
        _ => a.to_string(),
    }
}

fn flow(proto: u8, t: &TraceTuple) -> Flow {
    // No ports recorded at all: a later fragment or a protocol without.
    let ports = t.sport != 0 || t.dport != 0;
    Flow {
        src: endpoint(proto, t.src, t.sport, ports),
        dst: endpoint(proto, t.dst, t.dport, ports && proto != 1),
    }
}

/// An endpoint of a NAT64 packet's IPv6 side: `[addr]:port`.
fn endpoint6(proto: u8, addr: [u8; 16], port_be: u16, with_port: bool) -> String {
    let a = Ipv6Addr::from(addr);
    match (proto, with_port) {
        (6 | 17, true) => format!("[{a}]:{}", u16::from_be(port_be)),
        (1, true) if port_be != 0 => format!("{a} id {}", u16::from_be(port_be)),
        _ => a.to_string(),
    }
}

/// The IPv6 side of a NAT64 record (`host6` set): outbound, the packet
/// before is the host's IPv6 one (its stand-in's tuple); inbound, the
/// packet after is. The other side stays IPv4.
fn nat64_sides(r: &TraceRecord, before: &mut Flow, after: &mut Flow) {
    if r.host6 == [0; 16] {
        return;
    }
    let ports = |t: &TraceTuple| t.sport != 0 || t.dport != 0;
    let (b, a) = (&r.before, &r.after);
    if nat_common::nat64::is_stand_in(b.src) {
        before.src = endpoint6(r.proto, r.host6, b.sport, ports(b));
        before.dst = endpoint6(r.proto, r.remote6, b.dport, ports(b) && r.proto != 1);
    } else {
        after.src = endpoint6(r.proto, r.remote6, a.sport, ports(a));
        after.dst = endpoint6(r.proto, r.host6, a.dport, ports(a) && r.proto != 1);
    }
}

/// Decodes one ring record (`None`: not a whole record).
pub fn decode(bytes: &[u8]) -> Option<Event> {
    if bytes.len() < std::mem::size_of::<TraceRecord>() {
        return None;
    }
    // SAFETY: length checked; TraceRecord is plain data, read unaligned.
    let r: TraceRecord = unsafe { std::ptr::read_unaligned(bytes.as_ptr().cast()) };
    let ago = crate::agent::clock::now_ns().saturating_sub(r.time_ns);
    let when = std::time::SystemTime::now() - Duration::from_nanos(ago);
    let reasons = Counter::ALL
        .iter()
        .filter(|&&c| r.moved & (1u64 << c as u32) != 0)
        .map(|c| c.name())
        .collect();
    let (mut before, mut after) = (flow(r.proto, &r.before), flow(r.proto, &r.after));
    nat64_sides(&r, &mut before, &mut after);
    Some(Event {
        time: humantime::format_rfc3339_micros(when).to_string(),
        program: match r.program {
            TRACE_EGRESS_TC => "egress_tc",
            TRACE_INGRESS_XDP => "ingress_xdp",
            TRACE_INGRESS_TC => "ingress_tc",
            TRACE_NAT64_OUT_TC => "nat64_out_tc",
            TRACE_NAT64_OUT_XDP => "nat64_out_xdp",
            _ => "unknown",
        },
        proto: proto_name(r.proto),
        before,
        after,
        verdict: match r.verdict {
            TRACE_PASSED => "passed",
            TRACE_DROPPED => "dropped",
            _ => "translated",
        },
        reasons,
    })
}

impl Event {
    /// One line for people: when, where, what, and what became of it.
    pub fn line(&self) -> String {
        let mut s = format!(
            "{} {} {} {} > {}",
            self.time, self.program, self.proto, self.before.src, self.before.dst
        );
        if self.after != self.before {
            s += &format!(" => {} > {}", self.after.src, self.after.dst);
        }
        s += &format!(" {}", self.verdict);
        if !self.reasons.is_empty() {
            s += &format!(" ({})", self.reasons.join(", "));
        }
        s
    }
}

/// `--host IPV6` as the filter's address and mask: the host's stand-in
/// (NAT64_HOSTS), which its packets carry on the IPv4 side of NAT64.
/// Refused when the host has none now.
pub fn host6_filter(dir: &Path, host: Ipv6Addr) -> anyhow::Result<(u32, u32)> {
    let hosts = Tables::at(dir).nat64_hosts()?.into_hash_map()?;
    match hosts.get(&host.octets(), 0) {
        Ok(stand_in) => Ok((stand_in, u32::MAX)),
        Err(_) => bail!(
            "--host {host}: no NAT64 binding holds a stand-in for this IPv6 host now \
             (trace it once it has sent a packet, or filter by its remote address or port)"
        ),
    }
}

/// `--host ADDR[/LEN]` as the filter's address and mask.
pub fn host_filter(addr: Ipv4Addr, len: u8) -> (u32, u32) {
    let mask = if len == 0 {
        0
    } else {
        u32::MAX << (32 - u32::from(len))
    };
    let a = u32::from(addr) & mask;
    (a.to_be(), mask.to_be())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tuple(src: [u8; 4], sport: u16, dst: [u8; 4], dport: u16) -> TraceTuple {
        TraceTuple {
            src: u32::from_ne_bytes(src),
            dst: u32::from_ne_bytes(dst),
            sport: sport.to_be(),
            dport: dport.to_be(),
        }
    }

    fn bytes(r: &TraceRecord) -> Vec<u8> {
        // SAFETY: reading a plain-data struct's bytes.
        unsafe {
            std::slice::from_raw_parts(
                (r as *const TraceRecord).cast::<u8>(),
                size_of::<TraceRecord>(),
            )
        }
        .to_vec()
    }

    #[test]
    fn a_translated_udp_record_reads_as_before_and_after() {
        let r = TraceRecord {
            time_ns: crate::agent::clock::now_ns(),
            before: tuple([10, 0, 0, 2], 40000, [198, 51, 100, 1], 53),
            after: tuple([203, 0, 113, 1], 40001, [198, 51, 100, 1], 53),
            proto: 17,
            program: TRACE_EGRESS_TC,
            verdict: 2,
            _pad: [0; 5],
            host6: [0; 16],
            remote6: [0; 16],
            moved: 1 << Counter::EgressTranslated as u32 | 1 << Counter::NaptMappingsCreated as u32,
        };
        let e = decode(&bytes(&r)).unwrap();
        let line = e.line();
        assert!(
            line.ends_with(
                " egress_tc udp 10.0.0.2:40000 > 198.51.100.1:53 => 203.0.113.1:40001 > 198.51.100.1:53 translated (egress_translated_packets, napt_mappings_created)"
            ),
            "{line}"
        );
        assert!(decode(&bytes(&r)[..10]).is_none());
    }

    #[test]
    fn a_dropped_record_names_its_reason_and_no_translation() {
        let t = tuple([192, 0, 2, 9], 1234, [203, 0, 113, 1], 22);
        let r = TraceRecord {
            time_ns: 0,
            before: t,
            after: t,
            proto: 6,
            program: TRACE_INGRESS_XDP,
            verdict: TRACE_DROPPED,
            _pad: [0; 5],
            host6: [0; 16],
            remote6: [0; 16],
            moved: 1 << Counter::DropUnsolicitedSyn as u32,
        };
        let line = decode(&bytes(&r)).unwrap().line();
        assert!(
            line.ends_with(
                " ingress_xdp tcp 192.0.2.9:1234 > 203.0.113.1:22 dropped (drop_unsolicited_syn)"
            ),
            "{line}"
        );
    }

    #[test]
    fn nat64_records_show_their_ipv6_side() {
        let host6 = "2001:db8::5".parse::<Ipv6Addr>().unwrap().octets();
        let remote6 = "64:ff9b::cb00:7102".parse::<Ipv6Addr>().unwrap().octets();
        let stand_in = tuple([0, 1, 2, 3], 40100, [203, 0, 113, 2], 9100);
        let public = tuple([198, 51, 100, 1], 40100, [203, 0, 113, 2], 9100);
        let out = TraceRecord {
            time_ns: 0,
            before: stand_in,
            after: public,
            proto: 17,
            program: TRACE_NAT64_OUT_TC,
            verdict: 2,
            _pad: [0; 5],
            host6,
            remote6,
            moved: 1 << Counter::EgressTranslated as u32,
        };
        let line = decode(&bytes(&out)).unwrap().line();
        assert!(
            line.ends_with(
                " nat64_out_tc udp [2001:db8::5]:40100 > [64:ff9b::cb00:7102]:9100 => 198.51.100.1:40100 > 203.0.113.2:9100 translated (egress_translated_packets)"
            ),
            "{line}"
        );
        let back = TraceRecord {
            before: tuple([203, 0, 113, 2], 9100, [198, 51, 100, 1], 40100),
            after: tuple([203, 0, 113, 2], 9100, [0, 1, 2, 3], 40100),
            program: TRACE_INGRESS_TC,
            moved: 1 << Counter::IngressTranslated as u32,
            ..out
        };
        let line = decode(&bytes(&back)).unwrap().line();
        assert!(
            line.ends_with(
                " ingress_tc udp 203.0.113.2:9100 > 198.51.100.1:40100 => [64:ff9b::cb00:7102]:9100 > [2001:db8::5]:40100 translated (ingress_translated_packets)"
            ),
            "{line}"
        );
    }

    #[test]
    fn host_filter_masks_in_network_order() {
        let (a, m) = host_filter(Ipv4Addr::new(10, 0, 0, 77), 24);
        assert_eq!(a.to_ne_bytes(), [10, 0, 0, 0]);
        assert_eq!(m.to_ne_bytes(), [255, 255, 255, 0]);
        assert_eq!(host_filter(Ipv4Addr::new(1, 2, 3, 4), 0), (0, 0));
        assert_eq!(
            host_filter(Ipv4Addr::new(1, 2, 3, 4), 32).0.to_ne_bytes(),
            [1, 2, 3, 4]
        );
    }
}
