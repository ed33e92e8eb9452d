//! Harness for end-to-end tests: the real `hotline` binary on loopback,
//! driven by SIPp, with assertions on what the hotline logged it did.

#![allow(dead_code)] // each test binary uses a part of the harness

pub mod baresip;
pub mod browser;
pub mod caller;
pub mod linphone;
pub mod stores;

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU16, Ordering};
use std::time::{Duration, Instant};

/// Hands each server in this process its own ports (tests run in parallel).
/// Test files keep their blocks between 10000 and 32767: below Linux's
/// ephemeral range (32768-60999), so no outgoing connection of another test
/// (HTTP, PostgreSQL, SIPp) can be holding a port a hotline is about to bind.
static NEXT_BLOCK: AtomicU16 = AtomicU16::new(0);

pub fn scenario(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/scenarios")
        .join(name)
}

pub struct Hotline {
    child: Child,
    pub sip_port: u16,
    /// SIPp's SIP port; SIPp's control and media ports follow it.
    pub peer_port: u16,
    log: PathBuf,
    pub dir: tempfile::TempDir,
}

/// GET `path` over HTTP/1.1 on loopback; the body (tests only, no TLS).
pub fn http_get(port: u16, path: &str) -> String {
    use std::io::Read;
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.write_all(
        format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .unwrap();
    let mut reply = String::new();
    s.read_to_string(&mut reply).unwrap();
    assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
    reply
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default()
}

/// The calls' history as a supervisor reads it (`GET /api/calls`).
pub fn call_history(h: &Hotline) -> String {
    let (status, body) = http(
        h.http_port(),
        "GET",
        "/api/calls",
        Some("demo-supervisor"),
        None,
    );
    assert_eq!(status, 200, "{body}");
    body
}

/// One HTTP/1.1 request on loopback with an optional bearer token and JSON
/// body; the status and the body (tests only, no TLS, no chunking beyond
/// what axum sends for small replies).
pub fn http(
    port: u16,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&str>,
) -> (u16, String) {
    use std::io::Read;
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n");
    if let Some(t) = token {
        head.push_str(&format!("Authorization: Bearer {t}\r\n"));
    }
    let body = body.unwrap_or("");
    if !body.is_empty() || method == "POST" {
        head.push_str(&format!(
            "Content-Type: application/json\r\nContent-Length: {}\r\n",
            body.len()
        ));
    }
    head.push_str("\r\n");
    s.write_all(head.as_bytes()).unwrap();
    s.write_all(body.as_bytes()).unwrap();
    // Up to the end of the headers, then Content-Length bytes (some servers
    // keep the connection open regardless), else to the end.
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let head_end = loop {
        if let Some(at) = got.windows(4).position(|w| w == b"\r\n\r\n") {
            break at + 4;
        }
        let n = s.read(&mut buf).unwrap();
        assert!(
            n > 0,
            "connection closed: {}",
            String::from_utf8_lossy(&got)
        );
        got.extend_from_slice(&buf[..n]);
    };
    let head = String::from_utf8_lossy(&got[..head_end]).to_string();
    let length = head.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.eq_ignore_ascii_case("content-length")
            .then(|| v.trim().parse::<usize>().ok())?
    });
    match length {
        Some(len) => {
            while got.len() < head_end + len {
                let n = s.read(&mut buf).unwrap();
                assert!(n > 0, "body cut short");
                got.extend_from_slice(&buf[..n]);
            }
        }
        None => {
            s.read_to_end(&mut got).unwrap();
        }
    }
    let status = head
        .get(9..12)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP reply: {head}"));
    let body = String::from_utf8_lossy(&got[head_end..]).to_string();
    (status, body)
}

impl Hotline {
    /// Starts the hotline with `extra` TOML appended to a config that gives
    /// it ports of its own. `base` separates test binaries run at once.
    pub fn start(base: u16, extra: &str) -> Self {
        let block = NEXT_BLOCK.fetch_add(1, Ordering::SeqCst);
        // Per server a block of 200 ports: SIP, then SIPp's, then RTP.
        let sip_port = base + block * 200;
        let rtp_min = sip_port + 20;
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("hotline.toml");
        let mut text = String::new();
        // Sections the test overrides are written by it in full. SIPp
        // callers on 127.0.0.1 are the carrier's trunk (their caller ID is
        // believed); attackers in the tests use 127.0.0.2 and up.
        if !extra.contains("[sip]") {
            text.push_str(&format!(
                "[sip]\nlisten = \"127.0.0.1:{sip_port}\"\nanswer_after_ms = 100\ntrunks = [\"127.0.0.1\"]\n"
            ));
        }
        // The RTP ports are the harness's; a test's own [media] keys join them.
        let media = format!(
            "[media]\nip = \"127.0.0.1\"\nrtp_port_min = {rtp_min}\nrtp_port_max = {}\n",
            rtp_min + 178
        );
        let extra = &extra.replacen("[media]\n", &media, 1);
        if !extra.contains("[media]") {
            text.push_str(&media);
        }
        if !extra.contains("[tickets]") {
            text.push_str(&format!(
                "[tickets]\nstore = \"{}\"\n",
                dir.path().join("events.db").display()
            ));
        }
        if !extra.contains("[http]") {
            text.push_str(&format!(
                "[http]\nlisten = \"127.0.0.1:{}\"\n",
                sip_port + 199
            ));
        }
        if !extra.contains("[owners]") {
            text.push_str(&format!(
                "[owners]\ndb = \"{}\"\n",
                dir.path().join("owners.db").display()
            ));
        }
        // Conversations are recorded into the test's own folder, without
        // the recording notice before them (seconds every call would wait;
        // the tests of recording say their own `[recording]`).
        if !extra.contains("[recording]") {
            text.push_str(&format!(
                "[recording]\ndir = \"{}\"\nnotice = \"\"\n",
                dir.path().join("calls").display()
            ));
        }
        // Without a menu of its own a test gets the line test (SIP tests).
        if !extra.contains("[ivr]") {
            text.push_str(&format!(
                "[ivr]\nmenu = \"\"\nrecordings = \"{}\"\n",
                dir.path().join("recordings").display()
            ));
        }
        text.push_str(
            &extra
                .replace("SIP_PORT", &sip_port.to_string())
                .replace("PEER_PORT", &(sip_port + 2).to_string())
                .replace("HTTP_PORT", &(sip_port + 199).to_string())
                .replace("TLS_PORT", &(sip_port + 1).to_string()),
        );
        std::fs::write(&config, text).unwrap();
        let log = dir.path().join("hotline.log");
        let mut child = Command::new(env!("CARGO_BIN_EXE_hotline"))
            .args(["run", "--config"])
            .arg(&config)
            .env("RUST_LOG", "info")
            // The tests read the log the moment the hotline answers: each
            // line written at once, not gathered for 20 ms.
            .env("HOTLINE_LOG_FLUSH_MS", "0")
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("start hotline");
        let mut first = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut first)
            .unwrap();
        // A cluster's node starts standby (and says when it is active).
        assert!(
            first.contains("hotline listening") || first.contains(" standby: "),
            "hotline did not start: {first}\n{}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        Hotline {
            child,
            sip_port,
            peer_port: sip_port + 2,
            log,
            dir,
        }
    }

    /// The hotline's ticket event store.
    pub fn store_path(&self) -> PathBuf {
        self.dir.path().join("events.db")
    }

    /// Where a test's `tls_listen = "127.0.0.1:TLS_PORT"` listens.
    pub fn tls_port(&self) -> u16 {
        self.sip_port + 1
    }

    /// Where its HTTP surface listens.
    pub fn http_port(&self) -> u16 {
        self.sip_port + 199
    }

    pub fn target(&self) -> String {
        format!("127.0.0.1:{}", self.sip_port)
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Log lines with `message` (the tracing message text).
    pub fn lines(&self, message: &str) -> Vec<String> {
        self.log()
            .lines()
            .filter(|l| l.contains(&format!(" {message} ")) || l.ends_with(message))
            .map(str::to_string)
            .collect()
    }

    /// Waits until `n` lines with `message` were logged (or the time is up).
    pub fn wait_for(&self, message: &str, n: usize, within: Duration) -> Vec<String> {
        let end = Instant::now() + within;
        loop {
            let lines = self.lines(message);
            if lines.len() >= n || Instant::now() > end {
                return lines;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The hotline's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn is_running(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }

    /// kill -9, and wait for it to be gone.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM, wait for exit, return the whole log. The files stay until drop.
    pub fn stop(&mut self) -> String {
        let _ = Command::new("kill")
            .arg(self.child.id().to_string())
            .status();
        let end = Instant::now() + Duration::from_secs(10);
        while self.child.try_wait().unwrap().is_none() {
            assert!(Instant::now() < end, "hotline did not stop on SIGTERM");
            std::thread::sleep(Duration::from_millis(20));
        }
        self.log()
    }
}

impl Drop for Hotline {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs the `hotline` command line; its stdout, or the test fails with its stderr.
pub fn cli(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_hotline"))
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "hotline {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Value of `key=value` in a tracing log line.
pub fn field<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    line.split_whitespace()
        .find_map(|w| w.strip_prefix(&format!("{key}=")))
}

pub struct SippRun {
    pub status: i32,
    pub stdout: String,
}

/// Runs SIPp against the hotline and waits for it (bounded by `-timeout`).
pub fn sipp(hotline: &Hotline, scenario_file: &str, args: &[&str]) -> SippRun {
    let which = Command::new("sh").args(["-c", "command -v sipp"]).output();
    assert!(
        which.is_ok_and(|o| o.status.success()),
        "sipp is not installed: run the README's test command (it installs sip-tester)"
    );
    let port = hotline.peer_port.to_string();
    let control_port = (hotline.peer_port + 1).to_string();
    let media_port = (hotline.peer_port + 4).to_string();
    let out = Command::new("sipp")
        .arg(hotline.target())
        .arg("-sf")
        .arg(scenario(scenario_file))
        .args(["-i", "127.0.0.1", "-p", &port, "-mp", &media_port])
        .args([
            "-cp",
            &control_port,
            "-s",
            "100",
            "-nostdin",
            "-timeout",
            "60s",
        ])
        .args(["-timeout_error", "-trace_err", "-error_file"])
        .arg(hotline.dir.path().join("sipp_errors.log"))
        .args(args)
        .current_dir(hotline.dir.path())
        .output()
        .expect("run sipp");
    SippRun {
        status: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
    }
}

/// A second SIPp caller at once, on ports of its own (`port` .. +4).
pub fn sipp_on(h: &Hotline, xml: &std::path::Path, port: u16) -> std::process::Child {
    sipp_to(
        &h.target(),
        h,
        xml,
        port,
        &["-m", "1", "-timeout", "60s", "-timeout_error"],
    )
}

/// SIPp calling `target` (the hotline, or a proxy in front of it) with
/// `args`, on ports of its own (`port` .. +4), its files in `h`'s folder.
pub fn sipp_to(
    target: &str,
    h: &Hotline,
    xml: &std::path::Path,
    port: u16,
    args: &[&str],
) -> std::process::Child {
    std::process::Command::new("sipp")
        .arg(target)
        .arg("-sf")
        .arg(xml)
        .args(["-i", "127.0.0.1", "-p", &port.to_string()])
        .args([
            "-mp",
            &(port + 4).to_string(),
            "-cp",
            &(port + 1).to_string(),
        ])
        .arg("-nostdin")
        .args(args)
        .current_dir(h.dir.path())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("run sipp")
}

/// Starts SIPp as a UAS on the hotline's peer port (`PEER_PORT` in the
/// config), e.g. an owner's phone the hotline calls. Bounded by `-timeout`;
/// killed on drop.
pub struct SippUas(Child);

impl SippUas {
    pub fn start(hotline: &Hotline, scenario_file: &str, args: &[&str]) -> Self {
        Self::start_on(hotline, scenario_file, hotline.peer_port, args)
    }

    /// The same on `port` (control `port + 1`, media `port + 4`): a second
    /// peer beside a SIPp caller on the peer port.
    pub fn start_on(hotline: &Hotline, scenario_file: &str, port: u16, args: &[&str]) -> Self {
        let (port, control_port, media_port) = (
            port.to_string(),
            (port + 1).to_string(),
            (port + 4).to_string(),
        );
        let child = Command::new("sipp")
            .arg("-sf")
            .arg(scenario(scenario_file))
            .args(["-i", "127.0.0.1", "-p", &port, "-mp", &media_port])
            .args(["-cp", &control_port, "-nostdin", "-timeout", "60s"])
            .args(["-timeout_error", "-trace_err", "-error_file"])
            .arg(hotline.dir.path().join("sipp_uas_errors.log"))
            .args(args)
            .current_dir(hotline.dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("run sipp (installed by the README's test command)");
        // SIPp binds its ports before reading the scenario's first message.
        std::thread::sleep(Duration::from_millis(300));
        SippUas(child)
    }

    /// Waits (up to `within`) for SIPp to finish its `-m` calls; its exit code.
    pub fn wait(&mut self, within: Duration) -> Option<i32> {
        let end = Instant::now() + within;
        while Instant::now() < end {
            if let Some(status) = self.0.try_wait().unwrap() {
                return status.code();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }
}

impl Drop for SippUas {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// SIPp ended well, or the failure with SIPp's and the hotline's words.
pub fn assert_sipp_ok(h: &Hotline, run: &SippRun) {
    assert_eq!(
        run.status,
        0,
        "sipp failed\n{}\n{}\nhotline log:\n{}",
        run.stdout,
        sipp_errors(h),
        h.log()
    );
}

pub fn sipp_errors(hotline: &Hotline) -> String {
    std::fs::read_to_string(hotline.dir.path().join("sipp_errors.log")).unwrap_or_default()
}

/// Writes a pcap of RFC 4733 telephone-events at payload type `pt` for
/// `digits`: per digit 100 ms of updates then the end packet three times,
/// 100 ms apart, as a real phone sends them. Returns the file.
pub fn dtmf_pcap(dir: &Path, digits: &str, pt: u8) -> PathBuf {
    let path = dir.join("dtmf.pcap");
    let mut f = pcap_file(&path);
    let mut seq: u16 = 1000;
    let mut t_ms: u64 = 0;
    let mut rtp_ts: u32 = 8000;
    for d in digits.chars() {
        let event = match d {
            '0'..='9' => d as u8 - b'0',
            '*' => 10,
            '#' => 11,
            _ => panic!("not a DTMF digit: {d}"),
        };
        let mut packets: Vec<(bool, bool, u16)> =
            (1..=5).map(|i| (i == 1, false, i * 160)).collect();
        packets.extend([(false, true, 800); 3]);
        for (marker, end, duration) in packets {
            let mut rtp = vec![0x80, if marker { 0x80 | pt } else { pt }];
            rtp.extend(seq.to_be_bytes());
            rtp.extend(rtp_ts.to_be_bytes());
            rtp.extend(0x1234_5678u32.to_be_bytes());
            rtp.extend([event, if end { 0x8a } else { 0x0a }]);
            rtp.extend(duration.to_be_bytes());
            write_udp_packet(&mut f, t_ms, &rtp);
            seq = seq.wrapping_add(1);
            t_ms += 20;
        }
        rtp_ts = rtp_ts.wrapping_add(800 + 100 * 8);
        t_ms += 100;
    }
    path
}

/// A pcap of one RFC 4733 key held down `held_ms` (updates every 20 ms,
/// then the end packet three times), as a phone sends a long press.
pub fn held_key_pcap(dir: &Path, digit: char, pt: u8, held_ms: u64) -> PathBuf {
    let path = dir.join(format!("held_{digit}.pcap"));
    let mut f = pcap_file(&path);
    let event = digit.to_digit(10).expect("a digit key") as u8;
    let updates = held_ms / 20;
    let mut packets: Vec<(bool, bool, u16)> = (1..=updates)
        .map(|i| (i == 1, false, (i * 160).min(0xffff) as u16))
        .collect();
    let total = ((updates * 160).min(0xffff)) as u16;
    packets.extend([(false, true, total); 3]);
    for (i, (marker, end, duration)) in packets.into_iter().enumerate() {
        let mut rtp = vec![0x80, if marker { 0x80 | pt } else { pt }];
        rtp.extend((2000u16 + i as u16).to_be_bytes());
        rtp.extend(16_000u32.to_be_bytes());
        rtp.extend(0x1234_5679u32.to_be_bytes());
        rtp.extend([event, if end { 0x8a } else { 0x0a }]);
        rtp.extend(duration.to_be_bytes());
        write_udp_packet(&mut f, i as u64 * 20, &rtp);
    }
    path
}

/// A pcap of `ms` milliseconds of a 440 Hz tone as PCMU RTP (payload type
/// 0, 20 ms packets): a caller speaking, for SIPp to replay.
pub fn tone_pcap(dir: &Path, ms: u64) -> PathBuf {
    tone_pcap_hz(dir, ms, 440.0)
}

/// The same at `hz`.
pub fn tone_pcap_hz(dir: &Path, ms: u64, hz: f64) -> PathBuf {
    let path = dir.join(format!("voice-{hz}.pcap"));
    let mut f = pcap_file(&path);
    let law = hotline::media::g711::Law::Mu;
    for p in 0..ms / 20 {
        let mut rtp = vec![0x80, if p == 0 { 0x80 } else { 0 }];
        rtp.extend((p as u16).to_be_bytes());
        rtp.extend(((p * 160) as u32).to_be_bytes());
        rtp.extend(0x0bad_cafeu32.to_be_bytes());
        for i in 0..160 {
            let t = (p * 160 + i) as f64 / 8000.0;
            rtp.push(law.encode((9000.0 * (2.0 * std::f64::consts::PI * hz * t).sin()) as i16));
        }
        write_udp_packet(&mut f, p * 20, &rtp);
    }
    path
}

/// A new pcap file with its global header: magic, v2.4, tz 0, sigfigs 0,
/// snaplen, Ethernet.
fn pcap_file(path: &Path) -> std::fs::File {
    let mut f = std::fs::File::create(path).unwrap();
    let mut header = Vec::new();
    header.extend(0xa1b2c3d4u32.to_le_bytes());
    header.extend(2u16.to_le_bytes());
    header.extend(4u16.to_le_bytes());
    header.extend([0u8; 8]);
    header.extend(65535u32.to_le_bytes());
    header.extend(1u32.to_le_bytes());
    f.write_all(&header).unwrap();
    f
}

fn write_udp_packet(f: &mut std::fs::File, t_ms: u64, payload: &[u8]) {
    let udp_len = 8 + payload.len();
    let ip_len = 20 + udp_len;
    let mut ip = vec![
        0x45, 0, 0, 0, 0, 1, 0, 0, 64, 17, 0, 0, 127, 0, 0, 1, 127, 0, 0, 1,
    ];
    ip[2..4].copy_from_slice(&(ip_len as u16).to_be_bytes());
    let sum = ip
        .chunks(2)
        .map(|c| u16::from_be_bytes([c[0], c[1]]) as u32)
        .sum::<u32>();
    let sum = !(((sum & 0xffff) + (sum >> 16)) as u16);
    ip[10..12].copy_from_slice(&sum.to_be_bytes());
    let mut frame = vec![0u8; 12];
    frame.extend([0x08, 0x00]);
    frame.extend(ip);
    frame.extend(4000u16.to_be_bytes());
    frame.extend(4002u16.to_be_bytes());
    frame.extend((udp_len as u16).to_be_bytes());
    frame.extend([0, 0]);
    frame.extend(payload);
    let mut rec = Vec::new();
    rec.extend(((t_ms / 1000) as u32 + 1_700_000_000).to_le_bytes());
    rec.extend((((t_ms % 1000) * 1000) as u32).to_le_bytes());
    rec.extend((frame.len() as u32).to_le_bytes());
    rec.extend((frame.len() as u32).to_le_bytes());
    f.write_all(&rec).unwrap();
    f.write_all(&frame).unwrap();
}

/// A path in this repository.
pub fn manifest(path: &str) -> String {
    format!("{}/{path}", env!("CARGO_MANIFEST_DIR"))
}

/// A hotline with the default menu, the 1,000 sample owners and the demo
/// agents; `acd` adds keys to its `[acd]` section. The returned folder
/// holds the owner database and the callers' voice messages.
pub fn menu_hotline(base: u16, acd: &str) -> (Hotline, tempfile::TempDir) {
    let data = tempfile::tempdir().unwrap();
    let db = data.path().join("owners.db");
    let db = db.to_str().unwrap();
    cli(&[
        "owners",
        "--db",
        db,
        "import",
        &manifest("config/owners.csv"),
    ]);
    let h = Hotline::start(
        base,
        &format!(
            "[owners]\ndb = \"{db}\"\n[ivr]\nmenu = \"{}\"\nrecordings = \"{}\"\n[acd]\nagents = \"{}\"\n{acd}",
            manifest("config/ivr.toml"),
            data.path().join("recordings").display(),
            manifest("config/agents.toml"),
        ),
    );
    (h, data)
}

/// Half-second windows of `samples` (8 kHz) that carry `hz`: loud, and
/// well above each of `others`.
pub fn windows_with(samples: &[i16], hz: f64, others: &[f64]) -> usize {
    samples
        .chunks(4000)
        .filter(|w| {
            let loud =
                w.iter().map(|s| s.unsigned_abs() as u64).sum::<u64>() / w.len() as u64 > 300;
            let own = goertzel(w, hz);
            loud && others.iter().all(|o| own > 10.0 * goertzel(w, *o))
        })
        .count()
}

/// The states the ACD gave `agent`, in order.
pub fn agent_states(h: &Hotline, agent: &str) -> Vec<String> {
    h.lines("agent state")
        .iter()
        .filter(|l| field(l, "agent") == Some(agent))
        .filter_map(|l| field(l, "state").map(str::to_string))
        .collect()
}

/// Waits (10 s at most) until the ACD has put `agent` in `state`.
pub fn wait_agent_state(h: &Hotline, agent: &str, state: &str) {
    let end = Instant::now() + Duration::from_secs(10);
    while !agent_states(h, agent).iter().any(|s| s == state) {
        assert!(Instant::now() < end, "{agent} never {state}: {}", h.log());
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The energy of `samples` (8 kHz) at `hz` (Goertzel), per sample.
pub fn goertzel(samples: &[i16], hz: f64) -> f64 {
    let w = 2.0 * std::f64::consts::PI * hz / 8000.0;
    let coeff = 2.0 * w.cos();
    let (mut s1, mut s2) = (0.0f64, 0.0f64);
    for &x in samples {
        let s0 = x as f64 + coeff * s1 - s2;
        s2 = s1;
        s1 = s0;
    }
    (s1 * s1 + s2 * s2 - coeff * s1 * s2) / samples.len().max(1) as f64
}

/// The value of one sample line, `name{labels} value`.
pub fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.starts_with(series) && l[series.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
}

/// Prometheus' own checker (`promtool check metrics`, Debian package
/// `prometheus`, installed by tests/run.sh) accepts `text`.
pub fn assert_promtool_accepts(text: &str) {
    use std::io::Write;
    let mut promtool = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool (Debian package prometheus, installed by tests/run.sh)");
    promtool
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = promtool.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool: {}{}\n{text}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Opens a work order for `owner` with the CLI, as a supervisor would.
pub fn open_ticket(h: &Hotline, category: &str, owner: &str, summary: &str) {
    cli(&[
        "tickets",
        "--store",
        h.store_path().to_str().unwrap(),
        "open",
        "--category",
        category,
        "--owner",
        owner,
        "--summary",
        summary,
    ]);
}

/// The queue figures a supervisor sees on `h` (`/api/queues`) and the
/// day's report replayed from the log (`/api/reports/day`): equal, figure
/// for figure, in every queue. The report, for what a test checks next.
pub fn figures_agree_with_the_log(h: &Hotline) -> serde_json::Value {
    let get = |path: &str| {
        let (status, body) = http(h.http_port(), "GET", path, Some("demo-supervisor"), None);
        assert_eq!(status, 200, "{path}: {body}");
        serde_json::from_str::<serde_json::Value>(&body).unwrap()
    };
    let (live, day) = (get("/api/queues"), get("/api/reports/day"));
    for queue in live["queues"].as_array().unwrap() {
        let figures = &queue["figures"];
        let replayed = day["queues"]
            .as_array()
            .unwrap()
            .iter()
            .find(|q| q["queue"] == queue["name"])
            .unwrap_or_else(|| panic!("{day:#}"));
        for key in [
            "answered",
            "answered_in_time",
            "abandoned",
            "abandoned_in_time",
            "overflowed",
            "service_level_answered",
            "service_level_offered",
            "abandon_rate",
            "asa_seconds",
            "aht_seconds",
        ] {
            assert_eq!(
                figures[key], replayed[key],
                "{key}: live {queue:#} replayed {replayed:#}"
            );
        }
    }
    day
}

/// How many calls the day's `report` counted under each of `keys`
/// (answered, abandoned, overflowed), over its queues.
pub fn calls_counted(report: &serde_json::Value, keys: &[&str]) -> u64 {
    report["queues"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|q| keys.iter().map(move |k| q[k].as_u64().unwrap_or(0)))
        .sum()
}
