//! Facts about network interfaces in the current network namespace.
use std::ffi::CString;

use anyhow::bail;

/// The interface index of `name`, or a clear error if there is none.
pub fn ifindex(name: &str) -> anyhow::Result<u32> {
    if name.is_empty() || name.len() >= libc::IFNAMSIZ {
        bail!("invalid interface name '{name}'");
    }
    let c = CString::new(name)?;
    // SAFETY: valid NUL-terminated string.
    let idx = unsafe { libc::if_nametoindex(c.as_ptr()) };
    if idx == 0 {
        bail!("no such interface: {name}");
    }
    Ok(idx)
}

#[repr(C)]
struct EthtoolDrvinfo {
    cmd: u32,
    driver: [u8; 32],
    version: [u8; 32],
    fw_version: [u8; 32],
    bus_info: [u8; 32],
    erom_version: [u8; 32],
    reserved2: [u8; 12],
    n_priv_flags: u32,
    n_stats: u32,
    testinfo_len: u32,
    eedump_len: u32,
    regdump_len: u32,
}

#[repr(C)]
struct IfreqData {
    name: [u8; libc::IFNAMSIZ],
    data: *mut libc::c_void,
    _pad: [u8; 16],
}

const SIOCETHTOOL: libc::c_ulong = 0x8946;
const ETHTOOL_GDRVINFO: u32 = 0x3;

/// Driver name and bus address of an interface (ethtool -i), if it has a
/// driver that answers.
pub fn driver_info(name: &str) -> Option<(String, String)> {
    // SAFETY: plain socket(2); closed by OwnedFd below.
    let sock = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if sock < 0 {
        return None;
    }
    let sock = unsafe { <std::os::fd::OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(sock) };
    // SAFETY: zeroed POD structs.
    let mut info: EthtoolDrvinfo = unsafe { std::mem::zeroed() };
    info.cmd = ETHTOOL_GDRVINFO;
    let mut req = IfreqData {
        name: [0; libc::IFNAMSIZ],
        data: (&mut info as *mut EthtoolDrvinfo).cast(),
        _pad: [0; 16],
    };
    let n = name.len().min(libc::IFNAMSIZ - 1);
    req.name[..n].copy_from_slice(&name.as_bytes()[..n]);
    // SAFETY: SIOCETHTOOL with a valid ifreq whose data points at `info`.
    let rc = unsafe {
        libc::ioctl(
            std::os::fd::AsRawFd::as_raw_fd(&sock),
            SIOCETHTOOL,
            &mut req as *mut IfreqData,
        )
    };
    if rc != 0 {
        return None;
    }
    let cstr = |b: &[u8]| {
        let end = b.iter().position(|&c| c == 0).unwrap_or(b.len());
        String::from_utf8_lossy(&b[..end]).into_owned()
    };
    Some((cstr(&info.driver), cstr(&info.bus_info)))
}

/// Whether `name` is a virtual device (veth, bridge, tun, ...): those have
/// no bus address. On them XDP cannot see the skb's checksum state, so the
/// `auto` ingress mode picks TC (DESIGN.md §2).
pub fn is_virtual(name: &str) -> bool {
    match driver_info(name) {
        Some((_, bus)) => bus.is_empty() || bus == "N/A",
        None => true,
    }
}

/// The IPv4 addresses of `name`, primary first (kernel order).
pub fn ipv4_addrs(name: &str) -> anyhow::Result<Vec<std::net::Ipv4Addr>> {
    addrs_of(Some(name))
}

/// Every IPv4 address of this network namespace, on any device.
pub fn local_ipv4_addrs() -> anyhow::Result<Vec<std::net::Ipv4Addr>> {
    addrs_of(None)
}

/// The IPv4 addresses of device `name`, or of all devices.
fn addrs_of(name: Option<&str>) -> anyhow::Result<Vec<std::net::Ipv4Addr>> {
    let mut head: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs allocates a list we free below.
    if unsafe { libc::getifaddrs(&mut head) } != 0 {
        return Err(std::io::Error::last_os_error().into());
    }
    let mut out = Vec::new();
    let mut cur = head;
    while !cur.is_null() {
        // SAFETY: walking the list getifaddrs returned.
        let ifa = unsafe { &*cur };
        let ifname = unsafe { std::ffi::CStr::from_ptr(ifa.ifa_name) };
        if name.is_none_or(|n| ifname.to_bytes() == n.as_bytes()) && !ifa.ifa_addr.is_null() {
            // SAFETY: ifa_addr is a valid sockaddr; checked family first.
            let family = unsafe { (*ifa.ifa_addr).sa_family } as i32;
            if family == libc::AF_INET {
                let sin = unsafe { &*(ifa.ifa_addr as *const libc::sockaddr_in) };
                out.push(std::net::Ipv4Addr::from(sin.sin_addr.s_addr.to_ne_bytes()));
            }
        }
        cur = ifa.ifa_next;
    }
    // SAFETY: freeing what getifaddrs allocated, once.
    unsafe { libc::freeifaddrs(head) };
    Ok(out)
}
