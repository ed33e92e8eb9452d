//! Two (or more) hotline nodes on one PostgreSQL store, end to end: the
//! active node killed (kill -9) or frozen (SIGSTOP) past its lease, the
//! standby taking over, the old node fenced out of the log.

mod common;

use std::net::UdpSocket;
use std::time::{Duration, Instant};

use common::baresip::Baresip;
use common::caller::{Step, scenario};
use common::stores::{TestStore, all_events};
use common::{Hotline, assert_sipp_ok, sipp};
use hotline::tickets::{Event, EventKind};

/// Below Linux's ephemeral ports (32768-60999): the nodes' own PostgreSQL
/// connections take those, and one held 33000 as a node went to bind it.
const BASE: u16 = 10000;
/// Kamailio, the phone and SIPp owners: past the nodes' ten port blocks
/// (200 each, one per node started in this file).
const PEERS: u16 = BASE + 2200;
const LEASE: Duration = Duration::from_secs(3);

/// A node of the cluster on `store`, with the default menu (standby until
/// it holds the lease). Nobody is logged in: callers who press 0 wait.
fn node(store: &TestStore, name: &str) -> (Hotline, tempfile::TempDir) {
    common::menu_hotline(
        BASE,
        &format!(
            "when_empty = \"wait\"\n[tickets]\nstore = \"{}\"\n[cluster]\nnode = \"{name}\"\nlease_seconds = {}\n\
             [http]\nlisten = \"127.0.0.1:HTTP_PORT\"\nusers = \"{}\"\n",
            store.location,
            LEASE.as_secs(),
            common::manifest("config/users.toml")
        ),
    )
}

/// Owners who press 0 and wait `ms` in the queue (nobody answers).
fn queued_caller(h: &Hotline, name: &str, ms: u64) -> std::path::PathBuf {
    scenario(
        h.dir.path(),
        name,
        "13800138000",
        "100",
        &[Step::Pause(300), Step::Key('0'), Step::Pause(ms)],
    )
}

fn wait_for(h: &Hotline, what: &str, within: Duration) {
    let end = Instant::now() + within;
    while !h.log().contains(what) {
        assert!(Instant::now() < end, "never {what:?}:\n{}", h.log());
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The status code a node answers an OPTIONS with (None: no answer in 300 ms).
fn options(h: &Hotline) -> Option<u16> {
    options_to(&h.target())
}

/// A node's role as `hotline cluster status` prints it.
fn role_of(status: &str, node: &str) -> Option<String> {
    status
        .lines()
        .find(|l| l.split_whitespace().next() == Some(node))
        .and_then(|l| l.split_whitespace().nth(1))
        .map(str::to_string)
}

/// A caller who hangs up a moment after the answer.
fn short_call(h: &Hotline) -> std::path::PathBuf {
    scenario(
        h.dir.path(),
        "short",
        "13800138000",
        "100",
        &[Step::Pause(300)],
    )
}

/// A caller who waits in the menu for a long while: in progress when the
/// node is killed or frozen. Its SIPp is killed on drop.
struct Waiting(std::process::Child);

impl Waiting {
    fn call(h: &Hotline, port: u16) -> Self {
        let xml = scenario(
            h.dir.path(),
            "waiting",
            "13800138000",
            "100",
            &[Step::Pause(40_000)],
        );
        Waiting(common::sipp_on(h, &xml, port))
    }
}

impl Drop for Waiting {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// How many calls `h` answered (from its log).
fn answered_calls(h: &Hotline) -> usize {
    h.lines("call answered").len()
}

/// The SIP Call-ID of the last call `h` answered.
fn last_answered(h: &Hotline) -> String {
    let answered = h.lines("call answered");
    let call = common::field(answered.last().expect("a call answered"), "call")
        .unwrap()
        .to_string();
    h.lines("call started")
        .iter()
        .find(|l| common::field(l, "call") == Some(call.as_str()))
        .and_then(|l| common::field(l, "sip_call_id"))
        .expect("its start")
        .to_string()
}

/// Waits until `h` answered more than `before` calls.
fn wait_answered(h: &Hotline, before: usize, within: Duration) {
    let end = Instant::now() + within;
    while answered_calls(h) <= before {
        assert!(Instant::now() < end, "no call answered:\n{}", h.log());
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn ends_of<'a>(events: &'a [Event], call: &str) -> Vec<&'a str> {
    events
        .iter()
        .filter(|e| e.call.as_deref() == Some(call))
        .filter_map(|e| match &e.kind {
            EventKind::CallEnded { reason, .. } => Some(reason.as_str()),
            _ => None,
        })
        .collect()
}

fn started_calls(events: &[Event]) -> Vec<String> {
    events
        .iter()
        .filter(|e| matches!(e.kind, EventKind::CallStarted { .. }))
        .filter_map(|e| e.call.clone())
        .collect()
}

#[test]
fn killing_the_active_node_three_times_hands_the_calls_to_a_standby_within_the_lease() {
    let Some(store) = TestStore::postgres() else {
        return;
    };
    let mut active = node(&store, "a");
    wait_for(&active.0, "this node is active", Duration::from_secs(10));
    let names = ["b", "c", "d"];
    let mut gaps = Vec::new();
    let mut cut_off = Vec::new();
    for (round, name) in names.into_iter().enumerate() {
        // Past Kamailio's test's peers, a pair of SIPp ports each round.
        let peers = PEERS + 400 + 40 * round as u16;
        // Started standby (its first line says so).
        let standby = node(&store, name);
        assert_eq!(options(&standby.0), Some(503), "a standby refuses");
        assert_eq!(options(&active.0), Some(200), "the active node answers");
        // A call answered before the kill; one in progress at it.
        let short = short_call(&active.0);
        assert_sipp_ok(
            &active.0,
            &sipp(&active.0, short.to_str().unwrap(), &["-m", "1"]),
        );
        // Counted before the call starts: it may be answered before the
        // next line runs.
        let before = answered_calls(&active.0);
        let waiting = Waiting::call(&active.0, active.0.peer_port + 20);
        wait_answered(&active.0, before, Duration::from_secs(5));
        cut_off.push(last_answered(&active.0));
        // Under load: owners keep calling, five a second, each waiting in
        // the queue a moment and hanging up; one waits on through the kill.
        let queued = Waiting(common::sipp_on(
            &active.0,
            &queued_caller(&active.0, "queued", 40_000),
            peers,
        ));
        let steady = Waiting(common::sipp_to(
            &active.0.target(),
            &active.0,
            &queued_caller(&active.0, "steady", 700),
            peers + 20,
            &["-r", "5", "-m", "40", "-timeout", "20s"],
        ));
        std::thread::sleep(Duration::from_secs(2));
        // kill -9 the active node; the standby answers within the lease.
        active.0.kill();
        let killed = Instant::now();
        while options(&standby.0) != Some(200) {
            assert!(
                killed.elapsed() < LEASE + Duration::from_secs(4),
                "no takeover:\n{}",
                standby.0.log()
            );
        }
        let accepting = killed.elapsed();
        // The next call is answered (and played through) by the new node.
        let next = common::sipp_on(
            &standby.0,
            &short_call(&standby.0),
            standby.0.peer_port + 40,
        );
        wait_answered(&standby.0, 0, Duration::from_secs(5));
        gaps.push((name, accepting, killed.elapsed()));
        // It followed the log while standby: taking over read only the
        // events since its last look, not the day.
        assert!(
            standby
                .0
                .log()
                .contains("the log's last day as this node followed it"),
            "{}",
            standby.0.log()
        );
        let out = next.wait_with_output().unwrap();
        assert!(out.status.success(), "{}", standby.0.log());
        drop((waiting, queued, steady));
        active = standby;
    }
    // The figures ran on through three takeovers: the last node's are the
    // log's, and count the callers of every node (two seconds of five a
    // second, and the one cut off, each round: 24 here when idle).
    std::thread::sleep(Duration::from_millis(1500)); // published each second
    let report = common::figures_agree_with_the_log(&active.0);
    let counted = common::calls_counted(&report, &["answered", "abandoned", "overflowed"]);
    println!("queue figures after three takeovers: {counted} calls, as the log says");
    assert!(counted >= 3 * 4, "{counted} calls counted");
    for (name, accepting, answered) in &gaps {
        println!(
            "takeover by {name}: {:.2} s from kill -9 to OPTIONS 200, {:.2} s to the next call answered",
            accepting.as_secs_f64(),
            answered.as_secs_f64()
        );
        assert!(
            *answered < LEASE + Duration::from_secs(2),
            "{name}: {answered:?}"
        );
    }
    // The log: every call ends once; the ones in progress at a kill were
    // ended node_failed by the node that took over.
    let events = all_events(&store.location);
    for call in started_calls(&events) {
        let ends = ends_of(&events, &call);
        assert_eq!(ends.len(), 1, "{call}: {ends:?}");
    }
    for call in &cut_off {
        assert_eq!(ends_of(&events, call), ["node_failed"], "{call}");
    }
}

#[test]
fn a_frozen_active_node_writes_nothing_after_the_takeover_and_becomes_standby() {
    let Some(store) = TestStore::postgres() else {
        return;
    };
    let (a, _da) = node(&store, "a");
    wait_for(&a, "this node is active", Duration::from_secs(10));
    let (b, _db) = node(&store, "b");
    let waiting = Waiting::call(&a, a.peer_port + 20);
    let end = Instant::now() + Duration::from_secs(5);
    while answered_calls(&a) == 0 {
        assert!(Instant::now() < end, "{}", a.log());
        std::thread::sleep(Duration::from_millis(20));
    }
    let call = last_answered(&a);
    let pid = a.pid().to_string();
    let signal = |sig: &str| {
        let ok = std::process::Command::new("kill")
            .args([sig, &pid])
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill {sig} {pid}");
    };
    signal("-STOP");
    wait_for(&b, "this node is active", LEASE + Duration::from_secs(5));
    signal("-CONT");
    wait_for(&a, "stepped down", Duration::from_secs(5));
    drop(waiting);
    // Standby again: its SIP port answers 503 (once it is bound again).
    let end = Instant::now() + Duration::from_secs(5);
    while options(&a) != Some(503) {
        assert!(Instant::now() < end, "{}", a.log());
    }
    // b still active (an answer may take longer than one probe's 300 ms
    // on a loaded machine: probed again then, never taken as a yes).
    let end = Instant::now() + Duration::from_secs(3);
    let mut b_answers = options(&b);
    while b_answers.is_none() && Instant::now() < end {
        b_answers = options(&b);
    }
    assert_eq!(b_answers, Some(200), "{}", b.log());
    // Operators see who is active, with which term, and both heartbeats
    // (a's once it has written one as standby).
    let status = || common::cli(&["cluster", "status", "--store", &store.location]);
    let first = status();
    assert!(first.starts_with("active: b (term 2,"), "{first}");
    assert_eq!(role_of(&first, "b").as_deref(), Some("active"), "{first}");
    let end = Instant::now() + Duration::from_secs(3);
    while role_of(&status(), "a").as_deref() != Some("standby") {
        assert!(Instant::now() < end, "{}", status());
        std::thread::sleep(Duration::from_millis(200));
    }
    // What the old node tried to write after the takeover was refused.
    assert!(a.log().contains("fenced"), "{}", a.log());
    let events = all_events(&store.location);
    assert_eq!(ends_of(&events, &call), ["node_failed"], "{}", a.log());
    let mut ids: Vec<u64> = events.iter().map(|e| e.id.0).collect();
    let n = ids.len();
    ids.dedup();
    assert_eq!(ids.len(), n, "no event id twice");
    assert!(
        ids.windows(2).all(|w| w[1] == w[0] + 1),
        "no event id missing: {ids:?}"
    );
}

/// Kamailio (Debian's package) in front, with the hotline's own
/// `deploy/kamailio/kamailio.cfg` and these nodes; killed on drop.
struct Kamailio {
    child: std::process::Child,
    port: u16,
}

impl Kamailio {
    fn start(dir: &std::path::Path, port: u16, nodes: &[&Hotline]) -> Self {
        let list = dir.join("hotline-nodes.list");
        let lines: String = nodes
            .iter()
            .map(|n| format!("1 sip:{}\n", n.target()))
            .collect();
        std::fs::write(&list, lines).unwrap();
        use std::os::unix::process::CommandExt as _;
        let child = std::process::Command::new("kamailio")
            .arg("-f")
            .arg(common::manifest("deploy/kamailio/kamailio.cfg"))
            .args(["-DD", "-E", "-m", "64", "-M", "16", "-Y"])
            .arg(dir)
            .args(["-A", &format!("LISTEN=udp:127.0.0.1:{port}")])
            .args(["-A", &format!("NODES=\"{}\"", list.display())])
            // Its own process group: Kamailio's children are ended with it.
            .process_group(0)
            .stdout(std::process::Stdio::null())
            .stderr(std::fs::File::create(dir.join("kamailio.log")).unwrap())
            .spawn()
            .expect("kamailio is installed by tests/run.sh (Debian package kamailio)");
        Kamailio { child, port }
    }

    fn target(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
}

impl Drop for Kamailio {
    fn drop(&mut self) {
        // The group this test started (the main process and its children).
        let _ = std::process::Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", self.child.id())])
            .status();
        let _ = self.child.wait();
    }
}

/// The status an OPTIONS to the hotline's number through `to` is
/// answered with (None: no answer in 300 ms).
fn options_to(to: &str) -> Option<u16> {
    let s = UdpSocket::bind("127.0.0.1:0").unwrap();
    s.set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    let local = s.local_addr().unwrap();
    let n = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let probe = format!(
        "OPTIONS sip:100@{to} SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch=z9hG4bKk{n}\r\n\
         From: <sip:probe@{local}>;tag=k{n}\r\nTo: <sip:100@{to}>\r\nCall-ID: kprobe-{n}\r\n\
         CSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
    );
    s.send_to(probe.as_bytes(), to).unwrap();
    let mut buf = [0u8; 2048];
    let (len, _) = s.recv_from(&mut buf).ok()?;
    std::str::from_utf8(&buf[..len])
        .ok()?
        .get(8..11)?
        .parse()
        .ok()
}

/// A SIPp owner through Kamailio who presses 0 for an agent and stays on
/// the line a while; SIPp on `port` (.. +4).
fn owner_via(h: &Hotline, kamailio: &Kamailio, name: &str, port: u16) -> std::process::Child {
    let xml = scenario(
        h.dir.path(),
        name,
        "13800138000",
        "100",
        &[Step::Pause(500), Step::Key('0'), Step::Pause(6_000)],
    );
    common::sipp_to(
        &kamailio.target(),
        h,
        &xml,
        port,
        &["-m", "1", "-timeout", "40s", "-timeout_error"],
    )
}

fn connected(h: &Hotline) -> usize {
    h.lines("caller connected to agent").len()
}

#[test]
fn behind_kamailio_an_agent_keeps_taking_calls_after_the_active_node_is_killed() {
    let Some(store) = TestStore::postgres() else {
        return;
    };
    let config = |name: &str| {
        format!(
            "[tickets]\nstore = \"{}\"\n[cluster]\nnode = \"{name}\"\nlease_seconds = {}\n\
             [sip]\nlisten = \"127.0.0.1:SIP_PORT\"\nanswer_after_ms = 100\n\
             trunks = [\"127.0.0.1\"]\nproxies = [\"127.0.0.1\"]\n\
             [http]\nlisten = \"127.0.0.1:HTTP_PORT\"\nusers = \"{}\"\n",
            store.location,
            LEASE.as_secs(),
            common::manifest("config/users.toml")
        )
    };
    let (mut a, _da) = common::menu_hotline(BASE, &config("a"));
    wait_for(&a, "this node is active", Duration::from_secs(10));
    let (b, _db) = common::menu_hotline(BASE, &config("b"));
    let kamailio = Kamailio::start(b.dir.path(), PEERS, &[&a, &b]);
    let end = Instant::now() + Duration::from_secs(10);
    while options_to(&kamailio.target()) != Some(200) {
        assert!(
            Instant::now() < end,
            "Kamailio never reached the active node"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // Agent 2001 registers and logs in through Kamailio, on node a.
    let k = kamailio.target();
    let phone_port = PEERS + 100;
    let _phone = Baresip::start(
        a.dir.path(),
        &format!(
            "<sip:2001@{k}>;auth_user=2001;auth_pass=agent2001;regint=600;answermode=auto;audio_codecs=PCMU/8000"
        ),
        phone_port,
        (phone_port + 10, phone_port + 60),
        &[&format!("/dial sip:*1@{k}")],
    );
    let available = |h: &Hotline| {
        h.lines("agent state").iter().any(|l| {
            common::field(l, "agent") == Some("2001")
                && common::field(l, "state") == Some("available")
        })
    };
    let end = Instant::now() + Duration::from_secs(15);
    while !available(&a) {
        assert!(
            Instant::now() < end,
            "2001 never logged in on a:\n{}",
            a.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // The REGISTER came through Kamailio (its address is the source a saw).
    let registered = a.lines("agent registered");
    assert!(
        registered
            .iter()
            .any(|l| common::field(l, "from") == Some(k.as_str())),
        "{registered:?}"
    );
    // A caller who writes the header Kamailio writes is not believed:
    // Kamailio replaces it, and a sees the trunk the call came from (the
    // caller ID believed), not the stranger it names.
    let forger = UdpSocket::bind("127.0.0.1:0").unwrap();
    let local = forger.local_addr().unwrap();
    let sdp = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 16000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n";
    let invite = format!(
        "INVITE sip:100@{k} SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch=z9hG4bKforged\r\n\
         From: <sip:13800138000@127.0.0.1>;tag=f\r\nTo: <sip:100@{k}>\r\nCall-ID: forged-1\r\n\
         CSeq: 1 INVITE\r\nContact: <sip:13800138000@{local}>\r\nMax-Forwards: 70\r\n\
         X-Hotline-Source: udp:192.0.2.1:5060\r\nContent-Type: application/sdp\r\n\
         Content-Length: {}\r\n\r\n{sdp}",
        sdp.len()
    );
    forger.send_to(invite.as_bytes(), &k).unwrap();
    let end = Instant::now() + Duration::from_secs(5);
    let started = |h: &Hotline| {
        h.lines("call started")
            .into_iter()
            .find(|l| common::field(l, "sip_call_id") == Some("forged-1"))
    };
    while started(&a).is_none() {
        assert!(Instant::now() < end, "{}", a.log());
        std::thread::sleep(Duration::from_millis(50));
    }
    let line = started(&a).unwrap();
    assert_eq!(
        common::field(&line, "number"),
        Some("13800138000"),
        "{line}"
    );
    // An owner through Kamailio reaches 2001 on node a.
    let mut first = owner_via(&a, &kamailio, "first", PEERS + 30);
    let end = Instant::now() + Duration::from_secs(15);
    while connected(&a) == 0 {
        assert!(
            Instant::now() < end,
            "the first owner never reached 2001:\n{}",
            a.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // Owners keep calling through Kamailio, four a second, short calls.
    let short = short_call(&a);
    let steady = common::sipp_to(
        &k,
        &a,
        &short,
        PEERS + 50,
        &[
            "-r",
            "4",
            "-m",
            "48",
            "-timeout",
            "40s",
            "-recv_timeout",
            "3000",
        ],
    );
    std::thread::sleep(Duration::from_secs(2));
    // kill -9 the active node mid-call.
    a.kill();
    let killed = Instant::now();
    let killed_at = jiff::Timestamp::now();
    let _ = first.kill();
    let _ = first.wait();
    while options_to(&k) != Some(200) {
        assert!(
            killed.elapsed() < LEASE + Duration::from_secs(5),
            "Kamailio found no active node:\n{}",
            b.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let accepting = killed.elapsed();
    // The next owner through Kamailio reaches 2001 on node b: logged in
    // and rung on the registration b restored from the log.
    let mut second = owner_via(&b, &kamailio, "second", PEERS + 40);
    let end = Instant::now() + Duration::from_secs(20);
    while connected(&b) == 0 {
        assert!(Instant::now() < end, "2001 never rang on b:\n{}", b.log());
        std::thread::sleep(Duration::from_millis(50));
    }
    let answered = killed.elapsed();
    println!(
        "behind Kamailio: {:.2} s from kill -9 to Kamailio reaching the new node, {:.2} s to the next owner talking to 2001",
        accepting.as_secs_f64(),
        answered.as_secs_f64()
    );
    // The steady callers: the first one b answered, after the kill.
    let out = steady.wait_with_output().unwrap();
    let first_on_b = b
        .lines("call answered")
        .iter()
        .filter_map(|l| l.split_whitespace().next()?.parse::<jiff::Timestamp>().ok())
        .min()
        .expect("b answered the steady callers");
    let gap = first_on_b.duration_since(killed_at);
    println!(
        "behind Kamailio, owners calling 4 a second: {:.2} s from kill -9 to the first call node b answered (SIPp exit {:?})",
        gap.as_secs_f64(),
        out.status.code()
    );
    assert!(gap.as_secs_f64() < 5.0, "{gap:?}");
    assert!(
        b.log().contains("agent registration restored from the log"),
        "{}",
        b.log()
    );
    assert!(
        b.lines("agent registered").is_empty(),
        "2001 did not register again: {:?}",
        b.lines("agent registered")
    );
    // The supervisor's figures on b run on from a's: the owner a
    // answered counts beside the one b did, as the day's log says.
    std::thread::sleep(Duration::from_millis(1500)); // published each second
    let report = common::figures_agree_with_the_log(&b);
    assert_eq!(
        common::calls_counted(&report, &["answered"]),
        2,
        "{report:#}"
    );
    let _ = second.kill();
    let _ = second.wait();
}

/// A department's webhook: 500 until `accept` is set, then 200; counts
/// the POSTs it took.
struct Webhook {
    port: u16,
    accept: std::sync::Arc<std::sync::atomic::AtomicBool>,
    taken: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl Webhook {
    fn start() -> Self {
        use std::io::{Read, Write};
        use std::sync::atomic::Ordering;
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let accept = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let taken = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let (a, t) = (accept.clone(), taken.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
                let mut got = Vec::new();
                let mut buf = [0u8; 4096];
                // The head, then the body its Content-Length says.
                while let Ok(n) = stream.read(&mut buf) {
                    if n == 0 {
                        break;
                    }
                    got.extend_from_slice(&buf[..n]);
                    let text = String::from_utf8_lossy(&got);
                    if let Some(head_end) = text.find("\r\n\r\n") {
                        let len = text[..head_end]
                            .lines()
                            .find_map(|l| {
                                let (k, v) = l.split_once(':')?;
                                k.eq_ignore_ascii_case("content-length")
                                    .then(|| v.trim().parse::<usize>().ok())?
                            })
                            .unwrap_or(0);
                        if got.len() >= head_end + 4 + len {
                            break;
                        }
                    }
                }
                let status = if a.load(Ordering::SeqCst) {
                    t.fetch_add(1, Ordering::SeqCst);
                    "200 OK"
                } else {
                    "500 Internal Server Error"
                };
                let _ = stream.write_all(
                    format!("HTTP/1.1 {status}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                        .as_bytes(),
                );
            }
        });
        Webhook {
            port,
            accept,
            taken,
        }
    }
}

#[test]
fn an_sla_warning_due_during_a_takeover_is_written_once_and_a_pending_webhook_is_delivered() {
    use hotline::tickets::{Actor, Department, NewEvent, Severity, Store};
    use std::sync::atomic::Ordering;
    let Some(store) = TestStore::postgres() else {
        return;
    };
    let hook = Webhook::start();
    let config = |name: &str| {
        format!(
            "[tickets]\nstore = \"{}\"\n[tickets.webhooks]\nengineering = \"http://127.0.0.1:{}/dispatch\"\n\
             [cluster]\nnode = \"{name}\"\nlease_seconds = {}\n",
            store.location,
            hook.port,
            LEASE.as_secs()
        )
    };
    let (mut a, _da) = common::menu_hotline(BASE, &config("a"));
    wait_for(&a, "this node is active", Duration::from_secs(10));
    let (b, _db) = common::menu_hotline(BASE, &config("b"));
    // A work order whose 30-minute promise reaches its warning (80 %) in
    // 2.5 s, dispatched to engineering, whose webhook refuses for now.
    let now = hotline::runtime::tickets::now_ms();
    let opened_at = now - 24 * 60_000 + 2_500;
    let log = Store::open(&store.location).unwrap();
    let opened = log
        .append_blocking(vec![NewEvent {
            ticket: None,
            call: None,
            at_ms: opened_at,
            actor: Actor::Agent("2001".into()),
            kind: EventKind::TicketOpened {
                category: "takeover_test".into(),
                severity: Severity::Ordinary,
                owner: Some("O-0001".into()),
                building: Some("1".into()),
                summary: "leak under the sink".into(),
                phone: None,
            },
        }])
        .unwrap();
    let ticket = opened[0].ticket.unwrap();
    log.append_blocking(vec![NewEvent {
        ticket: Some(ticket),
        call: None,
        at_ms: now,
        actor: Actor::Agent("2001".into()),
        kind: EventKind::Dispatched {
            department: Department::Engineering,
            person: None,
        },
    }])
    .unwrap();
    // Node a tries the webhook (refused) and is killed before the warning.
    let end = Instant::now() + Duration::from_secs(5);
    while !a.log().contains("dispatch webhook") {
        assert!(
            Instant::now() < end,
            "a never tried the webhook:\n{}",
            a.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    a.kill();
    hook.accept.store(true, Ordering::SeqCst);
    wait_for(&b, "this node is active", LEASE + Duration::from_secs(5));
    // The warning came due while nobody was active: b writes it, once;
    // and delivers the dispatch a could not.
    let end = Instant::now() + Duration::from_secs(15);
    let count = |kind: &str| {
        all_events(&store.location)
            .iter()
            .filter(|e| e.ticket == Some(ticket) && e.kind.name() == kind)
            .count()
    };
    while count("sla_warned") == 0 || count("dispatch_delivered") == 0 {
        assert!(Instant::now() < end, "{}", b.log());
        std::thread::sleep(Duration::from_millis(100));
    }
    // Later rounds of b's watcher (and a replay) add nothing.
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(count("sla_warned"), 1, "{}", b.log());
    assert_eq!(count("dispatch_delivered"), 1, "{}", b.log());
    assert!(hook.taken.load(Ordering::SeqCst) >= 1);
}
