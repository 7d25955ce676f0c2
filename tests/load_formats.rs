//! End to end: `wrun load` reads the image tar forms other tools write, and
//! says what it converted.

#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

mod common;

use common::*;

fn load(env: &Env, t: &LayoutTar) -> std::process::Output {
    let path = env.path("in.tar");
    t.write(&path);
    env.run(&["load", "-i", path.to_str().unwrap()])
}

/// Loads `t`, asserts it worked, and returns (stdout, stderr).
fn load_ok(env: &Env, t: &LayoutTar) -> (String, String) {
    let out = load(env, t);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    (succeeded("wrun", &["load"], out), stderr)
}

#[test]
fn loads_uncompressed_and_gzip_layers() {
    for gz in [false, true] {
        let env = Env::new();
        let mut t = LayoutTar::default();
        let m = wasm_image(&mut t, &hello_layer(), gz, |_| {});
        finish_layout(&mut t, &m, Some("plain:1"));
        let (stdout, _) = load_ok(&env, &t);
        assert_eq!(stdout.trim(), "Loaded image: plain:1");
        let module = env.ok(&["image", "inspect", "-f", "{{.Wasm.Path}}", "plain:1"]);
        assert_eq!(module.trim(), "/hello.wasm");
    }
}

#[test]
fn loads_a_whole_tar_that_is_gzip_compressed() {
    let env = Env::new();
    let mut t = LayoutTar::default();
    let m = wasm_image(&mut t, &hello_layer(), true, |_| {});
    finish_layout(&mut t, &m, Some("gz:1"));
    let plain = env.path("plain.tar");
    t.write(&plain);
    let gz = env.path("image.tar.gz");
    std::fs::write(&gz, gzip(&std::fs::read(&plain).unwrap())).unwrap();
    assert_eq!(
        env.ok(&["load", "-i", gz.to_str().unwrap()]).trim(),
        "Loaded image: gz:1"
    );
}

#[test]
fn converts_os_wasi_to_wasip1_and_says_so() {
    let env = Env::new();
    let mut t = LayoutTar::default();
    let m = wasm_image(&mut t, &hello_layer(), true, |c| c["os"] = "wasi".into());
    finish_layout(&mut t, &m, Some("dockerwasm:1"));
    let (_, stderr) = load_ok(&env, &t);
    assert!(
        stderr.contains("converted os \"wasi\" to \"wasip1\""),
        "{stderr}"
    );
    assert_eq!(
        env.ok(&["image", "inspect", "-f", "{{.Os}}", "dockerwasm:1"])
            .trim(),
        "wasip1"
    );
}

#[test]
fn loads_the_docker_save_manifest_json_form() {
    let env = Env::new();
    let layer = hello_layer();
    let config = serde_json::json!({
        "architecture": "wasm", "os": "wasip1",
        "config": {"Entrypoint": ["/hello.wasm"], "Cmd": ["docker"]},
        "rootfs": {"type": "layers", "diff_ids": [digest(&layer)]},
        "container_config": {"Hostname": ""}, "docker_version": "24.0.7",
    });
    let config_bytes = serde_json::to_vec(&config).unwrap();
    let config_name = format!("{}.json", sha256_hex(&config_bytes));
    let mut t = LayoutTar::default();
    t.file(&config_name, &config_bytes);
    t.file("abc123/layer.tar", &layer);
    t.file("abc123/VERSION", b"1.0");
    let manifest = serde_json::json!([{"Config": config_name, "RepoTags": ["legacy:1.0"], "Layers": ["abc123/layer.tar"]}]);
    t.file("manifest.json", &serde_json::to_vec(&manifest).unwrap());
    let (stdout, stderr) = load_ok(&env, &t);
    assert_eq!(stdout.trim(), "Loaded image: legacy:1.0");
    assert!(stderr.contains("docker-save"));
    // The config is kept byte for byte, so the image ID is Docker's.
    let id = env.ok(&["image", "inspect", "-f", "{{.Id}}", "legacy:1.0"]);
    assert_eq!(id.trim(), digest(&config_bytes));
}

#[test]
fn converts_a_wasm_oci_artifact_into_a_runnable_image() {
    let env = Env::new();
    let module = std::fs::read(format!("{HELLO_DIR}/hello.wasm")).unwrap();
    let mut t = LayoutTar::default();
    let layer = t.blob(&module);
    let config = br#"{"architecture":"wasm","os":"wasip1","layerDigests":[]}"#;
    let cfg = t.blob(config);
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "artifactType": "application/vnd.wasm.config.v0+json",
        "config": {"mediaType": "application/vnd.wasm.config.v0+json", "digest": cfg, "size": config.len()},
        "layers": [{"mediaType": "application/wasm", "digest": layer, "size": module.len(),
                    "annotations": {"org.opencontainers.image.title": "hello.wasm"}}],
    });
    finish_layout(
        &mut t,
        &serde_json::to_vec(&manifest).unwrap(),
        Some("artifact:1"),
    );
    let (_, stderr) = load_ok(&env, &t);
    assert!(stderr.contains("wasm OCI artifact"));
    let inspect: serde_json::Value =
        serde_json::from_str(&env.ok(&["image", "inspect", "artifact:1"])).unwrap();
    assert_eq!(
        inspect[0]["Config"]["Entrypoint"],
        serde_json::json!(["/hello.wasm"])
    );
    assert_eq!(inspect[0]["Os"], "wasip1");
    assert_eq!(
        inspect[0]["Wasm"]["Digest"].as_str().unwrap(),
        digest(&module)
    );
}

#[test]
fn picks_the_wasm_entry_of_a_multi_platform_index() {
    let env = Env::new();
    let mut t = LayoutTar::default();
    let m = wasm_image(&mut t, &hello_layer(), true, |_| {});
    let md = t.blob(&m);
    let linux = serde_json::json!({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": md, "size": m.len()}, "layers": []});
    let linux = serde_json::to_vec(&linux).unwrap();
    let ld = t.blob(&linux);
    let nested = serde_json::json!({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": [
        {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": ld, "size": linux.len(), "platform": {"os": "linux", "architecture": "amd64"}},
        {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": md, "size": m.len(), "platform": {"os": "wasip1", "architecture": "wasm"}},
    ]});
    let nested = serde_json::to_vec(&nested).unwrap();
    let nd = t.blob(&nested);
    let index = serde_json::json!({"schemaVersion": 2, "manifests": [
        {"mediaType": "application/vnd.oci.image.index.v1+json", "digest": nd, "size": nested.len(),
         "annotations": {"io.containerd.image.name": "multi:1"}}]});
    t.file("oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#);
    t.file("index.json", &serde_json::to_vec(&index).unwrap());
    load_ok(&env, &t);
    assert_eq!(
        env.ok(&["image", "inspect", "-f", "{{.Os}}", "multi:1"])
            .trim(),
        "wasip1"
    );
}

#[test]
fn a_linux_image_is_refused_as_not_wasm() {
    let env = Env::new();
    let mut t = LayoutTar::default();
    let m = wasm_image(&mut t, &hello_layer(), true, |c| {
        c["os"] = "linux".into();
        c["architecture"] = "amd64".into();
    });
    finish_layout(&mut t, &m, Some("ubuntu:22.04"));
    let out = load(&env, &t);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("not a wasm image: os=linux arch=amd64"),
        "{stderr}"
    );
    assert_eq!(env.ok(&["images", "-q"]).trim(), "");
}
