//! The agent's side of the `EVENTS` ring buffer: decoding records and
//! choosing which optional ones the data plane emits.
use std::path::Path;

use nat_common::{
    BindingEvent, EVENT_BINDING_CREATED, EVENT_HOST_CAP, EVENT_PORTS_EXHAUSTED, Event,
};

use crate::tables::Tables;

/// One record from the ring.
#[derive(Clone, Copy, Debug)]
pub enum Record {
    /// No public port left: answer ICMP code 13 with the quoted header.
    PortsExhausted(Event),
    /// A host at `--max-ports-per-host` was refused a new mapping.
    HostCap(Event),
    /// A mapping was made (translation log).
    BindingCreated(BindingEvent),
}

/// Reads a record; `None` for a short or unknown one (a newer data plane
/// may send kinds this agent does not know).
pub fn decode(bytes: &[u8]) -> Option<Record> {
    let kind = u32::from_ne_bytes(bytes.get(..4)?.try_into().ok()?);
    match kind {
        EVENT_PORTS_EXHAUSTED if bytes.len() >= size_of::<Event>() => {
            // SAFETY: length checked; Event is plain data, read unaligned.
            Some(Record::PortsExhausted(unsafe {
                std::ptr::read_unaligned(bytes.as_ptr().cast())
            }))
        }
        EVENT_HOST_CAP if bytes.len() >= size_of::<Event>() => {
            // SAFETY: as above.
            Some(Record::HostCap(unsafe {
                std::ptr::read_unaligned(bytes.as_ptr().cast())
            }))
        }
        EVENT_BINDING_CREATED if bytes.len() >= size_of::<BindingEvent>() => {
            // SAFETY: as above.
            Some(Record::BindingCreated(unsafe {
                std::ptr::read_unaligned(bytes.as_ptr().cast())
            }))
        }
        _ => None,
    }
}

/// Asks the data plane for binding events (`bindings`: a translation log
/// or IPFIX export) and host-cap events (`host_caps`: IPFIX export), or
/// stops them.
pub fn want(dir: &Path, bindings: bool, host_caps: bool) -> anyhow::Result<()> {
    let mut mask = Tables::at(dir).event_mask()?;
    let mut m = mask.get(&0, 0)?;
    for (kind, on) in [
        (EVENT_BINDING_CREATED, bindings),
        (EVENT_HOST_CAP, host_caps),
    ] {
        let bit = 1u32 << kind;
        m = if on { m | bit } else { m & !bit };
    }
    mask.set(0, m, 0)?;
    Ok(())
}

/// The refused packet's source address (network order) and protocol,
/// from the quoted IPv4 header.
pub fn quoted_source(ev: &Event) -> Option<(u32, u8)> {
    let q = ev
        .quote
        .get(..(ev.quote_len as usize).min(ev.quote.len()))?;
    let src = u32::from_ne_bytes(q.get(12..16)?.try_into().ok()?);
    Some((src, *q.get(9)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_by_kind_and_rejects_short_records() {
        let ev = BindingEvent {
            kind: EVENT_BINDING_CREATED,
            proto: 17,
            inside_port: 1234u16.to_be(),
            ..Default::default()
        };
        // SAFETY: plain data viewed as bytes.
        let bytes: [u8; 32] = unsafe { std::mem::transmute(ev) };
        match decode(&bytes) {
            Some(Record::BindingCreated(b)) => assert_eq!(b, ev),
            other => panic!("{other:?}"),
        }
        assert!(decode(&bytes[..20]).is_none());
        let mut unknown = bytes;
        unknown[0] = 99;
        assert!(decode(&unknown).is_none());
    }
}
