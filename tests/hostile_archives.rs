//! End to end: hostile image tars. Each test names the attack; each checks
//! the clear error, that nothing escaped, and that the store is unchanged.

#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

mod common;

use common::*;

/// Loads a good image first, then the hostile tar; returns the error line.
fn attack(build: impl FnOnce(&mut LayoutTar)) -> (Env, String) {
    let env = Env::new();
    env.build_hello("hello:1.0");
    let before = env.store_state();
    let mut t = LayoutTar::default();
    build(&mut t);
    let path = env.path("hostile.tar");
    t.write(&path);
    let err = env.fails(&["load", "-i", path.to_str().unwrap()]);
    assert_eq!(
        env.store_state(),
        before,
        "a failed load must leave the store as it was"
    );
    assert_eq!(err.trim().lines().count(), 1, "one error line: {err}");
    let tmp_left: Vec<_> = std::fs::read_dir(env.root().join("tmp")).unwrap().collect();
    assert!(
        tmp_left.is_empty(),
        "staging areas are removed after a failure"
    );
    (env, err)
}

fn hostile_layer(entries: &[(&[u8], tar::EntryType, &[u8])]) -> Vec<u8> {
    let mut t = Vec::new();
    for (name, kind, link) in entries {
        raw_entry(
            &mut t,
            name,
            *kind,
            link,
            if *kind == tar::EntryType::Regular {
                b"pwned"
            } else {
                b""
            },
            0o644,
        );
    }
    end_tar(t)
}

fn image_with_layer(layer: Vec<u8>) -> impl FnOnce(&mut LayoutTar) {
    move |t| {
        let m = wasm_image(t, &layer, true, |_| {});
        finish_layout(t, &m, Some("evil:1"));
    }
}

#[test]
fn zip_slip_layer_entry_is_refused() {
    let victim = tempfile::tempdir().unwrap();
    let target = format!(
        "../../../../../../../../..{}/pwned",
        victim.path().display()
    );
    let (_, err) = attack(image_with_layer(hostile_layer(&[(
        target.as_bytes(),
        tar::EntryType::Regular,
        b"",
    )])));
    assert!(
        err.contains("unsafe entry") && err.contains("'..'"),
        "{err}"
    );
    assert!(!victim.path().join("pwned").exists());
}

#[test]
fn symlink_then_write_through_it_is_refused() {
    let victim = tempfile::tempdir().unwrap();
    let link = victim.path().display().to_string();
    let (_, err) = attack(image_with_layer(hostile_layer(&[
        (b"d", tar::EntryType::Symlink, link.as_bytes()),
        (b"d/pwned", tar::EntryType::Regular, b""),
    ])));
    assert!(err.contains("layer"), "{err}");
    assert!(!victim.path().join("pwned").exists());
    let (_, err) = attack(image_with_layer(hostile_layer(&[
        (b"up", tar::EntryType::Symlink, b"../../../../../../../.."),
        (b"up/tmp/pwned", tar::EntryType::Regular, b""),
    ])));
    assert!(err.contains("layer"), "{err}");
}

#[test]
fn hard_link_to_host_file_is_refused() {
    let (_, err) = attack(image_with_layer(hostile_layer(&[(
        b"passwd",
        tar::EntryType::Link,
        b"/etc/passwd",
    )])));
    assert!(err.contains("not in the image"), "{err}");
    let (_, err) = attack(image_with_layer(hostile_layer(&[(
        b"x",
        tar::EntryType::Link,
        b"../../etc/passwd",
    )])));
    assert!(err.contains("'..'"), "{err}");
}

#[test]
fn whiteout_of_parent_is_refused() {
    let (_, err) = attack(image_with_layer(hostile_layer(&[(
        b".wh...",
        tar::EntryType::Regular,
        b"",
    )])));
    assert!(err.contains("whiteout"), "{err}");
}

#[test]
fn blob_not_matching_its_digest_is_refused() {
    let (_, err) = attack(|t| {
        let m = wasm_image(t, &hello_layer(), true, |_| {});
        finish_layout(t, &m, Some("evil:1"));
        // Swap the layer bytes under its name.
        let layer = t
            .files
            .iter_mut()
            .find(|(_, b)| b.starts_with(&[0x1f, 0x8b]))
            .unwrap();
        layer.1[20] ^= 0xff;
    });
    assert!(err.contains("does not match its digest"), "{err}");
}

#[test]
fn blob_path_that_is_not_a_digest_is_refused() {
    let (_, err) = attack(|t| {
        t.file("blobs/sha256/../../../../tmp/evil", b"x");
        let m = wasm_image(t, &hello_layer(), true, |_| {});
        finish_layout(t, &m, Some("evil:1"));
    });
    assert!(err.contains("must not contain '..'"), "{err}");
    let (_, err) = attack(|t| {
        t.file("blobs/sha256/not-a-digest", b"x");
        let m = wasm_image(t, &hello_layer(), true, |_| {});
        finish_layout(t, &m, Some("evil:1"));
    });
    assert!(err.contains("64 lowercase hex"), "{err}");
}

#[test]
fn manifest_that_is_also_an_index_is_refused() {
    let (_, err) = attack(|t| {
        let m = wasm_image(t, &hello_layer(), true, |_| {});
        let mut v: serde_json::Value = serde_json::from_slice(&m).unwrap();
        v["manifests"] = serde_json::json!([]);
        finish_layout(t, &serde_json::to_vec(&v).unwrap(), Some("evil:1"));
    });
    assert!(err.contains("ambiguous"), "{err}");
}

#[test]
fn manifest_media_type_disagreeing_with_descriptor_is_refused() {
    let (_, err) = attack(|t| {
        let m = wasm_image(t, &hello_layer(), true, |_| {});
        let mut v: serde_json::Value = serde_json::from_slice(&m).unwrap();
        v["mediaType"] = "application/vnd.docker.distribution.manifest.v2+json".into();
        finish_layout(t, &serde_json::to_vec(&v).unwrap(), Some("evil:1"));
    });
    assert!(err.contains("descriptor says"), "{err}");
}

#[test]
fn index_pointing_nowhere_is_refused() {
    let (_, err) = attack(|t| {
        let m = wasm_image(t, &hello_layer(), true, |_| {});
        finish_layout(t, &m, Some("evil:1"));
        t.files
            .retain(|(name, b)| !(name.starts_with("blobs/") && b == &m));
    });
    assert!(err.contains("not in the archive"), "{err}");
}

#[test]
fn missing_layer_blob_is_refused() {
    let (_, err) = attack(|t| {
        let m = wasm_image(t, &hello_layer(), true, |_| {});
        finish_layout(t, &m, Some("evil:1"));
        t.files.retain(|(_, b)| !b.starts_with(&[0x1f, 0x8b]));
    });
    assert!(err.contains("not in the archive"), "{err}");
}

#[test]
fn diff_id_mismatch_is_refused() {
    let (_, err) = attack(|t| {
        let m = wasm_image(t, &hello_layer(), true, |c| {
            c["rootfs"]["diff_ids"] = serde_json::json!([digest(b"something else")]);
        });
        finish_layout(t, &m, Some("evil:1"));
    });
    assert!(err.contains("diff_id"), "{err}");
}

#[test]
fn malformed_digest_in_descriptor_is_refused() {
    let (_, err) = attack(|t| {
        let m = wasm_image(t, &hello_layer(), true, |_| {});
        let mut v: serde_json::Value = serde_json::from_slice(&m).unwrap();
        v["layers"][0]["digest"] = "sha256:../../../etc/passwd".into();
        finish_layout(t, &serde_json::to_vec(&v).unwrap(), Some("evil:1"));
    });
    assert!(
        err.contains("../../../etc/passwd") && err.contains("not valid"),
        "{err}"
    );
}

#[test]
fn truncated_archive_is_refused() {
    let env = Env::new();
    env.build_hello("hello:1.0");
    let before = env.store_state();
    let good = env.path("good.tar");
    env.ok(&["save", "-o", good.to_str().unwrap(), "hello:1.0"]);
    let bytes = std::fs::read(&good).unwrap();
    let cut = env.path("cut.tar");
    std::fs::write(&cut, &bytes[..bytes.len() / 2 + 100]).unwrap();
    let other = Env::new();
    let err = other.fails(&["load", "-i", cut.to_str().unwrap()]);
    assert!(err.contains("truncated"), "{err}");
    assert_eq!(other.ok(&["images", "-q"]).trim(), "");
    let err = env.fails(&["load", "-i", cut.to_str().unwrap()]);
    assert!(!err.is_empty());
    assert_eq!(env.store_state(), before);
}

#[test]
fn malformed_tar_header_is_refused() {
    let (_, err) = attack(|t| {
        let mut layer = Vec::new();
        raw_entry(
            &mut layer,
            b"hello.wasm",
            tar::EntryType::Regular,
            b"",
            b"data",
            0o644,
        );
        layer[148..156].copy_from_slice(b"xxxxxxxx"); // corrupt the checksum field
        let layer = end_tar(layer);
        let m = wasm_image(t, &layer, false, |_| {});
        finish_layout(t, &m, Some("evil:1"));
    });
    assert!(err.contains("malformed or truncated"), "{err}");
}

#[test]
fn not_an_archive_at_all_is_refused() {
    let env = Env::new();
    let p = env.path("junk.tar");
    std::fs::write(&p, b"this is not a tar file, just text").unwrap();
    let err = env.fails(&["load", "-i", p.to_str().unwrap()]);
    assert!(
        err.contains("no index.json or manifest.json") || err.contains("not a valid tar"),
        "{err}"
    );
    let err = env.fails(&["load", "-i", "/nonexistent.tar"]);
    assert!(err.contains("/nonexistent.tar"), "{err}");
}
