//! Records for the agent through the `EVENTS` ring buffer. Emitting never
//! waits: when the ring is full (the agent lags or is not running) the
//! record is dropped and counted (`events_lost`), and the packet goes on.
use aya_ebpf::{macros::map, maps::Array};
use nat_common::{BindingEvent, Counter, EVENT_BINDING_CREATED, EndpointKey, Mapping};

use crate::{counters, maps::EVENTS};

/// `1 << EVENT_*` bits of the optional events the agent wants (set while
/// it keeps a translation log). Port-exhaustion events are always sent.
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
