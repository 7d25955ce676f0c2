//! `/images/…`: the stored images in Docker's shapes.

use std::sync::Arc;

use hyper::{Response, StatusCode};

use super::http::{ApiError, Body, json};
use super::state::Daemon;
use crate::api::images;

/// `GET /images/json`
pub async fn list(daemon: &Arc<Daemon>) -> Result<Response<Body>, ApiError> {
    let d = Arc::clone(daemon);
    let records = tokio::task::spawn_blocking(move || d.store.images())
        .await
        .map_err(|e| anyhow::anyhow!("listing images failed: {e}"))?
        .map_err(anyhow::Error::from)?;
    let rows: Vec<_> = records.iter().map(images::summary).collect();
    Ok(json(StatusCode::OK, &rows))
}

/// `GET /images/{name}/json`: 404 "No such image" when unknown.
pub async fn inspect(daemon: &Arc<Daemon>, name: String) -> Result<Response<Body>, ApiError> {
    let d = Arc::clone(daemon);
    let view = tokio::task::spawn_blocking(move || {
        let record = d.store.find(&name).map_err(|e| {
            if e.is_not_found() {
                ApiError::not_found(format!("No such image: {name}"))
            } else {
                ApiError::from(anyhow::Error::from(e))
            }
        })?;
        images::inspect(&d.store, &record).map_err(ApiError::from)
    })
    .await
    .map_err(|e| anyhow::anyhow!("inspecting the image failed: {e}"))??;
    Ok(json(StatusCode::OK, &view))
}
