//! `wasi:filesystem` for components whose `/` is a writable copy-on-write
//! view (`ComponentState::rootfs`, see `docs/rootfs.md`, "Components").
//!
//! wasmtime-wasi's `descriptor` is a closed enum over host files, so this
//! module is a second implementation of wasmtime-wasi's own generated
//! `wasi:filesystem` host traits, linked over its definitions (as
//! `crate::sockets` shadows `wasi:sockets`). The guest-facing types are
//! wasmtime-wasi's: a `descriptor` handle is a `Resource<Descriptor>`
//! whatever it names. What decides is the table entry behind it:
//!
//! - a wasmtime-wasi `Descriptor` (a volume, `/tmp`, and every descriptor
//!   of a component without a view): the call goes to wasmtime-wasi's
//!   implementation unchanged;
//! - a [`ViewDescriptor`] (the view's root from `get-directories`, and
//!   what is opened from it): the call is served by `wrun_rootfs::Layers`,
//!   on a blocking thread (every view call does host I/O, and a copy-up can
//!   be long), as wasmtime-wasi does with `allow_blocking_current_thread`
//!   off.
//!
//! `directory-entry-stream` handles work the same way ([`ViewListing`]).
//! A component without a view pays one `Option` check per call.

mod streams;

use std::hash::{DefaultHasher, Hash, Hasher};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use wasmtime::component::{HasData, Linker, Resource};
use wasmtime_wasi::WasiView;
use wasmtime_wasi::filesystem::WasiFilesystemCtxView;
use wasmtime_wasi::p2::bindings::clocks::wall_clock::Datetime;
use wasmtime_wasi::p2::bindings::filesystem::preopens;
use wasmtime_wasi::p2::bindings::filesystem::types::{
    self, Advice, Descriptor, DescriptorFlags, DescriptorStat, DescriptorType, DirectoryEntry,
    DirectoryEntryStream, ErrorCode, Filesize, HostDescriptor, HostDirectoryEntryStream,
    MetadataHashValue, NewTimestamp, OpenFlags, PathFlags,
};
use wasmtime_wasi::p2::{DynInputStream, DynOutputStream, FsError, FsResult};
use wasmtime_wasi::runtime::spawn_blocking;
use wrun_rootfs::{DirEntry, Kind, Layers, OpenOptions, Opened, SetTime, Stat, ViewDir, ViewFile};

use self::streams::{ViewReader, ViewWriter};

/// Most bytes one `read` returns: wasmtime-wasi's figure, so a guest gets
/// the same chunks from the view as from a host directory.
const MAX_READ: u64 = 64 * 1024;

/// The guest path the view is shown at.
const ROOT: &str = "/";

/// What a `descriptor` handle of the view holds in the resource table.
enum ViewDescriptor {
    Dir(ViewDir),
    File(ViewFile),
}

/// What a `directory-entry-stream` handle of the view holds: the listing
/// taken when the directory was read (as wasmtime-wasi takes its own).
struct ViewListing(std::vec::IntoIter<DirEntry>);

/// The `wasi:filesystem` host of one call: wasmtime-wasi's view of the
/// store's filesystem state, and the writable rootfs if there is one.
pub(crate) struct RootfsFs<'a> {
    host: WasiFilesystemCtxView<'a>,
    view: Option<&'a Layers>,
}

impl<'a> RootfsFs<'a> {
    pub(crate) fn new(host: WasiFilesystemCtxView<'a>, view: Option<&'a Layers>) -> Self {
        RootfsFs { host, view }
    }
}

/// Store data with a WASI context and, maybe, a writable rootfs.
pub(crate) trait RootfsHost: WasiView + 'static {
    fn rootfs_fs(&mut self) -> RootfsFs<'_>;
}

struct WritableRootfs;

impl HasData for WritableRootfs {
    type Data<'a> = RootfsFs<'a>;
}

/// Links `wasi:filesystem/types` and `wasi:filesystem/preopens` to this
/// module's host, over wasmtime-wasi's. Call after
/// `wasmtime_wasi::p2::add_to_linker_async`.
pub(crate) fn add_to_linker<T: RootfsHost>(linker: &mut Linker<T>) -> wasmtime::Result<()> {
    linker.allow_shadowing(true);
    let result = types::add_to_linker::<T, WritableRootfs>(linker, T::rootfs_fs)
        .and_then(|()| preopens::add_to_linker::<T, WritableRootfs>(linker, T::rootfs_fs));
    linker.allow_shadowing(false);
    result
}

/// The guest's `error-code` for a view error.
fn error_code(e: &wrun_rootfs::Error) -> ErrorCode {
    use wrun_rootfs::Error as E;
    match e {
        E::NotFound => ErrorCode::NoEntry,
        E::Exists => ErrorCode::Exist,
        E::NotDir => ErrorCode::NotDirectory,
        E::IsDir => ErrorCode::IsDirectory,
        E::NotEmpty => ErrorCode::NotEmpty,
        E::Loop => ErrorCode::Loop,
        E::CrossDevice => ErrorCode::CrossDevice,
        E::Access => ErrorCode::Access,
        E::NotPermitted => ErrorCode::NotPermitted,
        E::NoSpace => ErrorCode::InsufficientSpace,
        E::Invalid => ErrorCode::Invalid,
        E::NameTooLong => ErrorCode::NameTooLong,
        E::ReadOnly => ErrorCode::ReadOnly,
        E::BadDescriptor(_) => ErrorCode::BadDescriptor,
        E::Io(io) => ErrorCode::from(io),
    }
}

fn fs_error(e: wrun_rootfs::Error) -> FsError {
    error_code(&e).into()
}

/// Runs a view call on a blocking thread.
async fn blocking<R: Send + 'static>(call: impl FnOnce() -> R + Send + 'static) -> R {
    spawn_blocking(call).await
}

fn descriptor_type(kind: Kind) -> DescriptorType {
    match kind {
        Kind::File => DescriptorType::RegularFile,
        Kind::Dir => DescriptorType::Directory,
        Kind::Symlink => DescriptorType::SymbolicLink,
        Kind::Fifo => DescriptorType::Fifo,
        Kind::Socket => DescriptorType::Socket,
        Kind::CharDevice => DescriptorType::CharacterDevice,
        Kind::BlockDevice => DescriptorType::BlockDevice,
        Kind::Unknown => DescriptorType::Unknown,
    }
}

/// A time as `wasi:clocks` has it; none before 1970 (wall-clock times are
/// unsigned), as wasmtime-wasi reports such times.
fn datetime(t: SystemTime) -> Option<Datetime> {
    let d = t.duration_since(UNIX_EPOCH).ok()?;
    Some(Datetime {
        seconds: d.as_secs(),
        nanoseconds: d.subsec_nanos(),
    })
}

fn descriptor_stat(s: &Stat) -> DescriptorStat {
    DescriptorStat {
        type_: descriptor_type(s.kind),
        link_count: s.nlink,
        size: s.size,
        data_access_timestamp: datetime(s.atime),
        data_modification_timestamp: datetime(s.mtime),
        status_change_timestamp: datetime(s.ctime),
    }
}

fn set_time(t: NewTimestamp) -> Result<SetTime, ErrorCode> {
    Ok(match t {
        NewTimestamp::NoChange => SetTime::Keep,
        NewTimestamp::Now => SetTime::Now,
        NewTimestamp::Timestamp(d) => {
            let seconds = d
                .seconds
                .checked_add(u64::from(d.nanoseconds / 1_000_000_000))
                .ok_or(ErrorCode::Overflow)?;
            let since = Duration::new(seconds, d.nanoseconds % 1_000_000_000);
            SetTime::At(UNIX_EPOCH.checked_add(since).ok_or(ErrorCode::Overflow)?)
        }
    })
}

/// The metadata hash of a node: its host device and inode, hashed as
/// wasmtime-wasi hashes a host file's (so stable per file; a copy-up is
/// another file, as its inode is).
fn metadata_hash(s: &Stat) -> MetadataHashValue {
    let mut hasher = DefaultHasher::new();
    (s.dev, s.ino).hash(&mut hasher);
    let lower = hasher.finish();
    MetadataHashValue {
        lower,
        upper: lower ^ 4614256656552045848u64,
    }
}

fn directory_entry(e: DirEntry) -> FsResult<DirectoryEntry> {
    Ok(DirectoryEntry {
        type_: descriptor_type(e.kind),
        name: e
            .name
            .into_string()
            .map_err(|_| ErrorCode::IllegalByteSequence)?,
    })
}

fn open_options(
    path_flags: PathFlags,
    oflags: OpenFlags,
    flags: DescriptorFlags,
) -> FsResult<OpenOptions> {
    // Not supported by wasmtime-wasi's host files either.
    if flags.intersects(
        DescriptorFlags::FILE_INTEGRITY_SYNC
            | DescriptorFlags::DATA_INTEGRITY_SYNC
            | DescriptorFlags::REQUESTED_WRITE_SYNC,
    ) {
        return Err(ErrorCode::Unsupported.into());
    }
    if oflags.contains(OpenFlags::DIRECTORY)
        && oflags.intersects(OpenFlags::CREATE | OpenFlags::EXCLUSIVE | OpenFlags::TRUNCATE)
    {
        return Err(ErrorCode::Invalid.into());
    }
    let write = flags.contains(DescriptorFlags::WRITE) || oflags.contains(OpenFlags::TRUNCATE);
    Ok(OpenOptions {
        // Opened for reading unless only for writing (wasmtime-wasi's rule).
        read: flags.contains(DescriptorFlags::READ) || !write,
        write,
        create: oflags.contains(OpenFlags::CREATE),
        exclusive: oflags.contains(OpenFlags::EXCLUSIVE),
        truncate: oflags.contains(OpenFlags::TRUNCATE),
        directory: oflags.contains(OpenFlags::DIRECTORY),
        follow: path_flags.contains(PathFlags::SYMLINK_FOLLOW),
        mode: None,
    })
}

/// Which side serves a call on two directories (`rename-at`, `link-at`).
enum Pair {
    Host,
    View(Layers, ViewDir, ViewDir),
}

impl RootfsFs<'_> {
    /// Whether the table entry `rep` is one of this module's `T`s (never
    /// without a view: then every entry is wasmtime-wasi's).
    fn holds<T: std::any::Any>(&self, rep: u32) -> bool {
        self.view.is_some() && self.host.table.get(&Resource::<T>::new_borrow(rep)).is_ok()
    }

    /// The view and a copy of the view node behind `fd`, or `None` when
    /// `fd` is one of wasmtime-wasi's (or names nothing: wasmtime-wasi then
    /// traps as it does today).
    fn view_node(&self, fd: &Resource<Descriptor>) -> Option<(Layers, ViewDescriptor)> {
        let layers = self.view?;
        let node = self
            .host
            .table
            .get(&Resource::<ViewDescriptor>::new_borrow(fd.rep()))
            .ok()?;
        let node = match node {
            ViewDescriptor::Dir(d) => ViewDescriptor::Dir(d.clone()),
            ViewDescriptor::File(f) => ViewDescriptor::File(f.clone()),
        };
        Some((layers.clone(), node))
    }

    /// The view directory behind `fd` (`not-directory` for a view file).
    fn view_dir(&self, fd: &Resource<Descriptor>) -> Option<FsResult<(Layers, ViewDir)>> {
        Some(match self.view_node(fd)? {
            (layers, ViewDescriptor::Dir(dir)) => Ok((layers, dir)),
            (_, ViewDescriptor::File(_)) => Err(ErrorCode::NotDirectory.into()),
        })
    }

    /// The view file behind `fd` (`bad-descriptor` for a view directory,
    /// as wasmtime-wasi answers file-only calls on a directory).
    fn view_file(&self, fd: &Resource<Descriptor>) -> Option<FsResult<ViewFile>> {
        Some(match self.view_node(fd)? {
            (_, ViewDescriptor::File(file)) => Ok(file),
            (_, ViewDescriptor::Dir(_)) => Err(ErrorCode::BadDescriptor.into()),
        })
    }

    /// Both directories of the view, both wasmtime-wasi's, or a mix: a
    /// move or link between the view and a volume is `cross-device`, as
    /// between two mounts.
    fn pair(&self, a: &Resource<Descriptor>, b: &Resource<Descriptor>) -> FsResult<Pair> {
        match (self.view_node(a), self.view_node(b)) {
            (None, None) => Ok(Pair::Host),
            (Some((layers, ViewDescriptor::Dir(a))), Some((_, ViewDescriptor::Dir(b)))) => {
                Ok(Pair::View(layers, a, b))
            }
            (Some((_, ViewDescriptor::File(_))), _) | (_, Some((_, ViewDescriptor::File(_)))) => {
                Err(ErrorCode::NotDirectory.into())
            }
            (Some(_), None) => {
                self.host.table.get(b)?;
                Err(ErrorCode::CrossDevice.into())
            }
            (None, Some(_)) => {
                self.host.table.get(a)?;
                Err(ErrorCode::CrossDevice.into())
            }
        }
    }

    /// Whether `rep` is a wasmtime-wasi directory without
    /// `mutate-directory`: a `:ro` volume or bind (or the rootfs served
    /// without a view), or a directory opened under one.
    async fn read_only_host_dir(&mut self, rep: u32) -> bool {
        let is_dir = matches!(
            HostDescriptor::get_type(&mut self.host, Resource::new_borrow(rep)).await,
            Ok(DescriptorType::Directory)
        );
        is_dir
            && HostDescriptor::get_flags(&mut self.host, Resource::new_borrow(rep))
                .await
                .is_ok_and(|f| !f.contains(DescriptorFlags::MUTATE_DIRECTORY))
    }

    /// wasmtime-wasi refuses a change under a read-only directory with
    /// `not-permitted` (EPERM); on Linux's read-only mount, what dockerd
    /// gives a `:ro` volume, it is `read-only` (EROFS). So: `read-only`
    /// when every one of `dirs` is read-only, `cross-device` for a rename
    /// or link between a read-only and a writable one (two mounts: Linux
    /// checks that first); any other result unchanged.
    async fn read_only_as_linux<T>(&mut self, dirs: &[u32], result: FsResult<T>) -> FsResult<T> {
        match result {
            Err(e) if matches!(e.downcast_ref(), Some(ErrorCode::NotPermitted)) => {
                let mut read_only = 0;
                for rep in dirs {
                    if self.read_only_host_dir(*rep).await {
                        read_only += 1;
                    }
                }
                Err(match read_only {
                    0 => e,
                    n if n == dirs.len() => ErrorCode::ReadOnly.into(),
                    _ => ErrorCode::CrossDevice.into(),
                })
            }
            other => other,
        }
    }

    fn push_view(&mut self, node: ViewDescriptor) -> FsResult<Resource<Descriptor>> {
        let fd = self.host.table.push(node)?;
        Ok(Resource::new_own(fd.rep()))
    }
}

impl preopens::Host for RootfsFs<'_> {
    /// wasmtime-wasi's preopens, with the view's root at `/` in place of
    /// the read-only rootfs (first when there is none).
    fn get_directories(&mut self) -> wasmtime::Result<Vec<(Resource<Descriptor>, String)>> {
        let mut dirs = preopens::Host::get_directories(&mut self.host)?;
        let Some(layers) = self.view else {
            return Ok(dirs);
        };
        let root = self.host.table.push(ViewDescriptor::Dir(layers.root()))?;
        let root = (Resource::new_own(root.rep()), ROOT.to_owned());
        match dirs.iter().position(|(_, guest)| guest == ROOT) {
            Some(i) => {
                let (read_only, _) = std::mem::replace(&mut dirs[i], root);
                self.host.table.delete(read_only)?;
            }
            None => dirs.insert(0, root),
        }
        Ok(dirs)
    }
}

impl types::Host for RootfsFs<'_> {
    fn convert_error_code(&mut self, err: FsError) -> wasmtime::Result<ErrorCode> {
        err.downcast()
    }

    fn filesystem_error_code(
        &mut self,
        err: Resource<wasmtime::Error>,
    ) -> wasmtime::Result<Option<ErrorCode>> {
        if let Some(e) = self
            .host
            .table
            .get(&err)?
            .downcast_ref::<wrun_rootfs::Error>()
        {
            return Ok(Some(error_code(e)));
        }
        types::Host::filesystem_error_code(&mut self.host, err)
    }
}

impl HostDescriptor for RootfsFs<'_> {
    fn read_via_stream(
        &mut self,
        fd: Resource<Descriptor>,
        offset: Filesize,
    ) -> FsResult<Resource<DynInputStream>> {
        let file = match self.view_node(&fd) {
            None => return HostDescriptor::read_via_stream(&mut self.host, fd, offset),
            Some((_, ViewDescriptor::Dir(_))) => return Err(ErrorCode::IsDirectory.into()),
            Some((_, ViewDescriptor::File(file))) => file,
        };
        let reader: DynInputStream = Box::new(ViewReader::new(file, offset));
        Ok(self.host.table.push(reader)?)
    }

    fn write_via_stream(
        &mut self,
        fd: Resource<Descriptor>,
        offset: Filesize,
    ) -> FsResult<Resource<DynOutputStream>> {
        let Some(file) = self.view_file(&fd) else {
            return HostDescriptor::write_via_stream(&mut self.host, fd, offset);
        };
        let file = file?;
        if !file.is_writable() {
            return Err(ErrorCode::BadDescriptor.into());
        }
        let writer: DynOutputStream = Box::new(ViewWriter::at(file, offset));
        Ok(self.host.table.push(writer)?)
    }

    fn append_via_stream(
        &mut self,
        fd: Resource<Descriptor>,
    ) -> FsResult<Resource<DynOutputStream>> {
        let Some(file) = self.view_file(&fd) else {
            return HostDescriptor::append_via_stream(&mut self.host, fd);
        };
        let file = file?;
        if !file.is_writable() {
            return Err(ErrorCode::BadDescriptor.into());
        }
        let writer: DynOutputStream = Box::new(ViewWriter::append(file));
        Ok(self.host.table.push(writer)?)
    }

    /// Advice is a hint: a view file takes none.
    async fn advise(
        &mut self,
        fd: Resource<Descriptor>,
        offset: Filesize,
        len: Filesize,
        advice: Advice,
    ) -> FsResult<()> {
        match self.view_file(&fd) {
            None => HostDescriptor::advise(&mut self.host, fd, offset, len, advice).await,
            Some(file) => file.map(drop),
        }
    }

    async fn sync_data(&mut self, fd: Resource<Descriptor>) -> FsResult<()> {
        match self.view_node(&fd) {
            None => HostDescriptor::sync_data(&mut self.host, fd).await,
            Some((_, ViewDescriptor::File(file))) => {
                blocking(move || file.sync_data()).await.map_err(fs_error)
            }
            // The view keeps no directory handle to sync; its deletions are
            // fsynced in its journal when they are made.
            Some((layers, ViewDescriptor::Dir(dir))) => blocking(move || layers.stat(&dir))
                .await
                .map(drop)
                .map_err(fs_error),
        }
    }

    async fn get_flags(&mut self, fd: Resource<Descriptor>) -> FsResult<DescriptorFlags> {
        Ok(match self.view_node(&fd) {
            None => return HostDescriptor::get_flags(&mut self.host, fd).await,
            // As wasmtime-wasi's read-only preopen: no `mutate-directory`.
            Some((layers, ViewDescriptor::Dir(_))) if layers.is_read_only() => {
                DescriptorFlags::READ
            }
            Some((_, ViewDescriptor::Dir(_))) => {
                DescriptorFlags::READ | DescriptorFlags::MUTATE_DIRECTORY
            }
            Some((_, ViewDescriptor::File(file))) => {
                let mut flags = DescriptorFlags::empty();
                if file.is_readable() {
                    flags |= DescriptorFlags::READ;
                }
                if file.is_writable() {
                    flags |= DescriptorFlags::WRITE;
                }
                flags
            }
        })
    }

    async fn get_type(&mut self, fd: Resource<Descriptor>) -> FsResult<DescriptorType> {
        Ok(match self.view_node(&fd) {
            None => return HostDescriptor::get_type(&mut self.host, fd).await,
            Some((_, ViewDescriptor::Dir(_))) => DescriptorType::Directory,
            // The view opens regular files only.
            Some((_, ViewDescriptor::File(_))) => DescriptorType::RegularFile,
        })
    }

    async fn set_size(&mut self, fd: Resource<Descriptor>, size: Filesize) -> FsResult<()> {
        let Some(file) = self.view_file(&fd) else {
            return HostDescriptor::set_size(&mut self.host, fd, size).await;
        };
        let file = file?;
        blocking(move || file.set_size(size))
            .await
            .map_err(fs_error)
    }

    async fn set_times(
        &mut self,
        fd: Resource<Descriptor>,
        atim: NewTimestamp,
        mtim: NewTimestamp,
    ) -> FsResult<()> {
        let Some((layers, node)) = self.view_node(&fd) else {
            let rep = fd.rep();
            let result = HostDescriptor::set_times(&mut self.host, fd, atim, mtim).await;
            return self.read_only_as_linux(&[rep], result).await;
        };
        let (atime, mtime) = (set_time(atim)?, set_time(mtim)?);
        blocking(move || match node {
            ViewDescriptor::File(file) => file.set_times(atime, mtime),
            ViewDescriptor::Dir(dir) => layers.set_times_at(&dir, ".", false, atime, mtime),
        })
        .await
        .map_err(fs_error)
    }

    async fn read(
        &mut self,
        fd: Resource<Descriptor>,
        len: Filesize,
        offset: Filesize,
    ) -> FsResult<(Vec<u8>, bool)> {
        let Some(file) = self.view_file(&fd) else {
            return HostDescriptor::read(&mut self.host, fd, len, offset).await;
        };
        let file = file?;
        blocking(move || {
            let mut buf = vec![0; len.min(MAX_READ) as usize];
            let n = file.read_at(&mut buf, offset)?;
            buf.truncate(n);
            Ok((buf, n == 0))
        })
        .await
        .map_err(fs_error)
    }

    async fn write(
        &mut self,
        fd: Resource<Descriptor>,
        buf: Vec<u8>,
        offset: Filesize,
    ) -> FsResult<Filesize> {
        let Some(file) = self.view_file(&fd) else {
            return HostDescriptor::write(&mut self.host, fd, buf, offset).await;
        };
        let file = file?;
        let n = blocking(move || file.write_at(&buf, offset))
            .await
            .map_err(fs_error)?;
        Ok(n as Filesize)
    }

    async fn read_directory(
        &mut self,
        fd: Resource<Descriptor>,
    ) -> FsResult<Resource<DirectoryEntryStream>> {
        let Some(dir) = self.view_dir(&fd) else {
            return HostDescriptor::read_directory(&mut self.host, fd).await;
        };
        let (layers, dir) = dir?;
        let entries = blocking(move || layers.read_dir(&dir, false))
            .await
            .map_err(fs_error)?;
        let listing = self.host.table.push(ViewListing(entries.into_iter()))?;
        Ok(Resource::new_own(listing.rep()))
    }

    async fn sync(&mut self, fd: Resource<Descriptor>) -> FsResult<()> {
        match self.view_node(&fd) {
            None => HostDescriptor::sync(&mut self.host, fd).await,
            Some((_, ViewDescriptor::File(file))) => {
                blocking(move || file.sync()).await.map_err(fs_error)
            }
            // As `sync-data` of a directory.
            Some((layers, ViewDescriptor::Dir(dir))) => blocking(move || layers.stat(&dir))
                .await
                .map(drop)
                .map_err(fs_error),
        }
    }

    async fn create_directory_at(
        &mut self,
        fd: Resource<Descriptor>,
        path: String,
    ) -> FsResult<()> {
        let Some(dir) = self.view_dir(&fd) else {
            let rep = fd.rep();
            let result = HostDescriptor::create_directory_at(&mut self.host, fd, path).await;
            return self.read_only_as_linux(&[rep], result).await;
        };
        let (layers, dir) = dir?;
        blocking(move || layers.create_dir_at(&dir, &path))
            .await
            .map_err(fs_error)
    }

    async fn stat(&mut self, fd: Resource<Descriptor>) -> FsResult<DescriptorStat> {
        let Some((layers, node)) = self.view_node(&fd) else {
            return HostDescriptor::stat(&mut self.host, fd).await;
        };
        let stat = blocking(move || match node {
            ViewDescriptor::File(file) => file.stat(),
            ViewDescriptor::Dir(dir) => layers.stat(&dir),
        })
        .await
        .map_err(fs_error)?;
        Ok(descriptor_stat(&stat))
    }

    async fn stat_at(
        &mut self,
        fd: Resource<Descriptor>,
        path_flags: PathFlags,
        path: String,
    ) -> FsResult<DescriptorStat> {
        let Some(dir) = self.view_dir(&fd) else {
            return HostDescriptor::stat_at(&mut self.host, fd, path_flags, path).await;
        };
        let (layers, dir) = dir?;
        let follow = path_flags.contains(PathFlags::SYMLINK_FOLLOW);
        let stat = blocking(move || layers.stat_at(&dir, &path, follow))
            .await
            .map_err(fs_error)?;
        Ok(descriptor_stat(&stat))
    }

    async fn set_times_at(
        &mut self,
        fd: Resource<Descriptor>,
        path_flags: PathFlags,
        path: String,
        atim: NewTimestamp,
        mtim: NewTimestamp,
    ) -> FsResult<()> {
        let Some(dir) = self.view_dir(&fd) else {
            let rep = fd.rep();
            let result =
                HostDescriptor::set_times_at(&mut self.host, fd, path_flags, path, atim, mtim)
                    .await;
            return self.read_only_as_linux(&[rep], result).await;
        };
        let (layers, dir) = dir?;
        let (atime, mtime) = (set_time(atim)?, set_time(mtim)?);
        let follow = path_flags.contains(PathFlags::SYMLINK_FOLLOW);
        blocking(move || layers.set_times_at(&dir, &path, follow, atime, mtime))
            .await
            .map_err(fs_error)
    }

    async fn link_at(
        &mut self,
        fd: Resource<Descriptor>,
        old_path_flags: PathFlags,
        old_path: String,
        new_descriptor: Resource<Descriptor>,
        new_path: String,
    ) -> FsResult<()> {
        let (layers, old_dir, new_dir) = match self.pair(&fd, &new_descriptor)? {
            Pair::Host => {
                let reps = [fd.rep(), new_descriptor.rep()];
                let result = HostDescriptor::link_at(
                    &mut self.host,
                    fd,
                    old_path_flags,
                    old_path,
                    new_descriptor,
                    new_path,
                )
                .await;
                return self.read_only_as_linux(&reps, result).await;
            }
            Pair::View(layers, a, b) => (layers, a, b),
        };
        let follow = old_path_flags.contains(PathFlags::SYMLINK_FOLLOW);
        blocking(move || layers.link_at(&old_dir, &old_path, follow, &new_dir, &new_path))
            .await
            .map_err(fs_error)
    }

    async fn open_at(
        &mut self,
        fd: Resource<Descriptor>,
        path_flags: PathFlags,
        path: String,
        oflags: OpenFlags,
        flags: DescriptorFlags,
    ) -> FsResult<Resource<Descriptor>> {
        let Some(dir) = self.view_dir(&fd) else {
            let rep = fd.rep();
            let result =
                HostDescriptor::open_at(&mut self.host, fd, path_flags, path, oflags, flags).await;
            return self.read_only_as_linux(&[rep], result).await;
        };
        let (layers, dir) = dir?;
        let options = open_options(path_flags, oflags, flags)?;
        let opened = blocking(move || layers.open_at(&dir, &path, &options))
            .await
            .map_err(fs_error)?;
        self.push_view(match opened {
            Opened::Dir(dir) => ViewDescriptor::Dir(dir),
            Opened::File(file) => ViewDescriptor::File(file),
        })
    }

    fn drop(&mut self, fd: Resource<Descriptor>) -> wasmtime::Result<()> {
        if self.holds::<ViewDescriptor>(fd.rep()) {
            self.host
                .table
                .delete(Resource::<ViewDescriptor>::new_own(fd.rep()))?;
            return Ok(());
        }
        HostDescriptor::drop(&mut self.host, fd)
    }

    async fn readlink_at(&mut self, fd: Resource<Descriptor>, path: String) -> FsResult<String> {
        let Some(dir) = self.view_dir(&fd) else {
            return HostDescriptor::readlink_at(&mut self.host, fd, path).await;
        };
        let (layers, dir) = dir?;
        let target = blocking(move || layers.readlink_at(&dir, &path))
            .await
            .map_err(fs_error)?;
        Ok(target
            .into_string()
            .map_err(|_| ErrorCode::IllegalByteSequence)?)
    }

    async fn remove_directory_at(
        &mut self,
        fd: Resource<Descriptor>,
        path: String,
    ) -> FsResult<()> {
        let Some(dir) = self.view_dir(&fd) else {
            let rep = fd.rep();
            let result = HostDescriptor::remove_directory_at(&mut self.host, fd, path).await;
            return self.read_only_as_linux(&[rep], result).await;
        };
        let (layers, dir) = dir?;
        blocking(move || layers.remove_dir_at(&dir, &path))
            .await
            .map_err(fs_error)
    }

    async fn rename_at(
        &mut self,
        fd: Resource<Descriptor>,
        old_path: String,
        new_fd: Resource<Descriptor>,
        new_path: String,
    ) -> FsResult<()> {
        let (layers, old_dir, new_dir) = match self.pair(&fd, &new_fd)? {
            Pair::Host => {
                let reps = [fd.rep(), new_fd.rep()];
                let result =
                    HostDescriptor::rename_at(&mut self.host, fd, old_path, new_fd, new_path).await;
                return self.read_only_as_linux(&reps, result).await;
            }
            Pair::View(layers, a, b) => (layers, a, b),
        };
        blocking(move || layers.rename_at(&old_dir, &old_path, &new_dir, &new_path))
            .await
            .map_err(fs_error)
    }

    async fn symlink_at(
        &mut self,
        fd: Resource<Descriptor>,
        src_path: String,
        dest_path: String,
    ) -> FsResult<()> {
        let Some(dir) = self.view_dir(&fd) else {
            let rep = fd.rep();
            let result = HostDescriptor::symlink_at(&mut self.host, fd, src_path, dest_path).await;
            return self.read_only_as_linux(&[rep], result).await;
        };
        let (layers, dir) = dir?;
        blocking(move || layers.symlink_at(&src_path, &dir, &dest_path))
            .await
            .map_err(fs_error)
    }

    async fn unlink_file_at(&mut self, fd: Resource<Descriptor>, path: String) -> FsResult<()> {
        let Some(dir) = self.view_dir(&fd) else {
            let rep = fd.rep();
            let result = HostDescriptor::unlink_file_at(&mut self.host, fd, path).await;
            return self.read_only_as_linux(&[rep], result).await;
        };
        let (layers, dir) = dir?;
        blocking(move || layers.unlink_file_at(&dir, &path))
            .await
            .map_err(fs_error)
    }

    /// Two view directories are the same object when they name the same
    /// path (a `ViewDir` names a path); two view files when they are the
    /// same host file. A view node is never a volume's.
    async fn is_same_object(
        &mut self,
        a: Resource<Descriptor>,
        b: Resource<Descriptor>,
    ) -> wasmtime::Result<bool> {
        match (self.view_node(&a), self.view_node(&b)) {
            (None, None) => HostDescriptor::is_same_object(&mut self.host, a, b).await,
            (Some((_, ViewDescriptor::Dir(a))), Some((_, ViewDescriptor::Dir(b)))) => {
                Ok(a.path() == b.path())
            }
            (Some((_, ViewDescriptor::File(a))), Some((_, ViewDescriptor::File(b)))) => {
                let same = blocking(move || match (a.stat(), b.stat()) {
                    (Ok(a), Ok(b)) => (a.dev, a.ino) == (b.dev, b.ino),
                    _ => false,
                })
                .await;
                Ok(same)
            }
            (Some(_), None) => self.host.table.get(&b).map(|_| false).map_err(Into::into),
            (None, Some(_)) => self.host.table.get(&a).map(|_| false).map_err(Into::into),
            (Some(_), Some(_)) => Ok(false),
        }
    }

    async fn metadata_hash(&mut self, fd: Resource<Descriptor>) -> FsResult<MetadataHashValue> {
        let Some((layers, node)) = self.view_node(&fd) else {
            return HostDescriptor::metadata_hash(&mut self.host, fd).await;
        };
        let stat = blocking(move || match node {
            ViewDescriptor::File(file) => file.stat(),
            ViewDescriptor::Dir(dir) => layers.stat(&dir),
        })
        .await
        .map_err(fs_error)?;
        Ok(metadata_hash(&stat))
    }

    async fn metadata_hash_at(
        &mut self,
        fd: Resource<Descriptor>,
        path_flags: PathFlags,
        path: String,
    ) -> FsResult<MetadataHashValue> {
        let Some(dir) = self.view_dir(&fd) else {
            return HostDescriptor::metadata_hash_at(&mut self.host, fd, path_flags, path).await;
        };
        let (layers, dir) = dir?;
        let follow = path_flags.contains(PathFlags::SYMLINK_FOLLOW);
        let stat = blocking(move || layers.stat_at(&dir, &path, follow))
            .await
            .map_err(fs_error)?;
        Ok(metadata_hash(&stat))
    }
}

impl HostDirectoryEntryStream for RootfsFs<'_> {
    async fn read_directory_entry(
        &mut self,
        stream: Resource<DirectoryEntryStream>,
    ) -> FsResult<Option<DirectoryEntry>> {
        if self.view.is_some()
            && let Ok(ViewListing(entries)) = self
                .host
                .table
                .get_mut(&Resource::<ViewListing>::new_borrow(stream.rep()))
        {
            return entries.next().map(directory_entry).transpose();
        }
        HostDirectoryEntryStream::read_directory_entry(&mut self.host, stream).await
    }

    fn drop(&mut self, stream: Resource<DirectoryEntryStream>) -> wasmtime::Result<()> {
        if self.holds::<ViewListing>(stream.rep()) {
            self.host
                .table
                .delete(Resource::<ViewListing>::new_own(stream.rep()))?;
            return Ok(());
        }
        HostDirectoryEntryStream::drop(&mut self.host, stream)
    }
}

#[cfg(test)]
mod call_tests;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_view_error_has_its_wasi_code() {
        use wrun_rootfs::Error as E;
        let cases = [
            (E::NotFound, ErrorCode::NoEntry),
            (E::Exists, ErrorCode::Exist),
            (E::NotDir, ErrorCode::NotDirectory),
            (E::IsDir, ErrorCode::IsDirectory),
            (E::NotEmpty, ErrorCode::NotEmpty),
            (E::Loop, ErrorCode::Loop),
            (E::CrossDevice, ErrorCode::CrossDevice),
            (E::Access, ErrorCode::Access),
            (E::NotPermitted, ErrorCode::NotPermitted),
            (E::NoSpace, ErrorCode::InsufficientSpace),
            (E::Invalid, ErrorCode::Invalid),
            (E::NameTooLong, ErrorCode::NameTooLong),
            (E::ReadOnly, ErrorCode::ReadOnly),
            (E::BadDescriptor("writing"), ErrorCode::BadDescriptor),
            (
                E::Io(std::io::Error::from_raw_os_error(
                    rustix::io::Errno::IO.raw_os_error(),
                )),
                ErrorCode::Io,
            ),
        ];
        for (e, code) in cases {
            assert_eq!(error_code(&e), code, "{e}");
        }
    }

    #[test]
    fn a_failed_stream_write_of_the_view_names_its_error_code() {
        let mut ctx = wasmtime_wasi::filesystem::WasiFilesystemCtx::default();
        let mut table = wasmtime::component::ResourceTable::new();
        let full = table
            .push(wasmtime::Error::new(wrun_rootfs::Error::NoSpace))
            .expect("push");
        let host_error = table
            .push(wasmtime::Error::new(std::io::Error::from_raw_os_error(
                rustix::io::Errno::NOENT.raw_os_error(),
            )))
            .expect("push");
        let mut fs = RootfsFs::new(
            WasiFilesystemCtxView {
                ctx: &mut ctx,
                table: &mut table,
            },
            None,
        );
        let code = types::Host::filesystem_error_code(&mut fs, full).expect("code");
        assert_eq!(code, Some(ErrorCode::InsufficientSpace));
        let code = types::Host::filesystem_error_code(&mut fs, host_error).expect("code");
        assert_eq!(code, Some(ErrorCode::NoEntry), "wasmtime-wasi's answer");
    }

    #[test]
    fn a_view_descriptor_costs_no_more_than_wasmtime_wasis() {
        assert!(
            std::mem::size_of::<ViewDescriptor>() <= std::mem::size_of::<Descriptor>(),
            "{} > {}",
            std::mem::size_of::<ViewDescriptor>(),
            std::mem::size_of::<Descriptor>()
        );
    }

    #[test]
    fn timestamps_before_1970_or_past_the_range_are_refused_or_left_out() {
        let at = |seconds, nanoseconds| {
            NewTimestamp::Timestamp(Datetime {
                seconds,
                nanoseconds,
            })
        };
        assert_eq!(
            set_time(at(1, 1_500_000_000)).ok(),
            Some(SetTime::At(UNIX_EPOCH + Duration::new(2, 500_000_000)))
        );
        assert_eq!(
            set_time(at(u64::MAX, 1_000_000_000)).err(),
            Some(ErrorCode::Overflow)
        );
        assert!(datetime(UNIX_EPOCH - Duration::from_secs(1)).is_none());
    }

    #[test]
    fn the_metadata_hash_is_wasmtime_wasis_for_the_same_identity() {
        let stat = |dev, ino| Stat {
            kind: Kind::File,
            mode: 0o644,
            size: 0,
            nlink: 1,
            dev,
            ino,
            atime: UNIX_EPOCH,
            mtime: UNIX_EPOCH,
            ctime: UNIX_EPOCH,
        };
        let a = metadata_hash(&stat(1, 2));
        let again = metadata_hash(&stat(1, 2));
        assert_eq!((a.lower, a.upper), (again.lower, again.upper));
        assert_ne!(a.lower, metadata_hash(&stat(1, 3)).lower);
        assert_ne!(a.lower, a.upper);
    }

    #[test]
    fn sync_flags_and_directory_creation_are_refused_when_opening() {
        let sync = open_options(
            PathFlags::empty(),
            OpenFlags::empty(),
            DescriptorFlags::READ | DescriptorFlags::DATA_INTEGRITY_SYNC,
        );
        assert_eq!(
            sync.err().map(|e| e.downcast().expect("code")),
            Some(ErrorCode::Unsupported)
        );
        let mkdir = open_options(
            PathFlags::empty(),
            OpenFlags::DIRECTORY | OpenFlags::CREATE,
            DescriptorFlags::READ,
        );
        assert_eq!(
            mkdir.err().map(|e| e.downcast().expect("code")),
            Some(ErrorCode::Invalid)
        );
        let write_only = open_options(
            PathFlags::SYMLINK_FOLLOW,
            OpenFlags::CREATE | OpenFlags::TRUNCATE,
            DescriptorFlags::WRITE,
        )
        .expect("options");
        assert!(write_only.write && !write_only.read && write_only.create && write_only.follow);
    }
}
