//! The preview 1 calls of a core instance's store (`CoreState`): each one
//! served by the view's descriptors (the parent module) or handed to
//! wasmtime-wasi's `WasiP1Ctx`. Apart from the descriptors so that the
//! store's state can hold them without the two modules naming each other.

use super::*;
use crate::store::CoreState;

impl CoreState {
    /// The view, when `fd` is one of its descriptors.
    fn view_fd(&mut self, fd: types::Fd) -> Option<&mut ViewFds> {
        self.rootfs.as_mut().filter(|v| v.owns(fd))
    }

    /// Whether wasmtime-wasi has a descriptor `fd`.
    async fn host_has(&mut self, memory: &mut GuestMemory<'_>, fd: types::Fd) -> bool {
        self.wasi.fd_fdstat_get(memory, fd).await.is_ok()
    }

    /// Where a call on two descriptors goes: `Some(view)` when both are
    /// the view's, `None` when neither is; a pair across the view and a
    /// host directory is `EXDEV` (as across two mounts).
    async fn pair(
        &mut self,
        memory: &mut GuestMemory<'_>,
        a: types::Fd,
        b: types::Fd,
    ) -> Result<bool> {
        let Some(view) = &self.rootfs else {
            return Ok(false);
        };
        match (view.owns(a), view.owns(b)) {
            (true, true) => Ok(true),
            (false, false) => Ok(false),
            (true, false) if !self.host_has(memory, b).await => Err(Errno::Badf.into()),
            (false, true) if !self.host_has(memory, a).await => Err(Errno::Badf.into()),
            _ => Err(Errno::Xdev.into()),
        }
    }
}

/// The preview 1 functions of a core instance: the filesystem calls on the
/// view's descriptors are served by [`ViewFds`], everything else by
/// wasmtime-wasi's `WasiP1Ctx` as before.
impl WasiSnapshotPreview1 for CoreState {
    fn set_hostcall_fuel(&mut self, fuel: usize) {
        if let Some(view) = &mut self.rootfs {
            view.fuel = fuel;
        }
        self.wasi.set_hostcall_fuel(fuel);
    }

    fn args_get(
        &mut self,
        memory: &mut GuestMemory<'_>,
        argv: GuestPtr<GuestPtr<u8>>,
        argv_buf: GuestPtr<u8>,
    ) -> Result<()> {
        self.wasi.args_get(memory, argv, argv_buf)
    }

    fn args_sizes_get(
        &mut self,
        memory: &mut GuestMemory<'_>,
    ) -> Result<(types::Size, types::Size)> {
        self.wasi.args_sizes_get(memory)
    }

    fn environ_get(
        &mut self,
        memory: &mut GuestMemory<'_>,
        environ: GuestPtr<GuestPtr<u8>>,
        environ_buf: GuestPtr<u8>,
    ) -> Result<()> {
        self.wasi.environ_get(memory, environ, environ_buf)
    }

    fn environ_sizes_get(
        &mut self,
        memory: &mut GuestMemory<'_>,
    ) -> Result<(types::Size, types::Size)> {
        self.wasi.environ_sizes_get(memory)
    }

    fn clock_res_get(
        &mut self,
        memory: &mut GuestMemory<'_>,
        id: types::Clockid,
    ) -> Result<types::Timestamp> {
        self.wasi.clock_res_get(memory, id)
    }

    fn clock_time_get(
        &mut self,
        memory: &mut GuestMemory<'_>,
        id: types::Clockid,
        precision: types::Timestamp,
    ) -> Result<types::Timestamp> {
        self.wasi.clock_time_get(memory, id, precision)
    }

    async fn fd_advise(
        &mut self,
        memory: &mut GuestMemory<'_>,
        fd: types::Fd,
        offset: types::Filesize,
        len: types::Filesize,
        advice: types::Advice,
    ) -> Result<()> {
        match self.view_fd(fd) {
            // Advice is a hint; the view's reads need none.
            Some(view) if !matches!(view.held(fd)?, Held::Root) => view.file(fd).map(|_| ()),
            _ => self.wasi.fd_advise(memory, fd, offset, len, advice).await,
        }
    }

    fn fd_allocate(
        &mut self,
        memory: &mut GuestMemory<'_>,
        fd: types::Fd,
        offset: types::Filesize,
        len: types::Filesize,
    ) -> Result<()> {
        match self.view_fd(fd) {
            // wasmtime-wasi's answer for any file.
            Some(view) if !matches!(view.held(fd)?, Held::Root) => {
                view.file(fd)?;
                Err(Errno::Notsup.into())
            }
            _ => self.wasi.fd_allocate(memory, fd, offset, len),
        }
    }

    async fn fd_close(&mut self, memory: &mut GuestMemory<'_>, fd: types::Fd) -> Result<()> {
        let Some(view) = self.view_fd(fd) else {
            self.wasi.fd_close(memory, fd).await?;
            self.read_only.closed(fd);
            return Ok(());
        };
        if view.root == Some(u32::from(fd)) {
            view.root = None;
            view.root_listing = None;
            return self.wasi.fd_close(memory, fd).await;
        }
        view.open.remove(&u32::from(fd));
        Ok(())
    }

    async fn fd_datasync(&mut self, memory: &mut GuestMemory<'_>, fd: types::Fd) -> Result<()> {
        match self.view_fd(fd) {
            Some(view) if !matches!(view.held(fd)?, Held::Root) => {
                let file = view.file(fd)?.file.clone();
                blocking(move || file.sync_data()).await
            }
            _ => self.wasi.fd_datasync(memory, fd).await,
        }
    }

    async fn fd_fdstat_get(
        &mut self,
        memory: &mut GuestMemory<'_>,
        fd: types::Fd,
    ) -> Result<types::Fdstat> {
        match self.view_fd(fd) {
            Some(view) if !matches!(view.held(fd)?, Held::Root) => view.fdstat(fd),
            // The root keeps wasmtime-wasi's preopen rights.
            _ => self.wasi.fd_fdstat_get(memory, fd).await,
        }
    }

    fn fd_fdstat_set_flags(
        &mut self,
        memory: &mut GuestMemory<'_>,
        fd: types::Fd,
        flags: types::Fdflags,
    ) -> Result<()> {
        match self.view_fd(fd) {
            Some(view) if !matches!(view.held(fd)?, Held::Root) => {
                let f = view.file(fd)?;
                // As wasmtime-wasi: only APPEND and NONBLOCK change.
                let sync = types::Fdflags::SYNC | types::Fdflags::DSYNC | types::Fdflags::RSYNC;
                if flags.intersects(sync) {
                    return Err(Errno::Inval.into());
                }
                f.flags = (f.flags & sync)
                    | (flags & (types::Fdflags::APPEND | types::Fdflags::NONBLOCK));
                Ok(())
            }
            _ => self.wasi.fd_fdstat_set_flags(memory, fd, flags),
        }
    }

    fn fd_fdstat_set_rights(
        &mut self,
        memory: &mut GuestMemory<'_>,
        fd: types::Fd,
        base: types::Rights,
        inheriting: types::Rights,
    ) -> Result<()> {
        match self.view_fd(fd) {
            Some(view) if !matches!(view.held(fd)?, Held::Root) => Err(Errno::Notsup.into()),
            _ => self.wasi.fd_fdstat_set_rights(memory, fd, base, inheriting),
        }
    }

    async fn fd_filestat_get(
        &mut self,
        memory: &mut GuestMemory<'_>,
        fd: types::Fd,
    ) -> Result<types::Filestat> {
        match self.view_fd(fd) {
            Some(view) => view.filestat(fd).await,
            None => self.wasi.fd_filestat_get(memory, fd).await,
        }
    }

    async fn fd_filestat_set_size(
        &mut self,
        memory: &mut GuestMemory<'_>,
        fd: types::Fd,
        size: types::Filesize,
    ) -> Result<()> {
        match self.view_fd(fd) {
            Some(view) if !matches!(view.held(fd)?, Held::Root) => {
                let file = view.file(fd)?.file.clone();
                blocking(move || file.set_size(size)).await
            }
            _ => self.wasi.fd_filestat_set_size(memory, fd, size).await,
        }
    }

    async fn fd_filestat_set_times(
        &mut self,
        memory: &mut GuestMemory<'_>,
        fd: types::Fd,
        atim: types::Timestamp,
        mtim: types::Timestamp,
        fst_flags: types::Fstflags,
    ) -> Result<()> {
        match self.view_fd(fd) {
            Some(view) => {
                let (atime, mtime) = times(atim, mtim, fst_flags)?;
                view.set_times(fd, atime, mtime).await
            }
            None => {
                let result = self
                    .wasi
                    .fd_filestat_set_times(memory, fd, atim, mtim, fst_flags)
                    .await;
                self.read_only.as_linux(&[fd], result)
            }
        }
    }

    async fn fd_read(
        &mut self,
        memory: &mut GuestMemory<'_>,
        fd: types::Fd,
        iovs: types::IovecArray,
    ) -> Result<types::Size> {
        match self.view_fd(fd) {
            Some(view) if !matches!(view.held(fd)?, Held::Root) => {
                view.read(memory, fd, iovs, None).await
            }
            _ => self.wasi.fd_read(memory, fd, iovs).await,
        }
    }

    async fn fd_pread(
        &mut self,
        memory: &mut GuestMemory<'_>,
        fd: types::Fd,
        iovs: types::IovecArray,
        offset: types::Filesize,
    ) -> Result<types::Size> {
        match self.view_fd(fd) {
            Some(view) if !matches!(view.held(fd)?, Held::Root) => {
                view.read(memory, fd, iovs, Some(offset)).await
            }
            _ => self.wasi.fd_pread(memory, fd, iovs, offset).await,
        }
    }

    async fn fd_write(
        &mut self,
        memory: &mut GuestMemory<'_>,
        fd: types::Fd,
        ciovs: types::CiovecArray,
    ) -> Result<types::Size> {
        match self.view_fd(fd) {
            Some(view) if !matches!(view.held(fd)?, Held::Root) => {
                view.write(memory, fd, ciovs, None).await
            }
            _ => self.wasi.fd_write(memory, fd, ciovs).await,
        }
    }

    async fn fd_pwrite(
        &mut self,
        memory: &mut GuestMemory<'_>,
        fd: types::Fd,
        ciovs: types::CiovecArray,
        offset: types::Filesize,
    ) -> Result<types::Size> {
        match self.view_fd(fd) {
            Some(view) if !matches!(view.held(fd)?, Held::Root) => {
                view.write(memory, fd, ciovs, Some(offset)).await
            }
            _ => self.wasi.fd_pwrite(memory, fd, ciovs, offset).await,
        }
    }

    fn fd_prestat_get(
        &mut self,
        memory: &mut GuestMemory<'_>,
        fd: types::Fd,
    ) -> Result<types::Prestat> {
        self.wasi.fd_prestat_get(memory, fd)
    }

    fn fd_prestat_dir_name(
        &mut self,
        memory: &mut GuestMemory<'_>,
        fd: types::Fd,
        path: GuestPtr<u8>,
        path_max_len: types::Size,
    ) -> Result<()> {
        self.wasi
            .fd_prestat_dir_name(memory, fd, path, path_max_len)
    }

    async fn fd_renumber(
        &mut self,
        memory: &mut GuestMemory<'_>,
        from: types::Fd,
        to: types::Fd,
    ) -> Result<()> {
        let (Some(view), from_n, to_n) = (&mut self.rootfs, u32::from(from), u32::from(to)) else {
            self.wasi.fd_renumber(memory, from, to).await?;
            self.read_only.renumbered(from, to);
            return Ok(());
        };
        let is_root = |n| view.root == Some(n);
        let (from_mine, to_mine) = (
            view.open.contains_key(&from_n),
            view.open.contains_key(&to_n),
        );
        match (from_mine, to_mine) {
            (true, true) => {
                if from_n != to_n
                    && let Some(moved) = view.open.remove(&from_n)
                {
                    view.open.insert(to_n, moved);
                }
                Ok(())
            }
            (false, false) => {
                // Both wasmtime-wasi's: the root may move or be replaced.
                let (root_from, root_to) = (is_root(from_n), is_root(to_n));
                self.wasi.fd_renumber(memory, from, to).await?;
                self.read_only.renumbered(from, to);
                if let Some(view) = &mut self.rootfs
                    && from_n != to_n
                {
                    if root_from {
                        view.root = Some(to_n);
                    } else if root_to {
                        view.root = None;
                        view.root_listing = None;
                    }
                }
                Ok(())
            }
            (true, false) if !self.host_has(memory, to).await => Err(Errno::Badf.into()),
            (false, true) if !self.host_has(memory, from).await => Err(Errno::Badf.into()),
            // A descriptor of the view cannot take a number of wasmtime-wasi's
            // table, nor the other way round: the two tables are separate.
            _ => Err(Errno::Notsup.into()),
        }
    }

    async fn fd_seek(
        &mut self,
        memory: &mut GuestMemory<'_>,
        fd: types::Fd,
        offset: types::Filedelta,
        whence: types::Whence,
    ) -> Result<types::Filesize> {
        match self.view_fd(fd) {
            Some(view) if !matches!(view.held(fd)?, Held::Root) => {
                view.seek(fd, offset, whence).await
            }
            _ => self.wasi.fd_seek(memory, fd, offset, whence).await,
        }
    }

    async fn fd_sync(&mut self, memory: &mut GuestMemory<'_>, fd: types::Fd) -> Result<()> {
        match self.view_fd(fd) {
            Some(view) if !matches!(view.held(fd)?, Held::Root) => {
                let file = view.file(fd)?.file.clone();
                blocking(move || file.sync()).await
            }
            _ => self.wasi.fd_sync(memory, fd).await,
        }
    }

    fn fd_tell(&mut self, memory: &mut GuestMemory<'_>, fd: types::Fd) -> Result<types::Filesize> {
        match self.view_fd(fd) {
            Some(view) if !matches!(view.held(fd)?, Held::Root) => Ok(view.file(fd)?.pos),
            _ => self.wasi.fd_tell(memory, fd),
        }
    }

    async fn fd_readdir(
        &mut self,
        memory: &mut GuestMemory<'_>,
        fd: types::Fd,
        buf: GuestPtr<u8>,
        buf_len: types::Size,
        cookie: types::Dircookie,
    ) -> Result<types::Size> {
        match self.view_fd(fd) {
            Some(view) => view.readdir(memory, fd, buf, buf_len, cookie).await,
            None => self.wasi.fd_readdir(memory, fd, buf, buf_len, cookie).await,
        }
    }

    async fn path_create_directory(
        &mut self,
        memory: &mut GuestMemory<'_>,
        dirfd: types::Fd,
        path: GuestPtr<str>,
    ) -> Result<()> {
        let Some(view) = self.view_fd(dirfd) else {
            let result = self.wasi.path_create_directory(memory, dirfd, path).await;
            return self.read_only.as_linux(&[dirfd], result);
        };
        let (layers, dir) = (view.layers.clone(), view.dir(dirfd)?);
        let path = view.read_string(memory, path)?;
        blocking(move || layers.create_dir_at(&dir, &path)).await
    }

    async fn path_filestat_get(
        &mut self,
        memory: &mut GuestMemory<'_>,
        dirfd: types::Fd,
        flags: types::Lookupflags,
        path: GuestPtr<str>,
    ) -> Result<types::Filestat> {
        let Some(view) = self.view_fd(dirfd) else {
            return self
                .wasi
                .path_filestat_get(memory, dirfd, flags, path)
                .await;
        };
        let (layers, dir) = (view.layers.clone(), view.dir(dirfd)?);
        let path = view.read_string(memory, path)?;
        let follow = flags.contains(types::Lookupflags::SYMLINK_FOLLOW);
        let stat = blocking(move || layers.stat_at(&dir, &path, follow)).await?;
        Ok(filestat(&stat))
    }

    async fn path_filestat_set_times(
        &mut self,
        memory: &mut GuestMemory<'_>,
        dirfd: types::Fd,
        flags: types::Lookupflags,
        path: GuestPtr<str>,
        atim: types::Timestamp,
        mtim: types::Timestamp,
        fst_flags: types::Fstflags,
    ) -> Result<()> {
        let Some(view) = self.view_fd(dirfd) else {
            let result = self
                .wasi
                .path_filestat_set_times(memory, dirfd, flags, path, atim, mtim, fst_flags)
                .await;
            return self.read_only.as_linux(&[dirfd], result);
        };
        let (atime, mtime) = times(atim, mtim, fst_flags)?;
        let (layers, dir) = (view.layers.clone(), view.dir(dirfd)?);
        let path = view.read_string(memory, path)?;
        let follow = flags.contains(types::Lookupflags::SYMLINK_FOLLOW);
        blocking(move || layers.set_times_at(&dir, &path, follow, atime, mtime)).await
    }

    async fn path_link(
        &mut self,
        memory: &mut GuestMemory<'_>,
        src_fd: types::Fd,
        src_flags: types::Lookupflags,
        src_path: GuestPtr<str>,
        target_fd: types::Fd,
        target_path: GuestPtr<str>,
    ) -> Result<()> {
        if !self.pair(memory, src_fd, target_fd).await? {
            let result = self
                .wasi
                .path_link(memory, src_fd, src_flags, src_path, target_fd, target_path)
                .await;
            return self.read_only.as_linux(&[src_fd, target_fd], result);
        }
        let Some(view) = &mut self.rootfs else {
            return Err(Errno::Badf.into());
        };
        let (layers, src_dir, target_dir) =
            (view.layers.clone(), view.dir(src_fd)?, view.dir(target_fd)?);
        let src_path = view.read_string(memory, src_path)?;
        let target_path = view.read_string(memory, target_path)?;
        let follow = src_flags.contains(types::Lookupflags::SYMLINK_FOLLOW);
        blocking(move || layers.link_at(&src_dir, &src_path, follow, &target_dir, &target_path))
            .await
    }

    async fn path_open(
        &mut self,
        memory: &mut GuestMemory<'_>,
        dirfd: types::Fd,
        dirflags: types::Lookupflags,
        path: GuestPtr<str>,
        oflags: types::Oflags,
        fs_rights_base: types::Rights,
        fs_rights_inheriting: types::Rights,
        fdflags: types::Fdflags,
    ) -> Result<types::Fd> {
        match self.view_fd(dirfd) {
            Some(view) => {
                let options = OpenOptions {
                    read: fs_rights_base.contains(types::Rights::FD_READ),
                    write: fs_rights_base.contains(types::Rights::FD_WRITE),
                    create: oflags.contains(types::Oflags::CREAT),
                    exclusive: oflags.contains(types::Oflags::EXCL),
                    truncate: oflags.contains(types::Oflags::TRUNC),
                    directory: oflags.contains(types::Oflags::DIRECTORY),
                    follow: dirflags.contains(types::Lookupflags::SYMLINK_FOLLOW),
                    mode: None,
                };
                view.open(memory, dirfd, path, options, fdflags).await
            }
            None => {
                let result = self
                    .wasi
                    .path_open(
                        memory,
                        dirfd,
                        dirflags,
                        path,
                        oflags,
                        fs_rights_base,
                        fs_rights_inheriting,
                        fdflags,
                    )
                    .await;
                let opened = self.read_only.as_linux(&[dirfd], result)?;
                self.read_only.opened(dirfd, opened);
                Ok(opened)
            }
        }
    }

    async fn path_readlink(
        &mut self,
        memory: &mut GuestMemory<'_>,
        dirfd: types::Fd,
        path: GuestPtr<str>,
        buf: GuestPtr<u8>,
        buf_len: types::Size,
    ) -> Result<types::Size> {
        let Some(view) = self.view_fd(dirfd) else {
            return self
                .wasi
                .path_readlink(memory, dirfd, path, buf, buf_len)
                .await;
        };
        let (layers, dir) = (view.layers.clone(), view.dir(dirfd)?);
        let path = view.read_string(memory, path)?;
        let target: OsString = blocking(move || layers.readlink_at(&dir, &path)).await?;
        let target = target.as_bytes();
        let target = &target[..target.len().min(usize::try_from(buf_len)?)];
        write_bytes(memory, buf, target)?;
        Ok(u32::try_from(target.len())?)
    }

    async fn path_remove_directory(
        &mut self,
        memory: &mut GuestMemory<'_>,
        dirfd: types::Fd,
        path: GuestPtr<str>,
    ) -> Result<()> {
        let Some(view) = self.view_fd(dirfd) else {
            let result = self.wasi.path_remove_directory(memory, dirfd, path).await;
            return self.read_only.as_linux(&[dirfd], result);
        };
        let (layers, dir) = (view.layers.clone(), view.dir(dirfd)?);
        let path = view.read_string(memory, path)?;
        blocking(move || layers.remove_dir_at(&dir, &path)).await
    }

    async fn path_rename(
        &mut self,
        memory: &mut GuestMemory<'_>,
        src_fd: types::Fd,
        src_path: GuestPtr<str>,
        dest_fd: types::Fd,
        dest_path: GuestPtr<str>,
    ) -> Result<()> {
        if !self.pair(memory, src_fd, dest_fd).await? {
            let result = self
                .wasi
                .path_rename(memory, src_fd, src_path, dest_fd, dest_path)
                .await;
            return self.read_only.as_linux(&[src_fd, dest_fd], result);
        }
        let Some(view) = &mut self.rootfs else {
            return Err(Errno::Badf.into());
        };
        let (layers, src_dir, dest_dir) =
            (view.layers.clone(), view.dir(src_fd)?, view.dir(dest_fd)?);
        let src_path = view.read_string(memory, src_path)?;
        let dest_path = view.read_string(memory, dest_path)?;
        blocking(move || layers.rename_at(&src_dir, &src_path, &dest_dir, &dest_path)).await
    }

    async fn path_symlink(
        &mut self,
        memory: &mut GuestMemory<'_>,
        src_path: GuestPtr<str>,
        dirfd: types::Fd,
        dest_path: GuestPtr<str>,
    ) -> Result<()> {
        let Some(view) = self.view_fd(dirfd) else {
            let result = self
                .wasi
                .path_symlink(memory, src_path, dirfd, dest_path)
                .await;
            return self.read_only.as_linux(&[dirfd], result);
        };
        let (layers, dir) = (view.layers.clone(), view.dir(dirfd)?);
        let target = view.read_string(memory, src_path)?;
        let path = view.read_string(memory, dest_path)?;
        blocking(move || layers.symlink_at(&target, &dir, &path)).await
    }

    async fn path_unlink_file(
        &mut self,
        memory: &mut GuestMemory<'_>,
        dirfd: types::Fd,
        path: GuestPtr<str>,
    ) -> Result<()> {
        let Some(view) = self.view_fd(dirfd) else {
            let result = self.wasi.path_unlink_file(memory, dirfd, path).await;
            return self.read_only.as_linux(&[dirfd], result);
        };
        let (layers, dir) = (view.layers.clone(), view.dir(dirfd)?);
        let path = view.read_string(memory, path)?;
        blocking(move || layers.unlink_file_at(&dir, &path)).await
    }

    async fn poll_oneoff(
        &mut self,
        memory: &mut GuestMemory<'_>,
        subs: GuestPtr<types::Subscription>,
        events: GuestPtr<types::Event>,
        nsubscriptions: types::Size,
    ) -> Result<types::Size> {
        let Some(view) = &mut self.rootfs else {
            return self
                .wasi
                .poll_oneoff(memory, subs, events, nsubscriptions)
                .await;
        };
        if nsubscriptions == 0 || (view.root.is_none() && view.open.is_empty()) {
            return self
                .wasi
                .poll_oneoff(memory, subs, events, nsubscriptions)
                .await;
        }
        let all = subs.as_array(nsubscriptions);
        view.consume_fuel_for_array(all)?;
        let mut mine = Vec::new();
        for sub in all.iter() {
            let sub = memory.read(sub?)?;
            let fd = match &sub.u {
                types::SubscriptionU::FdRead(s) | types::SubscriptionU::FdWrite(s) => {
                    s.file_descriptor
                }
                types::SubscriptionU::Clock(_) => continue,
            };
            if view.owns(fd) {
                mine.push(sub);
            }
        }
        if mine.is_empty() {
            return self
                .wasi
                .poll_oneoff(memory, subs, events, nsubscriptions)
                .await;
        }
        // Files of the view are ready at once: poll answers with them
        // alone and waits for nothing else (a subset of the ready events
        // is a valid answer; the guest polls again for the rest).
        let ready = view.poll_events(&mine).await?;
        let count = u32::try_from(ready.len())?;
        let out = events.as_array(nsubscriptions);
        for (event, slot) in ready.into_iter().zip(out.iter()) {
            memory.write(slot?, event)?;
        }
        Ok(count)
    }

    fn proc_exit(
        &mut self,
        memory: &mut GuestMemory<'_>,
        status: types::Exitcode,
    ) -> wasmtime::Error {
        self.wasi.proc_exit(memory, status)
    }

    fn proc_raise(&mut self, memory: &mut GuestMemory<'_>, sig: types::Signal) -> Result<()> {
        self.wasi.proc_raise(memory, sig)
    }

    fn sched_yield(&mut self, memory: &mut GuestMemory<'_>) -> Result<()> {
        self.wasi.sched_yield(memory)
    }

    fn random_get(
        &mut self,
        memory: &mut GuestMemory<'_>,
        buf: GuestPtr<u8>,
        buf_len: types::Size,
    ) -> Result<()> {
        self.wasi.random_get(memory, buf, buf_len)
    }

    fn sock_accept(
        &mut self,
        memory: &mut GuestMemory<'_>,
        fd: types::Fd,
        flags: types::Fdflags,
    ) -> Result<types::Fd> {
        self.wasi.sock_accept(memory, fd, flags)
    }

    fn sock_recv(
        &mut self,
        memory: &mut GuestMemory<'_>,
        fd: types::Fd,
        ri_data: types::IovecArray,
        ri_flags: types::Riflags,
    ) -> Result<(types::Size, types::Roflags)> {
        self.wasi.sock_recv(memory, fd, ri_data, ri_flags)
    }

    fn sock_send(
        &mut self,
        memory: &mut GuestMemory<'_>,
        fd: types::Fd,
        si_data: types::CiovecArray,
        si_flags: types::Siflags,
    ) -> Result<types::Size> {
        self.wasi.sock_send(memory, fd, si_data, si_flags)
    }

    fn sock_shutdown(
        &mut self,
        memory: &mut GuestMemory<'_>,
        fd: types::Fd,
        how: types::Sdflags,
    ) -> Result<()> {
        self.wasi.sock_shutdown(memory, fd, how)
    }
}
