//! Two nodes in one process (issue 21): nothing of a node is process-wide state (stop
//! level, heartbeats, connection counts, TLS, buffer pool, open directories, clock), so a
//! test (or a simulation) can run several, serve S3 on each, and stop them one at a time.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::Duration;

use granary::clock::Clock;
use granary::config::{ServerArgs, ServerConfig};
use granary::node::{start, Options};
use granary::s3::sigv4::{format_amz_date, presign_url, SigningParams};

const ACCESS: &str = "GKTWONODES0000000001";
const SECRET: &str = "two-nodes-secret-key-0123456789abcdefghij";

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn config(dir: &std::path::Path) -> ServerConfig {
    let addr = |port: u16| -> SocketAddr { format!("127.0.0.1:{port}").parse().unwrap() };
    ServerArgs {
        data_dir: Some(dir.to_path_buf()),
        s3_addr: Some(addr(free_port())),
        admin_addr: Some(addr(free_port())),
        web_addr: Some(addr(free_port())),
        shards: Some(2),
        ..Default::default()
    }
    .validate(2)
    .unwrap()
}

/// One request with a presigned URL (query authentication); the status and the body.
fn request(node: &ServerConfig, method: &str, path: &str, body: &[u8]) -> (u16, Vec<u8>) {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let date = format_amz_date(now);
    let params = SigningParams {
        access_key_id: ACCESS,
        secret_access_key: SECRET,
        region: "us-east-1",
        amz_date: &date,
    };
    let host = node.s3_addr.to_string();
    let url = presign_url(&params, method, &host, path, "", 300);
    let mut stream = TcpStream::connect(node.s3_addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let length = body.len();
    let head = format!(
        "{method} {url} HTTP/1.1\r\nHost: {host}\r\nContent-Length: {length}\r\n\
         Connection: close\r\n\r\n"
    );
    stream.write_all(head.as_bytes()).unwrap();
    stream.write_all(body).unwrap();
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).unwrap();
    let text = String::from_utf8_lossy(&answer);
    let status = text[9..12].parse().unwrap();
    let at = answer.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    (status, answer[at..].to_vec())
}

/// The `Date` header of the node's answer to an anonymous request.
fn date_header(node: &ServerConfig) -> String {
    let mut stream = TcpStream::connect(node.s3_addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let head = format!(
        "GET / HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
        node.s3_addr
    );
    stream.write_all(head.as_bytes()).unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    answer
        .lines()
        .find_map(|l| l.strip_prefix("Date: "))
        .unwrap_or_else(|| panic!("no Date header in {answer}"))
        .trim()
        .to_string()
}

#[test]
fn two_nodes_serve_s3_in_one_process_and_stop_one_at_a_time() {
    // The root key of a node's first start comes from these (read once per node).
    std::env::set_var("GRANARY_ROOT_ACCESS_KEY_ID", ACCESS);
    std::env::set_var("GRANARY_ROOT_SECRET_ACCESS_KEY", SECRET);
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (config_a, config_b) = (config(dir_a.path()), config(dir_b.path()));
    let options = Options {
        unpinned: true,
        ..Options::default()
    };
    let a = start(config_a.clone(), options.clone()).unwrap();
    // Node b runs on a clock of its own, held by hand: its answers are dated by it.
    let b_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
        - 7_000;
    let b_clock = Clock::manual(7, Arc::new(AtomicU64::new(b_ms)));
    let b_options = Options {
        clock: Some(b_clock),
        ..options
    };
    let b = start(config_b.clone(), b_options).unwrap();
    let b_date = std::time::UNIX_EPOCH + Duration::from_millis(b_ms);
    assert_eq!(date_header(&config_b), granary::http::http_date(b_date));
    for (node, name) in [(&config_a, "a"), (&config_b, "b")] {
        assert_eq!(request(node, "PUT", &format!("/bucket-{name}"), b"").0, 200);
        let body = format!("held by node {name}").repeat(2000);
        let path = format!("/bucket-{name}/object");
        assert_eq!(request(node, "PUT", &path, body.as_bytes()).0, 200);
        assert_eq!(request(node, "GET", &path, b""), (200, body.into_bytes()));
    }
    // Two stores: what one node holds, the other does not.
    assert_eq!(request(&config_b, "GET", "/bucket-a/object", b"").0, 404);
    a.stop();
    a.join().unwrap();
    // Node b keeps serving after node a stopped.
    let (status, body) = request(&config_b, "GET", "/bucket-b/object", b"");
    assert_eq!(status, 200);
    assert!(body.starts_with(b"held by node b"));
    b.stop();
    b.join().unwrap();
}
