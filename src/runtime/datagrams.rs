//! Reading the SIP socket a batch at a time, each datagram with the time
//! the kernel took it in.
//!
//! On Linux one `recvmmsg` reads up to [`BATCH`] datagrams (one system
//! call for a burst, not one each plus a last that finds nothing), and
//! `SO_TIMESTAMPNS` stamps each with its arrival. The first of a batch is
//! the oldest: how long it waited is how far behind the switch is reading,
//! in time rather than in datagrams, which is what a caller waiting for an
//! answer feels (the switch refuses new calls when it grows, see
//! `Switch::datagrams_waited`). Elsewhere the datagrams are read one call
//! each and their wait is unknown.

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::net::UdpSocket;

use super::door::Shared;

/// What a read found first.
#[derive(Debug, PartialEq, Eq)]
pub enum Read {
    /// This many datagrams from the socket, in the batch.
    Socket(usize),
    /// The door holds datagrams it read while the switch was behind:
    /// [`Shared::take`] them before reading on.
    Door,
}

/// Datagrams read at one wake of the switch's thread at most.
pub const BATCH: usize = 32;

/// The largest datagram read whole (a UDP payload's limit).
const DATAGRAM: usize = 65_535;

/// A batch read from the socket: the datagrams, their sources, and how long
/// the oldest waited in the kernel.
pub struct Datagrams {
    buffers: Vec<u8>,
    lengths: [usize; BATCH],
    sources: [Option<SocketAddr>; BATCH],
    /// When each came (since the Unix epoch), when the kernel said.
    arrivals: [Option<Duration>; BATCH],
    count: usize,
    waited: Option<Duration>,
    #[cfg(target_os = "linux")]
    names: Vec<libc::sockaddr_storage>,
    #[cfg(target_os = "linux")]
    controls: Vec<[u64; CONTROL_WORDS]>,
}

impl Default for Datagrams {
    fn default() -> Self {
        Self::new()
    }
}

impl Datagrams {
    pub fn new() -> Self {
        Self {
            buffers: vec![0; BATCH * DATAGRAM],
            lengths: [0; BATCH],
            sources: [None; BATCH],
            arrivals: [None; BATCH],
            count: 0,
            waited: None,
            #[cfg(target_os = "linux")]
            // SAFETY: sockaddr_storage is plain bytes; all zeros is a valid value.
            names: vec![unsafe { std::mem::zeroed() }; BATCH],
            #[cfg(target_os = "linux")]
            controls: vec![[0; CONTROL_WORDS]; BATCH],
        }
    }

    /// Asks the kernel to stamp the socket's datagrams with their arrival.
    pub fn stamp_arrivals(socket: &UdpSocket) {
        #[cfg(target_os = "linux")]
        {
            use std::os::fd::AsRawFd;
            let on: libc::c_int = 1;
            // SAFETY: setsockopt reads a c_int from `on`, which lives
            // through the call; the socket is open.
            let rc = unsafe {
                libc::setsockopt(
                    socket.as_raw_fd(),
                    libc::SOL_SOCKET,
                    libc::SO_TIMESTAMPNS,
                    (&on as *const libc::c_int).cast(),
                    std::mem::size_of::<libc::c_int>() as libc::socklen_t,
                )
            };
            if rc != 0 {
                tracing::warn!(
                    error = %io::Error::last_os_error(),
                    "SIP datagrams unstamped: the switch cannot tell how long they waited"
                );
            }
        }
        #[cfg(not(target_os = "linux"))]
        let _ = socket;
    }

    /// Reads what is waiting, up to [`BATCH`] datagrams, once the socket is
    /// readable, unless the door holds datagrams it read first: those come
    /// first ([`Read::Door`]), so that the switch sees every datagram in
    /// the order it came.
    pub async fn read(&mut self, socket: &UdpSocket, door: &Shared) -> io::Result<Read> {
        loop {
            if door.holds() {
                return Ok(Read::Door);
            }
            tokio::select! {
                biased;
                _ = door.woken() => continue,
                readable = socket.readable() => readable?,
            }
            // Under the door's lock: the door does not read between this
            // look at what it holds and the read.
            let read = socket.try_io(tokio::io::Interest::READABLE, || {
                let held = door.lock();
                match held.is_empty() {
                    true => self.read_now(socket).map(Some),
                    false => Ok(None),
                }
            });
            match read {
                Ok(Some(n)) => return Ok(Read::Socket(n)),
                Ok(None) => return Ok(Read::Door),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                Err(e) => return Err(e),
            }
        }
    }

    /// The `i`th datagram of the batch and its source.
    pub fn get(&self, i: usize) -> Option<(&[u8], SocketAddr)> {
        if i >= self.count {
            return None;
        }
        let from = self.sources[i]?;
        let start = i * DATAGRAM;
        Some((&self.buffers[start..start + self.lengths[i]], from))
    }

    /// When the `i`th datagram came (since the Unix epoch), when the kernel
    /// said.
    pub fn arrival(&self, i: usize) -> Option<Duration> {
        self.arrivals.get(i).copied().flatten()
    }

    /// How long the batch's oldest datagram waited in the kernel, when the
    /// kernel said when it came.
    pub fn waited(&self) -> Option<Duration> {
        self.waited
    }

    #[cfg(target_os = "linux")]
    fn read_now(&mut self, socket: &UdpSocket) -> io::Result<usize> {
        use std::os::fd::AsRawFd;
        self.read_fd(socket.as_raw_fd())
    }

    /// Reads up to [`BATCH`] datagrams waiting on `fd`, without waiting;
    /// `WouldBlock` when there are none.
    #[cfg(target_os = "linux")]
    pub fn read_fd(&mut self, fd: std::os::fd::RawFd) -> io::Result<usize> {
        // Built afresh at each read: the headers point into `self`, and a
        // struct of pointers kept across an await would tie the switch's
        // task to one thread.
        let mut iovecs: [libc::iovec; BATCH] = std::array::from_fn(|i| libc::iovec {
            iov_base: self.buffers[i * DATAGRAM..].as_mut_ptr().cast(),
            iov_len: DATAGRAM,
        });
        // SAFETY: mmsghdr is plain data; zeroed is a valid empty header,
        // filled in below.
        let mut headers: [libc::mmsghdr; BATCH] = unsafe { std::mem::zeroed() };
        for (i, h) in headers.iter_mut().enumerate() {
            h.msg_hdr.msg_name = (&mut self.names[i] as *mut libc::sockaddr_storage).cast();
            h.msg_hdr.msg_namelen = std::mem::size_of::<libc::sockaddr_storage>() as u32;
            h.msg_hdr.msg_iov = &mut iovecs[i];
            h.msg_hdr.msg_iovlen = 1;
            h.msg_hdr.msg_control = self.controls[i].as_mut_ptr().cast();
            h.msg_hdr.msg_controllen = CONTROL_WORDS * 8;
        }
        // SAFETY: every header points at buffers owned by `self` or by this
        // frame (`iovecs`), each as long as the length given beside it, and
        // all outlive the call; the kernel writes at most `BATCH` headers.
        let n = unsafe {
            libc::recvmmsg(
                fd,
                headers.as_mut_ptr(),
                BATCH as libc::c_uint,
                libc::MSG_DONTWAIT,
                std::ptr::null_mut(),
            )
        };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        let now = now_realtime();
        self.count = n as usize;
        self.waited = None;
        for (i, h) in headers.iter().take(self.count).enumerate() {
            self.lengths[i] = (h.msg_len as usize).min(DATAGRAM);
            self.sources[i] = socket_addr(&self.names[i]);
            let at = arrival(&h.msg_hdr);
            self.arrivals[i] = at.map(since_epoch);
            if i == 0 {
                self.waited = at.map(|at| duration_between(at, now));
            }
        }
        Ok(self.count)
    }

    #[cfg(not(target_os = "linux"))]
    fn read_now(&mut self, socket: &UdpSocket) -> io::Result<usize> {
        self.count = 0;
        self.waited = None;
        self.arrivals = [None; BATCH];
        while self.count < BATCH {
            let start = self.count * DATAGRAM;
            match socket.try_recv_from(&mut self.buffers[start..start + DATAGRAM]) {
                Ok((n, from)) => {
                    self.lengths[self.count] = n;
                    self.sources[self.count] = Some(from);
                    self.count += 1;
                }
                Err(e) if self.count == 0 => return Err(e),
                Err(_) => break,
            }
        }
        Ok(self.count)
    }
}

/// The UDP datagrams one turn of the switch sends, sent together when the
/// turn ends (or sooner, see [`Outgoing::due`]): on Linux one `sendmmsg`
/// for up to [`BATCH`] of them, not a `sendto` each. A peer hears its
/// answer at most [`HOLD_AT_MOST`] and one datagram's work later than it
/// could have, and the switch is not put off its turn by each peer it
/// wakes.
#[derive(Debug, Default)]
pub struct Outgoing {
    queued: Vec<(bytes::Bytes, SocketAddr)>,
    /// When the first of them was queued.
    since: Option<std::time::Instant>,
}

/// How long a datagram may wait for its turn's end: an overloaded turn is
/// long, and a refused caller's 503 must not wait for all of it.
pub const HOLD_AT_MOST: Duration = Duration::from_millis(1);

impl Outgoing {
    pub fn push(&mut self, bytes: bytes::Bytes, to: SocketAddr) {
        if self.queued.is_empty() {
            self.since = Some(std::time::Instant::now());
        }
        self.queued.push((bytes, to));
    }

    /// Whether to send now rather than at the turn's end: a batch's worth
    /// is queued, or the first has waited [`HOLD_AT_MOST`].
    pub fn due(&self, now: std::time::Instant) -> bool {
        self.queued.len() >= BATCH
            || self
                .since
                .is_some_and(|at| now.saturating_duration_since(at) >= HOLD_AT_MOST)
    }

    /// Sends what is queued, in order, waiting while the socket's buffer
    /// is full; a datagram the kernel refuses (an address it cannot reach)
    /// is logged and dropped, the rest still go.
    pub async fn flush(&mut self, socket: &UdpSocket) {
        let mut sent = 0;
        while sent < self.queued.len() {
            match send_some(socket, &self.queued[sent..]) {
                Ok(n) => sent += n.max(1),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    if let Err(e) = socket.writable().await {
                        tracing::warn!(error = %e, dropped = self.queued.len() - sent, "SIP socket not writable");
                        break;
                    }
                }
                Err(e) => {
                    tracing::warn!(to = %self.queued[sent].1, error = %e, "SIP send failed");
                    sent += 1;
                }
            }
        }
        self.queued.clear();
        self.since = None;
    }
}

/// Sends from the front of `queued` without waiting; how many left.
#[cfg(target_os = "linux")]
fn send_some(socket: &UdpSocket, queued: &[(bytes::Bytes, SocketAddr)]) -> io::Result<usize> {
    use std::mem::MaybeUninit;
    use std::os::fd::AsRawFd;
    let count = queued.len().min(BATCH);
    // Only the entries used are written (zeroing all of them cost more
    // than the rest of a flush).
    let mut names = [MaybeUninit::<libc::sockaddr_storage>::uninit(); BATCH];
    let mut iovecs = [MaybeUninit::<libc::iovec>::uninit(); BATCH];
    let mut headers = [MaybeUninit::<libc::mmsghdr>::uninit(); BATCH];
    for (i, (bytes, to)) in queued.iter().take(count).enumerate() {
        // SAFETY: sockaddr_storage is plain bytes; all zeros is a valid value.
        let name = names[i].write(unsafe { std::mem::zeroed() });
        let len = write_sockaddr(*to, name);
        let iov = iovecs[i].write(libc::iovec {
            // The kernel only reads through it (sendmmsg).
            iov_base: bytes.as_ptr().cast_mut().cast(),
            iov_len: bytes.len(),
        });
        // SAFETY: mmsghdr is plain data; zeroed is a valid empty header.
        let mut h: libc::mmsghdr = unsafe { std::mem::zeroed() };
        h.msg_hdr.msg_name = (name as *mut libc::sockaddr_storage).cast();
        h.msg_hdr.msg_namelen = len;
        h.msg_hdr.msg_iov = iov;
        h.msg_hdr.msg_iovlen = 1;
        headers[i].write(h);
    }
    socket.try_io(tokio::io::Interest::WRITABLE, || {
        // SAFETY: the first `count` headers are written and point at
        // addresses and iovecs in this frame and at the queued bytes, each
        // as long as the length beside it, all alive for the call; the
        // kernel reads `count` headers (writing only their `msg_len`) and
        // only reads what they point at.
        let n = unsafe {
            libc::sendmmsg(
                socket.as_raw_fd(),
                headers.as_mut_ptr().cast::<libc::mmsghdr>(),
                count as libc::c_uint,
                libc::MSG_DONTWAIT,
            )
        };
        if n < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(n as usize)
        }
    })
}

#[cfg(not(target_os = "linux"))]
fn send_some(socket: &UdpSocket, queued: &[(bytes::Bytes, SocketAddr)]) -> io::Result<usize> {
    let (bytes, to) = &queued[0];
    socket.try_send_to(bytes, *to).map(|_| 1)
}

/// `addr` as the kernel takes it; the length of what was written.
#[cfg(target_os = "linux")]
fn write_sockaddr(addr: SocketAddr, storage: &mut libc::sockaddr_storage) -> libc::socklen_t {
    match addr {
        SocketAddr::V4(a) => {
            // SAFETY: sockaddr_storage is large and aligned enough for a sockaddr_in.
            let sin = unsafe {
                &mut *(storage as *mut libc::sockaddr_storage).cast::<libc::sockaddr_in>()
            };
            sin.sin_family = libc::AF_INET as libc::sa_family_t;
            sin.sin_port = a.port().to_be();
            sin.sin_addr = libc::in_addr {
                s_addr: u32::from(*a.ip()).to_be(),
            };
            std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t
        }
        SocketAddr::V6(a) => {
            // SAFETY: sockaddr_storage is large and aligned enough for a sockaddr_in6.
            let sin6 = unsafe {
                &mut *(storage as *mut libc::sockaddr_storage).cast::<libc::sockaddr_in6>()
            };
            sin6.sin6_family = libc::AF_INET6 as libc::sa_family_t;
            sin6.sin6_port = a.port().to_be();
            sin6.sin6_flowinfo = a.flowinfo();
            sin6.sin6_addr = libc::in6_addr {
                s6_addr: a.ip().octets(),
            };
            sin6.sin6_scope_id = a.scope_id();
            std::mem::size_of::<libc::sockaddr_in6>() as libc::socklen_t
        }
    }
}

/// Room for one `SCM_TIMESTAMPNS` control message (a header and a
/// timespec), in aligned words.
#[cfg(target_os = "linux")]
const CONTROL_WORDS: usize = 8;

#[cfg(target_os = "linux")]
fn now_realtime() -> libc::timespec {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec into `ts`.
    unsafe { libc::clock_gettime(libc::CLOCK_REALTIME, &mut ts) };
    ts
}

/// A realtime stamp as the time since the Unix epoch.
#[cfg(target_os = "linux")]
fn since_epoch(t: libc::timespec) -> Duration {
    Duration::new(
        t.tv_sec.max(0) as u64,
        t.tv_nsec.clamp(0, 999_999_999) as u32,
    )
}

/// How long ago `at` (since the Unix epoch) was; none when the clock
/// stepped back past it.
pub fn waited_since(at: Duration) -> Option<Duration> {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .ok()?
        .checked_sub(at)
}

/// How long the oldest datagram waiting on `fd` has waited, looked at
/// without reading it; none when nothing waits (or it is unstamped).
#[cfg(target_os = "linux")]
pub fn oldest_waiting(fd: std::os::fd::RawFd) -> Option<Duration> {
    let mut byte = 0u8;
    let mut iov = libc::iovec {
        iov_base: (&mut byte as *mut u8).cast(),
        iov_len: 1,
    };
    let mut control = [0u64; CONTROL_WORDS];
    // SAFETY: msghdr is plain data; zeroed is a valid empty header.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    msg.msg_controllen = CONTROL_WORDS * 8;
    // SAFETY: the header points at `byte` and `control`, both live
    // through the call and as long as said; MSG_PEEK leaves the datagram.
    let n = unsafe { libc::recvmsg(fd, &mut msg, libc::MSG_PEEK | libc::MSG_DONTWAIT) };
    if n < 0 {
        return None;
    }
    let at = arrival(&msg)?;
    Some(duration_between(at, now_realtime()))
}

/// `later - earlier`, nothing when the clock stepped back between them.
#[cfg(target_os = "linux")]
fn duration_between(earlier: libc::timespec, later: libc::timespec) -> Duration {
    let ns = |t: libc::timespec| t.tv_sec as i128 * 1_000_000_000 + t.tv_nsec as i128;
    let d = ns(later) - ns(earlier);
    Duration::from_nanos(d.clamp(0, u64::MAX as i128) as u64)
}

/// The kernel's arrival stamp among a message's control messages.
#[cfg(target_os = "linux")]
fn arrival(msg: &libc::msghdr) -> Option<libc::timespec> {
    // SAFETY: the control buffer was filled by recvmmsg, which set
    // msg_controllen to what it wrote; CMSG_FIRSTHDR/CMSG_NXTHDR stay
    // within it, and a timestamp's data is one timespec (read unaligned).
    unsafe {
        let mut c = libc::CMSG_FIRSTHDR(msg);
        while !c.is_null() {
            if (*c).cmsg_level == libc::SOL_SOCKET && (*c).cmsg_type == libc::SCM_TIMESTAMPNS {
                return Some(std::ptr::read_unaligned(
                    libc::CMSG_DATA(c).cast::<libc::timespec>(),
                ));
            }
            c = libc::CMSG_NXTHDR(msg, c);
        }
    }
    None
}

#[cfg(target_os = "linux")]
fn socket_addr(name: &libc::sockaddr_storage) -> Option<SocketAddr> {
    use std::net::{Ipv4Addr, Ipv6Addr, SocketAddrV4, SocketAddrV6};
    match name.ss_family as libc::c_int {
        libc::AF_INET => {
            // SAFETY: the family says the storage holds a sockaddr_in.
            let a =
                unsafe { &*(name as *const libc::sockaddr_storage).cast::<libc::sockaddr_in>() };
            Some(SocketAddr::V4(SocketAddrV4::new(
                Ipv4Addr::from(u32::from_be(a.sin_addr.s_addr)),
                u16::from_be(a.sin_port),
            )))
        }
        libc::AF_INET6 => {
            // SAFETY: the family says the storage holds a sockaddr_in6.
            let a =
                unsafe { &*(name as *const libc::sockaddr_storage).cast::<libc::sockaddr_in6>() };
            Some(SocketAddr::V6(SocketAddrV6::new(
                Ipv6Addr::from(a.sin6_addr.s6_addr),
                u16::from_be(a.sin6_port),
                a.sin6_flowinfo,
                a.sin6_scope_id,
            )))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A read with no door holding anything: a batch from the socket.
    async fn read(batch: &mut Datagrams, socket: &UdpSocket) -> usize {
        match batch.read(socket, &Shared::default()).await.unwrap() {
            Read::Socket(n) => n,
            Read::Door => panic!("the door holds nothing"),
        }
    }

    #[tokio::test]
    async fn a_burst_is_read_in_one_batch_with_sources_and_the_oldest_wait() {
        let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        Datagrams::stamp_arrivals(&socket);
        // The kernel turns its arrival stamps on for the first socket to
        // ask a moment later (a deferred switch); until then a datagram is
        // stamped when read, as if it had not waited.
        std::thread::sleep(Duration::from_millis(200));
        let to = socket.local_addr().unwrap();
        let a = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let b = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        a.send_to(b"first", to).unwrap();
        std::thread::sleep(Duration::from_millis(30));
        b.send_to(&[7u8; 1500], to).unwrap();
        a.send_to(b"", to).unwrap();
        std::thread::sleep(Duration::from_millis(5));

        let mut batch = Datagrams::new();
        let n = read(&mut batch, &socket).await;
        assert_eq!(n, 3);
        assert_eq!(batch.get(0), Some((&b"first"[..], a.local_addr().unwrap())));
        let (big, from) = batch.get(1).unwrap();
        assert_eq!((big.len(), from), (1500, b.local_addr().unwrap()));
        assert_eq!(batch.get(2), Some((&b""[..], a.local_addr().unwrap())));
        assert_eq!(batch.get(3), None);
        if cfg!(target_os = "linux") {
            let waited = batch.waited().expect("stamped");
            assert!(waited >= Duration::from_millis(30), "{waited:?}");
            assert!(waited < Duration::from_secs(5), "{waited:?}");
        }
    }

    #[tokio::test]
    async fn a_burst_larger_than_a_batch_is_read_over_several() {
        let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let to = socket.local_addr().unwrap();
        let sender = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        for i in 0..BATCH + 5 {
            sender.send_to(format!("m{i}").as_bytes(), to).unwrap();
        }
        let mut batch = Datagrams::new();
        let mut seen = Vec::new();
        while seen.len() < BATCH + 5 {
            let n = read(&mut batch, &socket).await;
            assert!(n <= BATCH);
            seen.extend(
                (0..n).map(|i| String::from_utf8(batch.get(i).unwrap().0.to_vec()).unwrap()),
            );
        }
        let want: Vec<String> = (0..BATCH + 5).map(|i| format!("m{i}")).collect();
        assert_eq!(seen, want);
        assert_eq!(batch.waited(), None, "not asked to stamp");
    }

    #[tokio::test]
    async fn an_ipv6_source_is_read_as_sent() {
        let Ok(socket) = UdpSocket::bind("[::1]:0").await else {
            return; // no IPv6 loopback here
        };
        let sender = std::net::UdpSocket::bind("[::1]:0").unwrap();
        sender.send_to(b"v6", socket.local_addr().unwrap()).unwrap();
        let mut batch = Datagrams::new();
        assert_eq!(read(&mut batch, &socket).await, 1);
        assert_eq!(
            batch.get(0),
            Some((&b"v6"[..], sender.local_addr().unwrap()))
        );
    }

    #[tokio::test]
    async fn a_turns_datagrams_leave_together_in_order_past_a_refused_one() {
        let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let a = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let b = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        for r in [&a, &b] {
            r.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        }
        let mut out = Outgoing::default();
        // More than one sendmmsg holds, to two peers, with one the kernel
        // refuses in the middle (an IPv6 address from an IPv4 socket).
        let n = 2 * BATCH + 7;
        for i in 0..n {
            let to = if i % 3 == 0 { &b } else { &a };
            out.push(
                format!("m{i}").into_bytes().into(),
                to.local_addr().unwrap(),
            );
            if i == BATCH - 1 {
                out.push(
                    bytes::Bytes::from_static(b"lost"),
                    "[::1]:5060".parse().unwrap(),
                );
            }
        }
        out.flush(&socket).await;
        assert!(out.queued.is_empty());
        let mut buf = [0u8; 64];
        for (peer, modulo) in [(&a, false), (&b, true)] {
            let want: Vec<String> = (0..n)
                .filter(|i| (i % 3 == 0) == modulo)
                .map(|i| format!("m{i}"))
                .collect();
            let got: Vec<String> = want
                .iter()
                .map(|_| {
                    let (len, from) = peer.recv_from(&mut buf).unwrap();
                    assert_eq!(from, socket.local_addr().unwrap());
                    String::from_utf8(buf[..len].to_vec()).unwrap()
                })
                .collect();
            assert_eq!(got, want);
            // And nothing twice.
            peer.set_nonblocking(true).unwrap();
            assert!(peer.recv_from(&mut buf).is_err());
        }
    }

    #[tokio::test]
    async fn datagrams_to_ipv6_peers_leave_with_their_addresses() {
        let Ok(socket) = UdpSocket::bind("[::1]:0").await else {
            return; // no IPv6 loopback here
        };
        let peer = std::net::UdpSocket::bind("[::1]:0").unwrap();
        peer.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        let mut out = Outgoing::default();
        out.push(bytes::Bytes::from_static(b"v6"), peer.local_addr().unwrap());
        out.flush(&socket).await;
        let mut buf = [0u8; 8];
        let (len, from) = peer.recv_from(&mut buf).unwrap();
        assert_eq!(
            (&buf[..len], from),
            (&b"v6"[..], socket.local_addr().unwrap())
        );
    }

    #[tokio::test]
    async fn a_queue_is_due_after_a_millisecond_or_a_batch() {
        let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let peer = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let to = peer.local_addr().unwrap();
        let mut out = Outgoing::default();
        assert!(!out.due(std::time::Instant::now()), "nothing queued");
        out.push(bytes::Bytes::from_static(b"a"), to);
        assert!(!out.due(std::time::Instant::now()));
        assert!(out.due(std::time::Instant::now() + HOLD_AT_MOST));
        out.flush(&socket).await;
        assert!(!out.due(std::time::Instant::now() + HOLD_AT_MOST), "sent");
        for _ in 0..BATCH - 1 {
            out.push(bytes::Bytes::from_static(b"b"), to);
        }
        assert!(!out.due(std::time::Instant::now()));
        out.push(bytes::Bytes::from_static(b"c"), to);
        assert!(out.due(std::time::Instant::now()), "a batch's worth");
        out.flush(&socket).await;
    }
}
