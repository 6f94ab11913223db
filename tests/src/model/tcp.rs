//! The TCP session states of RFC 6146 §3.5.2.2 (README "How NAPT
//! behaves"), written as a table of (state, segment) → state, apart from
//! the data plane's code. "Out" is the inside host's side.

use nat_common::{
    TCP_ESTABLISHED as EST, TCP_FIN_BOTH as FIN_BOTH, TCP_FIN_IN as FIN_IN, TCP_FIN_OUT as FIN_OUT,
    TCP_PICKUP_IN as PICKUP_IN, TCP_PICKUP_OUT as PICKUP_OUT, TCP_SYN_IN as SYN_IN,
    TCP_SYN_OUT as SYN_OUT, TCP_SYN_RECV as SYN_RECV, TCP_TRANSITORY as TRANS,
};

const FIN: u8 = 0x01;
const SYN: u8 = 0x02;
const RST: u8 = 0x04;
const ACK: u8 = 0x10;

/// What a segment is, for the state machine.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Seg {
    Rst,
    /// SYN without ACK: opens a handshake.
    Syn,
    /// SYN with ACK: answers one.
    SynAck,
    Fin,
    Other,
}

fn seg(flags: u8) -> Seg {
    if flags & RST != 0 {
        Seg::Rst
    } else if flags & SYN != 0 {
        if flags & ACK != 0 {
            Seg::SynAck
        } else {
            Seg::Syn
        }
    } else if flags & FIN != 0 {
        Seg::Fin
    } else {
        Seg::Other
    }
}

/// The state of a session whose first segment had `flags`.
pub fn opened(flags: u8, out: bool) -> u8 {
    match (seg(flags), out) {
        (Seg::Rst, _) => TRANS,
        (Seg::Syn | Seg::SynAck, true) => SYN_OUT,
        (Seg::Syn | Seg::SynAck, false) => SYN_IN,
        (_, true) => PICKUP_OUT,
        (_, false) => PICKUP_IN,
    }
}

/// The state after a segment with `flags` (`out`: from the inside).
pub fn after(state: u8, flags: u8, out: bool) -> u8 {
    let s = seg(flags);
    match (state, s, out) {
        (_, Seg::Rst, _) => TRANS,
        // Handshakes.
        (SYN_OUT, Seg::Syn | Seg::SynAck, false) => EST,
        (SYN_IN, Seg::Syn | Seg::SynAck, true) => SYN_RECV,
        (SYN_RECV, Seg::Fin | Seg::Other, false) => confirm_then_fin(s, out),
        (PICKUP_OUT, Seg::Fin | Seg::Other, false) => confirm_then_fin(s, out),
        (PICKUP_IN, Seg::Fin | Seg::Other, true) => confirm_then_fin(s, out),
        // A new handshake on a closed or unconfirmed 4-tuple.
        (FIN_BOTH | TRANS | PICKUP_OUT | PICKUP_IN, Seg::Syn, _) => opened(flags, out),
        // After an RST, any other segment: established again.
        (TRANS, Seg::SynAck | Seg::Other, _) => EST,
        (TRANS, Seg::Fin, _) => confirm_then_fin(s, out),
        // Closing.
        (EST, Seg::Fin, true) => FIN_OUT,
        (EST, Seg::Fin, false) => FIN_IN,
        (FIN_OUT, Seg::Fin, false) => FIN_BOTH,
        (FIN_IN, Seg::Fin, true) => FIN_BOTH,
        (s, _, _) => s,
    }
}

/// ESTABLISHED, then the segment's FIN if it has one.
fn confirm_then_fin(s: Seg, out: bool) -> u8 {
    match (s, out) {
        (Seg::Fin, true) => FIN_OUT,
        (Seg::Fin, false) => FIN_IN,
        _ => EST,
    }
}
