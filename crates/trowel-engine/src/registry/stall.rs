//! Stall detection: a transfer fails when no byte has moved for the stall timeout, however long
//! it has been going, so a stalled registry is retried within seconds while a slow but steady
//! upload or download of any size completes.
//!
//! reqwest's own `read_timeout` cannot be this: it resets on each read of a response body, but
//! before the response it is one timer from the first byte of the request to the answer's head,
//! so a large upload at 1 MiB/s would fail after that many seconds however steadily it moved.
//! Instead each attempt has a [`Watch`]: a clock that the request body touches as the network
//! takes its chunks, a response body as chunks arrive, and that fails the attempt when it has
//! not been touched for the limit.
//!
//! "The network took a chunk" means the kernel's socket buffers took it, and on a fast link
//! they hold megabytes: at a slow pace the registry may still be receiving them long after the
//! last chunk was handed over. Their progress is the kernel's to watch: every connection is made
//! with `TCP_USER_TIMEOUT` at the stall timeout, so bytes sent that the peer does not acknowledge
//! (or a window it keeps shut) for that long break the connection. After the last chunk, the
//! wait for the answer gets [`ANSWER_GRACE`] stall timeouts: a registry that took every byte and
//! never answers is stalled too, found a little later.
//!
//! containerd's CRI does the same for pulls (`image_pull_progress_timeout`, 5 min by default;
//! the kubelet's `--image-pull-progress-deadline` before it, 1 min); go-containerregistry, and
//! so kaniko, has only dial (30 s) and TLS handshake (10 s) timeouts and waits for a stalled body
//! forever.

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use tokio::time::Instant;

use bytes::Bytes;
use futures_util::Stream;

/// The default stall timeout: far above any pause a healthy registry or proxy makes (a
/// garbage-collecting registry, a TLS renegotiation, a busy node's scheduling hiccup), far below
/// the 300 s per attempt trowel used to wait, and as long as the connect timeout ggcr gives a
/// dial; three retries of a stalled blob then cost about two minutes, not twenty.
pub const DEFAULT_STALL_TIMEOUT: Duration = Duration::from_secs(30);

/// How many stall timeouts an answer may take after the last chunk of a request body was handed
/// to the kernel (which may still hold it all).
pub(crate) const ANSWER_GRACE: u32 = 4;

/// An attempt that moved no byte for `limit`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stalled {
    pub limit: Duration,
}

impl fmt::Display for Stalled {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "stalled: no data for {}", seconds(self.limit))
    }
}

impl std::error::Error for Stalled {}

/// `30 s`, `1.5 s`: the figure a user gave (as a Go duration), in the words of a message.
pub fn seconds(d: Duration) -> String {
    if d.subsec_millis() == 0 {
        format!("{} s", d.as_secs())
    } else {
        let s = format!("{:.3}", d.as_secs_f64());
        format!("{} s", s.trim_end_matches('0').trim_end_matches('.'))
    }
}

/// The progress clock of one attempt. Clones share it.
#[derive(Clone, Debug)]
pub(crate) struct Watch {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    origin: Instant,
    /// Milliseconds from `origin` to the last progress.
    last: AtomicU64,
    /// While above zero the attempt is waiting on our side (a layer still being written for a
    /// streamed upload), which is not the network's stall.
    held: AtomicU32,
    limit: Duration,
}

impl Watch {
    pub(crate) fn new(limit: Duration) -> Watch {
        Watch {
            inner: Arc::new(Inner { origin: Instant::now(), last: AtomicU64::new(0), held: AtomicU32::new(0), limit }),
        }
    }

    /// Bytes moved: the clock starts again.
    pub(crate) fn touch(&self) {
        self.inner.last.store(self.inner.origin.elapsed().as_millis() as u64, Ordering::Relaxed);
    }

    fn idle(&self) -> Duration {
        if self.inner.held.load(Ordering::Relaxed) > 0 {
            return Duration::ZERO;
        }
        let now = self.inner.origin.elapsed();
        now.saturating_sub(Duration::from_millis(self.inner.last.load(Ordering::Relaxed)))
    }

    /// Runs `fut`, failing when the clock was not touched for the limit. The clock starts now.
    pub(crate) async fn guard<F: Future>(&self, fut: F) -> Result<F::Output, Stalled> {
        self.touch();
        tokio::pin!(fut);
        loop {
            let left = self.inner.limit.saturating_sub(self.idle());
            if left.is_zero() {
                return Err(Stalled { limit: self.inner.limit });
            }
            tokio::select! {
                biased;
                out = &mut fut => return Ok(out),
                () = tokio::time::sleep(left) => {}
            }
        }
    }

    /// No progress is expected before `grace` from now.
    fn touch_ahead(&self, grace: Duration) {
        let at = self.inner.origin.elapsed() + grace;
        self.inner.last.store(at.as_millis() as u64, Ordering::Relaxed);
    }

    /// The body has been handed over: the answer may wait for the socket buffers to drain.
    fn body_ended(&self) {
        self.touch_ahead(self.inner.limit * ANSWER_GRACE);
    }

    /// `stream` as a request body of `len` bytes that touches the clock each time the network
    /// takes a chunk. The end is known by the count: a client that sent `Content-Length` bytes
    /// does not ask the body for more.
    pub(crate) fn body<S, E>(&self, stream: S, len: u64) -> impl Stream<Item = Result<Bytes, E>> + Send + 'static
    where
        S: Stream<Item = Result<Bytes, E>> + Send + 'static,
    {
        use futures_util::StreamExt as _;
        let mut taken = 0u64;
        let watch = self.clone();
        stream.inspect(move |item| {
            watch.touch();
            if let Ok(b) = item {
                taken += b.len() as u64;
                if taken >= len {
                    watch.body_ended();
                }
            }
        })
    }

    /// `rx` as a request body whose chunks are produced as it is sent (a layer being written):
    /// the time spent waiting for the producer is not the network's, and does not count.
    pub(crate) fn produced_body(
        &self,
        rx: tokio::sync::mpsc::Receiver<Bytes>,
    ) -> impl Stream<Item = Result<Bytes, std::io::Error>> + Send + 'static {
        let watch = self.clone();
        futures_util::stream::unfold(rx, move |mut rx| {
            let watch = watch.clone();
            async move {
                watch.inner.held.fetch_add(1, Ordering::Relaxed);
                let next = rx.recv().await;
                watch.touch();
                watch.inner.held.fetch_sub(1, Ordering::Relaxed);
                if next.is_none() {
                    watch.body_ended();
                }
                next.map(|b| (Ok(b), rx))
            }
        })
    }
}

/// The stall a connection error is: the connect timeout and the kernel's `TCP_USER_TIMEOUT`
/// (`ETIMEDOUT`: bytes sent and not taken) are both set to the stall timeout `limit`.
pub(crate) fn of_error(e: &reqwest::Error, limit: Duration) -> Option<Stalled> {
    let mut src: Option<&(dyn std::error::Error + 'static)> = Some(e);
    let mut timed_out = e.is_timeout();
    while let Some(s) = src {
        if s.downcast_ref::<std::io::Error>().is_some_and(|io| io.kind() == std::io::ErrorKind::TimedOut) {
            timed_out = true;
        }
        src = s.source();
    }
    timed_out.then_some(Stalled { limit })
}

/// The next chunk of a response body, or [`Stalled`] when none came for `limit`.
pub(crate) async fn next_chunk(
    resp: &mut reqwest::Response,
    limit: Duration,
) -> Result<Result<Option<Bytes>, reqwest::Error>, Stalled> {
    tokio::time::timeout(limit, resp.chunk()).await.map_err(|_| Stalled { limit })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn figures_read_as_given() {
        assert_eq!(seconds(Duration::from_secs(30)), "30 s");
        assert_eq!(seconds(Duration::from_millis(1500)), "1.5 s");
        assert_eq!(seconds(Duration::from_millis(250)), "0.25 s");
        assert_eq!(Stalled { limit: Duration::from_secs(2) }.to_string(), "stalled: no data for 2 s");
    }

    // Real time (the crate's tokio has no `test-util`), with margins for a loaded machine.
    #[tokio::test]
    async fn progress_keeps_an_attempt_alive_and_silence_ends_it() {
        let limit = Duration::from_millis(600);
        let w = Watch::new(limit);
        // Steady progress for several times the limit: no stall.
        let w2 = w.clone();
        let steady = async move {
            for _ in 0..30 {
                tokio::time::sleep(Duration::from_millis(60)).await;
                w2.touch();
            }
            "done"
        };
        assert_eq!(w.guard(steady).await, Ok("done"));
        // Silence: fails after the limit, not long after.
        let t0 = std::time::Instant::now();
        let silent = tokio::time::sleep(Duration::from_secs(3600));
        assert_eq!(w.guard(silent).await, Err(Stalled { limit }));
        let took = t0.elapsed();
        assert!(took >= limit && took < limit * 5, "{took:?}");
    }

    #[tokio::test]
    async fn waiting_for_the_producer_is_not_a_stall() {
        use futures_util::StreamExt as _;
        let w = Watch::new(Duration::from_millis(300));
        let (tx, rx) = tokio::sync::mpsc::channel(1);
        let body = w.produced_body(rx);
        let producer = async move {
            tokio::time::sleep(Duration::from_millis(1500)).await;
            tx.send(Bytes::from_static(b"late")).await.unwrap();
        };
        let consumer = async move {
            tokio::pin!(body);
            body.next().await.map(|r| r.unwrap())
        };
        let (got, ()) = w.guard(async { tokio::join!(consumer, producer) }).await.unwrap();
        assert_eq!(got, Some(Bytes::from_static(b"late")));
    }

    #[tokio::test]
    async fn the_answer_after_a_whole_body_gets_the_grace() {
        use futures_util::StreamExt as _;
        let limit = Duration::from_millis(300);
        let w = Watch::new(limit);
        let chunks = vec![Ok::<_, std::io::Error>(Bytes::from_static(b"abc")), Ok(Bytes::from_static(b"de"))];
        // The client stops asking once it has the 5 bytes it announced: the count ends the body.
        let body = w.body(futures_util::stream::iter(chunks), 5);
        let answer = |wait: Duration| async move {
            tokio::pin!(body);
            let _ = body.next().await;
            let _ = body.next().await;
            tokio::time::sleep(wait).await;
        };
        // Three limits' wait for the answer is within the grace (four, plus the limit itself).
        assert_eq!(w.guard(answer(limit * 3)).await, Ok(()));
        let w = Watch::new(limit);
        let chunks = vec![Ok::<_, std::io::Error>(Bytes::from_static(b"abcde"))];
        let body = w.body(futures_util::stream::iter(chunks), 5);
        let t0 = std::time::Instant::now();
        let never = async move {
            tokio::pin!(body);
            let _ = body.next().await;
            tokio::time::sleep(Duration::from_secs(3600)).await;
        };
        assert_eq!(w.guard(never).await, Err(Stalled { limit }));
        let took = t0.elapsed();
        assert!(took >= limit * (ANSWER_GRACE + 1) && took < limit * 15, "{took:?}");
    }
}
