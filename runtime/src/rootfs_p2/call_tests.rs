//! Every `descriptor` and `directory-entry-stream` call of the view, made
//! as the linker makes them (through the host traits), beside a host
//! preopen and the read-only rootfs it replaces.

use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use wasmtime::component::ResourceTable;
use wasmtime_wasi::filesystem::WasiFilesystemCtx;
use wasmtime_wasi::p2::{InputStream, OutputStream, Pollable, StreamError};
use wasmtime_wasi::{FsPerms, WasiCtxBuilder};
use wrun_rootfs::UpperOptions;

use super::*;
use crate::host_dir::{IfMissing, open_host_dir};

struct Fixture {
    lower: tempfile::TempDir,
    volume: tempfile::TempDir,
    _store: tempfile::TempDir,
    layers: Layers,
    ctx: WasiFilesystemCtx,
    table: ResourceTable,
}

impl Fixture {
    /// An image with `etc/motd`, `etc/link -> /etc/motd` and an empty
    /// `dir`; its view under a size limit; a WASI context with the image
    /// read-only at `/` and a read-write volume at `/data`.
    fn new() -> Fixture {
        let lower = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir_all(lower.path().join("etc")).expect("mkdir");
        std::fs::create_dir(lower.path().join("dir")).expect("mkdir");
        std::fs::write(lower.path().join("etc/motd"), "hello").expect("write");
        std::os::unix::fs::symlink("/etc/motd", lower.path().join("etc/link")).expect("ln");
        let volume = tempfile::tempdir().expect("tempdir");
        let store = tempfile::tempdir().expect("tempdir");
        let dir = open_host_dir(lower.path(), IfMissing::Fail).expect("open lower");
        let layers = Layers::open(
            Arc::new(dir),
            store.path().join("upper"),
            UpperOptions {
                size_limit: Some(1024),
            },
        )
        .expect("view");
        let mut b = WasiCtxBuilder::new();
        b.preopened_dir(lower.path(), "/", FsPerms::ReadOnly)
            .expect("rootfs preopen");
        b.preopened_dir(volume.path(), "/data", FsPerms::ReadWrite)
            .expect("volume preopen");
        let ctx = b.build().filesystem().clone();
        Fixture {
            lower,
            volume,
            _store: store,
            layers,
            ctx,
            table: ResourceTable::new(),
        }
    }

    fn fs(&mut self) -> RootfsFs<'_> {
        RootfsFs::new(
            WasiFilesystemCtxView {
                ctx: &mut self.ctx,
                table: &mut self.table,
            },
            Some(&self.layers),
        )
    }
}

/// The guest's error code of a failed call (a trap fails the test).
fn code<T>(r: FsResult<T>) -> ErrorCode {
    match r {
        Ok(_) => panic!("the call succeeded"),
        Err(e) => e.downcast().expect("an error code, not a trap"),
    }
}

fn borrow(fd: &Resource<Descriptor>) -> Resource<Descriptor> {
    Resource::new_borrow(fd.rep())
}

fn lower_unchanged(lower: &Path) {
    assert_eq!(
        std::fs::read_to_string(lower.join("etc/motd")).expect("motd"),
        "hello"
    );
    let names: Vec<_> = std::fs::read_dir(lower.join("etc"))
        .expect("etc")
        .map(|e| e.expect("entry").file_name())
        .collect();
    assert_eq!(names.len(), 2, "{names:?}");
}

/// `/` (the view, in place of the read-only preopen) and `/data`.
fn preopens(fs: &mut RootfsFs<'_>) -> (Resource<Descriptor>, Resource<Descriptor>) {
    let mut dirs = preopens::Host::get_directories(fs).expect("preopens");
    assert_eq!(
        dirs.iter().map(|(_, g)| g.as_str()).collect::<Vec<_>>(),
        ["/", "/data"]
    );
    let (data, _) = dirs.pop().expect("data");
    let (root, _) = dirs.pop().expect("root");
    assert!(fs.view_node(&root).is_some(), "/ is the view");
    assert!(fs.view_node(&data).is_none(), "/data is wasmtime-wasi's");
    (root, data)
}

const READ: DescriptorFlags = DescriptorFlags::READ;
fn no_follow() -> PathFlags {
    PathFlags::empty()
}

#[tokio::test]
async fn file_calls_on_the_view() {
    let mut f = Fixture::new();
    let mut fs = f.fs();
    let (root, data) = preopens(&mut fs);
    let motd = || "etc/motd".to_owned();
    let reader = fs
        .open_at(borrow(&root), no_follow(), motd(), OpenFlags::empty(), READ)
        .await
        .expect("open");
    assert_eq!(
        fs.get_type(borrow(&reader)).await.expect("type"),
        DescriptorType::RegularFile
    );
    assert_eq!(fs.get_flags(borrow(&reader)).await.expect("flags"), READ);
    assert_eq!(
        fs.read(borrow(&reader), 3, 1).await.expect("read"),
        (b"ell".to_vec(), false)
    );
    assert_eq!(
        fs.read(borrow(&reader), 3, 5).await.expect("read"),
        (Vec::new(), true)
    );
    assert_eq!(
        code(fs.write(borrow(&reader), b"x".to_vec(), 0).await),
        ErrorCode::BadDescriptor
    );
    assert_eq!(
        code(fs.write_via_stream(borrow(&reader), 0)),
        ErrorCode::BadDescriptor
    );
    assert_eq!(
        code(fs.set_size(borrow(&reader), 0).await),
        ErrorCode::BadDescriptor
    );
    fs.advise(borrow(&reader), 0, 5, Advice::Sequential)
        .await
        .expect("advice taken");
    fs.sync_data(borrow(&reader)).await.expect("sync-data");
    let stat = fs.stat(borrow(&reader)).await.expect("stat");
    assert_eq!(
        (stat.type_, stat.size, stat.link_count),
        (DescriptorType::RegularFile, 5, 1)
    );
    let lower_hash = fs.metadata_hash(borrow(&reader)).await.expect("hash");
    let hash_at = fs
        .metadata_hash_at(borrow(&root), PathFlags::SYMLINK_FOLLOW, "etc/link".into())
        .await
        .expect("hash at");
    assert_eq!(
        (lower_hash.lower, lower_hash.upper),
        (hash_at.lower, hash_at.upper)
    );
    assert_eq!(
        code(
            fs.open_at(
                borrow(&reader),
                no_follow(),
                "x".into(),
                OpenFlags::empty(),
                READ
            )
            .await
        ),
        ErrorCode::NotDirectory,
        "a file is no directory to open from"
    );

    // Writing copies the file up; the reader opened before keeps the image's.
    let writer = fs
        .open_at(
            borrow(&root),
            no_follow(),
            motd(),
            OpenFlags::empty(),
            DescriptorFlags::WRITE,
        )
        .await
        .expect("open for writing");
    assert_eq!(
        fs.get_flags(borrow(&writer)).await.expect("flags"),
        DescriptorFlags::WRITE
    );
    assert_eq!(
        fs.write(borrow(&writer), b"J".to_vec(), 0)
            .await
            .expect("write"),
        1
    );
    assert_eq!(
        code(fs.read(borrow(&writer), 1, 0).await),
        ErrorCode::BadDescriptor,
        "opened for writing only"
    );
    fs.set_size(borrow(&writer), 4).await.expect("set-size");
    let past = NewTimestamp::Timestamp(Datetime {
        seconds: 1_000_000,
        nanoseconds: 5,
    });
    fs.set_times(borrow(&writer), NewTimestamp::NoChange, past)
        .await
        .expect("set-times");
    let stat = fs.stat(borrow(&writer)).await.expect("stat");
    assert_eq!(stat.size, 4);
    let mtime = stat.data_modification_timestamp.expect("mtime");
    assert_eq!((mtime.seconds, mtime.nanoseconds), (1_000_000, 5));
    fs.sync(borrow(&writer)).await.expect("sync");
    let copy_hash = fs.metadata_hash(borrow(&writer)).await.expect("hash");
    assert_ne!(
        copy_hash.lower, lower_hash.lower,
        "the copy is another file"
    );
    assert!(
        !fs.is_same_object(borrow(&reader), borrow(&writer))
            .await
            .expect("same")
    );
    let again = fs
        .open_at(borrow(&root), no_follow(), motd(), OpenFlags::empty(), READ)
        .await
        .expect("open");
    assert!(
        fs.is_same_object(borrow(&again), borrow(&writer))
            .await
            .expect("same")
    );
    assert!(
        !fs.is_same_object(borrow(&again), borrow(&data))
            .await
            .expect("same"),
        "a view file is never a volume's"
    );
    assert_eq!(
        fs.read(borrow(&again), 10, 0).await.expect("read").0,
        b"Jell"
    );
    assert_eq!(
        fs.read(borrow(&reader), 10, 0).await.expect("read").0,
        b"hello",
        "a reader opened before the copy-up keeps the image's data"
    );

    // Beyond the size limit (1 KiB): insufficient space, nothing written.
    assert_eq!(
        code(fs.write(borrow(&writer), vec![0; 2048], 0).await),
        ErrorCode::InsufficientSpace
    );
    assert_eq!(
        code(fs.set_size(borrow(&writer), 4096).await),
        ErrorCode::InsufficientSpace
    );
    assert_eq!(
        code(
            fs.open_at(
                borrow(&root),
                no_follow(),
                motd(),
                OpenFlags::empty(),
                READ | DescriptorFlags::FILE_INTEGRITY_SYNC
            )
            .await
        ),
        ErrorCode::Unsupported
    );

    for fd in [reader, writer, again, root] {
        HostDescriptor::drop(&mut fs, fd).expect("drop");
    }
    HostDescriptor::drop(&mut fs, data).expect("drop");
    assert!(
        f.table.is_empty(),
        "every descriptor gone, the read-only / too"
    );
    lower_unchanged(f.lower.path());
}

#[tokio::test]
async fn directory_calls_on_the_view() {
    let mut f = Fixture::new();
    let mut fs = f.fs();
    let (root, data) = preopens(&mut fs);

    assert_eq!(
        fs.get_flags(borrow(&root)).await.expect("flags"),
        READ | DescriptorFlags::MUTATE_DIRECTORY
    );
    assert_eq!(
        fs.get_type(borrow(&root)).await.expect("type"),
        DescriptorType::Directory
    );
    assert_eq!(
        code(fs.read(borrow(&root), 1, 0).await),
        ErrorCode::BadDescriptor
    );
    assert_eq!(
        code(fs.read_via_stream(borrow(&root), 0)),
        ErrorCode::IsDirectory
    );
    assert_eq!(
        code(
            fs.open_at(
                borrow(&root),
                no_follow(),
                "etc".into(),
                OpenFlags::empty(),
                DescriptorFlags::WRITE
            )
            .await
        ),
        ErrorCode::IsDirectory
    );

    fs.create_directory_at(borrow(&root), "new".into())
        .await
        .expect("mkdir");
    assert_eq!(
        code(fs.create_directory_at(borrow(&root), "new".into()).await),
        ErrorCode::Exist
    );
    let new = fs
        .open_at(
            borrow(&root),
            no_follow(),
            "new".into(),
            OpenFlags::DIRECTORY,
            READ,
        )
        .await
        .expect("open dir");
    let made = fs
        .open_at(
            borrow(&new),
            no_follow(),
            "f".into(),
            OpenFlags::CREATE | OpenFlags::EXCLUSIVE,
            DescriptorFlags::WRITE,
        )
        .await
        .expect("create");
    assert_eq!(
        fs.write(borrow(&made), b"abc".to_vec(), 0)
            .await
            .expect("write"),
        3
    );
    fs.symlink_at(borrow(&new), "/etc/motd".into(), "s".into())
        .await
        .expect("symlink");
    assert_eq!(
        fs.readlink_at(borrow(&new), "s".into())
            .await
            .expect("readlink"),
        "/etc/motd"
    );
    let through = fs
        .stat_at(borrow(&new), PathFlags::SYMLINK_FOLLOW, "s".into())
        .await
        .expect("stat");
    let link = fs
        .stat_at(borrow(&new), no_follow(), "s".into())
        .await
        .expect("lstat");
    assert_eq!(
        (through.type_, link.type_),
        (DescriptorType::RegularFile, DescriptorType::SymbolicLink)
    );
    // A hard link through a symlink links its target (copied up first).
    fs.link_at(
        borrow(&new),
        PathFlags::SYMLINK_FOLLOW,
        "s".into(),
        borrow(&root),
        "hard".into(),
    )
    .await
    .expect("link");
    let hard = fs
        .stat_at(borrow(&root), no_follow(), "hard".into())
        .await
        .expect("stat");
    assert_eq!(
        (hard.type_, hard.link_count),
        (DescriptorType::RegularFile, 2)
    );
    fs.rename_at(borrow(&new), "f".into(), borrow(&root), "moved".into())
        .await
        .expect("rename");
    assert_eq!(
        code(
            fs.rename_at(borrow(&root), "etc".into(), borrow(&root), "etc2".into())
                .await
        ),
        ErrorCode::CrossDevice,
        "an image directory"
    );
    let past = NewTimestamp::Timestamp(Datetime {
        seconds: 7,
        nanoseconds: 0,
    });
    fs.set_times_at(borrow(&root), no_follow(), "dir".into(), past, past)
        .await
        .expect("set-times-at");
    fs.set_times(borrow(&new), past, NewTimestamp::Now)
        .await
        .expect("set-times of a directory");
    let dir = fs
        .stat_at(borrow(&root), no_follow(), "dir".into())
        .await
        .expect("stat");
    assert_eq!(dir.data_access_timestamp.map(|t| t.seconds), Some(7));
    assert_eq!(
        fs.stat(borrow(&new))
            .await
            .expect("stat")
            .data_access_timestamp
            .map(|t| t.seconds),
        Some(7)
    );
    fs.unlink_file_at(borrow(&new), "s".into())
        .await
        .expect("unlink");
    assert_eq!(
        code(fs.remove_directory_at(borrow(&root), "etc".into()).await),
        ErrorCode::NotEmpty
    );
    fs.remove_directory_at(borrow(&root), "dir".into())
        .await
        .expect("rmdir");
    fs.sync(borrow(&new)).await.expect("sync");
    fs.sync_data(borrow(&root)).await.expect("sync-data");

    let same = fs
        .open_at(
            borrow(&root),
            no_follow(),
            "new/".into(),
            OpenFlags::empty(),
            READ,
        )
        .await
        .expect("open again");
    assert!(
        fs.is_same_object(borrow(&new), borrow(&same))
            .await
            .expect("same")
    );
    assert!(
        !fs.is_same_object(borrow(&new), borrow(&root))
            .await
            .expect("same")
    );

    let listing = fs.read_directory(borrow(&root)).await.expect("readdir");
    let mut names = Vec::new();
    while let Some(entry) = fs
        .read_directory_entry(Resource::new_borrow(listing.rep()))
        .await
        .expect("entry")
    {
        names.push((entry.name, entry.type_));
    }
    HostDirectoryEntryStream::drop(&mut fs, listing).expect("drop listing");
    assert_eq!(
        names,
        [
            ("etc".to_owned(), DescriptorType::Directory),
            ("hard".to_owned(), DescriptorType::RegularFile),
            ("moved".to_owned(), DescriptorType::RegularFile),
            ("new".to_owned(), DescriptorType::Directory),
        ]
    );

    // Between the view and a volume: cross-device, both sides untouched.
    assert_eq!(
        code(
            fs.rename_at(borrow(&root), "moved".into(), borrow(&data), "x".into())
                .await
        ),
        ErrorCode::CrossDevice
    );
    assert_eq!(
        code(
            fs.link_at(
                borrow(&data),
                no_follow(),
                "x".into(),
                borrow(&root),
                "y".into()
            )
            .await
        ),
        ErrorCode::CrossDevice
    );
    assert_eq!(
        code(
            fs.rename_at(borrow(&made), "a".into(), borrow(&root), "b".into())
                .await
        ),
        ErrorCode::NotDirectory
    );
    // The volume's own calls are wasmtime-wasi's.
    let on_volume = fs
        .open_at(
            borrow(&data),
            no_follow(),
            "v".into(),
            OpenFlags::CREATE,
            DescriptorFlags::WRITE,
        )
        .await
        .expect("create on the volume");
    assert!(fs.view_node(&on_volume).is_none());
    fs.write(borrow(&on_volume), b"vol".to_vec(), 0)
        .await
        .expect("write");
    let host_listing = fs.read_directory(borrow(&data)).await.expect("readdir");
    let entry = fs
        .read_directory_entry(Resource::new_borrow(host_listing.rep()))
        .await
        .expect("entry")
        .expect("one");
    assert_eq!(entry.name, "v");
    HostDirectoryEntryStream::drop(&mut fs, host_listing).expect("drop");

    for fd in [on_volume, made, new, same, root, data] {
        HostDescriptor::drop(&mut fs, fd).expect("drop");
    }
    assert!(f.table.is_empty());
    assert_eq!(
        std::fs::read_to_string(f.volume.path().join("v")).expect("volume"),
        "vol"
    );
    lower_unchanged(f.lower.path());
    assert!(f.lower.path().join("dir").is_dir());
}

#[tokio::test]
async fn streams_read_write_and_append_the_view_and_report_a_full_upper() {
    let f = Fixture::new();
    let open = |write: bool| {
        let o = OpenOptions {
            read: !write,
            write,
            ..OpenOptions::default()
        };
        match f.layers.open_at(&f.layers.root(), "etc/motd", &o) {
            Ok(Opened::File(file)) => file,
            _ => panic!("a file"),
        }
    };

    let mut reader = ViewReader::new(open(false), 1);
    assert_eq!(
        reader.read(2).expect("start"),
        Bytes::new(),
        "a read starts"
    );
    reader.ready().await;
    assert_eq!(reader.read(2).expect("data"), Bytes::from_static(b"el"));
    assert_eq!(
        reader.blocking_read(100).await.expect("rest"),
        Bytes::from_static(b"lo")
    );
    assert!(matches!(
        reader.blocking_read(100).await,
        Err(StreamError::Closed)
    ));

    let mut writer = ViewWriter::at(open(true), 5);
    assert_eq!(writer.check_write().expect("permit"), 64 * 1024);
    writer.write(Bytes::from_static(b" world")).expect("write");
    assert_eq!(writer.check_write().expect("busy"), 0);
    writer.ready().await;
    writer.flush().expect("flush");
    writer.write(Bytes::from_static(b"!")).expect("write");
    writer.ready().await;
    let mut appender = ViewWriter::append(open(true));
    appender
        .blocking_write_and_flush(Bytes::from_static(b"\n"))
        .await
        .expect("append");
    let mut all = ViewReader::new(open(false), 0);
    assert_eq!(
        all.blocking_read(100).await.expect("all"),
        Bytes::from_static(b"hello world!\n")
    );

    // Past the 1 KiB limit: the write fails, the stream says why once,
    // then is closed.
    writer.write(Bytes::from(vec![0; 2048])).expect("accepted");
    writer.ready().await;
    match writer.check_write() {
        Err(StreamError::LastOperationFailed(e)) => assert!(
            matches!(
                e.downcast_ref::<wrun_rootfs::Error>(),
                Some(wrun_rootfs::Error::NoSpace)
            ),
            "{e}"
        ),
        other => panic!("{other:?}"),
    }
    assert!(matches!(writer.check_write(), Err(StreamError::Closed)));
    lower_unchanged(f.lower.path());
}
