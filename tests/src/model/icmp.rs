//! ICMP errors (RFC 5508): the datagram an error quotes belongs to a
//! translated flow, so its header, port or identifier and checksums are
//! translated too, and the ICMP checksum over all of it.

use super::parse::{self, ICMP, Ip, TCP, UDP};
use super::rewrite::{Edit, Slot};

pub const ECHO_REPLY: u8 = 0;
pub const ECHO_REQUEST: u8 = 8;

/// Destination unreachable, time exceeded, parameter problem: the errors
/// xnat translates.
pub fn is_error(t: u8) -> bool {
    matches!(t, 3 | 11 | 12)
}

/// The quoted IPv4 header of the ICMP error carried by `outer`: it starts
/// after the 8-byte ICMP header and may not extend past the error's own
/// datagram.
pub fn embedded(frame: &[u8], outer: &Ip) -> Option<Ip> {
    parse::ipv4_at(frame, outer.l4() + 8, outer.end)
}

/// Which side of the quoted datagram is our host's.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    Src,
    Dst,
}

/// The quoted datagram's port on `side` (TCP/UDP) or its ICMP identifier,
/// with its offset, if quoted (and not a later fragment).
pub fn port(frame: &[u8], inner: &Ip, side: Side) -> Option<(usize, u16)> {
    if inner.later_fragment {
        return None;
    }
    let l4 = inner.l4();
    let at = match (inner.proto, side) {
        (TCP | UDP, Side::Src) => l4,
        (TCP | UDP, Side::Dst) => l4 + 2,
        (ICMP, _) => l4 + 4,
        _ => return None,
    };
    inner
        .has(at, 2)
        .then(|| (at, u16::from_ne_bytes([frame[at], frame[at + 1]])))
}

/// The quoted transport checksum, if the quote includes it.
fn quoted_l4(inner: &Ip) -> Option<Slot> {
    if inner.later_fragment {
        return None;
    }
    let l4 = inner.l4();
    let present = match inner.proto {
        TCP => inner.has(l4 + 16, 2),
        UDP => inner.has(l4 + 6, 2),
        ICMP => inner.has(l4 + 2, 2),
        _ => false,
    };
    present.then(|| Slot::transport(inner))
}

/// Adds to `edit` the translation of the quoted datagram: its `side`
/// address becomes `new_addr` and, for NAPT, the port or identifier at
/// `port.0` becomes `port.1`; the quoted IPv4 checksum and the quoted
/// transport checksum (when present) follow. The outer ICMP checksum is
/// the caller's (it must come after these).
pub fn translate_inner(
    edit: &mut Edit,
    inner: &Ip,
    side: Side,
    new_addr: u32,
    port: Option<(usize, u16)>,
) {
    edit.addr(
        inner.off + if side == Side::Src { 12 } else { 16 },
        new_addr,
    );
    if let Some((at, p)) = port {
        edit.port(at, p);
    }
    edit.fix(Slot::ip_header(inner));
    if let Some(slot) = quoted_l4(inner) {
        // A quoted ICMP checksum covers no address: with no identifier to
        // change it is left alone; TCP/UDP ones cover the pseudo-header.
        if inner.proto != ICMP || port.is_some() {
            edit.fix(slot);
        }
    }
}

/// Longest ICMP message whose checksum the data plane verifies (longer
/// inbound errors are dropped unverified).
pub const VERIFIED_MAX: usize = 1020;

/// RFC 5508 REQ-3: an inbound error is translated only with a valid ICMP
/// checksum over the whole message and a valid checksum in the quoted
/// IPv4 header.
pub fn checksums_valid(frame: &[u8], outer: &Ip, inner: &Ip) -> bool {
    let message = &frame[outer.l4()..outer.end];
    let header = &frame[inner.off..inner.off + inner.hlen];
    message.len() <= VERIFIED_MAX
        && super::csum::sum(message) == 0xffff
        && super::csum::sum(header) == 0xffff
}
