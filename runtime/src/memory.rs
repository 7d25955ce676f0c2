//! Linear memories as plain read-write anonymous mappings sized to what the
//! guest uses, moved with `mremap` when it grows (see `engine.rs` for why).

use std::ptr::NonNull;

use rustix::mm::{MapFlags, MremapFlags, ProtFlags, mmap_anonymous, mremap, munmap};
use wasmtime::{LinearMemory, MemoryCreator, MemoryType};

/// Makes every linear memory a [`MappedMemory`].
///
/// Why not wasmtime's own memories: each reserves its maximum size as an
/// inaccessible mapping and opens the used part read-write, so a live memory
/// is two kernel mappings (VMAs) that never merge with a neighbour's. At the
/// kernel's default `vm.max_map_count` (65,530) that and the fiber stack's
/// guard page capped a process near 10,000 live instances. Plain read-write
/// mappings next to each other merge into one VMA, so a memory costs
/// (almost) no mapping; bounds are checked by the compiled code instead of a
/// guard region (the engine reserves nothing and keeps no guard).
pub(crate) struct MappedMemoryCreator;

// SAFETY: every memory returned is a `MappedMemory`, whose safety contract is
// argued on its `LinearMemory` impl; the creator itself holds no state.
unsafe impl MemoryCreator for MappedMemoryCreator {
    fn new_memory(
        &self,
        _ty: MemoryType,
        minimum: usize,
        maximum: Option<usize>,
        reserved_size_in_bytes: Option<usize>,
        guard_size_in_bytes: usize,
    ) -> Result<Box<dyn LinearMemory>, String> {
        if reserved_size_in_bytes.is_some_and(|r| r > minimum) || guard_size_in_bytes > 0 {
            return Err(format!(
                "the engine asked for a reserved ({reserved_size_in_bytes:?} bytes) or guarded \
                 ({guard_size_in_bytes} bytes) memory, which this memory creator does not make"
            ));
        }
        MappedMemory::new(minimum, maximum)
            .map(|m| Box::new(m) as Box<dyn LinearMemory>)
            .map_err(|e| format!("cannot map a linear memory of {minimum} bytes: {e}"))
    }
}

/// One linear memory: `mapped` bytes of private anonymous read-write memory
/// at `base`, of which the first `size` are the guest's.
struct MappedMemory {
    base: NonNull<u8>,
    size: usize,
    mapped: usize,
    maximum: Option<usize>,
}

// SAFETY: the mapping is owned by this value alone (no alias is handed out
// but through `as_ptr`, whose use wasmtime synchronises with the store that
// owns the memory), so moving it to or sharing it with another thread is
// as safe as for a `Vec<u8>`.
unsafe impl Send for MappedMemory {}
// SAFETY: see `Send`; `&self` methods only read plain fields.
unsafe impl Sync for MappedMemory {}

fn page_size() -> usize {
    rustix::param::page_size()
}

/// `bytes` rounded up to whole pages, at least one page (a mapping cannot
/// be empty, and a zero-sized memory still needs a valid base).
fn mapping_len(bytes: usize) -> Option<usize> {
    let page = page_size();
    Some(bytes.max(1).checked_add(page - 1)? & !(page - 1))
}

impl MappedMemory {
    fn new(minimum: usize, maximum: Option<usize>) -> std::io::Result<Self> {
        let mapped = mapping_len(minimum).ok_or_else(too_large)?;
        // SAFETY: a fresh private anonymous mapping at an address the kernel
        // picks aliases nothing. No MAP_NORESERVE: the flags must equal
        // those of the fiber stacks beside it for the kernel to merge them.
        // (Pages are committed only when touched either way.)
        let base = unsafe {
            mmap_anonymous(
                std::ptr::null_mut(),
                mapped,
                ProtFlags::READ | ProtFlags::WRITE,
                MapFlags::PRIVATE,
            )
        }?;
        let base = NonNull::new(base.cast::<u8>()).ok_or_else(too_large)?;
        Ok(Self {
            base,
            size: minimum,
            mapped,
            maximum,
        })
    }
}

fn too_large() -> std::io::Error {
    std::io::Error::from(std::io::ErrorKind::OutOfMemory)
}

// SAFETY: `as_ptr` points at `mapped` >= `byte_size` readable and writable
// bytes owned by this value; `byte_capacity` is `mapped`, and growing within
// it keeps the base (only a growth past it moves the memory, with its
// contents, as `mremap` does); bytes past `size` are zero because the guest
// can only write below `size` and a mapping starts zeroed.
unsafe impl LinearMemory for MappedMemory {
    fn byte_size(&self) -> usize {
        self.size
    }

    fn byte_capacity(&self) -> usize {
        self.mapped
    }

    fn grow_to(&mut self, new_size: usize) -> wasmtime::Result<()> {
        if self.maximum.is_some_and(|max| new_size > max) {
            wasmtime::bail!("memory cannot grow past its maximum");
        }
        if new_size <= self.mapped {
            self.size = new_size;
            return Ok(());
        }
        let new_mapped = mapping_len(new_size).ok_or_else(too_large)?;
        // SAFETY: `base`/`mapped` is our own mapping; MAYMOVE lets the
        // kernel move it (contents kept, the new tail zeroed), and wasmtime
        // reloads the base after a growth of a memory that may move.
        let moved = unsafe {
            mremap(
                self.base.as_ptr().cast(),
                self.mapped,
                new_mapped,
                MremapFlags::MAYMOVE,
            )
        }?;
        self.base = NonNull::new(moved.cast::<u8>()).ok_or_else(too_large)?;
        self.mapped = new_mapped;
        self.size = new_size;
        Ok(())
    }

    fn as_ptr(&self) -> *mut u8 {
        self.base.as_ptr()
    }
}

impl Drop for MappedMemory {
    fn drop(&mut self) {
        // SAFETY: the mapping is ours and no longer used (wasmtime drops a
        // memory after its store); an error would leave a leak, not a hazard.
        let _ = unsafe { munmap(self.base.as_ptr().cast(), self.mapped) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_memory_grows_keeping_its_contents_and_zeroes_the_new_part() {
        let mut m = MappedMemory::new(100, Some(1 << 20)).unwrap();
        assert_eq!(m.byte_size(), 100);
        // SAFETY: 100 bytes are mapped read-write.
        unsafe { m.as_ptr().write_bytes(7, 100) };
        m.grow_to(200_000).unwrap();
        assert_eq!(m.byte_size(), 200_000);
        assert!(m.byte_capacity() >= 200_000);
        // SAFETY: 200,000 bytes are mapped now.
        let bytes = unsafe { std::slice::from_raw_parts(m.as_ptr(), 200_000) };
        assert!(bytes[..100].iter().all(|&b| b == 7));
        assert!(bytes[100..].iter().all(|&b| b == 0));
        assert!(m.grow_to(2 << 20).is_err(), "past the maximum");
    }

    #[test]
    fn a_reserved_or_guarded_memory_is_refused() {
        let c = MappedMemoryCreator;
        let ty = MemoryType::new(1, None);
        assert!(
            c.new_memory(ty.clone(), 65536, None, Some(1 << 30), 0)
                .is_err()
        );
        assert!(c.new_memory(ty.clone(), 65536, None, None, 4096).is_err());
        assert!(c.new_memory(ty, 0, None, None, 0).is_ok());
    }
}
