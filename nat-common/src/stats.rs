//! Counter indices of the per-CPU `STATS` array. The data plane bumps them;
//! `xnat stats` sums them over CPUs and prints them by name.

/// What a counter counts. The discriminant is the array index.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Counter {
    /// Outbound packets whose source was translated.
    EgressTranslated = 0,
    /// Bytes of those packets (IPv4 total length).
    EgressBytes = 1,
    /// Inbound packets whose destination was translated.
    IngressTranslated = 2,
    /// Bytes of those packets (IPv4 total length).
    IngressBytes = 3,
    /// ICMP error messages whose embedded packet was translated (both ways).
    IcmpErrorsTranslated = 4,
    /// Outbound packets of a mapped host that could not be parsed far enough
    /// to translate safely; dropped so no private address leaks.
    EgressDroppedMalformed = 5,
    /// Inbound packets to a mapped address (static or NAPT pool) that could
    /// not be parsed far enough to translate; passed untouched (the stack
    /// drops them).
    IngressPassedMalformed = 6,
    /// Packets xnat does not own (not IPv4, not mapped), passed untouched.
    PassedNotOurs = 7,
    /// Dynamic mappings created by the data plane.
    NaptMappingsCreated = 8,
    /// Sessions (inside endpoint × remote endpoint) created.
    NaptSessionsCreated = 9,
    /// Outbound packets dropped: no public port left (ICMP code 13 sent).
    DropPortsExhausted = 10,
    /// Outbound packets dropped: the inside host reached --max-ports-per-host.
    DropHostPortCap = 11,
    /// Outbound packets dropped: the mapping table is full.
    DropMappingTableFull = 12,
    /// Packets dropped: the session table is full.
    DropSessionTableFull = 13,
    /// Inbound packets to a mapping that the filtering mode refused.
    DropFiltered = 14,
    /// Outbound packets NAPT cannot translate (no ports: other protocols, later fragments, unknown ICMP).
    DropUnsupported = 15,
    /// Outbound ICMP errors about a flow without a mapping (would leak an inside address).
    DropIcmpErrorNoMapping = 16,
    /// Inbound later fragments to a pool address whose first fragment was not seen, passed to the stack.
    IngressPassedFragment = 17,
    /// Packets between two inside hosts through their public endpoints (hairpinning).
    HairpinTranslated = 18,
    /// Later IPv4 fragments translated with their first fragment's translation.
    FragmentsTranslated = 19,
    /// Outbound later fragments whose first fragment was not seen (yet): dropped, never sent untranslated.
    DropFragmentUnknown = 20,
    /// Later fragments that came before their first fragment, held until it arrives (TC only).
    FragmentsHeld = 21,
    /// Held fragments sent on once their first fragment arrived.
    FragmentsReleased = 22,
    /// Ring-buffer events (binding log, port exhaustion) lost because the
    /// reader lagged; the data plane never waits for it.
    EventsLost = 23,
    /// Inbound packets the fast path forwarded itself (FIB + redirect).
    FastPathInbound = 24,
    /// Outbound packets the fast path forwarded from an inside interface.
    FastPathOutbound = 25,
    /// ICMP errors the gateway itself sent about a translated inbound
    /// packet (TTL exceeded, fragmentation needed, host unreachable) whose
    /// quote was turned back into the public endpoint.
    IcmpErrorsLocalTranslated = 26,
    /// Inbound TCP SYNs to a pool port without a mapping that admits them:
    /// dropped without an answer (RFC 5382 REQ-4).
    DropUnsolicitedSyn = 27,
    /// Inbound packets that would have created a session beyond
    /// `--max-inbound-sessions`.
    DropInboundSessionLimit = 28,
    /// Inbound ICMP errors with a bad ICMP checksum or a bad quoted IPv4
    /// header checksum (RFC 5508 REQ-3).
    DropIcmpErrorBadChecksum = 29,
    /// Inbound ICMP errors quoting a datagram from a pool port that no
    /// mapping holds.
    DropInboundIcmpErrorNoMapping = 30,
    /// Port blocks reserved for inside hosts (`--allocation block`).
    NaptBlocksAllocated = 31,
    /// TCP segments without SYN that would have opened a mapping or a
    /// session (mid-stream pickup), dropped under `--tcp-pickup off`.
    DropTcpNoSyn = 32,
    /// Inbound TCP segments to a port of a host's deterministic range that
    /// no mapping holds (a flow whose gateway failed over, before its
    /// inside host's next segment recreates the mapping): dropped without
    /// an answer, where the stack would reset the connection.
    DropTcpNoMapping = 33,
    /// IPv6 packets from inside translated to IPv4 (NAT64; the NAT44 step
    /// after it counts in `egress_translated_packets` too).
    Nat64Out = 34,
    /// IPv4 packets translated to IPv6 for an inside host (NAT64).
    Nat64In = 35,
    /// IPv6 packets to the NAT64 prefix that NAT64 cannot translate
    /// (extension headers other than one fragment header, protocols other
    /// than TCP, UDP and ICMPv6, ICMPv6 types without an ICMP twin):
    /// dropped, never sent untranslated.
    Nat64DropUnsupported = 36,
    /// Packets NAT64 could not parse far enough to translate (cut short,
    /// an IPv6 UDP datagram without checksum): dropped.
    Nat64DropMalformed = 37,
    /// Packets to or from a non-global IPv4 address under the well-known
    /// prefix 64:ff9b::/96 (RFC 6052 section 3.1): dropped.
    Nat64DropNonGlobal = 38,
    /// IPv6 packets from a new inside host when no stand-in is free
    /// (`NAT64_IDS` full): dropped.
    Nat64DropHostsFull = 39,
    /// IPv4 packets for an IPv6 host whose stand-in was freed: dropped.
    Nat64DropNoHost = 40,
    /// IPv6 packets translated to IPv4 that the gateway has no route to
    /// forward (unreachable, one of its own addresses): dropped.
    Nat64DropNoRoute = 41,
    /// IPv4 packets with DF set too big for the inside link once
    /// translated, answered with ICMP Fragmentation Needed (the inside MTU
    /// less 20).
    Nat64FragNeededSent = 42,
    /// IPv4 packets too big for the inside link once translated that
    /// cannot be split into IPv6 fragments (XDP ingress, longer than the
    /// split buffer, ICMP errors, DF set and no answer possible): dropped.
    Nat64DropTooBig = 43,
    /// IPv4 packets for an IPv6 host whose TTL ran out at the gateway,
    /// answered with ICMP Time Exceeded (RFC 7915 section 4).
    Nat64TimeExceededSent = 44,
    /// The same that cannot be answered (ICMP errors, later fragments, a
    /// header with options; XDP where the device cannot send it back):
    /// dropped.
    Nat64DropTtlExpired = 45,
    /// IPv4 packets without DF too big for the inside link, translated and
    /// split into IPv6 fragments that fit it (RFC 7915 4.1; TC ingress).
    Nat64Fragmented = 46,
    /// The IPv6 fragments those were split into.
    Nat64FragmentsSent = 47,
    /// NAT64 packets translated to IPv6 and forwarded to the inside host
    /// by the fast path (`--fast-path`) instead of the stack.
    Nat64FastPathIn = 48,
    /// IPv6 packets of established NAT64 flows translated and sent out by
    /// the inside interface's XDP program (`--inside-hook xdp`).
    Nat64FastPathOut = 49,
}

/// Number of counters; the size of the `STATS` array.
pub const COUNTER_COUNT: u32 = 50;

impl Counter {
    /// All counters in index order.
    pub const ALL: [Counter; COUNTER_COUNT as usize] = [
        Counter::EgressTranslated,
        Counter::EgressBytes,
        Counter::IngressTranslated,
        Counter::IngressBytes,
        Counter::IcmpErrorsTranslated,
        Counter::EgressDroppedMalformed,
        Counter::IngressPassedMalformed,
        Counter::PassedNotOurs,
        Counter::NaptMappingsCreated,
        Counter::NaptSessionsCreated,
        Counter::DropPortsExhausted,
        Counter::DropHostPortCap,
        Counter::DropMappingTableFull,
        Counter::DropSessionTableFull,
        Counter::DropFiltered,
        Counter::DropUnsupported,
        Counter::DropIcmpErrorNoMapping,
        Counter::IngressPassedFragment,
        Counter::HairpinTranslated,
        Counter::FragmentsTranslated,
        Counter::DropFragmentUnknown,
        Counter::FragmentsHeld,
        Counter::FragmentsReleased,
        Counter::EventsLost,
        Counter::FastPathInbound,
        Counter::FastPathOutbound,
        Counter::IcmpErrorsLocalTranslated,
        Counter::DropUnsolicitedSyn,
        Counter::DropInboundSessionLimit,
        Counter::DropIcmpErrorBadChecksum,
        Counter::DropInboundIcmpErrorNoMapping,
        Counter::NaptBlocksAllocated,
        Counter::DropTcpNoSyn,
        Counter::DropTcpNoMapping,
        Counter::Nat64Out,
        Counter::Nat64In,
        Counter::Nat64DropUnsupported,
        Counter::Nat64DropMalformed,
        Counter::Nat64DropNonGlobal,
        Counter::Nat64DropHostsFull,
        Counter::Nat64DropNoHost,
        Counter::Nat64DropNoRoute,
        Counter::Nat64FragNeededSent,
        Counter::Nat64DropTooBig,
        Counter::Nat64TimeExceededSent,
        Counter::Nat64DropTtlExpired,
        Counter::Nat64Fragmented,
        Counter::Nat64FragmentsSent,
        Counter::Nat64FastPathIn,
        Counter::Nat64FastPathOut,
    ];

    /// Stable snake_case name used by `xnat stats` and its JSON.
    pub const fn name(self) -> &'static str {
        match self {
            Counter::EgressTranslated => "egress_translated_packets",
            Counter::EgressBytes => "egress_translated_bytes",
            Counter::IngressTranslated => "ingress_translated_packets",
            Counter::IngressBytes => "ingress_translated_bytes",
            Counter::IcmpErrorsTranslated => "icmp_errors_translated",
            Counter::EgressDroppedMalformed => "egress_dropped_malformed",
            Counter::IngressPassedMalformed => "ingress_passed_malformed",
            Counter::PassedNotOurs => "passed_not_ours",
            Counter::NaptMappingsCreated => "napt_mappings_created",
            Counter::NaptSessionsCreated => "napt_sessions_created",
            Counter::DropPortsExhausted => "drop_ports_exhausted",
            Counter::DropHostPortCap => "drop_host_port_cap",
            Counter::DropMappingTableFull => "drop_mapping_table_full",
            Counter::DropSessionTableFull => "drop_session_table_full",
            Counter::DropFiltered => "drop_filtered_inbound",
            Counter::DropUnsupported => "drop_napt_unsupported",
            Counter::DropIcmpErrorNoMapping => "drop_icmp_error_no_mapping",
            Counter::IngressPassedFragment => "ingress_passed_fragment",
            Counter::HairpinTranslated => "hairpin_translated",
            Counter::FragmentsTranslated => "fragments_translated",
            Counter::DropFragmentUnknown => "drop_fragment_unknown",
            Counter::EventsLost => "events_lost",
            Counter::FastPathInbound => "fast_path_inbound",
            Counter::FastPathOutbound => "fast_path_outbound",
            Counter::FragmentsHeld => "fragments_held",
            Counter::FragmentsReleased => "fragments_released",
            Counter::IcmpErrorsLocalTranslated => "icmp_errors_local_translated",
            Counter::DropUnsolicitedSyn => "drop_unsolicited_syn",
            Counter::DropInboundSessionLimit => "drop_inbound_session_limit",
            Counter::DropIcmpErrorBadChecksum => "drop_icmp_error_bad_checksum",
            Counter::DropInboundIcmpErrorNoMapping => "drop_inbound_icmp_error_no_mapping",
            Counter::NaptBlocksAllocated => "napt_blocks_allocated",
            Counter::DropTcpNoSyn => "drop_tcp_no_syn",
            Counter::DropTcpNoMapping => "drop_tcp_no_mapping",
            Counter::Nat64Out => "nat64_out_translated",
            Counter::Nat64In => "nat64_in_translated",
            Counter::Nat64DropUnsupported => "nat64_drop_unsupported",
            Counter::Nat64DropMalformed => "nat64_drop_malformed",
            Counter::Nat64DropNonGlobal => "nat64_drop_non_global",
            Counter::Nat64DropHostsFull => "nat64_drop_hosts_full",
            Counter::Nat64DropNoHost => "nat64_drop_no_host",
            Counter::Nat64DropNoRoute => "nat64_drop_no_route",
            Counter::Nat64FragNeededSent => "nat64_frag_needed_sent",
            Counter::Nat64DropTooBig => "nat64_drop_too_big",
            Counter::Nat64TimeExceededSent => "nat64_time_exceeded_sent",
            Counter::Nat64DropTtlExpired => "nat64_drop_ttl_expired",
            Counter::Nat64Fragmented => "nat64_fragmented",
            Counter::Nat64FragmentsSent => "nat64_fragments_sent",
            Counter::Nat64FastPathIn => "nat64_fast_path_in",
            Counter::Nat64FastPathOut => "nat64_fast_path_out",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_is_in_index_order() {
        for (i, c) in Counter::ALL.iter().enumerate() {
            assert_eq!(*c as usize, i, "{c:?}");
        }
    }

    #[test]
    fn names_are_unique() {
        for a in Counter::ALL {
            for b in Counter::ALL {
                if a != b {
                    assert_ne!(a.name(), b.name());
                }
            }
        }
    }
}
