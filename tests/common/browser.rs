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
}
