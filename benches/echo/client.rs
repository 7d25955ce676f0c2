//! Load client for benches/echo_tcp.sh and benches/network.sh (one file,
//! std only, built with `rustc -O`, natively or for `wasm32-wasip2`): one
//! TCP connection to an echo server, SIZE-byte messages.
//!
//!   echo_client pingpong ADDR SECONDS SIZE  -> send one message, read it back, repeat
//!   echo_client stream ADDR SECONDS SIZE    -> send messages without waiting, read the echo
//!   echo_client bulk ADDR SECONDS SIZE      -> send one message, read it back, repeat (one
//!                                              thread: what a WASI 0.2 guest can run)
//!   echo_client connect ADDR COUNT          -> COUNT connections, one after another: each
//!                                              connect timed, then one byte echoed, then closed
//!
//! Prints one tab-separated line: mode, messages/s, MiB/s echoed, and for
//! pingpong the p50 and p99 round trip in microseconds (for connect:
//! connections/s, nothing, and the p50 and p99 connect time). ADDR is
//! HOST:PORT; HOST may be a name.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() == 4 && args[1] == "connect" {
        let count: usize = args[3].parse().expect("COUNT is a number");
        return connects(&args[2], count.max(1));
    }
    if args.len() != 5 {
        eprintln!(
            "usage: echo_client pingpong|stream|bulk ADDR SECONDS SIZE | echo_client connect ADDR COUNT"
        );
        std::process::exit(2);
    }
    let secs: f64 = args[3].parse().expect("SECONDS is a number");
    let size: usize = args[4].parse().expect("SIZE is a number");
    let stream = TcpStream::connect(&args[2]).expect("connect");
    stream.set_nodelay(true).expect("nodelay");
    let run_for = Duration::from_secs_f64(secs);
    match args[1].as_str() {
        "pingpong" => pingpong(stream, run_for, size),
        "bulk" => bulk(stream, run_for, size),
        "stream" => flood(stream, run_for, size),
        other => panic!("unknown mode {other}"),
    }
}

fn pingpong(mut s: TcpStream, run_for: Duration, size: usize) {
    let out = vec![0x5au8; size];
    let mut back = vec![0u8; size];
    let mut rtts: Vec<u32> = Vec::new();
    let start = Instant::now();
    while start.elapsed() < run_for {
        let t = Instant::now();
        s.write_all(&out).expect("write");
        s.read_exact(&mut back).expect("read");
        rtts.push(t.elapsed().as_nanos() as u32);
    }
    let elapsed = start.elapsed().as_secs_f64();
    assert_eq!(back, out, "the echo differs from what was sent");
    rtts.sort_unstable();
    let pct = |p: f64| rtts[((rtts.len() - 1) as f64 * p) as usize] as f64 / 1000.0;
    let n = rtts.len() as f64;
    println!(
        "pingpong\t{:.0}\t{:.2}\t{:.1}\t{:.1}",
        n / elapsed,
        n * size as f64 / elapsed / (1 << 20) as f64,
        pct(0.50),
        pct(0.99)
    );
}

fn flood(s: TcpStream, run_for: Duration, size: usize) {
    let mut writer = s.try_clone().expect("clone");
    let sender = std::thread::spawn(move || {
        let out = vec![0x5au8; size];
        let start = Instant::now();
        let mut sent = 0u64;
        while start.elapsed() < run_for {
            writer.write_all(&out).expect("write");
            sent += size as u64;
        }
        writer
            .shutdown(std::net::Shutdown::Write)
            .expect("shutdown");
        sent
    });
    let mut reader = s;
    let mut buf = vec![0u8; 64 << 10];
    let start = Instant::now();
    let mut got = 0u64;
    loop {
        let n = reader.read(&mut buf).expect("read");
        if n == 0 {
            break;
        }
        got += n as u64;
    }
    let elapsed = start.elapsed().as_secs_f64();
    let sent = sender.join().expect("sender");
    assert_eq!(got, sent, "the echo lost bytes");
    println!(
        "stream\t{:.0}\t{:.2}\t\t",
        got as f64 / size as f64 / elapsed,
        got as f64 / elapsed / (1 << 20) as f64
    );
}

/// The nanoseconds at fraction `p` of sorted `samples`, in microseconds.
fn percentile_us(sorted: &[u32], p: f64) -> f64 {
    sorted[((sorted.len() - 1) as f64 * p) as usize] as f64 / 1000.0
}

fn connects(addr: &str, count: usize) {
    // A name is resolved once, as a client keeps the address it found.
    let to = std::net::ToSocketAddrs::to_socket_addrs(addr)
        .expect("resolve ADDR")
        .next()
        .expect("ADDR has an address");
    let mut times: Vec<u32> = Vec::with_capacity(count);
    let mut byte = [0u8; 1];
    let start = Instant::now();
    for _ in 0..count {
        let t = Instant::now();
        let mut s = TcpStream::connect(to).expect("connect");
        times.push(t.elapsed().as_nanos() as u32);
        s.write_all(b"x").expect("write");
        s.read_exact(&mut byte).expect("read");
    }
    let elapsed = start.elapsed().as_secs_f64();
    times.sort_unstable();
    println!(
        "connect\t{:.0}\t\t{:.1}\t{:.1}",
        count as f64 / elapsed,
        percentile_us(&times, 0.50),
        percentile_us(&times, 0.99)
    );
}

fn bulk(mut s: TcpStream, run_for: Duration, size: usize) {
    let out = vec![0x5au8; size];
    let mut back = vec![0u8; size];
    let mut n = 0u64;
    let start = Instant::now();
    while start.elapsed() < run_for {
        s.write_all(&out).expect("write");
        s.read_exact(&mut back).expect("read");
        n += 1;
    }
    let elapsed = start.elapsed().as_secs_f64();
    assert_eq!(back, out, "the echo differs from what was sent");
    println!(
        "bulk\t{:.0}\t{:.2}\t\t",
        n as f64 / elapsed,
        n as f64 * size as f64 / elapsed / (1 << 20) as f64
    );
}
