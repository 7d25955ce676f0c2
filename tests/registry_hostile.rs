//! `wrun pull` (and a build's `FROM`) against a registry that lies: each
//! test is named after the attack it tries (`shared/SECURITY.md`, issue 15's
//! bad input). Every refusal must be one clear line and a non-zero exit,
//! leave the store as it was (no image listed, no partial file in its blob
//! or staging directories) and send no credentials anywhere but their
//! registry.

#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

mod common;
#[path = "common/lying_registry.rs"]
mod lying_registry;

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use common::{Env, end_tar, hello_layer, poll, raw_entry};
use lying_registry::{
    Content, FLOOD_CAP, LyingRegistry, OCI_INDEX, OCI_MANIFEST, Reply, Request, Then,
};
use serde_json::{Value, json};

const PASSWORD: &str = "s3cret-pw";
const TOKEN: &str = "tok-s3cret";
const TEN_GB: u64 = 10 << 30;
/// The most memory a refused pull may take (kB, as `/usr/bin/time` says
/// it): the lying answers below send 256 MiB or more, so a client that
/// held them would show.
const SMALL_RSS_KB: u64 = 128 << 10;
const _: () = assert!(FLOOD_CAP / 1024 >= 2 * SMALL_RSS_KB);
/// base64 of `alice:s3cret-pw`, docker's `auth` and Basic's credentials.
const BASIC: &str = "YWxpY2U6czNjcmV0LXB3";

/// An image a registry serves: the hello module's layer and `extra` small
/// layers of their own, uncompressed tars.
struct Image {
    content: Content,
    manifest: Vec<u8>,
    /// The layers' digests, base first.
    layers: Vec<String>,
}

fn image(extra: usize, patch_config: impl FnOnce(&mut Value)) -> Image {
    let mut content = Content::default();
    let mut tars = vec![hello_layer()];
    for i in 0..extra {
        let mut t = Vec::new();
        let data: Vec<u8> = (0..1000).map(|n| (n * 7 + i * 13) as u8).collect();
        raw_entry(
            &mut t,
            format!("data{i}").as_bytes(),
            tar::EntryType::Regular,
            b"",
            &data,
            0o644,
        );
        tars.push(end_tar(t));
    }
    let layers: Vec<String> = tars.iter().map(|t| content.blob(t)).collect();
    let mut config = json!({
        "architecture": "wasm",
        "os": "wasip1",
        "config": {"Entrypoint": ["/hello.wasm"]},
        "rootfs": {"type": "layers", "diff_ids": layers},
    });
    patch_config(&mut config);
    let config_bytes = serde_json::to_vec(&config).unwrap();
    let config_digest = content.blob(&config_bytes);
    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config_digest, "size": config_bytes.len()},
        "layers": tars.iter().zip(&layers).map(|(t, d)| json!({
            "mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": d, "size": t.len()
        })).collect::<Vec<_>>(),
    }))
    .unwrap();
    content.manifest("1", OCI_MANIFEST, &manifest);
    Image {
        content,
        manifest,
        layers,
    }
}

/// wrun with `env`'s store and credential files of its own (none unless a
/// test writes them), so the host's never count.
fn wrun(env: &Env, args: &[&str]) -> Command {
    let mut c = env.cmd();
    c.env("WRUN_CONFIG", env.path("wrun-config"))
        .env("DOCKER_CONFIG", env.path("docker-config"))
        .args(args);
    c
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Stores alice's credentials for `host` in docker's format.
fn log_in(env: &Env, host: &str) {
    std::fs::create_dir_all(env.path("wrun-config")).unwrap();
    std::fs::write(
        env.path("wrun-config/config.json"),
        serde_json::to_vec(&json!({"auths": {host: {"auth": BASIC}}})).unwrap(),
    )
    .unwrap();
}

/// Whether `r` carries alice's Basic credentials.
fn has_basic(r: &Request) -> bool {
    r.header("Authorization") == Some(&format!("Basic {BASIC}"))
}

/// Fails unless none of `requests` carries credentials in any form.
fn assert_no_credentials(requests: &[Request]) {
    for r in requests {
        assert!(r.header("Authorization").is_none(), "{r:?}");
        for secret in [PASSWORD, BASIC, TOKEN] {
            assert!(!r.raw.contains(secret), "{secret} in {r:?}");
        }
    }
}

/// What "the store is unchanged" compares: the records, the listing and
/// the snapshots.
struct Before {
    db: String,
    images: String,
    snapshots: Vec<String>,
}

fn names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

/// A store holding one image (`kept:1`), so that "unchanged" means more
/// than "empty".
fn store_with_an_image() -> (Env, Before) {
    let env = Env::new();
    env.build_hello("kept:1");
    let before = before(&env);
    (env, before)
}

fn before(env: &Env) -> Before {
    Before {
        db: std::fs::read_to_string(env.root().join("images.json")).unwrap_or_default(),
        images: env.ok(&["images"]),
        snapshots: names(&env.root().join("snapshots")),
    }
}

/// Every file under `dir` (recursively): none may be a partial or
/// unverified blob, so each must be named by the sha256 of its bytes.
fn assert_only_verified_blobs(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let path = e.path();
        if path.is_dir() {
            assert_only_verified_blobs(&path);
            continue;
        }
        let name = e.file_name().to_string_lossy().into_owned();
        let bytes = std::fs::read(&path).unwrap();
        assert_eq!(
            common::sha256_hex(&bytes),
            name,
            "{} is no verified blob ({} bytes)",
            path.display(),
            bytes.len()
        );
    }
}

impl Before {
    fn assert_unchanged(&self, env: &Env) {
        let root = env.root();
        assert_eq!(
            std::fs::read_to_string(root.join("images.json")).unwrap_or_default(),
            self.db,
            "the image records changed"
        );
        assert_eq!(env.ok(&["images"]), self.images);
        assert_eq!(names(&root.join("snapshots")), self.snapshots);
        assert_only_verified_blobs(&root.join("blobs/sha256"));
        assert_only_verified_blobs(&root.join("tmp"));
        common::assert_store_consistent(env);
    }
}

/// The one line a refusal prints (`Error: …`), checked to be one.
fn one_line(out: &Output) -> String {
    let err = stderr(out);
    assert!(
        !out.status.success(),
        "should have failed; stdout: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(!err.contains("panicked"), "{err}");
    let lines: Vec<&str> = err.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "not one line: {err}");
    assert!(lines[0].starts_with("Error: "), "{err}");
    eprintln!("refused: {}", lines[0]);
    lines[0].to_owned()
}

/// What a refused pull keeps in the store's `downloads/` for the next one
/// (`Range` resume) must be the true blob's bytes, a prefix of them at most:
/// a lying registry's bytes are never kept.
fn assert_kept_bytes_are_true(env: &Env, content: &Content) {
    for name in names(&env.root().join("downloads")) {
        let kept = std::fs::read(env.root().join("downloads").join(&name)).unwrap();
        let truth = &content.blobs[&format!("sha256:{name}")];
        assert!(
            truth.starts_with(&kept),
            "downloads/{name} holds {} bytes that are not the blob's",
            kept.len()
        );
    }
}

/// `wrun pull NAME` refused: one line, the store as `before` had it.
fn pull_refused(env: &Env, before: &Before, name: &str) -> String {
    let out = wrun(env, &["pull", name]).output().unwrap();
    let line = one_line(&out);
    before.assert_unchanged(env);
    line
}

/// A registry serving `img` honestly except where `lie` answers.
fn lying(
    img: &Image,
    lie: impl Fn(&Request) -> Option<Reply> + Send + Sync + 'static,
) -> LyingRegistry {
    let content = img.content.clone();
    LyingRegistry::start(move |r| lie(r).unwrap_or_else(|| content.answer(r)))
}

/// `wrun pull NAME` under GNU time: its output and peak RSS in kB, or
/// `None` when /usr/bin/time is missing (the memory is then not checked).
fn pull_measured(env: &Env, name: &str) -> (Output, Option<u64>) {
    if !common::have_tool("/usr/bin/time") {
        return (wrun(env, &["pull", name]).output().unwrap(), None);
    }
    let stats = env.path("time.out");
    let inner = wrun(env, &["pull", name]);
    let mut c = Command::new("/usr/bin/time");
    c.arg("-f").arg("%M").arg("-o").arg(&stats);
    c.arg(inner.get_program()).args(inner.get_args());
    for (k, v) in inner.get_envs() {
        match v {
            Some(v) => c.env(k, v),
            None => c.env_remove(k),
        };
    }
    let out = c.output().unwrap();
    let text = std::fs::read_to_string(&stats).unwrap();
    let rss = text.lines().last().unwrap().trim().parse().unwrap();
    (out, Some(rss))
}

fn assert_small(rss: Option<u64>) {
    if let Some(kb) = rss {
        eprintln!("peak RSS {kb} kB");
        assert!(kb < SMALL_RSS_KB, "peak RSS {kb} kB");
    }
}

fn blob_bytes(img: &Image, d: &str) -> Vec<u8> {
    img.content.blobs[d].clone()
}

#[test]
fn a_blob_whose_bytes_do_not_match_its_digest_is_refused() {
    let img = image(1, |_| {});
    let target = img.layers[1].clone();
    let mut other = blob_bytes(&img, &target);
    other[600] ^= 0xff; // same size, other bytes
    let reg = lying(&img, move |r| {
        (r.blob() == Some(&target)).then(|| Reply::new(200, other.clone()))
    });
    let (env, before) = store_with_an_image();
    let line = pull_refused(&env, &before, &format!("{}/x:1", reg.host));
    assert_kept_bytes_are_true(&env, &img.content);
    assert!(line.contains(&img.layers[1]), "{line}");
    assert!(line.contains("digest"), "{line}");
}

#[test]
fn a_truncated_blob_is_refused() {
    let img = image(1, |_| {});
    let target = img.layers[1].clone();
    let bytes = blob_bytes(&img, &target);
    let reg = lying(&img, move |r| {
        (r.blob() == Some(&target)).then(|| {
            // Content-Length says all of it; half comes, then the close.
            Reply::new(200, bytes[..bytes.len() / 2].to_vec()).claiming(bytes.len() as u64)
        })
    });
    let (env, before) = store_with_an_image();
    let line = pull_refused(&env, &before, &format!("{}/x:1", reg.host));
    assert_kept_bytes_are_true(&env, &img.content);
    assert!(line.contains(&img.layers[1][..19]), "{line}");
}

#[test]
fn a_blob_larger_than_its_descriptor_is_refused() {
    let img = image(1, |_| {});
    let target = img.layers[1].clone();
    let mut bigger = blob_bytes(&img, &target);
    bigger.extend_from_slice(&[0; 512]);
    let reg = lying(&img, move |r| {
        (r.blob() == Some(&target)).then(|| Reply::new(200, bigger.clone()))
    });
    let (env, before) = store_with_an_image();
    let line = pull_refused(&env, &before, &format!("{}/x:1", reg.host));
    assert_kept_bytes_are_true(&env, &img.content);
    assert!(line.contains("larger than its descriptor"), "{line}");
    assert_eq!(
        line.matches(&reg.host).count(),
        1,
        "the reference once: {line}"
    );
}

#[test]
fn a_10_gb_content_length_for_a_1_kb_layer_fails_fast_in_little_memory() {
    for then in [Then::Stall, Then::Flood] {
        let img = image(1, |_| {});
        let target = img.layers[1].clone();
        let bytes = blob_bytes(&img, &target);
        assert!(bytes.len() < 4096);
        // The true bytes, announced as 10 GB; then either nothing more
        // (waiting would hang until the timeout) or zeros without end.
        let reg = lying(&img, move |r| {
            (r.blob() == Some(&target))
                .then(|| Reply::new(200, bytes.clone()).claiming(TEN_GB).then(then))
        });
        let (env, before) = store_with_an_image();
        let (out, rss) = pull_measured(&env, &format!("{}/x:1", reg.host));
        let line = one_line(&out);
        assert_kept_bytes_are_true(&env, &img.content);
        assert!(
            line.contains("larger than its descriptor"),
            "{then:?}: {line}"
        );
        assert_small(rss);
        before.assert_unchanged(&env);
    }
}

#[test]
fn a_manifest_whose_media_type_disagrees_with_the_document_is_refused() {
    let img = image(0, |_| {});
    let manifest_digest = lying_registry::digest(&img.manifest);
    let index = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": [{"mediaType": OCI_MANIFEST, "digest": manifest_digest, "size": img.manifest.len(),
                       "platform": {"os": "wasip1", "architecture": "wasm"}}],
    }))
    .unwrap();
    let mut ambiguous: Value = serde_json::from_slice(&img.manifest).unwrap();
    ambiguous.as_object_mut().unwrap().remove("mediaType");
    ambiguous["manifests"] = json!([]);
    let ambiguous = serde_json::to_vec(&ambiguous).unwrap();
    let cases = [
        // An index sent as a manifest.
        (
            "an index sent as a manifest",
            OCI_MANIFEST,
            index.clone(),
            "sent it as",
        ),
        // A manifest sent as an index.
        (
            "a manifest sent as an index",
            OCI_INDEX,
            img.manifest.clone(),
            "sent it as",
        ),
        // No media type and both a manifest's and an index's fields.
        ("both at once", "application/json", ambiguous, "ambiguous"),
    ];
    for (case, sent_as, body, says) in cases {
        let content = img.content.clone();
        let reg = LyingRegistry::start(move |r| {
            if r.manifest() == Some("1") {
                return Reply::new(200, body.clone()).header("Content-Type", sent_as);
            }
            content.answer(r)
        });
        let (env, before) = store_with_an_image();
        let line = pull_refused(&env, &before, &format!("{}/x:1", reg.host));
        assert!(line.contains(says), "{case}: {line}");
    }
    // Pulled by digest, a manifest that is not that digest.
    let mut other: Value = serde_json::from_slice(&img.manifest).unwrap();
    other["annotations"] = json!({"swapped": "yes"});
    let other = serde_json::to_vec(&other).unwrap();
    let content = img.content.clone();
    let want = manifest_digest.clone();
    let reg = LyingRegistry::start(move |r| {
        if r.manifest() == Some(&want) {
            return Reply::new(200, other.clone()).header("Content-Type", OCI_MANIFEST);
        }
        content.answer(r)
    });
    let (env, before) = store_with_an_image();
    let line = pull_refused(&env, &before, &format!("{}/x@{manifest_digest}", reg.host));
    assert!(line.contains(&manifest_digest), "{line}");
}

#[test]
fn a_manifest_over_the_size_bound_is_refused_in_little_memory() {
    let img = image(0, |_| {});
    let mut padded: Value = serde_json::from_slice(&img.manifest).unwrap();
    padded["annotations"] = json!({"pad": "x".repeat(5 << 20)});
    let padded = serde_json::to_vec(&padded).unwrap();
    let cases: [(&str, Reply, &str); 3] = [
        ("5 MiB", Reply::new(200, padded), "4194304"),
        (
            "10 GB announced",
            Reply::new(200, img.manifest.clone())
                .claiming(TEN_GB)
                .then(Then::Flood),
            "announces",
        ),
        (
            "no length, no end",
            Reply::new(200, img.manifest.clone())
                .without_length()
                .then(Then::Flood),
            "more than 4194304 bytes",
        ),
    ];
    for (case, reply, says) in cases {
        let content = img.content.clone();
        let reply = reply.header("Content-Type", OCI_MANIFEST);
        let reg = LyingRegistry::start(move |r| {
            if r.manifest().is_some() {
                return reply.clone();
            }
            content.answer(r)
        });
        let (env, before) = store_with_an_image();
        let (out, rss) = pull_measured(&env, &format!("{}/x:1", reg.host));
        let line = one_line(&out);
        assert!(line.contains(says), "{case}: {line}");
        assert_small(rss);
        before.assert_unchanged(&env);
    }
}

#[test]
fn a_registry_that_stops_sending_mid_blob_ends_the_pull_with_a_timeout() {
    let img = image(1, |_| {});
    let target = img.layers[1].clone();
    let bytes = blob_bytes(&img, &target);
    let reg = lying(&img, move |r| {
        (r.blob() == Some(&target)).then(|| {
            Reply::new(200, bytes[..bytes.len() / 2].to_vec())
                .claiming(bytes.len() as u64)
                .then(Then::Stall)
        })
    });
    let (env, before) = store_with_an_image();
    let mut child = wrun(&env, &["pull", &format!("{}/x:1", reg.host)])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The registry's silence must end the pull (wrun's read timeout is
    // 30 s); four times that is a hang.
    let ended = poll(
        "the stalled pull ends",
        Duration::from_secs(120),
        || match child.try_wait().unwrap() {
            Some(status) => Ok(status),
            None => Err(String::new()),
        },
    );
    assert!(!ended.success());
    let out = child.wait_with_output().unwrap();
    let line = one_line(&out);
    assert_kept_bytes_are_true(&env, &img.content);
    assert!(line.contains("timed out"), "{line}");
    before.assert_unchanged(&env);
}

#[test]
fn a_config_whose_diff_ids_do_not_match_its_layers_is_refused() {
    let img = image(1, |c| {
        c["rootfs"]["diff_ids"][1] = json!(format!("sha256:{}", "0".repeat(64)));
    });
    let reg = lying(&img, |_| None);
    let (env, before) = store_with_an_image();
    let line = pull_refused(&env, &before, &format!("{}/x:1", reg.host));
    assert!(line.contains("diff"), "{line}");
}

#[test]
fn a_descriptor_digest_that_is_no_sha256_is_refused_before_it_names_a_url() {
    let img = image(0, |_| {});
    let mut manifest: Value = serde_json::from_slice(&img.manifest).unwrap();
    manifest["layers"][0]["digest"] = json!("sha256:../../../../v2/evil");
    let manifest = serde_json::to_vec(&manifest).unwrap();
    let mut content = img.content.clone();
    content.manifest("1", OCI_MANIFEST, &manifest);
    let reg = LyingRegistry::start(move |r| content.answer(r));
    let (env, before) = store_with_an_image();
    let line = pull_refused(&env, &before, &format!("{}/x:1", reg.host));
    assert!(line.contains("../../../../v2/evil"), "{line}");
    assert!(
        reg.requests().iter().all(|r| r.blob().is_none()),
        "{:?}",
        reg.requests()
    );
}

#[test]
fn a_500_on_one_of_four_concurrent_layer_downloads_fails_the_pull_at_once() {
    let img = image(3, |_| {});
    let failing = img.layers[2].clone();
    let stalled: Vec<String> = vec![img.layers[0].clone(), img.layers[1].clone()];
    // The failing layer answers once the two others are in flight (half
    // sent, then nothing): the pull must end on the 500, not wait for them.
    let arrived = Arc::new((Mutex::new(0usize), Condvar::new()));
    let content = img.content.clone();
    let reg = LyingRegistry::start(move |r| {
        let (count, cvar) = &*arrived;
        match r.blob() {
            Some(d) if d == failing => {
                let guard = count.lock().unwrap();
                let (_guard, _) = cvar
                    .wait_timeout_while(guard, Duration::from_secs(60), |n| *n < 2)
                    .unwrap();
                Reply::error(500, "UNKNOWN", "the disk is on fire")
            }
            Some(d) if stalled.iter().any(|s| s == d) => {
                *count.lock().unwrap() += 1;
                cvar.notify_all();
                let bytes = &content.blobs[d];
                Reply::new(200, bytes[..bytes.len() / 2].to_vec())
                    .claiming(bytes.len() as u64)
                    .then(Then::Stall)
            }
            _ => content.answer(r),
        }
    });
    let (env, before) = store_with_an_image();
    let line = pull_refused(&env, &before, &format!("{}/x:1", reg.host));
    assert_kept_bytes_are_true(&env, &img.content);
    assert!(
        line.contains("500 Internal Server Error: UNKNOWN: the disk is on fire"),
        "{line}"
    );
    assert!(line.contains(&img.layers[2][..19]), "{line}");
    assert_eq!(
        line.matches(&reg.host).count(),
        1,
        "the reference once: {line}"
    );
}

#[test]
fn a_500_with_an_html_page_is_still_one_line() {
    let img = image(1, |_| {});
    let target = img.layers[1].clone();
    let page = "<html>\n<body>\n<h1>502 Bad Gateway</h1>\n</body>\n</html>\n".repeat(20);
    let reg = lying(&img, move |r| {
        (r.blob() == Some(&target))
            .then(|| Reply::new(500, page.clone()).header("Content-Type", "text/html"))
    });
    let (env, before) = store_with_an_image();
    let line = pull_refused(&env, &before, &format!("{}/x:1", reg.host));
    assert!(
        line.contains("500 Internal Server Error: <html> <body> <h1>502 Bad Gateway</h1>"),
        "{line}"
    );
    assert!(line.chars().count() < 400, "{line}");
}

#[test]
fn a_blob_redirected_to_another_host_gets_no_credentials() {
    for bearer in [false, true] {
        let img = image(1, |_| {});
        let elsewhere = LyingRegistry::start({
            let content = img.content.clone();
            move |r| content.answer(r)
        });
        let target = img.layers[1].clone();
        let to = elsewhere.url(&format!("/v2/x/blobs/{target}"));
        let content = img.content.clone();
        let reg = LyingRegistry::start(move |r| {
            let host = r.header("Host").unwrap_or("").to_owned();
            let authorized = if bearer {
                r.header("Authorization") == Some(&format!("Bearer {TOKEN}"))
            } else {
                has_basic(r)
            };
            if bearer && r.path() == "/token" {
                return if has_basic(r) {
                    Reply::new(200, format!("{{\"token\":\"{TOKEN}\"}}"))
                } else {
                    Reply::new(401, Vec::new())
                };
            }
            if !authorized {
                let challenge = if bearer {
                    format!("Bearer realm=\"http://{host}/token\",service=\"lying\"")
                } else {
                    "Basic realm=\"lying\"".to_owned()
                };
                return Reply::error(401, "UNAUTHORIZED", "authentication required")
                    .header("WWW-Authenticate", &challenge);
            }
            if r.blob() == Some(&target) {
                return Reply::redirect(&to);
            }
            content.answer(r)
        });
        let env = Env::new();
        log_in(&env, &reg.host);
        let name = format!("{}/x:1", reg.host);
        let out = wrun(&env, &["pull", &name]).output().unwrap();
        assert!(out.status.success(), "bearer {bearer}: {}", stderr(&out));
        env.ok(&["image", "inspect", &name]);
        // The registry got the credentials; the host it sent the blob
        // request to did get the request, but not them.
        let asked = reg.requests();
        assert!(
            asked
                .iter()
                .any(|r| r.blob() == Some(&img.layers[1]) && r.header("Authorization").is_some()),
            "{asked:?}"
        );
        let redirected = elsewhere.requests();
        assert!(
            redirected.iter().any(|r| r.blob() == Some(&img.layers[1])),
            "{redirected:?}"
        );
        assert_no_credentials(&redirected);
    }
}

#[test]
fn credentials_never_go_to_a_token_realm_on_another_host() {
    let img = image(0, |_| {});
    let realm = LyingRegistry::start(|_| Reply::new(200, format!("{{\"token\":\"{TOKEN}\"}}")));
    let realm_url = realm.url("/token");
    let content = img.content.clone();
    let reg = LyingRegistry::start(move |r| {
        if r.header("Authorization") == Some(&format!("Bearer {TOKEN}")) {
            return content.answer(r);
        }
        Reply::error(401, "UNAUTHORIZED", "authentication required").header(
            "WWW-Authenticate",
            &format!("Bearer realm=\"{realm_url}\",service=\"lying\""),
        )
    });
    let (env, before) = store_with_an_image();
    log_in(&env, &reg.host);
    let line = pull_refused(&env, &before, &format!("{}/x:1", reg.host));
    assert!(
        line.contains("only to that registry") && line.contains(&realm.host),
        "{line}"
    );
    assert_no_credentials(&realm.requests());
    assert_no_credentials(&reg.requests());
}

#[test]
fn a_registry_that_asks_basic_then_a_realm_elsewhere_never_gets_credentials_sent_there() {
    // The first /v2/ (wrun's check) asks for Basic; every later one for a
    // token from another host. Basic must stay Basic, sent to the registry.
    let img = image(1, |_| {});
    let realm = LyingRegistry::start(|_| Reply::new(200, format!("{{\"token\":\"{TOKEN}\"}}")));
    let realm_url = realm.url("/token");
    let content = img.content.clone();
    let challenges = Arc::new(AtomicUsize::new(0));
    let reg = LyingRegistry::start(move |r| {
        if r.path() == "/v2/" || !has_basic(r) {
            let challenge = if challenges.fetch_add(1, Ordering::SeqCst) == 0 {
                "Basic realm=\"lying\"".to_owned()
            } else {
                format!("Bearer realm=\"{realm_url}\",service=\"lying\"")
            };
            return Reply::error(401, "UNAUTHORIZED", "authentication required")
                .header("WWW-Authenticate", &challenge);
        }
        content.answer(r)
    });
    let env = Env::new();
    log_in(&env, &reg.host);
    let name = format!("{}/x:1", reg.host);
    let out = wrun(&env, &["pull", &name]).output().unwrap();
    assert_no_credentials(&realm.requests());
    assert!(out.status.success(), "{}", stderr(&out));
}

#[test]
fn a_push_to_a_registry_that_asks_basic_then_a_realm_elsewhere_sends_no_credentials_there() {
    let realm = LyingRegistry::start(|_| Reply::new(200, format!("{{\"token\":\"{TOKEN}\"}}")));
    let realm_url = realm.url("/token");
    let challenges = Arc::new(AtomicUsize::new(0));
    let reg = LyingRegistry::start(move |r| {
        if r.path() == "/v2/" || !has_basic(r) {
            let challenge = if challenges.fetch_add(1, Ordering::SeqCst) == 0 {
                "Basic realm=\"lying\"".to_owned()
            } else {
                format!("Bearer realm=\"{realm_url}\",service=\"lying\"")
            };
            return Reply::error(401, "UNAUTHORIZED", "authentication required")
                .header("WWW-Authenticate", &challenge);
        }
        // Knows no blob and takes no upload: the push fails, later.
        Reply::error(404, "NAME_UNKNOWN", "repository name not known to registry")
    });
    let env = Env::new();
    env.build_hello("kept:1");
    let name = format!("{}/x:1", reg.host);
    env.ok(&["tag", "kept:1", &name]);
    log_in(&env, &reg.host);
    let out = wrun(&env, &["push", &name]).output().unwrap();
    assert!(!out.status.success());
    assert!(reg.requests().iter().any(has_basic), "{:?}", reg.requests());
    assert_no_credentials(&realm.requests());
}

#[test]
fn a_login_redirected_to_another_host_sends_no_credentials_there() {
    // The registry asks for Basic, and answers the credentialed check (and
    // a token request) with a redirect to another host.
    let elsewhere = LyingRegistry::start(|_| Reply::new(200, b"{}".to_vec()));
    for bearer in [false, true] {
        let to = elsewhere.url("/v2/");
        let reg = LyingRegistry::start(move |r| {
            let host = r.header("Host").unwrap_or("").to_owned();
            if r.header("Authorization").is_some() {
                return Reply::redirect(&to);
            }
            let challenge = if bearer {
                format!("Bearer realm=\"http://{host}/token\",service=\"lying\"")
            } else {
                "Basic realm=\"lying\"".to_owned()
            };
            Reply::error(401, "UNAUTHORIZED", "authentication required")
                .header("WWW-Authenticate", &challenge)
        });
        let env = Env::new();
        let out = common::output_with_input(
            &mut wrun(
                &env,
                &["login", &reg.host, "-u", "alice", "--password-stdin"],
            ),
            PASSWORD.as_bytes(),
        );
        assert!(
            reg.requests().iter().any(has_basic),
            "bearer {bearer}: {:?}",
            reg.requests()
        );
        assert!(!String::from_utf8_lossy(&out.stderr).contains("panicked"));
    }
    assert!(!elsewhere.requests().is_empty());
    assert_no_credentials(&elsewhere.requests());
}

#[test]
fn an_interrupted_pull_leaves_the_store_usable_and_a_second_pull_succeeds() {
    let img = image(1, |_| {});
    let target = img.layers[1].clone();
    let honest = Arc::new(AtomicBool::new(false));
    let reg = {
        let (content, honest) = (img.content.clone(), honest.clone());
        LyingRegistry::start(move |r| {
            if !honest.load(Ordering::SeqCst) && r.blob() == Some(&target) {
                let bytes = &content.blobs[&target];
                return Reply::new(200, bytes[..bytes.len() / 2].to_vec())
                    .claiming(bytes.len() as u64)
                    .then(Then::Stall);
            }
            content.answer(r)
        })
    };
    let (env, before) = store_with_an_image();
    let name = format!("{}/x:1", reg.host);
    let mut child = wrun(&env, &["pull", &name])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    poll(
        "the pull asks for the stalling blob",
        Duration::from_secs(60),
        || {
            if reg
                .requests()
                .iter()
                .any(|r| r.blob() == Some(&img.layers[1]))
            {
                Ok(())
            } else {
                Err(format!("{:?}", reg.requests()))
            }
        },
    );
    child.kill().unwrap(); // SIGKILL, mid-blob
    child.wait().unwrap();
    // Still usable: listed as before, every record whole.
    assert_eq!(env.ok(&["images"]), before.images);
    common::assert_store_consistent(&env);

    honest.store(true, Ordering::SeqCst);
    let out = wrun(&env, &["pull", &name]).output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(env.ok(&["run", "--rm", &name]).contains("Hello"));
    // The killed pull's staging area went when the store was next opened.
    assert_only_verified_blobs(&env.root().join("tmp"));
    assert_eq!(names(&env.root().join("tmp")), Vec::<String>::new());
    common::assert_store_consistent(&env);
}

#[test]
fn a_build_from_a_lying_registry_fails_and_stores_nothing() {
    let img = image(1, |_| {});
    let target = img.layers[1].clone();
    let mut other = blob_bytes(&img, &target);
    other[600] ^= 0xff;
    let reg = lying(&img, move |r| {
        (r.blob() == Some(&target)).then(|| Reply::new(200, other.clone()))
    });
    let (env, before) = store_with_an_image();
    let ctx = common::dockerfile_context(&[], &format!("FROM {}/x:1\n", reg.host));
    let out = wrun(&env, &["build", "-q", "-t", "app:1", common::p(&ctx)])
        .output()
        .unwrap();
    let line = one_line(&out);
    assert!(line.contains(&img.layers[1]), "{line}");
    before.assert_unchanged(&env);
}
