//! IPFIX export of NAT events (`--ipfix COLLECTOR:PORT`): RFC 7011
//! messages over UDP carrying the information elements RFC 8158 defines
//! for logging NAT events, so collectors, SIEMs and lawful-intercept
//! tooling read xnat's bindings as they read any CGNAT's.
//!
//! One template, "NAT44 BIB create/delete" (RFC 8158 §4.3 mapping events
//! of a NAPT: xnat's binding is an endpoint-independent mapping, a BIB
//! entry): observationTimeMilliseconds, natEvent (8 create, 9 delete),
//! sourceIPv4Address, postNATSourceIPv4Address, protocolIdentifier,
//! sourceTransportPort, postNAPTSourceTransportPort. The records are the
//! translation log's (`translog`): the same creations and deletions, the
//! same late ones. Over UDP the template goes out with the first message
//! and then at least every [`TEMPLATE_REFRESH`] (RFC 7011 §8.4); records
//! are batched into messages of at most [`MAX_MESSAGE`] bytes, sent once
//! per batch of events. Sending never blocks the agent: a failed send is
//! counted and reported, and the records are lost as UDP loses them.
use std::{
    io,
    net::{SocketAddr, UdpSocket},
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

/// IPFIX version number (RFC 7011 §3.1).
const VERSION: u16 = 10;
const TEMPLATE_SET: u16 = 2;
/// The data set of the binding template.
const BIB_TEMPLATE: u16 = 256;
/// natEvent values (RFC 8158 §4.1, IANA "natEvent Values").
pub const NAT44_BIB_CREATE: u8 = 8;
pub const NAT44_BIB_DELETE: u8 = 9;
/// The template's fields: (information element, length).
const BIB_FIELDS: [(u16, u16); 7] = [
    (323, 8), // observationTimeMilliseconds
    (230, 1), // natEvent
    (8, 4),   // sourceIPv4Address
    (225, 4), // postNATSourceIPv4Address
    (4, 1),   // protocolIdentifier
    (7, 2),   // sourceTransportPort
    (227, 2), // postNAPTSourceTransportPort
];
const BIB_RECORD: usize = 8 + 1 + 4 + 4 + 1 + 2 + 2;
const MESSAGE_HEADER: usize = 16;
const SET_HEADER: usize = 4;
/// Below a 1500-byte path MTU with IPv4 and UDP headers.
pub const MAX_MESSAGE: usize = 1400;
/// How often the template is sent again over UDP.
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

pub struct Exporter {
    collector: SocketAddr,
    sock: UdpSocket,
    /// Observation domain: the external interface's index, unique per
    /// attachment on this host.
    domain: u32,
    /// Data records sent so far (the header's sequence number).
    sent: u32,
    /// Records waiting for the next message.
    pending: Vec<[u8; BIB_RECORD]>,
    template_sent: Option<Instant>,
    pub send_errors: u64,
    /// Bytes of the messages sent (IPFIX headers included, not UDP's).
    pub bytes_sent: u64,
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
        })
    }

    pub fn collector(&self) -> SocketAddr {
        self.collector
    }

    /// Queues one binding event (sent by [`Exporter::flush`]).
    pub fn bib(&mut self, ev: &BibEvent) {
        let ms = ev
            .time
            .duration_since(UNIX_EPOCH)
            .unwrap_or(Duration::ZERO)
            .as_millis() as u64;
        let mut r = [0u8; BIB_RECORD];
        r[0..8].copy_from_slice(&ms.to_be_bytes());
        r[8] = ev.nat_event;
        // Addresses and ports are already in network order.
        r[9..13].copy_from_slice(&ev.inside_addr.to_ne_bytes());
        r[13..17].copy_from_slice(&ev.public_addr.to_ne_bytes());
        r[17] = ev.proto;
        r[18..20].copy_from_slice(&ev.inside_port.to_ne_bytes());
        r[20..22].copy_from_slice(&ev.public_port.to_ne_bytes());
        self.pending.push(r);
    }

    /// Sends what is queued (and the template when it is due).
    pub fn flush(&mut self) {
        let template_due = self
            .template_sent
            .is_none_or(|t| t.elapsed() >= TEMPLATE_REFRESH);
        if self.pending.is_empty() && !template_due {
            return;
        }
        let mut template = template_due;
        let mut records = std::mem::take(&mut self.pending);
        let mut start = 0;
        loop {
            let room = MAX_MESSAGE
                - MESSAGE_HEADER
                - SET_HEADER
                - if template { template_set().len() } else { 0 };
            let n = (room / BIB_RECORD).min(records.len() - start);
            let msg = self.message(template, &records[start..start + n]);
            match self.sock.send(&msg) {
                Ok(n) => self.bytes_sent += n as u64,
                Err(e) => {
                    self.send_errors += 1;
                    // Once per hundred, not per message: a collector
                    // that is down would flood the agent's log.
                    if self.send_errors % 100 == 1 {
                        tracing::warn!("IPFIX to {}: {e}", self.collector);
                    }
                }
            }
            if template {
                self.template_sent = Some(Instant::now());
                template = false;
            }
            self.sent = self.sent.wrapping_add(n as u32);
            start += n;
            if start >= records.len() {
                break;
            }
        }
        records.clear();
        self.pending = records;
    }

    /// One message: header, the template set if asked, the records.
    fn message(&self, template: bool, records: &[[u8; BIB_RECORD]]) -> Vec<u8> {
        let mut m = Vec::with_capacity(MAX_MESSAGE);
        m.extend_from_slice(&[0; MESSAGE_HEADER]);
        if template {
            m.extend_from_slice(&template_set());
        }
        if !records.is_empty() {
            let len = SET_HEADER + records.len() * BIB_RECORD;
            m.extend_from_slice(&BIB_TEMPLATE.to_be_bytes());
            m.extend_from_slice(&(len as u16).to_be_bytes());
            for r in records {
                m.extend_from_slice(r);
            }
        }
        let export_time = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or(Duration::ZERO)
            .as_secs() as u32;
        let len = m.len() as u16;
        m[0..2].copy_from_slice(&VERSION.to_be_bytes());
        m[2..4].copy_from_slice(&len.to_be_bytes());
        m[4..8].copy_from_slice(&export_time.to_be_bytes());
        // Data records sent before this message (RFC 7011 §3.1).
        m[8..12].copy_from_slice(&self.sent.to_be_bytes());
        m[12..16].copy_from_slice(&self.domain.to_be_bytes());
        m
    }
}

/// The template set: the binding template.
fn template_set() -> Vec<u8> {
    let mut t = Vec::new();
    let len = SET_HEADER + 4 + 4 * BIB_FIELDS.len();
    t.extend_from_slice(&TEMPLATE_SET.to_be_bytes());
    t.extend_from_slice(&(len as u16).to_be_bytes());
    t.extend_from_slice(&BIB_TEMPLATE.to_be_bytes());
    t.extend_from_slice(&(BIB_FIELDS.len() as u16).to_be_bytes());
    for (ie, l) in BIB_FIELDS {
        t.extend_from_slice(&ie.to_be_bytes());
        t.extend_from_slice(&l.to_be_bytes());
    }
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
        assert_eq!(tlen, 4 + 4 + 4 * 7);
        let d = &t[tlen..];
        assert_eq!(u16::from_be_bytes([d[0], d[1]]), BIB_TEMPLATE);
        assert_eq!(
            usize::from(u16::from_be_bytes([d[2], d[3]])),
            4 + BIB_RECORD
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
                if id == BIB_TEMPLATE {
                    n = (len - 4) / BIB_RECORD;
                }
                at += len;
            }
            expected_seq += n as u32;
            total += n;
        }
        assert_eq!(total, 150);
    }
}
