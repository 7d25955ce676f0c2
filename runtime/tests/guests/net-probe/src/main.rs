//! A WASI 0.2 guest that tries the network: a TCP connect to the address in
//! argv[1], a UDP bind, and a name lookup. Prints one line per attempt and
//! exits 0 only if every attempt was refused.

use std::net::{TcpStream, ToSocketAddrs, UdpSocket};

fn main() {
    let addr = std::env::args().nth(1).unwrap_or_else(|| "127.0.0.1:80".to_string());
    let mut leaks = 0;
    match TcpStream::connect(&addr) {
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
