//! `GET /containers/json`: the `ps` rows, with Docker's filters, `limit`
//! and order (newest first).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use hyper::{Response, StatusCode};
use time::OffsetDateTime;

use super::http::{Body, Query, json, query_filters};
use super::record::ContainerRecord;
use super::state::Daemon;
use crate::error::DaemonError;
use crate::instance::Container;
use crate::lifecycle::Status;
use wrun_api::containers::{ContainerSummary, SummaryHostConfig};
use wrun_api::network::{EndpointSettings, Port};
use wrun_api::parse::Filters;
use wrun_api::time::human_duration;

use crate::container_inspect::{mounts, published};

/// The filters Docker's `GET /containers/json` takes; wrun takes them all.
const FILTERS: &[&str] = &[
    "ancestor",
    "before",
    "expose",
    "exited",
    "health",
    "id",
    "is-task",
    "isolation",
    "label",
    "name",
    "network",
    "publish",
    "since",
    "status",
    "volume",
];

/// The states `status=` may name (Docker's list; wrun never reaches `dead`).
const STATES: &[&str] = &[
    "created",
    "restarting",
    "running",
    "removing",
    "paused",
    "exited",
    "dead",
];

/// The values `health=` may name. Instances have no healthcheck: each is
/// `none`, as a Docker container without one.
const HEALTH: &[&str] = &["starting", "healthy", "unhealthy", "none"];

fn unix(t: Option<&str>) -> Option<i64> {
    wrun_api::time::unix_seconds(t)
}

/// The state `ps` shows and `status=` matches.
fn state_of(r: &ContainerRecord) -> &'static str {
    if r.state.restarting {
        "restarting"
    } else {
        r.state.status.as_str()
    }
}

/// Docker's `Running`: true while a guest runs, is paused, or is between
/// a policy's restarts.
fn running(r: &ContainerRecord) -> bool {
    r.state.is_live() || r.state.restarting
}

/// Docker's STATUS column: "Created", "Up 5 minutes", "Exited (0) 2 hours ago".
fn status_text(r: &ContainerRecord, now: i64) -> String {
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

/// A `publish=`/`expose=` value: `PORT`, `START-END`, with `/PROTO`
/// (tcp when absent).
#[derive(Debug, PartialEq)]
struct PortRange {
    start: u16,
    end: u16,
    proto: String,
}

impl PortRange {
    fn parse(key: &str, value: &str) -> Result<Self, DaemonError> {
        if value.contains(':') {
            return Err(DaemonError::invalid(format!(
                "filter for '{key}' should not contain ':': {value}"
            )));
        }
        let (ports, proto) = value.split_once('/').unwrap_or((value, "tcp"));
        let bad = || {
            DaemonError::invalid(format!(
                "error while looking up for {key} {value}: expected PORT or START-END, then an optional /PROTOCOL"
            ))
        };
        let (start, end) = ports.split_once('-').unwrap_or((ports, ports));
        let start: u16 = start.parse().map_err(|_| bad())?;
        let end: u16 = end.parse().map_err(|_| bad())?;
        if end < start || proto.is_empty() {
            return Err(bad());
        }
        Ok(Self {
            start,
            end,
            proto: proto.to_ascii_lowercase(),
        })
    }

    fn contains(&self, port: u16, proto: &str) -> bool {
        (self.start..=self.end).contains(&port) && self.proto == proto
    }
}

/// A `ps` request, checked: what to list and which rows pass.
struct Selection {
    filters: Filters,
    names: Vec<NamePattern>,
    all: bool,
    /// At most this many rows (Docker's `limit`; also lists stopped ones).
    limit: Option<usize>,
    exited: Vec<i64>,
    /// The instance whose older ones are listed, and the one whose newer ones are.
    before: Option<String>,
    since: Option<String>,
    /// With `id=`: the instances the values name (each a unique ID prefix).
    ids: Option<HashSet<String>>,
    /// With `ancestor=`: the image IDs the values name.
    ancestors: Option<HashSet<String>>,
    is_task: Option<bool>,
    publish: Vec<PortRange>,
    expose: Vec<PortRange>,
    /// The user-defined networks of each instance on one, with its
    /// endpoint there (the `network` filter and the NETWORKS column).
    on_networks: HashMap<String, BTreeMap<String, EndpointSettings>>,
}

impl Selection {
    /// Reads the query: 400 for an unknown filter or a bad value, 404 for a
    /// `before`/`since` instance that does not exist, as Docker answers.
    fn parse(
        daemon: &Daemon,
        query: &Query,
        listed: &[Arc<Container>],
    ) -> Result<Self, DaemonError> {
        let filters = query_filters(query.get("filters"), FILTERS)?;
        let mut all = query.flag("all");
        let limit = match query.get("limit").filter(|l| !l.is_empty()) {
            None => None,
            Some(l) => {
                let n: i64 = l.parse().map_err(|_| {
                    DaemonError::invalid(format!("invalid limit {l:?}: expected a whole number"))
                })?;
                usize::try_from(n).ok().filter(|&n| n > 0)
            }
        };
        let exited = filters
            .values("exited")
            .map(|v| {
                // dockerd's words: Go's strconv error.
                v.parse::<i64>().map_err(|_| {
                    DaemonError::invalid(format!("strconv.Atoi: parsing {v:?}: invalid syntax"))
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        for v in filters.values("status") {
            if !STATES.contains(&v) {
                return Err(DaemonError::invalid(format!("Invalid filter 'status={v}'")));
            }
            all = true;
        }
        let is_task = filters
            .bool_value("is-task")
            .map_err(DaemonError::invalid)?;
        for v in filters.values("health") {
            if !HEALTH.contains(&v) {
                return Err(DaemonError::invalid(format!(
                    "Unrecognised filter value for health: {v}"
                )));
            }
        }
        // Several values: the oldest `before` and the newest `since`, so
        // each one holds.
        let created_of = |id: &str| listed.iter().find(|c| c.id == id).map(|c| c.created_nanos);
        let mut before: Option<String> = None;
        for v in filters.values("before") {
            let id = daemon.find(v)?.id.clone();
            if before
                .as_deref()
                .is_none_or(|b| created_of(&id) < created_of(b))
            {
                before = Some(id);
            }
        }
        let mut since: Option<String> = None;
        for v in filters.values("since") {
            let id = daemon.find(v)?.id.clone();
            if since
                .as_deref()
                .is_none_or(|s| created_of(&id) > created_of(s))
            {
                since = Some(id);
            }
        }
        let ids = filters.contains("id").then(|| {
            filters
                .values("id")
                .filter_map(|prefix| {
                    let mut found = listed.iter().filter(|c| c.id.starts_with(prefix));
                    match (found.next(), found.next()) {
                        (Some(c), None) if !prefix.is_empty() => Some(c.id.clone()),
                        _ => None,
                    }
                })
                .collect()
        });
        // An image no one can find matches no instance (Docker only logs it).
        let ancestors = filters.contains("ancestor").then(|| {
            filters
                .values("ancestor")
                .filter_map(|v| daemon.store.find(v).ok())
                .map(|image| image.id.to_string())
                .collect()
        });
        let ports = |key: &str| {
            filters
                .values(key)
                .map(|v| PortRange::parse(key, v))
                .collect::<Result<Vec<_>, _>>()
        };
        Ok(Self {
            all,
            limit,
            exited,
            before,
            since,
            ids,
            ancestors,
            is_task,
            names: filters.values("name").map(NamePattern::new).collect(),
            publish: ports("publish")?,
            expose: ports("expose")?,
            on_networks: daemon.networks.by_instance(),
            filters,
        })
    }

    /// Whether `r` passes every filter but `before`, `since` and `limit`
    /// (the walk over the sorted list applies those).
    fn passes(&self, r: &ContainerRecord, ports: &[Port]) -> bool {
        let f = &self.filters;
        if !running(r) && !self.all && self.limit.is_none() {
            return false;
        }
        if !self.names.is_empty() && !self.names.iter().any(|p| p.matches(&r.name)) {
            return false;
        }
        if self.ids.as_ref().is_some_and(|ids| !ids.contains(&r.id)) {
            return false;
        }
        // No instance is a swarm task.
        if self.is_task == Some(true) {
            return false;
        }
        let labels = r.config.labels.as_ref();
        if !f.match_labels("label", |k| {
            labels.and_then(|l| l.get(k)).map(String::as_str)
        }) {
            return false;
        }
        if f.contains("isolation")
            && !f
                .values("isolation")
                .any(|v| v.eq_ignore_ascii_case("default"))
        {
            return false;
        }
        if !self.exited.is_empty()
            && (running(r)
                || r.state.started_at.is_none()
                || !self.exited.contains(&r.state.exit_code))
        {
            return false;
        }
        if f.contains("status") && !f.values("status").any(|v| v == state_of(r)) {
            return false;
        }
        if f.contains("health") && !f.values("health").any(|v| v == "none") {
            return false;
        }
        // dockerd's: a mount's destination, or its volume's name (a bind's
        // source).
        if f.contains("volume") {
            let mounts = mounts(r);
            let names = |v: &str| {
                mounts.iter().any(|m| {
                    m.destination == v
                        || v == if m.name.is_empty() {
                            &m.source
                        } else {
                            &m.name
                        }
                })
            };
            if !f.values("volume").any(names) {
                return false;
            }
        }
        if let Some(images) = &self.ancestors
            && !images.contains(&r.image_id)
        {
            return false;
        }
        // dockerd's: a network's name or ID (or a prefix of it).
        if f.contains("network") {
            let mode = wrun_api::network::shown_mode(&r.host_config.network_mode);
            let on = self.on_networks.get(&r.id);
            let names = |v: &str| {
                v == mode
                    || on.is_some_and(|eps| {
                        eps.iter().any(|(name, e)| {
                            name == v || (!v.is_empty() && e.network_id.starts_with(v))
                        })
                    })
            };
            if !f.values("network").any(names) {
                return false;
            }
        }
        if !self.publish.is_empty() || !self.expose.is_empty() {
            let hit = ports.iter().any(|p| {
                self.publish
                    .iter()
                    .any(|w| w.contains(p.public_port, &p.kind))
                    || self
                        .expose
                        .iter()
                        .any(|w| w.contains(p.private_port, &p.kind))
            });
            if !hit {
                return false;
            }
        }
        true
    }
}

/// A `name=` value: the name itself (with or without its `/`), or a
/// regular expression found in it, as Docker reads it. A value that is no
/// valid expression matches by equality only.
struct NamePattern {
    text: String,
    regex: Option<regex::Regex>,
}

impl NamePattern {
    fn new(text: &str) -> Self {
        Self {
            text: text.to_string(),
            regex: regex::Regex::new(text).ok(),
        }
    }

    fn matches(&self, name: &str) -> bool {
        let slashed = format!("/{name}");
        [name, slashed.as_str()]
            .iter()
            .any(|n| *n == self.text || self.regex.as_ref().is_some_and(|r| r.is_match(n)))
    }
}

/// The `Ports` of a row: while the instance runs, each exposed port (no
/// host side) and each published one, as Docker lists them.
fn ports_of(r: &ContainerRecord) -> Vec<Port> {
    if !r.state.is_live() {
        return Vec::new();
    }
    let mut ports = Vec::new();
    for (key, bindings) in crate::grants::settings_ports(&r.config, &published(r)) {
        let (port, proto) = key.split_once('/').unwrap_or((&key, "tcp"));
        let Ok(private_port) = port.parse::<u16>() else {
            continue;
        };
        match bindings {
            Some(bindings) if !bindings.is_empty() => {
                ports.extend(bindings.into_iter().map(|b| Port {
                    ip: b.host_ip,
                    private_port,
                    public_port: b.host_port.parse().unwrap_or(0),
                    kind: proto.to_string(),
                }))
            }
            _ => ports.push(Port {
                ip: String::new(),
                private_port,
                public_port: 0,
                kind: proto.to_string(),
            }),
        }
    }
    // The docker client lists the unpublished ones first; wrun's CLI keeps
    // this order.
    ports.sort_by_key(|p| (p.public_port != 0, p.private_port));
    ports
}

/// Docker's `Command`: the path and arguments, those with a space quoted.
fn command_of(r: &ContainerRecord) -> String {
    std::iter::once(r.path.clone())
        .chain(r.args.iter().map(|a| {
            if a.contains(' ') {
                format!("'{a}'")
            } else {
                a.clone()
            }
        }))
        .collect::<Vec<_>>()
        .join(" ")
}

/// The row of `r`, created at `created` (seconds since the epoch), as
/// `ps` and `system df` show it.
pub(crate) fn row(
    r: &ContainerRecord,
    created: i64,
    image: String,
    ports: Vec<Port>,
    now: i64,
) -> ContainerSummary {
    let mode = wrun_api::network::shown_mode(&r.host_config.network_mode);
    // The docker client's NETWORKS column reads the keys.
    let settings = wrun_api::containers::NetworkSettings {
        networks: BTreeMap::from([(mode.to_string(), EndpointSettings::default())]),
        ..Default::default()
    };
    ContainerSummary {
        id: r.id.clone(),
        names: vec![format!("/{}", r.name)],
        image,
        image_id: r.image_id.clone(),
        command: command_of(r),
        created,
        state: state_of(r).into(),
        status: status_text(r, now),
        host_config: SummaryHostConfig {
            network_mode: mode.into(),
        },
        network_settings: settings,
        ports,
        mounts: mounts(r),
        labels: r.config.labels.clone().unwrap_or_default(),
        size_rw: None,
        size_root_fs: None,
    }
}

/// `GET /containers/json?all=&limit=&size=&filters=`: the [`rows`].
pub fn list(daemon: &Arc<Daemon>, query: &Query) -> Result<Response<Body>, DaemonError> {
    Ok(json(StatusCode::OK, &rows(daemon, query)?))
}

/// The rows a `GET /containers/json` query asks for: running ones only
/// unless `all`, a `status` filter or a `limit`; newest first. `before`
/// skips the rows down to that instance, `since` stops at it, `limit` stops
/// after so many rows: in this order, as Docker walks its list. `size` adds
/// `SizeRw` (the bytes written over the image; left out when none) and
/// `SizeRootFs` (the image's size plus those), as inspect does.
pub(crate) fn rows(daemon: &Daemon, query: &Query) -> Result<Vec<ContainerSummary>, DaemonError> {
    // Only the instances are sorted, by a key read without their locks;
    // each record is read in place, under its instance's lock, while its
    // row is built. (Copying every record to sort them cost most of a
    // list at 10,000: docs/benchmarks/daemon-scale.md.)
    let mut listed = daemon.all();
    listed.sort_by(|a, b| {
        b.created_nanos
            .cmp(&a.created_nanos)
            .then_with(|| a.id.cmp(&b.id))
    });
    let selection = Selection::parse(daemon, query, &listed)?;
    // Whether the image name an instance was created from still names its
    // image (else Docker shows the image ID), once per name.
    let mut still_named: HashMap<String, bool> = HashMap::new();
    let sizes = query.flag("size");
    let mut image_sizes: HashMap<String, i64> = HashMap::new();
    let now = OffsetDateTime::now_utc().unix_timestamp();
    let mut rows: Vec<ContainerSummary> = Vec::with_capacity(listed.len());
    let mut before = selection.before.as_deref();
    for c in &listed {
        if let Some(b) = before {
            if c.id == b {
                before = None;
            }
            continue;
        }
        if selection.since.as_deref() == Some(c.id.as_str()) {
            break;
        }
        if selection.limit.is_some_and(|n| rows.len() >= n) {
            break;
        }
        let inner = c.lock();
        let r = &inner.record;
        let ports = ports_of(r);
        if !selection.passes(r, &ports) {
            continue;
        }
        let named = match still_named.get(r.image.as_str()) {
            Some(named) => *named,
            None => {
                let named = r.image == r.image_id
                    || daemon
                        .store
                        .find(&r.image)
                        .is_ok_and(|i| i.id.to_string() == r.image_id);
                still_named.insert(r.image.clone(), named);
                named
            }
        };
        let image = if named {
            r.image.clone()
        } else {
            r.image_id.clone()
        };
        let created = i64::try_from(c.created_nanos.div_euclid(1_000_000_000)).unwrap_or(0);
        let mut row = row(r, created, image, ports, now);
        match selection.on_networks.get(&r.id) {
            Some(eps) => row.network_settings.networks = eps.clone(),
            // Left the network it was created on, and on none now.
            None if wrun_api::network::user_network(&r.host_config.network_mode).is_some() => {
                row.network_settings.networks.clear();
            }
            None => {}
        }
        let image_id = sizes.then(|| r.image_id.clone());
        drop(inner);
        if let Some(image_id) = image_id {
            let image_size = match image_sizes.get(&image_id) {
                Some(size) => *size,
                None => {
                    let size = daemon
                        .store
                        .find(&image_id)
                        .map_or(0, |i| i64::try_from(i.size).unwrap_or(i64::MAX));
                    image_sizes.insert(image_id, size);
                    size
                }
            };
            // What the instance wrote over its image (read without its
            // lock: a walk of its upper); dockerd leaves a zero out.
            let upper = daemon.rootfs.upper_path(&row.id);
            let written =
                i64::try_from(crate::rootfs_views::upper_bytes(&upper)).unwrap_or(i64::MAX);
            row.size_rw = Some(written).filter(|&w| w > 0);
            row.size_root_fs = Some(image_size.saturating_add(written));
        }
        rows.push(row);
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn port_filters_take_ports_ranges_and_protocols() {
        let r = PortRange::parse("publish", "8000-8080/udp").unwrap();
        assert!(r.contains(8001, "udp") && !r.contains(8001, "tcp") && !r.contains(9000, "udp"));
        assert!(
            PortRange::parse("expose", "80")
                .unwrap()
                .contains(80, "tcp")
        );
        for bad in ["1:2", "abc", "90-80", "", "80/"] {
            assert!(PortRange::parse("expose", bad).is_err(), "{bad}");
        }
        assert_eq!(
            PortRange::parse("expose", "1:2").unwrap_err().message(),
            "filter for 'expose' should not contain ':': 1:2"
        );
    }

    #[test]
    fn names_match_as_dockers_regular_expressions() {
        let m = |p: &str, name: &str| NamePattern::new(p).matches(name);
        assert!(m("web", "web-1"));
        assert!(m("/web-1", "web-1"));
        assert!(m("^web-1$", "web-1"));
        assert!(m("^/web-1$", "web-1"));
        assert!(!m("^web$", "web-1"));
        assert!(m("^w.b-[0-9]+$", "web-12"));
        assert!(!m("db", "web-1"));
        // Not an expression: equal names only.
        assert!(m("a(b", "a(b") && !m("a(b", "xa(by"));
    }

    #[test]
    fn commands_quote_arguments_with_spaces() {
        let r: ContainerRecord = serde_json::from_value(serde_json::json!({
            "id": "a", "name": "n", "created": "2024-01-01T00:00:00Z", "image": "i",
            "image_id": "sha256:0", "path": "/app.wasm", "args": ["a b", "c"],
            "config": {}, "host_config": {}, "state": {"status": "created"},
            "restart_count": 0
        }))
        .unwrap();
        assert_eq!(command_of(&r), "/app.wasm 'a b' c");
    }
}
