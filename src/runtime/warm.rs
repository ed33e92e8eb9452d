//! The sockets of freed RTP ports, kept bound for the next call on the
//! same port ([`crate::media::ports`] hands the port freed last out first,
//! once it has rested). A call that finds its port's socket here costs no
//! `socket`, `bind`, `fcntl` or `close`: on this project's loopback VM
//! those are 9-11 us a call, a sixth of a short call's whole CPU.
//!
//! At most `cap` sockets wait here (the descriptors the process's limit
//! leaves beyond every call's and connection's, so keeping them never
//! costs a caller or a connection its descriptor); past that the one that
//! has waited longest is closed. What came to a port while it waited (the
//! last packets of its call, strays) is read and dropped before the port
//! is handed out again.

use std::collections::{HashMap, VecDeque};
use std::net::UdpSocket;
use std::sync::Mutex;

/// Datagrams read off a waiting socket at most, when a call takes it:
/// bounded, so a flood to an idle port cannot hold the switch's turn (what
/// is left, the call's strict RTP takes for strays).
const DRAIN_MAX: usize = 256;

#[derive(Debug)]
pub struct WarmSockets {
    cap: usize,
    inner: Mutex<Waiting>,
}

#[derive(Debug, Default)]
struct Waiting {
    /// Each port's socket, with the number of its turn in `order`.
    by_port: HashMap<u16, (u64, UdpSocket)>,
    /// Ports in the order their sockets came, oldest first; an entry
    /// whose number no longer matches `by_port` was taken or replaced.
    order: VecDeque<(u16, u64)>,
    next: u64,
}

impl WarmSockets {
    /// Keeps at most `cap` sockets (none when 0).
    pub fn new(cap: usize) -> Self {
        Self {
            cap,
            inner: Mutex::new(Waiting::default()),
        }
    }

    /// Keeps `socket` (nonblocking, bound to `port`) for the next call on
    /// its port; closes the one waiting longest when full.
    pub fn put(&self, port: u16, socket: UdpSocket) {
        if self.cap == 0 {
            return;
        }
        let mut w = self.lock();
        let turn = w.next;
        w.next += 1;
        w.by_port.insert(port, (turn, socket));
        w.order.push_back((port, turn));
        while w.by_port.len() > self.cap {
            let Some((oldest, turn)) = w.order.pop_front() else {
                break;
            };
            if w.by_port.get(&oldest).is_some_and(|(t, _)| *t == turn) {
                w.by_port.remove(&oldest);
            }
        }
        // Taken sockets leave their entries behind: dropped here, in one
        // pass now and then, so the queue stays within twice the sockets.
        if w.order.len() > 2 * self.cap + 16 {
            let Waiting { by_port, order, .. } = &mut *w;
            order.retain(|(port, turn)| by_port.get(port).is_some_and(|(t, _)| t == turn));
        }
    }

    /// The socket kept for `port`, emptied of what came while it waited.
    pub fn take(&self, port: u16) -> Option<UdpSocket> {
        let (_, socket) = self.lock().by_port.remove(&port)?;
        let mut scrap = [0u8; 1];
        for _ in 0..DRAIN_MAX {
            match socket.recv_from(&mut scrap) {
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                // A datagram (cut to one byte and dropped), or an error the
                // socket held (reported once, so cleared by this read): on.
                _ => {}
            }
        }
        Some(socket)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Waiting> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsRawFd;

    fn bound() -> (UdpSocket, u16) {
        let s = UdpSocket::bind("127.0.0.1:0").unwrap();
        s.set_nonblocking(true).unwrap();
        let port = s.local_addr().unwrap().port();
        (s, port)
    }

    /// The kernel's identity of the socket behind a descriptor.
    fn inode(s: &UdpSocket) -> u64 {
        // SAFETY: a zeroed stat is a valid one to fill; fstat writes only
        // into it, and the socket is open.
        let mut st: libc::stat = unsafe { std::mem::zeroed() };
        assert_eq!(unsafe { libc::fstat(s.as_raw_fd(), &mut st) }, 0);
        st.st_ino
    }

    #[test]
    fn a_kept_socket_comes_back_for_its_port_emptied_of_what_came_meanwhile() {
        let warm = WarmSockets::new(4);
        let (s, port) = bound();
        let id = inode(&s);
        let to = s.local_addr().unwrap();
        warm.put(port, s);
        let stray = UdpSocket::bind("127.0.0.1:0").unwrap();
        for _ in 0..3 {
            stray.send_to(b"late RTP", to).unwrap();
        }
        assert!(warm.take(port + 1).is_none(), "only its own port's");
        let s = warm.take(port).expect("kept");
        assert_eq!(inode(&s), id, "the same socket, still bound");
        assert!(warm.take(port).is_none(), "handed out once");
        let mut buf = [0u8; 16];
        assert_eq!(
            s.recv_from(&mut buf).unwrap_err().kind(),
            std::io::ErrorKind::WouldBlock,
            "what came while it waited was dropped"
        );
        stray.send_to(b"new call", to).unwrap();
        std::thread::sleep(std::time::Duration::from_millis(20));
        assert_eq!(s.recv_from(&mut buf).unwrap().0, 8, "and it still hears");
    }

    #[test]
    fn an_error_the_socket_held_does_not_stop_the_drain() {
        let warm = WarmSockets::new(2);
        let (s, port) = bound();
        // The socket hears of ICMP errors (an unconnected one does not by
        // default): its last packet went to a peer that has gone.
        let on: libc::c_int = 1;
        // SAFETY: setsockopt reads a c_int from `on`, which lives through
        // the call; the socket is open.
        let set = unsafe {
            libc::setsockopt(
                s.as_raw_fd(),
                libc::IPPROTO_IP,
                libc::IP_RECVERR,
                (&on as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        assert_eq!(set, 0);
        let gone = UdpSocket::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        s.send_to(b"last RTP", gone).unwrap();
        let stray = UdpSocket::bind("127.0.0.1:0").unwrap();
        stray.send_to(b"stray", s.local_addr().unwrap()).unwrap();
        std::thread::sleep(std::time::Duration::from_millis(20));
        warm.put(port, s);
        let s = warm.take(port).unwrap();
        let mut buf = [0u8; 16];
        let left = s.recv_from(&mut buf);
        assert!(
            matches!(&left, Err(e) if e.kind() == std::io::ErrorKind::WouldBlock),
            "drained past the error: {left:?}"
        );
    }

    #[test]
    fn past_its_cap_the_socket_waiting_longest_is_closed() {
        let warm = WarmSockets::new(2);
        let sockets: Vec<(UdpSocket, u16)> = (0..3).map(|_| bound()).collect();
        let ports: Vec<u16> = sockets.iter().map(|(_, p)| *p).collect();
        let first = sockets[0].0.local_addr().unwrap();
        for (s, port) in sockets {
            warm.put(port, s);
        }
        assert_eq!(warm.lock().by_port.len(), 2);
        assert!(warm.take(ports[0]).is_none(), "the oldest went");
        // Closed, not just forgotten: its port can be bound again.
        UdpSocket::bind(first).expect("the oldest's port is free again");
        assert!(warm.take(ports[1]).is_some());
        assert!(warm.take(ports[2]).is_some());
    }

    #[test]
    fn taken_and_returned_sockets_leave_no_growing_queue() {
        let warm = WarmSockets::new(2);
        let (s, port) = bound();
        warm.put(port, s);
        for _ in 0..1000 {
            let s = warm.take(port).unwrap();
            warm.put(port, s);
        }
        let (other, other_port) = bound();
        warm.put(other_port, other);
        // A stale entry for `port` must not evict its returned socket.
        assert_eq!(warm.lock().by_port.len(), 2);
        assert!(warm.lock().order.len() <= 2 * 2 + 16 + 1);
        assert!(warm.take(port).is_some());
    }

    #[test]
    fn with_no_room_nothing_is_kept() {
        let warm = WarmSockets::new(0);
        let (s, port) = bound();
        let addr = s.local_addr().unwrap();
        warm.put(port, s);
        assert!(warm.lock().by_port.is_empty());
        UdpSocket::bind(addr).expect("closed at once");
    }
}
