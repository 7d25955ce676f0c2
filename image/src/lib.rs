//! OCI images for wrun: the image format, image layout tars, and the local store.
