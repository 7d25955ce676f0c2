//! Network is denied by default: a WASI 0.2 guest can neither connect to a
//! listener the test opened on loopback, nor bind UDP, nor resolve names.

mod common;

use std::net::TcpListener;

use common::{capture, guest_path, prepare_file, runtime};
use wrun_runtime::{InstanceSpec, RunOutcome};

#[test]
fn component_cannot_connect_to_a_loopback_listener_by_default() {
    let listener = TcpListener::bind("127.0.0.1:0").expect("listen");
    listener.set_nonblocking(true).expect("nonblocking");
    let addr = listener.local_addr().expect("addr").to_string();

    let (rt, _scratch) = runtime(4);
    let module = prepare_file(&rt, &guest_path("net-probe"));
    let (out, target) = capture();
    let outcome = rt
        .run_blocking(
            &module,
            InstanceSpec::new(["net-probe", &addr]).stdout(target),
        )
        .expect("run");
    let text = out.text();
    assert_eq!(outcome, RunOutcome::Exited(0), "network reachable: {text}");
    // Refused by the sandbox's policy, not merely unimplemented.
    assert!(
        text.contains(&format!("tcp-connect {addr}: err PermissionDenied")),
        "{text}"
    );
    assert!(text.contains("dns localhost: err"), "{text}");
    assert!(
        matches!(listener.accept(), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock),
        "the guest's connection reached the listener"
    );
}
