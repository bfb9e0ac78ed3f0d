//! A real headless Chromium driven through chromedriver's W3C WebDriver protocol (plain JSON
//! over HTTP, so ureq is enough): open a page, run a script in it, take a screenshot.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

pub struct Browser {
    driver: Child,
    base: String,
    session: String,
}

fn call(method: &str, url: &str, body: Option<Value>) -> Value {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(60)))
        .build()
        .into();
    let response = match (method, body) {
        ("GET", _) => agent.get(url).call(),
        ("DELETE", _) => agent.delete(url).call(),
        (_, body) => agent
            .post(url)
            .content_type("application/json")
            .send(body.unwrap_or_else(|| json!({})).to_string().as_bytes()),
    };
    let text = response.unwrap().body_mut().read_to_string().unwrap();
    let value: Value = serde_json::from_str(&text).unwrap_or_else(|_| panic!("{url}: {text}"));
    if let Some(error) = value["value"].get("error") {
        panic!(
            "webdriver {method} {url}: {error}: {}",
            value["value"]["message"]
        );
    }
    value["value"].clone()
}

impl Browser {
    /// Starts chromedriver and a headless Chromium session; `None` when they are not installed.
    pub fn start() -> Option<Browser> {
        let port = super::server::free_port();
        let driver = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .ok()?;
        let base = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(20);
        while ureq::get(&format!("{base}/status")).call().is_err() {
            assert!(Instant::now() < deadline, "chromedriver did not start");
            std::thread::sleep(Duration::from_millis(100));
        }
        let session = call(
            "POST",
            &format!("{base}/session"),
            Some(json!({"capabilities": {"alwaysMatch": {
                "browserName": "chrome",
                "goog:chromeOptions": {
                    "binary": "/usr/bin/chromium",
                    "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1280,1000"]
                }
            }}})),
        );
        let session = session["sessionId"].as_str().unwrap().to_string();
        Some(Browser {
            driver,
            base,
            session,
        })
    }

    fn url(&self, path: &str) -> String {
        format!("{}/session/{}{path}", self.base, self.session)
    }

    /// Loads `url` and waits for it.
    pub fn goto(&self, url: &str) {
        call("POST", &self.url("/url"), Some(json!({"url": url})));
    }

    /// Runs `script` (a function body; `return …` gives the value) in the page.
    pub fn eval(&self, script: &str) -> Value {
        call(
            "POST",
            &self.url("/execute/sync"),
            Some(json!({"script": script, "args": []})),
        )
    }

    /// Polls `script` until it returns something truthy (or panics after `secs`).
    pub fn wait_for(&self, script: &str, secs: u64) -> Value {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            let value = self.eval(script);
            let truthy = !matches!(value, Value::Null | Value::Bool(false))
                && value != json!(0)
                && value != json!("");
            if truthy {
                return value;
            }
            assert!(Instant::now() < deadline, "timed out waiting for: {script}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// A PNG of the window.
    pub fn screenshot(&self) -> Vec<u8> {
        let encoded = call("GET", &self.url("/screenshot"), None);
        let text = encoded.as_str().unwrap();
        // Base64, decoded by hand: the tests need no crate for it.
        let table = |c: u8| match c {
            b'A'..=b'Z' => Some(c - b'A'),
            b'a'..=b'z' => Some(c - b'a' + 26),
            b'0'..=b'9' => Some(c - b'0' + 52),
            b'+' => Some(62),
            b'/' => Some(63),
            _ => None,
        };
        let mut out = Vec::new();
        let mut bits = 0u32;
        let mut count = 0;
        for value in text.bytes().filter_map(table) {
            bits = (bits << 6) | u32::from(value);
            count += 6;
            if count >= 8 {
                count -= 8;
                out.push((bits >> count) as u8);
            }
        }
        out
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = std::panic::catch_unwind(|| call("DELETE", &self.url(""), None));
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}
