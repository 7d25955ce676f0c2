//! Build files (`wrun.toml`, Dockerfile syntax) turned into OCI images.
