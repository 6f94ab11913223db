//! `xnat trace` in the data plane: while a trace runs, each external-
//! interface program, and NAT64's outbound programs, report what they did
//! with the packets its filter matches (nat_common::trace). While none runs, [`arm`] costs one array
//! read and a compare per packet, and nothing else runs.
//!
//! Why a packet was passed or dropped is read off the counters it moved:
//! [`arm`] copies this CPU's counters aside, [`report`] names the ones
//! that changed, so no stage needs to know about tracing.
use nat_common::{
    Counter,
    nat64::is_stand_in,
    stats::COUNTER_COUNT,
    trace::{TRACE_DROPPED, TRACE_PASSED, TRACE_STASH, TRACE_TRANSLATED, TraceRecord, TraceTuple},
};

use crate::{
    clock,
    maps::{NAT64_IDS, STATS, TRACE, TRACE_FILTER, TRACE_SCRATCH},
    nat64,
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

/// [`arm`] for a program whose armed state must not live across the
/// NAT44 core (it doubles the verifier's walk of it): the tuple, the
/// protocol and the tracer's pid go into this CPU's scratch beside the
/// counters, for [`report_stashed`].
#[inline(always)]
pub fn arm_stashed<P: Packet>(p: &P) {
    let Some(a) = arm(p) else {
        return;
    };
    let (Some(f), Some(s)) = (TRACE_FILTER.get(0), TRACE_SCRATCH.get_ptr_mut(0)) else {
        return;
    };
    let b = &a.before;
    // SAFETY: this CPU's slot, only this program run writes it.
    unsafe {
        (*s)[TRACE_STASH] = f.tracer as u64 | (a.proto as u64) << 32;
        (*s)[TRACE_STASH + 1] = b.src as u64 | (b.dst as u64) << 32;
        (*s)[TRACE_STASH + 2] = b.sport as u64 | (b.dport as u64) << 16;
    }
}

/// [`report`] for [`arm_stashed`]: only while the trace that stashed
/// runs (its pid), once.
#[inline(always)]
pub fn report_stashed<P: Packet>(p: &P, program: u8, verdict: Verdict) {
    let (Some(f), Some(s)) = (TRACE_FILTER.get(0), TRACE_SCRATCH.get_ptr_mut(0)) else {
        return;
    };
    if f.tracer == 0 {
        return;
    }
    // SAFETY: this CPU's slot, written by `arm_stashed` in this run.
    let (w0, w1, w2) = unsafe {
        (
            (*s)[TRACE_STASH],
            (*s)[TRACE_STASH + 1],
            (*s)[TRACE_STASH + 2],
        )
    };
    if w0 as u32 != f.tracer {
        return;
    }
    // SAFETY: as above.
    unsafe { (*s)[TRACE_STASH] = 0 };
    let armed = Armed {
        proto: (w0 >> 32) as u8,
        before: TraceTuple {
            src: w1 as u32,
            dst: (w1 >> 32) as u32,
            sport: w2 as u16,
            dport: (w2 >> 16) as u16,
        },
    };
    report(p, &armed, program, verdict);
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
        host6: [0; 16],
        remote6: [0; 16],
    };
    nat64_addresses(&mut rec);
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

/// For a NAT64 packet (its stand-in the source before, or the destination
/// after), the IPv6 addresses its host's packets have: the host's from
/// `NAT64_IDS`, the remote's under the prefix. Read only while tracing.
#[inline(always)]
fn nat64_addresses(rec: &mut TraceRecord) {
    let (stand_in, remote) = if is_stand_in(rec.before.src) {
        (rec.before.src, rec.before.dst)
    } else if is_stand_in(rec.after.dst) {
        (rec.after.dst, rec.after.src)
    } else {
        return;
    };
    let Some(cfg) = nat64::config() else {
        return;
    };
    // SAFETY: plain copy out of the map.
    if let Some(h) = unsafe { NAT64_IDS.get(&stand_in) } {
        rec.host6 = h.addr;
        rec.remote6 = cfg.embed(remote.to_ne_bytes());
    }
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
