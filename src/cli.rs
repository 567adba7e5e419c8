//! `granary key` and `granary bucket`: clients of the admin API of a running node.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context};
use clap::{Args, Subcommand};

use crate::api::admin::tables::{BucketInfo, KeyInfo};

#[derive(Args, Debug)]
pub struct AdminTarget {
    /// Address of the node's admin API
    #[arg(long, default_value = "127.0.0.1:3903", env = "GRANARY_ADMIN_ADDR")]
    pub admin_addr: SocketAddr,
    /// Admin token [default: read from <data-dir>/admin.token]
    #[arg(long, env = "GRANARY_ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<String>,
    /// Data directory of the local node, where the admin token is kept
    #[arg(long, default_value = "granary-data")]
    pub data_dir: PathBuf,
    /// Print JSON instead of text
    #[arg(long)]
    pub json: bool,
    /// Speak TLS to the admin API, trusting this PEM CA (or self-signed certificate)
    #[arg(long, env = "GRANARY_ADMIN_CA")]
    pub admin_ca: Option<PathBuf>,
}

/// Node-wide commands.
#[derive(Subcommand, Debug)]
pub enum NodeCommand {
    /// Node identity, configuration summary and operator tasks with their progress
    Status,
    /// Counters and storage figures of every shard
    Stats,
    /// Verify every block now (progress in `granary status`)
    Scrub,
    /// Drop unreferenced blocks past their delay and compact segments now
    Gc,
}

#[derive(Subcommand, Debug)]
pub enum KeyCommand {
    /// Create an access key (prints its secret once)
    Create {
        name: String,
        /// Allow the key to create buckets
        #[arg(long)]
        create_bucket: bool,
    },
    /// List access keys
    List,
    /// Show a key, its secret and its buckets
    Info { access_key_id: String },
    /// Delete a key, and its permissions on every bucket
    Delete { access_key_id: String },
}

#[derive(Subcommand, Debug)]
pub enum BucketCommand {
    /// Create a bucket, optionally owned by a key
    Create {
        name: String,
        #[arg(long)]
        owner: Option<String>,
    },
    /// List buckets
    List,
    /// Show a bucket and the keys allowed on it
    Info { name: String },
    /// Delete an empty bucket
    Delete { name: String },
    /// Give a key permissions on a bucket (name at least one of --read, --write, --owner)
    Allow(Permission),
    /// Take permissions away from a key; with no --read, --write or --owner, take them all
    Deny(Permission),
    /// Serve a bucket as a static website on the web listener (--allow), or stop (--deny)
    Website(Website),
}

#[derive(Args, Debug)]
#[command(group = clap::ArgGroup::new("mode").required(true).args(["allow", "deny"]))]
pub struct Website {
    pub bucket: String,
    /// Serve the bucket as a website
    #[arg(long)]
    pub allow: bool,
    /// Stop serving the bucket as a website
    #[arg(long)]
    pub deny: bool,
    /// Document served for `/` and for keys ending in `/` [default: index.html]
    #[arg(long, requires = "allow")]
    pub index_document: Option<String>,
    /// Key of the document served with status 404 when a key is missing
    #[arg(long, requires = "allow")]
    pub error_document: Option<String>,
}

#[derive(Args, Debug)]
pub struct Permission {
    pub bucket: String,
    /// Access key id
    #[arg(long)]
    pub key: String,
    /// Read: GET, HEAD and list objects
    #[arg(long)]
    pub read: bool,
    /// Write: put, copy, delete objects and multipart uploads
    #[arg(long)]
    pub write: bool,
    /// Owner: delete the bucket, its ACL, CORS, website, lifecycle and tags
    #[arg(long)]
    pub owner: bool,
}

impl Permission {
    fn names_none(&self) -> bool {
        !(self.read || self.write || self.owner)
    }
}

fn token(target: &AdminTarget) -> anyhow::Result<String> {
    if let Some(token) = &target.admin_token {
        return Ok(token.clone());
    }
    let path = target.data_dir.join(crate::constants::ADMIN_TOKEN_FILE);
    let token = std::fs::read_to_string(&path).with_context(|| {
        format!(
            "reading the admin token from {} (or give --admin-token)",
            path.display()
        )
    })?;
    Ok(token.trim().to_string())
}

/// One request to the admin API; returns the JSON body of a 2xx answer.
fn call(
    target: &AdminTarget,
    method: &str,
    path: &str,
    body: Option<serde_json::Value>,
) -> anyhow::Result<String> {
    let token = token(target)?;
    let stream = TcpStream::connect_timeout(&target.admin_addr, Duration::from_secs(5))
        .with_context(|| {
            format!(
                "connecting to the admin API on {} (is the server running?)",
                target.admin_addr
            )
        })?;
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n\
         {body}",
        target.admin_addr,
        body.len()
    );
    let response = match &target.admin_ca {
        None => exchange(stream, request.as_bytes())?,
        Some(ca) => {
            let connection = tls_client(ca, target.admin_addr)?;
            exchange(
                rustls::StreamOwned::new(connection, stream),
                request.as_bytes(),
            )?
        }
    };
    let text = String::from_utf8_lossy(&response);
    let (head, json) = text
        .split_once("\r\n\r\n")
        .context("malformed admin API answer")?;
    let status: u16 = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .context("malformed admin API status line")?;
    if !(200..300).contains(&status) {
        let message = serde_json::from_str::<serde_json::Value>(json)
            .ok()
            .and_then(|v| v.get("error").and_then(|e| e.as_str()).map(str::to_string))
            .unwrap_or_else(|| json.to_string());
        bail!("admin API answered {status}: {message}");
    }
    Ok(json.to_string())
}

fn exchange(mut stream: impl Read + Write, request: &[u8]) -> anyhow::Result<Vec<u8>> {
    stream.write_all(request)?;
    let mut response = Vec::new();
    match stream.read_to_end(&mut response) {
        Ok(_) => {}
        // A server that closes without TLS close_notify still sent a whole answer.
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof && !response.is_empty() => {}
        Err(e) => return Err(e.into()),
    }
    Ok(response)
}

/// A TLS client trusting only the given PEM certificates, for the admin address's IP.
fn tls_client(ca: &Path, addr: SocketAddr) -> anyhow::Result<rustls::ClientConnection> {
    use rustls_pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_pki_types::CertificateDer::pem_file_iter(ca)
        .with_context(|| format!("reading {}", ca.display()))?
    {
        roots.add(cert.with_context(|| format!("reading {}", ca.display()))?)?;
    }
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    let name = rustls_pki_types::ServerName::IpAddress(addr.ip().into());
    Ok(rustls::ClientConnection::new(
        std::sync::Arc::new(config),
        name,
    )?)
}

fn print_key(key: &KeyInfo) {
    println!("Access key ID:     {}", key.access_key_id);
    if let Some(secret) = &key.secret_access_key {
        println!("Secret access key: {secret}");
    }
    println!("Name:              {}", key.name);
    println!("Can create buckets: {}", key.create_bucket);
    for b in &key.buckets {
        println!(
            "  bucket {:<40} {}",
            b.name,
            flags(b.read, b.write, b.owner)
        );
    }
}

fn print_bucket(bucket: &BucketInfo) {
    println!("Bucket: {}  (id {})", bucket.name, bucket.id);
    for k in &bucket.keys {
        println!("  key {:<24} {}", k.name, flags(k.read, k.write, k.owner));
    }
    match &bucket.website {
        Some(w) => println!(
            "Website: enabled (index document {}, error document {})",
            w.index_document,
            w.error_document.as_deref().unwrap_or("none")
        ),
        None => println!("Website: disabled"),
    }
}

fn flags(read: bool, write: bool, owner: bool) -> String {
    let f = |b: bool, c: char| if b { c } else { '-' };
    format!("{}{}{}", f(read, 'R'), f(write, 'W'), f(owner, 'O'))
}

pub fn key(target: &AdminTarget, command: KeyCommand) -> anyhow::Result<()> {
    let json = match &command {
        KeyCommand::Create {
            name,
            create_bucket,
        } => call(
            target,
            "POST",
            "/v1/keys",
            Some(serde_json::json!({ "name": name, "create_bucket": create_bucket })),
        )?,
        KeyCommand::List => call(target, "GET", "/v1/keys", None)?,
        KeyCommand::Info { access_key_id } => {
            call(target, "GET", &format!("/v1/keys/{access_key_id}"), None)?
        }
        KeyCommand::Delete { access_key_id } => {
            call(target, "DELETE", &format!("/v1/keys/{access_key_id}"), None)?
        }
    };
    if target.json {
        println!("{json}");
        return Ok(());
    }
    match command {
        KeyCommand::List => {
            let keys: Vec<KeyInfo> = serde_json::from_str(&json)?;
            for k in keys {
                println!("{:<24} {}", k.access_key_id, k.name);
            }
        }
        KeyCommand::Delete { access_key_id } => println!("deleted key {access_key_id}"),
        _ => print_key(&serde_json::from_str(&json)?),
    }
    Ok(())
}

pub fn bucket(target: &AdminTarget, command: BucketCommand) -> anyhow::Result<()> {
    let permission = |p: &Permission| {
        let mut v = serde_json::json!({ "key": p.key, "read": p.read, "write": p.write });
        v["owner"] = p.owner.into();
        v
    };
    let json = match &command {
        BucketCommand::Create { name, owner } => call(
            target,
            "POST",
            "/v1/buckets",
            Some(serde_json::json!({ "name": name, "owner": owner })),
        )?,
        BucketCommand::List => call(target, "GET", "/v1/buckets", None)?,
        BucketCommand::Info { name } => call(target, "GET", &format!("/v1/buckets/{name}"), None)?,
        BucketCommand::Delete { name } => {
            call(target, "DELETE", &format!("/v1/buckets/{name}"), None)?
        }
        BucketCommand::Allow(p) if p.names_none() => {
            bail!("name the permissions to give: --read, --write and/or --owner")
        }
        BucketCommand::Allow(p) => call(
            target,
            "POST",
            &format!("/v1/buckets/{}/allow", p.bucket),
            Some(permission(p)),
        )?,
        BucketCommand::Deny(p) => call(
            target,
            "POST",
            &format!("/v1/buckets/{}/deny", p.bucket),
            Some(permission(p)),
        )?,
        BucketCommand::Website(w) => call(
            target,
            "POST",
            &format!("/v1/buckets/{}/website", w.bucket),
            Some(serde_json::json!({
                "allow": w.allow,
                "index_document": w.index_document,
                "error_document": w.error_document,
            })),
        )?,
    };
    if target.json {
        println!("{json}");
        return Ok(());
    }
    match command {
        BucketCommand::List => {
            let buckets: Vec<BucketInfo> = serde_json::from_str(&json)?;
            for b in buckets {
                println!("{}", b.name);
            }
        }
        BucketCommand::Delete { name } => println!("deleted bucket {name}"),
        BucketCommand::Deny(p) if p.names_none() => {
            println!(
                "revoked every permission (read, write, owner) of key {} on bucket {}",
                p.key, p.bucket
            );
            print_bucket(&serde_json::from_str(&json)?);
        }
        _ => print_bucket(&serde_json::from_str(&json)?),
    }
    Ok(())
}

pub fn node(target: &AdminTarget, command: NodeCommand) -> anyhow::Result<()> {
    let json = match command {
        NodeCommand::Status => call(target, "GET", "/v1/status", None)?,
        NodeCommand::Stats => call(target, "GET", "/v1/stats", None)?,
        NodeCommand::Scrub => call(target, "POST", "/v1/scrub", None)?,
        NodeCommand::Gc => call(target, "POST", "/v1/gc", None)?,
    };
    if target.json {
        println!("{json}");
        return Ok(());
    }
    let value: serde_json::Value = serde_json::from_str(&json)?;
    match command {
        NodeCommand::Status => print_status(&value),
        NodeCommand::Stats => print_stats(&value),
        NodeCommand::Scrub | NodeCommand::Gc => println!(
            "started {} on {} shards; follow it with `granary status`",
            value["started"].as_str().unwrap_or("?"),
            value["shards"]
        ),
    }
    Ok(())
}

fn print_status(v: &serde_json::Value) {
    println!(
        "Node {}  (Granary {})",
        v["node_id"].as_str().unwrap_or("?"),
        v["version"].as_str().unwrap_or("?")
    );
    println!(
        "  up {} s, {} shards, S3 on {}, admin on {}, TLS {}",
        v["uptime_s"],
        v["shards"],
        v["s3_addr"].as_str().unwrap_or("?"),
        v["admin_addr"].as_str().unwrap_or("?"),
        v["tls"]
    );
    println!(
        "  fsync: data {}, metadata {}",
        v["data_fsync"].as_str().unwrap_or("?"),
        v["metadata_fsync"].as_str().unwrap_or("?")
    );
    println!("  {} buckets, {} keys", v["buckets"], v["keys"]);
    for shard in v["tasks"].as_array().into_iter().flatten() {
        for t in shard["tasks"].as_array().into_iter().flatten() {
            let total = t["total"]
                .as_u64()
                .map_or(String::new(), |n| format!(" of {n}"));
            println!(
                "  shard {}: {} {} ({}{total})",
                shard["shard"],
                t["task"].as_str().unwrap_or("?"),
                t["state"].as_str().unwrap_or("?"),
                t["done"]
            );
        }
    }
}

fn print_stats(v: &serde_json::Value) {
    let columns = [
        "shard",
        "requests",
        "bytes in",
        "bytes out",
        "blocks",
        "live bytes",
        "dead bytes",
        "lmdb bytes",
        "scrubbed",
    ];
    let line = |cells: &[String]| {
        let padded: Vec<String> = cells.iter().map(|c| format!("{c:>12}")).collect();
        println!("{}", padded.join(""));
    };
    line(&columns.map(str::to_string));
    for s in v.as_array().into_iter().flatten() {
        let requests: u64 = s["requests"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|r| r["count"].as_u64())
            .sum();
        let st = &s["storage"];
        let cells = [
            &s["shard"],
            &serde_json::Value::from(requests),
            &s["bytes_in"],
            &s["bytes_out"],
            &st["blocks"],
            &st["live_bytes"],
            &st["dead_bytes"],
            &st["lmdb_bytes"],
            &st["scrubbed_blocks"],
        ];
        line(&cells.map(|c| c.to_string()));
    }
}
