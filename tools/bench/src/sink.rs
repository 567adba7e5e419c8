//! The PUT limit of this machine: a sink that does the least any S3 server must do with a
//! PUT body (receive it over loopback TCP and hash it: MD5 for the ETag, SHA-256 too when
//! payloads are signed, CRC32 when the client sends that checksum), driven by the same
//! client and workload as `large`.
//!
//! The in-memory hash rates of `raw` say what one core hashes when it does nothing else.
//! On a machine where the client shares the cores with the server, a PUT also pays the
//! client, the TCP send and receive copies and the wake-ups; the sink measures all of that
//! with nothing of a store on top, so a store's PUT can be set against it in the same run.
//!
//! It is a measuring device, not a server: one thread per connection, blocking reads,
//! `Content-Length` bodies only, no signature check (the header's HMAC costs microseconds
//! per request), every GET answered with an empty listing so `cleanup` finds nothing.

use crate::exp::{human_size, CpuMeter, Ctx};
use crate::http::{Checksum, Endpoint, Payload};
use crate::raw::thread_cpu_ns;
use crate::s3::{self, must, pool, Op};
use crate::sigv4::Signer;
use crate::stats::{f, fmt, num, print_table, summarize};
use anyhow::{Context, Result};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

/// The most a request head may take.
const HEAD_MAX: usize = 64 << 10;
/// Bytes read from the socket at a time, then hashed.
const READ: usize = 1 << 20;

/// What the sink computes over each body: nothing (the ceiling of receiving PUTs over
/// loopback with this client), or what the payload requires.
#[derive(Clone, Copy, PartialEq)]
struct Hashing(Option<Payload>);

impl Hashing {
    fn name(self) -> String {
        self.0.map_or("no hash".into(), Payload::hashes)
    }
}

struct Sink {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    /// CPU time of the sink's connection threads, in nanoseconds.
    cpu_ns: Arc<AtomicU64>,
}

impl Sink {
    fn start(hashing: Hashing) -> Result<Sink> {
        let listener = TcpListener::bind("127.0.0.1:0").context("sink: bind")?;
        let addr = listener.local_addr()?;
        let stop = Arc::new(AtomicBool::new(false));
        let cpu_ns = Arc::new(AtomicU64::new(0));
        let (st, ct) = (stop.clone(), cpu_ns.clone());
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                if st.load(Ordering::Relaxed) {
                    break;
                }
                let Ok(conn) = conn else { continue };
                let ct = ct.clone();
                std::thread::spawn(move || {
                    let _ = serve(conn, hashing, &ct);
                });
            }
        });
        Ok(Sink { addr, stop, cpu_ns })
    }
}

impl Drop for Sink {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        // Wakes the accept loop so it sees the flag.
        let _ = TcpStream::connect(self.addr);
    }
}

/// What a request head says: method, body length, and how many bytes of the buffer it took.
fn parse_head(buf: &[u8]) -> Result<Option<(String, u64, usize)>> {
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut req = httparse::Request::new(&mut headers);
    let httparse::Status::Complete(n) = req.parse(buf)? else {
        return Ok(None);
    };
    let mut len = 0;
    for h in req.headers.iter() {
        if h.name.eq_ignore_ascii_case("content-length") {
            len = std::str::from_utf8(h.value)?.trim().parse()?;
        } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
            anyhow::bail!("sink: only Content-Length bodies");
        }
    }
    Ok(Some((req.method.unwrap_or("").to_string(), len, n)))
}

fn serve(mut conn: TcpStream, hashing: Hashing, cpu_ns: &AtomicU64) -> Result<()> {
    conn.set_nodelay(true)?;
    let mut buf = vec![0u8; READ];
    let mut have = 0;
    loop {
        let (method, len, used) = loop {
            if let Some(h) = parse_head(&buf[..have])? {
                break h;
            }
            if have == HEAD_MAX {
                anyhow::bail!("sink: request head over {HEAD_MAX} bytes");
            }
            let n = conn.read(&mut buf[have..HEAD_MAX])?;
            if n == 0 {
                return Ok(());
            }
            have += n;
        };
        let cpu = thread_cpu_ns();
        let p = hashing.0;
        let mut md5 = p.is_some().then(md5_many::Md5State::new);
        let mut sha = p.is_some_and(|p| p.signed).then(Sha256::new);
        let mut crc = p
            .is_some_and(|p| p.checksum == Checksum::Crc32)
            .then(|| crc_fast::Digest::new(crc_fast::CrcAlgorithm::Crc32IsoHdlc));
        let mut hash = |b: &[u8]| {
            if let Some(m) = md5.as_mut() {
                m.update(b);
            }
            if let Some(s) = sha.as_mut() {
                s.update(b);
            }
            if let Some(c) = crc.as_mut() {
                c.update(b);
            }
        };
        // The part of the body that came with the head; what follows it is the next request.
        let first = (have - used).min(len as usize);
        hash(&buf[used..used + first]);
        let mut rest = len - first as u64;
        buf.copy_within(used + first..have, 0);
        have -= used + first;
        while rest > 0 {
            let want = rest.min(READ as u64) as usize;
            let n = conn.read(&mut buf[..want])?;
            if n == 0 {
                anyhow::bail!("sink: body cut short");
            }
            hash(&buf[..n]);
            rest -= n as u64;
        }
        let reply = match method.as_str() {
            "PUT" => format!(
                "HTTP/1.1 200 OK\r\nETag: \"{}\"\r\ncontent-length: 0\r\n\r\n",
                hex::encode(md5.map(|m| m.finalize()).unwrap_or_default())
            ),
            "GET" => {
                let xml = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<ListBucketResult>\
                           <IsTruncated>false</IsTruncated><KeyCount>0</KeyCount>\
                           </ListBucketResult>";
                format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/xml\r\ncontent-length: {}\r\n\r\n{xml}",
                    xml.len()
                )
            }
            "DELETE" => "HTTP/1.1 204 No Content\r\n\r\n".to_string(),
            _ => "HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n".to_string(),
        };
        if let Some(s) = sha {
            std::hint::black_box(s.finalize());
        }
        if let Some(c) = crc {
            std::hint::black_box(c.finalize());
        }
        conn.write_all(reply.as_bytes())?;
        cpu_ns.fetch_add(thread_cpu_ns() - cpu, Ordering::Relaxed);
    }
}

/// `large`'s PUT phase against a sink, once with the hashing S3 requires (MD5, SHA-256 for
/// signed payloads, the checksum sent: the limit) and once with none (the loopback ceiling,
/// for reference).
pub async fn put_limit(ctx: &Ctx) -> Result<Value> {
    let payload = ctx.o.payload();
    let size = ctx.large_size()?;
    let conc = ctx.large_concurrency();
    let count = ctx.large_count();
    let mut rows = Vec::new();
    let mut table = Vec::new();
    for hashing in [Hashing(Some(payload)), Hashing(None)] {
        let (row, line) = put_into(ctx, hashing, size, conc, count).await?;
        rows.push(row);
        table.push(line);
    }
    print_table(
        &format!(
            "raw: PUT into a sink that only receives and hashes (one stream per connection): \
             {count} objects of {}, concurrency {conc}",
            human_size(size)
        ),
        &[
            "sink hashes",
            "MB/s",
            "CPU s/GB: sink",
            "client",
            "other processes",
            "all cores, elapsed",
        ],
        &table,
    );
    Ok(json!({
        "workload": {"size": size, "concurrency": conc, "count": count,
                     "signed_payload": payload.signed, "checksum": payload.checksum.name(),
                     "hashes": payload.hashes()},
        "rows": rows,
        "mb_per_s": rows[0]["mb_per_s"].clone(),
        "no_hash_mb_per_s": rows[1]["mb_per_s"].clone(),
    }))
}

async fn put_into(
    ctx: &Ctx,
    hashing: Hashing,
    size: u64,
    conc: usize,
    count: u64,
) -> Result<(Value, Vec<String>)> {
    let sink = Sink::start(hashing)?;
    let signer = Signer::new(&ctx.o.access_key, &ctx.o.secret_key, &ctx.o.region);
    let ep = Endpoint::new(&format!("http://{}", sink.addr), signer, ctx.o.payload())?;
    let mut conns = s3::conns(&ep, conc);
    let bucket = ctx.bucket("sink");
    must(&mut conns[0], &Op::CreateBucket(bucket.clone())).await?;
    let t = Instant::now();
    let cpu = CpuMeter::start(None);
    let sink_cpu0 = sink.cpu_ns.load(Ordering::Relaxed);
    let (_conns, samples) = pool(
        conns,
        count,
        Arc::new(move |i| Op::Put {
            bucket: bucket.clone(),
            key: format!("sink/{i:05}"),
            id: i,
            size,
        }),
    )
    .await;
    let secs = t.elapsed().as_secs_f64();
    let mut meter = cpu.stop();
    let sink_s = (sink.cpu_ns.load(Ordering::Relaxed) - sink_cpu0) as f64 / 1e9;
    let v = summarize(&samples);
    if f(&v["errors"]) > 0.0 {
        anyhow::bail!("sink ({}): {} PUTs failed", hashing.name(), v["errors"]);
    }
    let gb = f(&v["bytes"]) / 1e9;
    let mbps = f(&v["bytes"]) / 1e6 / secs;
    // The sink runs in this process: its threads' CPU is the server's share, the rest of
    // this process's CPU is the client's.
    meter["server_cpu_s"] = num(sink_s);
    meter["client_cpu_s"] = num(f(&meter["client_cpu_s"]) - sink_s);
    let line = vec![
        hashing.name().to_string(),
        fmt(mbps),
        fmt(sink_s / gb),
        fmt(f(&meter["client_cpu_s"]) / gb),
        fmt(f(&meter["others_cpu_s"]) / gb),
        fmt(f(&meter["machine_cpu_s"]) / gb),
    ];
    let row = json!({"hashes": hashing.name(), "mb_per_s": num(mbps), "secs": num(secs),
                     "cpu": meter});
    Ok((row, line))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heads() {
        let req = b"PUT /b/k HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello";
        let (method, len, used) = parse_head(req).unwrap().unwrap();
        assert_eq!(
            (method.as_str(), len, &req[used..]),
            ("PUT", 5, &b"hello"[..])
        );
        assert!(parse_head(b"GET / HTTP/1.1\r\nHost: x\r\n")
            .unwrap()
            .is_none());
        let chunked = b"PUT / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n";
        assert!(parse_head(chunked).is_err());
        assert!(parse_head(b"PUT / HTTP/1.1\r\nContent-Length: x\r\n\r\n").is_err());
    }
}
