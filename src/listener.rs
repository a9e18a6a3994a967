//! The gRPC listener's connections and what one client may hold of them.
//!
//! [`Incoming`] accepts at most `max_connections` at once and, when descriptors run out, says
//! so and backs off instead of spinning. Each [`Connection`] closes itself when its client
//! takes too long to send a first request (`handshake_timeout`: TCP, TLS and the HTTP/2 preface
//! alike), has had no request in flight for `idle_timeout`, or does not take the gateway's
//! answers for `write_stall_timeout`: a client that does not read TCP (the writes stall) or
//! grants no HTTP/2 window (an answer stays unsent). [`TrackStreamsLayer`] tells each
//! connection when requests start, when their answers are ready and when they are sent.
//!
//! The timeouts live in the connection's I/O rather than in hyper because hyper's HTTP/2 server
//! has none of them, and the I/O is what every phase (TCP, TLS, HTTP/2) shares.

use std::collections::BTreeMap;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::AtomicU64;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker, ready};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};
use tokio::time::{Instant, Sleep};
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::server::{Connected, TlsConnectInfo};

use crate::config::Limits;

/// Longest pause of the accept loop while descriptors are exhausted.
const MAX_ACCEPT_BACKOFF: Duration = Duration::from_secs(1);

/// The accepted connections, as a stream for tonic's server.
pub type Incoming = ReceiverStream<io::Result<Connection>>;

/// Accepts connections from `listener` in a task of its own until the returned stream is dropped.
pub fn incoming(listener: TcpListener, limits: Limits) -> Incoming {
    let (tx, rx) = mpsc::channel(1);
    tokio::spawn(async move {
        tokio::select! {
            () = accept_loop(listener, limits, &tx) => {}
            () = tx.closed() => {}
        }
    });
    ReceiverStream::new(rx)
}

async fn accept_loop(
    listener: TcpListener,
    limits: Limits,
    tx: &mpsc::Sender<io::Result<Connection>>,
) {
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let mut backoff = Duration::ZERO;
    loop {
        let Ok(slot) = slots.clone().acquire_owned().await else {
            return;
        };
        match listener.accept().await {
            Ok((stream, remote)) => {
                if !backoff.is_zero() {
                    tracing::info!("accepting connections again");
                    backoff = Duration::ZERO;
                }
                let _ = stream.set_nodelay(true);
                let connection = Connection::new(stream, remote, slot, limits);
                if tx.send(Ok(connection)).await.is_err() {
                    return;
                }
            }
            Err(error) if is_resource_exhaustion(&error) => {
                if backoff.is_zero() {
                    tracing::error!(
                        %error,
                        "cannot accept connections: out of file descriptors or memory; backing off"
                    );
                }
                backoff = (backoff * 2).clamp(Duration::from_millis(10), MAX_ACCEPT_BACKOFF);
                tokio::time::sleep(backoff).await;
            }
            // A connection that failed before it was accepted (reset, aborted): the next one,
            // after a pause short enough not to matter and long enough not to spin if the
            // error persists.
            Err(error) => {
                tracing::debug!(%error, "accept failed");
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        }
    }
}

/// EMFILE, ENFILE, ENOBUFS, ENOMEM: accepting again at once would fail again, and spin.
fn is_resource_exhaustion(error: &io::Error) -> bool {
    matches!(error.raw_os_error(), Some(24 | 23 | 105 | 12))
}

/// What a connection knows of the requests on it; shared with [`TrackStreamsLayer`].
#[derive(Debug)]
pub struct Activity {
    in_flight: AtomicUsize,
    /// A first request arrived: the handshake is over.
    started: AtomicBool,
    /// When the last request in flight ended (or the connection was accepted).
    idle_since: Mutex<Instant>,
    /// Answers ready but not yet sent, by number, with the time each became ready.
    unsent: Mutex<BTreeMap<u64, Instant>>,
    next_answer: AtomicU64,
    /// The connection's reader, woken when its deadline changes (the last request ended).
    reader: Mutex<Option<Waker>>,
}

impl Activity {
    fn new(now: Instant) -> Self {
        Self {
            in_flight: AtomicUsize::new(0),
            started: AtomicBool::new(false),
            idle_since: Mutex::new(now),
            unsent: Mutex::default(),
            next_answer: AtomicU64::new(0),
            reader: Mutex::default(),
        }
    }

    fn begin(self: &Arc<Self>) -> StreamGuard {
        self.started.store(true, Ordering::Release);
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        StreamGuard {
            activity: self.clone(),
            answer: None,
        }
    }

    /// When the oldest answer still unsent became ready.
    fn oldest_unsent(&self) -> Option<Instant> {
        let unsent = self.unsent.lock().expect("activity lock");
        unsent.values().next().copied()
    }

    fn wake_reader(&self) {
        if let Some(reader) = self.reader.lock().expect("activity lock").take() {
            reader.wake();
        }
    }
}

/// Counts one request as in flight on its connection until dropped (with the response body).
pub struct StreamGuard {
    activity: Arc<Activity>,
    /// Set once the answer is ready: its number in [`Activity::unsent`].
    answer: Option<u64>,
}

impl StreamGuard {
    /// The handler answered: from now on the answer waits for the client to take it.
    fn answered(&mut self) {
        let answer = self.activity.next_answer.fetch_add(1, Ordering::Relaxed);
        let mut unsent = self.activity.unsent.lock().expect("activity lock");
        unsent.insert(answer, Instant::now());
        self.answer = Some(answer);
        // No wake here: sending the answer wakes the connection, whose next read arms the
        // deadline.
    }
}

impl Drop for StreamGuard {
    fn drop(&mut self) {
        if let Some(answer) = self.answer {
            let mut unsent = self.activity.unsent.lock().expect("activity lock");
            unsent.remove(&answer);
        }
        let mut idle_since = self.activity.idle_since.lock().expect("activity lock");
        if self.activity.in_flight.fetch_sub(1, Ordering::AcqRel) == 1 {
            *idle_since = Instant::now();
            drop(idle_since);
            self.activity.wake_reader();
        }
    }
}

/// Connection metadata for request extensions: the TCP addresses and the [`Activity`].
#[derive(Clone, Debug)]
pub struct ConnectionInfo {
    pub remote_addr: SocketAddr,
    activity: Arc<Activity>,
}

impl ConnectionInfo {
    /// Finds the connection of a request, over TLS or not.
    pub fn of(extensions: &http::Extensions) -> Option<&ConnectionInfo> {
        extensions.get::<ConnectionInfo>().or_else(|| {
            extensions
                .get::<TlsConnectInfo<ConnectionInfo>>()
                .map(TlsConnectInfo::get_ref)
        })
    }
}

/// An accepted TCP connection that closes itself on the [`Limits`] timeouts.
pub struct Connection {
    stream: TcpStream,
    info: ConnectionInfo,
    accepted: Instant,
    limits: Limits,
    /// When the current idle or handshake period ends; armed by reads.
    read_deadline: Pin<Box<Sleep>>,
    /// When a write that could not make progress gives up; armed by writes.
    write_deadline: Pin<Box<Sleep>>,
    stalled_since: Option<Instant>,
    _slot: OwnedSemaphorePermit,
}

impl Connection {
    fn new(
        stream: TcpStream,
        remote_addr: SocketAddr,
        slot: OwnedSemaphorePermit,
        limits: Limits,
    ) -> Self {
        let now = Instant::now();
        Self {
            stream,
            info: ConnectionInfo {
                remote_addr,
                activity: Arc::new(Activity::new(now)),
            },
            accepted: now,
            limits,
            read_deadline: Box::pin(tokio::time::sleep_until(now + limits.handshake_timeout)),
            write_deadline: Box::pin(tokio::time::sleep_until(now)),
            stalled_since: None,
            _slot: slot,
        }
    }

    /// When the connection must close if nothing changes: the end of the handshake or of the
    /// idle period, or the time the oldest unsent answer gives up; `None` while requests are
    /// being handled.
    fn read_deadline(&self) -> Option<Instant> {
        let activity = &self.info.activity;
        if activity.in_flight.load(Ordering::Acquire) > 0 {
            return activity
                .oldest_unsent()
                .map(|ready| ready + self.limits.write_stall_timeout);
        }
        Some(if activity.started.load(Ordering::Acquire) {
            *activity.idle_since.lock().expect("activity lock") + self.limits.idle_timeout
        } else {
            self.accepted + self.limits.handshake_timeout
        })
    }

    /// Fails once the read deadline has passed; otherwise arms the timer to wake the reader.
    fn poll_read_deadline(&mut self, cx: &mut Context<'_>) -> io::Result<()> {
        // Registered first, so that a request ending after the deadline was read wakes us.
        let mut reader = self.info.activity.reader.lock().expect("activity lock");
        if !reader.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
            *reader = Some(cx.waker().clone());
        }
        drop(reader);
        let Some(deadline) = self.read_deadline() else {
            return Ok(());
        };
        if self.read_deadline.deadline() != deadline {
            self.read_deadline.as_mut().reset(deadline);
        }
        match self.read_deadline.as_mut().poll(cx) {
            Poll::Pending => Ok(()),
            Poll::Ready(()) => {
                let activity = &self.info.activity;
                Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    if activity.in_flight.load(Ordering::Acquire) > 0 {
                        "an answer unsent for longer than limits.write_stall_timeout_secs"
                    } else if activity.started.load(Ordering::Acquire) {
                        "connection idle for longer than limits.idle_timeout_secs"
                    } else {
                        "no request within limits.handshake_timeout_secs"
                    },
                ))
            }
        }
    }

    /// Tracks a write that made no progress; fails when it has stalled too long.
    fn stalled(&mut self, cx: &mut Context<'_>) -> io::Result<()> {
        let since = *self.stalled_since.get_or_insert_with(Instant::now);
        let deadline = since + self.limits.write_stall_timeout;
        if self.write_deadline.deadline() != deadline {
            self.write_deadline.as_mut().reset(deadline);
        }
        match self.write_deadline.as_mut().poll(cx) {
            Poll::Pending => Ok(()),
            Poll::Ready(()) => Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "client took no data for longer than limits.write_stall_timeout_secs",
            )),
        }
    }

    fn poll_progress<T>(
        &mut self,
        cx: &mut Context<'_>,
        write: impl FnOnce(Pin<&mut TcpStream>, &mut Context<'_>) -> Poll<io::Result<T>>,
    ) -> Poll<io::Result<T>> {
        match write(Pin::new(&mut self.stream), cx) {
            Poll::Ready(result) => {
                self.stalled_since = None;
                Poll::Ready(result)
            }
            Poll::Pending => {
                self.stalled(cx)?;
                Poll::Pending
            }
        }
    }
}

impl AsyncRead for Connection {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        // What the client already sent is read before any deadline closes the connection.
        match Pin::new(&mut this.stream).poll_read(cx, buf) {
            Poll::Pending => {
                this.poll_read_deadline(cx)?;
                Poll::Pending
            }
            ready => ready,
        }
    }
}

impl AsyncWrite for Connection {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.get_mut()
            .poll_progress(cx, |stream, cx| stream.poll_write(cx, buf))
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.get_mut()
            .poll_progress(cx, |stream, cx| stream.poll_write_vectored(cx, bufs))
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        // A TCP flush is always ready: it says nothing about whether the client takes data.
        Pin::new(&mut self.get_mut().stream).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_shutdown(cx)
    }
}

impl Connected for Connection {
    type ConnectInfo = ConnectionInfo;

    fn connect_info(&self) -> ConnectionInfo {
        self.info.clone()
    }
}

// === TrackStreamsLayer ===

/// Tells each request's connection when the request starts and when its response is done.
#[derive(Clone, Copy, Debug, Default)]
pub struct TrackStreamsLayer;

impl<S> tower::Layer<S> for TrackStreamsLayer {
    type Service = TrackStreams<S>;

    fn layer(&self, inner: S) -> TrackStreams<S> {
        TrackStreams(inner)
    }
}

#[derive(Clone, Debug)]
pub struct TrackStreams<S>(S);

impl<S, ReqBody, ResBody> tower::Service<http::Request<ReqBody>> for TrackStreams<S>
where
    S: tower::Service<http::Request<ReqBody>, Response = http::Response<ResBody>>,
    S::Future: Send + 'static,
{
    type Response = http::Response<TrackedBody<ResBody>>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<ReqBody>) -> Self::Future {
        let mut guard = ConnectionInfo::of(request.extensions()).map(|info| info.activity.begin());
        let response = self.0.call(request);
        Box::pin(async move {
            let response = response.await?;
            if let Some(guard) = &mut guard {
                guard.answered();
            }
            Ok(response.map(|inner| TrackedBody { inner, guard }))
        })
    }
}

/// A response body that keeps its request counted as in flight until it is done.
pub struct TrackedBody<B> {
    inner: B,
    guard: Option<StreamGuard>,
}

impl<B> http_body::Body for TrackedBody<B>
where
    B: http_body::Body + Unpin,
{
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<B::Data>, B::Error>>> {
        let this = self.get_mut();
        let frame = ready!(Pin::new(&mut this.inner).poll_frame(cx));
        if frame.is_none() {
            this.guard = None;
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    fn limits() -> Limits {
        Limits {
            handshake_timeout: Duration::from_millis(300),
            idle_timeout: Duration::from_millis(300),
            write_stall_timeout: Duration::from_millis(300),
            ..Limits::default()
        }
    }

    /// A [`Connection`] on the server side of a loopback pair, and the client's end.
    async fn pair() -> (Connection, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (server, remote) = listener.accept().await.unwrap();
        let slot = Arc::new(Semaphore::new(1)).acquire_owned().await.unwrap();
        (Connection::new(server, remote, slot, limits()), client)
    }

    #[tokio::test]
    async fn a_client_that_never_reads_stalls_the_writer_into_an_error() {
        let (mut server, _client) = pair().await;
        let chunk = vec![0u8; 64 * 1024];
        let started = Instant::now();
        let error = loop {
            if let Err(error) = server.write_all(&chunk).await {
                break error;
            }
            assert!(started.elapsed() < Duration::from_secs(10), "never stalled");
        };
        assert_eq!(error.kind(), io::ErrorKind::TimedOut);
    }

    #[tokio::test]
    async fn a_silent_client_times_out_of_its_handshake() {
        let (mut server, _client) = pair().await;
        let mut buf = [0u8; 16];
        let error = server.read(&mut buf).await.unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::TimedOut);
    }

    #[tokio::test]
    async fn a_request_in_flight_keeps_the_connection_open() {
        let (mut server, mut client) = pair().await;
        let guard = server.info.activity.begin();
        client.write_all(b"x").await.unwrap();
        tokio::time::sleep(Duration::from_millis(500)).await;
        let mut buf = [0u8; 1];
        assert_eq!(server.read(&mut buf).await.unwrap(), 1);
        drop(guard);
        let error = server.read(&mut buf).await.unwrap_err();
        assert_eq!(
            error.kind(),
            io::ErrorKind::TimedOut,
            "idle after the request"
        );
    }

    #[tokio::test]
    async fn an_answer_the_client_does_not_take_closes_the_connection() {
        let (mut server, _client) = pair().await;
        let mut guard = server.info.activity.begin();
        guard.answered();
        let started = Instant::now();
        let mut buf = [0u8; 1];
        let error = server.read(&mut buf).await.unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::TimedOut);
        assert!(started.elapsed() >= limits().write_stall_timeout);
    }

    #[tokio::test]
    async fn data_already_sent_is_read_before_a_deadline_closes() {
        let (mut server, mut client) = pair().await;
        client.write_all(b"late").await.unwrap();
        tokio::time::sleep(Duration::from_millis(500)).await;
        let mut buf = [0u8; 4];
        server.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"late");
    }
}
