//! `xnat trace` in the data plane: while a trace runs, each external-
//! interface program reports what it did with the packets its filter
//! matches (nat_common::trace). While none runs, [`arm`] costs one array
//! read and a compare per packet, and nothing else runs.
//!
//! Why a packet was passed or dropped is read off the counters it moved:
//! [`arm`] copies this CPU's counters aside, [`report`] names the ones
//! that changed, so no stage needs to know about tracing.
use nat_common::{
    Counter,
    stats::COUNTER_COUNT,
    trace::{TRACE_DROPPED, TRACE_PASSED, TRACE_TRANSLATED, TraceRecord, TraceTuple},
};

use crate::{
    clock,
    maps::{STATS, TRACE, TRACE_FILTER, TRACE_SCRATCH},
    packet::Packet,
    parse::{
        icmp::{ICMP_ECHO, ICMP_ECHOREPLY, ID_OFF},
        ipv4::{self, IPPROTO_ICMP, IPPROTO_TCP, IPPROTO_UDP},
        l4::DPORT_OFF,
    },
    verdict::Verdict,
};

/// A packet being traced: its tuple before the program touched it.
pub struct Armed {
    proto: u8,
    before: TraceTuple,
}

/// Called before the program works on the packet: `Some` while a trace
/// runs and the packet is IPv4 (the filter is applied in [`report`], to
/// the tuple before and after translation).
#[inline(always)]
pub fn arm<P: Packet>(p: &P) -> Option<Armed> {
    if TRACE_FILTER.get(0)?.tracer == 0 {
        return None;
    }
    let (proto, before) = tuple(p)?;
    let saved = TRACE_SCRATCH.get_ptr_mut(0)?;
    for i in 0..COUNTER_COUNT {
        let v = STATS.get(i).copied().unwrap_or(0);
        // SAFETY: this CPU's slot, only this program run writes it.
        unsafe { (*saved)[i as usize] = v };
    }
    Some(Armed { proto, before })
}

/// Called with the program's verdict: one record if the filter matches.
#[inline(always)]
pub fn report<P: Packet>(p: &P, armed: &Armed, program: u8, verdict: Verdict) {
    let after = tuple(p).map_or(armed.before, |(_, t)| t);
    let Some(filter) = TRACE_FILTER.get(0) else {
        return;
    };
    if !filter.matches(armed.proto, &armed.before, &after) {
        return;
    }
    let Some(saved) = TRACE_SCRATCH.get_ptr(0) else {
        return;
    };
    let mut rec = TraceRecord {
        time_ns: clock::now(),
        before: armed.before,
        after,
        proto: armed.proto,
        program,
        verdict: match verdict {
            Verdict::Pass => TRACE_PASSED,
            Verdict::Drop => TRACE_DROPPED,
            Verdict::Translated => TRACE_TRANSLATED,
        },
        _pad: [0; 5],
        moved: 0,
    };
    // Branch-free per counter: `d | -d` has its top bit set exactly when
    // `d` is not 0.
    let mut moved = 0u64;
    for i in 0..COUNTER_COUNT {
        let now = STATS.get(i).copied().unwrap_or(0);
        // SAFETY: this CPU's slot, written by `arm` in this program run.
        let was = unsafe { (*saved)[i as usize] };
        let d = now ^ was;
        moved |= ((d | d.wrapping_neg()) >> 63) << i;
    }
    rec.moved =
        moved & !(1u64 << Counter::EgressBytes as u32 | 1u64 << Counter::IngressBytes as u32);
    // A full ring loses the record: tracing never holds a packet up.
    let _ = TRACE.output::<TraceRecord>(&rec, 0);
}

/// The packet's protocol, addresses and ports as they are now.
#[inline(always)]
fn tuple<P: Packet>(p: &P) -> Option<(u8, TraceTuple)> {
    let ip = ipv4::outer_ipv4(p)?;
    let mut t = TraceTuple {
        src: ip.src,
        dst: ip.dst,
        sport: 0,
        dport: 0,
    };
    let l4 = ip.l4();
    if !ip.later_fragment {
        match ip.proto {
            IPPROTO_TCP | IPPROTO_UDP if ip.has(l4, 4) => {
                t.sport = p.load(l4)?;
                t.dport = p.load(l4 + DPORT_OFF)?;
            }
            IPPROTO_ICMP if ip.has(l4, 8) => {
                let kind: u8 = p.load(l4)?;
                if kind == ICMP_ECHO || kind == ICMP_ECHOREPLY {
                    t.sport = p.load(l4 + ID_OFF)?;
                }
            }
            _ => {}
        }
    }
    Some((ip.proto, t))
}
