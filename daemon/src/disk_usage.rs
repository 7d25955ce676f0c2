//! `GET /system/df`: the space images, instances and volumes take, in
//! Docker's shape (`docker system df`, docker-py's `df()`).

use std::collections::HashMap;
use std::sync::Arc;

use http_body_util::BodyExt;
use hyper::{Response, StatusCode};
use wrun_api::containers::ContainerSummary;
use wrun_api::parse::Filters;
use wrun_api::volumes::{DiskUsage, VolumeUsage};

use crate::error::DaemonError;
use crate::http::{Body, Query, json};
use crate::state::Daemon;
use crate::volumes::{Volumes, ref_counts};

/// `GET /system/df`: every image with the instances made from it, every
/// instance with its sizes (`ps -a -s`'s rows), every volume with its size
/// and the instances that mount it; no build cache (`null`, as dockerd
/// answers when it has none).
pub async fn df(daemon: &Arc<Daemon>) -> Result<Response<Body>, DaemonError> {
    let containers = container_rows(daemon).await?;
    let d = Arc::clone(daemon);
    let usage = tokio::task::spawn_blocking(move || -> Result<DiskUsage, DaemonError> {
        let mut per_image: HashMap<String, i64> = HashMap::new();
        for c in &containers {
            *per_image.entry(c.image_id.clone()).or_insert(0) += 1;
        }
        let mut images = crate::image_views::list(&d.store, &Filters::default(), true)?;
        for i in &mut images {
            i.containers = per_image.get(&i.id).copied().unwrap_or(0);
        }
        let store = d.store.disk_usage().map_err(anyhow::Error::from)?;
        let counts = ref_counts(&d);
        let volumes = Volumes::of(d.store.root());
        let volumes = volumes
            .list()
            .into_iter()
            .map(|mut v| {
                v.usage_data = Some(VolumeUsage {
                    size: i64::try_from(volumes.size(&v.name)).unwrap_or(i64::MAX),
                    ref_count: counts.get(&v.name).copied().unwrap_or(0),
                });
                v
            })
            .collect();
        Ok(DiskUsage {
            layers_size: i64::try_from(store.blob_bytes + store.snapshot_bytes).unwrap_or(i64::MAX),
            images,
            containers,
            volumes,
            build_cache: None,
            builder_size: 0,
        })
    })
    .await
    .map_err(|e| anyhow::anyhow!("measuring the disk usage failed: {e}"))??;
    Ok(json(StatusCode::OK, &usage))
}

/// Every instance as `GET /containers/json?all=1&size=1` lists it.
async fn container_rows(daemon: &Arc<Daemon>) -> Result<Vec<ContainerSummary>, DaemonError> {
    let listed = crate::container_list::list(daemon, &Query::parse(Some("all=1&size=1")))?;
    let body = match listed.into_body().collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(never) => match never {},
    };
    serde_json::from_slice(&body)
        .map_err(|e| DaemonError::Internal(format!("reading the instance list: {e}")))
}
