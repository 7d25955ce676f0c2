//! `GET /containers/json`: the `ps` rows, with Docker's filters.

use std::collections::HashMap;
use std::sync::Arc;

use hyper::{Response, StatusCode};
use time::OffsetDateTime;

use super::http::{Body, Query, json, parse_filters};
use super::record::ContainerRecord;
use super::state::Daemon;
use crate::error::DaemonError;
use crate::lifecycle::Status;
use wrun_api::containers::{ContainerSummary, SummaryHostConfig};
use wrun_api::time::human_duration;

use crate::container_inspect::{mounts, published};

fn unix(t: Option<&str>) -> Option<i64> {
    wrun_api::time::unix_seconds(t)
}

/// Docker's STATUS column: "Created", "Up 5 minutes", "Exited (0) 2 hours ago".
fn status_text(r: &ContainerRecord) -> String {
    let now = OffsetDateTime::now_utc().unix_timestamp();
    let st = &r.state;
    match st.status {
        Status::Created => "Created".into(),
        Status::Running => format!(
            "Up {}",
            human_duration(now - unix(st.started_at.as_deref()).unwrap_or(now))
        ),
        Status::Paused => format!(
            "Up {} (Paused)",
            human_duration(now - unix(st.started_at.as_deref()).unwrap_or(now))
        ),
        Status::Exited if st.restarting => format!(
            "Restarting ({}) {} ago",
            st.exit_code,
            human_duration(now - unix(st.finished_at.as_deref()).unwrap_or(now))
        ),
        Status::Exited => format!(
            "Exited ({}) {} ago",
            st.exit_code,
            human_duration(now - unix(st.finished_at.as_deref()).unwrap_or(now))
        ),
        Status::Removing => "Removal In Progress".into(),
    }
}

/// Whether a record passes `ps` filters: for every key, one value matches.
/// `status`, `name` (substring), `id` (prefix), `label` (`k` or `k=v`),
/// `ancestor` (the image as named or its ID), `exited` (the code).
fn passes(r: &ContainerRecord, filters: &HashMap<String, Vec<String>>) -> bool {
    let status = if r.state.restarting {
        "restarting"
    } else {
        r.state.status.as_str()
    };
    let labels = r.config.labels.clone().unwrap_or_default();
    filters.iter().all(|(key, values)| {
        values.iter().any(|v| match key.as_str() {
            "status" => status == v,
            "name" => r.name.contains(v.trim_start_matches('/')),
            "id" => r.id.starts_with(v.as_str()),
            "label" => match v.split_once('=') {
                Some((k, want)) => labels.get(k).is_some_and(|x| x == want),
                None => labels.contains_key(v),
            },
            "ancestor" => {
                r.image == *v
                    || r.image_id == *v
                    || r.image_id
                        .strip_prefix("sha256:")
                        .is_some_and(|h| h.starts_with(v.as_str()))
            }
            "exited" => r.state.status == Status::Exited && r.state.exit_code.to_string() == *v,
            _ => false,
        })
    })
}

/// `GET /containers/json?all=&filters=`: running ones only unless `all`
/// (or a `status` filter); 400 for a filter wrun does not know.
pub fn list(daemon: &Arc<Daemon>, query: &Query) -> Result<Response<Body>, DaemonError> {
    let filters = parse_filters(
        query.get("filters"),
        &["status", "name", "id", "label", "ancestor", "exited"],
    )?;
    let all = query.flag("all") || filters.contains_key("status");
    let mut rows: Vec<(i64, ContainerSummary)> = daemon
        .all()
        .iter()
        .map(|c| c.record())
        .filter(|r| all || r.state.is_live())
        .filter(|r| passes(r, &filters))
        .map(|r| {
            let created = unix(Some(&r.created)).unwrap_or(0);
            let command = std::iter::once(r.path.clone())
                .chain(r.args.iter().cloned())
                .collect::<Vec<_>>()
                .join(" ");
            let nanos = wrun_api::time::parse(&r.created)
                .map(|t| t.unix_timestamp_nanos() as i64)
                .unwrap_or(0);
            (
                nanos,
                ContainerSummary {
                    id: r.id.clone(),
                    names: vec![format!("/{}", r.name)],
                    image: r.image.clone(),
                    image_id: r.image_id.clone(),
                    command,
                    created,
                    state: if r.state.restarting {
                        "restarting".into()
                    } else {
                        r.state.status.as_str().into()
                    },
                    status: status_text(&r),
                    host_config: SummaryHostConfig {
                        network_mode: wrun_api::network::shown_mode(&r.host_config.network_mode)
                            .into(),
                    },
                    ports: crate::grants::summary_ports(&published(&r)),
                    mounts: mounts(&r),
                    labels: r.config.labels.clone().unwrap_or_default(),
                    ..ContainerSummary::default()
                },
            )
        })
        .collect();
    // Newest first, as Docker lists.
    rows.sort_by_key(|r| std::cmp::Reverse(r.0));
    let rows: Vec<ContainerSummary> = rows.into_iter().map(|(_, s)| s).collect();
    Ok(json(StatusCode::OK, &rows))
}
