//! An instance's layered, copy-on-write view of an image rootfs (see
//! `docs/rootfs.md`): a shared read-only lower and a lazily created upper.
