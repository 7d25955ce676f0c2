//! End to end: `wrun build`'s progress on a terminal (each step's time
//! after its ` ---> ID`) and as plain lines otherwise (Docker's words only).

#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

mod common;

use std::process::Command;

use common::*;

const FSH: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/fsh/fsh.wasm");

/// ` ---> ID (TIME)` or ` ---> (TIME)`: the ID part, when the line has a
/// step time in the terminal's form (`0.84s`, `12.3s`, `2m05s`).
fn timed(line: &str) -> Option<&str> {
    let rest = line.strip_prefix(" ---> ")?;
    let (id, time) = rest.rsplit_once('(')?;
    let time = time.strip_suffix(")")?;
    let number = time.strip_suffix('s')?;
    let plain = number.replace(['.', 'm'], "");
    (!plain.is_empty() && plain.bytes().all(|b| b.is_ascii_digit())).then_some(id.trim_end())
}

#[test]
fn on_a_terminal_each_step_says_its_time_and_plain_output_has_none() {
    if !have_tool("script") {
        return;
    }
    let env = Env::new();
    let ctx = tempfile::tempdir().unwrap();
    std::fs::copy(FSH, ctx.path().join("fsh.wasm")).unwrap();
    std::fs::write(
        ctx.path().join("Dockerfile"),
        "FROM scratch\nCOPY fsh.wasm /bin/fsh\nRUN [\"/bin/fsh\", \"write\", \"/x\", \"1\"]\nCMD [\"/bin/fsh\", \"cat\", \"/x\"]\n",
    )
    .unwrap();
    let dir = ctx.path().to_str().unwrap();

    // Plain: Docker's lines, no time.
    let plain = env.ok(&["build", "--no-cache", "-t", "t:1", dir]);
    let arrows: Vec<&str> = plain.lines().filter(|l| l.starts_with(" ---> ")).collect();
    assert_eq!(arrows.len(), 4, "{plain}");
    assert!(arrows.iter().all(|l| timed(l).is_none()), "{plain}");

    // On a terminal (script(1) gives the build a pty): a time on each.
    let wrun = env.cmd();
    let mut cmd = Command::new("script");
    for (k, v) in wrun.get_envs() {
        match v {
            Some(v) => cmd.env(k, v),
            None => cmd.env_remove(k),
        };
    }
    let line = format!(
        "{} build --no-cache -t t:1 {dir}",
        wrun.get_program().to_str().unwrap()
    );
    let out = cmd.args(["-qec", &line, "/dev/null"]).output().unwrap();
    let tty = String::from_utf8_lossy(&out.stdout).replace("\r\n", "\n");
    assert!(out.status.success(), "{tty}");
    let arrows: Vec<&str> = tty.lines().filter(|l| l.starts_with(" ---> ")).collect();
    assert_eq!(arrows.len(), 4, "{tty}");
    let ids: Vec<&str> = arrows.iter().map(|l| timed(l).unwrap_or("?")).collect();
    assert_eq!(ids[0], "", "FROM scratch has no ID: {tty}");
    assert!(
        ids[1..]
            .iter()
            .all(|id| id.len() == 12 && id.bytes().all(|b| b.is_ascii_hexdigit())),
        "{tty}"
    );
    // The same IDs as the plain build's.
    let plain_ids: Vec<&str> = plain
        .lines()
        .filter_map(|l| l.strip_prefix(" ---> "))
        .collect();
    assert_eq!(ids, plain_ids);
}
