//! Retry policy: which failures are worth another attempt, and how long to wait before it.
//!
//! Connection failures, 5xx, 408 and 429 are transient; other 4xx answers are final. Waits grow
//! exponentially from [`BASE`], are capped per wait and in total, and a server's `Retry-After`
//! (seconds or an HTTP date) replaces the computed wait when it is longer. Each retry can be
//! reported ([`RetryNotice`]): the engine turns them into `warning` events, so a CI log and a
//! trace say what was retried and why before the build fails or succeeds.

use std::sync::Arc;
use std::time::Duration;

use reqwest::header::{HeaderMap, RETRY_AFTER};

const BASE: Duration = Duration::from_millis(500);
const MAX_WAIT: Duration = Duration::from_secs(30);
/// A server asking for a longer pause than this is not waited for.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(120);
/// All waits of one operation together stay under this.
const MAX_TOTAL: Duration = Duration::from_secs(300);

fn retry_sentence(wait: Duration, attempt: u32, of: u32, why: &dyn std::fmt::Display) -> String {
    format!("retrying in {} (attempt {attempt} of {of}): {why}", super::stall::seconds(wait))
}

/// True for statuses that may succeed when repeated.
pub(crate) fn retryable_status(status: u16) -> bool {
    status == 408 || status == 429 || (500..600).contains(&status)
}

/// The wait a response asks for in `Retry-After`, if any.
pub(crate) fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let v = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(secs) = v.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let when = chrono::DateTime::parse_from_rfc2822(v).ok()?;
    let delta = when.with_timezone(&chrono::Utc) - chrono::Utc::now();
    Some(delta.to_std().unwrap_or(Duration::ZERO))
}

/// Told of every retry, with a sentence saying when, which attempt, and why.
pub type RetryNotice = Arc<dyn Fn(String) + Send + Sync>;

/// Attempt counter and wait schedule for one operation.
pub(crate) struct Backoff {
    retries: u32,
    /// The first wait; each later one doubles.
    base: Duration,
    done: u32,
    waited: Duration,
    notice: Option<RetryNotice>,
}

impl Backoff {
    /// Allows `retries` further attempts after the first.
    pub(crate) fn new(retries: u32) -> Backoff {
        Backoff { retries, base: BASE, done: 0, waited: Duration::ZERO, notice: None }
    }

    /// The same schedule starting from `base` instead of [`BASE`]: for a wait on the
    /// registry's own bookkeeping, which takes milliseconds, not on a network that may heal.
    pub(crate) fn starting_at(mut self, base: Duration) -> Backoff {
        self.base = base;
        self
    }

    /// The same, telling `notice` of each retry [`Backoff::retry`] makes.
    pub(crate) fn reporting(mut self, notice: Option<RetryNotice>) -> Backoff {
        self.notice = notice;
        self
    }

    /// [`Backoff::wait`], first telling the notice why: `retrying in 1 s (attempt 2 of 4): …`.
    /// (`why` is told before the future is made: it is not held across the wait.)
    pub(crate) fn retry(
        &mut self,
        hint: Option<Duration>,
        why: &dyn std::fmt::Display,
    ) -> impl std::future::Future<Output = bool> + Send + 'static {
        let delay = self.next_delay(hint);
        if let (Some(d), Some(n)) = (delay, &self.notice) {
            n(retry_sentence(d, self.done + 1, self.retries + 1, why));
        }
        async move {
            match delay {
                Some(d) => {
                    tokio::time::sleep(d).await;
                    true
                }
                None => false,
            }
        }
    }

    /// Waits before the next attempt and returns true, or returns false when the attempts or the
    /// total waiting time are used up. `hint` is the server's `Retry-After`.
    pub(crate) async fn wait(&mut self, hint: Option<Duration>) -> bool {
        match self.next_delay(hint) {
            Some(d) => {
                tokio::time::sleep(d).await;
                true
            }
            None => false,
        }
    }

    /// Attempts made so far: the first and each one waited for.
    pub(crate) fn attempts(&self) -> u32 {
        self.done + 1
    }

    /// ` after 4 attempts`, for the message of the last of them.
    pub(crate) fn after(&self) -> String {
        match self.attempts() {
            1 => " after 1 attempt".to_string(),
            n => format!(" after {n} attempts"),
        }
    }

    fn next_delay(&mut self, hint: Option<Duration>) -> Option<Duration> {
        if self.done >= self.retries {
            return None;
        }
        if hint.is_some_and(|h| h > MAX_RETRY_AFTER) {
            return None;
        }
        let exp = self.base.saturating_mul(1u32 << self.done.min(16)).min(MAX_WAIT);
        let delay = hint.map_or(exp, |h| h.max(exp));
        if self.waited + delay > MAX_TOTAL {
            return None;
        }
        self.done += 1;
        self.waited += delay;
        Some(delay)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    #[test]
    fn exponential_and_bounded() {
        let mut b = Backoff::new(3);
        assert_eq!(b.next_delay(None), Some(Duration::from_millis(500)));
        assert_eq!(b.next_delay(None), Some(Duration::from_millis(1000)));
        assert_eq!(b.next_delay(Some(Duration::from_secs(5))), Some(Duration::from_secs(5)));
        assert_eq!(b.next_delay(None), None);
        assert_eq!((b.attempts(), b.after()), (4, " after 4 attempts".to_string()));
        assert_eq!(Backoff::new(0).after(), " after 1 attempt");
        let mut none = Backoff::new(0);
        assert_eq!(none.next_delay(None), None);
        let mut big = Backoff::new(100);
        let total: Duration = std::iter::from_fn(|| big.next_delay(None)).sum();
        assert!(total <= MAX_TOTAL);
        assert_eq!(Backoff::new(5).next_delay(Some(Duration::from_secs(3600))), None);
    }

    #[test]
    fn a_short_schedule() {
        let mut b = Backoff::new(3).starting_at(Duration::from_millis(50));
        let waits: Vec<Duration> = std::iter::from_fn(|| b.next_delay(None)).collect();
        assert_eq!(waits, [50, 100, 200].map(Duration::from_millis));
        assert_eq!(b.after(), " after 4 attempts");
    }

    #[test]
    fn retries_are_told() {
        let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
        let s2 = seen.clone();
        let mut b = Backoff::new(1).reporting(Some(Arc::new(move |m| s2.lock().unwrap().push(m))));
        let rt = tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap();
        let why = "pull r: downloading blob sha256:ab: stalled: no data for 30 s";
        assert!(rt.block_on(b.retry(None, &why)));
        assert!(!rt.block_on(b.retry(None, &why)));
        assert_eq!(
            *seen.lock().unwrap(),
            ["retrying in 0.5 s (attempt 2 of 2): pull r: downloading blob sha256:ab: stalled: no data for 30 s"]
        );
    }

    #[test]
    fn statuses() {
        for s in [408, 429, 500, 502, 503] {
            assert!(retryable_status(s), "{s}");
        }
        for s in [400, 401, 403, 404, 405] {
            assert!(!retryable_status(s), "{s}");
        }
    }

    #[test]
    fn retry_after_forms() {
        let mut h = HeaderMap::new();
        h.insert(RETRY_AFTER, HeaderValue::from_static("7"));
        assert_eq!(retry_after(&h), Some(Duration::from_secs(7)));
        h.insert(RETRY_AFTER, HeaderValue::from_static("Wed, 21 Oct 2015 07:28:00 GMT"));
        assert_eq!(retry_after(&h), Some(Duration::ZERO));
        let future = (chrono::Utc::now() + chrono::Duration::seconds(30)).to_rfc2822();
        h.insert(RETRY_AFTER, HeaderValue::from_str(&future).unwrap());
        let d = retry_after(&h).unwrap();
        assert!(d > Duration::from_secs(25) && d <= Duration::from_secs(30), "{d:?}");
        h.insert(RETRY_AFTER, HeaderValue::from_static("soon"));
        assert_eq!(retry_after(&h), None);
    }
}
