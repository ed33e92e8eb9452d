//! SDP offer/answer for audio calls (RFC 4566, RFC 3264): PCMU or PCMA with
//! telephone-event (RFC 4733) at the payload type the caller offered.

use std::fmt::Write as _;
use std::net::{IpAddr, SocketAddr};

use crate::media::g711::Law;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SdpError {
    #[error("SDP is not UTF-8")]
    NotUtf8,
    #[error("no audio stream offered")]
    NoAudio,
    #[error("no connection address for the audio stream")]
    NoAddress,
    #[error("no common codec (we take PCMU or PCMA)")]
    NoCommonCodec,
}

/// What we take from an offer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Offer {
    /// Where the caller wants audio (may be replaced by symmetric RTP).
    pub remote: SocketAddr,
    /// Index of the audio m-line and the number of m-lines in all.
    pub audio_index: usize,
    pub media_lines: Vec<String>,
    pub codec_pt: u8,
    pub law: Law,
    /// telephone-event payload type, when offered at 8 kHz.
    pub dtmf_pt: Option<u8>,
}

/// The first usable audio m-line of an offer, with its c= and rtpmaps.
struct AudioLine {
    index: usize,
    port: u16,
    formats: Vec<u8>,
    addr: Option<IpAddr>,
    rtpmaps: Vec<(u8, String)>,
}

/// Reads an offer and chooses the first audio format we can speak.
pub fn negotiate(body: &[u8]) -> Result<Offer, SdpError> {
    let text = std::str::from_utf8(body).map_err(|_| SdpError::NotUtf8)?;
    let mut session_addr: Option<IpAddr> = None;
    let mut media_lines = Vec::new();
    let mut audio: Option<AudioLine> = None;
    for line in text.lines().map(str::trim) {
        let Some((kind, value)) = line.split_once('=') else {
            continue;
        };
        match kind {
            "m" => {
                media_lines.push(value.to_string());
                let mut parts = value.split_whitespace();
                let media = parts.next().unwrap_or_default();
                let port = parts.next().and_then(|p| p.split('/').next()?.parse().ok());
                let _proto = parts.next();
                if media == "audio"
                    && audio.is_none()
                    && let Some(port) = port.filter(|p: &u16| *p != 0)
                {
                    audio = Some(AudioLine {
                        index: media_lines.len() - 1,
                        port,
                        formats: parts.filter_map(|f| f.parse().ok()).collect(),
                        addr: None,
                        rtpmaps: Vec::new(),
                    });
                }
            }
            "c" => {
                let addr = value
                    .split_whitespace()
                    .nth(2)
                    .and_then(|a| a.split('/').next()?.parse().ok());
                match audio.as_mut() {
                    Some(a) if a.index + 1 == media_lines.len() => a.addr = addr,
                    None if media_lines.is_empty() => session_addr = addr,
                    _ => {}
                }
            }
            "a" => {
                if let Some(a) = audio.as_mut()
                    && a.index + 1 == media_lines.len()
                    && let Some(map) = value.strip_prefix("rtpmap:")
                    && let Some((pt, enc)) = map.split_once(' ')
                    && let Ok(pt) = pt.trim().parse()
                {
                    a.rtpmaps.push((pt, enc.trim().to_ascii_lowercase()));
                }
            }
            _ => {}
        }
    }
    let AudioLine {
        index: audio_index,
        port,
        formats,
        addr: conn,
        rtpmaps: maps,
    } = audio.ok_or(SdpError::NoAudio)?;
    let ip = conn.or(session_addr).ok_or(SdpError::NoAddress)?;
    let encoding = |pt: u8| maps.iter().find(|(p, _)| *p == pt).map(|(_, e)| e.as_str());
    let mut choice = None;
    let mut dtmf_pt = None;
    for &pt in &formats {
        let law = match (pt, encoding(pt)) {
            (_, Some(e)) if e.starts_with("pcmu/8000") => Some(Law::Mu),
            (_, Some(e)) if e.starts_with("pcma/8000") => Some(Law::A),
            (0, None) => Some(Law::Mu),
            (8, None) => Some(Law::A),
            _ => None,
        };
        if let Some(law) = law
            && choice.is_none()
        {
            choice = Some((pt, law));
        }
        if encoding(pt).is_some_and(|e| e.starts_with("telephone-event/8000")) && dtmf_pt.is_none()
        {
            dtmf_pt = Some(pt);
        }
    }
    let (codec_pt, law) = choice.ok_or(SdpError::NoCommonCodec)?;
    Ok(Offer {
        remote: SocketAddr::new(ip, port),
        audio_index,
        media_lines,
        codec_pt,
        law,
        dtmf_pt,
    })
}

/// Writes our answer: one audio stream on `local`, other offered streams
/// refused with port 0 (RFC 3264 §6 keeps the m-line count).
pub fn answer(offer: &Offer, local: SocketAddr, session_id: u64) -> String {
    let ip = local.ip();
    let family = if ip.is_ipv4() { "IP4" } else { "IP6" };
    // One string, written in place (writing to a String cannot fail).
    let mut s = String::with_capacity(320);
    let _ = write!(
        s,
        "v=0\r\no=hotline {session_id} {session_id} IN {family} {ip}\r\ns=hotline\r\nc=IN {family} {ip}\r\nt=0 0\r\n"
    );
    for (i, m) in offer.media_lines.iter().enumerate() {
        if i != offer.audio_index {
            let mut parts = m.split_whitespace();
            let media = parts.next().unwrap_or("audio");
            let proto = parts.nth(1).unwrap_or("RTP/AVP");
            let fmt = parts.next().unwrap_or("0");
            let _ = write!(s, "m={media} 0 {proto} {fmt}\r\n");
            continue;
        }
        let name = match offer.law {
            Law::Mu => "PCMU",
            Law::A => "PCMA",
        };
        let pt = offer.codec_pt;
        let port = local.port();
        let _ = match offer.dtmf_pt {
            Some(te) => write!(
                s,
                "m=audio {port} RTP/AVP {pt} {te}\r\na=rtpmap:{pt} {name}/8000\r\na=rtpmap:{te} telephone-event/8000\r\na=fmtp:{te} 0-15\r\n"
            ),
            None => write!(
                s,
                "m=audio {port} RTP/AVP {pt}\r\na=rtpmap:{pt} {name}/8000\r\n"
            ),
        };
        s.push_str("a=ptime:20\r\na=sendrecv\r\n");
    }
    s
}

/// An offer of exactly one codec (and telephone-event at `dtmf_pt`): what
/// the leg to an agent offers, so the caller's RTP can be relayed as it is.
pub fn offer_one(
    local: SocketAddr,
    session_id: u64,
    codec_pt: u8,
    law: Law,
    dtmf_pt: Option<u8>,
) -> String {
    let ip = local.ip();
    let family = if ip.is_ipv4() { "IP4" } else { "IP6" };
    let name = match law {
        Law::Mu => "PCMU",
        Law::A => "PCMA",
    };
    let port = local.port();
    let mut s = format!(
        "v=0\r\no=hotline {session_id} {session_id} IN {family} {ip}\r\ns=hotline\r\nc=IN {family} {ip}\r\nt=0 0\r\n"
    );
    match dtmf_pt {
        Some(te) => s.push_str(&format!(
            "m=audio {port} RTP/AVP {codec_pt} {te}\r\na=rtpmap:{codec_pt} {name}/8000\r\na=rtpmap:{te} telephone-event/8000\r\na=fmtp:{te} 0-15\r\n"
        )),
        None => s.push_str(&format!(
            "m=audio {port} RTP/AVP {codec_pt}\r\na=rtpmap:{codec_pt} {name}/8000\r\n"
        )),
    }
    s.push_str("a=ptime:20\r\na=sendrecv\r\n");
    s
}

/// Which way media flows in an SDP (RFC 3264 §5.1, §8.4): a re-INVITE with
/// `sendonly`, `inactive` or the old-style `c=0.0.0.0` puts the call on
/// hold, `sendrecv` (or nothing said) takes it off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    SendRecv,
    SendOnly,
    RecvOnly,
    Inactive,
}

impl Direction {
    /// The direction an SDP body says (the audio stream's own attribute
    /// over the session's).
    pub fn of(body: &[u8]) -> Direction {
        let Ok(text) = std::str::from_utf8(body) else {
            return Direction::SendRecv;
        };
        let mut direction = Direction::SendRecv;
        for line in text.lines().map(str::trim) {
            direction = match line {
                "a=sendonly" => Direction::SendOnly,
                "a=recvonly" => Direction::RecvOnly,
                "a=inactive" => Direction::Inactive,
                "a=sendrecv" => Direction::SendRecv,
                l if l.starts_with("c=IN IP4 0.0.0.0") => Direction::Inactive,
                _ => continue,
            };
        }
        direction
    }

    /// Whether the peer put the call on hold (it will not take our media).
    pub fn is_hold(self) -> bool {
        matches!(self, Direction::SendOnly | Direction::Inactive)
    }

    /// Our answer to an offer with this direction.
    pub fn answer(self) -> Direction {
        match self {
            Direction::SendOnly => Direction::RecvOnly,
            Direction::RecvOnly => Direction::SendOnly,
            d => d,
        }
    }

    fn attribute(self) -> &'static str {
        match self {
            Direction::SendRecv => "a=sendrecv",
            Direction::SendOnly => "a=sendonly",
            Direction::RecvOnly => "a=recvonly",
            Direction::Inactive => "a=inactive",
        }
    }
}

/// One of our SDPs with its direction set to `direction` and its `o=`
/// version set to `version` (a changed description needs a higher one).
pub fn with_direction(ours: &str, direction: Direction, version: u64) -> String {
    let mut out = String::with_capacity(ours.len() + 8);
    for line in ours.split_terminator("\r\n") {
        if let Some(rest) = line.strip_prefix("o=") {
            // o=<user> <session id> <version> <net> <addr type> <addr>
            let mut f: Vec<&str> = rest.split(' ').collect();
            let v = version.to_string();
            if f.len() == 6 {
                f[2] = &v;
            }
            out.push_str(&format!("o={}\r\n", f.join(" ")));
        } else if matches!(
            line,
            "a=sendrecv" | "a=sendonly" | "a=recvonly" | "a=inactive"
        ) {
            out.push_str(direction.attribute());
            out.push_str("\r\n");
        } else {
            out.push_str(line);
            out.push_str("\r\n");
        }
    }
    out
}

/// telephone-event payload type in our own offers.
pub const OFFER_DTMF_PT: u8 = 101;

/// Writes our offer for a call we place: PCMU, PCMA and telephone-event on
/// `local`. The answer is read with [`negotiate`] (it names one codec).
pub fn offer(local: SocketAddr, session_id: u64) -> String {
    let ip = local.ip();
    let family = if ip.is_ipv4() { "IP4" } else { "IP6" };
    let (port, te) = (local.port(), OFFER_DTMF_PT);
    format!(
        "v=0\r\no=hotline {session_id} {session_id} IN {family} {ip}\r\ns=hotline\r\nc=IN {family} {ip}\r\nt=0 0\r\n\
         m=audio {port} RTP/AVP 0 8 {te}\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\n\
         a=rtpmap:{te} telephone-event/8000\r\na=fmtp:{te} 0-15\r\na=ptime:20\r\na=sendrecv\r\n"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const OFFER: &str = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
m=audio 16000 RTP/AVP 8 0 96\r\na=rtpmap:8 PCMA/8000\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:96 telephone-event/8000\r\na=fmtp:96 0-16\r\n";

    #[test]
    fn answers_first_offered_codec_and_callers_dtmf_pt() {
        let offer = negotiate(OFFER.as_bytes()).unwrap();
        assert_eq!(offer.codec_pt, 8);
        assert_eq!(offer.law, Law::A);
        assert_eq!(offer.dtmf_pt, Some(96));
        assert_eq!(offer.remote, "127.0.0.1:16000".parse().unwrap());
        let ans = answer(&offer, "127.0.0.1:20000".parse().unwrap(), 7);
        assert!(ans.contains("m=audio 20000 RTP/AVP 8 96\r\n"), "{ans}");
        assert!(ans.contains("a=rtpmap:96 telephone-event/8000"));
    }

    #[test]
    fn our_offer_reads_back_and_takes_the_answered_codec() {
        let ours = offer("127.0.0.1:20002".parse().unwrap(), 9);
        let read = negotiate(ours.as_bytes()).unwrap();
        assert_eq!(read.remote, "127.0.0.1:20002".parse().unwrap());
        assert_eq!((read.codec_pt, read.dtmf_pt), (0, Some(OFFER_DTMF_PT)));
        // The callee answers with PCMA only and its own event type.
        let ans = "v=0\r\nc=IN IP4 127.0.0.1\r\nm=audio 7000 RTP/AVP 8 101\r\na=rtpmap:101 telephone-event/8000\r\n";
        let read = negotiate(ans.as_bytes()).unwrap();
        assert_eq!(
            (read.codec_pt, read.law, read.dtmf_pt),
            (8, Law::A, Some(101))
        );
    }

    #[test]
    fn static_payload_types_need_no_rtpmap() {
        let offer = negotiate(b"v=0\r\nc=IN IP4 10.0.0.1\r\nm=audio 4000 RTP/AVP 0\r\n").unwrap();
        assert_eq!(
            (offer.codec_pt, offer.law, offer.dtmf_pt),
            (0, Law::Mu, None)
        );
    }

    #[test]
    fn no_common_codec_is_an_error() {
        let g729 =
            "v=0\r\nc=IN IP4 127.0.0.1\r\nm=audio 4000 RTP/AVP 18\r\na=rtpmap:18 G729/8000\r\n";
        assert_eq!(negotiate(g729.as_bytes()), Err(SdpError::NoCommonCodec));
        assert_eq!(negotiate(b"v=0\r\n"), Err(SdpError::NoAudio));
    }

    #[test]
    fn video_stream_is_refused_with_port_zero() {
        let sdp =
            "v=0\r\nc=IN IP4 127.0.0.1\r\nm=video 5000 RTP/AVP 97\r\nm=audio 4000 RTP/AVP 0\r\n";
        let offer = negotiate(sdp.as_bytes()).unwrap();
        let ans = answer(&offer, "127.0.0.1:20000".parse().unwrap(), 1);
        assert!(
            ans.contains("m=video 0 RTP/AVP 97\r\nm=audio 20000"),
            "{ans}"
        );
    }

    #[test]
    fn hold_is_read_from_the_direction_or_a_null_address_and_answered_in_kind() {
        let held = b"v=0\r\no=- 1 2 IN IP4 10.0.0.1\r\ns=-\r\nc=IN IP4 10.0.0.1\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\na=sendonly\r\n";
        assert_eq!(Direction::of(held), Direction::SendOnly);
        assert!(Direction::of(held).is_hold());
        let old_style = b"v=0\r\nc=IN IP4 0.0.0.0\r\nm=audio 4000 RTP/AVP 0\r\n";
        assert!(Direction::of(old_style).is_hold());
        // The media line's attribute wins over the session's.
        let resumed = b"v=0\r\na=sendonly\r\nm=audio 4000 RTP/AVP 0\r\na=sendrecv\r\n";
        assert_eq!(Direction::of(resumed), Direction::SendRecv);
        assert_eq!(
            Direction::of(b"v=0\r\nm=audio 4000 RTP/AVP 0\r\n"),
            Direction::SendRecv
        );
        let ours = offer_one(
            "127.0.0.1:20002".parse().unwrap(),
            77,
            0,
            Law::Mu,
            Some(101),
        );
        let answer = with_direction(&ours, Direction::SendOnly.answer(), 78);
        assert!(
            answer.contains("o=hotline 77 78 IN IP4 127.0.0.1\r\n"),
            "{answer}"
        );
        assert!(
            answer.ends_with("a=recvonly\r\n") && !answer.contains("sendrecv"),
            "{answer}"
        );
        assert_eq!(with_direction(&answer, Direction::SendRecv, 77), ours);
    }
}
