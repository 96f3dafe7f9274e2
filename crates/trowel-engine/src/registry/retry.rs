//! Retry policy: which failures are worth another attempt, and how long to wait before it.
//!
//! Connection failures, 5xx, 408 and 429 are transient; other 4xx answers are final. Waits grow
//! exponentially from [`BASE`], are capped per wait and in total, and a server's `Retry-After`
//! (seconds or an HTTP date) replaces the computed wait when it is longer.

use std::time::Duration;

use reqwest::header::{HeaderMap, RETRY_AFTER};

const BASE: Duration = Duration::from_millis(500);
const MAX_WAIT: Duration = Duration::from_secs(30);
/// A server asking for a longer pause than this is not waited for.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(120);
/// All waits of one operation together stay under this.
const MAX_TOTAL: Duration = Duration::from_secs(300);

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

/// Attempt counter and wait schedule for one operation.
#[derive(Debug)]
pub(crate) struct Backoff {
    retries: u32,
    done: u32,
    waited: Duration,
}

impl Backoff {
    /// Allows `retries` further attempts after the first.
    pub(crate) fn new(retries: u32) -> Backoff {
        Backoff { retries, done: 0, waited: Duration::ZERO }
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
        let exp = BASE.saturating_mul(1u32 << self.done.min(16)).min(MAX_WAIT);
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
