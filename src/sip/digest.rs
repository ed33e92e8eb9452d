//! Digest authentication for agents' softphones (RFC 3261 §22, RFC 7616's
//! computation, RFC 8760's SHA-256 for SIP), server side, sans-IO.
//!
//! Credentials are kept as HA1 = H(username:realm:password) per algorithm,
//! never as passwords. Nonces are stateless: the time they were issued and
//! a keyed hash of it, so any nonce this process issued can be checked (and
//! found stale) without a table.

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
#[derive(Debug, Clone)]
pub struct Nonces {
    secret: String,
    /// A nonce older than this is stale (the client retries with a new one).
    lifetime_ms: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Ok,
    /// Right password, old nonce: challenge again with stale=true.
    Stale,
    /// A nonce we did not issue (another process, a restart): challenge again.
    UnknownNonce,
    /// Wrong password or unknown user.
    Refused,
}

impl Nonces {
    pub fn new(secret: u64, lifetime_ms: u64) -> Self {
        Self {
            secret: format!("{secret:x}"),
            lifetime_ms,
        }
    }

    /// A nonce for `now_ms` (a clock value of the caller's choosing).
    pub fn issue(&self, now_ms: u64) -> String {
        let stamp = format!("{now_ms:x}");
        let mac = Algorithm::Sha256.hash(&format!("{}:{stamp}", self.secret));
        format!("{stamp}.{}", &mac[..32])
    }

    fn issued_at(&self, nonce: &str) -> Option<u64> {
        let (stamp, mac) = nonce.split_once('.')?;
        let good = Algorithm::Sha256.hash(&format!("{}:{stamp}", self.secret));
        (good.get(..32) == Some(mac)).then(|| u64::from_str_radix(stamp, 16).ok())?
    }

    /// Checks `c` against the stored HA1s (MD5, SHA-256) for `method`.
    pub fn verify(
        &self,
        now_ms: u64,
        method: &str,
        c: &Credentials,
        ha1_for: impl Fn(Algorithm) -> Option<String>,
    ) -> Verdict {
        let Some(algorithm) = Algorithm::parse(&c.algorithm) else {
            return Verdict::Refused;
        };
        let Some(issued) = self.issued_at(&c.nonce) else {
            return Verdict::UnknownNonce;
        };
        let Some(ha1) = ha1_for(algorithm) else {
            return Verdict::Refused;
        };
        if expected_response(algorithm, &ha1, method, c) != c.response {
            return Verdict::Refused;
        }
        if now_ms.saturating_sub(issued) > self.lifetime_ms {
            return Verdict::Stale;
        }
        Verdict::Ok
    }

    /// `WWW-Authenticate` values, one per algorithm in the order given (the
    /// most preferred first, RFC 8760 §2.4).
    pub fn challenges(
        &self,
        now_ms: u64,
        realm: &str,
        stale: bool,
        order: &[Algorithm],
    ) -> Vec<String> {
        let nonce = self.issue(now_ms);
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

    #[test]
    fn nonces_are_checked_and_go_stale() {
        let nonces = Nonces::new(42, 300_000);
        let h = ha1(Algorithm::Sha256, "2001", "hotline", "secret");
        let mut c = Credentials {
            username: "2001".into(),
            realm: "hotline".into(),
            nonce: nonces.issue(1_000),
            uri: "sip:hotline".into(),
            algorithm: "SHA-256".into(),
            ..Default::default()
        };
        c.response = expected_response(Algorithm::Sha256, &h, "REGISTER", &c);
        let lookup = |a: Algorithm| (a == Algorithm::Sha256).then(|| h.clone());
        assert_eq!(nonces.verify(2_000, "REGISTER", &c, lookup), Verdict::Ok);
        assert_eq!(
            nonces.verify(400_000, "REGISTER", &c, lookup),
            Verdict::Stale
        );
        // Another process's (or a forged) nonce, a wrong method, a wrong password.
        let other = Nonces::new(43, 300_000);
        let forged = Credentials {
            nonce: other.issue(1_000),
            ..c.clone()
        };
        assert_eq!(
            nonces.verify(2_000, "REGISTER", &forged, lookup),
            Verdict::UnknownNonce
        );
        assert_eq!(nonces.verify(2_000, "INVITE", &c, lookup), Verdict::Refused);
        let wrong = ha1(Algorithm::Sha256, "2001", "hotline", "guess");
        assert_eq!(
            nonces.verify(2_000, "REGISTER", &c, |_| Some(wrong.clone())),
            Verdict::Refused
        );
        // MD5 asked for but only SHA-256 stored.
        let md5 = Credentials {
            algorithm: "MD5".into(),
            ..c.clone()
        };
        assert_eq!(
            nonces.verify(2_000, "REGISTER", &md5, lookup),
            Verdict::Refused
        );
        let [first, second] = <[String; 2]>::try_from(nonces.challenges(
            5,
            "hotline",
            true,
            &[Algorithm::Sha256, Algorithm::Md5],
        ))
        .unwrap();
        assert!(first.contains("algorithm=SHA-256") && first.ends_with("stale=true"));
        assert!(second.contains("algorithm=MD5"));
    }
}
