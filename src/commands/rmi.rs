//! `wrun rmi`: remove names, and images with no name left.

use std::path::Path;
use std::process::ExitCode;

use clap::Args;
use hyper::Method;

use super::ImageBackend;
use wrun_api::images::ImageDeleteItem;

#[derive(Debug, Args)]
pub struct RmiArgs {
    /// Force removal of the image (all its names)
    #[arg(short = 'f', long)]
    pub force: bool,
    #[arg(required = true, value_name = "IMAGE")]
    pub images: Vec<String>,
}

pub fn run(root: &Path, host: Option<&str>, args: RmiArgs) -> anyhow::Result<ExitCode> {
    let store = match ImageBackend::choose(root, host)? {
        ImageBackend::Local(store) => store,
        // The daemon keeps the images of its instances unless forced.
        ImageBackend::Api(client) => {
            return super::for_each(&args.images, |name| {
                let path = format!(
                    "/images/{}?force={}",
                    super::escape(name),
                    u8::from(args.force)
                );
                let items: Vec<ImageDeleteItem> = client.json(Method::DELETE, &path, None)?;
                for item in items {
                    if let Some(u) = item.untagged {
                        println!("Untagged: {u}");
                    }
                    if let Some(d) = item.deleted {
                        println!("Deleted: {d}");
                    }
                }
                Ok(())
            });
        }
    };
    let mut failed = false;
    // The images of recorded instances (running or not) are kept unless forced.
    let in_use = wrun_daemon::images_in_use_on_disk(&store);
    for name in &args.images {
        match store.remove(name, args.force, &in_use) {
            Ok(outcome) => {
                for u in outcome.untagged {
                    println!("Untagged: {u}");
                }
                for d in outcome.deleted {
                    println!("Deleted: {}", d.id);
                }
            }
            Err(e) => {
                eprintln!("Error: {e}");
                failed = true;
            }
        }
    }
    Ok(if failed {
        ExitCode::from(super::EXIT_FAILURE)
    } else {
        ExitCode::SUCCESS
    })
}
