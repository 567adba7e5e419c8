//! TLS on the listeners (rustls, TLS 1.2 and 1.3 only). The certificate and key are read
//! at start, where a bad file stops the server, and again on SIGHUP, where a bad file is
//! logged and the previous certificate kept. Connections already open keep their session;
//! new ones get the new certificate.

use std::io;
use std::pin::Pin;
use std::sync::{Arc, RwLock};
use std::task::{Context, Poll};

use anyhow::Context as _;
use futures_lite::{AsyncRead, AsyncWrite};
use glommio::net::TcpStream;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use crate::config::TlsFiles;

struct Current {
    files: TlsFiles,
    config: Arc<rustls::ServerConfig>,
}

/// A node's TLS: the certificate new connections get, replaced on SIGHUP. One per node.
#[derive(Default)]
pub struct Tls {
    current: RwLock<Option<Current>>,
}

/// Builds a server configuration from PEM files.
pub fn load(files: &TlsFiles) -> anyhow::Result<Arc<rustls::ServerConfig>> {
    let certs = CertificateDer::pem_file_iter(&files.cert)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|e| anyhow::anyhow!("reading certificates from {}: {e}", files.cert.display()))?;
    if certs.is_empty() {
        anyhow::bail!("{} holds no certificate", files.cert.display());
    }
    let key = PrivateKeyDer::from_pem_file(&files.key)
        .map_err(|e| anyhow::anyhow!("reading the private key {}: {e}", files.key.display()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .context("choosing TLS versions")?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .with_context(|| {
            format!(
                "the key {} does not fit the certificate {}",
                files.key.display(),
                files.cert.display()
            )
        })?;
    let mut config = config;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

impl Tls {
    /// Reads the certificate at start (or notes that the listeners speak plain HTTP).
    pub fn new(files: Option<TlsFiles>) -> anyhow::Result<Arc<Tls>> {
        let current = match files {
            Some(files) => Some(Current {
                config: load(&files)?,
                files,
            }),
            None => None,
        };
        Ok(Arc::new(Tls {
            current: RwLock::new(current),
        }))
    }

    /// Reads the certificate again (SIGHUP). On failure the previous one stays in use.
    pub fn reload(&self) {
        let files = match self.read().as_ref() {
            Some(current) => current.files.clone(),
            None => {
                tracing::info!("SIGHUP: TLS is not configured, nothing to reload");
                return;
            }
        };
        match load(&files) {
            Ok(config) => {
                let mut guard = self.current.write().unwrap_or_else(|e| e.into_inner());
                if let Some(current) = guard.as_mut() {
                    current.config = config;
                }
                tracing::info!(cert = %files.cert.display(), "SIGHUP: TLS certificate reloaded");
            }
            Err(e) => tracing::error!("SIGHUP: keeping the previous TLS certificate: {e:#}"),
        }
    }

    /// The configuration new connections get, when TLS is on.
    pub fn current(&self) -> Option<Arc<rustls::ServerConfig>> {
        self.read().as_ref().map(|c| Arc::clone(&c.config))
    }

    /// Whether the listeners speak TLS (for URLs printed to the operator).
    pub fn enabled(&self) -> bool {
        self.current().is_some()
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Option<Current>> {
        self.current.read().unwrap_or_else(|e| e.into_inner())
    }
}

/// A connection's byte stream: plain TCP, or TLS over it.
pub enum Stream {
    Plain(TcpStream),
    Tls(Box<futures_rustls::server::TlsStream<TcpStream>>),
}

impl Stream {
    /// Wraps an accepted connection, doing the TLS handshake when `tls` is on.
    pub async fn accept(tcp: TcpStream, tls: &Tls) -> io::Result<Stream> {
        match tls.current() {
            None => Ok(Stream::Plain(tcp)),
            Some(config) => {
                let tls = futures_rustls::TlsAcceptor::from(config)
                    .accept(tcp)
                    .await?;
                Ok(Stream::Tls(Box::new(tls)))
            }
        }
    }

    /// What a plain connection's socket holds now, read into `buf`: `None` if nothing is
    /// there yet (or the connection is TLS), `Some(0)` at end of stream.
    pub fn recv_ready_into(&self, buf: &mut [u8]) -> io::Result<Option<usize>> {
        // SAFETY: `buf` is valid for writes of `buf.len()` bytes.
        unsafe { self.recv_now(buf.as_mut_ptr(), buf.len()) }
    }

    /// Appends to `out` what a plain connection's socket holds now (at most `max` bytes),
    /// without zeroing the space first: `None` if nothing is there yet (or the connection
    /// is TLS), `Some(0)` at end of stream. The zeroing it spares was 4 % of the machine's
    /// CPU during a large PUT. (glommio's own reads try the same non-blocking `recv` first.)
    pub fn recv_ready_into_spare(
        &self,
        out: &mut Vec<u8>,
        max: usize,
    ) -> io::Result<Option<usize>> {
        out.reserve(max);
        let start = out.len();
        // SAFETY: `reserve` made room for `max` more bytes after `start`.
        let n = unsafe { self.recv_now(out.as_mut_ptr().add(start), max)? };
        if let Some(n) = n {
            // SAFETY: recv initialized exactly `n` bytes after `start` (n <= max), and only
            // those become part of `out`.
            unsafe { out.set_len(start + n) };
        }
        Ok(n)
    }

    /// A non-blocking `recv` of at most `len` bytes to `at` (None: nothing yet, or TLS).
    ///
    /// # Safety
    /// `at` must be valid for writes of `len` bytes.
    unsafe fn recv_now(&self, at: *mut u8, len: usize) -> io::Result<Option<usize>> {
        let Stream::Plain(tcp) = self else {
            return Ok(None);
        };
        use std::os::fd::AsRawFd;
        // SAFETY: the caller's promise; recv writes at most `len` bytes and says how many.
        let n = unsafe { libc::recv(tcp.as_raw_fd(), at.cast(), len, libc::MSG_DONTWAIT) };
        if n >= 0 {
            return Ok(Some(n as usize));
        }
        let e = io::Error::last_os_error();
        match e.kind() {
            io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted => Ok(None),
            _ => Err(e),
        }
    }
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_flush(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }
    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_close(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_close(cx),
        }
    }
}
