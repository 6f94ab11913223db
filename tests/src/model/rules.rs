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
}

/// Rules no generated frame can reach, each with why; a run that never
/// takes them is not failed for it. Keep this short: a rule that is only
/// rare belongs to the generator, not here.
pub const UNREACHABLE: &[(Rule, &str)] = &[(
    Rule::HairpinNoIpv4After,
    "both halves of a hairpin rewrite addresses, ports and checksums in place, never the \
     version, header length or total length, so the translated frame always parses (the \
     program re-parses it for the verifier's sake)",
)];

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
