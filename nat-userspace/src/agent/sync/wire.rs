//! The binding sync datagram. One UDP datagram:
//!
//! ```text
//! 0       4        5       6        8
//! "XNS1"  version  flags   count    (count: u16, network order)
//! then `count` records of 16 bytes:
//! proto u8, pad u8, inside_port u16, inside_addr u32, public_addr u32,
//! public_port u16, pad u16           (addresses and ports in network order)
//! then, if flags has FLAG_MAC: HMAC-SHA256 of everything before it,
//! truncated to 16 bytes
//! ```
//!
//! At most [`MAX_RECORDS`] records, so a datagram (8 + 80 * 16 + 16 =
//! 1304 bytes) never needs fragmenting on a 1500-byte link.
use hmac::{Hmac, Mac};
use sha2::Sha256;

pub const MAGIC: [u8; 4] = *b"XNS1";
pub const VERSION: u8 = 1;
/// `flags`: a MAC follows the records.
pub const FLAG_MAC: u8 = 1;
pub const HEADER_LEN: usize = 8;
pub const RECORD_LEN: usize = 16;
pub const MAC_LEN: usize = 16;
pub const MAX_RECORDS: usize = 80;
/// The largest datagram: a full one with its MAC.
pub const MAX_DATAGRAM: usize = HEADER_LEN + MAX_RECORDS * RECORD_LEN + MAC_LEN;

/// One mapping: addresses and ports as the maps hold them (network order
/// in a native integer, so `to_ne_bytes` gives the wire's bytes).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Record {
    pub proto: u8,
    pub inside_addr: u32,
    pub inside_port: u16,
    pub public_addr: u32,
    pub public_port: u16,
}

/// Why a datagram was refused as a whole (the `reason` label of
/// `xnat_sync_rejected_total`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reject {
    /// Shorter than the header.
    Short,
    Magic,
    Version,
    /// The length is not the header, `count` records and the MAC (if
    /// flagged), or `count` is above [`MAX_RECORDS`].
    Length,
    /// Keyed and the MAC is missing or wrong, or a MAC where no key is set.
    Mac,
}

impl Reject {
    pub fn name(self) -> &'static str {
        match self {
            Reject::Short => "short",
            Reject::Magic => "magic",
            Reject::Version => "version",
            Reject::Length => "length",
            Reject::Mac => "mac",
        }
    }
}

fn mac(key: &[u8], data: &[u8]) -> Hmac<Sha256> {
    let mut m = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes keys of any length");
    m.update(data);
    m
}

/// Encodes `records` (at most [`MAX_RECORDS`]) into one datagram, with a
/// MAC if `key` is given.
pub fn encode(records: &[Record], key: Option<&[u8]>) -> Vec<u8> {
    assert!(records.len() <= MAX_RECORDS, "{} records", records.len());
    let mut out = Vec::with_capacity(MAX_DATAGRAM);
    out.extend_from_slice(&MAGIC);
    out.push(VERSION);
    out.push(if key.is_some() { FLAG_MAC } else { 0 });
    out.extend_from_slice(&(records.len() as u16).to_be_bytes());
    for r in records {
        out.push(r.proto);
        out.push(0);
        out.extend_from_slice(&r.inside_port.to_ne_bytes());
        out.extend_from_slice(&r.inside_addr.to_ne_bytes());
        out.extend_from_slice(&r.public_addr.to_ne_bytes());
        out.extend_from_slice(&r.public_port.to_ne_bytes());
        out.extend_from_slice(&[0, 0]);
    }
    if let Some(k) = key {
        let tag = mac(k, &out).finalize().into_bytes();
        out.extend_from_slice(&tag[..MAC_LEN]);
    }
    out
}

/// Decodes a datagram; a MAC is required (and checked) exactly when
/// `key` is given.
pub fn decode(data: &[u8], key: Option<&[u8]>) -> Result<Vec<Record>, Reject> {
    if data.len() < HEADER_LEN {
        return Err(Reject::Short);
    }
    if data[..4] != MAGIC {
        return Err(Reject::Magic);
    }
    if data[4] != VERSION {
        return Err(Reject::Version);
    }
    let flagged = data[5] & FLAG_MAC != 0;
    let count = usize::from(u16::from_be_bytes([data[6], data[7]]));
    let body = HEADER_LEN + count * RECORD_LEN;
    let want = body + if flagged { MAC_LEN } else { 0 };
    if count > MAX_RECORDS || data.len() != want {
        return Err(Reject::Length);
    }
    match key {
        Some(k) if flagged => mac(k, &data[..body])
            .verify_truncated_left(&data[body..])
            .map_err(|_| Reject::Mac)?,
        None if !flagged => {}
        _ => return Err(Reject::Mac),
    }
    let u16_at = |b: &[u8], i: usize| u16::from_ne_bytes([b[i], b[i + 1]]);
    let u32_at = |b: &[u8], i: usize| u32::from_ne_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
    Ok(data[HEADER_LEN..body]
        .chunks_exact(RECORD_LEN)
        .map(|r| Record {
            proto: r[0],
            inside_port: u16_at(r, 2),
            inside_addr: u32_at(r, 4),
            public_addr: u32_at(r, 8),
            public_port: u16_at(r, 12),
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &[u8] = b"0123456789abcdef";

    fn record(i: u16) -> Record {
        Record {
            proto: 17,
            inside_addr: u32::from_ne_bytes([10, 0, 0, 2]),
            inside_port: (5000 + i).to_be(),
            public_addr: u32::from_ne_bytes([203, 0, 113, 2]),
            public_port: (1024 + i).to_be(),
        }
    }

    #[test]
    fn round_trips_with_and_without_a_key() {
        let records: Vec<Record> = (0..MAX_RECORDS as u16).map(record).collect();
        for key in [None, Some(KEY)] {
            let d = encode(&records, key);
            assert_eq!(
                d.len(),
                HEADER_LEN + records.len() * RECORD_LEN + key.map_or(0, |_| MAC_LEN)
            );
            assert_eq!(decode(&d, key).unwrap(), records);
        }
        assert_eq!(decode(&encode(&[], None), None).unwrap(), vec![]);
    }

    /// The byte layout the README describes.
    #[test]
    fn layout_is_as_documented() {
        let d = encode(&[record(0)], None);
        assert_eq!(&d[..8], b"XNS1\x01\x00\x00\x01");
        assert_eq!(
            &d[8..24],
            &[
                17, 0, 0x13, 0x88, 10, 0, 0, 2, 203, 0, 113, 2, 0x04, 0x00, 0, 0
            ]
        );
    }

    #[test]
    fn rejects_what_is_not_a_datagram_of_ours() {
        let good = encode(&[record(1), record(2)], None);
        assert_eq!(decode(&good[..7], None), Err(Reject::Short));
        assert_eq!(decode(&[], None), Err(Reject::Short));
        let mut m = good.clone();
        m[0] = b'Y';
        assert_eq!(decode(&m, None), Err(Reject::Magic));
        let mut v = good.clone();
        v[4] = 2;
        assert_eq!(decode(&v, None), Err(Reject::Version));
        assert_eq!(decode(&good[..good.len() - 1], None), Err(Reject::Length));
        let mut longer = good.clone();
        longer.push(0);
        assert_eq!(decode(&longer, None), Err(Reject::Length));
        let mut count = good.clone();
        count[7] = 3;
        assert_eq!(decode(&count, None), Err(Reject::Length));
        // Too many records, even if the length agrees.
        let mut many = encode(&[], None);
        many[6..8].copy_from_slice(&81u16.to_be_bytes());
        many.resize(HEADER_LEN + 81 * RECORD_LEN, 0);
        assert_eq!(decode(&many, None), Err(Reject::Length));
    }

    #[test]
    fn the_mac_is_required_and_checked() {
        let keyed = encode(&[record(1)], Some(KEY));
        assert!(decode(&keyed, Some(KEY)).is_ok());
        // Wrong key, a flipped bit anywhere, no MAC, a MAC nobody can check.
        assert_eq!(decode(&keyed, Some(b"another key, 16+")), Err(Reject::Mac));
        for i in 0..keyed.len() {
            let mut bad = keyed.clone();
            bad[i] ^= 0x10;
            assert!(decode(&bad, Some(KEY)).is_err(), "bit flipped at {i}");
        }
        let plain = encode(&[record(1)], None);
        assert_eq!(decode(&plain, Some(KEY)), Err(Reject::Mac));
        assert_eq!(decode(&keyed, None), Err(Reject::Mac));
    }

    /// Whatever the bytes, decoding answers without panicking.
    #[test]
    fn arbitrary_bytes_never_panic() {
        let mut x: u32 = 0x1234_5678;
        for len in 0..400 {
            let mut d: Vec<u8> = (0..len)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 17;
                    x ^= x << 5;
                    x as u8
                })
                .collect();
            if len >= 8 {
                d[..5].copy_from_slice(b"XNS1\x01");
            }
            let _ = decode(&d, None);
            let _ = decode(&d, Some(KEY));
        }
    }
}
