//! What every signed POST paygate makes to an outside address shares: agency notifications and
//! refund instructions to banks alike. One HTTP client (no proxy, no redirects, every address
//! vetted), one way to make and time an attempt, and one retry schedule.

use std::time::{Duration, Instant};

use time::OffsetDateTime;

use super::resolver::outgoing_client;
use crate::admin::notify_url;
use crate::config::Config;

/// The whole attempt, answer included.
pub const DELIVERY_TIMEOUT_MS: u64 = 10_000;
pub const CONNECT_TIMEOUT_MS: u64 = 5_000;
/// Only this much of an answer is read; the rest is dropped with the connection.
pub const MAX_RESPONSE_BYTES: usize = 64 * 1024;
/// Error texts are cut to this length before they are stored.
pub const MAX_ERROR_CHARS: usize = 500;
/// A claim outlives the slowest attempt (10 s) with a wide margin.
pub const LEASE_S: f64 = 60.0;

/// The SET clauses that record an attempt on an outbox row, shared by every outbox so that all
/// of them retry alike: `$3` is whether the attempt was acknowledged (2xx), `$4` its error, `$5`
/// the schedule in seconds (`notify_backoff_s`). After the schedule's last delay the row is
/// dead. `status_column` is the row's delivery status column.
pub fn record_attempt_sql(status_column: &str) -> String {
    format!(
        "{status_column} = CASE WHEN $3 THEN 'delivered'
                               WHEN schedule_attempts < cardinality($5::bigint[]) THEN 'pending'
                               ELSE 'dead' END,
         next_attempt_at = CASE WHEN NOT $3 AND schedule_attempts < cardinality($5::bigint[])
             THEN now() + make_interval(secs => ($5::bigint[])[schedule_attempts + 1]::double precision)
             ELSE next_attempt_at END,
         delivered_at = CASE WHEN $3 THEN now() END,
         attempts = attempts + 1,
         schedule_attempts = schedule_attempts + 1,
         last_error = $4,
         locked_until = NULL"
    )
}

/// The HTTP client of every outgoing delivery: see [`super::resolver`] for the address rules.
pub fn client(config: &Config) -> reqwest::Client {
    outgoing_client(config.notify_allow_private)
        .connect_timeout(Duration::from_millis(CONNECT_TIMEOUT_MS))
        .timeout(Duration::from_millis(DELIVERY_TIMEOUT_MS))
        .user_agent(concat!("paygate/", env!("CARGO_PKG_VERSION")))
        .build()
        .expect("the outgoing HTTP client builds")
}

/// How one attempt ended.
pub struct Outcome {
    pub started_at: OffsetDateTime,
    pub duration: Duration,
    pub http_status: Option<u16>,
    /// `None` when the answer was a 2xx; the error cut to [`MAX_ERROR_CHARS`] otherwise.
    pub error: Option<String>,
}

impl Outcome {
    pub fn delivered(&self) -> bool {
        self.error.is_none()
    }

    /// An attempt that could not even be made (no key to sign with, say).
    pub fn not_attempted(error: String) -> Outcome {
        Outcome {
            started_at: OffsetDateTime::now_utc(),
            duration: Duration::ZERO,
            http_status: None,
            error: Some(cut(error)),
        }
    }
}

fn cut(error: String) -> String {
    error.chars().take(MAX_ERROR_CHARS).collect()
}

/// POSTs `body` (JSON) to `url` with `headers`; a 2xx is an acknowledgement whatever it says.
pub async fn post(
    http: &reqwest::Client,
    allow_private: bool,
    url: &str,
    headers: &[(&str, String)],
    body: Vec<u8>,
) -> Outcome {
    let started_at = OffsetDateTime::now_utc();
    let started = Instant::now();
    let (http_status, error) = match send(http, allow_private, url, headers, body).await {
        Ok(status) if (200..300).contains(&status) => (Some(status), None),
        Ok(status) => (Some(status), Some(format!("answered HTTP {status}"))),
        Err(error) => (None, Some(cut(error))),
    };
    Outcome {
        started_at,
        duration: started.elapsed(),
        http_status,
        error,
    }
}

async fn send(
    http: &reqwest::Client,
    allow_private: bool,
    url: &str,
    headers: &[(&str, String)],
    body: Vec<u8>,
) -> Result<u16, String> {
    let url = url::Url::parse(url).map_err(|err| format!("invalid address: {err}"))?;
    // The resolver guards names; an address written in the URL is checked here.
    let literal = match url.host() {
        Some(url::Host::Ipv4(ip)) => Some(std::net::IpAddr::V4(ip)),
        Some(url::Host::Ipv6(ip)) => Some(std::net::IpAddr::V6(ip)),
        _ => None,
    };
    if let Some(ip) = literal {
        notify_url::classify(ip, allow_private)
            .map_err(|reason| format!("address refused: {reason}"))?;
    }
    let mut request = http
        .post(url)
        .header(reqwest::header::CONTENT_TYPE, "application/json");
    for (name, value) in headers {
        request = request.header(*name, value);
    }
    let mut response = request.body(body).send().await.map_err(describe)?;
    let status = response.status().as_u16();
    // Read (a bounded part of) the answer so that the connection can be reused.
    let mut read = 0;
    while read < MAX_RESPONSE_BYTES {
        match response.chunk().await {
            Ok(Some(chunk)) => read += chunk.len(),
            Ok(None) => break,
            Err(err) => return Err(describe(err)),
        }
    }
    Ok(status)
}

/// A short, stable description of a failed request.
fn describe(err: reqwest::Error) -> String {
    let kind = if err.is_timeout() {
        "timed out"
    } else if err.is_connect() {
        "could not connect"
    } else if err.is_redirect() {
        "redirect refused"
    } else {
        "request failed"
    };
    let mut detail = String::new();
    let mut source: Option<&dyn std::error::Error> = Some(&err);
    while let Some(cause) = source {
        detail = cause.to_string();
        source = cause.source();
    }
    format!("{kind}: {detail}")
}
