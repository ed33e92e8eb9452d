//! baresip (Debian's package, an independent softphone) as an agent's
//! phone: headless, one account, a 440 Hz tone as its voice; killed on drop.

use std::path::Path;
use std::process::{Child, Command, Stdio};

pub struct Baresip(pub Child);

impl Drop for Baresip {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Baresip {
    /// Starts baresip with `account` (a baresip account line), SIP on
    /// `sip_port`, RTP in `rtp`, running `commands` at start.
    pub fn start(
        dir: &Path,
        account: &str,
        sip_port: u16,
        rtp: (u16, u16),
        commands: &[&str],
    ) -> Self {
        let conf = dir.join("baresip");
        std::fs::create_dir_all(&conf).unwrap();
        std::fs::write(
            conf.join("config"),
            format!(
                "poll_method epoll\nsip_listen 127.0.0.1:{sip_port}\nnet_interface 127.0.0.1\n\
                 dns_server 127.0.0.1:53\naudio_player aubridge,agent\naudio_source ausine,440\n\
                 ausrc_srate 48000\nausrc_channels 2\nauplay_srate 8000\nauplay_channels 1\n\
                 rtp_ports {}-{}\nrtcp_mux no\nmodule_path /usr/lib/baresip/modules\nmodule g711.so\n\
                 module ausine.so\nmodule aubridge.so\nmodule_tmp account.so\nmodule_app menu.so\n",
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
            .stdout(std::fs::File::create(dir.join("baresip.log")).unwrap())
            .stderr(Stdio::null())
            .spawn()
            .expect("baresip is installed by tests/run.sh (Debian package baresip)");
        Baresip(child)
    }
}
