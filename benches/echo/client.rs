//! Load client for benches/echo_tcp.sh (one file, std only, built with
//! `rustc -O`): one TCP connection to an echo server, SIZE-byte messages.
//!
//!   echo_client pingpong ADDR SECONDS SIZE  -> send one message, read it back, repeat
//!   echo_client stream ADDR SECONDS SIZE    -> send messages without waiting, read the echo
//!
//! Prints one tab-separated line: mode, messages/s, MiB/s echoed, and for
//! pingpong the p50 and p99 round trip in microseconds.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() != 5 {
        eprintln!("usage: echo_client pingpong|stream ADDR SECONDS SIZE");
        std::process::exit(2);
    }
    let secs: f64 = args[3].parse().expect("SECONDS is a number");
    let size: usize = args[4].parse().expect("SIZE is a number");
    let stream = TcpStream::connect(&args[2]).expect("connect");
    stream.set_nodelay(true).expect("nodelay");
    let run_for = Duration::from_secs_f64(secs);
    match args[1].as_str() {
        "pingpong" => pingpong(stream, run_for, size),
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
