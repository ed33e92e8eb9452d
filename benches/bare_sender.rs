//! The machine's cost of an RTP packet with nothing else to do: N streams,
//! one UDP socket each, a 172-byte packet (RTP header and 20 ms of G.711)
//! every 20 ms per stream, sent by one thread that sleeps until the next
//! packet is due (at most one wake a millisecond); the streams spread over the 20 ms phase. A second thread
//! drains the receiving socket (its CPU is not counted).
//!
//!   cargo bench --bench bare_sender -- N SECONDS
//!
//! Prints the sending thread's CPU time per packet (user + system, from
//! /proc/thread-self/stat): the ceiling `benches/held.sh` quotes the
//! hotline's cost beside.

use std::net::UdpSocket;
use std::time::{Duration, Instant};

const INTERVAL: Duration = Duration::from_millis(20);
const PACKET: usize = 172;
const SLACK: Duration = Duration::from_millis(1);

fn main() {
    // `cargo bench` passes `--bench`; only the numbers count.
    let args: Vec<u64> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let streams = args.first().copied().unwrap_or(1000).max(1) as usize;
    let seconds = args.get(1).copied().unwrap_or(10).max(1);

    let sink = UdpSocket::bind("127.0.0.1:0").expect("bind the sink");
    let to = sink.local_addr().expect("the sink's address");
    std::thread::spawn(move || {
        let mut buf = [0u8; 2048];
        while sink.recv(&mut buf).is_ok() {}
    });
    let sockets: Vec<UdpSocket> = (0..streams)
        .map(|_| UdpSocket::bind("127.0.0.1:0").expect("bind a stream's socket"))
        .collect();

    let start = Instant::now();
    let phase = INTERVAL / streams as u32;
    let mut due: Vec<Instant> = (0..streams).map(|i| start + phase * i as u32).collect();
    let mut seq = vec![0u16; streams];
    let mut packet = [0xffu8; PACKET];
    packet[0] = 0x80;
    let end = start + Duration::from_secs(seconds);
    let cpu_before = thread_cpu();
    let mut sent = 0u64;
    loop {
        let now = Instant::now();
        if now >= end {
            break;
        }
        let mut next = end;
        for (i, socket) in sockets.iter().enumerate() {
            if due[i] <= now {
                packet[2..4].copy_from_slice(&seq[i].to_be_bytes());
                let ts = u32::from(seq[i]) * 160;
                packet[4..8].copy_from_slice(&ts.to_be_bytes());
                packet[8..12].copy_from_slice(&(i as u32).to_be_bytes());
                if socket.send_to(&packet, to).is_ok() {
                    sent += 1;
                }
                seq[i] = seq[i].wrapping_add(1);
                due[i] += INTERVAL;
            }
            next = next.min(due[i]);
        }
        // At most one wake a millisecond (the schedule's tolerance), as
        // a pacer for thousands of streams would.
        let next = next.max(now + SLACK);
        if let Some(wait) = next.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
    }
    let cpu = thread_cpu() - cpu_before;
    let elapsed = start.elapsed().as_secs_f64();
    println!("streams {streams}");
    println!(
        "packets {sent} ({:.1} per stream per second)",
        sent as f64 / streams as f64 / elapsed
    );
    println!("cpu_seconds {:.2}", cpu.as_secs_f64());
    println!(
        "us_per_packet {:.2}",
        cpu.as_secs_f64() * 1e6 / sent.max(1) as f64
    );
}

/// This thread's CPU time so far (user + system).
fn thread_cpu() -> Duration {
    let stat = std::fs::read_to_string("/proc/thread-self/stat").unwrap_or_default();
    // The fields after the command name, which is in parentheses.
    let rest = stat.rsplit_once(") ").map(|(_, r)| r).unwrap_or("");
    let fields: Vec<u64> = rest
        .split_whitespace()
        .map(|f| f.parse().unwrap_or(0))
        .collect();
    let ticks = fields.get(11).copied().unwrap_or(0) + fields.get(12).copied().unwrap_or(0);
    // Linux reports these in USER_HZ, 100 a second on every architecture it runs on.
    Duration::from_millis(ticks * 10)
}
