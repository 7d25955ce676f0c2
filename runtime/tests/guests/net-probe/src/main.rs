//! A WASI 0.2 guest that tries the network and prints one line per attempt:
//! `<what> <target>: ok [detail]` or `<what> <target>: err <ErrorKind> <message>`.
//!
//! Each argument is one attempt:
//!
//! - `connect:ADDR` — a TCP connection to ADDR;
//! - `listen:ADDR` — a TCP listener on ADDR (prints the address it got);
//! - `udp-bind:ADDR` — a UDP socket bound to ADDR;
//! - `udp-send:ADDR` — a datagram to ADDR from an ephemeral port;
//! - `udp-echo:ADDR` — a UDP socket bound to ADDR that sends the first
//!   datagram it gets back to its sender (prints `bound …` first);
//! - `accept:ADDR` — a TCP listener on ADDR that accepts connections and
//!   holds them open until one is refused (prints `bound …` first);
//! - `dns:NAME` — a name lookup;
//! - `sockets:N` — up to N UDP sockets held open at once (prints how many
//!   it got before the first refusal).
//!
//! With one argument that is none of these (the original form), it tries a
//! TCP connect to that address, a UDP bind and a lookup of `localhost`, and
//! exits 0 only if every attempt was refused.

use std::net::{TcpListener, TcpStream, ToSocketAddrs, UdpSocket};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let is_command = |a: &String| a.contains(':') && a.split(':').next().is_some_and(known);
    if args.iter().all(is_command) && !args.is_empty() {
        for a in &args {
            let (what, target) = a.split_once(':').unwrap_or((a, ""));
            println!("{what} {target}: {}", attempt(what, target));
        }
        return;
    }
    legacy(args.first().map_or("127.0.0.1:80", String::as_str));
}

fn known(what: &str) -> bool {
    matches!(
        what,
        "connect" | "listen" | "accept" | "udp-bind" | "udp-send" | "udp-echo" | "dns" | "sockets"
    )
}

fn attempt(what: &str, target: &str) -> String {
    let result = match what {
        "connect" => TcpStream::connect(target).map(|s| {
            s.local_addr()
                .map(|a| format!("from {a}"))
                .unwrap_or_default()
        }),
        "listen" => TcpListener::bind(target).and_then(|l| l.local_addr().map(|a| a.to_string())),
        "udp-bind" => UdpSocket::bind(target).and_then(|s| s.local_addr().map(|a| a.to_string())),
        "udp-send" => UdpSocket::bind("0.0.0.0:0")
            .and_then(|s| s.send_to(b"probe", target).map(|n| format!("{n} bytes"))),
        "udp-echo" => udp_echo(target),
        "accept" => return accept_all(target),
        "dns" => (target, 0)
            .to_socket_addrs()
            .map(|mut a| format!("{:?}", a.next())),
        "sockets" => return sockets(target.parse().unwrap_or(0)),
        _ => return "err Unsupported unknown attempt".into(),
    };
    match result {
        Ok(detail) => format!("ok {detail}").trim_end().to_string(),
        Err(e) => format!("err {:?} {e}", e.kind()),
    }
}

fn accept_all(target: &str) -> String {
    let listener = match TcpListener::bind(target) {
        Ok(l) => l,
        Err(e) => return format!("err {:?} {e}", e.kind()),
    };
    match listener.local_addr() {
        Ok(a) => println!("bound {a}"),
        Err(e) => return format!("err {:?} {e}", e.kind()),
    }
    let mut held = Vec::new();
    loop {
        match listener.accept() {
            Ok((s, _)) => held.push(s),
            Err(e) => return format!("accepted {} then err {:?} {e}", held.len(), e.kind()),
        }
    }
}

fn udp_echo(target: &str) -> std::io::Result<String> {
    let socket = UdpSocket::bind(target)?;
    println!("bound {}", socket.local_addr()?);
    let mut buf = [0u8; 1500];
    let (n, peer) = socket.recv_from(&mut buf)?;
    socket.send_to(&buf[..n], peer)?;
    Ok(format!("echoed {n} bytes to {peer}"))
}

/// Opens UDP sockets until `n` are open or one is refused.
fn sockets(n: usize) -> String {
    let mut open = Vec::new();
    while open.len() < n {
        match UdpSocket::bind("0.0.0.0:0") {
            Ok(s) => open.push(s),
            Err(e) => return format!("opened {} then err {:?} {e}", open.len(), e.kind()),
        }
    }
    format!("opened {}", open.len())
}

fn legacy(addr: &str) {
    let mut leaks = 0;
    match TcpStream::connect(addr) {
        Ok(_) => {
            println!("tcp-connect {addr}: ok");
            leaks += 1;
        }
        Err(e) => println!("tcp-connect {addr}: err {:?} {e}", e.kind()),
    }
    match UdpSocket::bind("0.0.0.0:0") {
        Ok(_) => {
            println!("udp-bind: ok");
            leaks += 1;
        }
        Err(e) => println!("udp-bind: err {:?} {e}", e.kind()),
    }
    match ("localhost", 80).to_socket_addrs() {
        Ok(mut addrs) => {
            println!("dns localhost: ok {:?}", addrs.next());
            leaks += 1;
        }
        Err(e) => println!("dns localhost: err {:?} {e}", e.kind()),
    }
    std::process::exit(if leaks == 0 { 0 } else { 3 });
}
