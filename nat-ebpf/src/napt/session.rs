//! Sessions (inside endpoint × remote endpoint): last-seen time, TCP state
//! bits and counters, plus the address-dependent filter entries. A
//! mapping's first session lives in the mapping (`Mapping::first`), the
//! others in `SESSIONS`.
use nat_common::{
    Counter, FILTER_ADDRESS, FilterKey, FirstSession, Mapping, NatConfig, SESSION_INBOUND, Session,
    SessionKey, pickup_refused, tcp_next, tcp_open,
};

use crate::{
    clock, counters,
    maps::{FILTER, INBOUND_SESSIONS, SESSIONS},
};

const BPF_NOEXIST: u64 = 1;

/// What a packet contributes to its session.
pub struct Touch {
    pub outbound: bool,
    pub bytes: u64,
    /// The segment's TCP flags, for TCP; `None` for UDP and ICMP (whose
    /// sessions have no state).
    pub tcp_flags: Option<u8>,
    /// The time, where the caller has read it already; otherwise it is read
    /// only if needed (inbound UDP and ICMP never refresh a session).
    pub now: Option<u64>,
}

impl Touch {
    /// The counters of a session this packet opens: `[packets_out,
    /// packets_in, bytes_out, bytes_in]`.
    #[inline(always)]
    fn opening_counts(&self) -> [u64; 4] {
        if self.outbound {
            [1, 0, self.bytes, 0]
        } else {
            [0, 1, 0, self.bytes]
        }
    }

    /// The TCP state of a session this packet opens (0 if not TCP).
    #[inline(always)]
    fn opening_state(&self) -> u8 {
        match self.tcp_flags {
            Some(flags) => tcp_open(flags, self.outbound),
            None => 0,
        }
    }

    /// Whether `--tcp-pickup off` refuses the session this packet would
    /// open: TCP without SYN.
    #[inline(always)]
    pub fn pickup_refused(&self, cfg: &NatConfig) -> bool {
        match self.tcp_flags {
            Some(flags) => pickup_refused(cfg, flags),
            None => false,
        }
    }

    #[inline(always)]
    fn now(&self) -> u64 {
        match self.now {
            Some(t) => t,
            None => clock::now(),
        }
    }
}

/// Where a packet's session lives.
#[derive(Clone, Copy)]
pub enum Slot {
    /// The mapping's first session (`Mapping::first`).
    First,
    /// An entry of `SESSIONS`.
    Table(*mut Session),
}

/// The session of `key` in mapping `m`, if there is one: the first
/// session when it has this remote endpoint, else `SESSIONS`.
#[inline(always)]
pub fn find(m: *const Mapping, key: &SessionKey) -> Option<Slot> {
    // SAFETY: `m` points at a map value; plain reads.
    if unsafe { (*m).first_is(key.remote_addr, key.remote_port) } {
        return Some(Slot::First);
    }
    SESSIONS.get_ptr_mut(key).map(Slot::Table)
}

/// Counts a packet on the fields of a session, wherever it lives.
macro_rules! count {
    ($s:expr, $t:expr) => {
        // Outbound traffic refreshes every session (RFC 4787 REQ-6);
        // inbound refreshes TCP sessions only: an established connection
        // is alive whichever side talks (RFC 5382).
        if $t.outbound || $t.tcp_flags.is_some() {
            $s.last_seen = $t.now();
        }
        if $t.outbound {
            $s.packets_out += 1;
            $s.bytes_out += $t.bytes;
        } else {
            $s.packets_in += 1;
            $s.bytes_in += $t.bytes;
        }
        if let Some(flags) = $t.tcp_flags {
            $s.tcp = tcp_next($s.tcp, flags, $t.outbound);
        }
    };
}

/// Counts a packet on the existing session [`find`] returned for mapping
/// `m`.
#[inline(always)]
pub fn refresh(m: *mut Mapping, slot: Slot, t: &Touch) {
    // SAFETY: the values live in the maps; racing CPUs may lose a count or
    // a timestamp, never corrupt an entry.
    unsafe {
        match slot {
            Slot::First => {
                let s = &mut (*m).first;
                count!(s, t);
            }
            Slot::Table(s) => {
                let s = &mut *s;
                count!(s, t);
            }
        }
    }
}

/// The first session of a mapping its first packet creates.
#[inline(always)]
pub fn first(remote_addr: u32, remote_port: u16, t: &Touch, now: u64) -> FirstSession {
    let [packets_out, packets_in, bytes_out, bytes_in] = t.opening_counts();
    FirstSession {
        remote_addr,
        remote_port,
        tcp: t.opening_state(),
        live: 1,
        last_seen: now,
        packets_out,
        packets_in,
        bytes_out,
        bytes_in,
    }
}

/// Creates the session of `key` in `SESSIONS` for a mapping whose public
/// endpoint is `public_addr`:`public_port`; `Err` with the drop reason
/// when the table is full, when an inbound packet would exceed
/// `--max-inbound-sessions`, or when a TCP segment without SYN would open
/// it under `--tcp-pickup off`.
#[inline(always)]
pub fn create(
    cfg: &NatConfig,
    key: &SessionKey,
    public_addr: u32,
    public_port: u16,
    t: &Touch,
) -> Result<(), Counter> {
    if t.pickup_refused(cfg) {
        return Err(Counter::DropTcpNoSyn);
    }
    let inbound_count = if t.outbound {
        None
    } else {
        let slot = INBOUND_SESSIONS.get_ptr_mut(0);
        if let Some(n) = slot {
            // SAFETY: the value lives in the map; plain read.
            let live = unsafe { *n };
            if cfg.max_inbound_sessions != 0 && live >= cfg.max_inbound_sessions as u64 {
                return Err(Counter::DropInboundSessionLimit);
            }
        }
        slot
    };
    let now = t.now();
    let [packets_out, packets_in, bytes_out, bytes_in] = t.opening_counts();
    let s = Session {
        created: now,
        last_seen: now,
        packets_out,
        packets_in,
        bytes_out,
        bytes_in,
        public_addr,
        public_port,
        tcp: t.opening_state(),
        flags: if t.outbound { 0 } else { SESSION_INBOUND },
    };
    match SESSIONS.insert(key, s, BPF_NOEXIST) {
        Ok(()) => {
            counters::bump(Counter::NaptSessionsCreated);
            if let Some(n) = inbound_count {
                // SAFETY: the value lives in the map. No atomic add on this
                // target: two CPUs may lose an increment, which the agent's
                // recount at the next sweep puts right (the cap is soft by
                // that much for a moment).
                unsafe { *n += 1 };
            }
            Ok(())
        }
        // Created by another CPU meanwhile: fine.
        Err(-17) => Ok(()), // -EEXIST
        Err(_) => Err(Counter::DropSessionTableFull),
    }
}

/// Records that the mapping `m` sent to `remote_addr`, for
/// address-dependent filtering. A packet of the first session (`slot`, as
/// [`find`] found it) needs no entry: the mapping admits that session's
/// address itself while it lives.
#[inline(always)]
pub fn note_remote(
    cfg: &NatConfig,
    m: &Mapping,
    slot: Option<Slot>,
    proto: u8,
    remote_addr: u32,
    now: u64,
) {
    if cfg.filtering != FILTER_ADDRESS || matches!(slot, Some(Slot::First)) {
        return;
    }
    let key = FilterKey {
        public_addr: m.addr,
        remote_addr,
        public_port: m.port,
        proto,
        _pad: 0,
    };
    // Refresh in place when the entry exists: an update through the map
    // (bucket lock, element swap) on every outbound packet costs as much
    // as the rest of the translation.
    match FILTER.get_ptr_mut(key) {
        // SAFETY: the value lives in the map; a racing write of the same
        // timestamp is harmless.
        Some(last) => unsafe { *last = now },
        None => {
            let _ = FILTER.insert(key, now, 0);
        }
    }
}
