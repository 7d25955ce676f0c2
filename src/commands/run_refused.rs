//! The `docker run` flags that `wrun run`/`create` do not take: each is
//! recognised and refused with the reason, instead of clap's "unexpected
//! argument" and a misleading suggestion (`--cpus` → `--publish`).

use clap::{Arg, ArgAction, ArgMatches, Args, Command, FromArgMatches};

const CPU: &str =
    "an instance's CPU is bounded by --fuel (wasm instructions) and --timeout, not by cgroups";
const NO_DEVICES: &str = "instances have no block devices or device nodes; they see only the directories granted with -v/--mount";
const NO_PROCESS: &str = "an instance is a wasm store inside the daemon, with no Linux process, user, capabilities, kernel namespaces or cgroup of its own";
const NETWORK: &str = "instances have no network interface, address or resolver configuration of their own; outgoing access is granted with --allow-connect/--allow-dns and ports with -p";
const NO_HEALTH: &str = "wrun runs no health checks";
const MEMORY: &str = "an instance's memory is its linear memories and tables, bounded by -m; there is no swap or reservation";

/// Docker's run flags that wrun lacks: (long name, short, takes a value, why).
const REFUSED: &[(&str, Option<char>, bool, &str)] = &[
    (
        "tty",
        Some('t'),
        false,
        "wrun instances have no TTY: output is a plain stream (use -i alone to attach stdin)",
    ),
    ("cpus", None, true, CPU),
    ("cpu-shares", Some('c'), true, CPU),
    ("cpu-count", None, true, CPU),
    ("cpu-percent", None, true, CPU),
    ("cpu-period", None, true, CPU),
    ("cpu-quota", None, true, CPU),
    ("cpu-rt-period", None, true, CPU),
    ("cpu-rt-runtime", None, true, CPU),
    ("cpuset-cpus", None, true, CPU),
    ("cpuset-mems", None, true, CPU),
    ("memory-reservation", None, true, MEMORY),
    ("memory-swap", None, true, MEMORY),
    ("memory-swappiness", None, true, MEMORY),
    ("kernel-memory", None, true, MEMORY),
    ("oom-kill-disable", None, false, MEMORY),
    ("oom-score-adj", None, true, NO_PROCESS),
    ("shm-size", None, true, NO_PROCESS),
    ("blkio-weight", None, true, NO_DEVICES),
    ("blkio-weight-device", None, true, NO_DEVICES),
    ("device", None, true, NO_DEVICES),
    ("device-cgroup-rule", None, true, NO_DEVICES),
    ("device-read-bps", None, true, NO_DEVICES),
    ("device-read-iops", None, true, NO_DEVICES),
    ("device-write-bps", None, true, NO_DEVICES),
    ("device-write-iops", None, true, NO_DEVICES),
    ("io-maxbandwidth", None, true, NO_DEVICES),
    ("io-maxiops", None, true, NO_DEVICES),
    ("gpus", None, true, NO_DEVICES),
    (
        "volume-driver",
        None,
        true,
        "wrun has one volume driver, local (the default): leave --volume-driver out",
    ),
    (
        "volumes-from",
        None,
        true,
        "mount the same volumes by name instead (-v NAME:/path)",
    ),
    ("cap-add", None, true, NO_PROCESS),
    ("cap-drop", None, true, NO_PROCESS),
    ("privileged", None, false, NO_PROCESS),
    ("security-opt", None, true, NO_PROCESS),
    ("user", Some('u'), true, NO_PROCESS),
    ("group-add", None, true, NO_PROCESS),
    ("userns", None, true, NO_PROCESS),
    ("pid", None, true, NO_PROCESS),
    ("ipc", None, true, NO_PROCESS),
    ("uts", None, true, NO_PROCESS),
    ("cgroupns", None, true, NO_PROCESS),
    ("cgroup-parent", None, true, NO_PROCESS),
    ("sysctl", None, true, NO_PROCESS),
    ("ulimit", None, true, NO_PROCESS),
    ("pids-limit", None, true, NO_PROCESS),
    ("init", None, false, NO_PROCESS),
    ("isolation", None, true, NO_PROCESS),
    (
        "runtime",
        None,
        true,
        "wrun is the runtime: every instance is a wasm store in the daemon",
    ),
    ("hostname", None, true, NETWORK),
    ("domainname", None, true, NETWORK),
    ("add-host", None, true, NETWORK),
    ("dns", None, true, NETWORK),
    ("dns-option", None, true, NETWORK),
    ("dns-search", None, true, NETWORK),
    ("ip", None, true, NETWORK),
    ("ip6", None, true, NETWORK),
    ("mac-address", None, true, NETWORK),
    ("link", None, true, NETWORK),
    ("link-local-ip", None, true, NETWORK),
    (
        "expose",
        None,
        true,
        "ports are published with -p; an image's EXPOSE is what -P publishes",
    ),
    ("health-cmd", None, true, NO_HEALTH),
    ("health-interval", None, true, NO_HEALTH),
    ("health-retries", None, true, NO_HEALTH),
    ("health-start-interval", None, true, NO_HEALTH),
    ("health-start-period", None, true, NO_HEALTH),
    ("health-timeout", None, true, NO_HEALTH),
    ("no-healthcheck", None, false, NO_HEALTH),
    (
        "attach",
        Some('a'),
        true,
        "a foreground run always shows stdout and stderr; -i adds stdin",
    ),
    (
        "detach-keys",
        None,
        true,
        "without a TTY there is no key sequence to detach with: use wrun run -d and wrun attach",
    ),
    (
        "sig-proxy",
        None,
        false,
        "a foreground run always stops its instance on Ctrl-C",
    ),
    (
        "cidfile",
        None,
        true,
        "write the ID printed by wrun run -d or wrun create instead",
    ),
    (
        "label",
        Some('l'),
        true,
        "labels are set through the API (docker run -l against wrun daemon), not by wrun run yet",
    ),
    (
        "label-file",
        None,
        true,
        "labels are set through the API (docker run --label-file against wrun daemon), not by wrun run yet",
    ),
    (
        "annotation",
        None,
        true,
        "wrun keeps no OCI annotations for an instance",
    ),
    (
        "log-driver",
        None,
        true,
        "every instance logs to the daemon's json-file-shaped log; only --log-opt max-size is taken",
    ),
    (
        "stop-signal",
        None,
        true,
        "a stop ends the wasm store; there is no signal to choose",
    ),
    (
        "stop-timeout",
        None,
        true,
        "a stop ends the wasm store at once; there is no grace period to set",
    ),
    (
        "platform",
        None,
        true,
        "every wrun image is wasm; there is no platform to pick",
    ),
    (
        "disable-content-trust",
        None,
        false,
        "wrun verifies no image signatures (Docker Content Trust), so there is none to skip",
    ),
    (
        "use-api-socket",
        None,
        false,
        "instances cannot reach the daemon's socket",
    ),
];

/// Which of those flags were given (the first one is refused).
#[derive(Debug, Clone, Default)]
pub struct RefusedFlags {
    given: Vec<&'static str>,
}

impl RefusedFlags {
    /// An error naming the first refused flag given and why, if any was.
    pub fn check(&self, verb: &str) -> anyhow::Result<()> {
        let Some(name) = self.given.first() else {
            return Ok(());
        };
        let reason = REFUSED
            .iter()
            .find(|(long, ..)| long == name)
            .map(|(.., why)| *why)
            .unwrap_or("");
        anyhow::bail!("wrun {verb} does not take --{name}: {reason}")
    }
}

impl FromArgMatches for RefusedFlags {
    fn from_arg_matches(matches: &ArgMatches) -> Result<Self, clap::Error> {
        let given = REFUSED
            .iter()
            .filter(|(long, _, takes_value, _)| {
                if *takes_value {
                    matches
                        .get_many::<String>(long)
                        .is_some_and(|mut v| v.next().is_some())
                } else {
                    matches.get_flag(long)
                }
            })
            .map(|(long, ..)| *long)
            .collect();
        Ok(RefusedFlags { given })
    }

    fn update_from_arg_matches(&mut self, matches: &ArgMatches) -> Result<(), clap::Error> {
        *self = Self::from_arg_matches(matches)?;
        Ok(())
    }
}

impl Args for RefusedFlags {
    fn augment_args(mut cmd: Command) -> Command {
        for (long, short, takes_value, _) in REFUSED {
            let mut arg = Arg::new(*long).long(*long).hide(true);
            if let Some(s) = short {
                arg = arg.short(*s);
            }
            arg = if *takes_value {
                arg.action(ArgAction::Append)
                    .value_name("VALUE")
                    .allow_hyphen_values(true)
            } else {
                // docker's booleans take an optional value (--sig-proxy=false).
                arg.action(ArgAction::SetTrue)
            };
            cmd = cmd.arg(arg);
        }
        cmd
    }

    fn augment_args_for_update(cmd: Command) -> Command {
        Self::augment_args(cmd)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, clap::Parser)]
    struct Probe {
        #[command(flatten)]
        refused: RefusedFlags,
        #[arg(short = 'i')]
        interactive: bool,
    }

    fn refusal(args: &[&str]) -> String {
        use clap::Parser;
        let argv = std::iter::once("wrun").chain(args.iter().copied());
        Probe::try_parse_from(argv)
            .unwrap()
            .refused
            .check("run")
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn docker_flags_are_refused_with_the_reason() {
        assert!(
            refusal(&["-it"])
                .starts_with("wrun run does not take --tty: wrun instances have no TTY")
        );
        assert!(refusal(&["--cpus", "0.5"]).starts_with("wrun run does not take --cpus: "));
        assert!(refusal(&["--cpus=0.5"]).contains("--fuel"));
        assert!(refusal(&["-u", "1000"]).starts_with("wrun run does not take --user: "));
    }

    #[test]
    fn no_refused_flag_is_fine() {
        use clap::Parser;
        let p = Probe::try_parse_from(["wrun", "-i"]).unwrap();
        assert!(p.refused.check("run").is_ok());
        assert!(p.interactive);
    }
}
