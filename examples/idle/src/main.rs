//! The idle example: a long-running guest for lifecycle tests and density
//! runs. Prints `ready`, sleeps SECONDS (default one day), prints `done`.
//!
//! Usage: idle [SECONDS]
//!
//! The sleep is one WASI `poll_oneoff`: the host parks the guest on a timer,
//! so an idle instance holds no thread.

use std::process::ExitCode;
use std::time::Duration;

fn main() -> ExitCode {
    let seconds = match std::env::args().nth(1).map(|s| s.parse::<u64>()) {
        None => 86_400,
        Some(Ok(s)) => s,
        Some(Err(_)) => {
            eprintln!("idle: SECONDS must be a whole number");
            return ExitCode::from(2);
        }
    };
    println!("ready");
    std::thread::sleep(Duration::from_secs(seconds));
    println!("done");
    ExitCode::SUCCESS
}
