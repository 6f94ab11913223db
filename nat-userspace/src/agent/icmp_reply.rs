//! Answering "no public port left" with ICMP destination unreachable,
//! code 13 (communication administratively prohibited), as RFC 5508 asks
//! (README, "How NAPT behaves": port exhaustion). The data plane drops the packet and hands its header to
//! the agent through the EVENTS ring buffer; the agent sends the error from
//! a raw socket, so the kernel picks the source address on the route back
//! to the inside host.
use std::{io, net::Ipv4Addr, os::fd::OwnedFd};

use nat_common::csum;

pub struct IcmpSender {
    sock: OwnedFd,
}

impl IcmpSender {
    pub fn new() -> io::Result<Self> {
        // SAFETY: plain socket(2); ownership moves into OwnedFd.
        let fd = unsafe {
            libc::socket(
                libc::AF_INET,
                libc::SOCK_RAW | libc::SOCK_CLOEXEC,
                libc::IPPROTO_ICMP,
            )
        };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(Self {
            sock: unsafe { std::os::fd::FromRawFd::from_raw_fd(fd) },
        })
    }

    /// Sends type 3 code 13 quoting `quote` (the dropped datagram's IPv4
    /// header and 8 bytes) to the datagram's source.
    pub fn admin_prohibited(&self, quote: &[u8]) -> io::Result<Ipv4Addr> {
        if quote.len() < 28 || quote[0] >> 4 != 4 {
            return Err(io::Error::new(io::ErrorKind::InvalidData, "bad quote"));
        }
        let to = Ipv4Addr::new(quote[12], quote[13], quote[14], quote[15]);
        let mut msg = Vec::with_capacity(8 + quote.len());
        msg.extend_from_slice(&[3, 13, 0, 0, 0, 0, 0, 0]);
        msg.extend_from_slice(quote);
        let c = csum::checksum(&msg);
        msg[2..4].copy_from_slice(&c.to_be_bytes());
        let addr = libc::sockaddr_in {
            sin_family: libc::AF_INET as libc::sa_family_t,
            sin_port: 0,
            sin_addr: libc::in_addr {
                s_addr: u32::from_ne_bytes(to.octets()),
            },
            sin_zero: [0; 8],
        };
        // SAFETY: valid buffer and sockaddr for the duration of the call.
        let rc = unsafe {
            libc::sendto(
                std::os::fd::AsRawFd::as_raw_fd(&self.sock),
                msg.as_ptr().cast(),
                msg.len(),
                0,
                (&addr as *const libc::sockaddr_in).cast(),
                std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
            )
        };
        if rc < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(to)
        }
    }
}
