//! `wrun load` of arbitrary bytes (raw, or an archive description that
//! mutations keep well formed: see wrun_fuzz::archive_bytes) into a fresh
//! store. It must answer Ok or an error, never panic; nothing may appear
//! outside the store; an error leaves the store empty, and a success leaves
//! every recorded image whole.

#![no_main]

use std::io::Cursor;
use std::path::Path;

use libfuzzer_sys::fuzz_target;
use wrun_fuzz::{archive_bytes, list};
use wrun_image::{Digest, Store, archive};

fuzz_target!(|input: &[u8]| {
    let bytes = archive_bytes(input);
    // tmpfs keeps the store's fsyncs cheap.
    let base = if Path::new("/dev/shm").is_dir() {
        tempfile::tempdir_in("/dev/shm")
    } else {
        tempfile::tempdir()
    }
    .expect("creating the fuzz store's parent");
    // Three levels of parents: an entry escaping by `..` lands in one.
    let root = base.path().join("a/b/store");
    let store = Store::open(&root).expect("opening a fresh store");
    assert!(
        archive::find_stored(&store, Cursor::new(&bytes)).is_none(),
        "an empty store holds no image"
    );
    let result = archive::load(&store, &bytes[..]);
    assert_eq!(
        list(base.path()),
        ["a"],
        "something was written beside the store's parents"
    );
    assert_eq!(
        list(&base.path().join("a")),
        ["b"],
        "something was written beside the store's parents"
    );
    assert_eq!(
        list(&base.path().join("a/b")),
        ["store"],
        "something was written beside the store"
    );
    assert_eq!(
        list(&root.join("tmp")),
        Vec::<String>::new(),
        "a staging area was left behind"
    );
    let images = store.images().expect("the image records stay readable");
    match result {
        Err(_) => {
            assert!(images.is_empty(), "a failed load recorded an image");
            assert_eq!(
                list(&root.join("blobs/sha256")),
                Vec::<String>::new(),
                "a failed load stored a blob"
            );
            assert_eq!(
                list(&root.join("snapshots")),
                Vec::<String>::new(),
                "a failed load stored a snapshot"
            );
        }
        Ok(report) => {
            assert!(!images.is_empty(), "a successful load recorded no image");
            assert_eq!(report.images.len(), images.len());
            for record in &images {
                whole(&store, record);
            }
            if let Some(found) = archive::find_stored(&store, Cursor::new(&bytes)) {
                assert!(
                    images.contains(&found),
                    "find_stored answered an image the store lacks"
                );
            }
            // Loading the same archive again is a no-op that succeeds.
            let again =
                archive::load(&store, &bytes[..]).expect("loading an archive a second time");
            assert_eq!(again.images.len(), report.images.len());
            assert_eq!(
                store.images().expect("reading the records").len(),
                images.len()
            );
        }
    }
});

/// Every blob and the snapshot a record names are in the store.
fn whole(store: &Store, record: &wrun_image::ImageRecord) {
    let manifest = store
        .manifest(record)
        .expect("a recorded image's manifest is stored");
    store
        .config(record)
        .expect("a recorded image's config is stored");
    assert_eq!(
        Digest::from_oci(manifest.config().digest()).expect("a stored manifest's config digest"),
        record.id
    );
    for layer in manifest.layers() {
        let d = Digest::from_oci(layer.digest()).expect("a stored manifest's layer digest");
        assert!(
            store.has_blob(&d),
            "layer {d} of a recorded image is missing"
        );
    }
    if let Some(rootfs) = store.rootfs_path(record) {
        assert!(
            rootfs.is_dir(),
            "the snapshot of a recorded image is missing"
        );
        let chain = record
            .chain_id
            .expect("a rootfs path comes from a chain ID");
        store
            .snapshot_meta(&chain)
            .expect("a stored snapshot has its meta");
    }
}
