//! The checksums of a frame NAT64 translated (IPv6 in, IPv4 out, or
//! back): the same promise as for NAT44 — a frame whose checksums were
//! valid leaves with valid ones — checked independently of the model on
//! both families. IPv4: the header checksum; TCP, UDP (0: none) and ICMP
//! over what they cover. IPv6: TCP, UDP (never 0) and ICMPv6 over the
//! pseudo-header and the payload. For an ICMP or ICMPv6 error, the quoted
//! IPv4 header's checksum too; not the quoted transport's, even when
//! quoted whole: an IPv6 quote cannot say it quotes a later fragment (no
//! fragment header is made), and a quoted ICMP error is not translated
//! (the model's bytes say what a quote becomes).

use crate::frame::ETH_HLEN;
use crate::model::csum;
use crate::model::nat64::pseudo6;

fn be16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

/// Whether `frame` is IPv6 (by its Ethernet type).
pub fn is_ipv6(frame: &[u8]) -> bool {
    frame.len() >= ETH_HLEN && frame[12..14] == [0x86, 0xdd]
}

/// Checks every checksum of an IPv4 or IPv6 Ethernet frame; other frames
/// pass.
pub fn check(frame: &[u8]) -> Result<(), String> {
    if frame.len() < ETH_HLEN {
        return Err(format!("frame of {} bytes", frame.len()));
    }
    match be16(frame, 12) {
        0x0800 => v4(&frame[ETH_HLEN..], false),
        0x86dd => v6(&frame[ETH_HLEN..], false),
        _ => Ok(()),
    }
}

fn what(quoted: bool) -> &'static str {
    if quoted { "quoted" } else { "outer" }
}

fn v4(pkt: &[u8], quoted: bool) -> Result<(), String> {
    let w = what(quoted);
    if pkt.len() < 20 || pkt[0] >> 4 != 4 || usize::from(pkt[0] & 0x0f) * 4 < 20 {
        return if quoted {
            Ok(())
        } else {
            Err(format!("{w} IPv4 header unusable"))
        };
    }
    let hlen = usize::from(pkt[0] & 0x0f) * 4;
    if pkt.len() < hlen {
        return if quoted {
            Ok(())
        } else {
            Err(format!("{w} IPv4 header cut"))
        };
    }
    if csum::sum(&pkt[..hlen]) != 0xffff {
        return Err(format!(
            "{w} IPv4 header checksum {:#06x} is wrong",
            be16(pkt, 10)
        ));
    }
    let total = usize::from(be16(pkt, 2));
    if total < hlen {
        return Err(format!("{w} IPv4 total length {total} < its header"));
    }
    if !quoted && pkt.len() < total {
        return Err(format!("{w} IPv4 datagram cut"));
    }
    if be16(pkt, 6) & 0x3fff != 0 || pkt.len() < total {
        // A fragment, or quoted in part: the rest is not checkable.
        return Ok(());
    }
    let l4 = &pkt[hlen..total];
    let pseudo = u64::from(csum::sum(&pkt[12..20])) + l4.len() as u64 + u64::from(pkt[9]);
    transport(l4, pkt[9], pseudo, quoted, false)
}

fn v6(pkt: &[u8], quoted: bool) -> Result<(), String> {
    let w = what(quoted);
    if pkt.len() < 40 || pkt[0] >> 4 != 6 {
        return if quoted {
            Ok(())
        } else {
            Err(format!("{w} IPv6 header unusable"))
        };
    }
    let end = 40 + usize::from(be16(pkt, 4));
    if pkt.len() < end {
        return if quoted {
            Ok(())
        } else {
            Err(format!("{w} IPv6 datagram cut"))
        };
    }
    let (mut l4, mut next) = (&pkt[40..end], pkt[6]);
    if next == 44 {
        // Behind a fragment header: checkable only as an atomic fragment
        // (offset 0, no more), a whole datagram.
        if l4.len() < 8 {
            return Err(format!("{w} fragment header cut"));
        }
        if u16::from_be_bytes([l4[2], l4[3]]) & 0xfff9 != 0 {
            return Ok(());
        }
        next = l4[0];
        l4 = &l4[8..];
    }
    let src: [u8; 16] = pkt[8..24].try_into().expect("16 bytes");
    let dst: [u8; 16] = pkt[24..40].try_into().expect("16 bytes");
    let pseudo = pseudo6(&src, &dst, l4.len(), next);
    transport(l4, next, pseudo, quoted, true)
}

/// The transport checksum of `l4` (`pseudo`: its pseudo-header's sum,
/// unused by ICMP); an error's quote in turn, unless `quoted`.
fn transport(l4: &[u8], proto: u8, pseudo: u64, quoted: bool, v6: bool) -> Result<(), String> {
    if quoted {
        return Ok(());
    }
    let w = what(quoted);
    let valid = |extra: u64| csum::fold(extra + u64::from(csum::sum(l4))) == 0xffff;
    match proto {
        6 => {
            if l4.len() < 20 {
                return Err(format!("{w} TCP header cut"));
            }
            if !valid(pseudo) {
                return Err(format!("{w} TCP checksum {:#06x} is wrong", be16(l4, 16)));
            }
        }
        17 => {
            if l4.len() < 8 {
                return Err(format!("{w} UDP header cut"));
            }
            let c = be16(l4, 6);
            if c == 0 && v6 {
                return Err(format!("{w} IPv6 UDP without checksum"));
            }
            if c != 0 && !valid(pseudo) {
                return Err(format!("{w} UDP checksum {c:#06x} is wrong"));
            }
        }
        1 | 58 => {
            if l4.len() < 8 {
                return Err(format!("{w} ICMP header cut"));
            }
            if !valid(if v6 { pseudo } else { 0 }) {
                return Err(format!("{w} ICMP checksum {:#06x} is wrong", be16(l4, 2)));
            }
            let error = if v6 {
                l4[0] < 128
            } else {
                matches!(l4[0], 3 | 11 | 12)
            };
            if error {
                return if v6 {
                    self::v6(&l4[8..], true)
                } else {
                    v4(&l4[8..], true)
                };
            }
        }
        _ => {}
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::{Packet, Udp};
    use std::net::Ipv4Addr;

    #[test]
    fn valid_and_broken_frames() {
        let f = Packet::udp(
            Ipv4Addr::new(10, 0, 0, 1),
            Ipv4Addr::new(192, 0, 2, 1),
            Udp::new(1, 2, b"abc"),
        )
        .frame();
        assert_eq!(check(&f), Ok(()));
        let mut bad = f.clone();
        let n = bad.len();
        bad[n - 1] ^= 1;
        assert!(check(&bad).is_err());
    }
}
