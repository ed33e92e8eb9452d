//! The guard on a fake clock.

use super::*;

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn guard() -> Guard {
    Guard::new(GuardConfig {
        trunks: Networks::parse(&["192.0.2.0/24"]).unwrap(),
        ..GuardConfig::default()
    })
}

#[test]
fn a_source_over_its_rate_is_told_once_a_second_then_silenced() {
    let mut g = guard();
    let t0 = Instant::now();
    let flooder = ip("198.51.100.7");
    // The burst passes, then one 503, then silence for the rest of the second.
    let verdicts: Vec<Verdict> = (0..100)
        .map(|i| g.handle_request(t0 + Duration::from_micros(i * 300), flooder, Class::Invite))
        .collect();
    assert_eq!(verdicts.iter().filter(|v| **v == Verdict::Pass).count(), 20);
    assert_eq!(
        verdicts
            .iter()
            .filter(|v| matches!(v, Verdict::Refuse { .. }))
            .count(),
        1
    );
    assert_eq!(verdicts[20], Verdict::Refuse { retry_after: 1 });
    assert!(verdicts[21..].iter().all(|v| *v == Verdict::Drop));
    // Other classes and other sources are not affected.
    assert_eq!(
        g.handle_request(t0, flooder, Class::Register),
        Verdict::Pass
    );
    assert_eq!(
        g.handle_request(t0, ip("198.51.100.8"), Class::Invite),
        Verdict::Pass
    );
    // Over time the rate refills: 5 a second.
    let later = t0 + Duration::from_secs(2);
    let passed = (0..20)
        .filter(|_| g.handle_request(later, flooder, Class::Invite) == Verdict::Pass)
        .count();
    assert_eq!(passed, 10);
    assert_eq!(g.stats().refused[Class::Invite as usize], 2);
}

#[test]
fn a_trunk_has_its_own_larger_limits() {
    let mut g = guard();
    let t0 = Instant::now();
    let trunk = ip("192.0.2.10");
    let passed = (0..4000)
        .filter(|_| g.handle_request(t0, trunk, Class::Invite) == Verdict::Pass)
        .count();
    assert_eq!(passed, 4000);
    assert!(g.is_trunk(trunk) && !g.is_trunk(ip("192.0.3.1")));
}

#[test]
fn ten_failed_logins_in_a_minute_ban_the_source() {
    let mut g = guard();
    let t0 = Instant::now();
    let guesser = ip("198.51.100.9");
    let mut logged = 0;
    for i in 0..9 {
        let f = g.handle_auth_failure(t0 + Duration::from_millis(i * 100), guesser);
        assert_eq!(f.banned, None);
        logged += f.log as u32;
    }
    // At most one log line per source per second.
    assert_eq!(logged, 1);
    assert!(g.handle_datagram(t0, guesser));
    let f = g.handle_auth_failure(t0 + Duration::from_secs(1), guesser);
    assert_eq!(
        f.banned,
        Some(Banned {
            ip: guesser,
            failures: 10,
            duration: Duration::from_secs(900)
        })
    );
    assert!(f.log);
    assert!(!g.handle_datagram(t0 + Duration::from_secs(2), guesser));
    assert!(g.handle_datagram(t0 + Duration::from_secs(2), ip("198.51.100.10")));
    let bans = g.bans(t0 + Duration::from_secs(61));
    assert_eq!(bans.len(), 1);
    assert_eq!(bans[0].remaining, Duration::from_secs(840));
    // It ends by itself after 15 minutes.
    assert!(g.handle_datagram(t0 + Duration::from_secs(902), guesser));
    assert_eq!(g.stats().bans, 1);
    assert!(g.stats().dropped_banned >= 1);
}

#[test]
fn failures_spread_over_more_than_the_window_do_not_ban() {
    let mut g = guard();
    let t0 = Instant::now();
    let phone = ip("10.0.0.5");
    for i in 0..30 {
        let f = g.handle_auth_failure(t0 + Duration::from_secs(i * 7), phone);
        assert_eq!(f.banned, None, "failure {i}");
    }
}

#[test]
fn a_trunk_is_never_banned_and_a_supervisor_lifts_bans() {
    let mut g = guard();
    let t0 = Instant::now();
    for _ in 0..50 {
        assert_eq!(
            g.handle_auth_failure(t0, ip("192.0.2.1")).banned,
            None,
            "trunk"
        );
    }
    let guesser = ip("198.51.100.11");
    for _ in 0..10 {
        g.handle_auth_failure(t0, guesser);
    }
    assert!(!g.handle_datagram(t0, guesser));
    assert!(g.lift(t0, guesser));
    assert!(!g.lift(t0, guesser), "nothing left to lift");
    assert!(g.handle_datagram(t0, guesser));
    // Its failures were forgotten with the ban.
    assert_eq!(g.handle_auth_failure(t0, guesser).banned, None);
}

#[test]
fn a_flood_from_many_addresses_keeps_the_table_bounded() {
    let mut g = Guard::new(GuardConfig {
        max_sources: 1000,
        ..GuardConfig::default()
    });
    let t0 = Instant::now();
    for i in 0..50_000u32 {
        let from = IpAddr::V4((0x0a00_0000 + i).into());
        g.handle_request(t0, from, Class::Other);
    }
    assert_eq!(g.sources(), 1000);
    // Newcomers share one bucket meanwhile: they are limited together.
    assert_eq!(g.stats().refused[Class::Other as usize], 1);
    // Once idle, the table empties on the sweep.
    let later = t0 + IDLE + Duration::from_secs(1);
    assert!(g.poll_timeout().is_some_and(|at| at <= later));
    g.handle_timeout(later);
    assert_eq!(g.sources(), 0);
}

#[test]
fn connections_get_only_the_descriptors_calls_do_not_need() {
    // Plenty: the caps stand.
    let b = fit_to_fd_limit(65_536, 2000, 1000, 512);
    assert_eq!(
        (b.sip_connections, b.http_connections, b.lowered),
        (1000, 512, false)
    );
    // 4096 descriptors, 2000 calls (4000 RTP sockets at most): 32 left for
    // connections, shared in proportion; every call keeps its two.
    let b = fit_to_fd_limit(4096, 2000, 1000, 512);
    assert!(b.lowered);
    assert!(b.sip_connections + b.http_connections <= 4096 - 2000 - FD_OVERHEAD);
    assert!(b.sip_connections > b.http_connections && b.http_connections >= 1);
    // Nothing left at all: one each, and the lowering is reported.
    let b = fit_to_fd_limit(1024, 2000, 1000, 512);
    assert_eq!(
        (b.sip_connections, b.http_connections, b.lowered),
        (1, 1, true)
    );
}
