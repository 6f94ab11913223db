//! The outside half of the flood: TCP SYNs to one public endpoint (a port
//! forward), each from a spoofed random source, sent from a raw IPv4 socket
//! (IP_HDRINCL) as fast as one thread can, or paced.

use std::net::{Ipv4Addr, SocketAddrV4};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::frame::{Packet, Tcp};
use crate::hairpin_topo::{RawIp, XorShift};

/// The spoofed sources' prefix, 100.64.0.0/10 (shared address space):
/// 4 million addresses no host of the topology has, so the answers to them
/// go nowhere but where the router's blackhole route sends them.
pub const SPOOFED_PREFIX: &str = "100.64.0.0/10";
const SPOOFED_BASE: u32 = 0x6440_0000;
const SPOOFED_HOST_BITS: u32 = 0x003f_ffff;

/// `burst` SYNs, then a pause of `pause`, and so on.
#[derive(Clone, Copy, Debug)]
pub struct Pace {
    pub burst: u32,
    pub pause: Duration,
}

/// What to send.
#[derive(Clone, Debug)]
pub struct SynFlood {
    /// Where every SYN goes.
    pub target: SocketAddrV4,
    /// At most this many SYNs; `None`: until [`FloodProgress::stop`].
    pub limit: Option<u64>,
    /// `None`: as fast as the sending thread can.
    pub pace: Option<Pace>,
    /// Seed of the sources, ports and sequence numbers (same seed, same SYNs).
    pub seed: u64,
}

/// Shared between the flood's thread and whoever watches it: how many SYNs
/// have gone so far, and the request to stop.
#[derive(Debug, Default)]
pub struct FloodProgress {
    sent: AtomicU64,
    stop: AtomicBool,
}

impl FloodProgress {
    /// SYNs sent so far.
    pub fn sent(&self) -> u64 {
        self.sent.load(Ordering::Relaxed)
    }

    /// Asks the flood to end after the SYN it is sending.
    pub fn stop(&self) {
        self.stop.store(true, Ordering::Relaxed);
    }

    fn stopped(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }
}

/// What a finished flood did.
#[derive(Clone, Copy, Debug, Default)]
pub struct FloodRun {
    pub sent: u64,
    /// From the first SYN to the last.
    pub secs: f64,
}

impl FloodRun {
    /// SYNs per second.
    pub fn rate(&self) -> f64 {
        self.sent as f64 / self.secs.max(1e-9)
    }
}

impl SynFlood {
    /// Sends the flood from `raw` (a raw socket in an outside namespace),
    /// counting in `progress`, until the limit or a stop request.
    pub fn run(&self, raw: &RawIp, progress: &FloodProgress) -> FloodRun {
        let mut rng = XorShift(self.seed);
        let start = Instant::now();
        let mut sent = 0u64;
        while !progress.stopped() && self.limit.is_none_or(|n| sent < n) {
            raw.send(&spoofed_syn(&mut rng, self.target))
                .expect("send a spoofed SYN");
            sent += 1;
            progress.sent.store(sent, Ordering::Relaxed);
            if let Some(p) = self.pace
                && sent.is_multiple_of(u64::from(p.burst.max(1)))
            {
                std::thread::sleep(p.pause);
            }
        }
        FloodRun {
            sent,
            secs: start.elapsed().as_secs_f64(),
        }
    }
}

/// One SYN to `target` from a random source of [`SPOOFED_PREFIX`] (never
/// its network address), a random port and sequence number.
fn spoofed_syn(rng: &mut XorShift, target: SocketAddrV4) -> Vec<u8> {
    let r = rng.next_u64();
    let src = Ipv4Addr::from(SPOOFED_BASE | (r as u32 & SPOOFED_HOST_BITS) | 1);
    let sport = 1024 + ((r >> 32) as u16 % 60000);
    let mut syn = Tcp::syn(sport, target.port());
    syn.seq = (r >> 16) as u32;
    Packet::tcp(src, *target.ip(), syn)
        .with_id(r as u16)
        .ip_bytes()
}
