//! Digest authentication for agents' softphones (RFC 3261 §22, RFC 7616's
//! computation, RFC 8760's SHA-256 for SIP), server side, sans-IO.
//!
//! Credentials are kept as HA1 = H(username:realm:password) per algorithm,
//! never as passwords. Nonces are stateless: the time they were issued and
//! a keyed hash of it, so any nonce this process issued can be checked (and
//! found stale) without a table.

use std::collections::HashMap;
use std::net::IpAddr;

use md5::Md5;
use sha2::{Digest, Sha256};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    Md5,
    Sha256,
}

impl Algorithm {
    pub fn name(self) -> &'static str {
        match self {
            Algorithm::Md5 => "MD5",
            Algorithm::Sha256 => "SHA-256",
        }
    }

    pub fn hash(self, data: &str) -> String {
        match self {
            Algorithm::Md5 => hex(&Md5::digest(data.as_bytes())),
            Algorithm::Sha256 => hex(&Sha256::digest(data.as_bytes())),
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        match name.to_ascii_uppercase().as_str() {
            "MD5" | "" => Some(Algorithm::Md5),
            "SHA-256" => Some(Algorithm::Sha256),
            _ => None,
        }
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// H(username:realm:password), what the agents file stores.
pub fn ha1(algorithm: Algorithm, username: &str, realm: &str, password: &str) -> String {
    algorithm.hash(&format!("{username}:{realm}:{password}"))
}

/// The fields of an `Authorization: Digest ...` header.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Credentials {
    pub username: String,
    pub realm: String,
    pub nonce: String,
    pub uri: String,
    pub response: String,
    pub algorithm: String,
    pub qop: Option<String>,
    pub nc: Option<String>,
    pub cnonce: Option<String>,
}

/// The parameters of `Digest k=v, k="v", ...` (keys lower-cased, quotes
/// and escapes undone); None if the scheme is not Digest.
fn digest_params(value: &str) -> Option<Vec<(String, String)>> {
    let rest = value.trim();
    let (scheme, params) = rest.split_once(char::is_whitespace)?;
    if !scheme.eq_ignore_ascii_case("digest") {
        return None;
    }
    let mut out = Vec::new();
    let mut chars = params.chars().peekable();
    loop {
        while chars
            .peek()
            .is_some_and(|ch| ch.is_whitespace() || *ch == ',')
        {
            chars.next();
        }
        let key: String = chars.by_ref().take_while(|ch| *ch != '=').collect();
        if key.is_empty() {
            break;
        }
        let value: String = if chars.peek() == Some(&'"') {
            chars.next();
            let mut v = String::new();
            while let Some(ch) = chars.next() {
                match ch {
                    '\\' => v.extend(chars.next()),
                    '"' => break,
                    _ => v.push(ch),
                }
            }
            v
        } else {
            chars
                .by_ref()
                .take_while(|ch| *ch != ',')
                .collect::<String>()
                .trim()
                .to_string()
        };
        out.push((key.trim().to_ascii_lowercase(), value));
    }
    Some(out)
}

/// Parses `Digest k=v, k="v", ...`; None if it is not Digest or lacks a
/// required field.
pub fn parse_authorization(value: &str) -> Option<Credentials> {
    let mut c = Credentials::default();
    for (key, value) in digest_params(value)? {
        match key.as_str() {
            "username" => c.username = value,
            "realm" => c.realm = value,
            "nonce" => c.nonce = value,
            "uri" => c.uri = value,
            "response" => c.response = value.to_ascii_lowercase(),
            "algorithm" => c.algorithm = value,
            "qop" => c.qop = Some(value),
            "nc" => c.nc = Some(value),
            "cnonce" => c.cnonce = Some(value),
            _ => {}
        }
    }
    (!c.username.is_empty() && !c.nonce.is_empty() && !c.uri.is_empty() && !c.response.is_empty())
        .then_some(c)
}

/// A server's challenge (`WWW-Authenticate` or `Proxy-Authenticate`), as
/// a client answers it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Challenge {
    pub realm: String,
    pub nonce: String,
    pub algorithm: Algorithm,
    /// `auth` when the server offers it (we do not do `auth-int`).
    pub qop_auth: bool,
    pub opaque: Option<String>,
}

/// Parses a challenge; None if it is not Digest, lacks realm or nonce, or
/// names an algorithm we do not have.
pub fn parse_challenge(value: &str) -> Option<Challenge> {
    let mut realm = None;
    let mut nonce = None;
    let mut algorithm = Algorithm::Md5;
    let mut qop_auth = false;
    let mut opaque = None;
    for (key, value) in digest_params(value)? {
        match key.as_str() {
            "realm" => realm = Some(value),
            "nonce" => nonce = Some(value),
            "algorithm" => algorithm = Algorithm::parse(&value)?,
            "qop" => {
                qop_auth = value
                    .split(',')
                    .any(|q| q.trim().eq_ignore_ascii_case("auth"))
            }
            "opaque" => opaque = Some(value),
            _ => {}
        }
    }
    Some(Challenge {
        realm: realm?,
        nonce: nonce?,
        algorithm,
        qop_auth,
        opaque,
    })
}

/// The `Authorization` (or `Proxy-Authorization`) value answering `ch` for
/// `method uri` (RFC 3261 §22.2, RFC 7616); `cnonce` is the client's own
/// random string, used when the server asked for qop=auth.
pub fn authorization(
    ch: &Challenge,
    username: &str,
    password: &str,
    method: &str,
    uri: &str,
    cnonce: &str,
) -> String {
    let ha1 = ha1(ch.algorithm, username, &ch.realm, password);
    let mut c = Credentials {
        username: username.to_string(),
        realm: ch.realm.clone(),
        nonce: ch.nonce.clone(),
        uri: uri.to_string(),
        algorithm: ch.algorithm.name().to_string(),
        ..Credentials::default()
    };
    if ch.qop_auth {
        c.qop = Some("auth".into());
        c.nc = Some("00000001".into());
        c.cnonce = Some(cnonce.to_string());
    }
    let response = expected_response(ch.algorithm, &ha1, method, &c);
    let mut value = format!(
        "Digest username=\"{username}\", realm=\"{}\", nonce=\"{}\", uri=\"{uri}\", response=\"{response}\", algorithm={}",
        ch.realm,
        ch.nonce,
        ch.algorithm.name()
    );
    if ch.qop_auth {
        value.push_str(&format!(", qop=auth, nc=00000001, cnonce=\"{cnonce}\""));
    }
    if let Some(o) = &ch.opaque {
        value.push_str(&format!(", opaque=\"{o}\""));
    }
    value
}

/// The response a client with `ha1` must send (RFC 7616 §3.4.1).
pub fn expected_response(algorithm: Algorithm, ha1: &str, method: &str, c: &Credentials) -> String {
    let ha2 = algorithm.hash(&format!("{method}:{}", c.uri));
    match (&c.qop, &c.nc, &c.cnonce) {
        (Some(qop), Some(nc), Some(cnonce)) => {
            algorithm.hash(&format!("{ha1}:{}:{nc}:{cnonce}:{qop}:{ha2}", c.nonce))
        }
        _ => algorithm.hash(&format!("{ha1}:{}:{ha2}", c.nonce)),
    }
}

/// Issues and checks nonces; the secret is random per process.
///
/// A nonce is the time it was issued and a keyed hash of that time and the
/// address it was issued to: any nonce this process issued can be checked
/// (and found stale, or sent from elsewhere) without a table. The one table
/// is the highest `nc` seen per nonce that was answered correctly, so a
/// captured request cannot be sent again; it holds only nonces someone
/// proved the password with, and forgets them once stale.
#[derive(Debug, Clone)]
pub struct Nonces {
    secret: String,
    /// A nonce older than this is stale (the client retries with a new one).
    lifetime_ms: u64,
    /// nonce -> (highest nc accepted, when it was issued).
    used: HashMap<String, (u32, u64)>,
    serial: u64,
}

/// What a request is checked against.
#[derive(Debug, Clone, Copy)]
pub struct Check<'a> {
    pub now_ms: u64,
    /// Where the request came from (nonces are bound to it).
    pub source: IpAddr,
    pub method: &'a str,
    /// The request's Request-URI, which the digest `uri` must equal.
    pub request_uri: &'a str,
    /// The algorithms offered; anything else is refused.
    pub allowed: &'a [Algorithm],
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Ok,
    /// Right password, but an old nonce or a used `nc` (a replay):
    /// challenge again with stale=true.
    Stale,
    /// A nonce we did not issue to this address (another process, a
    /// restart, a replay from elsewhere): challenge again.
    UnknownNonce,
    Refused(Refusal),
}

/// Why credentials were refused (for the log; the peer is told nothing more).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// An algorithm that was not offered (MD5 when only SHA-256 is).
    Algorithm,
    /// No `qop=auth` (with `nc` and `cnonce`): the RFC 2069 form.
    NoQop,
    /// The digest `uri` is not the Request-URI.
    Uri,
    /// Wrong password, or a user that does not exist.
    Password,
}

impl Refusal {
    pub fn label(self) -> &'static str {
        match self {
            Refusal::Algorithm => "algorithm",
            Refusal::NoQop => "no_qop",
            Refusal::Uri => "uri",
            Refusal::Password => "password",
        }
    }
}

impl Nonces {
    pub fn new(secret: u64, lifetime_ms: u64) -> Self {
        Self {
            secret: format!("{secret:x}"),
            lifetime_ms,
            used: HashMap::new(),
            serial: 0,
        }
    }

    fn mac(&self, stamp: &str, source: IpAddr) -> String {
        let mut mac = Algorithm::Sha256.hash(&format!("{}:{stamp}:{source}", self.secret));
        mac.truncate(32);
        mac
    }

    /// A nonce issued at `now_ms` (a clock of the caller's choosing) to
    /// `source`; a serial number keeps two issued in one millisecond apart
    /// (each starts its own `nc` count).
    pub fn issue(&mut self, now_ms: u64, source: IpAddr) -> String {
        self.serial = self.serial.wrapping_add(1);
        let stamp = format!("{now_ms:x}-{:x}", self.serial);
        let mac = self.mac(&stamp, source);
        format!("{stamp}.{mac}")
    }

    fn issued_at(&self, nonce: &str, source: IpAddr) -> Option<u64> {
        let (stamp, mac) = nonce.split_once('.')?;
        let good = self.mac(stamp, source);
        let (ms, _) = stamp.split_once('-')?;
        same(good.as_bytes(), mac.as_bytes()).then(|| u64::from_str_radix(ms, 16).ok())?
    }

    /// Checks `c` (RFC 3261 §22.4, RFC 7616 §3.4) for the request `check`
    /// describes. `ha1_for` gives the user's stored HA1 per algorithm; a user
    /// without one (unknown) is checked against a made-up HA1, so the answer
    /// and the time it takes do not tell who exists.
    pub fn verify(
        &mut self,
        check: Check<'_>,
        c: &Credentials,
        ha1_for: impl Fn(Algorithm) -> Option<String>,
    ) -> Verdict {
        let Some(algorithm) = Algorithm::parse(&c.algorithm).filter(|a| check.allowed.contains(a))
        else {
            return Verdict::Refused(Refusal::Algorithm);
        };
        let nc = match (&c.qop, &c.nc, &c.cnonce) {
            (Some(qop), Some(nc), Some(_)) if qop.eq_ignore_ascii_case("auth") => {
                match u32::from_str_radix(nc, 16) {
                    Ok(n) if nc.len() == 8 && n > 0 => n,
                    _ => return Verdict::Refused(Refusal::NoQop),
                }
            }
            _ => return Verdict::Refused(Refusal::NoQop),
        };
        if !same_uri(&c.uri, check.request_uri) {
            return Verdict::Refused(Refusal::Uri);
        }
        let Some(issued) = self.issued_at(&c.nonce, check.source) else {
            return Verdict::UnknownNonce;
        };
        let known = ha1_for(algorithm);
        let ha1 = known
            .clone()
            .unwrap_or_else(|| algorithm.hash(&format!("{}:{}", self.secret, c.username)));
        let expected = expected_response(algorithm, &ha1, check.method, c);
        if !same(expected.as_bytes(), c.response.as_bytes()) || known.is_none() {
            return Verdict::Refused(Refusal::Password);
        }
        if check.now_ms.saturating_sub(issued) > self.lifetime_ms {
            return Verdict::Stale;
        }
        match self.used.get(&c.nonce) {
            Some((last, _)) if nc <= *last => return Verdict::Stale,
            _ => {}
        }
        if self.used.len() >= 1024 {
            let (now, life) = (check.now_ms, self.lifetime_ms);
            self.used
                .retain(|_, (_, at)| now.saturating_sub(*at) <= life);
        }
        self.used.insert(c.nonce.clone(), (nc, issued));
        Verdict::Ok
    }

    /// `WWW-Authenticate` values for `source`, one per algorithm in the
    /// order given (the most preferred first, RFC 8760 §2.4).
    pub fn challenges(
        &mut self,
        now_ms: u64,
        source: IpAddr,
        realm: &str,
        stale: bool,
        order: &[Algorithm],
    ) -> Vec<String> {
        let nonce = self.issue(now_ms, source);
        let stale = if stale { ", stale=true" } else { "" };
        order
            .iter()
            .map(|a| {
                format!(
                    "Digest realm=\"{realm}\", nonce=\"{nonce}\", algorithm={}, qop=\"auth\"{stale}",
                    a.name()
                )
            })
            .collect()
    }
}

/// Equal bytes, compared in a time that depends on the length only.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The digest `uri` names the Request-URI: the same text, or the same URI
/// once both are parsed (a client may write it with other spacing or case
/// in the scheme and host).
fn same_uri(digest_uri: &str, request_uri: &str) -> bool {
    if digest_uri == request_uri {
        return true;
    }
    match (
        rsip::Uri::try_from(digest_uri),
        rsip::Uri::try_from(request_uri),
    ) {
        (Ok(a), Ok(b)) => a.to_string().eq_ignore_ascii_case(&b.to_string()),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The client side answers RFC 7616's own challenges with its responses.
    #[test]
    fn a_client_answers_the_rfc_7616_challenges_with_the_rfc_responses() {
        let cnonce = "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ";
        for (algorithm, response) in [
            ("MD5", "8ca523f5e9506fed4657c9700eebdbec"),
            (
                "SHA-256",
                "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1",
            ),
        ] {
            let header = format!(
                "Digest realm=\"http-auth@example.org\", qop=\"auth, auth-int\", algorithm={algorithm}, nonce=\"7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v\", opaque=\"FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS\""
            );
            let ch = parse_challenge(&header).unwrap();
            assert!(ch.qop_auth);
            let value = authorization(
                &ch,
                "Mufasa",
                "Circle of Life",
                "GET",
                "/dir/index.html",
                cnonce,
            );
            let c = parse_authorization(&value).unwrap();
            assert_eq!(c.response, response, "{value}");
            assert!(value.contains("opaque=\"FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS\""));
        }
        // No qop offered: the RFC 2069 form; unknown algorithms refused.
        let ch = parse_challenge("Digest realm=\"gw\", nonce=\"abc\"").unwrap();
        let value = authorization(&ch, "hotline", "secret", "INVITE", "sip:1@gw", "x");
        assert!(
            !value.contains("qop") && value.contains("algorithm=MD5"),
            "{value}"
        );
        assert!(
            parse_challenge("Digest realm=\"gw\", nonce=\"abc\", algorithm=SHA-512-256").is_none()
        );
        assert!(parse_challenge("Basic realm=\"gw\"").is_none());
    }

    /// RFC 7616 §3.9.1: the same exchange with MD5 and with SHA-256.
    fn rfc7616(algorithm: &str, response: &str) -> Credentials {
        Credentials {
            username: "Mufasa".into(),
            realm: "http-auth@example.org".into(),
            nonce: "7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v".into(),
            uri: "/dir/index.html".into(),
            response: response.into(),
            algorithm: algorithm.into(),
            qop: Some("auth".into()),
            nc: Some("00000001".into()),
            cnonce: Some("f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ".into()),
        }
    }

    #[test]
    fn responses_match_rfc_7616_for_md5_and_sha256() {
        for (alg, a, expected) in [
            ("MD5", Algorithm::Md5, "8ca523f5e9506fed4657c9700eebdbec"),
            (
                "SHA-256",
                Algorithm::Sha256,
                "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1",
            ),
        ] {
            let c = rfc7616(alg, expected);
            let h = ha1(a, "Mufasa", "http-auth@example.org", "Circle of Life");
            assert_eq!(expected_response(a, &h, "GET", &c), expected, "{alg}");
        }
    }

    #[test]
    fn authorization_headers_parse_with_quotes_and_spacing() {
        let c = parse_authorization(
            "Digest username=\"2001\",realm=\"hotline\", nonce=\"abc.def\", uri=\"sip:127.0.0.1:5060\", \
             response=\"ABCDEF\", algorithm=SHA-256, qop=auth, nc=00000001, cnonce=\"x,y\"",
        )
        .unwrap();
        assert_eq!(c.username, "2001");
        assert_eq!(c.algorithm, "SHA-256");
        assert_eq!(c.response, "abcdef");
        assert_eq!(c.cnonce.as_deref(), Some("x,y"));
        assert_eq!(c.qop.as_deref(), Some("auth"));
        assert!(parse_authorization("Basic dXNlcjpwYXNz").is_none());
        assert!(parse_authorization("Digest username=\"a\"").is_none());
    }

    const HERE: &str = "127.0.0.1";

    fn check<'a>(now_ms: u64, method: &'a str, uri: &'a str) -> Check<'a> {
        Check {
            now_ms,
            source: HERE.parse().unwrap(),
            method,
            request_uri: uri,
            allowed: &[Algorithm::Sha256],
        }
    }

    fn signed(
        nonces: &mut Nonces,
        nc: &str,
        method: &str,
        uri: &str,
        password: &str,
    ) -> Credentials {
        let mut c = Credentials {
            username: "2001".into(),
            realm: "hotline".into(),
            nonce: nonces.issue(1_000, HERE.parse().unwrap()),
            uri: uri.into(),
            algorithm: "SHA-256".into(),
            qop: Some("auth".into()),
            nc: Some(nc.into()),
            cnonce: Some("c0ffee".into()),
            ..Default::default()
        };
        let h = ha1(Algorithm::Sha256, "2001", "hotline", password);
        c.response = expected_response(Algorithm::Sha256, &h, method, &c);
        c
    }

    fn stored(a: Algorithm) -> Option<String> {
        (a == Algorithm::Sha256).then(|| ha1(a, "2001", "hotline", "secret"))
    }

    #[test]
    fn nonces_are_checked_and_go_stale() {
        let mut nonces = Nonces::new(42, 60_000);
        let uri = "sip:127.0.0.1:5060";
        let c = signed(&mut nonces, "00000001", "REGISTER", uri, "secret");
        assert_eq!(
            nonces.verify(check(2_000, "REGISTER", uri), &c, stored),
            Verdict::Ok
        );
        let later = signed(&mut nonces, "00000002", "REGISTER", uri, "secret");
        assert_eq!(
            nonces.verify(check(70_000, "REGISTER", uri), &later, stored),
            Verdict::Stale
        );
        // Another process's (or a forged) nonce.
        let mut other = Nonces::new(43, 60_000);
        let forged = Credentials {
            nonce: other.issue(1_000, HERE.parse().unwrap()),
            ..c.clone()
        };
        assert_eq!(
            nonces.verify(check(2_000, "REGISTER", uri), &forged, stored),
            Verdict::UnknownNonce
        );
        // A wrong method, a wrong password.
        let c2 = signed(&mut nonces, "00000002", "REGISTER", uri, "secret");
        assert_eq!(
            nonces.verify(check(2_000, "INVITE", uri), &c2, stored),
            Verdict::Refused(Refusal::Password)
        );
        let wrong = signed(&mut nonces, "00000003", "REGISTER", uri, "guess");
        assert_eq!(
            nonces.verify(check(2_000, "REGISTER", uri), &wrong, stored),
            Verdict::Refused(Refusal::Password)
        );
    }

    #[test]
    fn a_captured_answer_cannot_be_used_again_elsewhere_or_on_another_uri() {
        let mut nonces = Nonces::new(7, 60_000);
        let uri = "sip:*1@127.0.0.1:5060";
        let c = signed(&mut nonces, "00000001", "INVITE", uri, "secret");
        assert_eq!(
            nonces.verify(check(2_000, "INVITE", uri), &c, stored),
            Verdict::Ok
        );
        // The same nc again is a replay.
        assert_eq!(
            nonces.verify(check(3_000, "INVITE", uri), &c, stored),
            Verdict::Stale
        );
        // A higher nc on the same nonce is the phone's next request.
        let next = signed(&mut nonces, "00000002", "INVITE", uri, "secret");
        assert_eq!(
            nonces.verify(check(3_000, "INVITE", uri), &next, stored),
            Verdict::Ok
        );
        // Sent from another address: the nonce was not issued there.
        let elsewhere = Check {
            source: "127.0.0.2".parse().unwrap(),
            ..check(3_000, "INVITE", uri)
        };
        let third = signed(&mut nonces, "00000003", "INVITE", uri, "secret");
        assert_eq!(
            nonces.verify(elsewhere, &third, stored),
            Verdict::UnknownNonce
        );
        // The same Authorization on another Request-URI (*1 -> *3).
        assert_eq!(
            nonces.verify(
                check(3_000, "INVITE", "sip:*3@127.0.0.1:5060"),
                &third,
                stored
            ),
            Verdict::Refused(Refusal::Uri)
        );
    }

    #[test]
    fn only_offered_algorithms_and_qop_auth_are_accepted() {
        let mut nonces = Nonces::new(9, 60_000);
        let uri = "sip:127.0.0.1";
        let mut md5 = signed(&mut nonces, "00000001", "REGISTER", uri, "secret");
        md5.algorithm = "MD5".into();
        let h = ha1(Algorithm::Md5, "2001", "hotline", "secret");
        md5.response = expected_response(Algorithm::Md5, &h, "REGISTER", &md5);
        let both = |a: Algorithm| Some(ha1(a, "2001", "hotline", "secret"));
        assert_eq!(
            nonces.verify(check(2_000, "REGISTER", uri), &md5, both),
            Verdict::Refused(Refusal::Algorithm)
        );
        let mut no_qop = signed(&mut nonces, "00000001", "REGISTER", uri, "secret");
        no_qop.qop = None;
        no_qop.nc = None;
        no_qop.cnonce = None;
        let h = ha1(Algorithm::Sha256, "2001", "hotline", "secret");
        no_qop.response = expected_response(Algorithm::Sha256, &h, "REGISTER", &no_qop);
        assert_eq!(
            nonces.verify(check(2_000, "REGISTER", uri), &no_qop, stored),
            Verdict::Refused(Refusal::NoQop)
        );
    }

    #[test]
    fn an_unknown_user_is_refused_like_a_wrong_password() {
        let mut nonces = Nonces::new(11, 60_000);
        let uri = "sip:127.0.0.1";
        let mut c = signed(&mut nonces, "00000001", "REGISTER", uri, "secret");
        c.username = "1999".into();
        assert_eq!(
            nonces.verify(check(2_000, "REGISTER", uri), &c, |_| None),
            Verdict::Refused(Refusal::Password)
        );
        // Challenges: one per algorithm, most preferred first.
        let [first, second] = <[String; 2]>::try_from(nonces.challenges(
            5,
            HERE.parse().unwrap(),
            "hotline",
            true,
            &[Algorithm::Sha256, Algorithm::Md5],
        ))
        .unwrap();
        assert!(first.contains("algorithm=SHA-256") && first.ends_with("stale=true"));
        assert!(second.contains("algorithm=MD5"));
    }
}
