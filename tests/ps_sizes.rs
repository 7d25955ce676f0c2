//! End to end: `ps -s`, `GET /containers/json?size=1` and `/system/df`
//! count what an instance wrote over its image (its writable rootfs), as
//! dockerd counts its container layer: `SizeRw` the bytes written (left out
//! when none), `SizeRootFs` the image's size plus those.
#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

mod common;

use common::{Daemon, Env};
use serde_json::Value;

const FSH: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/fsh/fsh.wasm");

/// A store holding `fsh:1`, the file shell guest.
fn env_with_fsh() -> Env {
    let env = Env::new();
    let ctx = env.path("ctx-fsh");
    std::fs::create_dir_all(&ctx).unwrap();
    std::fs::copy(FSH, ctx.join("fsh.wasm")).unwrap();
    std::fs::write(
        ctx.join("wrun.toml"),
        "name = \"fsh\"\nmodule = \"fsh.wasm\"\n",
    )
    .unwrap();
    env.build("fsh:1", ctx.to_str().unwrap());
    env
}

/// The row named `name` of a JSON list of instances.
fn row<'a>(rows: &'a Value, name: &str) -> &'a Value {
    rows.as_array()
        .unwrap()
        .iter()
        .find(|r| r["Names"][0] == format!("/{name}"))
        .unwrap_or_else(|| panic!("no row for {name} in {rows}"))
}

#[test]
fn ps_and_system_df_count_what_an_instance_wrote() {
    let d = Daemon::start(env_with_fsh());
    d.wrun_ok(&[
        "create", "--name", "writer", "fsh:1", "write", "/f", "hello",
    ]);
    d.wrun_ok(&["start", "-a", "writer"]);
    d.wrun_ok(&["create", "--name", "untouched", "fsh:1", "echo", "hi"]);

    let (status, body) = d.request("GET", "/containers/json?all=1&size=1", "");
    assert_eq!(status, 200, "{body}");
    let rows: Value = serde_json::from_str(&body).unwrap();
    let (writer, untouched) = (row(&rows, "writer"), row(&rows, "untouched"));
    assert_eq!(writer["SizeRw"], 5, "{writer}");
    assert!(untouched.get("SizeRw").is_none(), "{untouched}");
    let image = untouched["SizeRootFs"].as_i64().unwrap();
    assert!(image > 0, "{untouched}");
    assert_eq!(writer["SizeRootFs"].as_i64(), Some(image + 5), "{writer}");
    // Without size=1 no size is computed.
    let (_, body) = d.request("GET", "/containers/json?all=1", "");
    let rows: Value = serde_json::from_str(&body).unwrap();
    assert!(row(&rows, "writer").get("SizeRw").is_none());

    let sizes = d.wrun_ok(&["ps", "-a", "-s", "--format", "{{.Names}} {{.Size}}"]);
    let sizes: Vec<&str> = sizes.lines().collect();
    assert!(
        sizes.iter().any(|l| l.starts_with("writer 5B (virtual "))
            && sizes
                .iter()
                .any(|l| l.starts_with("untouched 0B (virtual ")),
        "{sizes:?}"
    );

    let (status, body) = d.request("GET", "/system/df", "");
    assert_eq!(status, 200, "{body}");
    let df: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(row(&df["Containers"], "writer")["SizeRw"], 5);
    let summary = d.wrun_ok(&["system", "df", "--format", "{{.Type}} {{.Size}}"]);
    assert!(summary.lines().any(|l| l == "Containers 5B"), "{summary}");
}
