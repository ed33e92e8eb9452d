//! SIP messages: framing, the header section and the checks RFC 3261 asks
//! for; rsip for the grammar of the Request-URI.
//!
//! The head is split here, once, into the start line and `(name, value)`
//! pairs kept as they came (in one string, with where each one is): the
//! hotline reads a handful of headers by name, so a typed tree of every
//! header (what rsip's message parser builds, and what its Display writes
//! back) would cost more than the call's whole signalling otherwise does.
//! Each rule below has a test:
//! * the body is cut at Content-Length, and over UDP a message without one
//!   keeps the rest of the datagram;
//! * compact header names (`i:`, `l:`, `v:` ...) are expanded;
//! * folded header lines (RFC 3261 §7.3.1) are unfolded;
//! * a request without CSeq (or Via, From, To, Call-ID) is refused: the
//!   mandatory headers are checked and extracted once into [`CoreHeaders`];
//! * a Request-URI rsip cannot parse is refused (an everyday one,
//!   `sip:user@host:port;name=value`, is checked without rsip, and a
//!   property test holds that check to rsip's grammar).
//!
//! Errors are typed; [`reject_reply`] turns one into the 400/416/501/505 a
//! peer should see, built from whatever headers could be read.

use bytes::Bytes;

/// Largest header section we accept; beyond it the message is refused.
pub const MAX_HEADER_BYTES: usize = 16 * 1024;
/// Largest body we accept (SDP and INFO bodies are a few hundred bytes).
pub const MAX_BODY_BYTES: usize = 64 * 1024;
/// Header lines per message; a flood of tiny headers is refused too.
pub const MAX_HEADER_LINES: usize = 128;

/// Why a message could not be accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("message is empty")]
    Empty,
    #[error("header section not terminated by an empty line")]
    Incomplete,
    #[error("datagram ends inside the header section")]
    Truncated,
    #[error("header section larger than {MAX_HEADER_BYTES} bytes")]
    HeadersTooLarge,
    #[error("more than {MAX_HEADER_LINES} header lines")]
    TooManyHeaders,
    #[error("body of {0} bytes is larger than {MAX_BODY_BYTES}")]
    BodyTooLarge(usize),
    #[error("header section is not valid UTF-8")]
    BadUtf8,
    #[error("malformed start line")]
    BadStartLine,
    #[error("unsupported SIP version {0:?}")]
    BadVersion(String),
    #[error("unknown method {0:?}")]
    UnknownMethod(String),
    #[error("unsupported URI scheme {0:?}")]
    UnsupportedScheme(String),
    #[error("malformed header line {0:?}")]
    BadHeaderLine(String),
    #[error("folded line without a header to continue")]
    BadFolding,
    #[error("missing mandatory header {0}")]
    MissingHeader(&'static str),
    #[error("invalid {0} header")]
    BadHeader(&'static str),
    #[error("Content-Length {declared} but only {available} bytes follow")]
    ShortBody { declared: usize, available: usize },
    #[error("{0} appears more than once")]
    DuplicateHeader(&'static str),
    #[error("CSeq method {cseq} does not match request method {method}")]
    CSeqMismatch { cseq: String, method: String },
    #[error("malformed Request-URI: {0}")]
    BadUri(String),
}

/// How the bytes arrived: a datagram is one message, a stream is framed by
/// Content-Length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    Datagram,
    Stream,
}

/// The headers every request and response must carry, extracted once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CoreHeaders {
    /// All Via header values in order (each may hold several comma-separated hops).
    pub vias: Vec<String>,
    /// `branch` parameter of the top Via (empty when the peer sent none).
    pub branch: String,
    /// `sent-by` of the top Via (`host[:port]`).
    pub sent_by: String,
    pub from: String,
    pub from_tag: Option<String>,
    pub to: String,
    pub to_tag: Option<String>,
    pub call_id: String,
    pub cseq: u32,
    pub cseq_method: String,
    /// The CSeq value as the peer wrote it, echoed in responses octet for
    /// octet (RFC 3261 §8.2.6.2).
    pub cseq_text: String,
}

/// A request as it came: its URI, its headers (unfolded, full names) and
/// its body. The method is the CSeq's (checked to be the same).
#[derive(Debug, Clone)]
pub struct Request {
    pub uri: String,
    headers: Headers,
    body: Vec<u8>,
    pub core: CoreHeaders,
    /// Where the request really came from when a trusted proxy forwarded
    /// it (its `X-Hotline-Source`); none: from where it arrived.
    pub origin: Option<std::net::SocketAddr>,
}

/// The header a trusted proxy names a request's real source in.
pub const SOURCE_HEADER: &str = "X-Hotline-Source";

/// `udp:192.0.2.7:5060` (Kamailio's `$pr:$si:$sp`; an IPv6 address bare
/// or in brackets) as an address; None when it is not one.
pub fn parse_source(value: &str) -> Option<std::net::SocketAddr> {
    let value = value.trim();
    let rest = ["udp:", "tcp:", "tls:", "ws:", "wss:", "sctp:"]
        .iter()
        .find_map(|p| {
            value
                .get(..p.len())
                .filter(|h| h.eq_ignore_ascii_case(p))
                .map(|_| &value[p.len()..])
        })
        .unwrap_or(value);
    let (ip, port) = rest.rsplit_once(':')?;
    let ip = ip.trim_start_matches('[').trim_end_matches(']');
    Some(std::net::SocketAddr::new(
        ip.parse().ok()?,
        port.parse().ok()?,
    ))
}

#[derive(Debug, Clone)]
pub struct Response {
    code: u16,
    headers: Headers,
    body: Vec<u8>,
    pub core: CoreHeaders,
}

#[derive(Debug, Clone)]
pub enum Message {
    Request(Request),
    Response(Response),
}

impl Request {
    pub fn body(&self) -> &[u8] {
        &self.body
    }
    /// Value of the first header with this (full, case-insensitive) name.
    pub fn header(&self, name: &str) -> Option<&str> {
        find(&self.headers, name)
    }

    /// Every value of the headers with this name, comma-separated lists
    /// split (for list headers such as Require).
    pub fn header_list<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.headers
            .iter()
            .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
            .flat_map(|(_, v)| v.split(','))
            .map(str::trim)
            .filter(|t| !t.is_empty())
    }

    /// The Record-Route values, in order (the dialog's route set).
    pub fn record_routes(&self) -> Vec<String> {
        record_routes(&self.headers)
    }
}

impl Response {
    pub fn code(&self) -> u16 {
        self.code
    }
    pub fn body(&self) -> &[u8] {
        &self.body
    }
    pub fn header(&self, name: &str) -> Option<&str> {
        find(&self.headers, name)
    }

    /// The Record-Route values, in order (the dialog's route set).
    pub fn record_routes(&self) -> Vec<String> {
        record_routes(&self.headers)
    }
}

/// The method of a request datagram, read from its request line alone
/// (leading CRLFs skipped); None for a response or anything unreadable.
/// For the edge's rate check, before the message is parsed.
pub fn request_method(buf: &[u8]) -> Option<&str> {
    let start = buf.iter().position(|b| *b != b'\r' && *b != b'\n')?;
    let line = &buf[start..];
    let end = line.iter().take(32).position(|b| *b == b' ')?;
    let method = std::str::from_utf8(&line[..end]).ok()?;
    (!method.starts_with("SIP/") && method.bytes().all(is_token_byte)).then_some(method)
}

/// Parses one message from a datagram (UDP). Leading CRLFs are skipped; a
/// datagram that holds nothing else is a keep-alive and yields `Empty`.
pub fn parse_datagram(buf: &[u8]) -> Result<Message, ParseError> {
    // A datagram is the whole message: a head without its end is broken, not early.
    let split = split_head(buf).map_err(|e| match e {
        ParseError::Incomplete => ParseError::Truncated,
        e => e,
    })?;
    let declared = split.content_length;
    let rest = &buf[split.body_start..];
    let body = match declared {
        Some(n) if n > rest.len() => {
            return Err(ParseError::ShortBody {
                declared: n,
                available: rest.len(),
            });
        }
        // Extra bytes after Content-Length are discarded (RFC 3261 §18.3).
        Some(n) => &rest[..n],
        None => rest,
    };
    if body.len() > MAX_BODY_BYTES {
        return Err(ParseError::BodyTooLarge(body.len()));
    }
    build(split, body)
}

/// Result of looking for one message at the start of a stream buffer.
// Returned once per message and consumed at once; boxing would allocate per message.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum Framed {
    /// Not enough bytes yet.
    NeedMore,
    /// `consumed` bytes (including skipped CRLF keep-alives) hold a message or
    /// a broken message. A broken head means the stream cannot be resynchronised.
    Message {
        consumed: usize,
        parsed: Result<Message, ParseError>,
    },
    /// The buffer held only CRLF keep-alives.
    KeepAlive { consumed: usize },
    /// The head is broken so the stream cannot be framed any further.
    Broken(ParseError),
}

/// Frames one message from the start of a stream (TCP) buffer.
pub fn frame_stream(buf: &[u8]) -> Framed {
    let lead = leading_crlf(buf);
    if lead == buf.len() {
        return if lead == 0 {
            Framed::NeedMore
        } else {
            Framed::KeepAlive { consumed: lead }
        };
    }
    let split = match split_head(buf) {
        Ok(s) => s,
        Err(ParseError::Incomplete) => {
            return if buf.len() - lead > MAX_HEADER_BYTES {
                Framed::Broken(ParseError::HeadersTooLarge)
            } else {
                Framed::NeedMore
            };
        }
        Err(e) => return Framed::Broken(e),
    };
    // A stream message without Content-Length has an empty body (RFC 3261 §18.3
    // makes the header mandatory on streams; a missing one cannot carry a body).
    let len = split.content_length.unwrap_or(0);
    if len > MAX_BODY_BYTES {
        return Framed::Broken(ParseError::BodyTooLarge(len));
    }
    let end = split.body_start + len;
    if buf.len() < end {
        return Framed::NeedMore;
    }
    let body = &buf[split.body_start..end];
    Framed::Message {
        consumed: end,
        parsed: build(split, body),
    }
}

fn leading_crlf(buf: &[u8]) -> usize {
    buf.iter()
        .take_while(|b| **b == b'\r' || **b == b'\n')
        .count()
}

/// The head of a message, unfolded and with full header names.
struct Head<'a> {
    start_line: &'a str,
    headers: Headers,
    content_length: Option<usize>,
    body_start: usize,
}

/// A message's header lines, unfolded and with full names, in the order
/// they came: one string holding every name and value, and where each one
/// is in it. Two allocations per message, not two per header line.
#[derive(Debug, Clone, Default)]
struct Headers {
    text: String,
    /// Per line: the name's start, the value's start and end in `text`
    /// (the name ends where the value starts).
    spans: Vec<[u32; 3]>,
}

impl Headers {
    fn with_capacity(bytes: usize) -> Self {
        Self {
            text: String::with_capacity(bytes),
            spans: Vec::with_capacity(16),
        }
    }

    fn len(&self) -> usize {
        self.spans.len()
    }

    fn push(&mut self, name: &str, value: &str) {
        let start = self.text.len() as u32;
        self.text.push_str(name);
        let value_start = self.text.len() as u32;
        self.text.push_str(value);
        self.spans
            .push([start, value_start, self.text.len() as u32]);
    }

    /// Continues the last line's value (a folded line); false when there
    /// is no line to continue.
    fn continue_last(&mut self, more: &str) -> bool {
        let Some(last) = self.spans.last_mut() else {
            return false;
        };
        // The last value ends the text: it grows in place.
        if last[2] > last[1] {
            self.text.push(' ');
        }
        self.text.push_str(more);
        last[2] = self.text.len() as u32;
        true
    }

    fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.spans.iter().map(|&[n, v, end]| {
            (
                &self.text[n as usize..v as usize],
                &self.text[v as usize..end as usize],
            )
        })
    }
}

fn split_head(buf: &[u8]) -> Result<Head<'_>, ParseError> {
    let lead = leading_crlf(buf);
    let buf_from = &buf[lead..];
    if buf_from.is_empty() {
        return Err(ParseError::Empty);
    }
    let (head_len, sep_len) =
        find_head_end(buf_from).ok_or(if buf_from.len() > MAX_HEADER_BYTES {
            ParseError::HeadersTooLarge
        } else {
            ParseError::Incomplete
        })?;
    if head_len > MAX_HEADER_BYTES {
        return Err(ParseError::HeadersTooLarge);
    }
    let head = std::str::from_utf8(&buf_from[..head_len]).map_err(|_| ParseError::BadUtf8)?;
    // The lines, found in one pass over the head (LWS is SP and HTAB,
    // RFC 3261 §25.1: only ASCII white space is trimmed).
    let mut line_start = 0;
    let mut ends = memchr::memchr_iter(b'\n', head.as_bytes()).chain(std::iter::once(head.len()));
    let mut lines = std::iter::from_fn(|| {
        let end = ends.next()?;
        let line = &head[line_start..end];
        line_start = end + 1;
        Some(line.strip_suffix('\r').unwrap_or(line))
    });
    let start_line = lines.next().unwrap_or_default().trim_ascii();
    if start_line.is_empty() {
        return Err(ParseError::BadStartLine);
    }
    let mut headers = Headers::with_capacity(head_len);
    for line in lines {
        if line.starts_with([' ', '\t']) {
            // RFC 3261 §7.3.1: a line starting with white space continues the previous one.
            if !headers.continue_last(line.trim_ascii()) {
                return Err(ParseError::BadFolding);
            }
            continue;
        }
        if headers.len() == MAX_HEADER_LINES {
            return Err(ParseError::TooManyHeaders);
        }
        let colon = memchr::memchr(b':', line.as_bytes())
            .ok_or_else(|| ParseError::BadHeaderLine(truncate(line)))?;
        let name = line[..colon].trim_ascii();
        if name.is_empty() || !name.bytes().all(is_token_byte) {
            return Err(ParseError::BadHeaderLine(truncate(line)));
        }
        headers.push(full_name(name), line[colon + 1..].trim_ascii());
    }
    // After the loop: a folded value is whole only now.
    let mut content_length = None;
    for (name, value) in headers.iter() {
        if name.eq_ignore_ascii_case("Content-Length") {
            let n: usize = value
                .parse()
                .map_err(|_| ParseError::BadHeader("Content-Length"))?;
            if content_length.is_some_and(|m| m != n) {
                return Err(ParseError::BadHeader("Content-Length"));
            }
            content_length = Some(n);
        }
    }
    Ok(Head {
        start_line,
        headers,
        content_length,
        body_start: lead + head_len + sep_len,
    })
}

/// Finds the empty line that ends the head: `\r\n\r\n`, or a bare `\n\n`
/// from lenient peers. Returns (length of head, length of separator).
fn find_head_end(buf: &[u8]) -> Option<(usize, usize)> {
    let limit = buf.len().min(MAX_HEADER_BYTES + 4);
    // From line end to line end (memchr: a head is a few hundred bytes
    // in some fifteen lines).
    for i in memchr::memchr_iter(b'\n', &buf[..limit]) {
        if buf.get(i + 1) == Some(&b'\n') {
            return Some((i, 2));
        }
        if buf.get(i + 1) == Some(&b'\r') && buf.get(i + 2) == Some(&b'\n') {
            // "\n\r\n": the head ends at i (the \r before i belongs to the last line).
            let head_end = if i > 0 && buf[i - 1] == b'\r' {
                i - 1
            } else {
                i
            };
            return Some((head_end, i + 3 - head_end));
        }
    }
    None
}

fn truncate(s: &str) -> String {
    s.chars().take(60).collect()
}

fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-.!%*_+`'~".contains(&b)
}

/// Expands compact header names (RFC 3261 §7.3.3 and later RFCs).
pub fn full_name(name: &str) -> &str {
    if name.len() != 1 {
        return name;
    }
    match name.as_bytes()[0].to_ascii_lowercase() {
        b'i' => "Call-ID",
        b'l' => "Content-Length",
        b'v' => "Via",
        b'f' => "From",
        b't' => "To",
        b'm' => "Contact",
        b'c' => "Content-Type",
        b'e' => "Content-Encoding",
        b'k' => "Supported",
        b's' => "Subject",
        b'o' => "Event",
        b'u' => "Allow-Events",
        b'r' => "Refer-To",
        b'b' => "Referred-By",
        b'x' => "Session-Expires",
        _ => name,
    }
}

const KNOWN_METHODS: [&str; 14] = [
    "ACK",
    "BYE",
    "CANCEL",
    "INFO",
    "INVITE",
    "MESSAGE",
    "NOTIFY",
    "OPTIONS",
    "PRACK",
    "PUBLISH",
    "REFER",
    "REGISTER",
    "SUBSCRIBE",
    "UPDATE",
];

fn build(head: Head, body: &[u8]) -> Result<Message, ParseError> {
    let mut parts = head.start_line.split(' ').filter(|p| !p.is_empty());
    if head.start_line.starts_with("SIP/") {
        let version = parts.next().unwrap_or_default();
        if version != "SIP/2.0" {
            return Err(ParseError::BadVersion(truncate(version)));
        }
        // Status-Code: three digits (RFC 3261 §25.1); the reason may be empty.
        let code = parts
            .next()
            .filter(|c| c.len() == 3 && c.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|c| c.parse::<u16>().ok())
            .filter(|c| (100..700).contains(c))
            .ok_or(ParseError::BadStartLine)?;
        let core = core_headers(&head.headers)?;
        return Ok(Message::Response(Response {
            code,
            headers: head.headers,
            body: body.to_vec(),
            core,
        }));
    }
    let (Some(method), Some(uri), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(ParseError::BadStartLine);
    };
    if !method.bytes().all(is_token_byte) {
        return Err(ParseError::BadStartLine);
    }
    if !version.eq_ignore_ascii_case("SIP/2.0") {
        return Err(ParseError::BadVersion(truncate(version)));
    }
    if !KNOWN_METHODS.contains(&method) {
        return Err(ParseError::UnknownMethod(truncate(method)));
    }
    let scheme = uri.split(':').next().unwrap_or_default();
    // tel: URIs would be welcome from gateways, but rsip 0.4 cannot parse them.
    if !["sip", "sips"]
        .iter()
        .any(|s| s.eq_ignore_ascii_case(scheme))
        || !uri.contains(':')
    {
        return Err(ParseError::UnsupportedScheme(truncate(scheme)));
    }
    if !plain_sip_uri(uri) {
        rsip::Uri::try_from(uri).map_err(|e| ParseError::BadUri(truncate(&e.to_string())))?;
    }
    let core = core_headers(&head.headers)?;
    if core.cseq_method != method {
        return Err(ParseError::CSeqMismatch {
            cseq: core.cseq_method.clone(),
            method: method.to_string(),
        });
    }
    Ok(Message::Request(Request {
        uri: uri.to_string(),
        headers: head.headers,
        body: body.to_vec(),
        core,
        origin: None,
    }))
}

/// A Request-URI of the everyday shape, `sip:user@host:port;name=value`
/// in plain characters (a host name or IPv4 address, a port up to 65535),
/// is checked here in one pass: rsip's grammar accepts every such URI (a
/// property test holds this to it), and parsing it with rsip is a quarter
/// of an INVITE's parse. Anything else goes to rsip.
fn plain_sip_uri(uri: &str) -> bool {
    fn word(s: &[u8], extra: &[u8]) -> bool {
        !s.is_empty()
            && s.iter()
                .all(|c| c.is_ascii_alphanumeric() || extra.contains(c))
    }
    let b = uri.as_bytes();
    let rest = match b.iter().position(|c| *c == b':') {
        Some(3) if b[..3].eq_ignore_ascii_case(b"sip") => &b[4..],
        Some(4) if b[..4].eq_ignore_ascii_case(b"sips") => &b[5..],
        _ => return false,
    };
    let rest = match rest.iter().position(|c| *c == b'@') {
        Some(i) if word(&rest[..i], b"-_.+*") => &rest[i + 1..],
        Some(_) => return false,
        None => rest,
    };
    let mut parts = rest.split(|c| *c == b';');
    let hostport = parts.next().unwrap_or_default();
    let host = match hostport.iter().position(|c| *c == b':') {
        Some(i) => {
            let port = &hostport[i + 1..];
            // 1 to 5 digits (no overflow), at most 65535.
            let digits = (1..=5).contains(&port.len()) && port.iter().all(u8::is_ascii_digit);
            let value = || port.iter().fold(0u32, |v, d| v * 10 + u32::from(d - b'0'));
            if !digits || value() > 65_535 {
                return false;
            }
            &hostport[..i]
        }
        None => hostport,
    };
    let label = |l: &[u8]| word(l, b"-") && l[0] != b'-' && l[l.len() - 1] != b'-';
    let params = parts.all(|p| match p.iter().position(|c| *c == b'=') {
        Some(i) => word(&p[..i], b"-_.") && word(&p[i + 1..], b"-_."),
        None => word(p, b"-_."),
    });
    !host.is_empty() && host.split(|c| *c == b'.').all(label) && params
}

fn find<'a>(headers: &'a Headers, name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v)
}

fn core_headers(headers: &Headers) -> Result<CoreHeaders, ParseError> {
    // One pass over the lines: each name compared once, not once for
    // every header looked for (nine passes before).
    const NAMES: [&str; 4] = ["From", "To", "Call-ID", "CSeq"];
    let mut vias: Vec<String> = Vec::new();
    let mut found: [Option<&str>; 4] = [None; 4];
    let mut twice: [bool; 4] = [false; 4];
    for (name, value) in headers.iter() {
        if name.eq_ignore_ascii_case("Via") {
            vias.push(value.to_string());
        } else if let Some(i) = NAMES.iter().position(|n| name.eq_ignore_ascii_case(n)) {
            twice[i] |= found[i].is_some();
            found[i].get_or_insert(value);
        }
    }
    let top = vias.first().ok_or(ParseError::MissingHeader("Via"))?;
    let top_hop = top.split(',').next().unwrap_or_default();
    let mut via_parts = top_hop.split(';');
    let protocol_and_host = via_parts.next().unwrap_or_default().trim();
    let sent_by = protocol_and_host
        .split_whitespace()
        .nth(1)
        .ok_or(ParseError::BadHeader("Via"))?
        .to_string();
    let branch = via_parts
        .filter_map(|p| p.trim().split_once('='))
        .find(|(k, _)| k.trim().eq_ignore_ascii_case("branch"))
        .map(|(_, v)| v.trim().to_string())
        .unwrap_or_default();
    // One of each: two Call-IDs (or From, To, CSeq) leave no way to tell
    // which dialog or transaction the request is for (RFC 3261 §20).
    if let Some(i) = twice.iter().position(|t| *t) {
        return Err(ParseError::DuplicateHeader(NAMES[i]));
    }
    let [from, to, call_id, cseq] = found;
    let from = from.ok_or(ParseError::MissingHeader("From"))?;
    let to = to.ok_or(ParseError::MissingHeader("To"))?;
    let call_id = call_id.ok_or(ParseError::MissingHeader("Call-ID"))?;
    if call_id.is_empty() {
        return Err(ParseError::BadHeader("Call-ID"));
    }
    let cseq = cseq.ok_or(ParseError::MissingHeader("CSeq"))?;
    let mut cseq_parts = cseq.split_whitespace();
    let (Some(number), Some(method), None) =
        (cseq_parts.next(), cseq_parts.next(), cseq_parts.next())
    else {
        return Err(ParseError::BadHeader("CSeq"));
    };
    // RFC 3261 §8.1.1.5: the number is below 2**31.
    let number: u32 = number
        .parse()
        .ok()
        .filter(|n| *n < 1 << 31)
        .ok_or(ParseError::BadHeader("CSeq"))?;
    Ok(CoreHeaders {
        branch,
        sent_by,
        vias,
        from: from.to_string(),
        from_tag: tag_param(from),
        to: to.to_string(),
        to_tag: tag_param(to),
        call_id: call_id.to_string(),
        cseq: number,
        cseq_method: method.to_string(),
        cseq_text: cseq.trim().to_string(),
    })
}

/// Marks the top Via with where the request really came from (RFC 3261
/// §18.2.1: `received` when the sent-by host is not that address; RFC 3581:
/// `rport` filled in when the client asked for it, and `received` then
/// always), so that responses find their way back through NAT.
pub fn stamp_via(core: &mut CoreHeaders, source: std::net::SocketAddr) {
    let Some(first) = core.vias.first_mut() else {
        return;
    };
    // The common case (a peer that names its own address, no rport) needs
    // nothing added: checked on slices, without allocating.
    {
        let top = first.split(',').next().unwrap_or_default();
        let mut parts = top.split(';');
        let sent_by = parts
            .next()
            .and_then(|p| p.split_whitespace().nth(1))
            .unwrap_or_default();
        let host = match sent_by.rsplit_once(':') {
            Some((h, port)) if port.bytes().all(|b| b.is_ascii_digit()) => h,
            _ => sent_by,
        };
        let rport = parts.any(|p| {
            let key = p.split('=').next().unwrap_or_default().trim();
            key.eq_ignore_ascii_case("rport") || key.eq_ignore_ascii_case("received")
        });
        let ip = source.ip();
        let same = host.trim_matches(['[', ']']).parse::<std::net::IpAddr>() == Ok(ip);
        if same && !rport {
            return;
        }
    }
    let (top, rest) = match first.split_once(',') {
        Some((t, r)) => (t.to_string(), Some(r.to_string())),
        None => (first.clone(), None),
    };
    let mut params: Vec<String> = top.split(';').map(|p| p.trim().to_string()).collect();
    let host = params[0]
        .split_whitespace()
        .nth(1)
        .unwrap_or_default()
        .rsplit_once(':')
        .map_or_else(
            || params[0].split_whitespace().nth(1).unwrap_or_default(),
            |(h, port)| {
                if port.bytes().all(|b| b.is_ascii_digit()) {
                    h
                } else {
                    ""
                }
            },
        )
        .trim_matches(['[', ']'])
        .to_string();
    let ip = source.ip().to_string();
    let mut asked_rport = false;
    params.retain(|p| {
        let key = p.split('=').next().unwrap_or_default().trim();
        if key.eq_ignore_ascii_case("rport") {
            asked_rport = true;
            return false;
        }
        !key.eq_ignore_ascii_case("received")
    });
    if asked_rport || host != ip {
        params.push(format!("received={ip}"));
    }
    if asked_rport {
        params.push(format!("rport={}", source.port()));
    }
    let mut top = params.join(";");
    if let Some(rest) = rest {
        top.push(',');
        top.push_str(&rest);
    }
    *first = top;
}

/// The `tag` parameter of a From/To value (outside any `<...>` URI).
pub fn tag_param(value: &str) -> Option<String> {
    tag_of(value).map(str::to_string)
}

/// The same, borrowed (for comparing without allocating).
pub fn tag_of(value: &str) -> Option<&str> {
    let params = match value.rfind('>') {
        Some(i) => &value[i + 1..],
        None => value,
    };
    params
        .split(';')
        .skip(1)
        .filter_map(|p| p.split_once('='))
        .find(|(k, _)| k.trim().eq_ignore_ascii_case("tag"))
        .map(|(_, v)| v.trim())
}

/// The URI inside a name-addr (`"Bob" <sip:bob@x>;tag=1`) or an addr-spec.
pub fn addr_uri(value: &str) -> &str {
    match (value.find('<'), value.find('>')) {
        (Some(a), Some(b)) if a < b => &value[a + 1..b],
        _ => value.split(';').next().unwrap_or(value).trim(),
    }
}

/// The Record-Route values of a message, in the order they appear (a UAS
/// keeps this order as its route set, a UAC reverses it).
fn record_routes(headers: &Headers) -> Vec<String> {
    headers
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case("Record-Route"))
        .map(|(_, v)| v.to_string())
        .collect()
}

/// Writes a response to `core`'s request: Via, From, To, Call-ID and CSeq
/// copied, a To tag added when given and missing, then `extra` headers and the body.
pub fn response(
    core: &CoreHeaders,
    code: u16,
    reason: &str,
    to_tag: Option<&str>,
    extra: &[(&str, &str)],
    body: &[u8],
) -> Bytes {
    use std::fmt::Write as _;
    let mut head = String::with_capacity(256 + core.vias.iter().map(String::len).sum::<usize>());
    let _ = write!(head, "SIP/2.0 {code} {reason}\r\n");
    for via in &core.vias {
        line(&mut head, "Via", via);
    }
    line(&mut head, "From", &core.from);
    head.push_str("To: ");
    head.push_str(&core.to);
    if let (Some(tag), None) = (to_tag, &core.to_tag) {
        head.push_str(";tag=");
        head.push_str(tag);
    }
    head.push_str("\r\n");
    line(&mut head, "Call-ID", &core.call_id);
    if core.cseq_text.is_empty() {
        let _ = write!(head, "CSeq: {} {}\r\n", core.cseq, core.cseq_method);
    } else {
        line(&mut head, "CSeq", &core.cseq_text);
    }
    for (name, value) in extra {
        line(&mut head, name, value);
    }
    let _ = write!(head, "Content-Length: {}\r\n\r\n", body.len());
    let mut bytes = head.into_bytes();
    bytes.extend_from_slice(body);
    Bytes::from(bytes)
}

fn line(head: &mut String, name: &str, value: &str) {
    head.push_str(name);
    head.push_str(": ");
    head.push_str(value);
    head.push_str("\r\n");
}

/// Best-effort error reply for bytes that failed to parse. `None` when the
/// message was a response (never answered) or too broken to address a reply.
pub fn reject_reply(buf: &[u8], error: &ParseError) -> Option<Bytes> {
    let (code, reason) = match error {
        ParseError::Empty | ParseError::Incomplete => return None,
        ParseError::UnknownMethod(_) => (501, "Not Implemented"),
        ParseError::UnsupportedScheme(_) => (416, "Unsupported URI Scheme"),
        ParseError::BadVersion(_) => (505, "Version Not Supported"),
        ParseError::HeadersTooLarge | ParseError::TooManyHeaders => {
            (494, "Request Header Fields Too Large")
        }
        ParseError::BodyTooLarge(_) => (413, "Request Entity Too Large"),
        _ => (400, "Bad Request"),
    };
    let text = String::from_utf8_lossy(&buf[..buf.len().min(MAX_HEADER_BYTES)]);
    let text = text.trim_start_matches(['\r', '\n']);
    if text.starts_with("SIP/") {
        return None;
    }
    // Collect what we can; Via is needed to address the reply.
    let mut vias = Vec::new();
    let grab = |name: &str| -> Option<String> {
        text.lines()
            .skip(1)
            .take_while(|l| !l.trim().is_empty())
            .filter_map(|l| l.split_once(':'))
            .find(|(n, _)| full_name(n.trim()).eq_ignore_ascii_case(name))
            .map(|(_, v)| v.trim().to_string())
    };
    let from = grab("From").unwrap_or_default();
    let to = grab("To").unwrap_or_default();
    let call_id = grab("Call-ID").unwrap_or_default();
    let cseq = grab("CSeq").unwrap_or_default();
    for l in text.lines().skip(1).take_while(|l| !l.trim().is_empty()) {
        if let Some((n, v)) = l.split_once(':')
            && full_name(n.trim()).eq_ignore_ascii_case("Via")
        {
            vias.push(v.trim().to_string());
        }
    }
    if vias.is_empty() {
        return None;
    }
    let method = text.split(' ').next().unwrap_or_default();
    if method == "ACK" {
        return None; // ACK is never answered.
    }
    let (cseq_num, cseq_method) = cseq.split_once(' ').unwrap_or(("0", method));
    let core = CoreHeaders {
        branch: String::new(),
        sent_by: String::new(),
        vias,
        from,
        from_tag: None,
        to_tag: tag_param(&to),
        to,
        call_id,
        cseq: cseq_num.trim().parse().unwrap_or(0),
        cseq_method: cseq_method.trim().chars().take(32).collect(),
        cseq_text: String::new(),
    };
    let warning = format!("399 hotline \"{}\"", error.to_string().replace('"', "'"));
    let allow = "INVITE, ACK, BYE, CANCEL, OPTIONS, INFO";
    let mut extra = vec![("Warning", warning.as_str())];
    if code == 501 {
        extra.push(("Allow", allow));
    }
    Some(response(&core, code, reason, Some("rejected"), &extra, b""))
}

#[cfg(test)]
mod tests {
    use super::*;

    const INVITE: &str = "INVITE sip:100@127.0.0.1 SIP/2.0\r\n\
Via: SIP/2.0/UDP 127.0.0.1:5061;branch=z9hG4bK-1\r\n\
From: <sip:alice@127.0.0.1>;tag=a1\r\n\
To: <sip:100@127.0.0.1>\r\n\
Call-ID: c1@127.0.0.1\r\n\
CSeq: 1 INVITE\r\n\
Contact: <sip:alice@127.0.0.1:5061>\r\n\
Max-Forwards: 70\r\n\
Content-Type: application/sdp\r\n\
Content-Length: 4\r\n\r\nv=0\n";

    fn request(text: &str) -> Request {
        match parse_datagram(text.as_bytes()).expect("parses") {
            Message::Request(r) => r,
            Message::Response(_) => panic!("not a request"),
        }
    }

    #[test]
    fn body_is_cut_at_content_length() {
        let text = format!("{INVITE}trailing garbage");
        assert_eq!(request(&text).body(), b"v=0\n");
    }

    #[test]
    fn datagram_without_content_length_keeps_rest_as_body() {
        let text = INVITE.replace("Content-Length: 4\r\n", "");
        let text = format!("{text}more");
        assert_eq!(request(&text).body(), b"v=0\nmore");
    }

    #[test]
    fn content_length_beyond_datagram_is_rejected() {
        let text = INVITE.replace("Content-Length: 4", "Content-Length: 40");
        assert_eq!(
            parse_datagram(text.as_bytes()).unwrap_err(),
            ParseError::ShortBody {
                declared: 40,
                available: 4
            }
        );
    }

    #[test]
    fn compact_headers_are_expanded() {
        let text = "INVITE sip:100@127.0.0.1 SIP/2.0\r\n\
v: SIP/2.0/UDP 127.0.0.1:5061;branch=z9hG4bK-2\r\n\
f: <sip:alice@127.0.0.1>;tag=a1\r\n\
t: <sip:100@127.0.0.1>\r\n\
i: compact@127.0.0.1\r\n\
CSeq: 7 INVITE\r\n\
m: <sip:alice@127.0.0.1:5061>\r\n\
c: application/sdp\r\n\
l: 0\r\n\r\n";
        let r = request(text);
        assert_eq!(r.core.call_id, "compact@127.0.0.1");
        assert_eq!(r.core.branch, "z9hG4bK-2");
        assert_eq!(r.core.cseq, 7);
        assert_eq!(r.header("Content-Type"), Some("application/sdp"));
        assert_eq!(r.header("Contact"), Some("<sip:alice@127.0.0.1:5061>"));
    }

    #[test]
    fn folded_header_lines_are_unfolded() {
        let text = INVITE.replace(
            "Call-ID: c1@127.0.0.1\r\n",
            "Call-ID:\r\n   folded@127.0.0.1\r\n",
        );
        let text = text.replace(
            "From: <sip:alice@127.0.0.1>;tag=a1",
            "From: \"Alice\"\r\n\t<sip:alice@127.0.0.1>\r\n ;tag=a1",
        );
        let r = request(&text);
        assert_eq!(r.core.call_id, "folded@127.0.0.1");
        assert_eq!(r.core.from_tag.as_deref(), Some("a1"));
    }

    #[test]
    fn request_without_cseq_is_rejected_with_400() {
        let text = INVITE.replace("CSeq: 1 INVITE\r\n", "");
        let err = parse_datagram(text.as_bytes()).unwrap_err();
        assert_eq!(err, ParseError::MissingHeader("CSeq"));
        let reply = reject_reply(text.as_bytes(), &err).expect("a reply");
        let reply = String::from_utf8(reply.to_vec()).unwrap();
        assert!(reply.starts_with("SIP/2.0 400 Bad Request\r\n"), "{reply}");
        assert!(reply.contains("Call-ID: c1@127.0.0.1"));
    }

    #[test]
    fn each_mandatory_header_is_checked() {
        for (line, name) in [
            (
                "Via: SIP/2.0/UDP 127.0.0.1:5061;branch=z9hG4bK-1\r\n",
                "Via",
            ),
            ("From: <sip:alice@127.0.0.1>;tag=a1\r\n", "From"),
            ("To: <sip:100@127.0.0.1>\r\n", "To"),
            ("Call-ID: c1@127.0.0.1\r\n", "Call-ID"),
        ] {
            let text = INVITE.replace(line, "");
            assert_eq!(
                parse_datagram(text.as_bytes()).unwrap_err(),
                ParseError::MissingHeader(name)
            );
        }
    }

    #[test]
    fn a_second_from_to_call_id_or_cseq_is_refused_whatever_its_form() {
        for (extra, name) in [
            ("From: <sip:mallory@127.0.0.1>;tag=m1\r\n", "From"),
            ("t: <sip:101@127.0.0.1>\r\n", "To"),
            ("i: other@127.0.0.1\r\n", "Call-ID"),
            ("cseq: 2 INVITE\r\n", "CSeq"),
        ] {
            let text = INVITE.replace("Max-Forwards", &format!("{extra}Max-Forwards"));
            assert_eq!(
                parse_datagram(text.as_bytes()).unwrap_err(),
                ParseError::DuplicateHeader(name),
                "{extra}"
            );
        }
        // Two at once: the first of From, To, Call-ID, CSeq is named, and
        // before a header that is missing.
        let text = INVITE
            .replace("From: <sip:alice@127.0.0.1>;tag=a1\r\n", "")
            .replace(
                "Max-Forwards",
                "CSeq: 3 INVITE\r\nCall-ID: x@y\r\nMax-Forwards",
            );
        assert_eq!(
            parse_datagram(text.as_bytes()).unwrap_err(),
            ParseError::DuplicateHeader("Call-ID")
        );
        // Several Vias are a path, not a duplicate.
        let text = INVITE.replace(
            "Max-Forwards",
            "Via: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bK-2\r\nMax-Forwards",
        );
        assert_eq!(request(&text).core.vias.len(), 2);
    }

    #[test]
    fn unknown_method_gets_501() {
        let text = INVITE
            .replace("INVITE sip", "FROB sip")
            .replace("1 INVITE", "1 FROB");
        let err = parse_datagram(text.as_bytes()).unwrap_err();
        let reply = reject_reply(text.as_bytes(), &err).unwrap();
        assert!(reply.starts_with(b"SIP/2.0 501 "));
    }

    #[test]
    fn a_broken_request_uri_or_status_code_is_refused() {
        for uri in ["sip:@", "sip:100@127.0.0.1:port"] {
            let text = INVITE.replace("INVITE sip:100@127.0.0.1", &format!("INVITE {uri}"));
            let err = parse_datagram(text.as_bytes()).unwrap_err();
            assert!(matches!(err, ParseError::BadUri(_)), "{uri}: {err:?}");
            let reply = reject_reply(text.as_bytes(), &err).unwrap();
            assert!(reply.starts_with(b"SIP/2.0 400 "), "{uri}");
        }
        let response = INVITE
            .replace("INVITE sip:100@127.0.0.1 SIP/2.0", "SIP/2.0 2x0 OK")
            .replace("To: <sip:100@127.0.0.1>", "To: <sip:100@127.0.0.1>;tag=t");
        for (line, ok) in [
            ("SIP/2.0 200 OK", true),
            ("SIP/2.0 2x0 OK", false),
            ("SIP/2.0 99 Hm", false),
            ("SIP/2.0 180 ", true),
        ] {
            let text = response.replace("SIP/2.0 2x0 OK", line);
            match parse_datagram(text.as_bytes()) {
                Ok(Message::Response(r)) => assert!(
                    ok && r.code() == line[8..11].parse::<u16>().unwrap(),
                    "{line}"
                ),
                Ok(_) => panic!("{line}: not a response"),
                Err(e) => assert!(!ok && e == ParseError::BadStartLine, "{line}: {e:?}"),
            }
        }
    }

    #[test]
    fn stream_framing_handles_split_and_joined_messages() {
        let two = format!("{INVITE}{INVITE}");
        let bytes = two.as_bytes();
        let Framed::Message { consumed, parsed } = frame_stream(bytes) else {
            panic!("first message")
        };
        assert_eq!(consumed, INVITE.len());
        assert!(parsed.is_ok());
        assert!(matches!(
            frame_stream(&bytes[consumed..consumed + 20]),
            Framed::NeedMore
        ));
        assert!(matches!(
            frame_stream(&bytes[consumed..bytes.len() - 1]),
            Framed::NeedMore
        ));
        assert!(matches!(
            frame_stream(&bytes[consumed..]),
            Framed::Message { consumed: c, parsed: Ok(_) } if c == INVITE.len()
        ));
        assert!(matches!(
            frame_stream(b"\r\n\r\n"),
            Framed::KeepAlive { consumed: 4 }
        ));
    }

    #[test]
    fn response_copies_dialog_headers_and_adds_tag() {
        let r = request(INVITE);
        let bytes = response(&r.core, 180, "Ringing", Some("t9"), &[], b"");
        let Message::Response(resp) = parse_datagram(&bytes).unwrap() else {
            panic!()
        };
        assert_eq!(resp.code(), 180);
        assert_eq!(resp.core.to_tag.as_deref(), Some("t9"));
        assert_eq!(resp.core.branch, "z9hG4bK-1");
        assert_eq!(resp.core.cseq_method, "INVITE");
    }

    #[test]
    fn the_top_via_learns_where_the_request_came_from() {
        let core = |via: &str| CoreHeaders {
            vias: vec![
                via.to_string(),
                "SIP/2.0/UDP proxy:5060;branch=z9hG4bK-p".into(),
            ],
            branch: String::new(),
            sent_by: String::new(),
            from: String::new(),
            from_tag: None,
            to: String::new(),
            to_tag: None,
            call_id: String::new(),
            cseq: 1,
            cseq_method: "OPTIONS".into(),
            cseq_text: String::new(),
        };
        let from: std::net::SocketAddr = "203.0.113.9:40000".parse().unwrap();
        let mut c = core("SIP/2.0/UDP 10.0.0.2:5060;branch=z9hG4bK-1;rport");
        stamp_via(&mut c, from);
        assert_eq!(
            c.vias[0],
            "SIP/2.0/UDP 10.0.0.2:5060;branch=z9hG4bK-1;received=203.0.113.9;rport=40000"
        );
        assert_eq!(c.vias[1], "SIP/2.0/UDP proxy:5060;branch=z9hG4bK-p");
        // Sent from where it says, without rport: nothing to add.
        let mut c = core("SIP/2.0/UDP 203.0.113.9:5060;branch=z9hG4bK-2");
        stamp_via(&mut c, from);
        assert_eq!(c.vias[0], "SIP/2.0/UDP 203.0.113.9:5060;branch=z9hG4bK-2");
        // A host name, and two hops in one header: the first one is stamped.
        let mut c = core("SIP/2.0/TCP phone.example;branch=z9hG4bK-3, SIP/2.0/UDP x;branch=y");
        stamp_via(&mut c, from);
        assert_eq!(
            c.vias[0],
            "SIP/2.0/TCP phone.example;branch=z9hG4bK-3;received=203.0.113.9, SIP/2.0/UDP x;branch=y"
        );
    }

    #[test]
    fn the_method_is_read_from_the_request_line_alone() {
        assert_eq!(request_method(INVITE.as_bytes()), Some("INVITE"));
        assert_eq!(
            request_method(b"\r\nREGISTER sip:x SIP/2.0\r\n"),
            Some("REGISTER")
        );
        assert_eq!(request_method(b"SIP/2.0 200 OK\r\n"), None);
        assert_eq!(request_method(b"\x00\xff garbage"), None);
        assert_eq!(
            request_method(b"NOSPACEATALLINTHEFIRSTTHIRTYTWOBYTES"),
            None
        );
        assert_eq!(request_method(b""), None);
    }

    mod plain_uris {
        use super::super::plain_sip_uri;
        use proptest::prelude::*;

        fn host() -> impl Strategy<Value = String> {
            prop_oneof![
                any::<[u8; 4]>().prop_map(|o| format!("{}.{}.{}.{}", o[0], o[1], o[2], o[3])),
                prop::collection::vec("[a-zA-Z0-9]([a-zA-Z0-9-]{0,6}[a-zA-Z0-9])?", 1..5)
                    .prop_map(|labels| labels.join(".")),
            ]
        }

        proptest! {
            /// Every URI of the shape the fast path takes is one rsip takes.
            #[test]
            fn rsip_accepts_every_uri_the_fast_path_accepts(
                scheme in "(sip|SIP|sips|Sips)",
                user in proptest::option::of("[A-Za-z0-9_.+*-]{1,16}"),
                host in host(),
                port in proptest::option::of(0u32..70_000),
                params in prop::collection::vec(
                    ("[a-zA-Z0-9_.-]{1,8}", proptest::option::of("[A-Za-z0-9_.-]{1,8}")),
                    0..4,
                ),
            ) {
                let mut uri = format!("{scheme}:");
                if let Some(u) = user {
                    uri.push_str(&u);
                    uri.push('@');
                }
                uri.push_str(&host);
                if let Some(p) = port {
                    uri.push_str(&format!(":{p}"));
                }
                for (name, value) in params {
                    uri.push(';');
                    uri.push_str(&name);
                    if let Some(v) = value {
                        uri.push('=');
                        uri.push_str(&v);
                    }
                }
                let plain = plain_sip_uri(&uri);
                prop_assert_eq!(plain, port.is_none_or(|p| p <= 65_535), "{}", uri);
                if plain {
                    prop_assert!(rsip::Uri::try_from(uri.as_str()).is_ok(), "{}", uri);
                }
            }

            /// Nor does any string at all slip past rsip through it.
            #[test]
            fn no_string_passes_the_fast_path_that_rsip_refuses(
                uri in "(sip|sips|tel|SIP):[a-z0-9@:;=.+*_%<>\\[\\] \"-]{0,24}",
            ) {
                if plain_sip_uri(&uri) {
                    prop_assert!(rsip::Uri::try_from(uri.as_str()).is_ok(), "{}", uri);
                }
            }
        }
    }
}
