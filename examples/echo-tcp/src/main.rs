//! A TCP echo server for `wasm32-wasip2` (`wasi:sockets` through `std::net`):
//! listens on 0.0.0.0:PORT and sends every byte it reads back.
//!
//! PORT is argv[1], else `$PORT`, else 7 (the echo service). Connections are
//! served one after another (WASI 0.2 guests have no threads). It runs until
//! stopped; with a second argument N it exits after N connections.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};

fn main() {
    let mut args = std::env::args().skip(1);
    let port = args
        .next()
        .or_else(|| std::env::var("PORT").ok())
        .unwrap_or_else(|| "7".to_string());
    let limit: Option<u64> = args.next().map(|n| match n.parse() {
        Ok(n) => n,
        Err(_) => fail(&format!("connection count {n:?} is not a number")),
    });
    let listener = match TcpListener::bind(format!("0.0.0.0:{port}")) {
        Ok(l) => l,
        Err(e) => fail(&format!("cannot listen on port {port}: {e} ({:?})", e.kind())),
    };
    match listener.local_addr() {
        Ok(addr) => println!("echo-tcp listening on {addr}"),
        Err(e) => fail(&format!("cannot read the listening address: {e}")),
    }
    let mut served = 0u64;
    while limit.is_none_or(|l| served < l) {
        match listener.accept() {
            Ok((stream, _peer)) => {
                if let Err(e) = echo(stream) {
                    eprintln!("echo-tcp: connection ended: {e}");
                }
                served += 1;
            }
            Err(e) => eprintln!("echo-tcp: accept failed: {e}"),
        }
    }
}

/// Sends back what arrives until the peer closes its side.
fn echo(mut stream: TcpStream) -> std::io::Result<()> {
    let mut buf = vec![0u8; 64 << 10];
    loop {
        let n = stream.read(&mut buf)?;
        if n == 0 {
            return Ok(());
        }
        stream.write_all(&buf[..n])?;
    }
}

fn fail(message: &str) -> ! {
    eprintln!("echo-tcp: {message}");
    std::process::exit(1);
}
