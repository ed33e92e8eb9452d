//! The voice menu end to end: SIPp calls the hotline running the default
//! menu (`config/ivr.toml`) with the sample owners imported; assertions on
//! what the hotline logged it played, the ticket log and the owner database.

mod common;

use common::caller::{Step, scenario};
use common::stores::all_events;
use common::{Hotline, assert_sipp_ok, sipp, tone_pcap};
use hotline::tickets::EventKind;

const BASE: u16 = 17000;
/// O-0001 in config/owners.csv: Mandarin, 800 points, owes 1234.50.
const OWNER_NUMBER: &str = "13800138000";

fn manifest(path: &str) -> String {
    format!("{}/{path}", env!("CARGO_MANIFEST_DIR"))
}

/// A hotline running the default menu, with the sample owners and gifts.
fn start() -> (Hotline, tempfile::TempDir) {
    start_with("")
}

/// The same, with more of `[ivr]`.
fn start_with(ivr: &str) -> (Hotline, tempfile::TempDir) {
    let data = tempfile::tempdir().unwrap();
    let db = data.path().join("owners.db");
    let db = db.to_str().unwrap();
    common::cli(&[
        "owners",
        "--db",
        db,
        "import",
        &manifest("config/owners.csv"),
    ]);
    common::cli(&[
        "owners",
        "--db",
        db,
        "import-gifts",
        &manifest("config/gifts.csv"),
    ]);
    let h = Hotline::start(
        BASE,
        &format!(
            "[owners]\ndb = \"{db}\"\n[ivr]\nmenu = \"{}\"\nrecordings = \"{}\"\n{ivr}",
            manifest("config/ivr.toml"),
            data.path().join("recordings").display()
        ),
    );
    (h, data)
}

/// The prompt lists the hotline played, in order.
fn played(h: &Hotline) -> Vec<String> {
    h.lines("playing")
        .iter()
        .map(|l| {
            l.split("prompts=")
                .nth(1)
                .unwrap()
                .split(" call=")
                .next()
                .unwrap()
                .trim_matches('"')
                .to_string()
        })
        .collect()
}

fn call(h: &Hotline, name: &str, from: &str, steps: &[Step]) {
    let xml = scenario(h.dir.path(), name, from, "100", steps);
    let run = sipp(h, xml.to_str().unwrap(), &["-m", "1"]);
    assert_sipp_ok(h, &run);
}

#[test]
fn a_known_owner_hears_their_balance_in_their_language() {
    let (mut h, _data) = start();
    call(
        &h,
        "balance",
        OWNER_NUMBER,
        &[
            Step::Pause(500),
            Step::Key('1'),
            Step::Pause(300),
            Step::Key('1'),
            Step::Pause(500),
        ],
    );
    let log = h.stop();
    let played = played(&h);
    assert_eq!(
        played[..3],
        [
            "greeting_garden_zh main_menu_zh",
            "self_service_menu_zh",
            // 一千二百三十四元五角
            "balance_is_zh num_1_zh num_1000_zh num_2_zh num_100_zh num_3_zh num_10_zh num_4_zh yuan_zh num_5_zh jiao_zh",
        ],
        "{log}"
    );
    // The path is in the ticket log.
    let steps: Vec<String> = all_events(h.store_path().to_str().unwrap())
        .into_iter()
        .filter_map(|e| match e.kind {
            EventKind::IvrStepTaken { node, detail } => Some(format!("{node}: {detail}")),
            _ => None,
        })
        .collect();
    assert_eq!(steps[0], "start: site garden language zh owner O-0001");
    assert!(
        steps.contains(&"main: key 1 -> self_service".to_string()),
        "{steps:?}"
    );
    assert!(
        steps.contains(&"self_service: key 1 -> balance".to_string()),
        "{steps:?}"
    );
}

#[test]
fn a_gift_redemption_deducts_the_points_exactly_once() {
    let (mut h, data) = start();
    call(
        &h,
        "gift",
        OWNER_NUMBER,
        &[
            Step::Pause(500),
            Step::Key('4'),
            // "you have 800 points" plays to its end, then the catalogue.
            Step::Pause(3500),
            Step::Key('3'), // G3, rice cooker, 500 points
            Step::Pause(300),
            Step::Key('1'), // confirm
            Step::Key('1'), // and again, impatiently
            Step::Pause(300),
            Step::Key('1'),
            Step::Pause(1000),
        ],
    );
    let log = h.stop();
    let redeemed = h.lines("ivr step");
    let count = redeemed
        .iter()
        .filter(|l| l.contains("redeemed, 300 points left"))
        .count();
    assert_eq!(count, 1, "{log}");
    let db = data.path().join("owners.db");
    let shown = common::cli(&["owners", "--db", db.to_str().unwrap(), "show", "O-0001"]);
    assert!(shown.contains("\"points\": 300"), "{shown}");
}

#[test]
fn a_complaint_is_recorded_as_a_wav_of_the_length_sent_and_opens_a_ticket() {
    let (mut h, data) = start();
    let pcap = tone_pcap(h.dir.path(), 3000);
    call(
        &h,
        "complaint",
        OWNER_NUMBER,
        &[
            Step::Pause(500),
            Step::Key('3'),
            // The invitation to speak (6.7 s in Mandarin) plays to its end.
            Step::Pause(7500),
            Step::Audio(pcap, 3400),
            Step::Key('#'),
            Step::Pause(1000),
        ],
    );
    let log = h.stop();
    let written = h.lines("recording written");
    assert_eq!(written.len(), 1, "{log}");
    let file = common::field(&written[0], "file").unwrap().to_string();
    assert!(file.starts_with(data.path().join("recordings").to_str().unwrap()));
    let wav = hound::WavReader::open(&file).unwrap();
    assert_eq!(
        (
            wav.spec().sample_rate,
            wav.spec().channels,
            wav.spec().bits_per_sample
        ),
        (8000, 1, 16)
    );
    let seconds = wav.duration() as f64 / 8000.0;
    assert!(
        (2.7..=3.2).contains(&seconds),
        "recorded {seconds} s of 3 s sent"
    );
    let opened = all_events(h.store_path().to_str().unwrap())
        .into_iter()
        .find_map(|e| match e.kind {
            EventKind::TicketOpened {
                category,
                summary,
                phone,
                owner,
                ..
            } => Some((category, summary, phone, owner)),
            _ => None,
        })
        .expect("a ticket");
    assert_eq!(opened.0, "complaint");
    assert!(opened.1.contains(&file), "{}", opened.1);
    assert_eq!(opened.2.as_deref(), Some("+8613800138000"));
    assert_eq!(opened.3.as_deref(), Some("O-0001"));
}

#[test]
fn a_caller_when_the_centre_is_closed_leaves_a_message_that_becomes_a_ticket() {
    // Garden Court closed every day of the week (Lakeside keeps no hours).
    let hours = tempfile::NamedTempFile::new().unwrap();
    let week: String = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
        .iter()
        .map(|d| format!("{d} = \"\"\n"))
        .collect();
    std::fs::write(
        hours.path(),
        format!("[garden]\ntime_zone = \"Asia/Shanghai\"\n{week}"),
    )
    .unwrap();
    let (mut h, _data) = start_with(&format!("hours = \"{}\"\n", hours.path().display()));
    let pcap = tone_pcap(h.dir.path(), 2000);
    call(
        &h,
        "night",
        OWNER_NUMBER,
        &[
            Step::Pause(500),
            Step::Key('1'),
            Step::Pause(7500),
            Step::Audio(pcap, 2400),
            Step::Key('#'),
            Step::Pause(1000),
        ],
    );
    let log = h.stop();
    let played = played(&h);
    assert_eq!(
        played[..2],
        ["greeting_garden_zh closed_now_zh", "record_complaint_zh"],
        "{log}"
    );
    let events = all_events(h.store_path().to_str().unwrap());
    assert!(
        events.iter().any(|e| matches!(&e.kind,
            EventKind::IvrStepTaken { node, detail } if node == "hours" && detail == "closed -> night")),
        "{log}"
    );
    let category = events.iter().find_map(|e| match &e.kind {
        EventKind::TicketOpened { category, .. } => Some(category.clone()),
        _ => None,
    });
    assert_eq!(category.as_deref(), Some("message"), "{log}");
}

#[test]
fn a_known_owner_hears_their_latest_repair_with_its_number_and_status() {
    let (mut h, _data) = start();
    common::open_ticket(&h, "water", "O-0001", "leak under the sink");
    common::open_ticket(&h, "lift", "O-0001", "lift stuck on floor 12");
    common::open_ticket(&h, "water", "O-0002", "someone else's");
    // The hotline reads the log within a second.
    std::thread::sleep(std::time::Duration::from_millis(1500));
    call(
        &h,
        "my_repair",
        OWNER_NUMBER,
        &[
            Step::Pause(500),
            Step::Key('1'),
            Step::Pause(300),
            Step::Key('2'),
            Step::Pause(14000),
        ],
    );
    let log = h.stop();
    let played = played(&h);
    // Ticket 2 (the lift, the latest of O-0001's), sent to engineering
    // at once by the automatic dispatch.
    assert!(
        played.contains(&"your_ticket_zh ticket_word_zh num_2_zh".to_string()),
        "{played:?}\n{log}"
    );
    assert!(
        played
            .iter()
            .any(|p| p.starts_with("status_is_zh status_dispatched_zh")),
        "{played:?}"
    );
}
