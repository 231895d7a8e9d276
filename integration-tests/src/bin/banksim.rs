//! A bank simulator for a bank's integrators: it stands at a `refund_url`, verifies each
//! `refund.requested` instruction paygate sends, and answers with the bank's signed result,
//! printing every exchange as one JSON line (the code is `integration_tests::bank_simulator`).
//!
//! ```sh
//! PAYGATE_NOTIFY_ALLOW_PRIVATE=true paygate serve &          # lets paygate post to localhost
//! BANKSIM_SECRET="$BANK_SECRET" banksim --paygate http://127.0.0.1:8080 --bank VCB --kid "$BANK_KID"
//! # it prints the refund_url to set on the bank (PATCH /v1/banks/VCB), then each exchange
//! ```

use std::time::Duration;

use clap::Parser;
use integration_tests::bank_simulator::{BankSimulator, Verdict};
use integration_tests::signer::Signer;
use serde_json::json;

#[derive(Parser)]
#[command(about = "Simulates a bank's refund_url: verifies paygate's refund instructions and \
                   answers each with a signed result")]
struct Cli {
    /// paygate's base URL.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    paygate: String,
    /// The bank's code.
    #[arg(long)]
    bank: String,
    /// The bank's key id; its secret comes from the environment variable BANKSIM_SECRET (never
    /// from the command line, which other users of the machine can read).
    #[arg(long)]
    kid: String,
    /// Fail every refund with this reason instead of completing it.
    #[arg(long, value_name = "REASON")]
    fail: Option<String>,
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let Some(secret) = std::env::var("BANKSIM_SECRET").ok().filter(|s| !s.is_empty()) else {
        eprintln!("banksim: set BANKSIM_SECRET to the bank's signing secret");
        return std::process::ExitCode::from(2);
    };
    let signer = Signer { bank: cli.bank.clone(), kid: cli.kid, secret };
    let verdict = cli.fail.map_or(Verdict::Complete, Verdict::Fail);
    let simulator =
        BankSimulator::start(cli.paygate.trim_end_matches('/'), vec![signer], verdict).await;
    println!("{}", json!({"refund_url": simulator.url(), "bank": cli.bank}));
    let mut printed = 0;
    loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => return std::process::ExitCode::SUCCESS,
            () = tokio::time::sleep(Duration::from_millis(200)) => {}
        }
        let exchanges = simulator.exchanges();
        for exchange in &exchanges[printed..] {
            let answer = exchange
                .answer
                .as_ref()
                .map(|(status, body)| json!({"status": status, "body": body}));
            println!(
                "{}",
                json!({
                    "instruction": exchange.instruction,
                    "signature_error": exchange.signature_error,
                    "result": exchange.result,
                    "answer": answer,
                })
            );
        }
        printed = exchanges.len();
    }
}
