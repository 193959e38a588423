//! `recvmmsg(2)`: up to [`SLOTS`] datagrams per system call.
//!
//! A UDP source that reads one datagram per `recvfrom` pays one system
//! call (and, at low rates, one readiness wakeup) per message: at 100k
//! messages/s that is most of its CPU. With `recvmmsg` a burst of 32
//! datagrams costs one call.
//!
//! ```text
//! kernel queue --recvmmsg--> 32 slots (len, peer) --copy--> DatagramBuffer arena --> frames
//! ```
//!
//! Each slot is [`MAX_DATAGRAM`] bytes, so no UDP datagram is ever cut
//! short; the slots are zeroed lazily by the allocator, so only the pages
//! the kernel writes into count in the resident size (one or two per slot
//! for ordinary messages). The `iovec` and `mmsghdr` arrays hold raw
//! pointers into the slots: they are built on the stack for each call, so
//! the receiver stays `Send` and nothing points into it between calls.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::os::fd::{AsRawFd, RawFd};

use super::datagram::MAX_DATAGRAM;

/// Datagrams per `recvmmsg` call (rsyslog's imudp reads 32 too).
pub const SLOTS: usize = 32;

/// One received datagram: where it is in the slots and who sent it.
#[derive(Debug, Clone, Copy)]
pub struct Received {
    /// Bytes stored (at most the slot size).
    pub len: usize,
    /// The datagram's real size (more than `len` when cut short).
    pub sent: usize,
    pub peer: SocketAddr,
}

/// The slots and what the last call put in them.
pub struct Receiver {
    slots: Box<[u8]>,
    received: Vec<Received>,
}

impl Default for Receiver {
    fn default() -> Self {
        Receiver {
            slots: vec![0; SLOTS * MAX_DATAGRAM].into_boxed_slice(),
            received: Vec::with_capacity(SLOTS),
        }
    }
}

impl Receiver {
    /// Receives at most `max` datagrams from `fd` and returns how many
    /// arrived, 1..=min(`max`, [`SLOTS`]). With `wait`, blocks until the
    /// first one arrives (or the socket's SO_RCVTIMEO passes: `WouldBlock`)
    /// and then takes what is queued without waiting for more
    /// (MSG_WAITFORONE); without, `WouldBlock` when nothing is queued.
    pub fn recv(&mut self, fd: &impl AsRawFd, max: usize, wait: bool) -> io::Result<usize> {
        self.received.clear();
        let max = max.clamp(1, SLOTS);
        let slots = &mut self.slots[..max * MAX_DATAGRAM];
        loop {
            match recvmmsg(fd.as_raw_fd(), slots, wait, &mut self.received) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                r => return r,
            }
        }
    }

    /// The datagrams of the last call, with their bytes.
    pub fn datagrams(&self) -> impl Iterator<Item = (&[u8], Received)> + '_ {
        self.received.iter().enumerate().map(|(i, r)| {
            let start = i * MAX_DATAGRAM;
            let bytes = self.slots.get(start..start + r.len).unwrap_or_default();
            (bytes, *r)
        })
    }
}

#[cfg(target_os = "linux")]
#[allow(unsafe_code)]
fn recvmmsg(fd: RawFd, slots: &mut [u8], wait: bool, out: &mut Vec<Received>) -> io::Result<usize> {
    // SAFETY (zeroed): iovec, mmsghdr and sockaddr_storage are plain C
    // structs for which all-zero bytes are a valid value.
    let mut addrs: [libc::sockaddr_storage; SLOTS] = unsafe { std::mem::zeroed() };
    let mut iovecs: [libc::iovec; SLOTS] = unsafe { std::mem::zeroed() };
    let mut headers: [libc::mmsghdr; SLOTS] = unsafe { std::mem::zeroed() };
    let addr_len = libc::socklen_t::try_from(std::mem::size_of::<libc::sockaddr_storage>())
        .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    for (i, chunk) in slots.chunks_exact_mut(MAX_DATAGRAM).take(SLOTS).enumerate() {
        iovecs[i] = libc::iovec {
            iov_base: chunk.as_mut_ptr().cast(),
            iov_len: chunk.len(),
        };
        headers[i].msg_hdr.msg_name = std::ptr::from_mut(&mut addrs[i]).cast();
        headers[i].msg_hdr.msg_namelen = addr_len;
        headers[i].msg_hdr.msg_iov = std::ptr::from_mut(&mut iovecs[i]);
        headers[i].msg_hdr.msg_iovlen = 1;
    }
    let vlen = libc::c_uint::try_from(slots.len() / MAX_DATAGRAM)
        .unwrap_or(0)
        .min(SLOTS as libc::c_uint);
    // SAFETY: every header points at its own iovec and address, which
    // point into `slots` and `addrs`; all outlive the call, and the kernel
    // writes at most iov_len / msg_namelen bytes into them. MSG_TRUNC makes
    // msg_len the datagram's real size when it was longer than its slot.
    let rc = unsafe {
        libc::recvmmsg(
            fd,
            headers.as_mut_ptr(),
            vlen,
            libc::MSG_TRUNC
                | if wait {
                    libc::MSG_WAITFORONE
                } else {
                    libc::MSG_DONTWAIT
                },
            std::ptr::null_mut(),
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    let n = usize::try_from(rc).unwrap_or(0).min(SLOTS);
    for (header, addr) in headers.iter().zip(addrs.iter()).take(n) {
        let sent = header.msg_len as usize;
        out.push(Received {
            len: sent.min(MAX_DATAGRAM),
            sent,
            peer: socket_addr(addr),
        });
    }
    Ok(n)
}

#[cfg(not(target_os = "linux"))]
fn recvmmsg(
    _fd: RawFd,
    _slots: &mut [u8],
    _wait: bool,
    _out: &mut Vec<Received>,
) -> io::Result<usize> {
    Err(io::Error::from(io::ErrorKind::Unsupported))
}

/// The sender's address from what the kernel wrote (unspecified for a
/// family other than IPv4/IPv6, which a UDP socket does not produce).
#[cfg(target_os = "linux")]
#[allow(unsafe_code)]
fn socket_addr(addr: &libc::sockaddr_storage) -> SocketAddr {
    match libc::c_int::from(addr.ss_family) {
        libc::AF_INET => {
            // SAFETY: the family says the storage holds a sockaddr_in,
            // which is smaller than sockaddr_storage and less aligned.
            let v4 = unsafe { &*std::ptr::from_ref(addr).cast::<libc::sockaddr_in>() };
            SocketAddr::V4(SocketAddrV4::new(
                Ipv4Addr::from(u32::from_be(v4.sin_addr.s_addr)),
                u16::from_be(v4.sin_port),
            ))
        }
        libc::AF_INET6 => {
            // SAFETY: as above, for sockaddr_in6.
            let v6 = unsafe { &*std::ptr::from_ref(addr).cast::<libc::sockaddr_in6>() };
            SocketAddr::V6(SocketAddrV6::new(
                Ipv6Addr::from(v6.sin6_addr.s6_addr),
                u16::from_be(v6.sin6_port),
                v6.sin6_flowinfo,
                v6.sin6_scope_id,
            ))
        }
        _ => SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_call_receives_a_burst_with_sizes_and_senders() {
        let rx = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let tx = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let to = rx.local_addr().unwrap();
        for i in 0..40u32 {
            tx.send_to(format!("datagram {i}").as_bytes(), to).unwrap();
        }
        tx.send_to(&[b'x'; 9000], to).unwrap();
        rx.set_nonblocking(true).unwrap();
        let mut receiver = Receiver::default();
        let mut got = Vec::new();
        loop {
            match receiver.recv(&rx, SLOTS, false) {
                Ok(n) => {
                    assert!((1..=SLOTS).contains(&n));
                    for (bytes, r) in receiver.datagrams() {
                        assert_eq!(r.peer, tx.local_addr().unwrap());
                        assert_eq!(r.len, r.sent);
                        got.push(bytes.to_vec());
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) => panic!("{e}"),
            }
        }
        assert_eq!(got.len(), 41);
        for (i, g) in got.iter().take(40).enumerate() {
            assert_eq!(g, format!("datagram {i}").as_bytes());
        }
        assert_eq!(got[40], vec![b'x'; 9000]);
    }

    #[test]
    fn ipv6_senders_are_decoded() {
        let Ok(rx) = std::net::UdpSocket::bind("[::1]:0") else {
            return; // no IPv6 loopback here
        };
        let tx = std::net::UdpSocket::bind("[::1]:0").unwrap();
        tx.send_to(b"six", rx.local_addr().unwrap()).unwrap();
        rx.set_nonblocking(true).unwrap();
        let mut receiver = Receiver::default();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        let n = loop {
            match receiver.recv(&rx, SLOTS, false) {
                Ok(n) => break n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    assert!(std::time::Instant::now() < deadline, "nothing arrived");
                    std::thread::sleep(std::time::Duration::from_millis(1));
                }
                Err(e) => panic!("{e}"),
            }
        };
        assert_eq!(n, 1);
        let (bytes, r) = receiver.datagrams().next().unwrap();
        assert_eq!(bytes, b"six");
        assert_eq!(r.peer, tx.local_addr().unwrap());
    }
}
