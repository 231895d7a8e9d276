//! The statement reader's memory stays bounded whatever the file holds: `paygate reconcile` is
//! run as a child process on generated statements (100 MB of blank lines; one line of 10 MB) and
//! its peak resident memory, as the kernel reports it when the child is reaped, must stay under
//! [`PEAK_RSS_LIMIT_BYTES`].

mod common;

use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::Stdio;

use common::{DataDir, Server};
use serde_json::Value;

/// The most memory the reconcile process may hold at its peak, statement included.
const PEAK_RSS_LIMIT_BYTES: u64 = 64 * 1024 * 1024;
const BLANK_LINES_FILE_BYTES: usize = 100 * 1024 * 1024;
const LONG_LINE_BYTES: usize = 10 * 1024 * 1024;
const BANK: &str = "VCB";
const DATE: &str = "2026-11-22";
const HEADER: &[u8] = b"bank_txn_id,payment_id,amount,paid_at,currency\n";

/// What a reconcile child printed, and its peak resident memory.
struct Reconciled {
    run: Value,
    peak_rss_bytes: u64,
}

/// Runs `paygate reconcile` on `statement` and reaps it with `wait4`, which reports the peak
/// resident memory of that one process.
fn reconcile(data: &DataDir, statement: &Path, out: &Path) -> Reconciled {
    let stdout_path = data.0.join("reconcile.out");
    let stderr_path = data.0.join("reconcile.err");
    // The child is reaped below with `wait4` (for its resource usage), not `Child::wait`.
    #[allow(clippy::zombie_processes)]
    let child = data
        .command(&[
            "reconcile",
            "--bank",
            BANK,
            "--date",
            DATE,
            "--statement",
            statement.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
            "--format",
            "json",
        ])
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&stdout_path).unwrap())
        .stderr(std::fs::File::create(&stderr_path).unwrap())
        .spawn()
        .unwrap();
    let pid = child.id() as libc::pid_t;
    let mut status: libc::c_int = 0;
    // SAFETY: an all-zero `rusage` is a valid value of the plain C struct.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `pid` is our own child, not yet reaped (std never waits for it once this call
    // has), and both pointers are to live locals.
    let reaped = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    assert_eq!(reaped, pid, "wait4: {}", std::io::Error::last_os_error());
    let stderr = std::fs::read_to_string(&stderr_path).unwrap_or_default();
    assert!(
        libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        "reconcile failed ({status}): {stderr}"
    );
    let stdout = std::fs::read_to_string(&stdout_path).unwrap();
    let run: Value = serde_json::from_str(&stdout).unwrap_or_else(|err| {
        panic!("stdout is the run as JSON ({err}): {stdout}\nstderr: {stderr}")
    });
    Reconciled {
        run,
        // Linux reports `ru_maxrss` in kibibytes.
        peak_rss_bytes: u64::try_from(usage.ru_maxrss).unwrap() * 1024,
    }
}

/// Writes `parts` to a new file in `dir`; each part is `(bytes, times)`.
fn generate(dir: &Path, name: &str, parts: &[(&[u8], usize)]) -> PathBuf {
    let path = dir.join(name);
    let mut file = BufWriter::with_capacity(1024 * 1024, std::fs::File::create(&path).unwrap());
    for (bytes, times) in parts {
        if bytes.len() == 1 {
            // Single bytes are written a mebibyte at a time.
            let block = vec![bytes[0]; 1024 * 1024];
            let mut left = *times;
            while left > 0 {
                let n = left.min(block.len());
                file.write_all(&block[..n]).unwrap();
                left -= n;
            }
        } else {
            for _ in 0..*times {
                file.write_all(bytes).unwrap();
            }
        }
    }
    file.flush().unwrap();
    path
}

fn count(run: &Value, outcome: &str) -> i64 {
    run["summary"][outcome]["count"]
        .as_i64()
        .unwrap_or_else(|| panic!("a count of {outcome}: {run}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn statements_of_endless_blank_lines_or_one_huge_line_are_read_in_bounded_memory() {
    let data = DataDir::new("paygate-mem");
    let files = tempfile::tempdir_in(&data.0).unwrap();
    let server = Server::start(&data).await;
    let output = data
        .command(&["admin", "create-key", "--role", "admin"])
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    let key = String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .last()
        .unwrap()
        .to_owned();
    let response = reqwest::Client::new()
        .post(format!("{}/v1/banks", server.base))
        .bearer_auth(&key)
        .json(&serde_json::json!({"code": BANK, "name": "Vietcombank"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);

    // A header, then 100 MB of blank lines: an empty statement.
    let blank = generate(
        files.path(),
        "blank.csv",
        &[(HEADER, 1), (b"\n", BLANK_LINES_FILE_BYTES)],
    );
    let blank_out = files.path().join("blank.json");
    let reconciled = tokio::task::block_in_place(|| reconcile(&data, &blank, &blank_out));
    std::fs::remove_file(&blank).unwrap();
    println!(
        "100 MB of blank lines: peak RSS {} KiB",
        reconciled.peak_rss_bytes / 1024
    );
    assert_eq!(reconciled.run["statement_lines"], 0, "{}", reconciled.run);
    for outcome in ["matched", "missing_in_gateway", "invalid_line"] {
        assert_eq!(count(&reconciled.run, outcome), 0);
    }
    assert!(
        reconciled.peak_rss_bytes < PEAK_RSS_LIMIT_BYTES,
        "peak RSS {} bytes",
        reconciled.peak_rss_bytes
    );

    // One line of 10 MB, then a readable line: the first is an invalid line, the second counts.
    let long = generate(
        files.path(),
        "long.csv",
        &[
            (HEADER, 1),
            (b"FT-LONG,pay_long,150000,2026-11-22T03:00:00Z,VND,", 1),
            (b"x", LONG_LINE_BYTES),
            (b"\nFT-NEXT,pay_next,70000,2026-11-22T03:00:00Z,VND\n", 1),
        ],
    );
    let long_out = files.path().join("long.json");
    let reconciled = tokio::task::block_in_place(|| reconcile(&data, &long, &long_out));
    std::fs::remove_file(&long).unwrap();
    println!(
        "one line of 10 MB: peak RSS {} KiB",
        reconciled.peak_rss_bytes / 1024
    );
    assert_eq!(reconciled.run["statement_lines"], 2, "{}", reconciled.run);
    assert_eq!(count(&reconciled.run, "invalid_line"), 1);
    assert_eq!(count(&reconciled.run, "missing_in_gateway"), 1);
    let items: Value = serde_json::from_slice(&std::fs::read(&long_out).unwrap()).unwrap();
    let items = items.as_array().expect("the items as a JSON array");
    assert_eq!(items[0]["outcome"], "invalid_line");
    assert_eq!(items[0]["line"], 2);
    assert_eq!(items[0]["detail"], "the line is longer than 65536 bytes");
    assert_eq!(items[1]["line"], 3);
    assert_eq!(items[1]["bank_txn_id"], "FT-NEXT");
    assert!(
        reconciled.peak_rss_bytes < PEAK_RSS_LIMIT_BYTES,
        "peak RSS {} bytes",
        reconciled.peak_rss_bytes
    );

    server.terminate();
}
