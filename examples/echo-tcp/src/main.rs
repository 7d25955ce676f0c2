//! A TCP echo server for `wasm32-wasip2` (`wasi:sockets` through `std::net`):
//! listens on 0.0.0.0:PORT and sends every byte it reads back; and its
//! client, to try a server by name or address.
//!
//! Server: `echo-tcp [PORT [N]]`. PORT is argv[1], else `$PORT`, else 7
//! (the echo service). Connections are served one after another (WASI 0.2
//! guests have no threads). It runs until stopped; with N it exits after N
//! connections.
//!
//! Client: `echo-tcp connect HOST:PORT TEXT [N]` sends TEXT, closes its
//! sending side, reads the echo to the end and prints `echoed: TEXT`; N
//! times over with N (one line at the end). `echo-tcp hold HOST:PORT`
//! connects, sends `hello`, prints `connected` once it is echoed and waits
//! for the connection to end, printing how: `closed` (the peer closed it)
//! or `failed: ERROR` (a reset: wasi-libc reports every failed stream read
//! as EIO). A failure exits 1 with the error's kind.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};

fn main() {
    let mut args = std::env::args().skip(1).peekable();
    match args.peek().map(String::as_str) {
        Some("connect") => {
            let rest: Vec<String> = args.skip(1).collect();
            return connect(&rest);
        }
        Some("hold") => {
            let rest: Vec<String> = args.skip(1).collect();
            return hold(&rest);
        }
        _ => {}
    }
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
        Err(e) => fail(&format!(
            "cannot listen on port {port}: {e} ({:?})",
            e.kind()
        )),
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

/// `connect HOST:PORT TEXT [N]`.
fn connect(args: &[String]) {
    let (Some(addr), Some(text)) = (args.first(), args.get(1)) else {
        fail("usage: echo-tcp connect HOST:PORT TEXT [N]");
    };
    let times: u64 = match args.get(2).map(|n| n.parse()) {
        None => 1,
        Some(Ok(n)) => n,
        Some(Err(_)) => fail(&format!("count {:?} is not a number", args[2])),
    };
    let mut echoed = String::new();
    for _ in 0..times {
        echoed.clear();
        let mut stream = TcpStream::connect(addr.as_str())
            .unwrap_or_else(|e| fail(&format!("cannot connect to {addr}: {e} ({:?})", e.kind())));
        stream
            .write_all(text.as_bytes())
            .and_then(|()| stream.shutdown(Shutdown::Write))
            .and_then(|()| stream.read_to_string(&mut echoed).map(|_| ()))
            .unwrap_or_else(|e| fail(&format!("echo from {addr} failed: {e} ({:?})", e.kind())));
    }
    println!("echoed: {echoed}");
}

/// `hold HOST:PORT`.
fn hold(args: &[String]) {
    let Some(addr) = args.first() else {
        fail("usage: echo-tcp hold HOST:PORT");
    };
    let mut stream = TcpStream::connect(addr.as_str())
        .unwrap_or_else(|e| fail(&format!("cannot connect to {addr}: {e} ({:?})", e.kind())));
    let mut buf = [0u8; 5];
    stream
        .write_all(b"hello")
        .and_then(|()| stream.read_exact(&mut buf))
        .unwrap_or_else(|e| fail(&format!("echo from {addr} failed: {e} ({:?})", e.kind())));
    println!("connected");
    loop {
        match stream.read(&mut buf) {
            Ok(0) => {
                println!("closed");
                return;
            }
            Ok(_) => {}
            Err(e) => {
                println!("failed: {e} ({:?})", e.kind());
                return;
            }
        }
    }
}

fn fail(message: &str) -> ! {
    eprintln!("echo-tcp: {message}");
    std::process::exit(1);
}
