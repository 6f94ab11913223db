//! Every rule the model decides a frame by, in one registry. A
//! prediction's path is a list of these ([`super::Ctx::note`] takes only a
//! [`Rule`]), so the fuzzer knows the whole list and can say which rules a
//! run never reached: a new branch of the model is a new entry here, and a
//! long run that never takes it fails (`cargo xtask fuzz`).

/// Defines [`Rule`] with each rule's site (the part of the model it
/// belongs to) and text (what paths print), and [`Rule::ALL`], from one
/// list so the three cannot drift apart.
macro_rules! rules {
    ($($name:ident = ($site:literal, $text:literal),)*) => {
        /// One rule of the model (see the module documentation).
        #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub enum Rule {
            $($name,)*
        }

        impl Rule {
            /// Every rule, in registry order.
            pub const ALL: &'static [Rule] = &[$(Rule::$name,)*];

            /// What a path prints for this rule.
            pub fn text(self) -> &'static str {
                match self {
                    $(Rule::$name => $text,)*
                }
            }

            /// The part of the model the rule belongs to (a text may
            /// repeat across parts: a cut transport header in static NAT
            /// and in NAPT are two rules).
            pub fn site(self) -> &'static str {
                match self {
                    $(Rule::$name => $site,)*
                }
            }
        }
    };
}

rules! {
    // Frames the external programs do not parse as IPv4.
    NotOurs = ("any frame", "not ours"),
    Ipv6 = ("not IPv4", "IPv6: not parsed, passed"),
    Arp = ("not IPv4", "ARP: not parsed, passed"),
    VlanTagged = ("not IPv4", "VLAN-tagged: not parsed, passed"),
    OtherEtherType = ("not IPv4", "other EtherType: not parsed, passed"),
    UnparsableIpv4 = ("not IPv4", "unparsable IPv4 header"),
    UnparsableTranslatedSource = ("not IPv4", "unparsable IPv4 header, translated source"),

    // Static 1:1 NAT.
    Static = ("static 1:1", "static 1:1"),
    StaticTransportCut = ("static 1:1", "transport header cut"),
    StaticIcmpCut = ("static 1:1", "ICMP header cut"),
    StaticIcmpErrorNoQuote = ("static 1:1", "ICMP error without a whole quoted header"),
    StaticIcmpErrorBadChecksum = ("static 1:1", "inbound ICMP error with a bad checksum"),
    StaticIcmpErrorOtherHost = ("static 1:1", "ICMP error about another host: outer address only"),
    StaticIcmpErrorTranslated = ("static 1:1", "ICMP error: quoted datagram translated"),

    // NAPT, outbound.
    NaptOut = ("NAPT outbound", "NAPT outbound"),
    NaptOutLaterFragmentUnknown = ("NAPT outbound", "later fragment of an unknown datagram"),
    NaptOutTransportCut = ("NAPT outbound", "transport header cut"),
    NaptOutIcmpCut = ("NAPT outbound", "ICMP header cut"),
    NaptOutIcmpOtherType = ("NAPT outbound", "ICMP type other than echo request"),
    NaptOutNoPorts = ("NAPT outbound", "protocol without ports"),
    FilterTableFull = ("NAPT outbound", "filter table full: no entry"),
    NoSynNoMapping = ("NAPT outbound", "TCP without SYN refused, pickup off: no mapping made"),
    NaptOutIcmpErrorNoQuote = ("NAPT outbound", "ICMP error without a whole quoted header"),
    NaptOutIcmpErrorTranslated = ("NAPT outbound", "ICMP error: quoted datagram translated"),

    // The mapping an outbound ICMP error's quote was sent to (an inside
    // host's error, or the gateway's own).
    QuoteNoPort = ("ICMP error quotes", "ICMP error quoting no port"),
    QuoteUnmapped = ("ICMP error quotes", "ICMP error about an unmapped endpoint"),

    // NAPT, inbound.
    NaptInLaterFragmentToStack = ("NAPT inbound", "later fragment of an unknown datagram: to the stack"),
    UnsolicitedSyn = ("NAPT inbound", "unsolicited SYN to a pool port: no answer (RFC 5382 REQ-4)"),
    DeterministicTcpNoMapping = ("NAPT inbound", "deterministic: TCP to a host's port without a mapping, dropped (no reset)"),
    GatewayFirstFragment = ("NAPT inbound", "first fragment for the gateway itself"),
    NaptInTransportCutToPool = ("NAPT inbound", "transport header cut, to a pool address"),
    PublicEndpointWithoutMapping = ("NAPT inbound", "public endpoint without its mapping"),
    NaptIn = ("NAPT inbound", "NAPT inbound to a mapping"),
    Filtered = ("NAPT inbound", "filtered"),
    AdmittedFirstSessionRemote = ("NAPT inbound", "admitted: the first session's remote address"),
    PeerMappingPickup = ("NAPT inbound", "admitted: TCP without SYN to a mapping learned from a peer"),
    PeerMappingFiltered = ("NAPT inbound", "a mapping learned from a peer filters a SYN, UDP or ICMP as usual"),
    NaptInIcmpErrorUnmapped = ("NAPT inbound", "inbound ICMP error quoting an unmapped pool port"),
    NaptInIcmpErrorBadChecksum = ("NAPT inbound", "inbound ICMP error with a bad checksum"),
    NaptInIcmpErrorTranslated = ("NAPT inbound", "ICMP error: quoted datagram translated"),

    // Sessions of a mapping, either way.
    FirstSession = ("NAPT sessions", "the mapping's first session"),
    NoSynNoSessionOut = ("NAPT sessions", "TCP without SYN refused, pickup off: outbound, no session made"),
    NoSynNoSessionIn = ("NAPT sessions", "TCP without SYN refused, pickup off: inbound, no session made"),
    InboundSessionCap = ("NAPT sessions", "inbound session cap reached"),
    SessionTableFull = ("NAPT sessions", "session table full"),
    NewSessionFirstGone = ("NAPT sessions", "new session (first session gone)"),
    NewSession = ("NAPT sessions", "new session"),

    // New mappings.
    HostPortCap = ("port allocation", "host holds --max-ports-per-host ports"),
    HostPortCapPrefix = ("port allocation", "NAT64 host: the cap counts over its /--nat64-host-prefix (the prefix's stand-in)"),
    PortKept = ("port allocation", "new mapping, port kept"),
    PortChanged = ("port allocation", "new mapping, port changed"),
    MappingTableFullNaptIn = ("port allocation", "mapping table full: NAPT_IN, no reservation"),
    MappingTableFullNaptOut = ("port allocation", "mapping table full: NAPT_OUT, reservation undone"),
    NoPublicPort = ("port allocation", "no public port"),
    DeterministicRange = ("port allocation", "deterministic: new mapping in the host's range"),
    DeterministicSequence = ("port allocation", "deterministic: inside port not kept, the fixed sequence's first free port"),
    DeterministicNoShare = ("port allocation", "deterministic: host beyond the layout, no port"),

    // New mappings under port block allocation.
    BlockHeld = ("port blocks", "new mapping in one of the host's blocks"),
    BlockHeldTableFull = ("port blocks", "a reservation in the host's blocks met a full table"),
    BlockClaimed = ("port blocks", "new block claimed"),
    BlockHostCap = ("port blocks", "host holds --max-blocks-per-host blocks, no port"),
    BlockNone = ("port blocks", "no free block, no port"),
    BlockFreshTaken = ("port blocks", "the new block's ports taken, no port"),
    BlockStaleList = ("port blocks", "the host's list is on another pool address: no blocks"),
    BlockListedNotOwned = ("port blocks", "a listed block the host no longer owns: not used"),

    // Fragments.
    LaterFragmentTranslated = ("fragments", "later fragment: its first fragment's translation"),
    FragmentHeld = ("fragments", "later fragment before its first: held"),
    HeldFragmentReleased = ("fragments", "held fragment released"),

    // ICMP errors the gateway itself sends out.
    LocalErrorStatic = ("gateway's ICMP errors", "gateway's ICMP error quoting a static host: quote translated"),
    LocalErrorInsideHost = ("gateway's ICMP errors", "gateway's ICMP error quoting an inside host"),
    LocalErrorMapping = ("gateway's ICMP errors", "gateway's ICMP error quoting a mapping: quote translated"),

    // The inside interfaces' programs.
    InsideNotIpv4 = ("inside programs", "inside: not IPv4"),
    InsideTc = ("inside programs", "inside TC"),
    InsideTcNoFastPath = ("inside programs", "not hairpinned, no fast path"),
    InsideXdp = ("inside programs", "inside XDP"),
    InsideXdpNoFastPath = ("inside programs", "no fast path"),
    InsideXdpFragmentToTc = ("inside programs", "a fragment, to TC"),
    InsideXdpHairpinToTc = ("inside programs", "hairpinned, to TC"),

    // Hairpinning.
    Hairpin = ("hairpin", "hairpin"),
    HairpinTtlToStack = ("hairpin", "hairpin: TTL ≤ 1, to the stack"),
    HairpinNoIpv4After = ("hairpin", "hairpin: no IPv4 header after translation"),
    HairpinNotForwarded = ("hairpin", "hairpin: the FIB does not forward it, dropped"),
    HairpinToIpv6 = ("hairpin", "hairpin: to an IPv6 host's binding, on to NAT64 as IPv6"),

    // The outbound fast path.
    FastPathTtlToStack = ("fast path", "fast path: TTL ≤ 1, to the stack"),
    FastPathNotEstablished = ("fast path", "fast path: not an established flow, to the stack"),
    FastPathNotSendable = ("fast path", "fast path: not sendable out of the external interface, to the stack"),
    FastPath = ("fast path", "fast path"),

    // Forwarding (hairpin and fast path).
    ForwardedResolved = ("forwarding", "forwarded: next hop resolved"),
    ForwardedNoNeigh = ("forwarding", "forwarded: next hop left to the kernel to resolve"),

    // Checksum offload.
    PartialPseudoHeaderMoved = ("checksum offload", "CHECKSUM_PARTIAL: pseudo-header sum moved"),

    // NAT64's stand-ins: only NAT64 sends from one.
    EgressStandInSource = ("NAT64 stand-ins", "IPv4 from a stand-in leaving the external interface: dropped"),
    Nat64StandInKnown = ("NAT64 stand-ins", "the host's stand-in"),
    Nat64StandInNew = ("NAT64 stand-ins", "new stand-in: the first probe"),
    Nat64StandInProbed = ("NAT64 stand-ins", "new stand-in: a later probe, the earlier ones taken"),
    Nat64StandInNone = ("NAT64 stand-ins", "every probe taken: no stand-in"),
    Nat64StandInTableFull = ("NAT64 stand-ins", "stand-in tables full: no stand-in"),

    // NAT64, IPv6 -> IPv4: IPv6 frames on an inside interface.
    Nat64Off = ("NAT64 outbound", "NAT64 off: IPv6 passed"),
    Nat64OutNotIpv6 = ("NAT64 outbound", "no whole IPv6 header (version, payload length), not to the prefix: passed"),
    Nat64OutJumbogram = ("NAT64 outbound", "payload length 0, to the prefix: dropped"),
    Nat64OutUnparsed = ("NAT64 outbound", "no whole IPv6 header (version, beyond the frame), to the prefix: dropped"),
    Nat64OutNotPrefix = ("NAT64 outbound", "destination outside the prefix: passed"),
    Nat64OutNonGlobal = ("NAT64 outbound", "well-known prefix, non-global IPv4 destination: dropped"),
    Nat64OutHopLimit = ("NAT64 outbound", "hop limit ≤ 1: to the stack"),
    Nat64OutTooBig = ("NAT64 outbound", "IPv4 twin beyond the external MTU: to the stack"),
    Nat64OutSource = ("NAT64 outbound", "unspecified, multicast or link-local source: dropped"),
    Nat64OutNextHeader = ("NAT64 outbound", "extension header or another next header: dropped"),
    Nat64OutTransportCut = ("NAT64 outbound", "transport header cut: dropped"),
    Nat64OutUdpNoChecksum = ("NAT64 outbound", "UDP without checksum: dropped"),
    Nat64OutIcmpOther = ("NAT64 outbound", "ICMPv6 neither echo nor an error quoting a header: dropped"),
    Nat64OutFragmentHeaderCut = ("NAT64 outbound", "fragment header cut: dropped"),
    Nat64OutAtomicFragment = ("NAT64 outbound", "atomic fragment: a whole datagram"),
    Nat64OutFragment = ("NAT64 outbound", "a fragment: an IPv4 fragment (offset, MF, identification)"),
    Nat64OutLaterFragment = ("NAT64 outbound", "later fragment: no transport header"),
    Nat64OutLaterFragmentOther = ("NAT64 outbound", "later fragment of neither TCP nor UDP: dropped"),
    Nat64OutFragmentIcmp = ("NAT64 outbound", "fragmented ICMPv6: dropped"),
    Nat64OutTcp = ("NAT64 outbound", "TCP to IPv4"),
    Nat64OutUdp = ("NAT64 outbound", "UDP to IPv4"),
    Nat64OutEcho = ("NAT64 outbound", "ICMPv6 echo to ICMP echo"),
    Nat64OutDontFragment = ("NAT64 outbound", "longer than 1260 bytes as IPv4: DF, identification 0"),
    Nat64OutNoNat44 = ("NAT64 outbound", "NAT44 has nothing for the stand-in (NAPT off, no static map): dropped"),
    Nat64OutNoRoute = ("NAT64 outbound", "the FIB does not forward it: dropped"),
    Nat64Hairpin = ("NAT64 outbound", "to one of our public endpoints: hairpinned (RFC 6146 3.8)"),
    Nat64HairpinNotIn = ("NAT64 outbound", "hairpin: not translated in: dropped"),
    Nat64HairpinToIpv6 = ("NAT64 outbound", "hairpin: to an IPv6 host, as IPv6 to the stack"),
    Nat64XdpToTc = ("NAT64 outbound XDP", "not an established TCP/UDP datagram of a known host to the prefix (or hop limit ≤ 1, non-global): to TC untouched"),
    Nat64XdpNotEstablished = ("NAT64 outbound XDP", "no established flow for the stand-in: to TC untouched"),
    Nat64XdpNotSendable = ("NAT64 outbound XDP", "not sendable out of the external interface in XDP: to TC untouched"),
    Nat64XdpFastPath = ("NAT64 outbound XDP", "established: translated, NAT44, sent"),

    // ICMPv6 errors from inside (RFC 7915 section 5.2).
    Nat64OutErrorType = ("NAT64 ICMPv6 errors", "type or code without an ICMP twin: dropped"),
    Nat64OutErrorQuoteNotIpv6 = ("NAT64 ICMPv6 errors", "the quote is no IPv6 header: dropped"),
    Nat64OutErrorQuoteOutside = ("NAT64 ICMPv6 errors", "quoted source outside the prefix: dropped"),
    Nat64OutErrorNoStandIn = ("NAT64 ICMPv6 errors", "quoted destination without a stand-in: dropped"),
    Nat64OutErrorQuotedNextHeader = ("NAT64 ICMPv6 errors", "quoted next header neither TCP, UDP nor ICMPv6: dropped"),
    Nat64OutErrorUnreachable = ("NAT64 ICMPv6 errors", "no route, beyond scope, address unreachable: host unreachable"),
    Nat64OutErrorProhibited = ("NAT64 ICMPv6 errors", "administratively prohibited"),
    Nat64OutErrorPortUnreachable = ("NAT64 ICMPv6 errors", "port unreachable"),
    Nat64OutErrorTooBig = ("NAT64 ICMPv6 errors", "Packet Too Big: Fragmentation Needed, MTU - 20"),
    Nat64OutErrorTimeExceeded = ("NAT64 ICMPv6 errors", "time exceeded"),
    Nat64OutErrorNextHeader = ("NAT64 ICMPv6 errors", "unrecognised next header: protocol unreachable"),
    Nat64OutErrorParameter = ("NAT64 ICMPv6 errors", "ICMPv6 erroneous header field: ICMP Parameter Problem, pointer moved"),
    Nat64OutErrorQuotedEcho = ("NAT64 ICMPv6 errors", "quoted ICMPv6 echo: ICMP echo"),

    // NAT64, IPv4 -> IPv6: after NAT44 inbound made the destination a
    // stand-in.
    Nat64InOff = ("NAT64 inbound", "to a stand-in, NAT64 off: dropped"),
    Nat64InNoHost = ("NAT64 inbound", "a stand-in that names no host: dropped"),
    Nat64InBadHeaderChecksum = ("NAT64 inbound", "IPv4 header checksum wrong: dropped"),
    Nat64InTooBigAnswered = ("NAT64 inbound", "too big for the inside link, DF: Fragmentation Needed sent back"),
    Nat64InTtlAnswered = ("NAT64 inbound", "TTL ran out at the gateway: answered with Time Exceeded"),
    Nat64InTtlDropped = ("NAT64 inbound", "TTL ran out, not answerable (error, later fragment, options, other protocol): dropped"),
    Nat64InTtlCut = ("NAT64 inbound", "TTL ran out, without 8 transport bytes to quote: dropped"),
    Nat64InTtlNoTx = ("NAT64 inbound", "TTL ran out, XDP on a device that cannot send it back: dropped"),
    Nat64InTooBigDropped = ("NAT64 inbound", "too big for the inside link, no answer, not split (no DF on XDP or unsplittable, a later fragment, options, not TCP, UDP or echo): dropped"),
    Nat64InSplit = ("NAT64 inbound", "too big for the inside link, no DF, on TC: translated and split into IPv6 fragments that fit, the last one passed"),
    Nat64InSplitHandedOff = ("NAT64 inbound", "too big for the inside link, no DF, on XDP: passed as NAT44 left it, marked in its metadata for the TC program behind"),
    Nat64InTooBigCut = ("NAT64 inbound", "too big for the inside link, DF, without 8 transport bytes to quote: dropped"),
    Nat64InTooBigNoTx = ("NAT64 inbound", "too big for the inside link, DF, XDP on a device that takes no XDP frames: dropped"),
    Nat64InNonGlobal = ("NAT64 inbound", "well-known prefix, non-global IPv4 source: dropped"),
    Nat64InHeader = ("NAT64 inbound", "IPv4 options, or no payload (total length 0 or 20): dropped"),
    Nat64InTransportCut = ("NAT64 inbound", "transport header cut: dropped"),
    Nat64InFragmentIcmp = ("NAT64 inbound", "fragmented ICMP: dropped"),
    Nat64InFragmentUdpNoChecksum = ("NAT64 inbound", "fragmented UDP without checksum: dropped"),
    Nat64InUdpChecksumComputed = ("NAT64 inbound", "UDP without checksum: one computed"),
    Nat64InUdpTooLongToSum = ("NAT64 inbound", "UDP without checksum, too long to sum: dropped"),
    Nat64InFragment = ("NAT64 inbound", "a fragment: a fragment header"),
    Nat64InLaterFragment = ("NAT64 inbound", "later fragment: no transport header"),
    Nat64InProtocol = ("NAT64 inbound", "a protocol other than TCP, UDP and ICMP: dropped"),
    Nat64InIcmpOther = ("NAT64 inbound", "ICMP neither echo nor destination unreachable or time exceeded: dropped"),
    Nat64InTcp = ("NAT64 inbound", "TCP to IPv6"),
    Nat64InUdp = ("NAT64 inbound", "UDP to IPv6"),
    Nat64InEcho = ("NAT64 inbound", "ICMP echo to ICMPv6 echo"),

    // ICMP errors about NAT64 flows (RFC 7915 section 4.2).
    Nat64InErrorType = ("NAT64 ICMP errors", "type or code without an ICMPv6 twin: dropped"),
    Nat64InErrorQuoteCut = ("NAT64 ICMP errors", "no whole quoted IPv4 header: dropped"),
    Nat64InErrorQuoteOther = ("NAT64 ICMP errors", "quote with options or not from the stand-in: dropped"),
    Nat64InErrorTimeExceeded = ("NAT64 ICMP errors", "time exceeded"),
    Nat64InErrorTooBig = ("NAT64 ICMP errors", "Fragmentation Needed: Packet Too Big, MTU + 20, at least 1280"),
    Nat64InErrorPortUnreachable = ("NAT64 ICMP errors", "port unreachable"),
    Nat64InErrorProtocol = ("NAT64 ICMP errors", "protocol unreachable: parameter problem at the next header"),
    Nat64InErrorParameter = ("NAT64 ICMP errors", "ICMP Parameter Problem: ICMPv6 Parameter Problem, pointer moved"),
    Nat64InErrorProhibited = ("NAT64 ICMP errors", "administratively prohibited"),
    Nat64InErrorUnreachable = ("NAT64 ICMP errors", "net, host and other unreachables: no route"),
    Nat64InErrorQuotedEcho = ("NAT64 ICMP errors", "quoted ICMP echo: ICMPv6 echo"),
}

/// Rules no generated frame can reach, each with why; a run that never
/// takes them is not failed for it. Keep this short: a rule that is only
/// rare belongs to the generator, not here.
pub const UNREACHABLE: &[(Rule, &str)] = &[
    (
        Rule::HairpinNoIpv4After,
        "both halves of a hairpin rewrite addresses, ports and checksums in place, never the \
         version, header length or total length, so the translated frame always parses (the \
         program re-parses it for the verifier's sake)",
    ),
    (
        Rule::Nat64InTransportCut,
        "NAT44 translates a packet to a stand-in only with the transport header NAT64 needs \
         whole (TCP 20 bytes, UDP and ICMP 8: NAPT for its ports, static 1:1 for its \
         checksum), later fragments aside, whose transport NAT64 does not read",
    ),
    (
        Rule::Nat64InErrorQuoteCut,
        "NAT44 translates an ICMP error to a stand-in only if its quoted IPv4 header parses \
         (static 1:1 and NAPT alike), and rewrites no length in it, so NAT64 always finds the \
         quote whole (the program checks it again for the verifier's sake)",
    ),
];

/// Rules only the inside programs reach: runs alongside the agent
/// (`--interleaved`, `--concurrent`) send no frames to them.
pub fn inside_only(rule: Rule) -> bool {
    matches!(
        rule.site(),
        "inside programs" | "hairpin" | "fast path" | "forwarding"
    )
}

impl Rule {
    /// The rule as a "never hit" line names it.
    pub fn describe(self) -> String {
        format!("{}: {}", self.site(), self.text())
    }

    /// Why no generated frame can reach this rule, if none can.
    pub fn unreachable(self) -> Option<&'static str> {
        UNREACHABLE
            .iter()
            .find(|(r, _)| *r == self)
            .map(|(_, why)| *why)
    }
}

/// A path as reports print it.
pub fn path_text(path: &[Rule]) -> String {
    let texts: Vec<&str> = path.iter().map(|r| r.text()).collect();
    texts.join(" / ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn site_and_text_name_each_rule_once() {
        let mut seen = std::collections::HashSet::new();
        for r in Rule::ALL {
            assert!(
                seen.insert((r.site(), r.text())),
                "{r:?} repeats another rule"
            );
        }
    }

    #[test]
    fn exempt_rules_are_registered_and_say_why() {
        for (r, why) in UNREACHABLE {
            assert!(Rule::ALL.contains(r));
            assert!(!why.is_empty(), "{r:?}");
        }
    }
}
