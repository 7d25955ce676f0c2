//! `GET /system/df`: the space images, instances and volumes take, in
//! Docker's shape (`docker system df`, docker-py's `df()`).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use hyper::{Response, StatusCode};
use serde::Deserialize;
use wrun_api::containers::ContainerSummary;
use wrun_api::parse::Filters;
use wrun_api::volumes::{DiskUsage, VolumeUsage};
use wrun_image::Store;

use crate::container_list;
use crate::error::DaemonError;
use crate::http::{Body, Query, json};
use crate::images::blocking;
use crate::lifecycle::{EXIT_DAEMON_GONE, Status};
use crate::record::ContainerRecord;
use crate::state::Daemon;
use crate::volume_store::{Volumes, mounts_of};

/// `GET /system/df`: every image with the instances made from it, every
/// instance with its sizes (`ps -a -s`'s rows), every volume with its size
/// and the instances that mount it; no build cache (`null`, as dockerd
/// answers when it has none).
pub async fn df(daemon: &Arc<Daemon>) -> Result<Response<Body>, DaemonError> {
    let d = Arc::clone(daemon);
    let usage = blocking("measuring the disk usage", move || {
        // Every instance as `GET /containers/json?all=1&size=1` lists it.
        let containers = container_list::rows(&d, &Query::parse(Some("all=1&size=1")))?;
        let counts = crate::volumes::ref_counts(&d);
        usage(&d.store, containers, &counts)
    })
    .await?;
    Ok(json(StatusCode::OK, &usage))
}

/// What `/system/df` answers, measured in the store at `store` with no
/// daemon serving it: the instance records on disk, none running (the
/// CLI's `system df` when no daemon holds the store).
pub fn on_disk(store: &Store) -> anyhow::Result<DiskUsage> {
    let loaded = crate::records::read(&crate::layout::containers_dir(store.root()))?;
    let mut counts: BTreeMap<String, i64> = BTreeMap::new();
    let mut containers = Vec::new();
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    for value in loaded.records.into_values() {
        let Ok(mut r) = ContainerRecord::deserialize(value) else {
            continue;
        };
        for m in mounts_of(&r.host_config) {
            *counts.entry(m.name).or_insert(0) += 1;
        }
        // No daemon holds the store: what ran when one last did has ended,
        // as the next daemon will record it.
        if r.state.status.interrupted() {
            r.state.status = Status::Exited;
            r.state.exit_code = EXIT_DAEMON_GONE;
        }
        let created = wrun_api::time::parse(&r.created).map_or(0, |t| t.unix_timestamp());
        let image = r.image.clone();
        containers.push(container_list::row(&r, created, image, Vec::new(), now));
    }
    containers.sort_by_key(|c| std::cmp::Reverse(c.created));
    Ok(usage(store, containers, &counts)?)
}

/// The document, given the instances' rows and how many mount each volume.
fn usage(
    store: &Store,
    containers: Vec<ContainerSummary>,
    counts: &BTreeMap<String, i64>,
) -> Result<DiskUsage, DaemonError> {
    let mut per_image: HashMap<String, i64> = HashMap::new();
    for c in &containers {
        *per_image.entry(c.image_id.clone()).or_insert(0) += 1;
    }
    let mut images = crate::image_views::list(store, &Filters::default(), true)?;
    for i in &mut images {
        i.containers = per_image.get(&i.id).copied().unwrap_or(0);
    }
    let on_disk = store.disk_usage().map_err(anyhow::Error::from)?;
    let volumes = Volumes::of(store.root());
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
        layers_size: i64::try_from(on_disk.blob_bytes + on_disk.snapshot_bytes).unwrap_or(i64::MAX),
        images,
        containers,
        volumes,
        build_cache: None,
        builder_size: 0,
    })
}
