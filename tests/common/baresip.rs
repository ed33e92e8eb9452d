//! baresip (Debian's package, an independent softphone) as an agent's
//! phone: headless, one account, a 440 Hz tone as its voice; killed on drop.

use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Baresip {
    child: Child,
    /// ctrl_tcp: commands as a user would type them, over TCP.
    ctrl: u16,
}

impl Drop for Baresip {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Baresip {
    /// Starts baresip with `account` (a baresip account line), SIP on
    /// `sip_port`, its control socket on `sip_port + 5`, RTP in `rtp`,
    /// running `commands` at start.
    pub fn start(
        dir: &Path,
        account: &str,
        sip_port: u16,
        rtp: (u16, u16),
        commands: &[&str],
    ) -> Self {
        Self::start_with(dir, account, sip_port, rtp, commands, "")
    }

    /// The same with more lines of baresip's config (e.g. `sip_cafile`).
    pub fn start_with(
        dir: &Path,
        account: &str,
        sip_port: u16,
        rtp: (u16, u16),
        commands: &[&str],
        extra_config: &str,
    ) -> Self {
        Self::start_tone(dir, account, sip_port, rtp, commands, extra_config, 440)
    }

    /// The same, speaking a `tone_hz` tone.
    pub fn start_tone(
        dir: &Path,
        account: &str,
        sip_port: u16,
        rtp: (u16, u16),
        commands: &[&str],
        extra_config: &str,
        tone_hz: u32,
    ) -> Self {
        let conf = dir.join(format!("baresip-{sip_port}"));
        std::fs::create_dir_all(&conf).unwrap();
        let ctrl = sip_port + 5; // SIP over TLS takes sip_port + 1
        std::fs::write(
            conf.join("config"),
            format!(
                "poll_method epoll\nsip_listen 127.0.0.1:{sip_port}\nnet_interface 127.0.0.1\n\
                 dns_server 127.0.0.1:53\naudio_player aubridge,agent\naudio_source ausine,{tone_hz}\n\
                 ausrc_srate 48000\nausrc_channels 2\nauplay_srate 8000\nauplay_channels 1\n\
                 rtp_ports {}-{}\nrtcp_mux no\nmodule_path /usr/lib/baresip/modules\nmodule g711.so\n\
                 module ausine.so\nmodule aubridge.so\nmodule_tmp account.so\nmodule_app menu.so\n\
                 module_app ctrl_tcp.so\nctrl_tcp_listen 127.0.0.1:{ctrl}\n{extra_config}",
                rtp.0, rtp.1
            ),
        )
        .unwrap();
        std::fs::write(conf.join("accounts"), format!("{account}\n")).unwrap();
        std::fs::write(conf.join("contacts"), "").unwrap();
        let mut command = Command::new("baresip");
        command.arg("-f").arg(&conf);
        for c in commands {
            command.args(["-e", c]);
        }
        let child = command
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(dir.join(format!("baresip-{sip_port}.log"))).unwrap())
            .stderr(Stdio::null())
            .spawn()
            .expect("baresip is installed by tests/run.sh (Debian package baresip)");
        Baresip { child, ctrl }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Runs a menu command (`hangup`, `dial sip:*2@...`) as the agent would
    /// from the phone's keyboard, through ctrl_tcp (netstring-framed JSON);
    /// returns baresip's response.
    pub fn command(&self, command: &str, params: &str) -> String {
        use std::io::{Read, Write};
        let end = Instant::now() + Duration::from_secs(5);
        let mut stream = loop {
            match TcpStream::connect(("127.0.0.1", self.ctrl)) {
                Ok(s) => break s,
                Err(e) if Instant::now() > end => panic!("baresip ctrl_tcp: {e}"),
                Err(_) => std::thread::sleep(Duration::from_millis(100)),
            }
        };
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let body = format!("{{\"command\":\"{command}\",\"params\":\"{params}\",\"token\":\"t\"}}");
        write!(stream, "{}:{body},", body.len()).unwrap();
        // Events may come first; the answer is the one marked "response".
        let mut buf = Vec::new();
        let mut chunk = [0u8; 4096];
        loop {
            while let Some(colon) = buf.iter().position(|b| *b == b':') {
                let len: usize = std::str::from_utf8(&buf[..colon]).unwrap().parse().unwrap();
                if buf.len() < colon + 1 + len + 1 {
                    break;
                }
                let msg = String::from_utf8_lossy(&buf[colon + 1..colon + 1 + len]).to_string();
                buf.drain(..colon + 1 + len + 1);
                if msg.contains("\"response\":true") {
                    return msg;
                }
            }
            let n = stream.read(&mut chunk).expect("baresip answers a command");
            assert!(n > 0, "baresip closed its control connection");
            buf.extend_from_slice(&chunk[..n]);
        }
    }
}

/// Demo agent `id`'s phone (password `agent<id>`, see config/agents.toml)
/// registered with `hotline`, logged in with *1; `answermode` auto or
/// manual. SIP on `port`, control on `port + 5`, RTP from `port + 10`.
pub fn agent_phone(hotline: &super::Hotline, id: &str, port: u16, answermode: &str) -> Baresip {
    Baresip::start(
        hotline.dir.path(),
        &format!(
            "<sip:{id}@{}>;auth_user={id};auth_pass=agent{id};regint=60;answermode={answermode};audio_codecs=PCMU/8000",
            hotline.target()
        ),
        port,
        (port + 10, port + 60),
        &[&format!("/dial sip:*1@{}", hotline.target())],
    )
}

/// Agent `id`'s phone as [`agent_phone`], speaking a `tone_hz` tone and
/// keeping what it hears in WAV files under `heard` (baresip's sndfile
/// module: `*-dec.wav`, one per call).
pub fn agent_phone_hearing(
    hotline: &super::Hotline,
    id: &str,
    port: u16,
    answermode: &str,
    tone_hz: u32,
    heard: &Path,
) -> Baresip {
    std::fs::create_dir_all(heard).unwrap();
    Baresip::start_tone(
        hotline.dir.path(),
        &format!(
            "<sip:{id}@{}>;auth_user={id};auth_pass=agent{id};regint=60;answermode={answermode};audio_codecs=PCMU/8000",
            hotline.target()
        ),
        port,
        (port + 10, port + 60),
        &[&format!("/dial sip:*1@{}", hotline.target())],
        &format!("module sndfile.so\nsnd_path {}\n", heard.display()),
        tone_hz,
    )
}

/// What a phone of [`agent_phone_hearing`] heard: the samples (8 kHz
/// mono) of each call's received audio, in file order.
pub fn heard(dir: &Path) -> Vec<Vec<i16>> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.to_string_lossy().ends_with("-dec.wav"))
        .collect();
    files.sort();
    files
        .iter()
        .map(|p| {
            let mut r = hound::WavReader::open(p).unwrap();
            let spec = r.spec();
            let samples: Vec<i16> = r.samples::<i16>().map(|s| s.unwrap()).collect();
            // Down to one channel at 8 kHz, whatever baresip wrote.
            let step = (spec.sample_rate / 8000).max(1) as usize * spec.channels as usize;
            samples.iter().step_by(step).copied().collect()
        })
        .collect()
}
