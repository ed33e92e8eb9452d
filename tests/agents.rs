//! Agents' softphones register with digest authentication: baresip (a real,
//! independently written softphone, Debian's package) against the running
//! hotline with the demo agents of `config/agents.toml`.

mod common;

use std::process::Command;
use std::time::Duration;

use common::Hotline;
use common::baresip::Baresip;

const BASE: u16 = 18000;

fn baresip(dir: &std::path::Path, account: &str, sip_port: u16) -> Baresip {
    baresip_with(dir, account, sip_port, &[])
}

fn baresip_with(dir: &std::path::Path, account: &str, sip_port: u16, commands: &[&str]) -> Baresip {
    Baresip::start(
        dir,
        account,
        sip_port,
        (sip_port + 10, sip_port + 30),
        commands,
    )
}

fn start() -> Hotline {
    Hotline::start(
        BASE,
        &format!(
            "[acd]\nagents = \"{}/config/agents.toml\"\n",
            env!("CARGO_MANIFEST_DIR")
        ),
    )
}

#[test]
fn baresip_registers_as_an_agent_with_digest_authentication() {
    let h = start();
    let _phone = baresip(
        h.dir.path(),
        &format!(
            "<sip:2001@{}>;auth_user=2001;auth_pass=agent2001;regint=60;answermode=auto",
            h.target()
        ),
        h.peer_port,
    );
    let registered = h.wait_for("agent registered", 1, Duration::from_secs(10));
    assert_eq!(registered.len(), 1, "{}", h.log());
    assert_eq!(common::field(&registered[0], "agent"), Some("2001"));
    assert_eq!(common::field(&registered[0], "expires"), Some("60"));
    let log = std::fs::read_to_string(h.dir.path().join(format!("baresip-{}.log", h.peer_port)))
        .unwrap_or_default();
    assert!(log.contains("200 OK") || log.contains("OK"), "{log}");
}

#[test]
fn a_softphone_with_the_wrong_password_is_refused_and_nothing_registers() {
    let h = start();
    let _phone = baresip(
        h.dir.path(),
        &format!(
            "<sip:2002@{}>;auth_user=2002;auth_pass=wrong;regint=60",
            h.target()
        ),
        h.peer_port,
    );
    let refused = h.wait_for("SECURITY auth_failed", 1, Duration::from_secs(10));
    assert!(
        refused.first().is_some_and(|l| l.ends_with(
            "SECURITY auth_failed source=127.0.0.1 method=REGISTER reason=password user=\"2002\""
        )),
        "{}",
        h.log()
    );
    std::thread::sleep(Duration::from_millis(500));
    assert!(h.lines("agent registered").is_empty(), "{}", h.log());
}

#[test]
fn an_agent_logs_in_with_star_1_from_baresip_and_is_logged_out_when_the_phone_unregisters() {
    let h = start();
    let dial = format!("/dial sip:*1@{}", h.target());
    let phone = baresip_with(
        h.dir.path(),
        &format!(
            "<sip:2001@{}>;auth_user=2001;auth_pass=agent2001;regint=60",
            h.target()
        ),
        h.peer_port,
        &[&dial],
    );
    let feature = h.wait_for("agent feature code", 1, Duration::from_secs(10));
    assert_eq!(
        common::field(&feature[0], "code"),
        Some("*1"),
        "{}",
        h.log()
    );
    let state = h.wait_for("agent state", 1, Duration::from_secs(5));
    assert_eq!(
        common::field(&state[0], "state"),
        Some("available"),
        "{}",
        h.log()
    );
    let metrics = common::http_get(h.sip_port + 199, "/metrics");
    assert!(
        metrics.contains("hotline_agents{state=\"available\"} 1"),
        "{metrics}"
    );
    // The phone goes away politely: it unregisters, the agent is logged out.
    let _ = Command::new("kill")
        .args(["-TERM", &phone.pid().to_string()])
        .status();
    h.wait_for("agent unregistered", 1, Duration::from_secs(10));
    let states = h.wait_for("agent state", 2, Duration::from_secs(5));
    assert_eq!(
        common::field(states.last().unwrap(), "state"),
        Some("logged_out"),
        "{}",
        h.log()
    );
}
