//! The TCP listener: at most `server.max_connections` open connections, so a
//! storm of clients costs bounded memory, and TCP_NODELAY so small answers
//! are not held back by Nagle's algorithm. A client beyond the cap is not
//! left to time out in the kernel's backlog: it gets a 503 with
//! `Retry-After` at once, from a small, separately capped set of refusers
//! (beyond those, it does wait in the backlog).

use axum::serve::Listener;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, TryAcquireError};

/// Connections being refused at once; beyond this, clients wait in the
/// kernel's backlog. Each costs a task and an 8 KiB buffer for at most
/// [`REFUSE_WITHIN`].
const MAX_REFUSING: usize = 256;
/// How long a refusal may take: reading the request, writing the answer.
const REFUSE_WITHIN: Duration = Duration::from_secs(2);

pub struct LimitedListener {
    inner: TcpListener,
    permits: Arc<Semaphore>,
    refusing: Arc<Semaphore>,
}

impl LimitedListener {
    pub fn new(inner: TcpListener, max_connections: usize) -> Self {
        Self {
            inner,
            permits: Arc::new(Semaphore::new(
                max_connections.clamp(1, Semaphore::MAX_PERMITS),
            )),
            refusing: Arc::new(Semaphore::new(MAX_REFUSING)),
        }
    }
}

const REFUSAL: &str = concat!(
    "HTTP/1.1 503 Service Unavailable\r\n",
    "content-type: application/json\r\n",
    "retry-after: 1\r\n",
    "connection: close\r\n",
    "content-length: 63\r\n\r\n",
    r#"{"error":"too many open connections (server.max_connections)"}"#,
    "\n"
);

/// Answer one connection over the cap with a 503 and close it. The request
/// head is read first, so the client is not reset before it reads the
/// answer.
async fn refuse(mut io: TcpStream, _refuser: OwnedSemaphorePermit) {
    ::metrics::counter!("cerebro_connections_refused_total").increment(1);
    let _ = tokio::time::timeout(REFUSE_WITHIN, async {
        let _ = io.set_nodelay(true);
        let mut buf = [0u8; 8192];
        let mut seen = 0;
        while seen < buf.len() {
            match io.read(&mut buf[seen..]).await {
                Ok(0) | Err(_) => return,
                Ok(n) => seen += n,
            }
            if buf[..seen].windows(4).any(|w| w == b"\r\n\r\n") {
                break;
            }
        }
        let _ = io.write_all(REFUSAL.as_bytes()).await;
        let _ = io.shutdown().await;
        // Drain what the client still sends (a body) until it closes, so
        // the kernel does not reset the connection under the answer.
        while let Ok(n) = io.read(&mut buf).await {
            if n == 0 {
                break;
            }
        }
    })
    .await;
}

/// A connection that frees its slot when closed.
pub struct Counted {
    io: TcpStream,
    _permit: OwnedSemaphorePermit,
}

impl Listener for LimitedListener {
    type Io = Counted;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Counted, SocketAddr) {
        loop {
            let permit = match Arc::clone(&self.permits).try_acquire_owned() {
                Ok(permit) => permit,
                Err(TryAcquireError::Closed) => {
                    // The semaphore is never closed; wait rather than spin.
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
                // At the cap: wait for a slot, and meanwhile refuse whoever
                // connects (while refusers are free).
                Err(TryAcquireError::NoPermits) => tokio::select! {
                    permit = Arc::clone(&self.permits).acquire_owned() => match permit {
                        Ok(permit) => permit,
                        Err(_) => continue,
                    },
                    Ok(refuser) = Arc::clone(&self.refusing).acquire_owned() => {
                        // Both futures are cancel-safe; a connection leaves
                        // the backlog only here.
                        if let Ok((io, addr)) = self.inner.accept().await {
                            match Arc::clone(&self.permits).try_acquire_owned() {
                                // A slot freed while we waited for it.
                                Ok(permit) => return counted(io, addr, permit),
                                Err(_) => {
                                    tokio::spawn(refuse(io, refuser));
                                }
                            }
                        }
                        continue;
                    }
                },
            };
            match self.inner.accept().await {
                Ok((io, addr)) => return counted(io, addr, permit),
                Err(e) if is_connection_error(&e) => {}
                Err(e) => {
                    tracing::error!(error = %e, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        }
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.inner.local_addr()
    }
}

fn counted(io: TcpStream, addr: SocketAddr, permit: OwnedSemaphorePermit) -> (Counted, SocketAddr) {
    let _ = io.set_nodelay(true);
    (
        Counted {
            io,
            _permit: permit,
        },
        addr,
    )
}

fn is_connection_error(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    )
}

impl AsyncRead for Counted {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl AsyncWrite for Counted {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }
}
