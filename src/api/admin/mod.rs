//! The admin API: JSON over HTTP on `--admin-addr`, bearer-token authentication, versioned
//! paths. The `granary key` and `granary bucket` commands use it. It runs on shard 0, which
//! keeps the global tables; answers are small, so each connection serves one request.
//!
//! | method | path | does |
//! | --- | --- | --- |
//! | GET | /health | 200 when every shard answers (no token) |
//! | GET | /metrics | Prometheus text (no token unless `--metrics-token`) |
//! | GET | /v1/status | node, configuration summary, operator tasks |
//! | GET | /v1/stats | every shard's counters and storage figures |
//! | POST | /v1/scrub, /v1/gc | start a scrub or a GC + compaction on every shard |
//! | GET | /v1/keys | list access keys |
//! | POST | /v1/keys | create a key `{"name", "create_bucket"?}` |
//! | GET, DELETE | /v1/keys/{id} | show (with secret) or delete a key |
//! | GET | /v1/buckets | list buckets |
//! | POST | /v1/buckets | create a bucket `{"name", "owner"?}` |
//! | GET, DELETE | /v1/buckets/{name} | show or delete (empty) a bucket |
//! | POST | /v1/buckets/{name}/allow, /deny | `{"key", "read", "write", "owner"}` |
//! | POST | /v1/buckets/{name}/website | `{"allow", "index_document"?, "error_document"?}` |

pub mod status;
pub mod tables;

use std::rc::Rc;
use std::time::Duration;

use futures_lite::{AsyncReadExt, AsyncWriteExt};
use glommio::net::TcpListener;

use crate::api::tls::Stream;
use crate::api::Gateway;
use crate::http;
use crate::model::ops::Task;

const ADMIN_BODY_BYTES_MAX: usize = 64 * 1024;
const ADMIN_IO_TIMEOUT: Duration = Duration::from_secs(10);

/// Reads the admin token file, creating it (readable by its owner only) on first start.
pub fn load_or_create_token(path: &std::path::Path) -> std::io::Result<String> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    if let Ok(token) = std::fs::read_to_string(path) {
        return Ok(token.trim().to_string());
    }
    let token = hex::encode(rand::random::<[u8; 24]>());
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(token.as_bytes())?;
    file.sync_all()?;
    Ok(token)
}

pub async fn serve(shard: Rc<Gateway>, listener: TcpListener, token: Rc<String>) {
    loop {
        match listener.accept().await {
            Ok(tcp) => {
                let shard = Rc::clone(&shard);
                let token = Rc::clone(&token);
                glommio::spawn_local(async move {
                    let _ = tcp.set_read_timeout(Some(ADMIN_IO_TIMEOUT));
                    let _ = tcp.set_write_timeout(Some(ADMIN_IO_TIMEOUT));
                    let tls = std::sync::Arc::clone(&shard.tls);
                    let handshake = glommio::timer::timeout(ADMIN_IO_TIMEOUT, async {
                        Ok(Stream::accept(tcp, &tls).await)
                    });
                    if let Ok(Ok(stream)) = handshake.await {
                        handle_connection(&shard, stream, &token).await;
                    }
                })
                .detach();
            }
            Err(e) => {
                tracing::warn!("admin accept failed: {e}");
                glommio::timer::sleep(Duration::from_millis(10)).await;
            }
        }
    }
}

async fn handle_connection(shard: &Rc<Gateway>, mut stream: Stream, token: &str) {
    let mut buf = Vec::new();
    let mut chunk = vec![0u8; 16 * 1024];
    let (head, used) = loop {
        match http::parse_head(&buf) {
            Ok(Some(parsed)) => break parsed,
            Ok(None) => {}
            Err(e) => {
                let _ = respond(&mut stream, 400, &tables::error_json(&e.to_string())).await;
                return;
            }
        }
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    };
    let length = match http::body_framing(&head) {
        Ok(http::BodyFraming::Empty) => 0,
        Ok(http::BodyFraming::Length(n)) if n as usize <= ADMIN_BODY_BYTES_MAX => n as usize,
        _ => {
            let _ = respond(
                &mut stream,
                413,
                &tables::error_json("body too large or chunked"),
            )
            .await;
            return;
        }
    };
    let mut body = buf[used..].to_vec();
    while body.len() < length {
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => body.extend_from_slice(&chunk[..n]),
        }
    }
    body.truncate(length);
    let method = head.method.as_str();
    let (status, json) = match (method, head.path.as_str()) {
        ("GET", "/health") => status::health(shard).await,
        ("GET", "/metrics") => {
            let open = shard.config.metrics_token.as_deref();
            if open.is_some_and(|t| !authorized(&head, t)) {
                (401, tables::error_json("missing or wrong metrics token"))
            } else {
                match status::prometheus(shard).await {
                    Ok(text) => {
                        let _ = respond_with(&mut stream, 200, PROMETHEUS_TYPE, &text).await;
                        return;
                    }
                    Err(answer) => answer,
                }
            }
        }
        _ if !authorized(&head, token) => {
            (401, tables::error_json("missing or wrong bearer token"))
        }
        ("GET", "/v1/status") => status::status(shard).await,
        ("GET", "/v1/stats") => status::stats(shard).await,
        ("POST", "/v1/scrub") => status::start(shard, Task::Scrub).await,
        ("POST", "/v1/gc") => status::start(shard, Task::Gc).await,
        _ => tables::handle(shard, method, &head.path, &body).await,
    };
    let _ = respond(&mut stream, status, &json).await;
}

const PROMETHEUS_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

fn authorized(head: &http::RequestHead, token: &str) -> bool {
    let Some(given) = head
        .header("authorization")
        .and_then(|v| v.strip_prefix("Bearer "))
    else {
        return false;
    };
    // Constant-time comparison: the token is a secret.
    given.len() == token.len()
        && given
            .bytes()
            .zip(token.bytes())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
}

async fn respond(stream: &mut Stream, status: u16, json: &str) -> std::io::Result<()> {
    respond_with(stream, status, "application/json", json).await
}

async fn respond_with(
    stream: &mut Stream,
    status: u16,
    content_type: &str,
    json: &str,
) -> std::io::Result<()> {
    let mut out = Vec::with_capacity(json.len() + 128);
    let length = json.len().to_string();
    http::write_response_head(
        &mut out,
        status,
        &[
            ("Content-Type", content_type),
            ("Content-Length", &length),
            ("Connection", "close"),
        ],
    );
    out.extend_from_slice(json.as_bytes());
    stream.write_all(&out).await?;
    stream.flush().await
}
