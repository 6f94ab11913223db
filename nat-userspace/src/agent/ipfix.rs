//! IPFIX export of NAT events (`--ipfix COLLECTOR:PORT`): RFC 7011
//! messages over UDP carrying the information elements RFC 8158 defines
//! for logging NAT events, so collectors, SIEMs and lawful-intercept
//! tooling read xnat's bindings as they read any CGNAT's.
//!
//! The templates:
//! * "NAT44 BIB create/delete" (natEvent 8, 9; xnat's binding is an
//!   endpoint-independent mapping, a BIB entry): observationTimeMilliseconds,
//!   natEvent, sourceIPv4Address, postNATSourceIPv4Address,
//!   protocolIdentifier, sourceTransportPort, postNAPTSourceTransportPort.
//!   The records are the translation log's (`translog`): the same
//!   creations and deletions, the same late ones.
//! * "NAT64 BIB create/delete" (natEvent 10, 11): the same with the IPv6
//!   inside host (sourceIPv6Address) for a NAT64 binding.
//! * "NAT ports exhausted" (natEvent 12): the time, the pool address whose
//!   ports ran out (postNATSourceIPv4Address), the protocol, and the inside
//!   host refused (sourceIPv4Address; sourceIPv6Address in a template of
//!   its own for a NAT64 host, as for the quota below).
//! * "Quota exceeded" (natEvent 13), natQuotaExceededEvent 3 ("maximum
//!   entries per user"): the inside host at its cap (`--max-ports-per-host`,
//!   or its blocks' ports under block allocation), with the cap
//!   (maxEntriesPerUser).
//! * "Port block allocation/de-allocation" (natEvent 16, 17; block
//!   allocation): the time, the inside host, the pool address, and the
//!   block (portRangeStart, portRangeEnd, portRangeStepSize 1,
//!   portRangeNumPorts).
//!
//! Over UDP the templates go out with the first message and then at least
//! every [`TEMPLATE_REFRESH`] (RFC 7011 §8.4); records are batched into
//! messages of at most [`MAX_MESSAGE`] bytes, sent once per batch of
//! events. Sending never blocks the agent: a failed send is counted and
//! reported, and the records are lost as UDP loses them.
use std::{
    io,
    net::{SocketAddr, UdpSocket},
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

/// IPFIX version number (RFC 7011 §3.1).
const VERSION: u16 = 10;
const TEMPLATE_SET: u16 = 2;
/// natEvent values (RFC 8158 §4.1, IANA "natEvent Values").
pub const NAT44_BIB_CREATE: u8 = 8;
pub const NAT44_BIB_DELETE: u8 = 9;
pub const NAT64_BIB_CREATE: u8 = 10;
pub const NAT64_BIB_DELETE: u8 = 11;
pub const NAT_PORTS_EXHAUSTED: u8 = 12;
pub const QUOTA_EXCEEDED: u8 = 13;
pub const PORT_BLOCK_ALLOCATION: u8 = 16;
pub const PORT_BLOCK_DEALLOCATION: u8 = 17;
/// natQuotaExceededEvent: maximum entries per user.
const MAX_ENTRIES_PER_USER: u32 = 3;

/// A template: its id and fields (information element, length).
struct Template {
    id: u16,
    fields: &'static [(u16, u16)],
}

impl Template {
    const fn record_len(&self) -> usize {
        let mut n = 0;
        let mut i = 0;
        while i < self.fields.len() {
            n += self.fields[i].1 as usize;
            i += 1;
        }
        n
    }
}

const BIB: Template = Template {
    id: 256,
    fields: &[
        (323, 8), // observationTimeMilliseconds
        (230, 1), // natEvent
        (8, 4),   // sourceIPv4Address
        (225, 4), // postNATSourceIPv4Address
        (4, 1),   // protocolIdentifier
        (7, 2),   // sourceTransportPort
        (227, 2), // postNAPTSourceTransportPort
    ],
};
const PORTS_EXHAUSTED: Template = Template {
    id: 257,
    fields: &[
        (323, 8), // observationTimeMilliseconds
        (230, 1), // natEvent
        (225, 4), // postNATSourceIPv4Address
        (4, 1),   // protocolIdentifier
        (8, 4),   // sourceIPv4Address
    ],
};
const QUOTA: Template = Template {
    id: 258,
    fields: &[
        (323, 8), // observationTimeMilliseconds
        (230, 1), // natEvent
        (466, 4), // natQuotaExceededEvent
        (473, 4), // maxEntriesPerUser
        (8, 4),   // sourceIPv4Address
    ],
};
const PORT_BLOCK: Template = Template {
    id: 259,
    fields: &[
        (323, 8), // observationTimeMilliseconds
        (230, 1), // natEvent
        (8, 4),   // sourceIPv4Address
        (225, 4), // postNATSourceIPv4Address
        (361, 2), // portRangeStart
        (362, 2), // portRangeEnd
        (363, 2), // portRangeStepSize
        (364, 2), // portRangeNumPorts
    ],
};
const BIB64: Template = Template {
    id: 260,
    fields: &[
        (323, 8), // observationTimeMilliseconds
        (230, 1), // natEvent
        (27, 16), // sourceIPv6Address
        (225, 4), // postNATSourceIPv4Address
        (4, 1),   // protocolIdentifier
        (7, 2),   // sourceTransportPort
        (227, 2), // postNAPTSourceTransportPort
    ],
};
const PORTS_EXHAUSTED64: Template = Template {
    id: 261,
    fields: &[
        (323, 8), // observationTimeMilliseconds
        (230, 1), // natEvent
        (225, 4), // postNATSourceIPv4Address
        (4, 1),   // protocolIdentifier
        (27, 16), // sourceIPv6Address
    ],
};
const QUOTA64: Template = Template {
    id: 262,
    fields: &[
        (323, 8), // observationTimeMilliseconds
        (230, 1), // natEvent
        (466, 4), // natQuotaExceededEvent
        (473, 4), // maxEntriesPerUser
        (27, 16), // sourceIPv6Address
    ],
};
const TEMPLATES: [&Template; 7] = [
    &BIB,
    &PORTS_EXHAUSTED,
    &QUOTA,
    &PORT_BLOCK,
    &BIB64,
    &PORTS_EXHAUSTED64,
    &QUOTA64,
];

const MESSAGE_HEADER: usize = 16;
const SET_HEADER: usize = 4;
/// Below a 1500-byte path MTU with IPv4 and UDP headers.
pub const MAX_MESSAGE: usize = 1400;
/// How often the templates are sent again over UDP.
pub const TEMPLATE_REFRESH: Duration = Duration::from_secs(60);

/// One binding event, in network byte order as the tables hold it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BibEvent {
    pub time: SystemTime,
    pub nat_event: u8,
    pub proto: u8,
    pub inside_addr: u32,
    pub inside_port: u16,
    pub public_addr: u32,
    pub public_port: u16,
}

/// An inside host as a record names it: IPv4, or IPv6 for a NAT64 host.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InsideHost {
    /// Network order, as the tables hold it.
    V4(u32),
    V6(std::net::Ipv6Addr),
}

pub struct Exporter {
    collector: SocketAddr,
    sock: UdpSocket,
    /// Observation domain: the external interface's index, unique per
    /// attachment on this host.
    domain: u32,
    /// Data records sent so far (the header's sequence number).
    sent: u32,
    /// Records waiting for the next message: template id, bytes.
    pending: Vec<(u16, Vec<u8>)>,
    template_sent: Option<Instant>,
    pub send_errors: u64,
    /// Bytes of the messages sent (IPFIX headers included, not UDP's).
    pub bytes_sent: u64,
    /// Records sent by natEvent, and send errors, since the last
    /// [`Exporter::take_counts`] (for the metrics).
    counts: std::collections::BTreeMap<u8, u64>,
    errors_since: u64,
}

/// The metrics' name of a natEvent value.
pub fn event_name(nat_event: u8) -> &'static str {
    match nat_event {
        NAT44_BIB_CREATE => "nat44-bib-create",
        NAT44_BIB_DELETE => "nat44-bib-delete",
        NAT64_BIB_CREATE => "nat64-bib-create",
        NAT64_BIB_DELETE => "nat64-bib-delete",
        NAT_PORTS_EXHAUSTED => "ports-exhausted",
        QUOTA_EXCEEDED => "quota-exceeded",
        PORT_BLOCK_ALLOCATION => "port-block-allocation",
        PORT_BLOCK_DEALLOCATION => "port-block-deallocation",
        _ => "other",
    }
}

/// sourceIPv4Address or sourceIPv6Address.
fn push_host(r: &mut Vec<u8>, host: InsideHost) {
    match host {
        InsideHost::V4(a) => r.extend_from_slice(&a.to_ne_bytes()),
        InsideHost::V6(a) => r.extend_from_slice(&a.octets()),
    }
}

fn millis(t: SystemTime) -> [u8; 8] {
    (t.duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_millis() as u64)
        .to_be_bytes()
}

impl Exporter {
    /// An exporter to `collector` for observation domain `domain`.
    pub fn new(collector: SocketAddr, domain: u32) -> io::Result<Self> {
        let bind: SocketAddr = if collector.is_ipv4() {
            "0.0.0.0:0".parse().expect("address")
        } else {
            "[::]:0".parse().expect("address")
        };
        let sock = UdpSocket::bind(bind)?;
        sock.connect(collector)?;
        sock.set_nonblocking(true)?;
        Ok(Exporter {
            collector,
            sock,
            domain,
            sent: 0,
            pending: Vec::new(),
            template_sent: None,
            send_errors: 0,
            bytes_sent: 0,
            counts: Default::default(),
            errors_since: 0,
        })
    }

    /// Records sent by natEvent and send errors since the last call.
    pub fn take_counts(&mut self) -> (Vec<(u8, u64)>, u64) {
        let counts = std::mem::take(&mut self.counts).into_iter().collect();
        (counts, std::mem::take(&mut self.errors_since))
    }

    pub fn collector(&self) -> SocketAddr {
        self.collector
    }

    /// Queues one binding event (sent by [`Exporter::flush`]).
    pub fn bib(&mut self, ev: &BibEvent) {
        let mut r = Vec::with_capacity(BIB.record_len());
        r.extend_from_slice(&millis(ev.time));
        r.push(ev.nat_event);
        // Addresses and ports are already in network order.
        r.extend_from_slice(&ev.inside_addr.to_ne_bytes());
        r.extend_from_slice(&ev.public_addr.to_ne_bytes());
        r.push(ev.proto);
        r.extend_from_slice(&ev.inside_port.to_ne_bytes());
        r.extend_from_slice(&ev.public_port.to_ne_bytes());
        self.pending.push((BIB.id, r));
    }

    /// Queues a NAT64 binding event (natEvent 10 or 11): `ev` with its
    /// inside address the IPv6 host `host` stands for.
    pub fn bib64(&mut self, ev: &BibEvent, host: std::net::Ipv6Addr) {
        let mut r = Vec::with_capacity(BIB64.record_len());
        r.extend_from_slice(&millis(ev.time));
        r.push(ev.nat_event);
        r.extend_from_slice(&host.octets());
        r.extend_from_slice(&ev.public_addr.to_ne_bytes());
        r.push(ev.proto);
        r.extend_from_slice(&ev.inside_port.to_ne_bytes());
        r.extend_from_slice(&ev.public_port.to_ne_bytes());
        self.pending.push((BIB64.id, r));
    }

    /// Queues "NAT ports exhausted": `public` (network order) had no port
    /// of `proto` left for inside host `host`.
    pub fn ports_exhausted(&mut self, time: SystemTime, host: InsideHost, public: u32, proto: u8) {
        let tpl = match host {
            InsideHost::V4(_) => &PORTS_EXHAUSTED,
            InsideHost::V6(_) => &PORTS_EXHAUSTED64,
        };
        let mut r = Vec::with_capacity(tpl.record_len());
        r.extend_from_slice(&millis(time));
        r.push(NAT_PORTS_EXHAUSTED);
        r.extend_from_slice(&public.to_ne_bytes());
        r.push(proto);
        push_host(&mut r, host);
        self.pending.push((tpl.id, r));
    }

    /// Queues "Quota exceeded": inside host `host` holds `limit` ports, its
    /// cap.
    pub fn quota_exceeded(&mut self, time: SystemTime, host: InsideHost, limit: u32) {
        let tpl = match host {
            InsideHost::V4(_) => &QUOTA,
            InsideHost::V6(_) => &QUOTA64,
        };
        let mut r = Vec::with_capacity(tpl.record_len());
        r.extend_from_slice(&millis(time));
        r.push(QUOTA_EXCEEDED);
        r.extend_from_slice(&MAX_ENTRIES_PER_USER.to_be_bytes());
        r.extend_from_slice(&limit.to_be_bytes());
        push_host(&mut r, host);
        self.pending.push((tpl.id, r));
    }

    /// Queues a port block event: block `lo..=hi` (host order) of pool
    /// address `public` allocated to (or released by) inside host `host`
    /// (both network order).
    pub fn port_block(
        &mut self,
        time: SystemTime,
        allocated: bool,
        host: u32,
        public: u32,
        (lo, hi): (u16, u16),
    ) {
        let mut r = Vec::with_capacity(PORT_BLOCK.record_len());
        r.extend_from_slice(&millis(time));
        r.push(if allocated {
            PORT_BLOCK_ALLOCATION
        } else {
            PORT_BLOCK_DEALLOCATION
        });
        r.extend_from_slice(&host.to_ne_bytes());
        r.extend_from_slice(&public.to_ne_bytes());
        r.extend_from_slice(&lo.to_be_bytes());
        r.extend_from_slice(&hi.to_be_bytes());
        r.extend_from_slice(&1u16.to_be_bytes());
        r.extend_from_slice(&(hi - lo).wrapping_add(1).to_be_bytes());
        self.pending.push((PORT_BLOCK.id, r));
    }

    /// Sends what is queued (and the templates when they are due).
    pub fn flush(&mut self) {
        let template_due = self
            .template_sent
            .is_none_or(|t| t.elapsed() >= TEMPLATE_REFRESH);
        if self.pending.is_empty() && !template_due {
            return;
        }
        let records = std::mem::take(&mut self.pending);
        let mut msg = Message::new(template_due);
        for (id, r) in &records {
            if !msg.fits(*id, r.len()) {
                self.send(&mut msg);
                msg = Message::new(false);
            }
            msg.push(*id, r);
        }
        self.send(&mut msg);
        if template_due {
            self.template_sent = Some(Instant::now());
        }
    }

    fn send(&mut self, msg: &mut Message) {
        let bytes = msg.finish(self.sent, self.domain);
        self.sent = self.sent.wrapping_add(msg.events.len() as u32);
        match self.sock.send(&bytes) {
            Ok(n) => {
                self.bytes_sent += n as u64;
                for e in &msg.events {
                    *self.counts.entry(*e).or_default() += 1;
                }
            }
            Err(e) => {
                self.send_errors += 1;
                self.errors_since += 1;
                // Once per hundred, not per message: a collector that is
                // down would flood the agent's log.
                if self.send_errors % 100 == 1 {
                    tracing::warn!("IPFIX to {}: {e}", self.collector);
                }
            }
        }
    }
}

/// A message being built: header room, the template set if asked, data
/// sets of consecutive records of one template.
struct Message {
    bytes: Vec<u8>,
    /// Where the open data set's header is, and its template.
    set: Option<(usize, u16)>,
    /// The natEvent of each data record in it.
    events: Vec<u8>,
}

impl Message {
    fn new(templates: bool) -> Self {
        let mut bytes = Vec::with_capacity(MAX_MESSAGE);
        bytes.extend_from_slice(&[0; MESSAGE_HEADER]);
        if templates {
            bytes.extend_from_slice(&template_set());
        }
        Message {
            bytes,
            set: None,
            events: Vec::new(),
        }
    }

    /// Whether a record of `len` bytes of template `id` still fits.
    fn fits(&self, id: u16, len: usize) -> bool {
        let new_set = self.set.is_none_or(|(_, t)| t != id);
        self.bytes.len() + len + if new_set { SET_HEADER } else { 0 } <= MAX_MESSAGE
    }

    fn push(&mut self, id: u16, record: &[u8]) {
        if self.set.is_none_or(|(_, t)| t != id) {
            self.close_set();
            self.set = Some((self.bytes.len(), id));
            self.bytes.extend_from_slice(&id.to_be_bytes());
            self.bytes.extend_from_slice(&[0, 0]);
        }
        self.bytes.extend_from_slice(record);
        // Every template has the time, then natEvent.
        self.events.push(record[8]);
    }

    fn close_set(&mut self) {
        if let Some((at, _)) = self.set.take() {
            let len = (self.bytes.len() - at) as u16;
            self.bytes[at + 2..at + 4].copy_from_slice(&len.to_be_bytes());
        }
    }

    /// The message with its header: `sequence` data records sent before
    /// it (RFC 7011 §3.1), observation domain `domain`.
    fn finish(&mut self, sequence: u32, domain: u32) -> Vec<u8> {
        self.close_set();
        let export_time = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or(Duration::ZERO)
            .as_secs() as u32;
        let mut m = std::mem::take(&mut self.bytes);
        let len = m.len() as u16;
        m[0..2].copy_from_slice(&VERSION.to_be_bytes());
        m[2..4].copy_from_slice(&len.to_be_bytes());
        m[4..8].copy_from_slice(&export_time.to_be_bytes());
        m[8..12].copy_from_slice(&sequence.to_be_bytes());
        m[12..16].copy_from_slice(&domain.to_be_bytes());
        m
    }
}

/// The template set: every template.
fn template_set() -> Vec<u8> {
    let mut t = vec![0; SET_HEADER];
    t[0..2].copy_from_slice(&TEMPLATE_SET.to_be_bytes());
    for tpl in TEMPLATES {
        t.extend_from_slice(&tpl.id.to_be_bytes());
        t.extend_from_slice(&(tpl.fields.len() as u16).to_be_bytes());
        for (ie, l) in tpl.fields {
            t.extend_from_slice(&ie.to_be_bytes());
            t.extend_from_slice(&l.to_be_bytes());
        }
    }
    let len = t.len() as u16;
    t[2..4].copy_from_slice(&len.to_be_bytes());
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(port: u16) -> BibEvent {
        BibEvent {
            time: UNIX_EPOCH + Duration::from_millis(1_796_450_000_123),
            nat_event: NAT44_BIB_CREATE,
            proto: 17,
            inside_addr: u32::from_ne_bytes([10, 0, 0, 2]),
            inside_port: 5000u16.to_be(),
            public_addr: u32::from_ne_bytes([203, 0, 113, 2]),
            public_port: port.to_be(),
        }
    }

    /// Messages as a collector reads them, from a socket of our own.
    fn exported(events: &[BibEvent], flushes: usize) -> Vec<Vec<u8>> {
        let rx = UdpSocket::bind("127.0.0.1:0").unwrap();
        rx.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut x = Exporter::new(rx.local_addr().unwrap(), 7).unwrap();
        let mut out = Vec::new();
        for _ in 0..flushes {
            for e in events {
                x.bib(e);
            }
            x.flush();
        }
        let mut buf = [0u8; 2048];
        while let Ok(n) = rx.recv(&mut buf) {
            out.push(buf[..n].to_vec());
            if rx
                .set_read_timeout(Some(Duration::from_millis(200)))
                .is_err()
            {
                break;
            }
        }
        out
    }

    #[test]
    fn first_message_carries_the_template_then_the_records() {
        let m = &exported(&[ev(40001)], 1)[0];
        assert_eq!(u16::from_be_bytes([m[0], m[1]]), 10);
        assert_eq!(usize::from(u16::from_be_bytes([m[2], m[3]])), m.len());
        assert_eq!(
            u32::from_be_bytes([m[8], m[9], m[10], m[11]]),
            0,
            "sequence"
        );
        assert_eq!(
            u32::from_be_bytes([m[12], m[13], m[14], m[15]]),
            7,
            "domain"
        );
        let t = &m[16..];
        assert_eq!(u16::from_be_bytes([t[0], t[1]]), TEMPLATE_SET);
        let tlen = usize::from(u16::from_be_bytes([t[2], t[3]]));
        assert_eq!(
            tlen,
            4 + 2 * (4 + 4 * 7) + 4 * (4 + 4 * 5) + (4 + 4 * 8),
            "NAT44 and NAT64 BIB, 2 x 2 refusals, port blocks"
        );
        // The first template is the bindings'.
        assert_eq!(u16::from_be_bytes([t[4], t[5]]), BIB.id);
        assert_eq!(u16::from_be_bytes([t[6], t[7]]), 7);
        let d = &t[tlen..];
        assert_eq!(u16::from_be_bytes([d[0], d[1]]), BIB.id);
        assert_eq!(
            usize::from(u16::from_be_bytes([d[2], d[3]])),
            4 + BIB.record_len()
        );
        let r = &d[4..];
        assert_eq!(
            u64::from_be_bytes(r[0..8].try_into().unwrap()),
            1_796_450_000_123
        );
        assert_eq!(r[8], NAT44_BIB_CREATE);
        assert_eq!(&r[9..13], &[10, 0, 0, 2]);
        assert_eq!(&r[13..17], &[203, 0, 113, 2]);
        assert_eq!(r[17], 17);
        assert_eq!(u16::from_be_bytes([r[18], r[19]]), 5000);
        assert_eq!(u16::from_be_bytes([r[20], r[21]]), 40001);
    }

    #[test]
    fn refusals_go_in_sets_of_their_own_templates() {
        let rx = UdpSocket::bind("127.0.0.1:0").unwrap();
        rx.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut x = Exporter::new(rx.local_addr().unwrap(), 1).unwrap();
        let host = u32::from_ne_bytes([10, 0, 0, 2]);
        let t = UNIX_EPOCH + Duration::from_secs(1);
        x.bib(&ev(40001));
        x.ports_exhausted(
            t,
            InsideHost::V4(host),
            u32::from_ne_bytes([203, 0, 113, 2]),
            6,
        );
        x.quota_exceeded(t, InsideHost::V4(host), 64);
        x.bib(&ev(40002));
        x.flush();
        let mut buf = [0u8; 2048];
        let n = rx.recv(&mut buf).unwrap();
        let m = &buf[..n];
        // Sets after the template set: BIB, exhausted, quota, BIB.
        let mut at = 16 + usize::from(u16::from_be_bytes([m[18], m[19]]));
        let mut ids = Vec::new();
        while at < m.len() {
            let id = u16::from_be_bytes([m[at], m[at + 1]]);
            let len = usize::from(u16::from_be_bytes([m[at + 2], m[at + 3]]));
            if id == QUOTA.id {
                let r = &m[at + 4..at + len];
                assert_eq!(r[8], QUOTA_EXCEEDED);
                assert_eq!(u32::from_be_bytes(r[9..13].try_into().unwrap()), 3);
                assert_eq!(u32::from_be_bytes(r[13..17].try_into().unwrap()), 64);
                assert_eq!(&r[17..21], &[10, 0, 0, 2]);
            }
            if id == PORTS_EXHAUSTED.id {
                let r = &m[at + 4..at + len];
                assert_eq!(r[8], NAT_PORTS_EXHAUSTED);
                assert_eq!(&r[9..13], &[203, 0, 113, 2]);
                assert_eq!(r[13], 6);
            }
            ids.push(id);
            at += len;
        }
        assert_eq!(ids, [BIB.id, PORTS_EXHAUSTED.id, QUOTA.id, BIB.id]);
    }

    /// A NAT64 binding's record: natEvent 10 (11), the IPv6 host as
    /// sourceIPv6Address, in the NAT64 BIB template's set; a NAT64 host's
    /// refusal in the IPv6 variant of its template.
    #[test]
    fn nat64_records_carry_the_ipv6_host() {
        let rx = UdpSocket::bind("127.0.0.1:0").unwrap();
        rx.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut x = Exporter::new(rx.local_addr().unwrap(), 1).unwrap();
        let host: std::net::Ipv6Addr = "2001:db8::5".parse().unwrap();
        x.bib64(
            &BibEvent {
                nat_event: NAT64_BIB_CREATE,
                ..ev(40001)
            },
            host,
        );
        x.quota_exceeded(UNIX_EPOCH, InsideHost::V6(host), 64);
        x.flush();
        let mut buf = [0u8; 2048];
        let n = rx.recv(&mut buf).unwrap();
        let m = &buf[..n];
        let t = &m[16..];
        let tlen = usize::from(u16::from_be_bytes([t[2], t[3]]));
        // The NAT64 BIB template: sourceIPv6Address, 16 bytes, third.
        let mut at = 4;
        let mut found = false;
        while at < tlen {
            let id = u16::from_be_bytes([t[at], t[at + 1]]);
            let count = usize::from(u16::from_be_bytes([t[at + 2], t[at + 3]]));
            if id == BIB64.id {
                let f = &t[at + 4 + 2 * 4..at + 4 + 3 * 4];
                assert_eq!(f, &[0, 27, 0, 16]);
                found = true;
            }
            at += 4 + 4 * count;
        }
        assert!(found, "no NAT64 BIB template");
        let d = &t[tlen..];
        assert_eq!(u16::from_be_bytes([d[0], d[1]]), BIB64.id);
        let len = usize::from(u16::from_be_bytes([d[2], d[3]]));
        assert_eq!(len, 4 + BIB64.record_len());
        let r = &d[4..];
        assert_eq!(r[8], NAT64_BIB_CREATE);
        assert_eq!(&r[9..25], &host.octets());
        assert_eq!(&r[25..29], &[203, 0, 113, 2]);
        assert_eq!(r[29], 17);
        assert_eq!(u16::from_be_bytes([r[30], r[31]]), 5000);
        assert_eq!(u16::from_be_bytes([r[32], r[33]]), 40001);
        let q = &d[len..];
        assert_eq!(u16::from_be_bytes([q[0], q[1]]), QUOTA64.id);
        assert_eq!(&q[4 + 17..4 + 33], &host.octets());
        assert_eq!(event_name(NAT64_BIB_CREATE), "nat64-bib-create");
    }

    #[test]
    fn large_batches_split_and_count_in_the_sequence() {
        let events: Vec<BibEvent> = (0..150).map(|i| ev(40000 + i)).collect();
        let msgs = exported(&events, 1);
        assert!(msgs.len() >= 3, "{} messages", msgs.len());
        let mut expected_seq = 0u32;
        let mut total = 0;
        for m in &msgs {
            assert!(m.len() <= MAX_MESSAGE);
            assert_eq!(u32::from_be_bytes([m[8], m[9], m[10], m[11]]), expected_seq);
            // Records in this message: the data set's length.
            let mut at = 16;
            let mut n = 0;
            while at < m.len() {
                let id = u16::from_be_bytes([m[at], m[at + 1]]);
                let len = usize::from(u16::from_be_bytes([m[at + 2], m[at + 3]]));
                if id == BIB.id {
                    n = (len - 4) / BIB.record_len();
                }
                at += len;
            }
            expected_seq += n as u32;
            total += n;
        }
        assert_eq!(total, 150);
    }
}
