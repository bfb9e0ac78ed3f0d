//! Connections over real TCP: clients that connect and never send a request (or only half a
//! head, or stay idle after one) are closed after the header timeout, other clients are served
//! meanwhile, and the connection cap holds however many connect. The timeout is set short for
//! the test (`--header-timeout`); every time bound is generous, and the only lower bound is
//! one a timer cannot beat (closed no sooner than the timeout).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use crate::support::project::Project;
use crate::support::server::{free_port, Db, Kind, Server};

crate::on_both_stores!(
    idle_connections_are_closed_after_the_header_timeout_while_others_are_served,
    the_connection_cap_holds_and_waiting_clients_are_served_when_slots_free,
);

/// Generous: how long anything here may take on a busy machine.
const BOUND: Duration = Duration::from_secs(60);

fn connect(server: &Server) -> TcpStream {
    let stream = TcpStream::connect(server.url.trim_start_matches("http://")).unwrap();
    stream.set_read_timeout(Some(BOUND)).unwrap();
    stream
}

/// Reads until the server closes the connection (EOF or reset); panics after [`BOUND`].
fn wait_closed(stream: &mut TcpStream) {
    let mut buf = [0u8; 4096];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return,
            Ok(_) => continue,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return,
            Err(e) => panic!("the server did not close an idle connection: {e}"),
        }
    }
}

fn served(server: &Server) -> u16 {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(BOUND))
        .build()
        .into();
    let mut response = agent
        .get(&format!("{}/api/v1/openapi.json", server.url))
        .call()
        .unwrap();
    let _ = response.body_mut().read_to_string();
    response.status().as_u16()
}

fn idle_connections_are_closed_after_the_header_timeout_while_others_are_served(kind: Kind) {
    let p = Project::new(&format!("serve-idle-{kind:?}"), "");
    let args = ["--header-timeout", "1s"];
    let server = Server::start_with(&p.dir, &Db::new(kind, &p.dir), free_port(), &args);
    let start = Instant::now();
    let mut idle: Vec<TcpStream> = (0..250).map(|_| connect(&server)).collect();
    // Half a head, and a connection kept alive after one answered request.
    let mut half = connect(&server);
    half.write_all(b"GET /login HTTP/1.1\r\nHost: x\r\n")
        .unwrap();
    let mut kept = connect(&server);
    kept.write_all(b"GET /login HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    while !String::from_utf8_lossy(&answer).contains("</html>") {
        let n = kept.read(&mut buf).unwrap();
        assert!(n > 0, "closed before the answer");
        answer.extend_from_slice(&buf[..n]);
    }
    // With 252 idle connections open, another client is answered.
    assert_eq!(served(&server), 200);
    idle.push(half);
    idle.push(kept);
    for stream in &mut idle {
        wait_closed(stream);
    }
    let took = start.elapsed();
    assert!(
        took >= Duration::from_millis(900),
        "closed by the timeout, not at once: {took:?}"
    );
    assert!(took < BOUND, "{took:?}");
    assert_eq!(served(&server), 200, "still serving");
}

/// Open file descriptors of process `pid`.
fn open_files(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .count()
}

fn the_connection_cap_holds_and_waiting_clients_are_served_when_slots_free(kind: Kind) {
    let p = Project::new(&format!("serve-cap-{kind:?}"), "");
    let args = ["--header-timeout", "2s", "--max-connections", "16"];
    let server = Server::start_with(&p.dir, &Db::new(kind, &p.dir), free_port(), &args);
    assert_eq!(served(&server), 200);
    std::thread::sleep(Duration::from_millis(200));
    let before = open_files(server.pid());
    let idle: Vec<TcpStream> = (0..40).map(|_| connect(&server)).collect();
    std::thread::sleep(Duration::from_millis(300));
    let during = open_files(server.pid());
    assert!(
        during <= before + 16 + 2,
        "at most 16 connections accepted: {before} files before, {during} with 40 clients"
    );
    // The 41st client waits in the backlog and is answered once idle ones have timed out.
    let start = Instant::now();
    assert_eq!(served(&server), 200);
    assert!(start.elapsed() < BOUND);
    drop(idle);
}
