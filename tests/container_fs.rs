#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test
//! The verbs on an instance's writable rootfs (issue 13): `diff`, `export`
//! and `cp` (the `/changes`, `/export` and `/archive` routes), through
//! `wrun` and the stock docker client against a daemon, with the `fsh`
//! file shell as guest. What dockerd 20.10 (overlay2) does was checked
//! first: its lines, its `cp` rules for trailing `/` and `/.`, existing or
//! missing destinations, its words and statuses. Then the attacks: hostile
//! tars put into an instance, and a directory swapped for a symlink to a
//! host directory while copies run, neither reaching outside the instance.

mod common;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use common::{Daemon, Env, end_tar, have_tool, raw_entry};

const FSH: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/fsh/fsh.wasm");

/// What the image holds at `/etc/motd`.
const MOTD: &str = "from the image";

/// A daemon on a store holding `fsh:1` (the file shell, `/etc/motd`).
fn daemon() -> Daemon {
    let env = Env::new();
    let ctx = env.path("ctx");
    std::fs::create_dir_all(&ctx).unwrap();
    std::fs::copy(FSH, ctx.join("fsh.wasm")).unwrap();
    std::fs::write(ctx.join("motd"), MOTD).unwrap();
    std::fs::write(
        ctx.join("wrun.toml"),
        "name = \"fsh\"\nmodule = \"fsh.wasm\"\n\n[[copy]]\nsrc = \"motd\"\ndest = \"/etc/motd\"\n",
    )
    .unwrap();
    env.ok(&["build", "-q", "-t", "fsh:1", ctx.to_str().unwrap()]);
    Daemon::start(env)
}

/// Runs the fsh `script` in a new instance `name` and waits for its end.
fn run_fsh(d: &Daemon, name: &str, script: &[&str]) {
    let mut args = vec!["run", "-d", "--name", name, "fsh:1"];
    args.extend_from_slice(script);
    d.wrun_ok(&args);
    assert_eq!(d.wrun_ok(&["wait", name]).trim(), "0", "{name}: {script:?}");
}

/// The instance of the `cp` tests: a tree with a file, a directory, a
/// symlink to a directory and a relative one, and a changed image file.
fn run_tree(d: &Daemon, name: &str) {
    run_fsh(
        d,
        name,
        &[
            "mkdir",
            "/data",
            ";",
            "write",
            "/data/a",
            "hi",
            ";",
            "mkdir",
            "/data/sub",
            ";",
            "write",
            "/data/sub/b",
            "bbb",
            ";",
            "ln-s",
            "a",
            "/data/rel",
            ";",
            "ln-s",
            "/data",
            "/link",
            ";",
            "write",
            "/etc/motd",
            "changed",
        ],
    );
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// `wrun` expected to fail: its one error line.
fn wrun_fails(d: &Daemon, args: &[&str]) -> String {
    let out = d.wrun(args);
    assert!(!out.status.success(), "wrun {args:?} should fail");
    stderr(&out)
}

/// Every path below `dir` with what it is: `f:CONTENT`, `d`, `l:TARGET`.
fn tree(dir: &Path) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(p) = stack.pop() {
        for e in std::fs::read_dir(&p).unwrap() {
            let path = e.unwrap().path();
            let rel = path.strip_prefix(dir).unwrap().display().to_string();
            let m = std::fs::symlink_metadata(&path).unwrap();
            let what = if m.file_type().is_symlink() {
                format!("l:{}", std::fs::read_link(&path).unwrap().display())
            } else if m.is_dir() {
                stack.push(path);
                "d".into()
            } else {
                format!(
                    "f:{}",
                    String::from_utf8_lossy(&std::fs::read(&path).unwrap())
                )
            };
            out.insert(rel, what);
        }
    }
    out
}

fn entries(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// Each entry of a tar: its name and `f:CONTENT`, `d`, `l:TARGET`.
fn tar_entries(bytes: &[u8]) -> Vec<(String, String)> {
    let mut a = tar::Archive::new(bytes);
    a.entries()
        .unwrap()
        .map(|e| {
            let mut e = e.unwrap();
            let name = String::from_utf8_lossy(&e.path_bytes()).into_owned();
            let what = match e.header().entry_type() {
                tar::EntryType::Directory => "d".to_string(),
                tar::EntryType::Symlink => format!(
                    "l:{}",
                    String::from_utf8_lossy(&e.link_name_bytes().unwrap())
                ),
                _ => {
                    let mut s = Vec::new();
                    e.read_to_end(&mut s).unwrap();
                    format!("f:{}", String::from_utf8_lossy(&s))
                }
            };
            (name, what)
        })
        .collect()
}

/// One raw request with a binary body: status, headers (lower-case
/// names), body.
fn raw_request(
    d: &Daemon,
    method: &str,
    path: &str,
    body: &[u8],
) -> (u16, BTreeMap<String, String>, Vec<u8>) {
    let mut s = UnixStream::connect(&d.socket).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(120))).unwrap();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: application/x-tar\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .unwrap();
    // A daemon that answers before reading it all may close early.
    let _ = s.write_all(body);
    let mut answer = Vec::new();
    s.read_to_end(&mut answer).unwrap();
    let end = answer
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("an HTTP answer");
    let head = String::from_utf8_lossy(&answer[..end]).into_owned();
    let mut lines = head.lines();
    let status: u16 = lines
        .next()
        .unwrap()
        .split_whitespace()
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers: BTreeMap<String, String> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let mut body = answer[end + 4..].to_vec();
    if headers
        .get("transfer-encoding")
        .is_some_and(|t| t == "chunked")
    {
        body = dechunk(&body);
    }
    (status, headers, body)
}

fn dechunk(mut b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let eol = b.windows(2).position(|w| w == b"\r\n").unwrap();
        let n = usize::from_str_radix(std::str::from_utf8(&b[..eol]).unwrap().trim(), 16).unwrap();
        if n == 0 {
            return out;
        }
        out.extend_from_slice(&b[eol + 2..eol + 2 + n]);
        b = &b[eol + 2 + n + 2..];
    }
}

fn put_tar(d: &Daemon, instance: &str, query: &str, tar: &[u8]) -> (u16, String) {
    let (status, _, body) = raw_request(
        d,
        "PUT",
        &format!("/containers/{instance}/archive?{query}"),
        tar,
    );
    (status, String::from_utf8_lossy(&body).into_owned())
}

/// The stat header of a path, decoded.
fn path_stat(d: &Daemon, instance: &str, path: &str) -> (u16, serde_json::Value) {
    let (status, headers, _) = raw_request(
        d,
        "HEAD",
        &format!("/containers/{instance}/archive?path={path}"),
        b"",
    );
    let stat = headers
        .get("x-docker-container-path-stat")
        .map(|v| {
            let json = base64_decode(v);
            serde_json::from_slice(&json).unwrap()
        })
        .unwrap_or(serde_json::Value::Null);
    (status, stat)
}

fn base64_decode(v: &str) -> Vec<u8> {
    let out = Command::new("base64")
        .arg("-d")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            c.stdin.take().unwrap().write_all(v.as_bytes())?;
            c.wait_with_output()
        })
        .unwrap();
    out.stdout
}

/// Every file under the store's image snapshots with its content: what no
/// instance's copy may change.
fn snapshots(d: &Daemon) -> BTreeMap<String, String> {
    let root = d.env.root().join("snapshots");
    if root.exists() {
        tree(&root)
    } else {
        BTreeMap::new()
    }
}

#[test]
fn diff_and_export_show_the_instances_writes_as_docker_does() {
    let d = daemon();
    d.wrun_ok(&["create", "--name", "fresh", "fsh:1", "ls", "/"]);
    // dockerd answers `null`, not `[]`, for an instance that changed nothing.
    let (status, body) = d.request("GET", "/containers/fresh/changes", "");
    assert_eq!((status, body.trim()), (200, "null"));
    assert_eq!(d.wrun_ok(&["diff", "fresh"]), "");

    run_fsh(
        &d,
        "c1",
        &[
            "mkdir",
            "/data",
            ";",
            "write",
            "/data/a",
            "hi",
            ";",
            "write",
            "/etc/motd",
            "changed",
            ";",
            "ln-s",
            "/data",
            "/link",
        ],
    );
    let lines = "A /data\nA /data/a\nC /etc\nC /etc/motd\nA /link\n";
    assert_eq!(d.wrun_ok(&["diff", "c1"]), lines);
    let (status, body) = d.request("GET", "/v1.41/containers/c1/changes", "");
    assert_eq!(status, 200);
    let json: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(json[0], serde_json::json!({"Path": "/data", "Kind": 1}));
    assert_eq!(json[2], serde_json::json!({"Path": "/etc", "Kind": 0}));
    assert!(wrun_fails(&d, &["diff", "nope"]).contains("No such container: nope"));

    let out = d.env.path("c1.tar");
    d.wrun_ok(&["export", "-o", out.to_str().unwrap(), "c1"]);
    let exported = tar_entries(&std::fs::read(&out).unwrap());
    let names: Vec<&str> = exported.iter().map(|(n, _)| n.as_str()).collect();
    // docker export: names relative to the root, no root entry, sorted.
    assert_eq!(
        names,
        ["data/", "data/a", "etc/", "etc/motd", "fsh.wasm", "link"]
    );
    let by_name: BTreeMap<_, _> = exported.into_iter().collect();
    assert_eq!(by_name["data/a"], "f:hi");
    assert_eq!(by_name["etc/motd"], "f:changed");
    assert_eq!(by_name["link"], "l:/data");
    // To a pipe it streams the same tar.
    let piped = d.wrun(&["export", "c1"]);
    assert!(piped.status.success());
    assert_eq!(piped.stdout, std::fs::read(&out).unwrap());

    if have_tool("docker") {
        assert_eq!(d.docker_ok(&["diff", "c1"]), lines);
        let via_docker = d.docker(&["export", "c1"]);
        assert_eq!(via_docker.stdout, std::fs::read(&out).unwrap());
    }
}

#[test]
fn cp_out_follows_dockers_rules_for_paths_and_destinations() {
    let d = daemon();
    run_tree(&d, "c1");
    let host = d.env.path("host");
    std::fs::create_dir_all(&host).unwrap();
    let h = |name: &str| host.join(name).to_str().unwrap().to_string();
    let data = entries(&[
        ("a", "f:hi"),
        ("rel", "l:a"),
        ("sub", "d"),
        ("sub/b", "f:bbb"),
    ]);

    d.wrun_ok(&["cp", "c1:/etc/motd", &h("m1")]);
    assert_eq!(std::fs::read_to_string(h("m1")).unwrap(), "changed");
    // A missing destination takes the directory's contents under its name.
    d.wrun_ok(&["cp", "c1:/data", &h("d1")]);
    assert_eq!(tree(&host.join("d1")), data);
    // An existing directory gets the directory itself...
    std::fs::create_dir(h("ed")).unwrap();
    d.wrun_ok(&["cp", "c1:/data", &h("ed")]);
    assert_eq!(tree(&host.join("ed/data")), data);
    // ...or, with `/.`, what is in it.
    std::fs::create_dir(h("ed2")).unwrap();
    d.wrun_ok(&["cp", "c1:/data/.", &h("ed2")]);
    assert_eq!(tree(&host.join("ed2")), data);
    // A symlink is copied as one; -L copies what it leads to.
    d.wrun_ok(&["cp", "c1:/link", &h("l1")]);
    assert_eq!(std::fs::read_link(h("l1")).unwrap(), Path::new("/data"));
    d.wrun_ok(&["cp", "-L", "c1:/link", &h("l2")]);
    assert_eq!(tree(&host.join("l2")), data);
    // An existing file is replaced.
    std::fs::write(h("old"), "old").unwrap();
    d.wrun_ok(&["cp", "c1:/data/a", &h("old")]);
    assert_eq!(std::fs::read_to_string(h("old")).unwrap(), "hi");

    // Docker's refusals, word for word.
    for (src, dst, words) in [
        ("c1:/etc/motd", h("nodir/"), "no such directory".to_string()),
        (
            "c1:/etc/motd",
            h("nodir/x"),
            format!(
                "invalid output path: directory \"{}\" does not exist",
                h("nodir")
            ),
        ),
        ("c1:/data", h("m1"), "cannot copy directory".to_string()),
        (
            "c1:/nope",
            h("x"),
            "Error response from daemon: Could not find the file /nope in container c1".into(),
        ),
        (
            "c1:/etc/motd/",
            h("x"),
            "Error response from daemon: lstat /etc/motd/: not a directory".into(),
        ),
        (
            "c1:",
            h("x"),
            "Error response from daemon: bad parameter: pathcannot be empty".into(),
        ),
        (
            "c1:/a",
            "c1:/b".into(),
            "copying between containers is not supported".into(),
        ),
        (
            "a",
            "b".into(),
            "must specify at least one container source".into(),
        ),
    ] {
        let err = wrun_fails(&d, &["cp", src, &dst]);
        assert_eq!(err.trim(), format!("Error: {words}"), "cp {src} {dst}");
    }

    // `-` writes the tar itself, named as docker names it.
    let out = d.wrun(&["cp", "c1:/data/", "-"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let names: Vec<String> = tar_entries(&out.stdout).into_iter().map(|e| e.0).collect();
    assert_eq!(
        names,
        ["data/", "data/a", "data/rel", "data/sub/", "data/sub/b"]
    );
    let out = d.wrun(&["cp", "c1:/data/.", "-"]);
    let names: Vec<String> = tar_entries(&out.stdout).into_iter().map(|e| e.0).collect();
    assert_eq!(names[..2], ["./", "./a"]);

    // The stat header: Go's FileMode bits, the link resolved in the instance.
    let (status, stat) = path_stat(&d, "c1", "/link");
    assert_eq!(status, 200);
    assert_eq!(stat["name"], "link");
    assert_eq!(stat["mode"], 134_218_239u32); // ModeSymlink | 0777
    assert_eq!(stat["linkTarget"], "/data");
    let (_, stat) = path_stat(&d, "c1", "/data/rel");
    assert_eq!(stat["linkTarget"], "/data/a");
    let (_, stat) = path_stat(&d, "c1", "/data/");
    assert_eq!(
        (stat["name"].as_str(), stat["mode"].as_u64()),
        (Some("data"), Some(2_147_484_141))
    );
    let (status, _) = path_stat(&d, "c1", "/nope");
    assert_eq!(status, 404);

    if have_tool("docker") {
        let dk = h("dk");
        d.docker_ok(&["cp", "c1:/data", &dk]);
        assert_eq!(tree(&host.join("dk")), data);
        let out = d.docker(&["cp", "c1:/nope", &h("y")]);
        assert!(
            stderr(&out).contains("Could not find the file /nope in container c1"),
            "{}",
            stderr(&out)
        );
    }
}

#[test]
fn cp_in_lands_where_docker_puts_it_and_the_guest_reads_it() {
    let d = daemon();
    let host = d.env.path("host");
    std::fs::create_dir_all(host.join("updir/inner")).unwrap();
    std::fs::write(host.join("up.txt"), "up").unwrap();
    std::fs::write(host.join("updir/inner/f"), "u").unwrap();
    let h = |name: &str| host.join(name).to_str().unwrap().to_string();
    d.wrun_ok(&[
        "create",
        "--name",
        "rr",
        "fsh:1",
        "cat",
        "/etc/up.txt",
        ";",
        "cat",
        "/new/inner/f",
        ";",
        "cat",
        "/etc/inner/f",
        ";",
        "cat",
        "/etc/motd",
    ]);
    d.wrun_ok(&["cp", &h("up.txt"), "rr:/etc/"]);
    // A missing destination directory takes the source's contents.
    d.wrun_ok(&["cp", &h("updir"), "rr:/new"]);
    // `/.` copies what is in the directory into an existing one.
    d.wrun_ok(&["cp", &h("updir/."), "rr:/etc"]);
    // An existing file is replaced.
    std::fs::write(host.join("motd"), "replaced").unwrap();
    d.wrun_ok(&["cp", &h("motd"), "rr:/etc/motd"]);
    for (src, dst, words) in [
        (h("up.txt"), "rr:/nodir/", "Error: no such directory"),
        (
            h("up.txt"),
            "rr:/nodir/x",
            "Error: Error response from daemon: Could not find the file /nodir in container rr",
        ),
        (h("updir"), "rr:/etc/motd", "Error: cannot copy directory"),
        (
            h("up.txt"),
            "nope:/x",
            "Error: Error response from daemon: No such container: nope",
        ),
    ] {
        assert_eq!(
            wrun_fails(&d, &["cp", &src, dst]).trim(),
            words,
            "cp {src} {dst}"
        );
    }
    let start = d.wrun(&["start", "-a", "rr"]);
    assert_eq!(
        String::from_utf8_lossy(&start.stdout),
        "up\nu\nu\nreplaced\n",
        "{}",
        stderr(&start)
    );
    assert_eq!(
        d.wrun_ok(&["diff", "rr"]),
        "C /etc\nA /etc/inner\nA /etc/inner/f\nC /etc/motd\nA /etc/up.txt\nA /new\nA /new/inner\nA /new/inner/f\n"
    );
    // A tar on stdin goes into a directory, and only a directory.
    let tar = Command::new("tar")
        .args(["-C", &h("updir"), "-c", "."])
        .output()
        .unwrap()
        .stdout;
    let out = common::output_with_input(d.wrun_cmd().args(["cp", "-", "rr:/new"]), &tar);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = common::output_with_input(d.wrun_cmd().args(["cp", "-", "rr:/etc/motd"]), &tar);
    assert_eq!(
        stderr(&out).trim(),
        "Error: destination \"rr:/etc/motd\" must be a directory"
    );
    // -a asks for owners an instance does not have.
    assert!(wrun_fails(&d, &["cp", "-a", &h("up.txt"), "rr:/etc/"]).contains("no users"));
    if have_tool("docker") {
        d.docker_ok(&["cp", &h("up.txt"), "rr:/etc/via-docker"]);
        d.docker_ok(&["cp", "rr:/etc/via-docker", &h("back")]);
        assert_eq!(std::fs::read_to_string(h("back")).unwrap(), "up");
    }
}

#[test]
fn a_read_only_instance_refuses_cp_in_with_dockers_words() {
    let d = daemon();
    d.wrun_ok(&["create", "--read-only", "--name", "ro", "fsh:1", "ls", "/"]);
    let file = d.env.path("up.txt");
    std::fs::write(&file, "up").unwrap();
    let err = wrun_fails(&d, &["cp", file.to_str().unwrap(), "ro:/etc/"]);
    assert_eq!(
        err.trim(),
        "Error: Error response from daemon: container rootfs is marked read-only"
    );
    // Reading out still works: the image's files.
    let out = d.env.path("motd");
    d.wrun_ok(&["cp", "ro:/etc/motd", out.to_str().unwrap()]);
    assert_eq!(std::fs::read_to_string(&out).unwrap(), MOTD);
    assert_eq!(d.wrun_ok(&["diff", "ro"]), "");
}

/// One entry of a test tar: name, kind, link target, data.
type RawEntry<'a> = (&'a [u8], tar::EntryType, &'a [u8], &'a [u8]);

fn tar_of(entries: &[RawEntry<'_>]) -> Vec<u8> {
    let mut t = Vec::new();
    for (name, kind, link, data) in entries {
        raw_entry(&mut t, name, *kind, link, data, 0o644);
    }
    end_tar(t)
}

/// A header alone whose size field claims `size` bytes.
fn header_claiming(kind: tar::EntryType, name: &[u8], size: u64) -> Vec<u8> {
    let mut h = tar::Header::new_gnu();
    h.as_gnu_mut().unwrap().name[..name.len()].copy_from_slice(name);
    h.set_entry_type(kind);
    h.set_size(size);
    h.set_mode(0o644);
    h.set_cksum();
    h.as_bytes().to_vec()
}

#[test]
fn hostile_tars_put_into_an_instance_stay_inside_it() {
    use tar::EntryType as T;
    let d = daemon();
    d.wrun_ok(&["create", "--name", "hx", "fsh:1", "ls", "/"]);
    let secret = d.env.path("secret");
    std::fs::create_dir_all(&secret).unwrap();
    std::fs::write(secret.join("key"), "HOST SECRET").unwrap();
    let secret_before = tree(&secret);
    let image_before = snapshots(&d);
    let secret_path = secret.to_str().unwrap().as_bytes().to_vec();

    // Each attack: the tar, the status, words the answer holds.
    let attacks: Vec<(&str, Vec<u8>, u16, &str)> = vec![
        (
            "zip_slip_dotdot_entry",
            tar_of(&[(b"a/../../../../../x", T::Regular, b"", b"x")]),
            400,
            "is outside of \\\"/etc\\\"",
        ),
        (
            "symlink_out_of_the_destination",
            tar_of(&[(b"up", T::Symlink, b"../../../..", b"")]),
            400,
            "invalid symlink",
        ),
        (
            "hard_link_out_of_the_destination",
            tar_of(&[(b"hl", T::Link, b"../../../fsh.wasm", b"")]),
            400,
            "invalid hardlink",
        ),
        (
            "huge_pax_header",
            header_claiming(T::XHeader, b"pax", 1 << 34),
            400,
            "PAX header of 17179869184 bytes",
        ),
        (
            "huge_gnu_long_name",
            header_claiming(T::GNULongName, b"././@LongLink", 1 << 30),
            400,
            "long name of 1073741824 bytes",
        ),
        (
            "device_node",
            tar_of(&[(b"null", T::Char, b"", b"")]),
            400,
            "no device or FIFO nodes",
        ),
        (
            "truncated_entry",
            header_claiming(T::Regular, b"cut", 100_000),
            400,
            "Error processing tar file",
        ),
    ];
    for (attack, tar, status, words) in attacks {
        let (got, body) = put_tar(&d, "hx", "path=/etc", &tar);
        assert_eq!(got, status, "{attack}: {body}");
        assert!(body.contains(words), "{attack}: {body}");
    }

    // An absolute name lands below the destination, `..` at the root too.
    let (got, body) = put_tar(
        &d,
        "hx",
        "path=/etc",
        &tar_of(&[
            (b"/abs.txt", T::Regular, b"", b"abs"),
            (b"/../../rooted.txt", T::Regular, b"", b"rooted"),
        ]),
    );
    assert_eq!(got, 200, "{body}");
    // A symlink to a host directory, then a file written through it: the
    // link is resolved inside the instance, never on the host.
    let mut link_then_file = Vec::new();
    raw_entry(
        &mut link_then_file,
        b"esc",
        T::Symlink,
        &secret_path,
        b"",
        0o777,
    );
    raw_entry(
        &mut link_then_file,
        b"esc/pwned",
        T::Regular,
        b"",
        b"pwned",
        0o644,
    );
    let (got, body) = put_tar(&d, "hx", "path=/etc", &end_tar(link_then_file));
    assert!(got == 200 || got >= 400, "{body}");
    // A hard link to an image file, then the file written: the image's
    // copy is untouched.
    let (got, body) = put_tar(
        &d,
        "hx",
        "path=/etc",
        &tar_of(&[
            (b"motd2", T::Link, b"motd", b""),
            (b"motd", T::Regular, b"", b"new"),
        ]),
    );
    assert_eq!(got, 200, "{body}");
    let out = d.env.path("out");
    std::fs::create_dir_all(&out).unwrap();
    d.wrun_ok(&["cp", "hx:/etc/.", out.to_str().unwrap()]);
    assert_eq!(std::fs::read_to_string(out.join("abs.txt")).unwrap(), "abs");
    assert_eq!(
        std::fs::read_to_string(out.join("rooted.txt")).unwrap(),
        "rooted"
    );
    assert_eq!(std::fs::read_to_string(out.join("motd")).unwrap(), "new");
    assert_eq!(std::fs::read_to_string(out.join("motd2")).unwrap(), MOTD);

    assert_eq!(
        tree(&secret),
        secret_before,
        "the host directory was touched"
    );
    assert_eq!(snapshots(&d), image_before, "the image snapshot changed");
}

#[test]
fn cp_races_a_directory_swapped_for_a_symlink_to_a_host_directory() {
    let d = daemon();
    d.wrun_ok(&["create", "--name", "xx", "fsh:1", "ls", "/"]);
    let secret = d.env.path("secret");
    std::fs::create_dir_all(&secret).unwrap();
    std::fs::write(secret.join("key"), "HOST SECRET").unwrap();
    let secret_before = tree(&secret);
    // The first copy makes the upper, with /etc/box in it.
    let boxdir = d.env.path("box");
    std::fs::create_dir_all(&boxdir).unwrap();
    std::fs::write(boxdir.join("f"), "in the box").unwrap();
    d.wrun_ok(&["cp", boxdir.to_str().unwrap(), "xx:/etc/box"]);
    let inspect: serde_json::Value =
        serde_json::from_str(&d.request("GET", "/containers/xx/json", "").1).unwrap();
    let upper = PathBuf::from(
        inspect["GraphDriver"]["Data"]["UpperDir"]
            .as_str()
            .expect("the upper's tree in inspect"),
    );
    let in_upper = upper.join("etc/box");
    assert!(in_upper.is_dir(), "{}", in_upper.display());

    // Behind the view's back, as a guest's own writes or a hostile host
    // process could: /etc/box flips between a directory and a symlink to
    // the host's secret directory, 4,000 times, while copies run.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let swapper = {
        let (stop, in_upper, secret) = (stop.clone(), in_upper.clone(), secret.clone());
        std::thread::spawn(move || {
            for i in 0..4000 {
                if stop.load(std::sync::atomic::Ordering::Relaxed) {
                    break;
                }
                let _ = std::fs::remove_dir_all(&in_upper);
                let _ = std::fs::remove_file(&in_upper);
                if i % 2 == 0 {
                    let _ = std::os::unix::fs::symlink(&secret, &in_upper);
                } else {
                    let _ = std::fs::create_dir(&in_upper);
                }
            }
        })
    };
    let mut tar = Vec::new();
    raw_entry(
        &mut tar,
        b"box/planted",
        tar::EntryType::Regular,
        b"",
        b"planted",
        0o644,
    );
    let tar = end_tar(tar);
    for _ in 0..40 {
        // In: a tar whose entry goes through box, and a copy to box itself.
        let _ = put_tar(&d, "xx", "path=/etc", &tar);
        let _ = put_tar(&d, "xx", "path=/etc/box", &tar);
        // Out: never the host's secret.
        let (_, _, body) = raw_request(&d, "GET", "/containers/xx/archive?path=/etc/box/", b"");
        assert!(
            !String::from_utf8_lossy(&body).contains("HOST SECRET"),
            "a copy out read the host's file"
        );
        let (_, _, body) = raw_request(&d, "GET", "/containers/xx/archive?path=/etc/box/key", b"");
        assert!(!String::from_utf8_lossy(&body).contains("HOST SECRET"));
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    swapper.join().unwrap();
    assert_eq!(
        tree(&secret),
        secret_before,
        "a copy wrote outside the instance"
    );
    // The daemon is fine: the instance still answers.
    assert_eq!(d.request("GET", "/containers/xx/changes", "").0, 200);
}

/// A tar's entries with their owner names: `name uname/gname`.
fn tar_owners(bytes: &[u8]) -> Vec<String> {
    let mut a = tar::Archive::new(bytes);
    a.entries()
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            let h = e.header();
            format!(
                "{} {}/{}",
                String::from_utf8_lossy(&e.path_bytes()),
                h.username().unwrap().unwrap_or(""),
                h.groupname().unwrap().unwrap_or("")
            )
        })
        .collect()
}

/// Names of a tar's entries.
fn tar_names(bytes: &[u8]) -> Vec<String> {
    tar_entries(bytes).into_iter().map(|(n, _)| n).collect()
}

#[test]
fn cp_goes_through_a_named_volume_and_a_bind_as_dockerd_does() {
    let d = daemon();
    let bind = d.env.path("bind");
    std::fs::create_dir_all(bind.join("sub")).unwrap();
    std::fs::write(bind.join("in-bind"), "b").unwrap();
    let ro = d.env.path("ro");
    std::fs::create_dir_all(&ro).unwrap();
    std::fs::write(ro.join("kept"), "k").unwrap();
    let (bind_spec, ro_spec) = (
        format!("{}:/mnt/b", bind.display()),
        format!("{}:/ro:ro", ro.display()),
    );
    d.wrun_ok(&[
        "create",
        "--name",
        "mounts",
        "-v",
        "vol1:/vol",
        "-v",
        &bind_spec,
        "-v",
        &ro_spec,
        "fsh:1",
        "cat",
        "/vol/up.txt",
        ";",
        "cat",
        "/mnt/b/sub/up.txt",
    ]);
    let volume = d.env.root().join("volumes/vol1/_data");
    let file = d.env.path("up.txt");
    std::fs::write(&file, "up").unwrap();

    // In: the file lands in the volume's and the bind's host directories,
    // the rootfs untouched; the guest reads it through its mounts.
    d.wrun_ok(&["cp", file.to_str().unwrap(), "mounts:/vol/"]);
    d.wrun_ok(&["cp", file.to_str().unwrap(), "mounts:/mnt/b/sub/up.txt"]);
    assert_eq!(
        std::fs::read_to_string(volume.join("up.txt")).unwrap(),
        "up"
    );
    assert_eq!(
        std::fs::read_to_string(bind.join("sub/up.txt")).unwrap(),
        "up"
    );
    assert_eq!(d.wrun_ok(&["diff", "mounts"]), "");
    assert_eq!(d.wrun_ok(&["start", "-a", "mounts"]), "up\nup\n");

    // Out: a file of each, and a mount point's stat as dockerd gives it.
    let out = d.env.path("out");
    std::fs::create_dir_all(&out).unwrap();
    d.wrun_ok(&["cp", "mounts:/mnt/b/in-bind", out.to_str().unwrap()]);
    d.wrun_ok(&["cp", "mounts:/vol", out.join("vol").to_str().unwrap()]);
    assert_eq!(
        tree(&out),
        entries(&[("in-bind", "f:b"), ("vol", "d"), ("vol/up.txt", "f:up")])
    );
    let (status, stat) = path_stat(&d, "mounts", "/mnt/b");
    assert_eq!((status, stat["name"].as_str()), (200, Some("b")));
    assert_eq!(stat["mode"].as_u64().unwrap() & 0x8000_0000, 0x8000_0000);

    // A directory holding mount points: their files in the tar, as
    // dockerd puts them (it copies in the container's mount namespace).
    let (status, _, body) = raw_request(&d, "GET", "/containers/mounts/archive?path=/", b"");
    assert_eq!(status, 200);
    let all = tar_entries(&body);
    for want in [
        ("/vol/up.txt", "f:up"),
        ("/mnt/", "d"),
        ("/mnt/b/", "d"),
        ("/mnt/b/in-bind", "f:b"),
        ("/mnt/b/sub/up.txt", "f:up"),
        ("/ro/kept", "f:k"),
        ("/etc/motd", &format!("f:{MOTD}")),
    ] {
        assert!(
            all.contains(&(want.0.to_string(), want.1.to_string())),
            "{want:?} not in {all:?}"
        );
    }
    // Owners named as dockerd names uid 0.
    assert!(
        tar_owners(&body).iter().all(|o| o.ends_with(" root/root")),
        "{:?}",
        tar_owners(&body)
    );

    // A read-only mount refuses a copy in with dockerd's words, and its
    // directory is unchanged.
    let err = wrun_fails(&d, &["cp", file.to_str().unwrap(), "mounts:/ro/"]);
    assert_eq!(
        err.trim(),
        "Error: Error response from daemon: mounted volume is marked read-only"
    );
    assert_eq!(tree(&ro), entries(&[("kept", "f:k")]));
    // A tar naming a file in it, put from above the mount: refused too.
    let tar = tar_of(&[(b"ro/planted", tar::EntryType::Regular, b"", b"x")]);
    let (status, body) = put_tar(&d, "mounts", "path=/", &tar);
    assert_eq!(status, 500, "{body}");
    assert!(body.contains("read-only file system"), "{body}");
    assert_eq!(tree(&ro), entries(&[("kept", "f:k")]));
    // A file over a mount point is the kernel's EBUSY, never an emptied
    // volume.
    let tar = tar_of(&[(b"vol", tar::EntryType::Regular, b"", b"x")]);
    let (status, body) = put_tar(&d, "mounts", "path=/", &tar);
    assert_eq!(status, 500, "{body}");
    assert!(body.contains("busy"), "{body}");
    assert!(volume.join("up.txt").exists());

    // export holds no mount's files, only the mount points, as dockerd.
    let (status, _, body) = raw_request(&d, "GET", "/containers/mounts/export", b"");
    assert_eq!(status, 200);
    let names = tar_names(&body);
    for point in ["vol/", "mnt/", "mnt/b/", "ro/"] {
        assert!(
            names.contains(&point.to_string()),
            "{point} not in {names:?}"
        );
    }
    assert!(
        !names.iter().any(|n| n.starts_with("vol/") && n != "vol/"
            || n.starts_with("mnt/b/") && n != "mnt/b/"
            || n.starts_with("ro/") && n != "ro/"),
        "{names:?}"
    );
    assert!(
        tar_owners(&body).iter().all(|o| o.ends_with(" root/root")),
        "{:?}",
        tar_owners(&body)
    );
    // export needs no mount's directory: one gone since the create does
    // not stop it.
    std::fs::remove_dir_all(&ro).unwrap();
    let (status, _, body) = raw_request(&d, "GET", "/containers/mounts/export", b"");
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    assert!(tar_names(&body).contains(&"ro/".to_string()));
}

#[test]
fn a_symlink_in_a_volume_leads_nowhere_outside_the_instance() {
    let d = daemon();
    let secret = d.env.path("secret");
    std::fs::create_dir_all(&secret).unwrap();
    std::fs::write(secret.join("key"), "HOST SECRET").unwrap();
    let secret_before = tree(&secret);
    d.wrun_ok(&[
        "create",
        "--name",
        "sym",
        "-v",
        "symvol:/vol",
        "fsh:1",
        "ls",
        "/",
    ]);
    let bind = d.env.root().join("volumes/symvol/_data");
    assert!(bind.is_dir(), "{}", bind.display());
    // What a guest could make in its volume (or anyone on the host): links
    // to the host's secret by its absolute path and by climbing out.
    std::os::unix::fs::symlink(&secret, bind.join("abs")).unwrap();
    let climb = format!("../../../../../../../..{}", secret.display());
    std::os::unix::fs::symlink(&climb, bind.join("up")).unwrap();
    let file = d.env.path("planted");
    std::fs::write(&file, "planted").unwrap();
    for link in ["abs", "up"] {
        // In, through the link: resolved in the instance, where the host's
        // path names nothing.
        let dest = format!("sym:/vol/{link}/");
        let out = d.wrun(&["cp", file.to_str().unwrap(), &dest]);
        assert!(!out.status.success(), "cp into {dest} succeeded");
        // Out, through the link.
        for path in [format!("/vol/{link}/key"), format!("/vol/{link}/")] {
            let (_, _, body) = raw_request(
                &d,
                "GET",
                &format!("/containers/sym/archive?path={path}"),
                b"",
            );
            assert!(
                !String::from_utf8_lossy(&body).contains("HOST SECRET"),
                "{path} read the host's file"
            );
        }
        // A tar entry written through the link, from the volume's root.
        let name = format!("{link}/planted");
        let tar = tar_of(&[(name.as_bytes(), tar::EntryType::Regular, b"", b"x")]);
        let (status, body) = put_tar(&d, "sym", "path=/vol", &tar);
        assert_ne!(status, 200, "{name}: {body}");
    }
    // -L of the link itself: the instance's path, not the host's.
    let (status, stat) = path_stat(&d, "sym", "/vol/abs");
    assert_eq!(status, 200);
    assert_eq!(stat["linkTarget"], secret.display().to_string());
    assert_eq!(
        tree(&secret),
        secret_before,
        "a copy wrote outside the instance"
    );
    assert_eq!(
        tree(&bind),
        entries(&[
            ("abs", &format!("l:{}", secret.display())),
            ("up", &format!("l:{climb}")),
        ])
    );
}

#[test]
fn cp_races_a_volume_directory_swapped_for_a_symlink_to_a_host_directory() {
    let d = daemon();
    let secret = d.env.path("secret");
    std::fs::create_dir_all(&secret).unwrap();
    std::fs::write(secret.join("key"), "HOST SECRET").unwrap();
    let secret_before = tree(&secret);
    let bind = d.env.path("bind");
    std::fs::create_dir_all(bind.join("box")).unwrap();
    let spec = format!("{}:/vol", bind.display());
    d.wrun_ok(&["create", "--name", "race", "-v", &spec, "fsh:1", "ls", "/"]);
    let in_bind = bind.join("box");
    // As the guest could in its volume: box flips between a directory and
    // a symlink to the host's secret directory while copies run.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let swapper = {
        let (stop, in_bind, secret) = (stop.clone(), in_bind.clone(), secret.clone());
        std::thread::spawn(move || {
            for i in 0..4000 {
                if stop.load(std::sync::atomic::Ordering::Relaxed) {
                    break;
                }
                let _ = std::fs::remove_dir_all(&in_bind);
                let _ = std::fs::remove_file(&in_bind);
                if i % 2 == 0 {
                    let _ = std::os::unix::fs::symlink(&secret, &in_bind);
                } else {
                    let _ = std::fs::create_dir(&in_bind);
                }
            }
        })
    };
    let tar = tar_of(&[(b"box/planted", tar::EntryType::Regular, b"", b"planted")]);
    for _ in 0..40 {
        let _ = put_tar(&d, "race", "path=/vol", &tar);
        let _ = put_tar(&d, "race", "path=/vol/box", &tar);
        for path in ["/vol/box/", "/vol/box/key", "/vol"] {
            let (_, _, body) = raw_request(
                &d,
                "GET",
                &format!("/containers/race/archive?path={path}"),
                b"",
            );
            assert!(
                !String::from_utf8_lossy(&body).contains("HOST SECRET"),
                "a copy out of {path} read the host's file"
            );
        }
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    swapper.join().unwrap();
    assert_eq!(
        tree(&secret),
        secret_before,
        "a copy wrote outside the instance"
    );
    assert_eq!(d.request("GET", "/containers/race/changes", "").0, 200);
}

#[test]
fn a_symlink_loop_is_dockerds_too_many_links() {
    let d = daemon();
    run_fsh(
        &d,
        "loop",
        &["mkdir", "/data", ";", "ln-s", "/data/loop", "/data/loop"],
    );
    for (asked, named) in [
        ("/data/loop/x", "/data/loop"),
        ("/data/loop/x/y", "/data/loop/x"),
        ("/data/loop", "/data/loop"),
    ] {
        let (status, _, body) = raw_request(
            &d,
            "GET",
            &format!("/containers/loop/archive?path={asked}"),
            b"",
        );
        let body = String::from_utf8_lossy(&body);
        assert_eq!(status, 500, "{asked}: {body}");
        assert!(
            body.contains(&format!("evalSymlinksInScope: too many links in {named}\"")),
            "{asked}: {body}"
        );
    }
    let tar = tar_of(&[(b"f", tar::EntryType::Regular, b"", b"x")]);
    let (status, body) = put_tar(&d, "loop", "path=/data/loop/", &tar);
    assert_eq!(status, 500);
    assert!(
        body.contains("evalSymlinksInScope: too many links in /data/loop\""),
        "{body}"
    );
}

/// `wrun cp FILE missing:/x` with a body larger than the socket buffers:
/// the daemon answers 404 before reading it and closes, so the CLI's next
/// write fails (EPIPE). The docker client (Go's HTTP client) reads and
/// prints the early answer ("Error response from daemon: No such
/// container: nope", exit 1); wrun must too, every time, and must not
/// hang on its tar writer. Each copy has a generous deadline (a hang is the
/// failure, not a slow run).
#[test]
fn cp_in_to_a_missing_container_reports_the_daemons_answer_not_a_broken_pipe() {
    let d = Daemon::start(Env::new());
    let big = d.env.path("big.bin");
    let mut data = vec![0u8; 24 << 20];
    for (i, b) in data.iter_mut().enumerate() {
        *b = u8::try_from(i * 7919 % 251).unwrap();
    }
    std::fs::write(&big, &data).unwrap();
    for round in 0..40 {
        let mut child = d
            .wrun_cmd()
            .args(["cp", big.to_str().unwrap(), "nope:/x"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(120);
        while child.try_wait().unwrap().is_none() {
            if std::time::Instant::now() > deadline {
                child.kill().unwrap();
                panic!("round {round}: wrun cp to a missing container never ended");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let out = child.wait_with_output().unwrap();
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(1), "round {round}: {err}");
        assert_eq!(
            err.trim(),
            "Error: Error response from daemon: No such container: nope",
            "round {round}"
        );
    }
}
