//! SIPp caller scenarios written per test: keys as SIP INFO with pauses
//! between, audio from a pcap, then the caller hangs up.

use std::path::{Path, PathBuf};

pub enum Step {
    /// One key as SIP INFO (application/dtmf-relay).
    Key(char),
    Pause(u64),
    /// RTP from a pcap (SIPp needs root to replay it), and how long it lasts.
    Audio(PathBuf, u64),
}

/// Writes `<dir>/<name>.xml`: a caller from `from` dialling `to`, who after
/// the answer goes through `steps` and hangs up.
pub fn scenario(dir: &Path, name: &str, from: &str, to: &str, steps: &[Step]) -> PathBuf {
    let party =
        format!("From: \"Owner\" <sip:{from}@[local_ip]:[local_port]>;tag=[pid]T[call_number]");
    let mut xml = format!(
        r#"<?xml version="1.0" encoding="ISO-8859-1" ?>
<!DOCTYPE scenario SYSTEM "sipp.dtd">
<scenario name="{name}">
  <send retrans="500">
    <![CDATA[

      INVITE sip:{to}@[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=z9hG4bK-[pid]-[call_number]-inv
      {party}
      To: <sip:{to}@[remote_ip]:[remote_port]>
      Call-ID: [call_id]
      CSeq: 1 INVITE
      Contact: <sip:{from}@[local_ip]:[local_port];transport=[transport]>
      Max-Forwards: 70
      Content-Type: application/sdp
      Content-Length: [len]

      v=0
      o=owner 1 1 IN IP[local_ip_type] [local_ip]
      s=-
      c=IN IP[media_ip_type] [media_ip]
      t=0 0
      m=audio [media_port] RTP/AVP 0 101
      a=rtpmap:0 PCMU/8000
      a=rtpmap:101 telephone-event/8000
      a=fmtp:101 0-16
      a=ptime:20

    ]]>
  </send>
  <recv response="100" optional="true"/>
  <recv response="180" optional="true"/>
  <recv response="200" rrs="true"/>
  <send>
    <![CDATA[

      ACK [next_url] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=z9hG4bK-[pid]-[call_number]-ack
      {party}
      [last_To:]
      Call-ID: [call_id]
      CSeq: 1 ACK
      [routes]
      Max-Forwards: 70
      Content-Length: 0

    ]]>
  </send>
"#
    );
    let mut cseq = 1;
    for step in steps {
        match step {
            Step::Key(k) => {
                cseq += 1;
                xml.push_str(&format!(
                    r#"  <send retrans="500">
    <![CDATA[

      INFO [next_url] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=z9hG4bK-[pid]-[call_number]-i{cseq}
      {party}
      [last_To:]
      Call-ID: [call_id]
      CSeq: {cseq} INFO
      [routes]
      Max-Forwards: 70
      Content-Type: application/dtmf-relay
      Content-Length: [len]

      Signal={k}
      Duration=160

    ]]>
  </send>
  <recv response="200"/>
"#
                ));
            }
            Step::Pause(ms) => xml.push_str(&format!("  <pause milliseconds=\"{ms}\"/>\n")),
            Step::Audio(pcap, ms) => xml.push_str(&format!(
                "  <nop><action><exec play_pcap_audio=\"{}\"/></action></nop>\n  <pause milliseconds=\"{ms}\"/>\n",
                pcap.display()
            )),
        }
    }
    cseq += 1;
    xml.push_str(&format!(
        r#"  <send retrans="500">
    <![CDATA[

      BYE [next_url] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=z9hG4bK-[pid]-[call_number]-bye
      {party}
      [last_To:]
      Call-ID: [call_id]
      CSeq: {cseq} BYE
      [routes]
      Max-Forwards: 70
      Content-Length: 0

    ]]>
  </send>
  <recv response="200"/>
</scenario>
"#
    ));
    let path = dir.join(format!("{name}.xml"));
    std::fs::write(&path, xml).unwrap();
    path
}
