//! `POST /commit` (`docker commit`): an instance's writable layer as a new
//! image on top of its own, with Docker's config rules and events.

use std::sync::Arc;

use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use wrun_api::containers::ContainerConfig;
use wrun_api::images::{CommitResponse, EmptyObject};
use wrun_image::ImageRef;
use wrun_image::commit::{CommitOrigin, CommitSpec};
use wrun_image::oci_spec::image::Config;

use crate::error::DaemonError;
use crate::events::ContainerSubject;
use crate::http::{Body, Query, json, parse_json, read_body};
use crate::instance::Container;
use crate::lifecycle::Status;
use crate::state::Daemon;

/// A commit request, parsed and checked before anything is touched.
struct CommitRequest {
    container: String,
    names: Vec<ImageRef>,
    /// The name as the answer's event shows it (`repo:tag`), if any.
    reference: Option<String>,
    comment: Option<String>,
    author: Option<String>,
    pause: bool,
    changes: Vec<String>,
    /// The body's config; `None`: the instance's.
    config: Option<ContainerConfig>,
}

impl CommitRequest {
    fn parse(query: &Query, body: &[u8]) -> Result<Self, DaemonError> {
        let container = query.get("container").unwrap_or_default().to_string();
        if container.is_empty() {
            return Err(DaemonError::invalid(format!(
                "invalid name or ID supplied: {container:?}"
            )));
        }
        let reference = image_name(
            query.get("repo").unwrap_or_default(),
            query.get("tag").unwrap_or_default(),
        )?;
        let names = match &reference {
            Some(name) => vec![
                name.parse::<ImageRef>()
                    .map_err(|e| DaemonError::invalid(e.to_string()))?,
            ],
            None => Vec::new(),
        };
        // dockerd's default is to pause; `pause=` given empty is false.
        let pause = query.get("pause").is_none() || query.flag("pause");
        let config = if body.iter().all(u8::is_ascii_whitespace) || body.trim_ascii() == b"null" {
            None
        } else {
            Some(parse_json::<ContainerConfig>(body)?)
        };
        Ok(CommitRequest {
            container,
            names,
            reference,
            comment: query.get("comment").map(str::to_string),
            author: query.get("author").map(str::to_string),
            pause,
            changes: query.all("changes").into_iter().map(String::from).collect(),
            config,
        })
    }
}

/// `repo` and `tag` as one name (`None`: no name), checked as dockerd
/// checks them: a tag alone, a tag with a `:` or a digest are refused.
pub(crate) fn image_name(repo: &str, tag: &str) -> Result<Option<String>, DaemonError> {
    let repo = crate::images::familiar(repo);
    if repo.is_empty() {
        if !tag.is_empty() {
            return Err(DaemonError::invalid(
                "invalid reference format: a tag needs a repository name",
            ));
        }
        return Ok(None);
    }
    if tag.contains(':') || tag.contains('@') {
        return Err(DaemonError::invalid("invalid tag format"));
    }
    let name = if tag.is_empty() {
        repo.to_string()
    } else {
        format!("{repo}:{tag}")
    };
    let parsed: ImageRef = name
        .parse()
        .map_err(|e: wrun_image::ImageError| DaemonError::invalid(e.to_string()))?;
    if parsed.digest.is_some() {
        return Err(DaemonError::invalid(format!(
            "refusing to create a tag with a digest reference: {name}"
        )));
    }
    Ok(Some(parsed.tagged().name()))
}

/// `POST /commit?container=&repo=&tag=&comment=&author=&pause=&changes=`
/// with an optional container config as the body: 201 `{"Id": …}`.
///
/// The config of the new image is dockerd's: the body's config (else the
/// instance's), the `changes` applied to it, then merged with the
/// instance's. A running instance is paused while its layer is read
/// (unless `pause=0`) and resumed after, as dockerd does; one that serves
/// HTTP cannot be paused (its requests run outside the pause gate), so it
/// is refused unless `pause=0`.
pub async fn commit(
    daemon: &Arc<Daemon>,
    query: &Query,
    req: Request<Incoming>,
) -> Result<Response<Body>, DaemonError> {
    let body = read_body(req).await?;
    let request = CommitRequest::parse(query, &body)?;
    let c = daemon.find(&request.container)?;
    let record = c.record();
    let base_config = request
        .config
        .clone()
        .unwrap_or_else(|| (*record.config).clone());
    let mut config = oci_config(&base_config);
    wrun_image::changes::apply_changes(&mut config, &request.changes)
        .map_err(|e| DaemonError::invalid(e.to_string()))?;
    let merged =
        crate::launch::merge_config(crate::launch::image_defaults(&config), &record.config);
    let spec = CommitSpec {
        config: oci_config(&merged),
        author: request.author.clone(),
        comment: request.comment.clone(),
        // dockerd's: the instance's Cmd.
        created_by: record.config.cmd.clone().unwrap_or_default().join(" "),
        names: request.names.clone(),
        // dockerd's `container` and `container_config`: the instance's ID
        // and its config as inspect shows it (not the merged one).
        origin: CommitOrigin {
            container: c.id.clone(),
            container_config: serde_json::to_value(
                crate::container_inspect::inspect_view(&record).config,
            )
            .ok(),
        },
    };
    let view = daemon.container_rootfs(&c)?;
    let paused = request.pause && pause_for_commit(daemon, &c)?;
    let d = Arc::clone(daemon);
    let image_id = record.image_id.clone();
    let gate = c.lock().gate.clone();
    let committed = tokio::task::spawn_blocking(move || {
        if paused && let Some(gate) = gate {
            gate.settle();
        }
        let base = d
            .store
            .find(&image_id)
            .map_err(|e| anyhow::anyhow!("the image of this instance: {e}"))?;
        wrun_image::commit::commit(&d.store, &base, &view, spec).map_err(|e| {
            DaemonError::from(anyhow::Error::from(e).context("committing the instance"))
        })
    })
    .await;
    if paused {
        // Resumed whatever happened; a run that ended meanwhile has nothing
        // to resume.
        let _ = daemon.unpause(&c);
    }
    let image = committed.map_err(|e| anyhow::anyhow!("committing failed: {e}"))??;
    let id = image.id.to_string();
    if let Some(name) = &request.reference {
        daemon.events.image("tag", &id, name);
    }
    daemon.events.container(
        "commit",
        &c.id,
        &ContainerSubject::of(&c.record()),
        &[
            ("comment", request.comment.clone().unwrap_or_default()),
            ("imageID", id.clone()),
            ("imageRef", request.reference.clone().unwrap_or_default()),
        ],
    );
    Ok(json(StatusCode::CREATED, &CommitResponse { id }))
}

/// Pauses a running instance for a commit; `false` when it does not run
/// (or is paused already: it stays so). One that serves HTTP cannot be.
fn pause_for_commit(daemon: &Daemon, c: &Container) -> Result<bool, DaemonError> {
    let (status, serving) = {
        let inner = c.lock();
        (inner.record.state.status, inner.serving)
    };
    if status != Status::Running {
        return Ok(false);
    }
    if serving {
        return Err(DaemonError::conflict(format!(
            "Container {} serves HTTP and cannot be paused for the commit: commit it with --pause=false",
            c.id
        )));
    }
    match daemon.pause(c) {
        Ok(()) => Ok(true),
        // It ended (or was paused) in between: nothing to pause.
        Err(DaemonError::Conflict(_)) => Ok(false),
        Err(e) => Err(e),
    }
}

/// The image-config fields of a container config.
pub(crate) fn oci_config(c: &ContainerConfig) -> Config {
    let keys = |m: &Option<std::collections::BTreeMap<String, EmptyObject>>| {
        m.as_ref()
            .filter(|m| !m.is_empty())
            .map(|m| m.keys().cloned().collect::<Vec<_>>())
    };
    let mut config = Config::default();
    config.set_user(Some(c.user.clone()).filter(|u| !u.is_empty()));
    config.set_env(c.env.clone().filter(|e| !e.is_empty()));
    config.set_cmd(c.cmd.clone());
    config.set_entrypoint(c.entrypoint.clone());
    config.set_working_dir(Some(c.working_dir.clone()).filter(|w| !w.is_empty()));
    config.set_labels(
        c.labels
            .as_ref()
            .filter(|l| !l.is_empty())
            .map(|l| l.iter().map(|(k, v)| (k.clone(), v.clone())).collect()),
    );
    config.set_exposed_ports(keys(&c.exposed_ports));
    config.set_volumes(keys(&c.volumes));
    config.set_stop_signal(Some(c.stop_signal.clone()).filter(|s| !s.is_empty()));
    config
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repo_and_tag_are_checked_as_dockerd_checks_them() {
        assert_eq!(image_name("", "").unwrap(), None);
        assert_eq!(
            image_name("app", "").unwrap().as_deref(),
            Some("app:latest")
        );
        assert_eq!(image_name("app", "1").unwrap().as_deref(), Some("app:1"));
        assert_eq!(
            image_name("docker.io/library/app", "1").unwrap().as_deref(),
            Some("app:1")
        );
        assert!(
            image_name("Bad", "")
                .unwrap_err()
                .to_string()
                .contains("lowercase")
                || image_name("Bad", "").is_err()
        );
        assert_eq!(
            image_name("app", "a:b").unwrap_err().message(),
            "invalid tag format"
        );
        assert!(image_name("", "1").is_err());
    }

    #[test]
    fn a_config_goes_through_the_image_config_and_back() {
        let c = ContainerConfig {
            env: Some(vec!["A=1".into()]),
            cmd: Some(vec!["x".into()]),
            entrypoint: Some(vec!["/app.wasm".into()]),
            working_dir: "/srv".into(),
            exposed_ports: Some([("80/tcp".to_string(), EmptyObject {})].into()),
            ..ContainerConfig::default()
        };
        let back = crate::launch::image_defaults(&oci_config(&c));
        assert_eq!(back.env, c.env);
        assert_eq!(back.cmd, c.cmd);
        assert_eq!(back.entrypoint, c.entrypoint);
        assert_eq!(back.working_dir, c.working_dir);
        assert_eq!(
            back.exposed_ports
                .map(|p| p.into_keys().collect::<Vec<_>>()),
            Some(vec!["80/tcp".to_string()])
        );
    }
}
