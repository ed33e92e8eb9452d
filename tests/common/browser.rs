//! Headless Chromium (Debian's `chromium`) driven through ChromeDriver
//! (`chromium-driver`) over the W3C WebDriver protocol: JSON over HTTP on
//! loopback, with the harness's own HTTP client. Both are killed on drop.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

pub struct Browser {
    driver: Child,
    port: u16,
    session: String,
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.call("DELETE", &format!("/session/{}", self.session), None);
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

impl Browser {
    /// Starts ChromeDriver on `port` and a headless Chromium session with a
    /// fresh profile in `dir`.
    pub fn start(dir: &Path, port: u16) -> Self {
        let driver = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver (Debian package chromium-driver, installed by tests/run.sh)");
        let end = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < end, "chromedriver did not listen");
            std::thread::sleep(Duration::from_millis(50));
        }
        let profile = dir.join("chromium-profile");
        let mut b = Browser {
            driver,
            port,
            session: String::new(),
        };
        // Flags: headless, root in CI, and no background traffic to the
        // closed network.
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": "/usr/bin/chromium",
                "args": [
                    "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                    "--disable-quic", "--no-first-run", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync",
                    format!("--user-data-dir={}", profile.display()),
                ]
            }
        }}});
        let v = b
            .call("POST", "/session", Some(caps))
            .expect("a browser session");
        b.session = v["sessionId"].as_str().expect("session id").to_string();
        b
    }

    fn call(&self, method: &str, path: &str, body: Option<Value>) -> Result<Value, String> {
        let body = body.map(|b| b.to_string());
        let (status, reply) = super::http(self.port, method, path, None, body.as_deref());
        let v: Value = serde_json::from_str(&reply).map_err(|e| format!("{e}: {reply}"))?;
        if status >= 400 {
            return Err(format!("{method} {path}: {status} {}", v["value"]));
        }
        Ok(v["value"].clone())
    }

    fn session(&self, method: &str, path: &str, body: Option<Value>) -> Result<Value, String> {
        self.call(method, &format!("/session/{}{path}", self.session), body)
    }

    pub fn goto(&self, url: &str) {
        self.session("POST", "/url", Some(json!({ "url": url })))
            .unwrap();
    }

    fn find(&self, css: &str) -> Result<String, String> {
        let v = self.session(
            "POST",
            "/element",
            Some(json!({"using": "css selector", "value": css})),
        )?;
        Ok(v[ELEMENT].as_str().ok_or("no element id")?.to_string())
    }

    pub fn type_into(&self, css: &str, text: &str) {
        let e = self.find(css).unwrap();
        self.session(
            "POST",
            &format!("/element/{e}/value"),
            Some(json!({ "text": text })),
        )
        .unwrap();
    }

    pub fn click(&self, css: &str) {
        let e = self.find(css).unwrap();
        self.session("POST", &format!("/element/{e}/click"), Some(json!({})))
            .unwrap();
    }

    /// Chooses the option with `value` in a select.
    pub fn select(&self, css: &str, value: &str) {
        self.click(&format!("{css} option[value=\"{value}\"]"));
    }

    /// The element's visible text ("" while it is hidden).
    pub fn text(&self, css: &str) -> String {
        self.find(css)
            .and_then(|e| self.session("GET", &format!("/element/{e}/text"), None))
            .map(|v| v.as_str().unwrap_or_default().to_string())
            .unwrap_or_default()
    }

    /// Waits until the element's visible text satisfies `want`; returns it.
    pub fn wait_text(&self, css: &str, within: Duration, want: impl Fn(&str) -> bool) -> String {
        let end = Instant::now() + within;
        loop {
            let t = self.text(css);
            if want(&t) {
                return t;
            }
            assert!(
                Instant::now() < end,
                "{css} never showed what was awaited; it shows {t:?}; the page: {}",
                self.text("body")
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Whether the element can be used (not a disabled button).
    pub fn enabled(&self, css: &str) -> bool {
        self.find(css)
            .and_then(|e| self.session("GET", &format!("/element/{e}/enabled"), None))
            .map(|v| v.as_bool().unwrap_or(false))
            .unwrap_or(false)
    }

    /// An attribute of the element (or a DOM property such as `checked`).
    pub fn attr(&self, css: &str, name: &str) -> String {
        self.find(css)
            .and_then(|e| self.session("GET", &format!("/element/{e}/property/{name}"), None))
            .map(|v| match v {
                Value::String(s) => s,
                Value::Null => String::new(),
                other => other.to_string(),
            })
            .unwrap_or_default()
    }

    /// The element's box on the page: x, y, width, height (CSS pixels).
    pub fn rect(&self, css: &str) -> (f64, f64, f64, f64) {
        let e = self.find(css).unwrap();
        let v = self
            .session("GET", &format!("/element/{e}/rect"), None)
            .unwrap();
        let f = |k: &str| v[k].as_f64().unwrap_or_default();
        (f("x"), f("y"), f("width"), f("height"))
    }

    /// Sets the window's size (the viewport follows).
    pub fn resize(&self, width: u32, height: u32) {
        self.session(
            "POST",
            "/window/rect",
            Some(json!({ "width": width, "height": height })),
        )
        .unwrap();
    }

    /// Writes a PNG of what the window shows to `path`; its size in bytes.
    pub fn screenshot(&self, path: &Path) -> usize {
        let v = self.session("GET", "/screenshot", None).unwrap();
        let png = base64_decode(v.as_str().expect("base64 PNG"));
        std::fs::write(path, &png).unwrap();
        png.len()
    }
}

/// Standard base64 (the screenshot's encoding), padding and whitespace
/// ignored.
fn base64_decode(text: &str) -> Vec<u8> {
    let value = |c: u8| match c {
        b'A'..=b'Z' => Some(c - b'A'),
        b'a'..=b'z' => Some(c - b'a' + 26),
        b'0'..=b'9' => Some(c - b'0' + 52),
        b'+' => Some(62),
        b'/' => Some(63),
        _ => None,
    };
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0u32);
    for v in text.bytes().filter_map(value) {
        acc = ((acc << 6) | v as u32) & 0xff_ffff;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    out
}
