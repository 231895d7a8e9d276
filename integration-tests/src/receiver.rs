//! A small, real HTTP/1.1 server standing where paygate calls out (an agency's `notify_url`).
//!
//! It listens on 127.0.0.1 on an ephemeral port, records every request it reads (method, path,
//! headers, body bytes, arrival time) and answers as its [`Behaviour`] says: a fixed status, a
//! scripted sequence of answers, or an answer after a delay (to make the caller time out).
//! Requests are recorded when they have been read, before any delay, so a caller that gives up
//! still leaves its request on record.
//!
//! Bodies are read by `Content-Length` (paygate sends every body with one); connections are
//! kept alive for further requests until the caller closes them.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::{JoinHandle, JoinSet};

/// The longest request line or header line read; longer means a broken caller.
const MAX_LINE_BYTES: usize = 16 * 1024;
/// The largest body read.
const MAX_BODY_BYTES: usize = 4 * 1024 * 1024;

/// One answer: a status, sent after `delay`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reply {
    pub status: u16,
    pub delay: Duration,
}

impl Reply {
    /// `status` at once.
    pub fn status(status: u16) -> Reply {
        Reply { status, delay: Duration::ZERO }
    }

    /// `status` after `delay`.
    pub fn delayed(delay: Duration, status: u16) -> Reply {
        Reply { status, delay }
    }
}

/// How the receiver answers: the scripted replies in order, one per request, and `then` for
/// every request after the script is used up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Behaviour {
    pub script: Vec<Reply>,
    pub then: Reply,
}

impl Behaviour {
    /// Always `status`, at once.
    pub fn status(status: u16) -> Behaviour {
        Behaviour { script: Vec::new(), then: Reply::status(status) }
    }

    /// These statuses in order, at once; the last one repeats for ever after.
    pub fn sequence(statuses: &[u16]) -> Behaviour {
        let (last, first) = statuses.split_last().expect("a sequence names at least one status");
        Behaviour {
            script: first.iter().map(|&s| Reply::status(s)).collect(),
            then: Reply::status(*last),
        }
    }

    /// `script` first, one reply per request, then `then` for ever.
    pub fn script(script: Vec<Reply>, then: Reply) -> Behaviour {
        Behaviour { script, then }
    }
}

/// A request as the receiver read it.
#[derive(Debug, Clone)]
pub struct ReceivedRequest {
    pub method: String,
    /// The request target as sent (path and query).
    pub path: String,
    /// Header names lowercased, values as sent, in order.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// When the request had been read completely.
    pub arrived_at: Instant,
    /// The status the receiver answered (or was going to answer, after its delay).
    pub answered: u16,
}

impl ReceivedRequest {
    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.header_values(name).into_iter().next()
    }

    /// Every value of header `name` (case-insensitive).
    pub fn header_values(&self, name: &str) -> Vec<&str> {
        let name = name.to_ascii_lowercase();
        self.headers.iter().filter(|(n, _)| *n == name).map(|(_, v)| v.as_str()).collect()
    }

    /// The body as JSON; panics when it is not.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|err| {
            panic!("the request body is not JSON ({err}): {}", String::from_utf8_lossy(&self.body))
        })
    }
}

struct Shared {
    requests: Mutex<Vec<ReceivedRequest>>,
    script: Mutex<VecDeque<Reply>>,
    then: Mutex<Reply>,
}

impl Shared {
    fn next_reply(&self) -> Reply {
        let scripted = self.script.lock().expect("receiver script").pop_front();
        scripted.unwrap_or_else(|| *self.then.lock().expect("receiver behaviour"))
    }
}

/// A running receiver; it stops (and drops its connections) when dropped.
pub struct Receiver {
    address: SocketAddr,
    shared: Arc<Shared>,
    task: JoinHandle<()>,
}

impl Receiver {
    /// Starts a receiver on 127.0.0.1:0 answering as `behaviour` says.
    pub async fn start(behaviour: Behaviour) -> Receiver {
        let listener =
            TcpListener::bind("127.0.0.1:0").await.expect("bind the receiver to an ephemeral port");
        let address = listener.local_addr().expect("the receiver's address");
        let shared = Arc::new(Shared {
            requests: Mutex::new(Vec::new()),
            script: Mutex::new(behaviour.script.into()),
            then: Mutex::new(behaviour.then),
        });
        let task = tokio::spawn(accept_loop(listener, shared.clone()));
        Receiver { address, shared, task }
    }

    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// The URL to configure as a `notify_url`: `http://127.0.0.1:<port><path>`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.address)
    }

    /// Replaces the behaviour for requests still to come.
    pub fn set_behaviour(&self, behaviour: Behaviour) {
        *self.shared.script.lock().expect("receiver script") = behaviour.script.into();
        *self.shared.then.lock().expect("receiver behaviour") = behaviour.then;
    }

    /// Every request received so far, in order of arrival.
    pub fn requests(&self) -> Vec<ReceivedRequest> {
        self.shared.requests.lock().expect("receiver requests").clone()
    }

    pub fn count(&self) -> usize {
        self.shared.requests.lock().expect("receiver requests").len()
    }

    /// Waits until at least `n` requests arrived and returns all so far; panics, listing what
    /// did arrive, when `within` passes first.
    pub async fn wait_for(&self, n: usize, within: Duration) -> Vec<ReceivedRequest> {
        let deadline = Instant::now() + within;
        loop {
            let requests = self.requests();
            if requests.len() >= n {
                return requests;
            }
            if Instant::now() >= deadline {
                let seen: Vec<String> = requests
                    .iter()
                    .map(|r| {
                        format!(
                            "{} {} (Paygate-Event-Id {:?})",
                            r.method,
                            r.path,
                            r.header("paygate-event-id")
                        )
                    })
                    .collect();
                panic!("expected {n} requests within {within:?}, got {}: {seen:?}", requests.len());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Waits `period` and asserts that no more than `n` requests arrived in all.
    pub async fn assert_no_more_than(&self, n: usize, period: Duration) {
        tokio::time::sleep(period).await;
        let count = self.count();
        assert!(count <= n, "expected at most {n} requests, got {count}: {:?}", self.requests());
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        // Dropping the accept loop drops its JoinSet, which aborts every connection.
        self.task.abort();
    }
}

async fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    let mut connections = JoinSet::new();
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                connections.spawn(serve_connection(stream, shared.clone()));
            }
            Err(err) => {
                eprintln!("receiver: accept failed: {err}");
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
        // Reap finished connections so the set does not grow without bound.
        while connections.try_join_next().is_some() {}
    }
}

/// Serves requests on one connection until the peer closes it or sends something unreadable.
async fn serve_connection(stream: TcpStream, shared: Arc<Shared>) {
    let mut stream = BufReader::new(stream);
    loop {
        let request = match read_request(&mut stream).await {
            Ok(Some(request)) => request,
            Ok(None) => return,
            Err(err) => {
                eprintln!("receiver: unreadable request: {err}");
                let _ = stream
                    .get_mut()
                    .write_all(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
                    .await;
                return;
            }
        };
        let reply = shared.next_reply();
        let close = request.header("connection").is_some_and(|v| v.eq_ignore_ascii_case("close"));
        shared
            .requests
            .lock()
            .expect("receiver requests")
            .push(ReceivedRequest { answered: reply.status, ..request });
        if !reply.delay.is_zero() {
            tokio::time::sleep(reply.delay).await;
        }
        // 1xx, 204 and 304 answers carry no body.
        let body = if matches!(reply.status, 100..=199 | 204 | 304) { "" } else { "ok" };
        let answer = format!(
            "HTTP/1.1 {} {}\r\ncontent-type: text/plain\r\ncontent-length: {}\r\n{}\r\n{body}",
            reply.status,
            reason(reply.status),
            body.len(),
            if close { "connection: close\r\n" } else { "" },
        );
        // The caller may have given up (a timeout); then there is nobody to answer.
        if stream.get_mut().write_all(answer.as_bytes()).await.is_err()
            || stream.get_mut().flush().await.is_err()
            || close
        {
            return;
        }
    }
}

/// Reads one request; `None` when the peer closed the connection before a new one began.
async fn read_request(
    stream: &mut BufReader<TcpStream>,
) -> Result<Option<ReceivedRequest>, String> {
    let request_line = match read_line(stream).await? {
        None => return Ok(None),
        Some(line) => line,
    };
    let mut parts = request_line.split(' ');
    let (method, path, version) = match (parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some(m), Some(p), Some(v), None) if !m.is_empty() && !p.is_empty() => (m, p, v),
        _ => return Err(format!("bad request line {request_line:?}")),
    };
    if !version.starts_with("HTTP/1.") {
        return Err(format!("unsupported version in {request_line:?}"));
    }
    let mut headers = Vec::new();
    loop {
        let line = read_line(stream).await?.ok_or("the connection closed inside the headers")?;
        if line.is_empty() {
            break;
        }
        let (name, value) =
            line.split_once(':').ok_or_else(|| format!("bad header line {line:?}"))?;
        headers.push((name.trim().to_ascii_lowercase(), value.trim().to_owned()));
    }
    let header = |name: &str| headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.clone());
    if header("transfer-encoding").is_some() {
        return Err("chunked bodies are not supported".to_owned());
    }
    let length = match header("content-length") {
        None => 0,
        Some(value) => {
            value.parse::<usize>().map_err(|_| format!("bad content-length {value:?}"))?
        }
    };
    if length > MAX_BODY_BYTES {
        return Err(format!("body of {length} bytes is too large"));
    }
    let mut body = vec![0; length];
    stream.read_exact(&mut body).await.map_err(|err| format!("reading the body: {err}"))?;
    Ok(Some(ReceivedRequest {
        method: method.to_owned(),
        path: path.to_owned(),
        headers,
        body,
        arrived_at: Instant::now(),
        answered: 0,
    }))
}

/// One CRLF- (or LF-) terminated line without its terminator; `None` at a clean end of stream.
async fn read_line(stream: &mut BufReader<TcpStream>) -> Result<Option<String>, String> {
    let mut line = Vec::new();
    let read = (&mut *stream)
        .take(MAX_LINE_BYTES as u64 + 1)
        .read_until(b'\n', &mut line)
        .await
        .map_err(|err| format!("reading a line: {err}"))?;
    if read == 0 {
        return Ok(None);
    }
    if line.last() != Some(&b'\n') {
        return Err("a line too long or cut short".to_owned());
    }
    line.pop();
    if line.last() == Some(&b'\r') {
        line.pop();
    }
    String::from_utf8(line).map(Some).map_err(|_| "a line that is not UTF-8".to_owned())
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        201 => "Created",
        202 => "Accepted",
        204 => "No Content",
        400 => "Bad Request",
        404 => "Not Found",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        _ => "Status",
    }
}
