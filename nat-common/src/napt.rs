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
/// Inside prefixes whose sources are translated (LPM trie).
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
/// Ring buffer of events for the agent (port exhaustion → ICMP code 13).
pub const MAP_EVENTS: &str = "EVENTS";
/// IPv4 datagrams being fragmented through the NAT: the address
/// translation their first fragment decided, for the later fragments
/// (LRU-bounded; entries older than [`FRAG_TIMEOUT_NS`] are ignored). One
/// table per direction ([`FragKey::map_name`]), [`FRAGS_MAX`] entries
/// each: first fragments from the outside, which anyone can send, then
/// only ever evict each other, never the inside hosts' datagrams.
pub const MAP_FRAGS_OUT: &str = "FRAGS_OUT";
pub const MAP_FRAGS_IN: &str = "FRAGS_IN";
pub const FRAGS_MAX: u32 = 8192;
/// Later fragments that arrived before their first fragment, held (TC
/// only) until it comes: at most this many, LRU-evicted, released only
/// within [`FRAG_TIMEOUT_NS`].
pub const MAP_FRAG_HOLD: &str = "FRAG_HOLD";
pub const FRAG_HOLD_MAX: u32 = 256;
/// Held fragments per datagram.
pub const FRAG_HOLD_SLOTS: u32 = 8;
/// Bytes of one held fragment (its whole IPv4 datagram part).
pub const FRAG_HOLD_BYTES: usize = 1520;
/// Per-CPU scratch space for copying a fragment into FRAG_HOLD.
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
}

/// Default idle timeouts (seconds): RFC 4787 REQ-5 (UDP ≥ 2 min, 5 min
/// recommended), RFC 5382 REQ-5 (TCP established ≥ 2 h 4 min, transitory
/// 4 min), RFC 5508 REQ-2 (ICMP query 60 s).
pub const DEFAULT_TIMEOUT_UDP: u32 = 300;
pub const DEFAULT_TIMEOUT_TCP_ESTABLISHED: u32 = 7440;
pub const DEFAULT_TIMEOUT_TCP_TRANSITORY: u32 = 240;
pub const DEFAULT_TIMEOUT_ICMP: u32 = 60;

impl NatConfig {
    /// Idle timeout in seconds of a session of `proto` with TCP bits `tcp`.
    pub fn session_timeout(&self, proto: u8, tcp: u8) -> u32 {
        match proto {
            6 => match tcp_state(tcp) {
                TcpState::Established => self.timeout_tcp_established,
                _ => self.timeout_tcp_transitory,
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
    /// `TCP_*` bits (0 for UDP/ICMP).
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
                _pad: 0,
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
    /// `TCP_*` bits (0 for UDP/ICMP).
    pub tcp: u8,
    pub _pad: u8,
}

/// TCP state bits of a session.
pub const TCP_SYN_OUT: u8 = 1;
pub const TCP_SYN_IN: u8 = 2;
pub const TCP_ACK_OUT: u8 = 4;
pub const TCP_ACK_IN: u8 = 8;
pub const TCP_FIN_OUT: u8 = 16;
pub const TCP_FIN_IN: u8 = 32;
pub const TCP_RST: u8 = 64;

/// The TCP state a session's bits amount to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TcpState {
    /// Handshake in progress.
    SynSent,
    /// Both sides have sent a SYN and data/ACKs flowed.
    Established,
    /// A FIN or RST was seen.
    Closing,
}

pub fn tcp_state(bits: u8) -> TcpState {
    if bits & (TCP_FIN_OUT | TCP_FIN_IN | TCP_RST) != 0 {
        TcpState::Closing
    } else if bits & TCP_SYN_OUT != 0
        && bits & TCP_SYN_IN != 0
        && bits & (TCP_ACK_OUT | TCP_ACK_IN) != 0
    {
        // SYN each way and the handshake's final ACK (whichever side
        // opened the connection).
        TcpState::Established
    } else if bits & TCP_SYN_OUT == 0
        && bits & TCP_SYN_IN == 0
        && bits & (TCP_ACK_OUT | TCP_ACK_IN) != 0
    {
        // Picked up mid-stream (e.g. after a restart with lost state): both
        // directions carry ACKs of an existing connection.
        if bits & TCP_ACK_OUT != 0 && bits & TCP_ACK_IN != 0 {
            TcpState::Established
        } else {
            TcpState::SynSent
        }
    } else {
        TcpState::SynSent
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

impl FragKey {
    /// The table that holds this datagram's entry: its direction's.
    pub fn map_name(&self) -> &'static str {
        if self.inbound != 0 {
            MAP_FRAGS_IN
        } else {
            MAP_FRAGS_OUT
        }
    }
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
pub const EVENT_PORTS_EXHAUSTED: u32 = 1;
/// A dynamic mapping was created ([`BindingEvent`]); emitted only while bit
/// `1 << EVENT_BINDING_CREATED` is set in `EVENT_MASK` (the agent sets it
/// when it keeps a translation log).
pub const EVENT_BINDING_CREATED: u32 = 2;
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
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::mem::size_of;

    #[test]
    fn layouts_have_no_hidden_padding() {
        assert_eq!(size_of::<NatConfig>(), 32);
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
        assert_eq!(size_of::<Event>(), 8 + EVENT_QUOTE_MAX);
        assert_eq!(size_of::<BindingEvent>(), 32);
    }

    #[test]
    fn tcp_states() {
        assert_eq!(tcp_state(TCP_SYN_OUT), TcpState::SynSent);
        assert_eq!(tcp_state(TCP_SYN_OUT | TCP_SYN_IN), TcpState::SynSent);
        // Inbound-opened (port forward): SYN in, SYN-ACK out, ACK in.
        assert_eq!(
            tcp_state(TCP_SYN_IN | TCP_SYN_OUT | TCP_ACK_IN),
            TcpState::Established
        );
        assert_eq!(
            tcp_state(TCP_SYN_OUT | TCP_SYN_IN | TCP_ACK_OUT | TCP_ACK_IN),
            TcpState::Established
        );
        assert_eq!(
            tcp_state(TCP_SYN_OUT | TCP_SYN_IN | TCP_ACK_OUT | TCP_FIN_IN),
            TcpState::Closing
        );
        assert_eq!(tcp_state(TCP_SYN_OUT | TCP_RST), TcpState::Closing);
        assert_eq!(tcp_state(TCP_ACK_OUT | TCP_ACK_IN), TcpState::Established);
    }
}
