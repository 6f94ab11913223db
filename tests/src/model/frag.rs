//! IPv4 fragments of NAPT flows (README "IPv4 fragments"): the first
//! fragment's address translation is remembered per datagram (source,
//! destination, protocol, identification, direction) and applied to later
//! fragments; later fragments that come first are held on TC hooks and
//! sent, translated, right after their first fragment.

use super::Rule;
use nat_common::{Counter, FRAG_HOLD_BYTES, FRAG_HOLD_SLOTS, FRAG_TIMEOUT_NS, FragKey, FragValue};

use super::parse::{self, ETH_HLEN, Ip};
use super::rewrite::{Edit, Slot};
use super::{Ctx, Dir, Held, NOW, Verdict};

pub fn key(ip: &Ip, dir: Dir) -> FragKey {
    FragKey {
        src: ip.src,
        dst: ip.dst,
        id: ip.id,
        proto: ip.proto,
        inbound: (dir == Dir::In) as u8,
    }
}

fn fresh(ctx: &Ctx, seen: u64) -> bool {
    ctx.now.saturating_sub(seen) <= FRAG_TIMEOUT_NS
}

/// The translated field of a datagram in this direction.
fn field_at(ip: &Ip, dir: Dir) -> usize {
    ip.off + if dir == Dir::Out { 12 } else { 16 }
}

/// A later fragment: translated as its first fragment was, if that one was
/// seen (recently).
pub fn translate_later(ctx: &mut Ctx, ip: &Ip) -> Option<Verdict> {
    let v = *ctx.st.frags.get(&key(ip, ctx.dir))?;
    if !fresh(ctx, v.seen) {
        return None;
    }
    ctx.note(Rule::LaterFragmentTranslated);
    let mut e = Edit::default();
    e.addr(field_at(ip, ctx.dir), v.new_addr)
        .fix(Slot::ip_header(ip));
    e.apply(&mut ctx.out);
    ctx.bump(Counter::FragmentsTranslated);
    Some(ctx.translated((ip.end - ip.off) as u64))
}

/// A later fragment before its first: held in a free slot of its datagram
/// on TC hooks (XDP cannot hold). Returns whether it was held.
pub fn hold(ctx: &mut Ctx, frame: &[u8], ip: &Ip) -> bool {
    if ctx.hook.is_xdp() {
        return false;
    }
    let len = ip.end - ip.off;
    if !(20..=FRAG_HOLD_BYTES).contains(&len) {
        return false;
    }
    let k = key(ip, ctx.dir);
    let Some(slot) = (0..FRAG_HOLD_SLOTS).find(|s| !ctx.st.held.contains_key(&(k, *s))) else {
        return false;
    };
    ctx.note(Rule::FragmentHeld);
    ctx.st.held.insert(
        (k, slot),
        Held {
            seen: NOW,
            data: frame[ip.off..ip.end].to_vec(),
        },
    );
    ctx.bump(Counter::FragmentsHeld);
    true
}

/// After the first fragment of a datagram was translated (its `dir` field
/// became `new_addr`; an identity for a datagram that is not a mapping's):
/// remember it for the later fragments and send any held ones, in slot
/// order. The packet that leaves the program is the last one sent.
pub fn remember(ctx: &mut Ctx, ip: &Ip, new_addr: u32) {
    if ip.later_fragment || !ip.more_fragments {
        return;
    }
    let k = key(ip, ctx.dir);
    ctx.st.frags.insert(
        k,
        FragValue {
            new_addr,
            _pad: 0,
            seen: NOW,
        },
    );
    if ctx.hook.is_xdp() {
        // XDP cannot send extra packets: nothing is released there (and
        // nothing is held there either).
        return;
    }
    for slot in 0..FRAG_HOLD_SLOTS {
        let Some(h) = ctx.st.held.remove(&(k, slot)) else {
            continue;
        };
        if !fresh(ctx, h.seen) || h.data.len() < 20 || h.data.len() > FRAG_HOLD_BYTES {
            continue;
        }
        ctx.note(Rule::HeldFragmentReleased);
        let mut f = ctx.out[..ETH_HLEN].to_vec();
        f.extend_from_slice(&h.data);
        ctx.source = f.clone();
        if let Some(held_ip) = parse::ipv4_at(&f, ETH_HLEN, ETH_HLEN + FRAG_HOLD_BYTES) {
            let mut e = Edit::default();
            e.addr(field_at(&held_ip, ctx.dir), new_addr)
                .fix(Slot::ip_header(&held_ip));
            e.apply(&mut f);
        }
        ctx.out = f;
        ctx.bump(Counter::FragmentsReleased);
    }
}
