//! S3 operations over `Conn`, and a pool of workers (one connection each) that runs many.

use crate::http::{xml_values, Body, Conn, Endpoint, Request, Response};
use crate::stats::Sample;
use anyhow::{bail, Result};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

#[derive(Clone, Debug)]
pub enum Op {
    ListBuckets,
    CreateBucket(String),
    DeleteBucket(String),
    ListObjects {
        bucket: String,
        prefix: String,
        max_keys: u32,
        token: Option<String>,
    },
    Put {
        bucket: String,
        key: String,
        id: u64,
        size: u64,
    },
    Get {
        bucket: String,
        key: String,
    },
    Head {
        bucket: String,
        key: String,
    },
    Delete {
        bucket: String,
        key: String,
    },
}

impl Op {
    pub fn name(&self) -> &'static str {
        match self {
            Op::ListBuckets => "ListBuckets",
            Op::CreateBucket(_) => "CreateBucket",
            Op::DeleteBucket(_) => "DeleteBucket",
            Op::ListObjects { .. } => "ListObjects",
            Op::Put { .. } => "PutObject",
            Op::Get { .. } => "GetObject",
            Op::Head { .. } => "HeadObject",
            Op::Delete { .. } => "DeleteObject",
        }
    }

    pub fn request(&self) -> Request<'static> {
        let obj = |b: &str, k: &str| format!("/{b}/{k}");
        match self {
            Op::ListBuckets => Request::new("GET", "/".into()).keep(),
            Op::CreateBucket(b) => Request::new("PUT", format!("/{b}")).keep(),
            Op::DeleteBucket(b) => Request::new("DELETE", format!("/{b}")).keep(),
            Op::ListObjects {
                bucket,
                prefix,
                max_keys,
                token,
            } => {
                let mut r = Request::new("GET", format!("/{bucket}"))
                    .query("list-type", "2")
                    .query("prefix", prefix)
                    .query("max-keys", &max_keys.to_string())
                    .keep();
                if let Some(t) = token {
                    r = r.query("continuation-token", t);
                }
                r
            }
            Op::Put {
                bucket,
                key,
                id,
                size,
            } => Request::new("PUT", obj(bucket, key))
                .body(Body::Generated {
                    id: *id,
                    len: *size,
                })
                .keep(),
            Op::Get { bucket, key } => Request::new("GET", obj(bucket, key)),
            Op::Head { bucket, key } => Request::new("HEAD", obj(bucket, key)),
            Op::Delete { bucket, key } => Request::new("DELETE", obj(bucket, key)).keep(),
        }
    }

    /// Bytes of payload this operation moves when it succeeds.
    pub fn payload(&self, resp: &Response) -> u64 {
        match self {
            Op::Put { size, .. } => *size,
            Op::Get { .. } => resp.body_len,
            _ => 0,
        }
    }
}

/// Runs one operation; a non-2xx status is a failed sample, an I/O error too.
pub async fn run(conn: &mut Conn, op: &Op) -> (Sample, Option<Response>) {
    let start = Instant::now();
    let res = conn.send(&op.request()).await;
    let dur = start.elapsed();
    match res {
        Ok(r) => {
            let ok = r.ok();
            let bytes = op.payload(&r);
            (
                Sample {
                    op: op.name(),
                    dur,
                    ok,
                    bytes,
                },
                Some(r),
            )
        }
        Err(e) => {
            eprintln!("{} failed: {e:#}", op.name());
            (
                Sample {
                    op: op.name(),
                    dur,
                    ok: false,
                    bytes: 0,
                },
                None,
            )
        }
    }
}

/// Runs an operation that must succeed (setup and cleanup).
pub async fn must(conn: &mut Conn, op: &Op) -> Result<Response> {
    let r = conn.send(&op.request()).await?;
    if !r.ok() {
        bail!("{} answered {}: {}", op.name(), r.status, r.text());
    }
    Ok(r)
}

/// Connections, one per worker; they keep their TCP connection across `pool` calls.
pub fn conns(ep: &Arc<Endpoint>, n: usize) -> Vec<Conn> {
    (0..n).map(|_| Conn::new(ep.clone())).collect()
}

pub type OpFn = Arc<dyn Fn(u64) -> Op + Send + Sync>;

/// Runs operations `make(0..n)` with one worker per connection; returns the connections
/// and every sample.
pub async fn pool(conns: Vec<Conn>, n: u64, make: OpFn) -> (Vec<Conn>, Vec<Sample>) {
    let next = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for mut conn in conns {
        let next = next.clone();
        let make = make.clone();
        tasks.push(tokio::spawn(async move {
            let mut samples = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= n {
                    break;
                }
                let (s, _) = run(&mut conn, &make(i)).await;
                samples.push(s);
            }
            (conn, samples)
        }));
    }
    let mut out_conns = Vec::new();
    let mut out = Vec::new();
    for t in tasks {
        let (c, s) = t.await.expect("worker panicked");
        out_conns.push(c);
        out.extend(s);
    }
    (out_conns, out)
}

/// Runs `op` once on every connection, all at once, so each is open (and the server has
/// accepted it) before a measurement starts; returns the connections.
pub async fn warm(conns: Vec<Conn>, op: Op) -> Result<Vec<Conn>> {
    let op = Arc::new(op);
    let tasks: Vec<_> = conns
        .into_iter()
        .map(|mut conn| {
            let op = op.clone();
            tokio::spawn(async move {
                let r = must(&mut conn, &op).await.map(|_| ());
                (conn, r)
            })
        })
        .collect();
    let mut out = Vec::new();
    for t in tasks {
        let (c, r) = t.await.expect("warm-up worker panicked");
        r?;
        out.push(c);
    }
    Ok(out)
}

/// Deletes every object of a bucket (listing with `conn`, deleting with the pool), then
/// the bucket itself.
pub async fn empty_and_delete(conns: Vec<Conn>, bucket: &str) -> Result<Vec<Conn>> {
    let mut conns = conns;
    let mut token = None;
    loop {
        let lister = &mut conns[0];
        let r = must(
            lister,
            &Op::ListObjects {
                bucket: bucket.into(),
                prefix: String::new(),
                max_keys: 1000,
                token: token.clone(),
            },
        )
        .await?;
        let xml = r.text();
        let keys = Arc::new(xml_values(&xml, "Key"));
        let b = bucket.to_string();
        let k = keys.clone();
        let (c, samples) = pool(
            conns,
            keys.len() as u64,
            Arc::new(move |i| Op::Delete {
                bucket: b.clone(),
                key: k[i as usize].clone(),
            }),
        )
        .await;
        conns = c;
        if let Some(s) = samples.iter().find(|s| !s.ok) {
            bail!("cleanup of {bucket}: a {} failed", s.op);
        }
        let truncated = xml_values(&xml, "IsTruncated")
            .first()
            .map(|v| v == "true")
            .unwrap_or(false);
        token = xml_values(&xml, "NextContinuationToken").into_iter().next();
        if !truncated || token.is_none() {
            break;
        }
    }
    must(&mut conns[0], &Op::DeleteBucket(bucket.into())).await?;
    Ok(conns)
}
