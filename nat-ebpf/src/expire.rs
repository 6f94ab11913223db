//! Expiry in the kernel (the agent's default walk): one walk over `NAPT_OUT`
//! with `bpf_for_each_map_elem`, run by the agent's sweep
//! (BPF_PROG_TEST_RUN of `xnat_expire`) instead of copying every mapping to
//! user space and deleting the expired ones by key. The rules are the sweep's own
//! (nat-userspace agent/expiry.rs, which says when it walks here): a
//! mapping's first session goes when idle past its timeout (its slot is
//! emptied in place); a mapping goes once it has no live session — none in
//! its slot, none in `SESSIONS` (the sweep lists those inside endpoints in
//! `EXPIRE_KEEP`) — and has been idle past its own timeout; port forwards
//! never go. A deleted mapping's `NAPT_IN` entry goes with it, the
//! outbound entry first: once that is gone no packet can refresh the
//! mapping, then the public port is released.
//!
//! The kernel walks the table bucket by bucket without locking it: packets
//! go on being translated meanwhile, and a mapping made or deleted during
//! the walk may be seen or not (the next sweep sees it), as with the
//! sweep's batch reads.
use core::ffi::c_void;

use aya_ebpf::helpers::generated::bpf_for_each_map_elem;
use nat_common::{EndpointKey, ExpireWalk, FirstSession, MAPPING_FORWARD, Mapping};

use crate::maps::{EXPIRE, EXPIRE_KEEP, NAPT_IN, NAPT_OUT};

const NS: u64 = 1_000_000_000;

/// Runs one walk with the input in `EXPIRE`, and writes what it did back.
#[inline(always)]
pub fn run() {
    let Some(io) = EXPIRE.get_ptr_mut(0) else {
        return;
    };
    // The walk's state lives on this stack (the callback gets a pointer to
    // it), not in the map value: one copy in, one copy out.
    // SAFETY: a valid map value; one walk at a time (the agent's sweep).
    let mut walk = unsafe { *io };
    walk.mappings_seen = 0;
    walk.sessions_seen = 0;
    walk.sessions_expired = 0;
    walk.mappings_expired = 0;
    // SAFETY: the helper takes the map, a callback of the hash-map callback
    // signature, and a pointer it hands back to the callback.
    unsafe {
        bpf_for_each_map_elem(
            &NAPT_OUT as *const _ as *mut c_void,
            visit as *mut c_void,
            &mut walk as *mut ExpireWalk as *mut c_void,
            0,
        );
        *io = walk;
    }
}

/// One mapping; always 0 (go on).
#[inline(never)]
unsafe extern "C" fn visit(
    _map: *mut c_void,
    key: *const EndpointKey,
    value: *mut Mapping,
    walk: *mut ExpireWalk,
) -> i64 {
    // SAFETY: the kernel passes the element's key and value and our pointer.
    let (k, m, w) = unsafe { (&*key, &mut *value, &mut *walk) };
    w.mappings_seen += 1;
    let now = w.now;
    let idle_for = |last: u64, secs: u32| now.saturating_sub(last) > secs as u64 * NS;
    let mut first_live = m.first.live != 0;
    let mut first_died = false;
    if first_live {
        w.sessions_seen += 1;
        if idle_for(
            m.first.last_seen,
            w.cfg.session_timeout(k.proto, m.first.tcp),
        ) {
            w.sessions_expired += 1;
            (first_live, first_died) = (false, true);
        }
    }
    let stays = m.flags & MAPPING_FORWARD != 0
        || first_live
        || !idle_for(m.last_seen, w.cfg.mapping_timeout(k.proto))
        || (w.keep != 0 && EXPIRE_KEEP.get_ptr(k).is_some());
    if stays {
        if first_died {
            // The mapping stays (another session lives, or it was used
            // lately): sessions made from now on go to SESSIONS (see
            // Mapping::first). A packet counted on the session between the
            // check and this store is lost with it. Emptied whole, as the
            // sweep in user space empties it.
            m.first = FirstSession::default();
        }
        return 0;
    }
    let public = EndpointKey {
        addr: m.addr,
        port: m.port,
        proto: k.proto,
        _pad: 0,
    };
    // Gone already: deleted by someone else since the walk reached it (a
    // flush), who releases its port.
    if NAPT_OUT.remove(k).is_ok() {
        let _ = NAPT_IN.remove(&public);
        w.mappings_expired += 1;
    }
    0
}
