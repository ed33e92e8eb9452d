//! The default menu (`config/ivr.toml`), every branch, with a fake clock.

use super::*;
use std::path::Path;

fn graph() -> Arc<Graph> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("config/ivr.toml");
    Arc::new(Graph::load(&path, |_| true).unwrap())
}

fn li() -> OwnerInfo {
    OwnerInfo {
        id: "O-0001".into(),
        language: "zh".into(),
        class: OwnerClass::Vip,
        points: 800,
        fee_balance_cents: 123_450,
        building: "3".into(),
    }
}

struct Sim {
    s: Session,
    now: Instant,
    /// Each Play as one string of file names.
    played: Vec<String>,
    steps: Vec<String>,
    requests: Vec<Request>,
    stops: usize,
    other: Vec<Action>,
}

impl Sim {
    fn call(called: &str, owner: Option<OwnerInfo>) -> Self {
        Self::call_at(graph(), called, owner, 0)
    }

    /// A call starting at `at_ms` (Unix ms), to a menu with opening hours.
    fn call_at(graph: Arc<Graph>, called: &str, owner: Option<OwnerInfo>, at_ms: i64) -> Self {
        let mut sim = Sim {
            s: Session::new(graph, called, owner),
            now: Instant::now(),
            played: Vec::new(),
            steps: Vec::new(),
            requests: Vec::new(),
            stops: 0,
            other: Vec::new(),
        };
        sim.s.start(sim.now, at_ms);
        sim.drain();
        sim
    }

    fn drain(&mut self) {
        while let Some(a) = self.s.poll_action() {
            match a {
                Action::Play(files) => self.played.push(files.join(" ")),
                Action::Loop { first, looped } => {
                    self.played.push([first, looped].concat().join(" "))
                }
                Action::Step { node, detail } => self.steps.push(format!("{node}: {detail}")),
                Action::Request(r) => self.requests.push(r),
                Action::StopPlayback => self.stops += 1,
                other => self.other.push(other),
            }
        }
    }

    fn keys(&mut self, keys: &str) {
        for k in keys.chars() {
            self.s.handle_digit(self.now, k);
            self.drain();
        }
    }

    /// The prompt playing now ends.
    fn finish(&mut self) {
        self.s.handle_prompt_finished(self.now);
        self.drain();
    }

    fn wait(&mut self, secs: u64) {
        let end = self.now + Duration::from_secs(secs);
        while let Some(at) = self.s.poll_timeout().filter(|at| *at <= end) {
            self.now = at;
            self.s.handle_timeout(self.now);
            self.drain();
        }
        self.now = end;
    }

    fn reply(&mut self, r: Reply) {
        self.s.handle_reply(self.now, r);
        self.drain();
    }

    fn last_played(&self) -> &str {
        self.played.last().map(String::as_str).unwrap_or("")
    }

    fn hung_up(&self) -> bool {
        self.other.contains(&Action::Hangup)
    }
}

#[test]
fn known_owner_is_greeted_in_their_language_and_hears_the_balance() {
    let mut sim = Sim::call("100", Some(li()));
    // Language chosen already: greeting then the main menu, in Mandarin.
    assert_eq!(sim.played, ["greeting_garden_zh main_menu_zh"]);
    sim.keys("1");
    assert_eq!(sim.last_played(), "self_service_menu_zh");
    sim.keys("1");
    assert_eq!(
        sim.last_played(),
        "balance_is_zh num_1_zh num_1000_zh num_2_zh num_100_zh num_3_zh num_10_zh num_4_zh yuan_zh num_5_zh jiao_zh"
    );
    sim.finish();
    assert_eq!(sim.last_played(), "self_service_menu_zh");
}

#[test]
fn unknown_caller_chooses_english_and_identifies_by_unit_and_pin_for_the_balance() {
    let mut sim = Sim::call("100", None);
    assert_eq!(sim.played, ["greeting_garden_zh choose_language_zh"]);
    sim.keys("2");
    assert_eq!(sim.last_played(), "main_menu_en");
    sim.keys("11");
    assert_eq!(sim.last_played(), "enter_building_en");
    sim.keys("3#");
    assert_eq!(sim.last_played(), "enter_unit_en");
    sim.keys("1202#");
    assert_eq!(sim.last_played(), "enter_pin_en");
    assert!(sim.requests.is_empty(), "no lookup without the PIN");
    sim.keys("4711#");
    assert_eq!(
        sim.requests,
        [Request::OwnerByUnit {
            site: "garden".into(),
            building: "3".into(),
            unit: "1202".into(),
            pin: "4711".into(),
        }]
    );
    // The PIN is never in the log of the call's steps.
    assert!(
        sim.steps
            .iter()
            .any(|s| s == "identify_pin: pin = (4 digits)"),
        "{:?}",
        sim.steps
    );
    assert!(
        sim.steps.iter().all(|s| !s.contains("4711")),
        "{:?}",
        sim.steps
    );
    // Found: the owner's own language from now on, and back to the balance.
    sim.reply(Reply::Owner(Some(OwnerInfo {
        language: "en".into(),
        ..li()
    })));
    assert!(
        sim.last_played()
            .starts_with("balance_is_en num_1_en thousand_en"),
        "{}",
        sim.last_played()
    );
}

#[test]
fn unit_not_found_goes_to_an_agent() {
    let mut sim = Sim::call("100", None);
    sim.keys("1");
    sim.keys("4"); // gifts need the owner
    assert_eq!(sim.last_played(), "enter_building_zh");
    sim.keys("9#88#0000#");
    sim.reply(Reply::Owner(None));
    assert_eq!(sim.last_played(), "unit_not_found_zh");
    sim.finish();
    assert!(matches!(&sim.other[..], [Action::Queue { queue, .. }] if queue == "general"));
}

#[test]
fn wrong_keys_are_met_kindly_twice_then_an_agent() {
    let mut sim = Sim::call("100", Some(li()));
    sim.keys("7");
    assert_eq!(sim.last_played(), "invalid_zh main_menu_zh");
    sim.keys("8");
    assert_eq!(sim.last_played(), "invalid_zh main_menu_zh");
    sim.keys("#");
    assert_eq!(sim.last_played(), "hold_zh agents_busy_zh");
    assert!(
        matches!(&sim.other[..], [Action::Queue { queue, class: Some(OwnerClass::Vip), .. }] if queue == "general")
    );
    sim.finish();
    assert!(sim.hung_up(), "ends politely until the ACD lands");
    assert!(
        sim.steps
            .iter()
            .any(|s| s.contains("wrong key #, 3 times: -> agent")),
        "{:?}",
        sim.steps
    );
}

#[test]
fn silence_is_met_kindly_twice_then_an_agent() {
    let mut sim = Sim::call("100", Some(li()));
    sim.finish();
    sim.wait(6);
    assert_eq!(sim.last_played(), "no_input_zh main_menu_zh");
    sim.finish();
    sim.wait(6);
    assert_eq!(sim.last_played(), "no_input_zh main_menu_zh");
    sim.finish();
    sim.wait(5);
    assert_eq!(sim.played.len(), 3, "not before the timeout");
    sim.wait(1);
    assert_eq!(sim.last_played(), "hold_zh agents_busy_zh");
}

#[test]
fn zero_reaches_an_agent_from_deep_menus_and_star_repeats() {
    let mut sim = Sim::call("100", Some(li()));
    sim.keys("2");
    assert_eq!(sim.last_played(), "repair_menu_zh");
    sim.keys("*");
    assert_eq!(sim.played.len(), 3);
    assert_eq!(sim.last_played(), "repair_menu_zh", "* repeats");
    sim.keys("0");
    assert_eq!(sim.last_played(), "hold_zh agents_busy_zh");
    // Collecting a ticket number takes 0 as a digit, not as "agent".
    let mut sim = Sim::call("100", Some(li()));
    sim.keys("13");
    sim.keys("1020#");
    assert_eq!(sim.requests, [Request::TicketByNumber { number: 1020 }]);
}

#[test]
fn reporting_a_repair_opens_a_ticket_and_says_its_number() {
    let mut sim = Sim::call("100", Some(li()));
    sim.keys("21");
    assert_eq!(
        sim.requests,
        [Request::OpenTicket {
            category: "water".into(),
            severity: Severity::Ordinary,
            summary: "water repair reported by phone".into(),
            owner: Some("O-0001".into()),
            building: Some("3".into()),
            recording: None,
        }]
    );
    sim.reply(Reply::TicketOpened(42));
    assert_eq!(
        sim.last_played(),
        "ticket_opened_zh ticket_word_zh num_4_zh num_2_zh repair_promise_zh"
    );
    sim.finish();
    assert_eq!(sim.last_played(), "anything_else_zh");
    sim.keys("2");
    assert_eq!(sim.last_played(), "survey_zh");
    sim.keys("5");
    assert!(sim.other.contains(&Action::SurveyAnswered(5)));
    assert_eq!(sim.last_played(), "goodbye_zh");
    sim.finish();
    assert!(sim.hung_up());
}

#[test]
fn an_emergency_goes_straight_to_the_top_of_the_queue() {
    let mut sim = Sim::call("100", Some(li()));
    sim.keys("29");
    assert!(matches!(
        &sim.requests[..],
        [Request::OpenTicket {
            severity: Severity::Emergency,
            ..
        }]
    ));
    sim.reply(Reply::TicketOpened(7));
    assert!(matches!(
        &sim.other[..],
        [Action::Queue { queue, priority: 255, .. }] if queue == "repair"
    ));
    assert_eq!(sim.last_played(), "emergency_hold_zh agents_busy_zh");
}

#[test]
fn a_complaint_is_recorded_and_becomes_a_ticket() {
    let mut sim = Sim::call("100", Some(li()));
    sim.keys("3");
    assert_eq!(sim.last_played(), "record_complaint_zh");
    sim.finish();
    assert_eq!(
        sim.other,
        [Action::Record {
            max: Duration::from_secs(60),
            silence: Duration::from_secs(5)
        }]
    );
    sim.keys("#");
    assert_eq!(sim.other.last(), Some(&Action::StopRecording));
    sim.s
        .handle_recording_finished(sim.now, "rec/c1.wav".into(), Duration::from_secs(4));
    sim.drain();
    assert!(matches!(
        &sim.requests[..],
        [Request::OpenTicket { category, recording: Some(r), .. }] if category == "complaint" && r == "rec/c1.wav"
    ));
    sim.reply(Reply::TicketOpened(8));
    assert_eq!(
        sim.last_played(),
        "message_recorded_zh ticket_word_zh num_8_zh"
    );
    sim.finish();
    assert_eq!(sim.last_played(), "offer_agent_zh");
}

#[test]
fn redeeming_a_gift_asks_once_and_says_the_points_left() {
    let mut sim = Sim::call("100", Some(li()));
    sim.keys("4");
    assert_eq!(
        sim.last_played(),
        "points_balance_zh num_8_zh num_100_zh points_word_zh"
    );
    sim.finish();
    assert_eq!(sim.requests, [Request::Gifts]);
    sim.reply(Reply::Gifts(vec![
        GiftInfo {
            id: "G1".into(),
            points: 120,
        },
        GiftInfo {
            id: "G3".into(),
            points: 500,
        },
        GiftInfo {
            id: "G4".into(),
            points: 1500,
        },
    ]));
    // Only what 800 points buy is offered.
    assert_eq!(
        sim.last_played(),
        "catalogue_intro_zh num_8_zh num_100_zh points_word_zh \
         gift_G1_zh num_1_zh num_100_zh num_2_zh num_10_zh points_word_zh press_zh num_1_zh \
         gift_G3_zh num_5_zh num_100_zh points_word_zh press_zh num_2_zh"
    );
    sim.keys("3");
    assert!(
        sim.last_played()
            .starts_with("invalid_zh catalogue_intro_zh num_8_zh"),
        "the listing again: {}",
        sim.last_played()
    );
    assert_eq!(sim.requests.len(), 1, "not fetched again");
    sim.keys("2");
    assert_eq!(sim.last_played(), "confirm_gift_zh");
    sim.keys("1");
    assert_eq!(
        sim.requests[1],
        Request::Redeem {
            owner: "O-0001".into(),
            gift: "G3".into(),
            attempt: 1
        }
    );
    sim.keys("111"); // impatient keys while waiting: nothing more is asked
    sim.reply(Reply::Redeemed {
        points_left: Some(300),
    });
    sim.keys("111"); // and while the result is said
    assert_eq!(sim.requests.len(), 2, "one redemption");
    assert_eq!(
        sim.last_played(),
        "gift_redeemed_zh num_3_zh num_100_zh points_word_zh"
    );
}

#[test]
fn hanging_up_before_confirming_redeems_nothing() {
    let mut sim = Sim::call("100", Some(li()));
    sim.keys("4");
    sim.finish();
    sim.reply(Reply::Gifts(vec![GiftInfo {
        id: "G1".into(),
        points: 120,
    }]));
    sim.keys("1");
    assert_eq!(sim.last_played(), "confirm_gift_zh");
    sim.s.handle_hangup();
    sim.drain();
    sim.keys("1");
    assert_eq!(sim.requests, [Request::Gifts]);
    assert!(sim.steps.last().unwrap().contains("caller hung up"));
}

#[test]
fn too_few_points_for_any_gift() {
    let mut sim = Sim::call("100", Some(OwnerInfo { points: 50, ..li() }));
    sim.keys("4");
    sim.finish();
    sim.reply(Reply::Gifts(vec![GiftInfo {
        id: "G1".into(),
        points: 120,
    }]));
    assert_eq!(sim.last_played(), "not_enough_points_zh");
}

#[test]
fn status_of_my_latest_repair() {
    let mut sim = Sim::call("100", Some(li()));
    sim.keys("12");
    assert_eq!(
        sim.requests,
        [Request::LatestTicket {
            owner: "O-0001".into()
        }]
    );
    sim.reply(Reply::Ticket(Some(TicketInfo {
        number: 12,
        status: "dispatched".into(),
        month: 11,
        day: 23,
    })));
    assert_eq!(
        sim.last_played(),
        "your_ticket_zh ticket_word_zh num_1_zh num_2_zh"
    );
    sim.finish();
    assert_eq!(
        sim.last_played(),
        "opened_on_zh num_10_zh num_1_zh month_zh num_2_zh num_10_zh num_3_zh day_zh"
    );
    sim.finish();
    assert_eq!(sim.last_played(), "status_is_zh status_dispatched_zh");
    // No ticket at all:
    let mut sim = Sim::call("100", Some(li()));
    sim.keys("12");
    sim.reply(Reply::Ticket(None));
    assert_eq!(sim.last_played(), "no_ticket_found_zh");
}

#[test]
fn the_called_number_selects_the_site() {
    let sim = Sim::call("4008200200", None);
    assert_eq!(sim.played, ["greeting_lakeside_zh choose_language_zh"]);
    assert_eq!(sim.s.site_id(), "lakeside");
    let sim = Sim::call("999", None);
    assert_eq!(
        sim.s.site_id(),
        "garden",
        "unknown numbers reach the first site"
    );
}

#[test]
fn keys_typed_while_a_balance_is_said_go_to_the_next_menu() {
    let mut sim = Sim::call("100", Some(li()));
    sim.keys("4");
    assert!(sim.last_played().starts_with("points_balance_zh"));
    sim.keys("3"); // the caller knows the catalogue by heart
    sim.finish();
    sim.reply(Reply::Gifts(vec![
        GiftInfo {
            id: "G1".into(),
            points: 120,
        },
        GiftInfo {
            id: "G2".into(),
            points: 300,
        },
        GiftInfo {
            id: "G3".into(),
            points: 500,
        },
    ]));
    assert_eq!(sim.last_played(), "confirm_gift_zh", "3 chose G3 at once");
    assert!(
        sim.steps.iter().any(|s| s == "catalogue: key 3: gift G3"),
        "{:?}",
        sim.steps
    );
}

#[test]
fn a_key_during_a_prompt_stops_it() {
    let mut sim = Sim::call("100", Some(li()));
    sim.keys("2");
    assert_eq!(sim.stops, 1);
}

// ---- loading ---------------------------------------------------------------

fn load(text: &str) -> String {
    Graph::parse(text, std::path::Path::new("ivr.toml"), |_| true)
        .map(|_| String::new())
        .unwrap_or_else(|e| e.to_string())
}

const MINIMAL: &str = r#"
[[site]]
id = "s"
name = "S"
numbers = ["1"]
greeting = "hello"
start = "main"
[defaults]
timeout_seconds = 5
inter_digit_seconds = 3
retries = 2
invalid_prompt = "invalid"
timeout_prompt = "no_input"
agent = "agent"
identify = "agent"
[node.main]
kind = "menu"
prompt = "main_menu"
options = { "1" = "agent" }
[node.agent]
kind = "hangup"
prompt = "goodbye"
"#;

#[test]
fn a_minimal_menu_loads() {
    assert_eq!(load(MINIMAL), "");
}

#[test]
fn bad_menus_are_errors_naming_the_node_and_the_file() {
    let cases = [
        (
            MINIMAL.replace(r#"{ "1" = "agent" }"#, r#"{ "1" = "nowhere" }"#),
            "ivr.toml: node main: an option goes to \"nowhere\", which is not a node",
        ),
        (
            format!("{MINIMAL}\n[node.orphan]\nkind = \"hangup\"\n"),
            "ivr.toml: node orphan: is not reachable from any site's start",
        ),
        (
            MINIMAL.replace(r#""1" = "agent""#, r#""12" = "agent""#),
            "node main: option \"12\" is not one key",
        ),
        (
            MINIMAL.replace("kind = \"menu\"", "kind = \"menuu\""),
            "ivr.toml: ",
        ),
        (
            MINIMAL.replace("start = \"main\"", "start = \"mian\""),
            "site s: start \"mian\" is not a node",
        ),
        (
            MINIMAL.replace("retries = 2", "retries = 2\ncolour = \"red\""),
            "unknown field `colour`",
        ),
    ];
    for (text, expected) in cases {
        let err = load(&text);
        assert!(err.contains(expected), "expected {expected:?}, got {err:?}");
    }
}

#[test]
fn a_missing_prompt_names_the_node_and_the_file() {
    let err = Graph::parse(MINIMAL, std::path::Path::new("ivr.toml"), |p| {
        p != "main_menu_en"
    })
    .unwrap_err()
    .to_string();
    assert_eq!(
        err,
        "ivr.toml: node main: prompt main_menu: main_menu_en.wav is missing"
    );
}

#[test]
fn every_option_of_every_menu_in_the_default_menu_goes_where_it_says() {
    let graph = graph();
    let mut checked = 0;
    for (name, node) in graph.names.iter().zip(&graph.nodes) {
        let options: Vec<(String, String)> = match node {
            NodeConfig::Menu { options, .. } => options
                .iter()
                .map(|(k, to)| (k.clone(), format!("key {k} -> {to}")))
                .collect(),
            NodeConfig::Language { options, .. } => options
                .iter()
                .map(|(k, lang)| (k.clone(), format!("key {k}: language {lang}")))
                .collect(),
            _ => continue,
        };
        for (key, expected) in options {
            for owner in [Some(li()), None] {
                let mut sim = Sim::call("100", owner.clone());
                sim.s.jump(sim.now, name);
                sim.drain();
                if matches!(
                    node,
                    NodeConfig::Language {
                        skip_if_known: true,
                        ..
                    }
                ) && owner.is_some()
                {
                    continue; // a known owner never hears the language menu
                }
                sim.steps.clear();
                sim.keys(&key);
                assert!(
                    sim.steps
                        .iter()
                        .any(|s| *s == format!("{name}: {expected}")),
                    "{name} key {key}: {:?}",
                    sim.steps
                );
                checked += 1;
            }
        }
    }
    assert!(checked >= 40, "only {checked} branches");
}

#[test]
fn the_other_site_has_its_own_greeting_and_the_same_services() {
    let mut sim = Sim::call("200", None);
    sim.keys("1");
    assert_eq!(sim.played[0], "greeting_lakeside_zh choose_language_zh");
    assert_eq!(sim.last_played(), "main_menu_zh");
    sim.keys("1");
    sim.keys("1");
    sim.keys("7#");
    sim.keys("0101#");
    sim.keys("123456#");
    assert_eq!(
        sim.requests,
        [Request::OwnerByUnit {
            site: "lakeside".into(),
            building: "7".into(),
            unit: "0101".into(),
            pin: "123456".into(),
        }]
    );
}

#[test]
fn a_caller_waiting_for_an_agent_hears_the_hold_prompt_loop_and_their_place() {
    let mut sim = Sim::call("100", Some(li()));
    sim.s.set_queue_waits(true);
    sim.keys("0");
    assert_eq!(
        sim.last_played(),
        "hold_zh",
        "only the hold prompt while waiting"
    );
    // Announced while the first hold prompt plays.
    sim.s.announce(sim.now, 2, Some(4), false);
    sim.drain();
    assert_eq!(
        sim.last_played(),
        "position_is_zh num_2_zh in_line_zh wait_is_zh num_4_zh minutes_word_zh hold_zh"
    );
    sim.finish();
    assert_eq!(sim.last_played(), "hold_zh", "and again");
    assert!(!sim.hung_up());
    sim.s.announce(sim.now, 3, Some(5), false);
    sim.drain();
    assert_eq!(
        sim.last_played(),
        "position_is_zh num_3_zh in_line_zh wait_is_zh num_5_zh minutes_word_zh hold_zh"
    );
    sim.finish();
    assert_eq!(sim.last_played(), "hold_zh");
    // No agent in time: a voice message instead (it becomes a ticket).
    sim.s.handle_queue_left(sim.now, false);
    sim.drain();
    assert_eq!(sim.last_played(), "record_complaint_zh");
    assert!(sim.other.contains(&Action::LeaveQueue));
}

#[test]
fn zero_while_waiting_leaves_a_voice_message_and_a_queue_without_one_apologises() {
    let mut sim = Sim::call("100", Some(li()));
    sim.s.set_queue_waits(true);
    sim.keys("0");
    // During the first hold prompt, as during any later one.
    sim.keys("0");
    assert_eq!(sim.last_played(), "record_complaint_zh");
    assert!(sim.other.contains(&Action::LeaveQueue));
    // The emergency queue has no voice message: an apology, then goodbye.
    let mut sim = Sim::call("100", Some(li()));
    sim.s.set_queue_waits(true);
    sim.keys("29");
    sim.reply(Reply::TicketOpened(3));
    assert_eq!(sim.last_played(), "emergency_hold_zh");
    sim.finish();
    sim.keys("0");
    assert!(
        !sim.other.contains(&Action::LeaveQueue),
        "an emergency stays in line"
    );
    sim.s.handle_queue_left(sim.now, false);
    sim.drain();
    assert_eq!(sim.last_played(), "agents_busy_zh");
    sim.finish();
    assert!(sim.hung_up());
}

#[test]
fn a_caller_bouncing_between_queue_and_voice_message_opens_one_ticket() {
    // A silent caller: no agent in time -> a voice message (a ticket) ->
    // silence at "an agent?" -> the general queue again -> ...
    let mut sim = Sim::call("100", Some(li()));
    sim.s.set_queue_waits(true);
    let opened = |sim: &Sim| {
        sim.requests
            .iter()
            .filter(|r| matches!(r, Request::OpenTicket { .. }))
            .count()
    };
    sim.keys("0");
    for round in 0..3 {
        assert_eq!(
            sim.last_played(),
            "hold_zh",
            "round {round}: {:?}",
            sim.steps
        );
        sim.s.handle_queue_left(sim.now, false);
        sim.drain();
        assert_eq!(sim.last_played(), "record_complaint_zh", "round {round}");
        sim.finish();
        sim.s
            .handle_recording_finished(sim.now, format!("r{round}.wav"), Duration::from_secs(3));
        sim.drain();
        if round == 0 {
            sim.reply(Reply::TicketOpened(7));
        }
        assert_eq!(opened(&sim), 1, "round {round}: {:?}", sim.steps);
        // Silence after the ticket's number and the offer of an agent.
        for _ in 0..4 {
            sim.finish();
            sim.wait(30);
        }
    }
    assert!(
        sim.steps
            .iter()
            .any(|s| s.ends_with("ticket T7 already opened in this call: no second one")),
        "{:?}",
        sim.steps
    );
}

/// The default menu with the sample opening hours (`config/hours.toml`).
fn graph_with_hours() -> Arc<Graph> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let hours = crate::site::hours::Calendars::load(&root.join("config/hours.toml")).unwrap();
    let graph = Graph::load(&root.join("config/ivr.toml"), |_| true).unwrap();
    Arc::new(
        graph
            .with_hours(hours, &root.join("config/hours.toml"))
            .unwrap(),
    )
}

fn beijing(text: &str) -> i64 {
    crate::site::LocalTime::parse("+08:00")
        .unwrap()
        .parse_moment(text)
        .unwrap()
}

#[test]
fn a_call_in_opening_hours_goes_to_the_menu() {
    // Tuesday morning at Garden Court.
    let sim = Sim::call_at(graph_with_hours(), "100", None, beijing("2026-12-01T09:00"));
    assert_eq!(sim.played, ["greeting_garden_zh choose_language_zh"]);
    assert!(sim.steps.contains(&"hours: open -> language".to_string()));
}

#[test]
fn a_call_at_night_hears_the_night_menu_and_an_emergency_still_jumps_the_queue() {
    let night = beijing("2026-12-01T23:30");
    let mut sim = Sim::call_at(graph_with_hours(), "100", Some(li()), night);
    assert_eq!(sim.played, ["greeting_garden_zh closed_now_zh"]);
    assert!(sim.steps.contains(&"hours: closed -> night".to_string()));
    sim.keys("9");
    assert!(matches!(
        &sim.requests[..],
        [Request::OpenTicket {
            severity: Severity::Emergency,
            ..
        }]
    ));
    sim.reply(Reply::TicketOpened(7));
    assert!(matches!(
        &sim.other[..],
        [Action::Queue { priority: 255, .. }]
    ));
}

#[test]
fn a_message_left_at_night_becomes_a_ticket_for_the_morning() {
    // Lakeside is closed on Sundays.
    let sunday = beijing("2026-12-06T12:00");
    let mut sim = Sim::call_at(graph_with_hours(), "200", Some(li()), sunday);
    assert_eq!(sim.played, ["greeting_lakeside_zh closed_now_zh"]);
    sim.keys("1");
    assert_eq!(sim.last_played(), "record_complaint_zh");
    sim.finish();
    sim.keys("#");
    sim.s
        .handle_recording_finished(sim.now, "rec/n1.wav".into(), Duration::from_secs(4));
    sim.drain();
    assert!(matches!(
        &sim.requests[..],
        [Request::OpenTicket { category, severity: Severity::Ordinary, recording: Some(r), .. }]
            if category == "message" && r == "rec/n1.wav"
    ));
    sim.reply(Reply::TicketOpened(12));
    assert!(sim.last_played().starts_with("message_recorded_zh"));
    sim.finish();
    assert_eq!(sim.last_played(), "goodbye_zh");
}

#[test]
fn at_night_2_asks_to_be_called_back_when_the_centre_opens() {
    let night = beijing("2026-12-01T23:30");
    let mut sim = Sim::call_at(graph_with_hours(), "100", Some(li()), night);
    sim.keys("2");
    assert!(matches!(
        &sim.requests[..],
        [Request::OpenTicket { category, severity: Severity::Ordinary, .. }] if category == "callback"
    ));
    sim.reply(Reply::TicketOpened(31));
    assert!(
        sim.last_played()
            .starts_with("callback_morning_zh ticket_word_zh")
    );
    sim.finish();
    assert_eq!(sim.last_played(), "goodbye_zh");
}

#[test]
fn a_holiday_has_its_own_greeting_from_the_eve_across_midnight() {
    let graph = graph_with_hours();
    for at in ["2026-12-31T18:00", "2027-01-01T00:30", "2027-01-01T12:00"] {
        let sim = Sim::call_at(graph.clone(), "100", None, beijing(at));
        assert_eq!(sim.played, ["greeting_garden_zh closed_holiday_zh"], "{at}");
        assert!(
            sim.steps
                .contains(&"hours: holiday (New Year's Eve and Day) -> holiday".to_string()),
            "{at}: {:?}",
            sim.steps
        );
    }
    // Before the eve's evening, and on 2 January: the ordinary day.
    for at in ["2026-12-31T17:59", "2027-01-02T09:00"] {
        let sim = Sim::call_at(graph.clone(), "100", None, beijing(at));
        assert_eq!(
            sim.played,
            ["greeting_garden_zh choose_language_zh"],
            "{at}"
        );
    }
}

#[test]
fn the_hours_are_asked_when_the_caller_reaches_the_node_not_when_the_call_began() {
    // Rung at 19:59:50: open. The same caller sent to the hours node 20 s
    // later, at 20:00:10, finds the centre closed.
    let graph = graph_with_hours();
    let start = beijing("2026-12-01T19:59") + 50_000;
    let mut sim = Sim::call_at(graph, "100", None, start);
    assert_eq!(sim.played, ["greeting_garden_zh choose_language_zh"]);
    sim.now += Duration::from_secs(20);
    assert!(sim.s.continue_at(sim.now, "hours"));
    sim.drain();
    assert_eq!(sim.last_played(), "closed_now_zh");
}

#[test]
fn opening_hours_for_a_site_the_menu_does_not_have_are_refused() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(root.join("config/hours.toml"))
        .unwrap()
        .replace("[lakeside]", "[lakeshore]")
        .replace("[[lakeside.holiday]]", "[[lakeshore.holiday]]");
    let hours = crate::site::hours::Calendars::parse(&text, Path::new("hours.toml")).unwrap();
    let error = Graph::load(&root.join("config/ivr.toml"), |_| true)
        .unwrap()
        .with_hours(hours, Path::new("hours.toml"))
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("\"lakeshore\", which the menu does not have"),
        "{error}"
    );
}

/// A caller waiting in the general queue, told they may be called back.
fn offered_a_callback(number: Option<&str>) -> Sim {
    let mut sim = Sim::call("100", Some(li()));
    sim.s.set_caller_number(number.map(String::from));
    sim.s.set_queue_waits(true);
    sim.keys("0");
    sim.s.announce(sim.now, 4, Some(12), true);
    sim.drain();
    assert_eq!(
        sim.last_played(),
        "position_is_zh num_4_zh in_line_zh wait_is_zh num_10_zh num_2_zh minutes_word_zh callback_offer_zh hold_zh"
    );
    assert!(sim.steps.iter().any(|s| s.ends_with(CALLBACK_OFFERED)));
    sim
}

fn kept_places(sim: &Sim) -> Vec<String> {
    sim.other
        .iter()
        .filter_map(|a| match a {
            Action::KeepPlace { number } => Some(number.clone()),
            _ => None,
        })
        .collect()
}

#[test]
fn a_waiting_caller_takes_the_callback_on_the_number_they_called_from() {
    let mut sim = offered_a_callback(Some("13800138000"));
    sim.keys("1");
    assert_eq!(
        sim.last_played(),
        "callback_number_is_zh num_1_zh num_3_zh num_8_zh num_0_zh num_0_zh num_1_zh num_3_zh num_8_zh \
         num_0_zh num_0_zh num_0_zh callback_press_zh hold_zh"
    );
    // While confirming, the announcements wait.
    sim.s.announce(sim.now, 3, Some(9), true);
    sim.drain();
    assert!(sim.last_played().starts_with("callback_number_is_zh"));
    sim.keys("1");
    assert_eq!(kept_places(&sim), ["13800138000"]);
    // Taken: thanked, then the call ends (the place waits on).
    sim.s.callback_kept();
    sim.drain();
    assert_eq!(sim.last_played(), "callback_confirmed_zh");
    sim.finish();
    assert!(sim.hung_up());
}

#[test]
fn a_caller_types_another_number_and_a_refused_one_keeps_them_waiting() {
    let mut sim = offered_a_callback(None);
    sim.keys("1");
    assert_eq!(sim.last_played(), "callback_enter_number_zh hold_zh");
    sim.keys("0085212345678#");
    assert_eq!(kept_places(&sim), ["0085212345678"]);
    // Not a number the centre calls: said so, and the caller waits on.
    sim.s.callback_refused();
    sim.drain();
    assert_eq!(sim.last_played(), "callback_number_refused_zh hold_zh");
    assert!(!sim.hung_up());
    // The offer stands: another try, then * back to waiting.
    sim.keys("1");
    sim.keys("139*");
    assert_eq!(sim.last_played(), "hold_zh");
    assert_eq!(kept_places(&sim).len(), 1);
    // 0 still leaves a voice message instead.
    sim.keys("0");
    assert_eq!(sim.last_played(), "record_complaint_zh");
}

#[test]
fn one_is_no_callback_key_before_the_offer() {
    let mut sim = Sim::call("100", Some(li()));
    sim.s.set_caller_number(Some("13800138000".into()));
    sim.s.set_queue_waits(true);
    sim.keys("0");
    sim.keys("1");
    assert!(kept_places(&sim).is_empty());
    assert_eq!(sim.last_played(), "hold_zh");
}

#[test]
fn the_opening_hours_reach_the_agents_words_only_when_the_centre_was_closed() {
    assert_eq!(step_words("hours", "open -> language"), None);
    assert_eq!(
        step_words("hours", "closed -> night").as_deref(),
        Some("hours: closed → night")
    );
    assert_eq!(
        step_words("hours", "holiday (National Day) -> holiday").as_deref(),
        Some("hours: holiday (National Day) → holiday")
    );
}

#[test]
fn an_agent_ringing_while_the_caller_confirms_ends_the_confirmation() {
    let mut sim = offered_a_callback(Some("13800138000"));
    sim.keys("1");
    sim.s.set_ringing(true);
    sim.drain();
    assert_eq!(sim.last_played(), "ringback_zh");
    // The 1 that would have confirmed is no callback now.
    sim.keys("1");
    assert!(kept_places(&sim).is_empty());
}
