#![allow(clippy::unwrap_used)]
//! A guest opening sockets in a loop gets a per-instance error long before
//! the host runs out of descriptors. Alone in its binary, so no other test
//! opens descriptors while this one counts.

mod common;

use common::{capture, guest_path, prepare_file, runtime};
use wrun_runtime::{InstanceSpec, MAX_SOCKETS, NetworkGrants, RunOutcome};

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

#[test]
fn a_guest_opening_sockets_in_a_loop_gets_a_per_instance_error_and_host_fds_stay_intact() {
    let (rt, _scratch) = runtime(4);
    let module = prepare_file(&rt, &guest_path("net-probe"));
    let run = |attempt: &str| {
        let (out, target) = capture();
        let mut spec = InstanceSpec::new(["net-probe", attempt]).stdout(target);
        spec.network = NetworkGrants {
            udp: true,
            ..NetworkGrants::default()
        };
        let outcome = rt.run_blocking(&module, spec).unwrap();
        let text = out.text();
        assert_eq!(outcome, RunOutcome::Exited(0), "{text}");
        text
    };
    // The first run sets up what the runtime keeps for later ones.
    assert_eq!(run("sockets:1"), "sockets 1: opened 1\n");
    let before = open_fds();
    for _ in 0..2 {
        let text = run("sockets:100000");
        // Refused at the instance's cap, not at the host's descriptor limit.
        assert!(
            text.starts_with(&format!("sockets 100000: opened {MAX_SOCKETS} then err")),
            "{text}"
        );
        // Every socket the guest held is closed with the instance.
        assert_eq!(open_fds(), before, "descriptors leaked by the instance");
    }
    // The host can still open sockets.
    std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
}
