//! The command line: config errors are clear and name the key or file.

use std::process::Command;

fn hotline(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_hotline"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn write(dir: &tempfile::TempDir, text: &str) -> String {
    let path = dir.path().join("hotline.toml");
    std::fs::write(&path, text).unwrap();
    path.to_string_lossy().into_owned()
}

#[test]
fn shipped_config_checks_ok() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/config/hotline.toml");
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = Command::new(env!("CARGO_BIN_EXE_hotline"))
        .args(["check-config", path])
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn unknown_key_is_named_without_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(&dir, "[media]\nrtp_port_mni = 20000\n");
    let (code, _, err) = hotline(&["check-config", &path]);
    assert_eq!(code, 2);
    assert!(
        err.contains("rtp_port_mni") && err.contains("hotline.toml"),
        "{err}"
    );
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn bad_address_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(&dir, "[sip]\nlisten = \"localhost:five\"\n");
    let (code, _, err) = hotline(&["run", "--config", &path]);
    assert_eq!(code, 2);
    assert!(err.contains("listen"), "{err}");
}

#[test]
fn broken_prompt_is_named_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let prompts = dir.path().join("prompts");
    std::fs::create_dir(&prompts).unwrap();
    let src = concat!(env!("CARGO_MANIFEST_DIR"), "/prompts");
    for f in ["welcome_en", "welcome_zh", "goodbye_en", "goodbye_zh"] {
        std::fs::copy(format!("{src}/{f}.wav"), prompts.join(format!("{f}.wav"))).unwrap();
    }
    std::fs::write(prompts.join("goodbye_zh.wav"), b"RIFF....WAVEfmt broken").unwrap();
    let path = write(
        &dir,
        &format!("[prompts]\ndir = \"{}\"\n", prompts.display()),
    );
    let (code, _, err) = hotline(&["run", "--config", &path]);
    assert_eq!(code, 2);
    assert!(err.contains("goodbye_zh.wav"), "{err}");
}

#[test]
fn port_in_use_is_a_clear_error() {
    let taken = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let dir = tempfile::tempdir().unwrap();
    let path = write(&dir, &format!("[sip]\nlisten = \"127.0.0.1:{port}\"\n"));
    let (code, _, err) = hotline(&["run", "--config", &path]);
    assert_eq!(code, 1);
    assert!(err.contains("cannot listen for SIP on UDP"), "{err}");
}

#[test]
fn unreachable_postgres_store_is_a_clear_error_without_the_password() {
    let dir = tempfile::tempdir().unwrap();
    let config = write(
        &dir,
        "[sip]\nlisten = \"127.0.0.1:15990\"\n[tickets]\nstore = \"postgres://hotline:secret@127.0.0.1:1/hotline\"\n",
    );
    let (code, _, err) = hotline(&["run", "--config", &config]);
    assert_ne!(code, 0);
    assert!(
        err.contains("ticket store postgres://hotline:***@127.0.0.1:1/hotline")
            && err.contains("Connection refused"),
        "{err}"
    );
    assert!(!err.contains("secret"), "{err}");
    let (code, _, err) = hotline(&[
        "tickets",
        "--store",
        "postgres://hotline:secret@127.0.0.1:1/hotline",
        "list",
    ]);
    assert_eq!(code, 2);
    assert!(
        err.contains("Connection refused") && !err.contains("secret"),
        "{err}"
    );
}

#[test]
fn owners_import_checks_every_row_and_imports_all_or_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("owners.db");
    let db = db.to_str().unwrap();
    let sample = concat!(env!("CARGO_MANIFEST_DIR"), "/config/owners.csv");
    let (code, out, err) = hotline(&["owners", "--db", db, "import", sample]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("imported 1000 owners"), "{out}");
    let bad = dir.path().join("bad.csv");
    std::fs::write(
        &bad,
        "id,name,site,building,unit,phones,language,class,points,fee_balance\n\
         O-2000,New Owner,garden,77,0101,13700000000,zh,ordinary,0,0\n\
         O-2001,Other,garden,77,0102,13800138000,zh,ordinary,0,0\n",
    )
    .unwrap();
    let (code, _, err) = hotline(&["owners", "--db", db, "import", bad.to_str().unwrap()]);
    assert_eq!(code, 2);
    assert!(
        err.contains("line 3: phone 13800138000 belongs to O-0001 in the database"),
        "{err}"
    );
    let (code, _, err) = hotline(&["owners", "--db", db, "show", "13700000000"]);
    assert_eq!(code, 2, "the good row of a bad file was imported");
    assert!(err.contains("no owner"), "{err}");
    let (code, out, _) = hotline(&["owners", "--db", db, "show", "+86 138-0013-8000"]);
    assert_eq!(code, 0);
    assert!(out.contains("\"id\": \"O-0001\""), "{out}");
}

#[test]
fn a_menu_with_a_dangling_reference_is_refused_naming_the_node_and_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let menu = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/config/ivr.toml"))
        .unwrap()
        .replace("\"3\" = \"complaint\"", "\"3\" = \"complain\"");
    let menu_path = dir.path().join("ivr.toml");
    std::fs::write(&menu_path, menu).unwrap();
    let config = write(
        &dir,
        &format!(
            "[prompts]\ndir = \"{}/prompts\"\n[ivr]\nmenu = \"{}\"\n",
            env!("CARGO_MANIFEST_DIR"),
            menu_path.display()
        ),
    );
    let (code, _, err) = hotline(&["check-config", &config]);
    assert_eq!(code, 2);
    assert!(
        err.contains(&format!(
            "{}: node main: an option goes to \"complain\", which is not a node",
            menu_path.display()
        )),
        "{err}"
    );
    // A prompt the menu names but the folder lacks.
    let prompts = dir.path().join("prompts");
    std::fs::create_dir(&prompts).unwrap();
    for entry in std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/prompts")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "wav") && !path.ends_with("repair_menu_en.wav") {
            std::fs::copy(&path, prompts.join(path.file_name().unwrap())).unwrap();
        }
    }
    let config = write(
        &dir,
        &format!("[prompts]\ndir = \"{}\"\n", prompts.display()),
    );
    let (code, _, err) = hotline(&["check-config", &config]);
    assert_eq!(code, 2);
    assert!(
        err.contains("node repair: prompt repair_menu: repair_menu_en.wav is missing"),
        "{err}"
    );
}

/// The log as a user runs the hotline (lines gathered, written every
/// 20 ms by a thread of their own): lines reach the file while it runs,
/// and the last ones, logged as it stops, are written before it exits.
#[test]
fn the_gathered_log_is_written_while_running_and_to_the_last_line_on_stop() {
    use std::io::{BufRead, BufReader};
    use std::process::Stdio;
    use std::time::{Duration, Instant};
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().display();
    let config = write(
        &dir,
        &format!(
            "[sip]\nlisten = \"127.0.0.1:28861\"\n[media]\nip = \"127.0.0.1\"\n\
             rtp_port_min = 28870\nrtp_port_max = 28899\n[tickets]\nstore = \"{d}/events.db\"\n\
             [owners]\ndb = \"{d}/owners.db\"\n[ivr]\nmenu = \"\"\n[http]\nlisten = \"127.0.0.1:0\"\n"
        ),
    );
    let log = dir.path().join("hotline.log");
    let mut child = Command::new(env!("CARGO_BIN_EXE_hotline"))
        .args(["run", "--config", &config])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("RUST_LOG", "info")
        .env_remove("HOTLINE_LOG_FLUSH_MS")
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let mut first = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    let read = || std::fs::read_to_string(&log).unwrap_or_default();
    assert!(first.contains("hotline listening"), "{first}\n{}", read());
    let end = Instant::now() + Duration::from_secs(2);
    while !read().contains("ticket log replayed") {
        assert!(
            Instant::now() < end,
            "no line written while running: {}",
            read()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    let _ = Command::new("kill").arg(child.id().to_string()).status();
    let status = child.wait().unwrap();
    assert!(status.success(), "{status:?}: {}", read());
    let text = read();
    assert!(
        text.trim_end()
            .lines()
            .last()
            .is_some_and(|l| l.contains("hotline stopped")),
        "the last line is the stop: {text}"
    );
}
