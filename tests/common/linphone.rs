//! Linphone's console phone (Debian's `linphone-cli`, `linphonec`) as an
//! agent's phone: headless, its own home and config, commands typed on its
//! standard input as a user would; killed on drop.

use std::io::Write;
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Stdio};

pub struct Linphone {
    child: Child,
    stdin: ChildStdin,
}

impl Drop for Linphone {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Linphone {
    /// Agent `id` (password `agent<id>`) registered with the hotline at
    /// `hotline` (host:port), SIP on `port`, RTP on `port + 10`, answering
    /// by itself; logs in with *1.
    pub fn agent(dir: &Path, hotline: &str, id: &str, port: u16) -> Self {
        let home = dir.join(format!("linphone-{port}"));
        // Without its data folder it never leaves start-up (503 to INVITEs).
        std::fs::create_dir_all(home.join(".local/share/linphone")).unwrap();
        let rc = home.join("linphonerc");
        std::fs::write(
            &rc,
            format!(
                "[sip]\nsip_port={port}\nsip_tcp_port=0\nsip_tls_port=0\ndefault_proxy=0\n\
                 [rtp]\naudio_rtp_port={}\n\
                 [net]\nfirewall_policy=0\n\
                 [sound]\nechocancellation=0\n\
                 [proxy_0]\nreg_proxy=<sip:{hotline};transport=udp>\n\
                 reg_identity=sip:{id}@{hotline}\nreg_expires=60\nreg_sendregister=1\n\
                 [auth_info_0]\nusername={id}\npasswd=agent{id}\nrealm=hotline\n",
                port + 10
            ),
        )
        .unwrap();
        let mut child = Command::new("linphonec")
            .arg("-c")
            .arg(&rc)
            .arg("-a")
            .arg("-d")
            .arg("4")
            .arg("-l")
            .arg(dir.join(format!("linphone-{port}.log")))
            .env("HOME", &home)
            .stdin(Stdio::piped())
            .stdout(std::fs::File::create(dir.join(format!("linphone-{port}.out"))).unwrap())
            .stderr(Stdio::null())
            .spawn()
            .expect("linphonec is installed by tests/run.sh (Debian package linphone-cli)");
        let stdin = child.stdin.take().unwrap();
        let mut phone = Linphone { child, stdin };
        phone.type_line("soundcard use files");
        std::thread::sleep(std::time::Duration::from_millis(1500));
        phone.type_line(&format!("call sip:*1@{hotline}"));
        phone
    }

    /// Types a command, as at the `linphonec>` prompt.
    pub fn type_line(&mut self, line: &str) {
        writeln!(self.stdin, "{line}").unwrap();
        self.stdin.flush().unwrap();
    }
}
