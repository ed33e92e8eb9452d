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
        "[sip]\nlisten = \"127.0.0.1:35990\"\n[tickets]\nstore = \"postgres://hotline:secret@127.0.0.1:1/hotline\"\n",
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
