//! The operator's Prometheus endpoint: `GET /metrics` answers the latest metrics text, any
//! other path 404. A request line and headers are read up to 8 KiB and 5 seconds; one
//! connection at a time (a scraper every few seconds is the whole load).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Serves `metrics` on `listener` until the process ends.
pub fn serve(listener: TcpListener, metrics: Arc<Mutex<String>>) {
    for stream in listener.incoming().flatten() {
        let _ = answer(stream, &metrics);
    }
}

fn answer(mut stream: TcpStream, metrics: &Mutex<String>) -> std::io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    let mut reader = BufReader::new(stream.try_clone()?.take(8192));
    let mut request = String::new();
    reader.read_line(&mut request)?;
    loop {
        let mut header = String::new();
        if reader.read_line(&mut header)? == 0 || header.trim().is_empty() {
            break;
        }
    }
    let path = request.split_whitespace().nth(1).unwrap_or("");
    let (status, body) = if request.starts_with("GET ") && path == "/metrics" {
        let text = metrics.lock().unwrap_or_else(|e| e.into_inner()).clone();
        ("200 OK", text)
    } else {
        ("404 Not Found", "not found: GET /metrics\n".to_string())
    };
    write!(
        stream,
        "HTTP/1.1 {status}\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
}
