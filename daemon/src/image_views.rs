//! The image service's views: the Docker-shaped image documents built from
//! store records, the same for the daemon's routes and the CLI's local store.

use std::collections::{BTreeMap, HashMap};

use anyhow::Context;
use time::OffsetDateTime;
use wrun_api::parse::{Filters, glob_match};
use wrun_image::{ImageRecord, ImageRef, Store};

use wrun_api::images::{
    Descriptor, EmptyObject, HistoryItem, ImageConfig, ImageInspect, ImageMetadata, ImageSummary,
    RootFs, WasmModule,
};

fn unix(rfc3339: Option<&str>) -> i64 {
    wrun_api::time::unix_seconds(rfc3339).unwrap_or(0)
}

fn repo_digests(record: &ImageRecord) -> Vec<String> {
    let mut repos: Vec<String> = record
        .names
        .iter()
        .filter_map(|n| {
            n.rsplit_once(':')
                .map(|(r, _)| format!("{r}@{}", record.digest))
        })
        .collect();
    repos.dedup();
    repos
}

/// The stored image `name` names; dockerd's 400 with its words when `name`
/// is neither an ID nor a reference ([`check_reference`]), its 404 `No such
/// image: NAME` when no image has it.
pub fn find(store: &Store, name: &str) -> Result<ImageRecord, crate::DaemonError> {
    check_reference(name)?;
    store.find(name).map_err(|e| {
        if e.is_not_found() {
            crate::DaemonError::no_such_image(name)
        } else {
            crate::DaemonError::from(anyhow::Error::from(e))
        }
    })
}

/// The stored image a create names: `name` itself, else, for a name
/// without a registry and a configured `default-registry`, the name a pull
/// of it stores (`DEFAULT/NAME`): docker run's pull after a 404 and its
/// second create find the image pulled. Blocking (reads the configuration).
pub fn find_for_create(store: &Store, name: &str) -> Result<ImageRecord, crate::DaemonError> {
    use wrun_image::registry::{RegistryConfig, wrun_config_dir};
    let missing = match find(store, name) {
        Err(e @ crate::DaemonError::NotFound(_)) => e,
        found => return found,
    };
    if name
        .parse::<ImageRef>()
        .map_or(true, |r| r.registry().is_some())
    {
        return Err(missing);
    }
    let config = wrun_config_dir()
        .and_then(|dir| RegistryConfig::load(&dir))
        .map_err(|e| crate::DaemonError::Internal(crate::error::describe_error(&e)))?;
    let Some(full) = config
        .default_registry
        .is_some()
        .then(|| config.remote_ref(name).ok())
        .flatten()
    else {
        return Err(missing);
    };
    match store.find(&full.to_string()) {
        Ok(record) => Ok(record),
        Err(e) if e.is_not_found() => Err(missing),
        Err(e) => Err(crate::DaemonError::from(anyhow::Error::from(e))),
    }
}

pub fn inspect(store: &Store, record: &ImageRecord) -> anyhow::Result<ImageInspect> {
    let config = store
        .config(record)
        .with_context(|| format!("reading the config of image {}", record.id.short()))?;
    let c = config.config().clone().unwrap_or_default();
    let set = |v: &Option<Vec<String>>| {
        v.as_ref().map(|items| {
            items
                .iter()
                .map(|i| (i.clone(), EmptyObject {}))
                .collect::<BTreeMap<_, _>>()
        })
    };
    let origin = wrun_image::commit::origin(store, record)
        .with_context(|| format!("reading the config of image {}", record.id.short()))?;
    Ok(ImageInspect {
        id: record.id.to_string(),
        repo_tags: record.names.clone(),
        repo_digests: repo_digests(record),
        parent: parent(store, record)
            .map(|p| p.id.to_string())
            .unwrap_or_default(),
        // dockerd's: the comment of the image's own (last) history entry
        // (`commit -m`, `import -m`).
        comment: config
            .history()
            .as_ref()
            .and_then(|h| h.last())
            .and_then(|h| h.comment().clone())
            .unwrap_or_default(),
        created: record.created.clone().unwrap_or_default(),
        container: origin.container,
        // What a loaded image's config holds there may not be a config.
        container_config: origin
            .container_config
            .and_then(|c| serde_json::from_value(c).ok())
            .unwrap_or_default(),
        docker_version: String::new(),
        author: config.author().clone().unwrap_or_default(),
        config: ImageConfig {
            user: c.user().clone().unwrap_or_default(),
            exposed_ports: set(c.exposed_ports()),
            env: c.env().clone(),
            cmd: c.cmd().clone(),
            volumes: set(c.volumes()),
            working_dir: c.working_dir().clone().unwrap_or_default(),
            entrypoint: c.entrypoint().clone(),
            labels: c.labels().clone().map(|l| l.into_iter().collect()),
        },
        architecture: record.architecture.clone(),
        os: record.os.clone(),
        size: record.size,
        root_fs: RootFs {
            kind: "layers".into(),
            layers: config.rootfs().diff_ids().clone(),
        },
        metadata: ImageMetadata {
            last_tag_time: record.last_tagged.clone(),
        },
        descriptor: manifest_descriptor(store, record),
        wasm: record.module.as_ref().map(|m| WasmModule {
            path: m.path.clone(),
            kind: m.kind.oci_os().into(),
            digest: m.digest.to_string(),
            size: m.size,
        }),
    })
}

/// Newest first, as `docker history` lists; layer sizes come from the
/// snapshot, entries without a layer are 0 bytes.
pub fn history(store: &Store, record: &ImageRecord) -> anyhow::Result<Vec<HistoryItem>> {
    let config = store
        .config(record)
        .with_context(|| format!("reading the config of image {}", record.id.short()))?;
    let sizes: Vec<u64> = match record.chain_id {
        Some(chain) => store
            .snapshot_meta(&chain)
            .map(|m| m.layers.iter().map(|l| l.size).collect())
            .unwrap_or_default(),
        None => Vec::new(),
    };
    let mut layer = 0;
    let mut items = Vec::new();
    for h in config.history().clone().unwrap_or_default() {
        let empty = h.empty_layer().unwrap_or(false);
        let size = if empty {
            0
        } else {
            let s = sizes.get(layer).copied().unwrap_or(0);
            layer += 1;
            s
        };
        items.push(HistoryItem {
            id: "<missing>".into(),
            created: unix(h.created().as_deref()),
            created_by: h.created_by().clone().unwrap_or_default(),
            tags: Vec::new(),
            size,
            comment: h.comment().clone().unwrap_or_default(),
        });
    }
    items.reverse();
    // dockerd's IDs: the image's own on the top row, its parent's on the
    // next, and so on up the chain of images committed here, one row each
    // whatever rows each added; the rows below stay `<missing>` (a loaded
    // or pulled image has no parent).
    let mut image = Some(record.clone());
    for item in &mut items {
        let Some(this) = image.take() else { break };
        item.id = this.id.to_string();
        item.tags = this.names.clone();
        image = parent(store, &this);
    }
    Ok(items)
}

/// The image `record` was committed from, while the store still has it.
fn parent(store: &Store, record: &ImageRecord) -> Option<ImageRecord> {
    store.find(&record.parent?.to_string()).ok()
}

/// The filters `GET /images/json` (and `wrun images` on a store) take.
pub const LIST_FILTERS: &[&str] = &["before", "dangling", "label", "reference", "since", "until"];

/// dockerd's 400 for a name that is no image reference (`ParseAnyReference`,
/// its words), given to an image route or as a `before`/`since` value: an
/// uppercase letter after the registry, a name over 255 characters, or any
/// other malformed name. A well-formed name no image has is the lookup's 404.
fn check_reference(name: &str) -> Result<(), crate::DaemonError> {
    let is_id = name.len() == 64 && name.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
    if is_id || name.parse::<ImageRef>().is_ok() {
        return Ok(());
    }
    let remainder = match name.split_once('/') {
        Some((first, rest)) if first.contains(['.', ':']) || first == "localhost" => rest,
        _ => name,
    };
    let repository = remainder.split_once('@').map_or(remainder, |(r, _)| r);
    let repository = match repository.rsplit_once(':') {
        Some((r, tag)) if !tag.contains('/') => r,
        _ => repository,
    };
    Err(crate::DaemonError::invalid(
        if remainder.bytes().any(|b| b.is_ascii_uppercase()) {
            "invalid reference format: repository name must be lowercase"
        } else if name.len() - remainder.len() + repository.len() > 255 {
            "repository name must not be more than 255 characters"
        } else {
            "invalid reference format"
        },
    ))
}

/// `GET /images/json`: the images `filters` select, newest first, as
/// Docker lists them. `reference` globs (Go's `path.Match`) against
/// `repo:tag` or `repo` and keeps only the names that match; `dangling`
/// takes the images without a name (`true`) or with one (`false`);
/// `label` needs every label given; `before`/`since` are images (by name
/// or ID) whose creation time bounds the list, `until` a time (Unix
/// seconds, RFC 3339, a date, or a duration before now). wrun has no
/// intermediate images, so Docker's `all` changes nothing.
///
/// With `shared_size`, each row's `SharedSize` is the size of its layers
/// (as a stack from the base) that another image also has, as Docker
/// counts it; otherwise -1 (not computed).
pub fn list(
    store: &Store,
    filters: &Filters,
    shared_size: bool,
) -> Result<Vec<ImageSummary>, crate::DaemonError> {
    use crate::DaemonError;
    filters
        .validate(LIST_FILTERS)
        .map_err(DaemonError::invalid)?;
    let dangling = filters
        .bool_value("dangling")
        .map_err(DaemonError::invalid)?;
    let created_of = |name: &str| -> Result<Option<OffsetDateTime>, DaemonError> {
        check_reference(name)?;
        Ok(find(store, name)?
            .created
            .as_deref()
            .and_then(wrun_api::time::parse))
    };
    // Several values narrow the list: the oldest `before`, the newest `since`.
    let mut before: Option<OffsetDateTime> = None;
    for v in filters.values("before") {
        if let Some(t) = created_of(v)? {
            before = Some(before.map_or(t, |b| b.min(t)));
        }
    }
    for v in filters.values("until") {
        let t = point_in_time(v)
            .ok_or_else(|| DaemonError::invalid(format!("Invalid filter 'until={v}'")))?;
        before = Some(before.map_or(t, |b| b.min(t)));
    }
    let mut since: Option<OffsetDateTime> = None;
    for v in filters.values("since") {
        if let Some(t) = created_of(v)? {
            since = Some(since.map_or(t, |s| s.max(t)));
        }
    }
    let patterns: Vec<&str> = filters.values("reference").collect();
    let matches = |candidates: [&str; 2]| -> Result<bool, DaemonError> {
        for p in &patterns {
            for c in candidates {
                if glob_match(p, c).map_err(DaemonError::invalid)? {
                    return Ok(true);
                }
            }
        }
        Ok(false)
    };
    let records = store
        .images()
        .map_err(|e| DaemonError::from(anyhow::Error::from(e)))?;
    let mut rows = Vec::new();
    for record in &records {
        let created = record.created.as_deref().and_then(wrun_api::time::parse);
        // With a bound, an image without a creation time is outside it.
        let after_since = since.is_none_or(|s| created.is_some_and(|c| c > s));
        let before_bound = before.is_none_or(|b| created.is_some_and(|c| c < b));
        if !(after_since && before_bound) {
            continue;
        }
        let labels: BTreeMap<String, String> = store
            .config(record)
            .ok()
            .and_then(|c| c.config().clone())
            .and_then(|c| c.labels().clone())
            .map(|l| l.into_iter().collect())
            .unwrap_or_default();
        if !filters.match_labels("label", |k| labels.get(k).map(String::as_str)) {
            continue;
        }
        let mut tags = Vec::new();
        let mut digests = Vec::new();
        for name in &record.names {
            let repo = name.rsplit_once(':').map_or(name.as_str(), |(r, _)| r);
            let digest_ref = format!("{repo}@{}", record.digest);
            let tag_wanted = patterns.is_empty() || matches([name, repo])?;
            let digest_wanted = patterns.is_empty() || matches([&digest_ref, repo])?;
            if tag_wanted {
                tags.push(name.clone());
            }
            if digest_wanted && !digests.contains(&digest_ref) {
                digests.push(digest_ref);
            }
        }
        let unnamed = tags.is_empty() && digests.is_empty();
        let skip = if unnamed {
            dangling == Some(false) || !patterns.is_empty()
        } else {
            dangling == Some(true) && !tags.is_empty()
        };
        if skip {
            continue;
        }
        rows.push(summary(store, record, tags, digests, labels));
    }
    if shared_size {
        fill_shared_sizes(store, &records, &mut rows);
    }
    // Newest first; the store's order (last added first) among equals.
    rows.sort_by_key(|r| std::cmp::Reverse(r.created));
    Ok(rows)
}

/// Docker's `SharedSize`: a layer counts when the stack up to it (the
/// layers below included) is in more than one image.
fn fill_shared_sizes(store: &Store, records: &[ImageRecord], rows: &mut [ImageSummary]) {
    // Each image's layers as (the stack up to the layer, the layer's size).
    let stacks: HashMap<String, Vec<(String, u64)>> = records
        .iter()
        .map(|r| {
            let layers = r
                .chain_id
                .and_then(|chain| store.snapshot_meta(&chain).ok())
                .map(|meta| meta.layers)
                .unwrap_or_default();
            let mut stack = String::new();
            let prefixes = layers
                .iter()
                .map(|l| {
                    stack.push_str(&l.diff_id.to_string());
                    stack.push(' ');
                    (stack.clone(), l.size)
                })
                .collect();
            (r.id.to_string(), prefixes)
        })
        .collect();
    let mut users: HashMap<&str, usize> = HashMap::new();
    for prefixes in stacks.values() {
        for (prefix, _) in prefixes {
            *users.entry(prefix.as_str()).or_default() += 1;
        }
    }
    for row in rows {
        let shared: u64 = stacks
            .get(&row.id)
            .into_iter()
            .flatten()
            .filter(|(prefix, _)| users.get(prefix.as_str()).is_some_and(|&n| n > 1))
            .map(|(_, size)| size)
            .sum();
        row.shared_size = i64::try_from(shared).unwrap_or(i64::MAX);
    }
}

/// A `since`/`until` value as Docker reads it: a duration before now
/// (`10m`, `1h30m`), an RFC 3339 time, a date, or Unix seconds.
fn point_in_time(value: &str) -> Option<OffsetDateTime> {
    let now = OffsetDateTime::now_utc();
    if value.ends_with(|c: char| c.is_ascii_alphabetic()) && !value.contains(['-', ':']) {
        let mut total = std::time::Duration::ZERO;
        let mut rest = value;
        while !rest.is_empty() {
            let unit_at = rest.find(|c: char| c.is_ascii_alphabetic())?;
            let unit_end = rest[unit_at..]
                .find(|c: char| !c.is_ascii_alphabetic())
                .map_or(rest.len(), |n| unit_at + n);
            total += wrun_api::parse::parse_duration(&rest[..unit_end]).ok()?;
            rest = &rest[unit_end..];
        }
        return Some(now - total);
    }
    if let Some(t) = wrun_api::time::parse(value) {
        return Some(t);
    }
    if value.len() == 10 && value.as_bytes()[4] == b'-' {
        return wrun_api::time::parse(&format!("{value}T00:00:00Z"));
    }
    let secs: f64 = value.parse().ok()?;
    OffsetDateTime::from_unix_timestamp_nanos((secs * 1e9) as i128).ok()
}

/// An element of `GET /images/json`, with the names the filters kept.
fn summary(
    store: &Store,
    record: &ImageRecord,
    repo_tags: Vec<String>,
    repo_digests: Vec<String>,
    labels: BTreeMap<String, String>,
) -> ImageSummary {
    ImageSummary {
        id: record.id.to_string(),
        parent_id: parent(store, record)
            .map(|p| p.id.to_string())
            .unwrap_or_default(),
        repo_tags,
        repo_digests,
        created: unix(record.created.as_deref()),
        size: i64::try_from(record.size).unwrap_or(i64::MAX),
        shared_size: -1,
        labels: Some(labels).filter(|l| !l.is_empty()),
        containers: -1,
        descriptor: Some(manifest_descriptor(store, record)),
        wrun_created: record.created.clone(),
    }
}

/// The OCI descriptor of an image's manifest.
fn manifest_descriptor(store: &Store, record: &ImageRecord) -> Descriptor {
    Descriptor {
        media_type: wrun_image::document::OCI_MANIFEST.into(),
        digest: record.digest.to_string(),
        size: std::fs::metadata(store.blob_path(&record.digest))
            .map(|m| m.len())
            .unwrap_or(0),
    }
}

#[cfg(test)]
mod tests {
    use super::{check_reference, point_in_time};
    use time::OffsetDateTime;

    #[test]
    fn references_dockerd_refuses_are_refused_in_its_words() {
        let words = |name: &str| check_reference(name).err().map(|e| e.message().to_string());
        for fine in [
            "hello",
            "hello:1.0",
            "abcdef",
            "sha256:abc",
            "localhost:5000/a/b:v2",
        ] {
            assert_eq!(words(fine), None, "{fine}");
        }
        let invalid = Some("invalid reference format".to_string());
        let lowercase =
            Some("invalid reference format: repository name must be lowercase".to_string());
        assert_eq!(words("bad ref!"), invalid);
        assert_eq!(words(""), invalid);
        assert_eq!(words("a:-x"), invalid);
        assert_eq!(words("abc@sha256:abc"), invalid);
        assert_eq!(words("BAD ref!"), lowercase);
        assert_eq!(words("ABC"), lowercase);
        assert_eq!(words("Bad:Tag"), lowercase);
        assert_eq!(
            words(&"a".repeat(300)),
            Some("repository name must not be more than 255 characters".to_string())
        );
    }

    #[test]
    fn until_reads_dockers_time_forms() {
        let at = |v: &str| point_in_time(v).map(OffsetDateTime::unix_timestamp);
        assert_eq!(at("1500"), Some(1500));
        assert_eq!(at("1500.5"), Some(1500));
        assert_eq!(at("1970-01-01T00:25:00Z"), Some(1500));
        assert_eq!(at("1970-01-02"), Some(86_400));
        let now = OffsetDateTime::now_utc().unix_timestamp();
        let ten_minutes_ago = at("10m").unwrap();
        assert!((now - 600 - 5..=now - 600).contains(&ten_minutes_ago));
        let ninety_ago = at("1h30m").unwrap();
        assert!((now - 5400 - 5..=now - 5400).contains(&ninety_ago));
        for bad in ["soon", "10x", "", "1970-13-45"] {
            assert_eq!(at(bad), None, "{bad}");
        }
    }
}
