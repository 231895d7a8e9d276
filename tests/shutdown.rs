//! Graceful shutdown as Kubernetes does it: SIGTERM while a request is in flight. The server
//! must stop accepting new connections at once, let the in-flight request finish (it has 25 s,
//! `paygate::startup::SHUTDOWN_TIMEOUT_S`), and then exit with status 0.

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

mod common;

use common::{free_port, DataDir};

/// The server process; killed if the test fails before it exits by itself.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The status line of a plain `GET /readyz`, or `None` when there is no answer (yet).
fn readyz_status(address: SocketAddr) -> Option<String> {
    let mut stream = TcpStream::connect_timeout(&address, Duration::from_secs(1)).ok()?;
    stream
        .set_read_timeout(Some(Duration::from_secs(3)))
        .unwrap();
    stream
        .write_all(b"GET /readyz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .ok()?;
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).ok()?;
    let answer = String::from_utf8_lossy(&answer).into_owned();
    answer.lines().next().map(str::to_owned)
}

/// What a new client gets once the server has been told to stop: `Ok(())` when the connection is
/// refused or answers nothing, `Err(answer)` when the server still serves it.
fn new_connection_is_not_served(address: SocketAddr) -> Result<(), String> {
    let mut stream = match TcpStream::connect_timeout(&address, Duration::from_secs(1)) {
        Ok(stream) => stream,
        Err(err) => {
            // Refused (the listener is closed), or no answer to the handshake at all.
            eprintln!("new connection after SIGTERM: {err}");
            assert!(
                matches!(
                    err.kind(),
                    ErrorKind::ConnectionRefused | ErrorKind::TimedOut
                ),
                "unexpected connect error: {err}"
            );
            return Ok(());
        }
    };
    stream
        .set_read_timeout(Some(Duration::from_secs(2)))
        .unwrap();
    if stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .is_err()
    {
        return Ok(());
    }
    let mut answer = Vec::new();
    let read = stream.read_to_end(&mut answer);
    if answer.is_empty() {
        eprintln!("new connection after SIGTERM: accepted by the kernel, no answer ({read:?})");
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&answer).into_owned())
    }
}

/// Starts `paygate serve` on a free port with `data` and waits until it is ready.
fn serve(data: &DataDir) -> (Server, SocketAddr) {
    let address = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let log = std::fs::File::create(data.log_file()).unwrap();
    let mut server = Server(
        data.command(&["serve"])
            .env("PAYGATE_LISTEN", address.to_string())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap(),
    );
    let deadline = Instant::now() + Duration::from_secs(90);
    while readyz_status(address).as_deref() != Some("HTTP/1.1 200 OK") {
        assert!(
            server.0.try_wait().unwrap().is_none(),
            "serve exited before it was ready:\n{}",
            data.log()
        );
        assert!(
            Instant::now() < deadline,
            "serve did not become ready:\n{}",
            data.log()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    (server, address)
}

/// Waits for serve to exit after SIGTERM (sent at `terminated`): it must exit with status 0
/// within `limit`.
fn exits_cleanly_within(server: &mut Server, data: &DataDir, terminated: Instant, limit: Duration) {
    let status = loop {
        if let Some(status) = server.0.try_wait().unwrap() {
            break status;
        }
        assert!(
            terminated.elapsed() < limit,
            "serve did not exit within {limit:?} of SIGTERM:\n{}",
            data.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    eprintln!("serve exited {:?} after SIGTERM", terminated.elapsed());
    assert!(
        status.success(),
        "serve exited with {status}:\n{}",
        data.log()
    );
}

#[test]
fn sigterm_lets_an_in_flight_request_finish_and_then_exits() {
    let data = DataDir::new("paygate-shutdown");
    let (mut server, address) = serve(&data);

    let output = data
        .command(&["admin", "create-key", "--role", "admin"])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "admin create-key failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let stdout = String::from_utf8(output.stdout).unwrap();
    let key = stdout.lines().last().unwrap().to_owned();
    assert!(key.starts_with("pgk_"), "{stdout}");

    // A request whose head and first half of the body have arrived: it is in flight.
    let body = br#"{"code": "VCB", "name": "Ng\u00e2n h\u00e0ng TMCP Ngo\u1ea1i th\u01b0\u01a1ng Vi\u1ec7t Nam"}"#;
    let (first_half, second_half) = body.split_at(body.len() / 2);
    let mut in_flight = TcpStream::connect(address).unwrap();
    in_flight
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let head = format!(
        "POST /v1/banks HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {key}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    in_flight.write_all(head.as_bytes()).unwrap();
    in_flight.write_all(first_half).unwrap();
    in_flight.flush().unwrap();
    // Let the server read the head, authenticate and start waiting for the rest of the body.
    std::thread::sleep(Duration::from_millis(300));

    // SAFETY: kill has no memory-safety preconditions; the pid is our own child's.
    let sent = unsafe { libc::kill(server.0.id() as i32, libc::SIGTERM) };
    assert_eq!(sent, 0);
    let terminated = Instant::now();
    std::thread::sleep(Duration::from_millis(500));

    // The server stopped accepting: a new client is refused or gets no answer.
    if let Err(answer) = new_connection_is_not_served(address) {
        panic!(
            "a new connection was still served after SIGTERM:\n{answer}\n{}",
            data.log()
        );
    }
    assert!(
        server.0.try_wait().unwrap().is_none(),
        "serve exited with a request in flight:\n{}",
        data.log()
    );

    // The in-flight request completes normally.
    in_flight.write_all(second_half).unwrap();
    in_flight.flush().unwrap();
    let mut answer = Vec::new();
    in_flight.read_to_end(&mut answer).unwrap_or_else(|err| {
        panic!(
            "reading the in-flight answer failed after {:?}: {err}\n{}",
            terminated.elapsed(),
            data.log()
        )
    });
    let answer = String::from_utf8(answer).unwrap();
    let (response_head, response_body) = answer
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("not an HTTP response: {answer:?}\n{}", data.log()));
    assert!(
        response_head.starts_with("HTTP/1.1 201 "),
        "the in-flight request did not succeed:\n{answer}\n{}",
        data.log()
    );
    let bank: serde_json::Value = serde_json::from_str(response_body)
        .unwrap_or_else(|err| panic!("the body is not JSON ({err}): {response_body:?}"));
    assert_eq!(bank["code"], "VCB");
    assert_eq!(bank["name"], "Ngân hàng TMCP Ngoại thương Việt Nam");
    assert!(bank["key_id"].is_string(), "{bank}");
    assert!(
        bank["secret"]
            .as_str()
            .is_some_and(|s| s.starts_with("bsk_")),
        "{bank}"
    );

    // Then the process exits cleanly, within Kubernetes' grace period.
    exits_cleanly_within(&mut server, &data, terminated, Duration::from_secs(30));
    assert!(
        !data.pid_file().exists(),
        "the embedded cluster was stopped with serve"
    );
}

/// One plain HTTP/1.1 exchange (`Connection: close`): the whole answer as text.
fn exchange(address: SocketAddr, request: &str) -> String {
    let mut stream = TcpStream::connect(address).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    stream.write_all(request.as_bytes()).unwrap();
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).unwrap();
    String::from_utf8(answer).unwrap()
}

/// The value of cookie `name` set by `answer`.
fn set_cookie(answer: &str, name: &str) -> String {
    answer
        .lines()
        .filter_map(|line| {
            line.strip_prefix("set-cookie: ")
                .or(line.strip_prefix("Set-Cookie: "))
        })
        .filter_map(|cookie| cookie.strip_prefix(&format!("{name}=")))
        .map(|rest| rest.split(';').next().unwrap_or_default().to_owned())
        .next()
        .unwrap_or_else(|| panic!("no cookie {name} in:\n{answer}"))
}

#[test]
fn sigterm_ends_open_console_streams_instead_of_waiting_out_the_shutdown_timeout() {
    let data = DataDir::new("paygate-shutdown-live");
    let (mut server, address) = serve(&data);
    let output = data
        .command(&["admin", "create-key", "--role", "auditor"])
        .output()
        .unwrap();
    assert!(output.status.success());
    let key = String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .last()
        .unwrap()
        .to_owned();

    // Sign in as a browser does: the form's token is both in a cookie and in the form.
    let form = exchange(
        address,
        "GET /console/sign-in HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
    );
    let pre = set_cookie(&form, "paygate_console_pre");
    let body = format!("csrf={pre}&key={key}");
    let signed_in = exchange(
        address,
        &format!(
            "POST /console/sign-in HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\
             Cookie: paygate_console_pre={pre}\r\n\
             Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        ),
    );
    assert!(signed_in.starts_with("HTTP/1.1 303"), "{signed_in}");
    let session = set_cookie(&signed_in, "paygate_console");

    // An open live stream, as an open overview page holds it.
    let mut live = TcpStream::connect(address).unwrap();
    live.set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    live.write_all(
        format!(
            "GET /console/live HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\
             Cookie: paygate_console={session}\r\n\r\n"
        )
        .as_bytes(),
    )
    .unwrap();
    let mut first = [0u8; 64];
    let read = live.read(&mut first).unwrap();
    assert!(
        String::from_utf8_lossy(&first[..read]).starts_with("HTTP/1.1 200"),
        "the stream is open"
    );

    // SAFETY: kill has no memory-safety preconditions; the pid is our own child's.
    assert_eq!(
        unsafe { libc::kill(server.0.id() as i32, libc::SIGTERM) },
        0
    );
    let terminated = Instant::now();
    // The stream ends by itself (the reader sees its end, not the read timeout)...
    let mut rest = Vec::new();
    live.read_to_end(&mut rest)
        .unwrap_or_else(|err| panic!("the stream did not end: {err}\n{}", data.log()));
    // ... and the process exits without waiting out the shutdown timeout the stream would
    // otherwise have held it for.
    let limit = Duration::from_secs(paygate::startup::SHUTDOWN_TIMEOUT_S - 10);
    exits_cleanly_within(&mut server, &data, terminated, limit);
}
