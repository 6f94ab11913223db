//! Records for the agent through the `EVENTS` ring buffer. Emitting never
//! waits: when the ring is full (the agent lags or is not running) the
//! record is dropped and counted (`events_lost`), and the packet goes on.
use aya_ebpf::{macros::map, maps::Array};
use nat_common::{
    BindingEvent, Counter, EVENT_BINDING_CREATED, EVENT_PORTS_EXHAUSTED, EVENT_QUOTE_MAX,
    EndpointKey, Event, Mapping,
};

use crate::{counters, maps::EVENTS, packet::Packet, parse::ipv4::Ipv4};

/// `1 << EVENT_*` bits of the optional events the agent wants (bindings
/// while it keeps a translation log, host caps while it exports IPFIX).
/// Port-exhaustion events are always sent.
#[map]
pub static EVENT_MASK: Array<u32> = Array::with_max_entries(1, 0);

/// Puts `ev` into the ring buffer or counts it as lost.
#[inline(always)]
pub fn emit<T: 'static>(ev: &T) {
    if EVENTS.output::<T>(ev, 0).is_err() {
        counters::bump(Counter::EventsLost);
    }
}

#[inline(always)]
fn wanted(kind: u32) -> bool {
    EVENT_MASK.get(0).is_some_and(|m| m & (1 << kind) != 0)
}

/// A new dynamic mapping of inside endpoint `inside` (translation log,
/// RFC 6888 REQ-12).
#[inline(always)]
pub fn binding_created(inside: &EndpointKey, public: &Mapping) {
    if !wanted(EVENT_BINDING_CREATED) {
        return;
    }
    emit(&BindingEvent {
        kind: EVENT_BINDING_CREATED,
        proto: inside.proto,
        _pad: [0; 3],
        inside_addr: inside.addr,
        public_addr: public.addr,
        inside_port: inside.port,
        public_port: public.port,
        _pad2: 0,
        time_ns: public.created,
    });
}

/// A new mapping refused: `kind` [`EVENT_PORTS_EXHAUSTED`] (always sent)
/// or `EVENT_HOST_CAP` (when wanted), with the pool address it would have
/// had and the cap reached. Hands the agent what it needs to answer ICMP
/// "administratively prohibited" (code 13) to the inside host and to log
/// the event: the IPv4 header and the first 8 bytes after it. Never
/// blocks: a full ring just loses the event.
#[inline(always)]
pub fn refused<P: Packet>(p: &P, ip: &Ipv4, kind: u32, public_addr: u32, limit: u32) {
    if kind != EVENT_PORTS_EXHAUSTED && !wanted(kind) {
        return;
    }
    let quote_len = ip.hlen + 8;
    let mut ev = Event {
        kind,
        quote_len,
        public_addr,
        limit,
        quote: [0; EVENT_QUOTE_MAX],
    };
    // hlen + 8 is a multiple of 4 between 28 and 68: copy it in 4-byte
    // words so a short packet with options is quoted exactly.
    let mut i = 0;
    while i < EVENT_QUOTE_MAX / 4 {
        let at = i * 4;
        if at as u32 >= quote_len {
            break;
        }
        let Some(w) = p.load::<[u8; 4]>(ip.off + at as u32) else {
            return;
        };
        ev.quote[at..at + 4].copy_from_slice(&w);
        i += 1;
    }
    emit(&ev);
}
