//! `wrun commit`: a new image of an instance's writable layer over its
//! image, through the daemon's `POST /commit` (as `docker commit`).

use std::process::ExitCode;

use anyhow::bail;
use clap::{ArgAction, Args};
use hyper::Method;
use wrun_api::images::CommitResponse;
use wrun_image::ImageRef;

use super::DaemonTarget;

#[derive(Debug, Args)]
pub struct CommitArgs {
    /// Author (e.g., "John Hannibal Smith <hannibal@a-team.com>")
    #[arg(short = 'a', long)]
    pub author: Option<String>,
    /// Apply Dockerfile instruction to the created image (CMD, ENTRYPOINT,
    /// ENV, EXPOSE, LABEL, USER, VOLUME, WORKDIR)
    #[arg(short = 'c', long = "change", value_name = "CHANGE")]
    pub changes: Vec<String>,
    /// Commit message
    #[arg(short = 'm', long)]
    pub message: Option<String>,
    /// Pause the instance during commit
    #[arg(short = 'p', long, default_value_t = true, action = ArgAction::Set, value_name = "BOOL")]
    pub pause: bool,
    #[arg(value_name = "CONTAINER")]
    pub container: String,
    #[arg(value_name = "REPOSITORY[:TAG]")]
    pub repository: Option<String>,
}

pub fn run(target: &DaemonTarget, args: CommitArgs) -> anyhow::Result<ExitCode> {
    let path = commit_path(&args)?;
    let answer: CommitResponse = target.client()?.json(Method::POST, &path, None)?;
    println!("{}", answer.id);
    Ok(ExitCode::SUCCESS)
}

/// The request: the name split into `repo` and `tag` as the docker client
/// splits it (and refused as it refuses it, before anything is sent).
fn commit_path(args: &CommitArgs) -> anyhow::Result<String> {
    let mut query = form_urlencoded::Serializer::new(String::new());
    query.append_pair("container", &args.container);
    if let Some(name) = args.repository.as_deref().filter(|n| !n.is_empty()) {
        let r: ImageRef = name.parse()?;
        if r.digest.is_some() {
            bail!("invalid reference format: {name:?} names a digest; give REPOSITORY[:TAG]");
        }
        query.append_pair("repo", &r.repository);
        query.append_pair("tag", r.tag.as_deref().unwrap_or("latest"));
    }
    if let Some(m) = &args.message {
        query.append_pair("comment", m);
    }
    if let Some(a) = &args.author {
        query.append_pair("author", a);
    }
    query.append_pair("pause", if args.pause { "1" } else { "0" });
    for c in &args.changes {
        query.append_pair("changes", c);
    }
    Ok(format!("/commit?{}", query.finish()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(repository: Option<&str>) -> CommitArgs {
        CommitArgs {
            author: None,
            changes: vec!["ENV A=1".into(), r#"CMD ["/x.wasm"]"#.into()],
            message: Some("a b".into()),
            pause: false,
            container: "c1".into(),
            repository: repository.map(String::from),
        }
    }

    #[test]
    fn the_name_is_split_and_every_flag_sent() {
        let path = commit_path(&args(Some("reg.example:5000/app:v1"))).unwrap();
        assert_eq!(
            path,
            "/commit?container=c1&repo=reg.example%3A5000%2Fapp&tag=v1&comment=a+b&pause=0&changes=ENV+A%3D1&changes=CMD+%5B%22%2Fx.wasm%22%5D"
        );
        assert!(commit_path(&args(None)).unwrap().find("repo=").is_none());
        assert!(commit_path(&args(Some("Bad:1"))).is_err());
    }
}
