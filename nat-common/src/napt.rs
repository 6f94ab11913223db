//! Dynamic NAPT state: configuration, endpoint-independent mappings,
//! per-remote sessions and address-dependent filter entries.
//!
//! A mapping is one entry in `NAPT_OUT` (inside endpoint → [`Mapping`]:
//! the public endpoint) and its mirror in `NAPT_IN` (public endpoint →
//! [`InsideEndpoint`]). Sessions (one per inside endpoint × remote endpoint)
//! carry the TCP state, last-seen time and counters. The session whose
//! packet created a mapping is held inside the mapping itself
//! ([`Mapping::first`]); only a mapping's further sessions take entries in
//! `SESSIONS`. Most mappings only ever have that one session (a TCP
//! connection, a DNS query), so a binding usually costs two hash entries,
//! not four: the kernel spends 64 B of header and bucket on every entry,
//! whatever it holds.
//!
//! The agent expires sessions (the first one by clearing
//! [`FirstSession::live`]) and drops a mapping once it has no session left
//! and has been idle for its timeout. Port forwards are mappings flagged
//! [`MAPPING_FORWARD`]: never expired, admitted from any remote; their
//! sessions all live in `SESSIONS`.

/// Configuration (single-entry array).
pub const MAP_CONFIG: &str = "CONFIG";
/// Public addresses of the pool (array indexed 0..pool_len).
pub const MAP_POOL: &str = "POOL";
/// Inside prefixes whose sources are translated (LPM trie). The value
/// numbers the prefix's hosts for deterministic allocation
/// (`deterministic::host_offset`, whatever the allocation in force).
pub const MAP_INTERNAL: &str = "INTERNAL";
/// Inside endpoint → public endpoint and first session ([`Mapping`]).
pub const MAP_NAPT_OUT: &str = "NAPT_OUT";
/// Public endpoint → inside endpoint ([`InsideEndpoint`]).
pub const MAP_NAPT_IN: &str = "NAPT_IN";
/// Inside endpoint × remote endpoint → session, for every session but a
/// mapping's first (not preallocated: most mappings have none here).
pub const MAP_SESSIONS: &str = "SESSIONS";
/// Public endpoint × remote address → last seen (address-dependent
/// filtering), for remote addresses other than the first session's (which
/// admits its own address). Not preallocated.
pub const MAP_FILTER: &str = "FILTER";
/// Inside address → public ports it holds (for `--max-ports-per-host`).
pub const MAP_HOST_PORTS: &str = "HOST_PORTS";
/// Inside host → the pool address its mappings use (paired pooling, RFC
/// 4787 REQ-2) where that is not [`pool_index`]'s choice: a host's address
/// is the hash's over the pool until a reload changes the pool (which
/// moves the hash's choice); then the agent pins here every host that
/// holds bindings on another address, so it keeps it, and sets
/// [`NatConfig::pinned_hosts`] so the data plane looks here (otherwise a
/// new binding needs no lookup and no insert). The agent deletes the
/// entries of hosts that held no mapping at two sweeps in a row. Not
/// preallocated; [`MAX_HOSTS`] entries at most (hosts beyond that fall
/// back to the hash alone).
pub const MAP_HOST_POOL: &str = "HOST_POOL";
/// Single-entry array: live sessions created by inbound packets (those
/// with [`SESSION_INBOUND`]), for [`NatConfig::max_inbound_sessions`]. The
/// data plane adds one per session it creates from an inbound packet; the
/// agent sets it to what it counted at every sweep (so expiries, and
/// increments two CPUs raced on, never leave it drifting).
pub const MAP_INBOUND_SESSIONS: &str = "INBOUND_SESSIONS";
/// Ring buffer of events for the agent (port exhaustion → ICMP code 13).
pub const MAP_EVENTS: &str = "EVENTS";
/// IPv4 datagrams being fragmented through the NAT: the address
/// translation their first fragment decided, for the later fragments
/// (LRU-bounded; entries older than [`FRAG_TIMEOUT_NS`] are ignored). One
/// table per direction (by [`FragKey::inbound`]), [`FRAGS_MAX`] entries
/// each: first fragments from the outside, which anyone can send, then
/// only ever evict each other, never the inside hosts' datagrams.
pub const MAP_FRAGS_OUT: &str = "FRAGS_OUT";
pub const MAP_FRAGS_IN: &str = "FRAGS_IN";
pub const FRAGS_MAX: u32 = 8192;
/// Later fragments that arrived before their first fragment, held (TC
/// only) until it comes: at most this many per direction, LRU-evicted,
/// released only within [`FRAG_TIMEOUT_NS`]. One table per direction
/// (by [`FragKey::inbound`]), so stray fragments from the outside never
/// evict the inside hosts' held fragments.
pub const MAP_FRAG_HOLD_OUT: &str = "FRAG_HOLD_OUT";
pub const MAP_FRAG_HOLD_IN: &str = "FRAG_HOLD_IN";
pub const FRAG_HOLD_MAX: u32 = 256;
/// Held fragments per datagram.
pub const FRAG_HOLD_SLOTS: u32 = 8;
/// Bytes of one held fragment (its whole IPv4 datagram part).
pub const FRAG_HOLD_BYTES: usize = 1520;
/// Per-CPU scratch space for copying a fragment into a hold table, or an
/// inbound ICMP error whose checksums are verified.
pub const MAP_FRAG_SCRATCH: &str = "FRAG_SCRATCH";
/// How long a datagram's later fragments are translated after its first
/// (the reassembly timeout of RFC 791 is 15 s; Linux uses 30 s).
pub const FRAG_TIMEOUT_NS: u64 = 30_000_000_000;

pub const POOL_MAX: u32 = 64;
pub const INTERNAL_MAX: u32 = 256;
pub const DEFAULT_MAX_MAPPINGS: u32 = 131_072;
pub const DEFAULT_MAX_SESSIONS: u32 = 262_144;
/// Capacity of `HOST_PORTS` (one entry per inside host holding a mapping,
/// while `--max-ports-per-host` is on): the mapping capacity, capped here.
/// The table is not preallocated, so the cap only bounds its bucket array
/// (16 B per slot); hosts beyond it are not counted and so not capped.
pub const MAX_HOSTS: u32 = 65_536;

/// The pool slot (0..`pool_len`) a host with no pool address yet gets:
/// Fibonacci hashing of its host-order address, reduced by the top bits
/// of the product (multiply-shift), so consecutive inside addresses spread
/// evenly over a pool of any size. (The low product bits of a
/// network-order address depend only on its first octets.)
#[inline(always)]
pub fn pool_index(inside_addr: u32, pool_len: u32) -> u32 {
    let h = u32::from_be(inside_addr).wrapping_mul(0x9e37_79b9);
    ((h as u64 * pool_len as u64) >> 32) as u32
}

/// Entries of `HOST_PORTS` for a mapping table of `max_mappings`.
pub const fn host_ports_entries(max_mappings: u32) -> u32 {
    if max_mappings < MAX_HOSTS {
        max_mappings
    } else {
        MAX_HOSTS
    }
}
pub const EVENTS_BYTES: u32 = 64 * 1024;

/// `NatConfig::filtering` values (RFC 4787 §5).
pub const FILTER_ENDPOINT_INDEPENDENT: u32 = 0;
pub const FILTER_ADDRESS: u32 = 1;
pub const FILTER_ADDRESS_AND_PORT: u32 = 2;

#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NatConfig {
    /// Number of valid entries in `POOL`; 0 disables NAPT.
    pub pool_len: u32,
    /// One of the `FILTER_*` values.
    pub filtering: u32,
    /// Port range for public ports and ICMP identifiers (host order).
    pub port_min: u16,
    pub port_max: u16,
    /// Cap on public ports per inside host; 0 = no cap.
    pub max_ports_per_host: u32,
    /// Idle timeouts in seconds. The kernel ignores them; they live here so
    /// every `xnat` command (and a restarted agent) sees the ones in force.
    pub timeout_udp: u32,
    pub timeout_tcp_established: u32,
    pub timeout_tcp_transitory: u32,
    pub timeout_icmp: u32,
    /// Lifetime of a TCP session opened from outside whose handshake has
    /// not completed ([`TCP_SYN_IN`], [`TCP_SYN_RECV`], [`TCP_PICKUP_IN`]):
    /// short, so spoofed SYNs to a port forward do not hold sessions for
    /// long (conntrack's SYN_RECV lifetime is 60 s too).
    pub timeout_tcp_syn_in: u32,
    /// Cap on live sessions created by inbound packets (port forwards,
    /// endpoint-independent filtering), so a flood from outside cannot
    /// take the whole session table from the inside hosts. The data plane
    /// counts them in `INBOUND_SESSIONS`; the agent recounts every sweep.
    pub max_inbound_sessions: u32,
    /// Whether `HOST_POOL` is in use, one of `PINNED_*`: hosts pinned to
    /// a pool address other than the hash's (after a pool change), or the
    /// data plane recording every new host's address while a pool change
    /// is being applied. State, not a setting: only reconcile writes it.
    pub pinned_hosts: u32,
    /// How new mappings get their public endpoint, one of the
    /// `ALLOCATION_*` values (`deterministic`).
    pub allocation: u32,
    /// Deterministic allocation: inside hosts sharing one pool address,
    /// and the ports of each (`deterministic::Layout`).
    pub det_hosts_per_addr: u32,
    pub det_ports_per_host: u32,
    /// Port block allocation (`blocks`): ports per block, blocks one host
    /// may hold, and seconds an unused block is kept before the agent
    /// releases it.
    pub block_size: u32,
    pub max_blocks_per_host: u32,
    pub block_hold_down: u32,
    /// Whether a TCP segment without SYN may open a session (mid-stream
    /// pickup, [`TCP_PICKUP_OUT`]/[`TCP_PICKUP_IN`]): one of the
    /// `TCP_PICKUP_*` values (`--tcp-pickup`). Also keeps the size a
    /// multiple of 8 (`ExpireWalk` embeds it before u64s).
    pub tcp_pickup: u32,
}

/// [`NatConfig::tcp_pickup`]: a TCP segment without SYN that finds no
/// session opens one in PICKUP_OUT/PICKUP_IN (a connection survives a
/// failover or a reboot of the gateway). The default (0, so a zeroed
/// CONFIG means it).
pub const TCP_PICKUP_ON: u32 = 0;
/// [`NatConfig::tcp_pickup`]: only a SYN opens a TCP session (RFC 6146's
/// V6/V4 INIT); a segment without SYN that would open a mapping or a
/// session is dropped (`drop_tcp_no_syn`).
pub const TCP_PICKUP_OFF: u32 = 1;

/// Whether `cfg` refuses a TCP session that a segment with `flags` would
/// open: pickup is off and the segment has no SYN (an ACK, data, a FIN or
/// an RST alone). Asked only where a session would be made.
#[inline(always)]
pub fn pickup_refused(cfg: &NatConfig, flags: u8) -> bool {
    cfg.tcp_pickup == TCP_PICKUP_OFF && flags & TH_SYN == 0
}

/// [`NatConfig::pinned_hosts`]: every host's pool address is the hash's;
/// a new binding looks nothing up.
pub const PINNED_NONE: u32 = 0;
/// Hosts may be pinned in `HOST_POOL`: a new binding looks there first.
pub const PINNED_LOOKUP: u32 = 1;
/// A pool change is under way: as [`PINNED_LOOKUP`], and a host that is
/// not pinned is pinned to the address the hash gives it now, so no
/// binding made while the agent pins the live hosts slips through.
pub const PINNED_RECORDING: u32 = 2;

/// Default idle timeouts (seconds): RFC 4787 REQ-5 (UDP ≥ 2 min, 5 min
/// recommended), RFC 5382 REQ-5 (TCP established ≥ 2 h 4 min, transitory
/// 4 min), RFC 5508 REQ-2 (ICMP query 60 s).
pub const DEFAULT_TIMEOUT_UDP: u32 = 300;
pub const DEFAULT_TIMEOUT_TCP_ESTABLISHED: u32 = 7440;
pub const DEFAULT_TIMEOUT_TCP_TRANSITORY: u32 = 240;
pub const DEFAULT_TIMEOUT_ICMP: u32 = 60;
/// Inbound-opened TCP handshakes: conntrack's SYN_RECV lifetime.
pub const DEFAULT_TIMEOUT_TCP_SYN_IN: u32 = 60;

/// The default `max_inbound_sessions` for a session table of
/// `max_sessions`: half of it stays for sessions the inside opens.
pub const fn default_max_inbound_sessions(max_sessions: u32) -> u32 {
    max_sessions / 2
}

impl NatConfig {
    /// Idle timeout in seconds of a session of `proto` in TCP state `tcp`.
    pub fn session_timeout(&self, proto: u8, tcp: u8) -> u32 {
        match proto {
            6 => match tcp_lifetime(tcp) {
                TcpLifetime::Established => self.timeout_tcp_established,
                TcpLifetime::SynIn => self.timeout_tcp_syn_in,
                TcpLifetime::Transitory => self.timeout_tcp_transitory,
            },
            17 => self.timeout_udp,
            _ => self.timeout_icmp,
        }
    }

    /// Idle timeout in seconds of a mapping of `proto` with no session
    /// left.
    pub fn mapping_timeout(&self, proto: u8) -> u32 {
        match proto {
            6 => self.timeout_tcp_transitory,
            17 => self.timeout_udp,
            _ => self.timeout_icmp,
        }
    }
}

/// An endpoint of a mapping: `NAPT_OUT` keys are inside endpoints,
/// `NAPT_IN` keys public ones. For ICMP queries `port` is the identifier.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct EndpointKey {
    /// Network order, as in the packet.
    pub addr: u32,
    /// Network order, as in the packet.
    pub port: u16,
    pub proto: u8,
    pub _pad: u8,
}

/// `NAPT_OUT` value: the public endpoint of a mapping, and the mapping's
/// first session.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Mapping {
    /// Public address and port (network order).
    pub addr: u32,
    pub port: u16,
    /// `MAPPING_*` flags.
    pub flags: u16,
    /// CLOCK_BOOTTIME ns (read once per tick, see nat-ebpf session::now) of
    /// creation and of the last outbound packet.
    pub created: u64,
    pub last_seen: u64,
    /// The session whose packet created the mapping (created with it, at
    /// `created`). Once it expires its slot stays empty: later sessions go
    /// to `SESSIONS`, so no two CPUs ever race to fill it.
    pub first: FirstSession,
}

/// A mapping's first session, held in the mapping (see [`Mapping::first`]).
/// The same fields as a [`Session`], less what the mapping holds already.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FirstSession {
    /// The remote endpoint (network order; port 0 for ICMP queries).
    pub remote_addr: u32,
    pub remote_port: u16,
    /// TCP state (`TCP_*`, 0 for UDP/ICMP).
    pub tcp: u8,
    /// 1 while this slot holds a session; 0 once it expired, and for port
    /// forwards (made without a packet).
    pub live: u8,
    pub last_seen: u64,
    pub packets_out: u64,
    pub packets_in: u64,
    pub bytes_out: u64,
    pub bytes_in: u64,
}

impl Mapping {
    /// Whether the first session is live and has this remote endpoint.
    #[inline(always)]
    pub fn first_is(&self, remote_addr: u32, remote_port: u16) -> bool {
        self.first.live != 0
            && self.first.remote_addr == remote_addr
            && self.first.remote_port == remote_port
    }

    /// The first session in the form `SESSIONS` holds sessions, if it is
    /// live (`inside` is the mapping's `NAPT_OUT` key).
    pub fn first_session(&self, inside: &EndpointKey) -> Option<(SessionKey, Session)> {
        if self.first.live == 0 {
            return None;
        }
        let f = &self.first;
        Some((
            SessionKey {
                inside_addr: inside.addr,
                remote_addr: f.remote_addr,
                inside_port: inside.port,
                remote_port: f.remote_port,
                proto: inside.proto,
                _pad: [0; 3],
            },
            Session {
                created: self.created,
                last_seen: f.last_seen,
                packets_out: f.packets_out,
                packets_in: f.packets_in,
                bytes_out: f.bytes_out,
                bytes_in: f.bytes_in,
                public_addr: self.addr,
                public_port: self.port,
                tcp: f.tcp,
                flags: 0,
            },
        ))
    }
}

/// `NAPT_IN` value: the inside endpoint behind a public one.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct InsideEndpoint {
    /// Network order, as in the packet.
    pub addr: u32,
    pub port: u16,
    /// `MAPPING_*` flags (the same as the mapping's).
    pub flags: u16,
}

impl InsideEndpoint {
    /// The `NAPT_OUT` key of this endpoint for protocol `proto`.
    #[inline(always)]
    pub fn key(&self, proto: u8) -> EndpointKey {
        EndpointKey {
            addr: self.addr,
            port: self.port,
            proto,
            _pad: 0,
        }
    }
}

/// A port forward (`xnat forward add`): admitted from any remote, never
/// expired.
pub const MAPPING_FORWARD: u16 = 1;
/// A mapping learned from a peer gateway (binding sync, `--sync-peer`), in
/// the flags of both its `NAPT_OUT` and `NAPT_IN` entries: the inside host
/// made it through the peer, so its sessions are not known here. A TCP
/// segment without SYN to it continues a connection the inside host has and
/// is admitted whatever the filtering (after a failover the server may speak
/// first); a SYN, UDP or ICMP is filtered as for any mapping. It lives as a
/// mapping without sessions does (its mapping timeout) unless the peer
/// announces it again or packets use it.
pub const MAPPING_PEER: u16 = 2;

#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct SessionKey {
    pub inside_addr: u32,
    pub remote_addr: u32,
    pub inside_port: u16,
    pub remote_port: u16,
    pub proto: u8,
    pub _pad: [u8; 3],
}

impl SessionKey {
    /// The key of a session, padding zeroed. Built as whole words: a
    /// struct literal's 3-byte zero pad becomes a call to a `memset`
    /// subprogram in BPF, once per packet.
    #[inline(always)]
    pub fn new(
        inside_addr: u32,
        remote_addr: u32,
        inside_port: u16,
        remote_port: u16,
        proto: u8,
    ) -> Self {
        /// `SessionKey`'s layout with the protocol and its pad as one word.
        #[repr(C)]
        struct Words {
            inside_addr: u32,
            remote_addr: u32,
            inside_port: u16,
            remote_port: u16,
            proto_and_pad: u32,
        }
        let words = Words {
            inside_addr,
            remote_addr,
            inside_port,
            remote_port,
            proto_and_pad: u32::from_ne_bytes([proto, 0, 0, 0]),
        };
        // SAFETY: same size, alignment and field offsets (both repr(C));
        // every byte is initialised and any bytes are a valid SessionKey.
        unsafe { core::mem::transmute::<Words, SessionKey>(words) }
    }
}

#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Session {
    pub created: u64,
    pub last_seen: u64,
    pub packets_out: u64,
    pub packets_in: u64,
    pub bytes_out: u64,
    pub bytes_in: u64,
    pub public_addr: u32,
    pub public_port: u16,
    /// TCP state (`TCP_*`, 0 for UDP/ICMP).
    pub tcp: u8,
    /// `SESSION_*` flags.
    pub flags: u8,
}

/// The session was created by an inbound packet (counted against
/// [`NatConfig::max_inbound_sessions`]).
pub const SESSION_INBOUND: u8 = 1;

/// TCP session states (RFC 6146 §3.5.2.2, the state machine RFC 7857
/// §2.1 points NAT44 to), held in a session's `tcp` byte. "Out" is the
/// inside host's side, "in" the remote's. 0 is not a TCP state (UDP and
/// ICMP sessions).
///
/// An outbound SYN opens SYN_OUT (RFC 6146 "V6 INIT"); a SYN back makes it
/// ESTABLISHED. A SYN from outside (port forward, endpoint-independent
/// filtering) opens SYN_IN ("V4 INIT"); the inside's SYN-ACK moves it to
/// SYN_RECV and only the opener's next segment to ESTABLISHED, so a
/// spoofed SYN that the inside server answers never gets the established
/// lifetime. A FIN from one side (FIN_OUT, FIN_IN) keeps the established
/// lifetime: a half-closed connection may go on for hours; FINs from both
/// sides (FIN_BOTH) and any RST (TRANSITORY) give the transitory one, and
/// in TRANSITORY any segment but an RST or a new handshake's SYN returns
/// the session to ESTABLISHED (a spoofed RST cannot cut a connection
/// short). Sessions picked up mid-stream (their first segment was no SYN,
/// e.g. state lost in a reboot) wait in PICKUP_OUT/PICKUP_IN until the
/// other side answers.
pub const TCP_SYN_OUT: u8 = 1;
pub const TCP_SYN_IN: u8 = 2;
pub const TCP_SYN_RECV: u8 = 3;
pub const TCP_ESTABLISHED: u8 = 4;
pub const TCP_FIN_OUT: u8 = 5;
pub const TCP_FIN_IN: u8 = 6;
pub const TCP_FIN_BOTH: u8 = 7;
pub const TCP_TRANSITORY: u8 = 8;
pub const TCP_PICKUP_OUT: u8 = 9;
pub const TCP_PICKUP_IN: u8 = 10;

/// TCP header flag bits (byte 13 of the header).
pub const TH_FIN: u8 = 0x01;
pub const TH_SYN: u8 = 0x02;
pub const TH_RST: u8 = 0x04;
pub const TH_ACK: u8 = 0x10;

/// The state a session opened by a segment with `flags` starts in.
#[inline(always)]
pub fn tcp_open(flags: u8, outbound: bool) -> u8 {
    if flags & TH_RST != 0 {
        TCP_TRANSITORY
    } else if flags & TH_SYN != 0 {
        if outbound { TCP_SYN_OUT } else { TCP_SYN_IN }
    } else if outbound {
        TCP_PICKUP_OUT
    } else {
        TCP_PICKUP_IN
    }
}

/// The state after a segment with `flags` in direction `outbound` reaches
/// a session in state `state`.
#[inline(always)]
pub fn tcp_next(state: u8, flags: u8, outbound: bool) -> u8 {
    // Nearly every segment: data or an ACK on an established connection,
    // which changes nothing (one test instead of the walk below).
    if state == TCP_ESTABLISHED && flags & (TH_SYN | TH_FIN | TH_RST) == 0 {
        return state;
    }
    if flags & TH_RST != 0 {
        return TCP_TRANSITORY;
    }
    if flags & TH_SYN != 0 {
        // A pure SYN (no ACK) on a closed or unconfirmed session is a new
        // handshake on the same 4-tuple.
        let new_handshake = flags & TH_ACK == 0;
        return match state {
            TCP_SYN_OUT if !outbound => TCP_ESTABLISHED,
            TCP_SYN_IN if outbound => TCP_SYN_RECV,
            TCP_FIN_BOTH | TCP_TRANSITORY | TCP_PICKUP_OUT | TCP_PICKUP_IN if new_handshake => {
                tcp_open(flags, outbound)
            }
            TCP_TRANSITORY => TCP_ESTABLISHED,
            s => s,
        };
    }
    // Neither SYN nor RST: confirms what was waiting for the other side.
    let state = match state {
        TCP_SYN_RECV | TCP_PICKUP_OUT if !outbound => TCP_ESTABLISHED,
        TCP_PICKUP_IN if outbound => TCP_ESTABLISHED,
        TCP_TRANSITORY => TCP_ESTABLISHED,
        s => s,
    };
    if flags & TH_FIN == 0 {
        return state;
    }
    match state {
        TCP_ESTABLISHED if outbound => TCP_FIN_OUT,
        TCP_ESTABLISHED => TCP_FIN_IN,
        TCP_FIN_OUT if !outbound => TCP_FIN_BOTH,
        TCP_FIN_IN if outbound => TCP_FIN_BOTH,
        s => s,
    }
}

/// Which lifetime a TCP state has.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TcpLifetime {
    /// `tcp-established`: ESTABLISHED and the half-closed states.
    Established,
    /// `tcp-syn-in`: inbound-opened, handshake not complete.
    SynIn,
    /// `tcp-transitory`: everything else.
    Transitory,
}

pub fn tcp_lifetime(state: u8) -> TcpLifetime {
    match state {
        TCP_ESTABLISHED | TCP_FIN_OUT | TCP_FIN_IN => TcpLifetime::Established,
        TCP_SYN_IN | TCP_SYN_RECV | TCP_PICKUP_IN => TcpLifetime::SynIn,
        _ => TcpLifetime::Transitory,
    }
}

/// The name `xnat flows` shows for a TCP state.
pub fn tcp_state_name(state: u8) -> &'static str {
    match state {
        TCP_SYN_OUT => "SYN_OUT",
        TCP_SYN_IN => "SYN_IN",
        TCP_SYN_RECV => "SYN_RECV",
        TCP_ESTABLISHED => "ESTABLISHED",
        TCP_FIN_OUT => "FIN_OUT",
        TCP_FIN_IN => "FIN_IN",
        TCP_FIN_BOTH => "FIN_BOTH",
        TCP_TRANSITORY => "TRANSITORY",
        TCP_PICKUP_OUT => "PICKUP_OUT",
        TCP_PICKUP_IN => "PICKUP_IN",
        _ => "UNKNOWN",
    }
}

#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct FilterKey {
    pub public_addr: u32,
    pub remote_addr: u32,
    pub public_port: u16,
    pub proto: u8,
    pub _pad: u8,
}

/// A fragmented datagram, by its untranslated header fields.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct FragKey {
    pub src: u32,
    pub dst: u32,
    /// IP identification, network order.
    pub id: u16,
    pub proto: u8,
    /// 0 outbound (source translated), 1 inbound (destination).
    pub inbound: u8,
}

#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FragValue {
    /// The address the first fragment's translated field became.
    pub new_addr: u32,
    pub _pad: u32,
    /// When the first fragment was translated (CLOCK_BOOTTIME ns).
    pub seen: u64,
}

#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct HoldKey {
    pub frag: FragKey,
    pub slot: u32,
}

#[repr(C)]
#[derive(Clone, Copy)]
pub struct HeldFragment {
    pub seen: u64,
    /// Valid bytes in `data` (IPv4 header onwards).
    pub len: u32,
    pub _pad: u32,
    pub data: [u8; FRAG_HOLD_BYTES],
}

/// LPM trie key data for `INTERNAL` (the address, network order).
pub type InternalPrefix = u32;

/// Event kinds in the `EVENTS` ring buffer. Every record starts with its
/// kind (a `u32`), so the reader can tell them apart.
/// No public port left for a new mapping ([`Event`]); always emitted (the
/// agent answers ICMP 3/13).
pub const EVENT_PORTS_EXHAUSTED: u32 = 1;
/// A dynamic mapping was created ([`BindingEvent`]); emitted only while bit
/// `1 << EVENT_BINDING_CREATED` is set in `EVENT_MASK` (the agent sets it
/// when it keeps a translation log).
pub const EVENT_BINDING_CREATED: u32 = 2;
/// A host holds `--max-ports-per-host` ports and a new mapping was refused
/// ([`Event`], `limit` the cap); emitted only while bit
/// `1 << EVENT_HOST_CAP` is set in `EVENT_MASK` (the agent sets it while
/// it exports IPFIX: RFC 8158's quota-exceeded event).
pub const EVENT_HOST_CAP: u32 = 3;
/// Bytes of the offending datagram carried in an event: the IPv4 header
/// (up to 60 bytes) and the first 8 bytes of its payload, what an ICMP error
/// must quote (RFC 792).
pub const EVENT_QUOTE_MAX: usize = 68;

#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct Event {
    pub kind: u32,
    /// Valid bytes in `quote`.
    pub quote_len: u32,
    /// The pool address the new mapping would have had (network order; 0
    /// where none is known: a host the deterministic layout does not reach).
    pub public_addr: u32,
    /// [`EVENT_HOST_CAP`]: the cap the host reached.
    pub limit: u32,
    pub quote: [u8; EVENT_QUOTE_MAX],
}

/// A binding (mapping) made by the data plane, for the translation log
/// (RFC 6888 REQ-12). Addresses and ports in network order, as in packets.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BindingEvent {
    /// [`EVENT_BINDING_CREATED`].
    pub kind: u32,
    pub proto: u8,
    pub _pad: [u8; 3],
    pub inside_addr: u32,
    pub public_addr: u32,
    pub inside_port: u16,
    pub public_port: u16,
    pub _pad2: u32,
    /// CLOCK_BOOTTIME ns, equal to the mapping's `created`.
    pub time_ns: u64,
}

/// The in-kernel expiry walk (`xnat_expire`, run by the agent with
/// BPF_PROG_TEST_RUN; nat-ebpf expire.rs): its input and what it did.
/// Single-entry array.
pub const MAP_EXPIRE: &str = "EXPIRE";
/// Inside endpoints ([`EndpointKey`], value unused) that hold a live
/// session in `SESSIONS`: the walk keeps their mappings whatever their
/// own idle time. Filled by the agent before a walk and emptied after it
/// (usually nothing: most mappings hold their only session themselves).
pub const MAP_EXPIRE_KEEP: &str = "EXPIRE_KEEP";
/// Capacity of `EXPIRE_KEEP`; a sweep with more such endpoints walks in
/// user space.
pub const EXPIRE_KEEP_MAX: u32 = 65_536;

#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ExpireWalk {
    /// In: the timeouts to apply (the sweep's, which are CONFIG's).
    pub cfg: NatConfig,
    /// In: entries in `EXPIRE_KEEP` (0: the walk looks nothing up there).
    pub keep: u32,
    pub _pad: u32,
    /// In: CLOCK_BOOTTIME ns the timeouts are measured against.
    pub now: u64,
    /// Out: mappings visited, live first sessions among them, first
    /// sessions expired (their slot emptied, or gone with their
    /// mapping), mappings deleted.
    pub mappings_seen: u64,
    pub sessions_seen: u64,
    pub sessions_expired: u64,
    pub mappings_expired: u64,
}

#[cfg(feature = "user")]
mod pod {
    // SAFETY: all of these are #[repr(C)], Copy, made only of integers, and
    // padded explicitly, so every bit pattern is valid.
    unsafe impl aya::Pod for super::NatConfig {}
    unsafe impl aya::Pod for super::EndpointKey {}
    unsafe impl aya::Pod for super::Mapping {}
    unsafe impl aya::Pod for super::InsideEndpoint {}
    unsafe impl aya::Pod for super::SessionKey {}
    unsafe impl aya::Pod for super::Session {}
    unsafe impl aya::Pod for super::FilterKey {}
    unsafe impl aya::Pod for super::FragKey {}
    unsafe impl aya::Pod for super::FragValue {}
    unsafe impl aya::Pod for super::HoldKey {}
    unsafe impl aya::Pod for super::HeldFragment {}
    unsafe impl aya::Pod for super::ExpireWalk {}
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::mem::size_of;

    #[test]
    fn session_key_new_is_the_literal_with_a_zero_pad() {
        let key = SessionKey::new(0x0a00_0002, 0xc633_6401, 5000, 53, 17);
        assert_eq!(
            key,
            SessionKey {
                inside_addr: 0x0a00_0002,
                remote_addr: 0xc633_6401,
                inside_port: 5000,
                remote_port: 53,
                proto: 17,
                _pad: [0; 3],
            }
        );
    }

    #[test]
    fn layouts_have_no_hidden_padding() {
        assert_eq!(size_of::<NatConfig>(), 72);
        assert_eq!(size_of::<EndpointKey>(), 8);
        // 72: with NAPT_IN's 8-byte value and 64 B of kernel header and
        // bucket per entry, 1M bindings fit in 256 MiB (see BENCHMARKS.md).
        assert_eq!(size_of::<Mapping>(), 72);
        assert_eq!(size_of::<FirstSession>(), 48);
        assert_eq!(size_of::<InsideEndpoint>(), 8);
        assert_eq!(size_of::<SessionKey>(), 16);
        assert_eq!(size_of::<Session>(), 56);
        assert_eq!(size_of::<FilterKey>(), 12);
        assert_eq!(size_of::<FragKey>(), 12);
        assert_eq!(size_of::<FragValue>(), 16);
        assert_eq!(size_of::<Event>(), 16 + EVENT_QUOTE_MAX);
        assert_eq!(size_of::<BindingEvent>(), 32);
        assert_eq!(size_of::<ExpireWalk>(), 120);
    }

    #[test]
    fn tcp_states_follow_rfc_6146() {
        const SYN: u8 = TH_SYN;
        const SYNACK: u8 = TH_SYN | TH_ACK;
        const ACK: u8 = TH_ACK;
        const FIN: u8 = TH_FIN | TH_ACK;
        const RST: u8 = TH_RST;
        let walk = |start: (u8, bool), steps: &[(u8, bool)]| {
            let mut s = tcp_open(start.0, start.1);
            for (f, out) in steps {
                s = tcp_next(s, *f, *out);
            }
            s
        };
        // Outbound-opened: SYN both ways is enough (RFC 6146).
        assert_eq!(walk((SYN, true), &[]), TCP_SYN_OUT);
        assert_eq!(walk((SYN, true), &[(SYNACK, false)]), TCP_ESTABLISHED);
        // Inbound-opened: the inside's SYN-ACK is not enough.
        assert_eq!(walk((SYN, false), &[(SYNACK, true)]), TCP_SYN_RECV);
        assert_eq!(
            walk((SYN, false), &[(SYNACK, true), (ACK, false)]),
            TCP_ESTABLISHED
        );
        let est = [(SYNACK, false), (ACK, true)];
        // Half-close keeps the established lifetime; both FINs do not.
        let mut steps = est.to_vec();
        steps.push((FIN, true));
        assert_eq!(walk((SYN, true), &steps), TCP_FIN_OUT);
        steps.push((ACK, false));
        assert_eq!(walk((SYN, true), &steps), TCP_FIN_OUT);
        steps.push((FIN, false));
        assert_eq!(walk((SYN, true), &steps), TCP_FIN_BOTH);
        // RST: transitory until any other segment.
        let mut steps = est.to_vec();
        steps.push((RST, false));
        assert_eq!(walk((SYN, true), &steps), TCP_TRANSITORY);
        steps.push((ACK, true));
        assert_eq!(walk((SYN, true), &steps), TCP_ESTABLISHED);
        // A new handshake on a closed 4-tuple starts over.
        let mut steps = est.to_vec();
        steps.extend([(FIN, true), (FIN, false), (SYN, true)]);
        assert_eq!(walk((SYN, true), &steps), TCP_SYN_OUT);
        steps.push((SYNACK, false));
        assert_eq!(walk((SYN, true), &steps), TCP_ESTABLISHED);
        // Mid-stream pickup needs both sides.
        assert_eq!(walk((ACK, true), &[(ACK, true)]), TCP_PICKUP_OUT);
        assert_eq!(walk((ACK, true), &[(ACK, false)]), TCP_ESTABLISHED);
        assert_eq!(walk((ACK, false), &[(ACK, true)]), TCP_ESTABLISHED);
        assert_eq!(walk((RST, true), &[]), TCP_TRANSITORY);
        // Lifetimes.
        assert_eq!(tcp_lifetime(TCP_FIN_OUT), TcpLifetime::Established);
        assert_eq!(tcp_lifetime(TCP_FIN_BOTH), TcpLifetime::Transitory);
        assert_eq!(tcp_lifetime(TCP_SYN_RECV), TcpLifetime::SynIn);
        assert_eq!(tcp_lifetime(TCP_SYN_OUT), TcpLifetime::Transitory);
    }
}
