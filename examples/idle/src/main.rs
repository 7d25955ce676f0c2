//! The idle example: a long-running guest for lifecycle tests and density
//! runs. Prints `ready`, sleeps SECONDS (default one day), prints `done`.
//!
//! Usage: idle [SECONDS]
//!        idle spin     (never sleeps: computes, printing `tick N` now and then)
//!
//! The sleep is one WASI `poll_oneoff`: the host parks the guest on a timer,
//! so an idle instance holds no thread. `spin` is the opposite, a guest
//! that only stops when the host interrupts it (epoch deadlines, pause).

use std::hint::black_box;
use std::process::ExitCode;
use std::time::Duration;

fn spin() -> ! {
    let mut acc: u64 = 0;
    let mut tick: u64 = 0;
    loop {
        for i in 0..(1u64 << 24) {
            acc = black_box(acc.wrapping_mul(6364136223846793005).wrapping_add(i));
        }
        tick += 1;
        println!("tick {tick}");
    }
}

fn main() -> ExitCode {
    let seconds = match std::env::args().nth(1).as_deref() {
        None => 86_400,
        Some("spin") => {
            println!("ready");
            spin();
        }
        Some(s) => match s.parse::<u64>() {
            Ok(s) => s,
            Err(_) => {
                eprintln!("idle: SECONDS must be a whole number (or spin)");
                return ExitCode::from(2);
            }
        },
    };
    println!("ready");
    std::thread::sleep(Duration::from_secs(seconds));
    println!("done");
    ExitCode::SUCCESS
}
