//! `xnat trace`: while a trace runs, the external interface's programs
//! report what they did with each packet that matches its filter — one
//! [`TraceRecord`] per packet on the `TRACE` ring buffer. While none runs
//! they read one flag per packet ([`TraceFilter::tracer`]) and nothing
//! else.

/// The trace's filter (an array of one).
pub const MAP_TRACE_FILTER: &str = "TRACE_FILTER";
/// Records of traced packets (ring buffer).
pub const MAP_TRACE: &str = "TRACE";
/// The per-CPU copy of the counters a traced packet starts from.
pub const MAP_TRACE_SCRATCH: &str = "TRACE_SCRATCH";
/// Slots of a `TRACE_SCRATCH` entry: the counters a traced packet starts
/// from, then (from [`TRACE_STASH`]) the tracer's pid and protocol, and
/// the tuple before, of a program that stashes them there instead of
/// carrying them across the NAT44 core (which doubles the verifier's walk
/// of it).
pub const TRACE_SCRATCH_LEN: usize = crate::stats::COUNTER_COUNT as usize + 3;
/// The first of the stash's slots in a `TRACE_SCRATCH` entry.
pub const TRACE_STASH: usize = crate::stats::COUNTER_COUNT as usize;
/// Size of the `TRACE` ring buffer.
pub const TRACE_BYTES: u32 = 256 * 1024;

/// Which packets to report. A packet matches when every set field does,
/// on its addresses and ports before or after translation.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TraceFilter {
    /// The pid of the running `xnat trace`; 0: tracing is off.
    pub tracer: u32,
    /// Either address within `addr`/`mask` (network order; mask 0: any).
    pub addr: u32,
    pub mask: u32,
    /// Either port, or an ICMP echo's identifier (network order; 0: any).
    pub port: u16,
    /// IP protocol (0: any).
    pub proto: u8,
    pub _pad: u8,
}

/// Addresses and ports of a packet (network order; ports 0 where there
/// are none: other protocols, later fragments; an ICMP echo's identifier
/// as `sport`).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TraceTuple {
    pub src: u32,
    pub dst: u32,
    pub sport: u16,
    pub dport: u16,
}

/// [`TraceRecord::program`].
pub const TRACE_EGRESS_TC: u8 = 0;
pub const TRACE_INGRESS_XDP: u8 = 1;
pub const TRACE_INGRESS_TC: u8 = 2;
/// NAT64's outbound NAT44 step (`xnat_nat64_out_nat44_tc`), reporting an
/// inside IPv6 host's packet as the IPv4 packet of its stand-in.
pub const TRACE_NAT64_OUT_TC: u8 = 3;
/// NAT64's outbound fast path in XDP (`xnat_nat64_out_xdp`).
pub const TRACE_NAT64_OUT_XDP: u8 = 4;

/// [`TraceRecord::verdict`].
pub const TRACE_PASSED: u8 = 0;
pub const TRACE_DROPPED: u8 = 1;
pub const TRACE_TRANSLATED: u8 = 2;

/// What a program did with one traced packet.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TraceRecord {
    /// CLOCK_BOOTTIME, ns.
    pub time_ns: u64,
    pub before: TraceTuple,
    pub after: TraceTuple,
    pub proto: u8,
    /// `TRACE_EGRESS_TC`, ...
    pub program: u8,
    /// `TRACE_PASSED`, `TRACE_DROPPED`, `TRACE_TRANSLATED`.
    pub verdict: u8,
    pub _pad: [u8; 5],
    /// The counters the packet moved, byte counts aside (bit `i`:
    /// `crate::Counter` index `i`): why it was passed or dropped, what it
    /// created. A mask, not a list, so the program computes it without a
    /// branch per counter (each branch multiplied the states the verifier
    /// walks through, per counter).
    pub moved: u64,
    /// A NAT64 packet (a stand-in in `before.src` or `after.dst`): the
    /// IPv6 host the stand-in stands for, and the remote IPv4 endpoint's
    /// address under the NAT64 prefix, as the host's IPv6 packets have
    /// them; zero otherwise.
    pub host6: [u8; 16],
    pub remote6: [u8; 16],
}

// Every counter has its bit in `TraceRecord::moved`.
const _: () = assert!(crate::stats::COUNTER_COUNT <= 64);

impl TraceFilter {
    /// Whether a packet with these tuples matches.
    #[inline(always)]
    pub fn matches(&self, proto: u8, before: &TraceTuple, after: &TraceTuple) -> bool {
        (self.proto == 0 || self.proto == proto)
            && (self.tuple_matches(before) || self.tuple_matches(after))
    }

    #[inline(always)]
    fn tuple_matches(&self, t: &TraceTuple) -> bool {
        let addr =
            self.mask == 0 || t.src & self.mask == self.addr || t.dst & self.mask == self.addr;
        let port = self.port == 0 || t.sport == self.port || t.dport == self.port;
        addr && port
    }
}

#[cfg(feature = "user")]
mod pod {
    // SAFETY: plain `repr(C)` data without padding holes that matter.
    unsafe impl aya::Pod for super::TraceFilter {}
    unsafe impl aya::Pod for super::TraceRecord {}
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(src: [u8; 4], dst: [u8; 4], sport: u16, dport: u16) -> TraceTuple {
        TraceTuple {
            src: u32::from_ne_bytes(src),
            dst: u32::from_ne_bytes(dst),
            sport: sport.to_be(),
            dport: dport.to_be(),
        }
    }

    #[test]
    fn a_filter_matches_either_side_before_or_after() {
        let f = TraceFilter {
            tracer: 1,
            addr: u32::from_ne_bytes([10, 0, 0, 0]),
            mask: u32::from_ne_bytes([255, 255, 255, 0]),
            port: 0,
            proto: 17,
            _pad: 0,
        };
        // Inbound: the inside address appears only after translation.
        let before = t([8, 8, 8, 8], [203, 0, 113, 1], 53, 40000);
        let after = t([8, 8, 8, 8], [10, 0, 0, 2], 53, 40000);
        assert!(f.matches(17, &before, &after));
        assert!(!f.matches(17, &before, &before));
        assert!(!f.matches(6, &before, &after), "another protocol");
        let by_port = TraceFilter {
            tracer: 1,
            port: 53u16.to_be(),
            ..Default::default()
        };
        assert!(by_port.matches(6, &before, &before));
        assert!(!by_port.matches(
            6,
            &t([1, 1, 1, 1], [2, 2, 2, 2], 1, 2),
            &t([1, 1, 1, 1], [2, 2, 2, 2], 1, 2)
        ));
    }
}
