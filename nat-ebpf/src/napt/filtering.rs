//! Filtering (RFC 4787 §5): whether a remote endpoint with no session yet
//! may reach an inside endpoint through its mapping — endpoint-independent
//! (anyone), address-dependent (an address the inside host sent to) or
//! address-and-port-dependent (only sessions the inside host opened).
//! Port forwards admit anyone; a mapping learned from a peer gateway admits
//! TCP segments that are no SYN from anyone.
use nat_common::{
    EndpointKey, FILTER_ADDRESS, FILTER_ADDRESS_AND_PORT, FilterKey, InsideEndpoint,
    MAPPING_FORWARD, MAPPING_PEER, Mapping, NatConfig, TH_SYN,
};

use crate::maps::FILTER;

/// RFC 4787 §5 filtering: may `remote` reach the inside endpoint, with
/// which it has no session yet?
#[inline(always)]
pub fn admitted(
    cfg: &NatConfig,
    inside: &InsideEndpoint,
    m: *const Mapping,
    public: &EndpointKey,
    remote_addr: u32,
    tcp_flags: Option<u8>,
) -> bool {
    if inside.flags & MAPPING_FORWARD != 0 {
        return true;
    }
    // Learned from a peer gateway: a segment that is no SYN belongs to a
    // connection the inside host opened through the peer (whose sessions
    // did not come with the mapping), so it continues; a SYN is a new
    // connection and is filtered as usual.
    if inside.flags & MAPPING_PEER != 0 && tcp_flags.is_some_and(|f| f & TH_SYN == 0) {
        return true;
    }
    match cfg.filtering {
        FILTER_ADDRESS => {
            // SAFETY: `m` points at a map value; plain reads.
            let first = unsafe { &(*m).first };
            if first.live != 0 && first.remote_addr == remote_addr {
                return true;
            }
            let fkey = FilterKey {
                public_addr: public.addr,
                remote_addr,
                public_port: public.port,
                proto: public.proto,
                _pad: 0,
            };
            // SAFETY: presence check only.
            unsafe { FILTER.get(fkey).is_some() }
        }
        // Only the exact remote endpoint the inside host sent to, and it
        // has no session (or it would not be asked).
        FILTER_ADDRESS_AND_PORT => false,
        _ => true,
    }
}
