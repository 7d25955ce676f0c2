//! `/events`: what happened to instances and images, kept in a bounded
//! in-memory ring (for `--since`) and broadcast to live subscribers.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use hyper::Response;
use time::OffsetDateTime;
use tokio::sync::broadcast;

use super::http::{Body, Query, parse_filters, streaming};
use crate::error::DaemonError;
use wrun_api::network::BRIDGE_DRIVER;
use wrun_api::system::{EventActor, EventMessage};

/// The instance a container event is about, as its attributes name it.
#[derive(Clone, Debug, Default)]
pub struct ContainerSubject {
    pub name: String,
    /// The image as the create request named it.
    pub image: String,
    /// The instance's labels (its image's with its own over them).
    pub labels: BTreeMap<String, String>,
}

impl ContainerSubject {
    pub fn of(record: &crate::record::ContainerRecord) -> Self {
        Self {
            name: record.name.clone(),
            image: record.image.clone(),
            labels: record.config.labels.clone().unwrap_or_default(),
        }
    }
}

/// Events kept for `since` (Docker keeps 256; instances are many here).
const KEPT: usize = 4096;
/// Events a slow subscriber may fall behind before it skips ahead.
const LIVE_BACKLOG: usize = 1024;

/// One recorded event with its sequence number (for de-duplication between
/// the ring and the live channel).
#[derive(Clone, Debug)]
struct Recorded {
    seq: u64,
    message: Arc<EventMessage>,
}

pub struct EventLog {
    ring: Mutex<Ring>,
    live: broadcast::Sender<Recorded>,
}

#[derive(Default)]
struct Ring {
    next_seq: u64,
    kept: VecDeque<Recorded>,
}

impl Default for EventLog {
    fn default() -> Self {
        Self {
            ring: Mutex::default(),
            live: broadcast::Sender::new(LIVE_BACKLOG),
        }
    }
}

impl EventLog {
    /// Clients following `GET /events` now (`NEventsListener` of `/info`).
    pub fn listeners(&self) -> usize {
        self.live.receiver_count()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Ring> {
        // A counter and a deque, each change one call: usable after a panic.
        self.ring.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records a container event: its attributes are the instance's labels,
    /// then `name`, `image` and `attributes`, as dockerd's.
    pub fn container(
        &self,
        action: &str,
        id: &str,
        subject: &ContainerSubject,
        attributes: &[(&str, String)],
    ) {
        let mut attrs = subject.labels.clone();
        attrs.insert("name".into(), subject.name.clone());
        attrs.insert("image".into(), subject.image.clone());
        attrs.extend(attributes.iter().map(|(k, v)| (k.to_string(), v.clone())));
        self.record(EventMessage {
            status: action.into(),
            id: id.into(),
            from: subject.image.clone(),
            kind: "container".into(),
            action: action.into(),
            actor: EventActor {
                id: id.into(),
                attributes: attrs,
            },
            ..EventMessage::default()
        });
    }

    /// Records an image event (`tag`, `untag`, `delete`, `load`, `save`).
    pub fn image(&self, action: &str, id: &str, name: &str) {
        let mut attrs = BTreeMap::new();
        attrs.insert("name".to_string(), name.to_string());
        self.record(EventMessage {
            status: action.into(),
            id: id.into(),
            kind: "image".into(),
            action: action.into(),
            actor: EventActor {
                id: id.into(),
                attributes: attrs,
            },
            ..EventMessage::default()
        });
    }

    /// Records a network event (`create`, `connect`, `disconnect`,
    /// `destroy`): the actor is the network, its attributes its `name`, its
    /// `type` (the driver) and, for an endpoint, the `container` ID, as
    /// dockerd's. dockerd leaves `status`, `id` and `from` out of these.
    pub fn network(&self, action: &str, id: &str, name: &str, container: Option<&str>) {
        let mut attrs = BTreeMap::new();
        attrs.insert("name".to_string(), name.to_string());
        attrs.insert("type".to_string(), BRIDGE_DRIVER.to_string());
        if let Some(c) = container {
            attrs.insert("container".to_string(), c.to_string());
        }
        self.record(EventMessage {
            kind: "network".into(),
            action: action.into(),
            actor: EventActor {
                id: id.to_string(),
                attributes: attrs,
            },
            ..EventMessage::default()
        });
    }

    /// Records the end of a network prune: dockerd's one `prune` event
    /// with no actor ID and `reclaimed` 0 (a network holds no space).
    pub fn network_prune(&self) {
        let mut attrs = BTreeMap::new();
        attrs.insert("reclaimed".to_string(), "0".to_string());
        self.record(EventMessage {
            kind: "network".into(),
            action: "prune".into(),
            actor: EventActor {
                id: String::new(),
                attributes: attrs,
            },
            ..EventMessage::default()
        });
    }

    fn record(&self, mut message: EventMessage) {
        let now = OffsetDateTime::now_utc().unix_timestamp_nanos();
        message.time_nano = i64::try_from(now).unwrap_or(i64::MAX);
        message.time = message.time_nano / 1_000_000_000;
        message.scope = "local".into();
        let mut ring = self.lock();
        let r = Recorded {
            seq: ring.next_seq,
            message: Arc::new(message),
        };
        ring.next_seq += 1;
        if ring.kept.len() == KEPT {
            ring.kept.pop_front();
        }
        ring.kept.push_back(r.clone());
        // Sent under the lock, so a subscriber that snapshots the ring under
        // it sees each event exactly once.
        let _ = self.live.send(r);
    }
}

/// Which events a request wants (Docker's `filters` for `/events`).
#[derive(Debug, Default, PartialEq, Eq)]
pub struct EventFilter {
    /// Key → accepted values; an event passes when, for every key, one
    /// value matches.
    keys: HashMap<String, Vec<String>>,
}

impl EventFilter {
    /// Parses `{"event":["start"]}` or Docker CLI's `{"event":{"start":true}}`.
    pub fn parse(raw: Option<&str>) -> Result<Self, DaemonError> {
        let keys = parse_filters(
            raw,
            &["type", "event", "container", "image", "label", "network"],
        )?;
        Ok(Self { keys })
    }

    fn matches(&self, m: &EventMessage) -> bool {
        let attr = |k: &str| m.actor.attributes.get(k).map(String::as_str);
        self.keys.iter().all(|(key, values)| {
            values.iter().any(|v| match key.as_str() {
                "type" => m.kind == *v,
                "event" => m.action == *v || m.action.split(':').next() == Some(v.as_str()),
                "container" => {
                    m.kind == "container"
                        && (m.actor.id.starts_with(v.as_str()) || attr("name") == Some(v))
                }
                "image" => {
                    attr("image") == Some(v)
                        || (m.kind == "image" && (m.actor.id == *v || attr("name") == Some(v)))
                }
                // dockerd's fuzzy match: a prefix of the network's ID or name.
                "network" => {
                    m.kind == "network"
                        && (m.actor.id.starts_with(v.as_str())
                            || attr("name").is_some_and(|n| n.starts_with(v.as_str())))
                }
                "label" => match v.split_once('=') {
                    Some((k, want)) => attr(k) == Some(want),
                    None => attr(v).is_some(),
                },
                _ => false,
            })
        })
    }
}

/// A `since`/`until` value: Unix seconds with an optional fraction; empty
/// is no bound.
fn parse_time(key: &str, raw: Option<&str>) -> Result<Option<i128>, DaemonError> {
    let Some(raw) = raw.filter(|r| !r.is_empty()) else {
        return Ok(None);
    };
    wrun_api::time::unix_nanos(raw).map(Some).ok_or_else(|| {
        DaemonError::invalid(format!("invalid {key} {raw:?}: expected Unix seconds"))
    })
}

fn line(m: &EventMessage) -> Option<Bytes> {
    let mut bytes = serde_json::to_vec(m).ok()?;
    bytes.push(b'\n');
    Some(Bytes::from(bytes))
}

/// `GET /events?since=&until=&filters=`: the kept events from `since`, then
/// live ones until `until` (or until the client goes away).
pub fn stream(log: &EventLog, query: &Query) -> Result<Response<Body>, DaemonError> {
    let since = parse_time("since", query.get("since"))?;
    let until = parse_time("until", query.get("until"))?;
    let filter = EventFilter::parse(query.get("filters"))?;
    let now = OffsetDateTime::now_utc().unix_timestamp_nanos();
    let in_range = move |m: &EventMessage| {
        let t = i128::from(m.time_nano);
        since.is_none_or(|s| t >= s) && until.is_none_or(|u| t <= u)
    };
    let (backlog, mut live, last_seq) = {
        let ring = log.lock();
        let backlog: Vec<Arc<EventMessage>> = if since.is_some() {
            ring.kept
                .iter()
                .filter(|r| in_range(&r.message) && filter.matches(&r.message))
                .map(|r| Arc::clone(&r.message))
                .collect()
        } else {
            Vec::new()
        };
        (backlog, log.live.subscribe(), ring.next_seq)
    };
    let (tx, response) = streaming("application/json");
    let deadline = until.map(|u| {
        let wait = u64::try_from((u - now).max(0)).unwrap_or(u64::MAX);
        tokio::time::Instant::now() + std::time::Duration::from_nanos(wait)
    });
    tokio::spawn(async move {
        for m in backlog {
            let Some(b) = line(&m) else { continue };
            if tx.send(b).await.is_err() {
                return;
            }
        }
        let until_passed = async {
            match deadline {
                Some(d) => tokio::time::sleep_until(d).await,
                None => std::future::pending().await,
            }
        };
        tokio::pin!(until_passed);
        loop {
            let r = tokio::select! {
                _ = &mut until_passed => return,
                _ = tx.closed() => return,
                r = live.recv() => r,
            };
            match r {
                Ok(r)
                    if r.seq >= last_seq && in_range(&r.message) && filter.matches(&r.message) =>
                {
                    let Some(b) = line(&r.message) else { continue };
                    if tx.send(b).await.is_err() {
                        return;
                    }
                }
                Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {}
                Err(broadcast::error::RecvError::Closed) => return,
            }
        }
    });
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(action: &str, name: &str) -> EventMessage {
        let mut attributes = BTreeMap::new();
        attributes.insert("name".to_string(), name.to_string());
        attributes.insert("image".to_string(), "idle:1.0".to_string());
        EventMessage {
            kind: "container".into(),
            action: action.into(),
            actor: EventActor {
                id: "abc123".into(),
                attributes,
            },
            ..EventMessage::default()
        }
    }

    #[test]
    fn filters_in_both_docker_forms() {
        let f =
            EventFilter::parse(Some(r#"{"event":{"start":true},"container":["web1"]}"#)).unwrap();
        assert!(f.matches(&event("start", "web1")));
        assert!(!f.matches(&event("die", "web1")));
        assert!(!f.matches(&event("start", "web2")));
        let by_id =
            EventFilter::parse(Some(r#"{"container":["abc"],"type":["container"]}"#)).unwrap();
        assert!(by_id.matches(&event("die", "x")));
        let exec = EventFilter::parse(Some(r#"{"event":["kill"]}"#)).unwrap();
        assert!(exec.matches(&event("kill", "x")));
        assert!(EventFilter::parse(Some(r#"{"nope":["x"]}"#)).is_err());
        assert!(EventFilter::parse(Some("[1]")).is_err());
        assert!(EventFilter::parse(Some(r#"{"event":[1]}"#)).is_err());
    }

    #[test]
    fn times_are_unix_seconds_with_a_fraction() {
        assert_eq!(
            parse_time("since", Some("12")).unwrap(),
            Some(12_000_000_000)
        );
        assert_eq!(
            parse_time("since", Some("1.5")).unwrap(),
            Some(1_500_000_000)
        );
        assert_eq!(parse_time("since", None).unwrap(), None);
        assert!(parse_time("since", Some("10m")).is_err());
        assert!(parse_time("since", Some("1.0000000001")).is_err());
    }

    #[test]
    fn container_events_carry_the_labels_under_their_own_attributes() {
        let log = EventLog::default();
        let subject = ContainerSubject {
            name: "web".into(),
            image: "idle:1.0".into(),
            labels: BTreeMap::from([
                ("tier".to_string(), "front".to_string()),
                ("name".to_string(), "a label".to_string()),
            ]),
        };
        log.container("die", "abc", &subject, &[("exitCode", "0".into())]);
        let ring = log.lock();
        let attrs = &ring.kept.back().unwrap().message.actor.attributes;
        assert_eq!(attrs["tier"], "front");
        assert_eq!(attrs["name"], "web");
        assert_eq!(attrs["image"], "idle:1.0");
        assert_eq!(attrs["exitCode"], "0");
        let f = EventFilter::parse(Some(r#"{"label":["tier=front"]}"#)).unwrap();
        assert!(f.matches(&ring.kept.back().unwrap().message));
    }

    #[test]
    fn network_events_read_as_dockerds_and_filter_by_network() {
        let log = EventLog::default();
        log.network("connect", "4e40574711", "front", Some("fe3cb95a"));
        log.network("create", "c0c8e21da3", "back", None);
        let ring = log.lock();
        let connect = &ring.kept.front().unwrap().message;
        let line: serde_json::Value = serde_json::to_value(connect.as_ref()).unwrap();
        // dockerd's keys exactly: no status, id or from for a network.
        let mut keys: Vec<&str> = line
            .as_object()
            .unwrap()
            .keys()
            .map(|k| k.as_str())
            .collect();
        keys.sort_unstable();
        assert_eq!(
            keys,
            ["Action", "Actor", "Type", "scope", "time", "timeNano"]
        );
        assert_eq!(
            line["Actor"],
            serde_json::json!({"ID": "4e40574711", "Attributes":
                {"container": "fe3cb95a", "name": "front", "type": "bridge"}})
        );
        let by_name = EventFilter::parse(Some(r#"{"network":["fro"]}"#)).unwrap();
        let by_id = EventFilter::parse(Some(r#"{"network":["c0c8"]}"#)).unwrap();
        let created = &ring.kept.back().unwrap().message;
        assert!(by_name.matches(connect) && !by_name.matches(created));
        assert!(by_id.matches(created) && !by_id.matches(connect));
        // A container filter does not take a network event naming it.
        let container = EventFilter::parse(Some(r#"{"container":["fe3c"]}"#)).unwrap();
        assert!(!container.matches(connect));
        assert!(!by_name.matches(&event("start", "front")));
    }

    #[test]
    fn the_ring_is_bounded() {
        let log = EventLog::default();
        for _ in 0..KEPT + 10 {
            log.container("start", "abc", &ContainerSubject::default(), &[]);
        }
        let ring = log.lock();
        assert_eq!(ring.kept.len(), KEPT);
        assert_eq!(ring.kept.front().map(|r| r.seq), Some(10));
    }
}
