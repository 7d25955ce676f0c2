"""Scenarios through the stock docker CLI: run, create/start/attach/wait,
logs, the lifecycle verbs, ps and its filters, inspect, events."""

from __future__ import annotations

import json
import subprocess
import time

from endpoint import Ctx
from normalize import table, text
from registry import CAT, FS_COPY, FSH, HELLO, IDLE, scenario

CLI = "docker CLI"


def inspect(ctx: Ctx, name: str, fmt: str = "{{json .}}") -> object:
    out = ctx.ok("inspect", "-f", fmt, name)
    return json.loads(out)


def detached_idle(ctx: Ctx, name: str, *extra: str, seconds: str | None = None) -> None:
    """`run -d` of the idle image, waiting until it printed `ready`."""
    args = ["run", "-d", "--name", name, "--label", ctx.label, *extra, IDLE]
    if seconds:
        args.append(seconds)
    ctx.ok(*args)
    ctx.until_logs(name, "ready")


# --- run -------------------------------------------------------------------


@scenario("cli.run.foreground", CLI)
def run_foreground(ctx: Ctx):
    """`run --rm` prints the guest's output and exits with its code"""
    ctx.see_result("run", ctx.docker("run", "--rm", HELLO))


@scenario("cli.run.args-replace-cmd", CLI)
def run_args(ctx: Ctx):
    """arguments after the image replace its Cmd"""
    ctx.see_result("run", ctx.docker("run", "--rm", HELLO, "Ann", "Bob"))


@scenario("cli.run.env", CLI)
def run_env(ctx: Ctx):
    """`-e` overrides the image's Env; `--env-file` reads a file"""
    ctx.see_result("run -e", ctx.docker("run", "--rm", "-e", "GREETING=Hey", HELLO, "Cy"))
    f = ctx.tmp / "env"
    f.write_text("# a comment\nGREETING=Howdy\n")
    ctx.see_result("run --env-file", ctx.docker("run", "--rm", "--env-file", str(f), HELLO))


@scenario("cli.run.exit-code", CLI)
def run_exit_code(ctx: Ctx):
    """a failing guest's exit code and stderr come back through `run`"""
    ctx.see_result("run", ctx.docker("run", "--rm", IDLE, "soon"))


@scenario("cli.run.detached", CLI)
def run_detached(ctx: Ctx):
    """`run -d` prints the full ID; inspect, ps and logs see the container"""
    name = ctx.n("d")
    r = ctx.docker("run", "-d", "--name", name, HELLO)
    ctx.see_result("run -d", r)
    ctx.until_state(name, "exited")
    ctx.see("id printed is the container's", r.out.strip() == inspect(ctx, name, "{{json .Id}}"))
    ctx.see_result("logs", ctx.docker("logs", name))
    ctx.see("exit code", inspect(ctx, name, "{{json .State.ExitCode}}"))


@scenario("cli.run.name-conflict", CLI)
def run_name_conflict(ctx: Ctx):
    """a second container with a taken name is refused (125, Docker's words)"""
    name = ctx.n("dup")
    ctx.ok("create", "--name", name, HELLO)
    ctx.see_result("second create", ctx.docker("create", "--name", name, HELLO))
    ctx.see_result("second run", ctx.docker("run", "--name", name, HELLO))


@scenario("cli.run.bad-name", CLI)
def run_bad_name(ctx: Ctx):
    """an invalid container name is refused"""
    ctx.see_result("create", ctx.docker("create", "--name", "-bad/name", HELLO))


@scenario("cli.run.missing-image", CLI)
def run_missing_image(ctx: Ctx):
    """running an image the daemon lacks: the pull fails, `run` exits 125"""
    r = ctx.docker("run", "--rm", f"{ctx.n('nosuch')}:1")
    ctx.see("exit", r.code)
    ctx.see("says it is not local", "Unable to find image" in r.err)


@scenario("cli.run.rm-removes", CLI)
def run_rm_removes(ctx: Ctx):
    """`run --rm` leaves no container behind, also when the guest fails"""
    name = ctx.n("gone")
    ctx.see_result("run", ctx.docker("run", "--rm", "--name", name, IDLE, "bad"))
    ctx.see("left", ctx.docker("ps", "-a", "-q", "--filter", f"name={name}").out.strip())


@scenario("cli.run.stdin", CLI)
def run_stdin(ctx: Ctx):
    """`run -i` feeds the client's stdin to the guest and closes it at EOF"""
    ctx.see_result("run -i", ctx.docker("run", "--rm", "-i", CAT, stdin="one\ntwo\n"))


@scenario("cli.run.no-stdin", CLI)
def run_no_stdin(ctx: Ctx):
    """without `-i` the guest's stdin is empty"""
    ctx.see_result("run", ctx.docker("run", "--rm", CAT, stdin="ignored\n"))


@scenario("cli.run.tty", CLI)
def run_tty(ctx: Ctx):
    """`run -t` allocates a pseudo-terminal"""
    r = ctx.docker("run", "-t", "--name", ctx.n("t"), HELLO)
    ctx.see("exit", r.code)
    ctx.see("Config.Tty", inspect(ctx, ctx.n("t"), "{{json .Config.Tty}}") if r.code == 0 else None)


@scenario("cli.run.entrypoint", CLI)
def run_entrypoint(ctx: Ctx):
    """`--entrypoint` to a missing program: exit 127 and Docker's message"""
    r = ctx.docker("run", "--rm", "--entrypoint", "/nosuch", HELLO)
    ctx.see("exit", r.code)
    ctx.see("names the program", "/nosuch" in r.err)


@scenario("cli.run.workdir-user-hostname", CLI)
def run_config_fields(ctx: Ctx):
    """`-w`, `-h`, `--label`, `--stop-signal`, `--stop-timeout` land in Config"""
    name = ctx.n("cfg")
    ctx.ok(
        "create", "--name", name, "-w", "/data", "-h", "box", "--label", "a=1", "--label", "b",
        "--stop-signal", "SIGINT", "--stop-timeout", "7", HELLO,
    )
    fields = "[{{json .Config.WorkingDir}},{{json .Config.Hostname}},{{json .Config.StopSignal}},{{json .Config.StopTimeout}}]"
    ctx.see("Config", inspect(ctx, name, fields))
    ctx.see("Labels", inspect(ctx, name, "{{json .Config.Labels}}"))


@scenario("cli.run.user", CLI)
def run_user(ctx: Ctx):
    """`-u` is applied (Config.User) or refused, never ignored"""
    name = ctx.n("u")
    r = ctx.docker("run", "--name", name, "-u", "1000:1000", HELLO)
    ctx.see_result("run -u", r)
    if r.code == 0:
        ctx.see("Config.User", inspect(ctx, name, "{{json .Config.User}}"))


@scenario("cli.run.privileged", CLI)
def run_privileged(ctx: Ctx):
    """`--privileged` is applied (HostConfig.Privileged) or refused, never ignored"""
    # create only: the oracle itself may not be allowed every capability.
    name = ctx.n("p")
    r = ctx.docker("create", "--name", name, "--privileged", HELLO)
    ctx.see("exit", r.code)
    if r.code == 0:
        ctx.see("HostConfig.Privileged", inspect(ctx, name, "{{json .HostConfig.Privileged}}"))


@scenario("cli.run.cpus-memory", CLI)
def run_resources(ctx: Ctx):
    """`--cpus`, `--memory`, `--pids-limit` land in HostConfig"""
    name = ctx.n("r")
    r = ctx.docker("create", "--name", name, "--cpus", "0.5", "--memory", "64m", "--pids-limit", "50", HELLO)
    ctx.see("exit", r.code)
    if r.code == 0:
        ctx.see(
            "HostConfig",
            inspect(ctx, name, "[{{json .HostConfig.NanoCpus}},{{json .HostConfig.Memory}},{{json .HostConfig.PidsLimit}}]"),
        )


@scenario("cli.run.init", CLI)
def run_init(ctx: Ctx):
    """`--init` is applied (HostConfig.Init) or refused"""
    name = ctx.n("i")
    r = ctx.docker("run", "--name", name, "--init", HELLO)
    ctx.see_result("run --init", r)
    if r.code == 0:
        ctx.see("HostConfig.Init", inspect(ctx, name, "{{json .HostConfig.Init}}"))


@scenario("cli.run.health-cmd", CLI)
def run_health(ctx: Ctx):
    """`--health-cmd` is applied (Config.Healthcheck) or refused"""
    name = ctx.n("h")
    r = ctx.docker("create", "--name", name, "--health-cmd", "/hello.wasm", "--health-interval", "5s", IDLE)
    ctx.see("exit", r.code)
    if r.code == 0:
        ctx.see("Config.Healthcheck", inspect(ctx, name, "{{json .Config.Healthcheck}}"))


@scenario("cli.run.restart-policy", CLI)
def run_restart_policy(ctx: Ctx):
    """`--restart on-failure:3` is stored; `--rm` with a policy is refused"""
    name = ctx.n("rp")
    ctx.ok("create", "--name", name, "--restart", "on-failure:3", HELLO)
    ctx.see("RestartPolicy", inspect(ctx, name, "{{json .HostConfig.RestartPolicy}}"))
    ctx.see_result("--rm --restart always", ctx.docker("create", "--rm", "--restart", "always", HELLO))


@scenario("cli.run.bind-volume", CLI)
def run_bind_volume(ctx: Ctx):
    """`-v DIR:/out` gives the guest a writable host folder"""
    out = ctx.tmp / "out"
    out.mkdir()
    out.chmod(0o777)
    ctx.see_result("run", ctx.docker("run", "--rm", "-v", f"{out}:/out", FS_COPY))
    ctx.see("file", (out / "words.txt").read_text() if (out / "words.txt").exists() else None)


@scenario("cli.run.bind-read-only", CLI)
def run_bind_ro(ctx: Ctx):
    """`-v DIR:/out:ro`: the guest cannot write there"""
    out = ctx.tmp / "out"
    out.mkdir()
    r = ctx.docker("run", "--rm", "-v", f"{out}:/out:ro", FS_COPY)
    ctx.see("exit", r.code)
    ctx.see("refused to write", "cannot create /out/words.txt" in r.err)
    ctx.see("nothing written", list(out.iterdir()) == [])


@scenario("cli.run.mount-bind", CLI)
def run_mount_bind(ctx: Ctx):
    """`--mount type=bind,...` mounts like `-v` and shows in Mounts"""
    out = ctx.tmp / "out"
    out.mkdir()
    name = ctx.n("m")
    r = ctx.docker("run", "--name", name, "--mount", f"type=bind,src={out},dst=/out", FS_COPY)
    ctx.see_result("run", r)
    ctx.see("file written", (out / "words.txt").exists())
    mounts = inspect(ctx, name, "{{json .Mounts}}")
    ctx.see("Mounts", [{k: m.get(k) for k in ("Type", "Destination", "RW")} for m in mounts or []])


@scenario("cli.run.mounts-inspect", CLI)
def run_mounts_inspect(ctx: Ctx):
    """inspect's Mounts and HostConfig.Binds for `-v` binds"""
    out = ctx.tmp / "out"
    out.mkdir()
    name = ctx.n("mi")
    ctx.ok("create", "--name", name, "-v", f"{out}:/data:ro", HELLO)
    mounts = inspect(ctx, name, "{{json .Mounts}}")
    ctx.see_shape("Mounts", mounts)
    ctx.see("Mounts", [{k: m.get(k) for k in ("Type", "Destination", "Mode", "RW", "Propagation")} for m in mounts or []])
    ctx.see("Binds", [b.replace(str(out), "DIR") for b in inspect(ctx, name, "{{json .HostConfig.Binds}}") or []])


@scenario("cli.run.image-volume", CLI)
def run_image_volume(ctx: Ctx):
    """an image VOLUME without `-v`: the guest can still write there"""
    name = ctx.n("iv")
    r = ctx.docker("run", "--name", name, FS_COPY)
    ctx.see_result("run", r)
    mounts = inspect(ctx, name, "{{json .Mounts}}")
    ctx.see("Mounts", [{k: m.get(k) for k in ("Type", "Destination", "RW")} for m in mounts or []])


@scenario("cli.run.network-none", CLI)
def run_network_none(ctx: Ctx):
    """`--network none` runs; NetworkMode says so"""
    name = ctx.n("nn")
    ctx.see_result("run", ctx.docker("run", "--name", name, "--network", "none", HELLO))
    ctx.see("NetworkMode", inspect(ctx, name, "{{json .HostConfig.NetworkMode}}"))


@scenario("cli.run.network-default", CLI)
def run_network_default(ctx: Ctx):
    """the default network mode of a container"""
    name = ctx.n("nd")
    ctx.ok("create", "--name", name, HELLO)
    ctx.see("NetworkMode", inspect(ctx, name, "{{json .HostConfig.NetworkMode}}"))
    ctx.see("Networks", sorted(inspect(ctx, name, "{{json .NetworkSettings.Networks}}") or {}))


@scenario("cli.run.log-driver-none", CLI)
def run_log_driver_none(ctx: Ctx):
    """`--log-driver none`: LogConfig says so and `logs` refuses"""
    name = ctx.n("ln")
    r = ctx.docker("run", "--name", name, "--log-driver", "none", HELLO)
    ctx.see_result("run", r)
    ctx.see("LogConfig", inspect(ctx, name, "{{json .HostConfig.LogConfig.Type}}"))
    ctx.see_result("logs", ctx.docker("logs", name))


@scenario("cli.run.log-config-default", CLI)
def run_log_config(ctx: Ctx):
    """the default LogConfig is json-file (docker-py relies on it)"""
    name = ctx.n("lc")
    ctx.ok("create", "--name", name, HELLO)
    ctx.see("LogConfig", inspect(ctx, name, "{{json .HostConfig.LogConfig}}"))


# --- create, start, attach, wait ---------------------------------------------


@scenario("cli.create.start-attach", CLI)
def create_start_attach(ctx: Ctx):
    """`create` then `start -a` prints the output and returns the exit code"""
    name = ctx.n("c")
    ctx.see_result("create", ctx.docker("create", "--name", name, IDLE, "0"))
    ctx.see("state after create", ctx.state(name))
    ctx.see_result("start -a", ctx.docker("start", "-a", name))
    ctx.see("state after", ctx.state(name))


@scenario("cli.create.start-attach-fail", CLI)
def create_start_attach_fail(ctx: Ctx):
    """`start -a` of a failing guest exits with its code"""
    name = ctx.n("f")
    ctx.ok("create", "--name", name, IDLE, "nope")
    ctx.see_result("start -a", ctx.docker("start", "-a", name))


@scenario("cli.create.rm-start-attach", CLI)
def create_rm_start_attach(ctx: Ctx):
    """`create --rm` then `start -a`: output, exit 0, container gone"""
    name = ctx.n("rm")
    ctx.ok("create", "--rm", "--name", name, HELLO)
    ctx.see_result("start -a", ctx.docker("start", "-a", name))
    ctx.until(f"{name} removed", lambda: ctx.state(name) == "", 30)
    ctx.see("removed", True)


@scenario("cli.create.start-stdin", CLI)
def create_start_stdin(ctx: Ctx):
    """`create -i` then `start -ai` feeds stdin"""
    name = ctx.n("ci")
    ctx.ok("create", "-i", "--name", name, CAT)
    ctx.see_result("start -ai", ctx.docker("start", "-ai", name, stdin="abc\n"))


@scenario("cli.wait", CLI)
def wait(ctx: Ctx):
    """`wait` prints each exit code, also for an already exited container"""
    a, b = ctx.n("a"), ctx.n("b")
    ctx.ok("run", "-d", "--name", a, IDLE, "x")
    ctx.ok("run", "-d", "--name", b, IDLE, "0")
    ctx.see_result("wait a b", ctx.docker("wait", a, b))
    ctx.see_result("wait missing", ctx.docker("wait", ctx.n("nosuch")))


@scenario("cli.wait-stopped", CLI)
def wait_stopped(ctx: Ctx):
    """`wait` on a running container returns when `stop` ends it (143)"""
    name = ctx.n("w")
    detached_idle(ctx, name)
    p = subprocess.Popen(["docker", "wait", name], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=ctx.ep.env)
    try:
        # A wait that arrives after the stop answers at once: no race.
        ctx.ok("stop", "-t", "2", name)
        out, err = p.communicate(timeout=30)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    ctx.see("wait", {"exit": p.returncode, "stdout": out.decode(), "stderr": text(err.decode())})


@scenario("cli.attach.running", CLI)
def attach_running(ctx: Ctx):
    """`attach` to a running `-i` container passes stdin and shows output"""
    name = ctx.n("at")
    ctx.ok("run", "-d", "-i", "--name", name, "--label", ctx.label, CAT)
    ctx.until_state(name, "running")
    p = subprocess.Popen(
        ["docker", "attach", name], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=ctx.ep.env
    )
    got = b""
    try:
        p.stdin.write(b"ping\n")
        p.stdin.flush()
        end = time.monotonic() + 20
        import select

        while b"ping\n" not in got and time.monotonic() < end:
            ready, _, _ = select.select([p.stdout], [], [], 0.5)
            if ready:
                chunk = p.stdout.read1(4096)
                if not chunk:
                    break
                got += chunk
    finally:
        p.kill()
        p.wait()
    ctx.see("echoed", got.decode())
    ctx.see("still running", ctx.state(name))


@scenario("cli.attach.exited", CLI)
def attach_exited(ctx: Ctx):
    """`attach` to an exited container is refused"""
    name = ctx.n("ax")
    ctx.ok("run", "--name", name, HELLO)
    ctx.see_result("attach", ctx.docker("attach", name))


# --- logs --------------------------------------------------------------------


@scenario("cli.logs.streams", CLI)
def logs_streams(ctx: Ctx):
    """`logs` keeps stdout and stderr apart"""
    name = ctx.n("l")
    ctx.docker("run", "--name", name, IDLE, "bad")
    ctx.see_result("logs", ctx.docker("logs", name))


@scenario("cli.logs.tail", CLI)
def logs_tail(ctx: Ctx):
    """`logs --tail N` gives the last N lines (`--tail 0` none, `all` all)"""
    name = ctx.n("t")
    ctx.docker("run", "--name", name, IDLE, "0")
    for n in ("1", "0", "all", "5"):
        ctx.see_result(f"--tail {n}", ctx.docker("logs", "--tail", n, name))


@scenario("cli.logs.timestamps", CLI)
def logs_timestamps(ctx: Ctx):
    """`logs -t` prefixes each line with an RFC 3339 nano time"""
    name = ctx.n("ts")
    ctx.docker("run", "--name", name, IDLE, "0")
    r = ctx.docker("logs", "-t", name)
    ctx.see_result("logs -t", r)


@scenario("cli.logs.since-until", CLI)
def logs_since_until(ctx: Ctx):
    """`logs --since/--until` select lines by time"""
    name = ctx.n("su")
    ctx.docker("run", "--name", name, IDLE, "0")
    future = str(int(time.time()) + 3600)
    ctx.see_result("--since future", ctx.docker("logs", "--since", future, name))
    ctx.see_result("--since 1h", ctx.docker("logs", "--since", "1h", name))
    ctx.see_result("--until 2000-01-01", ctx.docker("logs", "--until", "2000-01-01T00:00:00Z", name))
    ctx.see_result("--until future", ctx.docker("logs", "--until", future, name))


@scenario("cli.logs.follow-exited", CLI)
def logs_follow(ctx: Ctx):
    """`logs -f` of an exited container returns its output and ends"""
    name = ctx.n("f")
    ctx.docker("run", "--name", name, IDLE, "0")
    ctx.see_result("logs -f", ctx.docker("logs", "-f", name))


@scenario("cli.logs.follow-running", CLI)
def logs_follow_running(ctx: Ctx):
    """`logs -f` of a running container ends when the container does"""
    name = ctx.n("fr")
    detached_idle(ctx, name)
    p = subprocess.Popen(["docker", "logs", "-f", name], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=ctx.ep.env)
    try:
        ctx.ok("kill", name)
        out, err = p.communicate(timeout=30)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    ctx.see("logs -f", {"exit": p.returncode, "stdout": out.decode(), "stderr": err.decode()})


@scenario("cli.logs.missing", CLI)
def logs_missing(ctx: Ctx):
    """`logs` of a missing container"""
    ctx.see_result("logs", ctx.docker("logs", ctx.n("nosuch")))


# --- lifecycle ---------------------------------------------------------------


@scenario("cli.stop", CLI)
def stop(ctx: Ctx):
    """`stop` ends a running guest (143 after SIGTERM); a second stop is a no-op"""
    name = ctx.n("s")
    detached_idle(ctx, name)
    ctx.see_result("stop", ctx.docker("stop", "-t", "5", name))
    ctx.see("state", inspect(ctx, name, "[{{json .State.Status}},{{json .State.ExitCode}},{{json .State.Running}}]"))
    ctx.see_result("stop again", ctx.docker("stop", name))


@scenario("cli.kill", CLI)
def kill(ctx: Ctx):
    """`kill` ends a guest with 137; killing it again is refused"""
    name = ctx.n("k")
    detached_idle(ctx, name)
    ctx.see_result("kill", ctx.docker("kill", name))
    ctx.until_state(name, "exited")
    ctx.see("exit code", inspect(ctx, name, "{{json .State.ExitCode}}"))
    ctx.see_result("kill again", ctx.docker("kill", name))


@scenario("cli.kill-signal", CLI)
def kill_signal(ctx: Ctx):
    """`kill -s SIGUSR1` / `-s HUP` end the guest with 128+N; a bad signal is refused"""
    a, b = ctx.n("a"), ctx.n("b")
    detached_idle(ctx, a)
    detached_idle(ctx, b)
    ctx.see_result("kill -s SIGUSR1", ctx.docker("kill", "-s", "SIGUSR1", a))
    ctx.see_result("kill -s HUP", ctx.docker("kill", "-s", "HUP", b))
    ctx.until_state(a, "exited")
    ctx.until_state(b, "exited")
    ctx.see("exit codes", [inspect(ctx, a, "{{json .State.ExitCode}}"), inspect(ctx, b, "{{json .State.ExitCode}}")])
    ctx.see_result("kill -s BOGUS", ctx.docker("kill", "-s", "BOGUS", a))


def exit_codes(ctx: Ctx, *names: str) -> list:
    for name in names:
        ctx.until_state(name, "exited")
    return [inspect(ctx, name, "{{json .State.ExitCode}}") for name in names]


@scenario("cli.kill-signal-number", CLI)
def kill_signal_number(ctx: Ctx):
    """`kill -s 15` / `-s 10` (numbers) and `-s sigquit` (a name in lower case) end the guest with 128+N"""
    a, b, c = ctx.n("a"), ctx.n("b"), ctx.n("c")
    for name in (a, b, c):
        detached_idle(ctx, name)
    ctx.see_result("kill -s 15", ctx.docker("kill", "-s", "15", a))
    ctx.see_result("kill -s 10", ctx.docker("kill", "-s", "10", b))
    ctx.see_result("kill -s sigquit", ctx.docker("kill", "-s", "sigquit", c))
    ctx.see("exit codes", exit_codes(ctx, a, b, c))


@scenario("cli.kill-sigkill-forms", CLI)
def kill_sigkill_forms(ctx: Ctx):
    """`kill -s SIGKILL`, `-s KILL`, `-s 9` and `-s ""` all end the guest with 137"""
    names = [ctx.n(x) for x in ("a", "b", "c", "d")]
    for name in names:
        detached_idle(ctx, name)
    for signal, name in zip(("SIGKILL", "KILL", "9", ""), names):
        ctx.see_result(f"kill -s {signal!r}", ctx.docker("kill", "-s", signal, name))
    ctx.see("exit codes", exit_codes(ctx, *names))


@scenario("cli.kill-unknown-signal", CLI)
def kill_unknown_signal(ctx: Ctx):
    """`kill -s` an unknown name, 0, a number past the table, a negative one: each refused in dockerd's words, the guest left running"""
    name = ctx.n("k")
    detached_idle(ctx, name)
    for signal in ("BOGUS", "SIGBOGUS", "0", "65", "99", "-1", "1.5"):
        ctx.see_result(f"kill -s {signal}", ctx.docker("kill", "-s", signal, name))
    ctx.see("state", inspect(ctx, name, "[{{json .State.Status}},{{json .State.ExitCode}}]"))


@scenario("cli.kill-stopped", CLI)
def kill_stopped(ctx: Ctx):
    """`kill` of an exited, a created and a missing container (alone and among others); a bad signal to an exited one"""
    exited, created, running = ctx.n("x"), ctx.n("c"), ctx.n("r")
    ctx.ok("run", "--name", exited, "--label", ctx.label, HELLO)
    ctx.ok("create", "--name", created, "--label", ctx.label, IDLE)
    detached_idle(ctx, running)
    ctx.see_result("exited", ctx.docker("kill", exited))
    ctx.see_result("exited -s HUP", ctx.docker("kill", "-s", "HUP", exited))
    ctx.see_result("exited -s BOGUS", ctx.docker("kill", "-s", "BOGUS", exited))
    ctx.see_result("exited -s 99", ctx.docker("kill", "-s", "99", exited))
    ctx.see_result("created", ctx.docker("kill", created))
    ctx.see_result("missing", ctx.docker("kill", ctx.n("none")))
    ctx.see_result("missing among others", ctx.docker("kill", exited, ctx.n("none"), running))
    ctx.see("states", [inspect(ctx, n, "{{json .State.Status}}") for n in (exited, created, running)])


@scenario("cli.kill-nonlethal", CLI)
def kill_nonlethal(ctx: Ctx):
    """`kill -s WINCH`, `-s SIGCONT`, `-s 28` leave the guest running (their default is to ignore them); the kill events name each signal by number"""
    since = time.time() - 0.5
    name = ctx.n("k")
    detached_idle(ctx, name)
    for signal in ("WINCH", "SIGCONT", "28"):
        ctx.see_result(f"kill -s {signal}", ctx.docker("kill", "-s", signal, name))
        ctx.see(f"state after {signal}", inspect(ctx, name, "[{{json .State.Status}},{{json .State.Running}}]"))
    ctx.ok("kill", "-s", "HUP", name)
    ctx.see("exit code", exit_codes(ctx, name))
    evs = events(ctx, since, f"container={name}", "event=kill", "event=die")
    ctx.see("kill and die events", [(e.get("Action"), (e.get("Actor", {}).get("Attributes") or {}).get("signal")) for e in evs])


@scenario("cli.kill-stop-signal", CLI)
def kill_stop_signal(ctx: Ctx):
    """`kill -s STOP` then `-s CONT`: the state shown after each, then `kill` ends the guest"""
    name = ctx.n("k")
    detached_idle(ctx, name)
    ctx.see_result("kill -s STOP", ctx.docker("kill", "-s", "STOP", name))
    ctx.see("state after STOP", inspect(ctx, name, "[{{json .State.Status}},{{json .State.Paused}}]"))
    ctx.see_result("kill -s CONT", ctx.docker("kill", "-s", "CONT", name))
    ctx.see("state after CONT", inspect(ctx, name, "[{{json .State.Status}},{{json .State.Paused}}]"))
    ctx.see_result("kill", ctx.docker("kill", name))
    ctx.see("exit code", exit_codes(ctx, name))


@scenario("cli.restart", CLI)
def restart(ctx: Ctx):
    """`restart` of a running and of an exited container runs it again"""
    name = ctx.n("r")
    detached_idle(ctx, name)
    ctx.see_result("restart", ctx.docker("restart", "-t", "1", name))
    ctx.see("state", ctx.state(name))
    ctx.ok("kill", name)
    ctx.until_state(name, "exited")
    ctx.see_result("restart exited", ctx.docker("restart", name))
    ctx.see("state again", ctx.state(name))
    ctx.see("RestartCount", inspect(ctx, name, "{{json .RestartCount}}"))


@scenario("cli.pause", CLI)
def pause(ctx: Ctx):
    """`pause`/`unpause` and the states and refusals around them"""
    name = ctx.n("p")
    detached_idle(ctx, name)
    ctx.see_result("pause", ctx.docker("pause", name))
    ctx.see("state", inspect(ctx, name, "[{{json .State.Status}},{{json .State.Paused}},{{json .State.Running}}]"))
    ctx.see("ps", text(ctx.docker("ps", "-a", "--format", "{{.Names}} {{.Status}}").out).count(f"{name} Up <age> (Paused)"))
    ctx.see_result("pause again", ctx.docker("pause", name))
    ctx.see_result("start paused", ctx.docker("start", name))
    ctx.see_result("rm paused", ctx.docker("rm", name))
    ctx.see_result("unpause", ctx.docker("unpause", name))
    ctx.see("state after", ctx.state(name))
    ctx.see_result("unpause again", ctx.docker("unpause", name))


@scenario("cli.pause-stopped", CLI)
def pause_stopped(ctx: Ctx):
    """`pause` of a container that is not running is refused"""
    name = ctx.n("ps")
    ctx.ok("create", "--name", name, IDLE)
    ctx.see_result("pause", ctx.docker("pause", name))


@scenario("cli.stop-paused", CLI)
def stop_paused(ctx: Ctx):
    """`stop` and `kill` of a paused container end it"""
    a, b = ctx.n("a"), ctx.n("b")
    detached_idle(ctx, a)
    detached_idle(ctx, b)
    ctx.ok("pause", a)
    ctx.ok("pause", b)
    ctx.see_result("stop paused", ctx.docker("stop", "-t", "1", a))
    ctx.see_result("kill paused", ctx.docker("kill", b))
    ctx.until_state(b, "exited")
    ctx.see("states", [ctx.state(a), ctx.state(b)])


@scenario("cli.start-running", CLI)
def start_running(ctx: Ctx):
    """`start` of a running container succeeds and changes nothing"""
    name = ctx.n("sr")
    detached_idle(ctx, name)
    before = inspect(ctx, name, "{{json .State.StartedAt}}")
    ctx.see_result("start", ctx.docker("start", name))
    ctx.see("same start", inspect(ctx, name, "{{json .State.StartedAt}}") == before)


@scenario("cli.rm", CLI)
def rm(ctx: Ctx):
    """`rm` of a running container is refused, `rm -f` removes it; `rm` of a missing one fails"""
    name = ctx.n("rm")
    detached_idle(ctx, name)
    ctx.see_result("rm running", ctx.docker("rm", name))
    ctx.see_result("rm -f", ctx.docker("rm", "-f", name))
    ctx.see("gone", ctx.state(name))
    ctx.see_result("rm missing", ctx.docker("rm", name))
    ctx.see_result("rm -f missing", ctx.docker("rm", "-f", name))


@scenario("cli.rm-several", CLI)
def rm_several(ctx: Ctx):
    """`rm a missing b` removes what exists and reports the rest (exit 1)"""
    a, b = ctx.n("a"), ctx.n("b")
    ctx.ok("create", "--name", a, HELLO)
    ctx.ok("create", "--name", b, HELLO)
    ctx.see_result("rm", ctx.docker("rm", a, ctx.n("missing"), b))
    ctx.see("left", [ctx.state(a), ctx.state(b)])


@scenario("cli.rename", CLI)
def rename(ctx: Ctx):
    """`rename` changes the name everywhere; conflicts are refused"""
    a, b, c = ctx.n("a"), ctx.n("b"), ctx.n("c")
    ctx.ok("create", "--name", a, HELLO)
    ctx.ok("create", "--name", c, HELLO)
    ctx.see_result("rename", ctx.docker("rename", a, b))
    ctx.see("old name", ctx.state(a))
    ctx.see("new name", inspect(ctx, b, "{{json .Name}}").replace(ctx.prefix, "P"))
    ctx.see_result("to a taken name", ctx.docker("rename", b, c))
    ctx.see_result("to the same name", ctx.docker("rename", b, b))
    ctx.see_result("missing", ctx.docker("rename", a, ctx.n("d")))
    ctx.see_result("to an invalid name", ctx.docker("rename", b, "bad/name"))


@scenario("cli.container-prune", CLI)
def container_prune(ctx: Ctx):
    """`container prune --filter label=` removes the stopped containers that match only"""
    a, b, c = ctx.n("a"), ctx.n("b"), ctx.n("c")
    ctx.ok("create", "--name", a, "--label", ctx.label, HELLO)
    ctx.ok("create", "--name", c, HELLO)
    detached_idle(ctx, b)
    r = ctx.docker("container", "prune", "-f", "--filter", f"label={ctx.label}")
    ctx.see("exit", r.code)
    ctx.see("deleted", sorted(line for line in r.out.splitlines() if len(line) == 64) != [])
    ctx.see("left", [ctx.state(a), ctx.state(b), ctx.state(c)])


@scenario("cli.update", CLI)
def update(ctx: Ctx):
    """`update --memory` changes HostConfig.Memory, or is refused"""
    name = ctx.n("up")
    detached_idle(ctx, name)
    r = ctx.docker("update", "--memory", "128m", "--memory-swap", "256m", name)
    ctx.see("exit", r.code)
    ctx.see("Memory", inspect(ctx, name, "{{json .HostConfig.Memory}}"))


@scenario("cli.exec", CLI)
def exec_(ctx: Ctx):
    """`exec` into a running container"""
    name = ctx.n("ex")
    detached_idle(ctx, name)
    r = ctx.docker("exec", name, "/idle.wasm", "0")
    ctx.see_result("exec", r)


@scenario("cli.exec.tmp", CLI)
def exec_tmp(ctx: Ctx):
    """`run --tmpfs /tmp`: what the container writes in /tmp an exec reads, what an exec writes the next one reads; a restart empties it"""
    name = ctx.n("ex")
    script = "write /tmp/by-box b ; write /ready 1 ; sleep 600000".split()
    ctx.ok("run", "-d", "--tmpfs", "/tmp", "--name", name, "--label", ctx.label, FSH, *script)
    ctx.until("the container wrote /ready", lambda: ctx.docker("cp", f"{name}:/ready", "-").code == 0)
    fsh = lambda script: ctx.docker("exec", name, "/fsh.wasm", *script.split())  # noqa: E731
    ctx.see_result("exec reads the container's /tmp", fsh("cat /tmp/by-box ; write /tmp/by-exec e"))
    ctx.see_result("the next exec reads it", fsh("cat /tmp/by-exec ; ls /tmp"))
    ctx.ok("restart", "-t", "0", name)
    ctx.until("the container wrote /tmp/by-box again", lambda: fsh("cat /tmp/by-box").code == 0)
    ctx.see_result("after restart", fsh("cat /tmp/by-exec ; ls /tmp"))


@scenario("cli.top", CLI)
def top(ctx: Ctx):
    """`top` lists the container's processes"""
    name = ctx.n("top")
    detached_idle(ctx, name)
    r = ctx.docker("top", name)
    ctx.see("exit", r.code)
    ctx.see("header", table(r.out)["header"])


@scenario("cli.port", CLI)
def port(ctx: Ctx):
    """`port` of a container without published ports prints nothing"""
    name = ctx.n("port")
    detached_idle(ctx, name)
    ctx.see_result("port", ctx.docker("port", name))


@scenario("cli.stats", CLI)
def stats(ctx: Ctx):
    """`stats --no-stream` columns, and its JSON fields"""
    name = ctx.n("st")
    detached_idle(ctx, name)
    r = ctx.docker("stats", "--no-stream", name)
    ctx.see("exit", r.code)
    ctx.see("header", table(r.out)["header"])
    j = ctx.docker("stats", "--no-stream", "--format", "{{json .}}", name)
    ctx.see_shape("json", json.loads(j.out) if j.code == 0 else None)


@scenario("cli.cp", CLI)
def cp(ctx: Ctx):
    """`cp` a file out of a container"""
    name = ctx.n("cp")
    ctx.ok("create", "--name", name, FS_COPY)
    dest = ctx.tmp / "w.txt"
    r = ctx.docker("cp", f"{name}:/share/words.txt", str(dest))
    ctx.see("exit", r.code)
    ctx.see("copied", dest.read_text() if dest.exists() else None)


@scenario("cli.diff-export", CLI)
def diff_export(ctx: Ctx):
    """`diff` and `export` of a container"""
    name = ctx.n("de")
    ctx.ok("create", "--name", name, HELLO)
    ctx.see("diff exit", ctx.docker("diff", name).code)
    ctx.see("export exit", ctx.docker("export", "-o", str(ctx.tmp / "x.tar"), name).code)


# --- ps ----------------------------------------------------------------------


def ps_names(ctx: Ctx, *args: str) -> list[str]:
    r = ctx.docker("ps", "--format", "{{.Names}}", *args)
    if r.code != 0:
        return [f"exit {r.code}: {text(r.err.strip())}"]
    return [n.replace(ctx.prefix, "P") for n in r.out.split()]


def three_states(ctx: Ctx) -> tuple[str, str, str]:
    """A created, a running and an exited (code 2) container, all labelled."""
    c, r, e = ctx.n("created"), ctx.n("running"), ctx.n("exited")
    ctx.ok("create", "--name", c, "--label", ctx.label, "--label", "tier=a", HELLO)
    detached_idle(ctx, r, "--label", "tier=b")
    ctx.docker("run", "--name", e, "--label", ctx.label, "--label", "tier=a", IDLE, "bad")
    return c, r, e


@scenario("cli.ps.table", CLI)
def ps_table(ctx: Ctx):
    """`ps -a` columns and the rows' cells"""
    three_states(ctx)
    r = ctx.docker("ps", "-a", "--filter", f"label={ctx.label}")
    t = table(r.out.replace(ctx.prefix, "P"))
    ctx.see("exit", r.code)
    ctx.see("header", t["header"])
    ctx.see("rows", t["rows"])


@scenario("cli.ps.default-running", CLI)
def ps_default(ctx: Ctx):
    """`ps` lists running containers only; `-a` all of them"""
    three_states(ctx)
    ctx.see("ps", ps_names(ctx, "--filter", f"label={ctx.label}"))
    ctx.see("ps -a", ps_names(ctx, "-a", "--filter", f"label={ctx.label}"))


@scenario("cli.ps.quiet-notrunc", CLI)
def ps_quiet(ctx: Ctx):
    """`ps -q` prints short IDs, `--no-trunc` full IDs and commands"""
    three_states(ctx)
    q = ctx.docker("ps", "-aq", "--filter", f"label={ctx.label}")
    ctx.see_result("ps -aq", q)
    nt = ctx.docker("ps", "-a", "--no-trunc", "--filter", f"label={ctx.label}", "--format", "{{.ID}} {{.Command}}")
    ctx.see_result("--no-trunc", nt)


@scenario("cli.ps.filter-status", CLI)
def ps_status(ctx: Ctx):
    """`--filter status=` for created, running, exited, paused"""
    three_states(ctx)
    for s in ("created", "running", "exited", "paused"):
        ctx.see(s, ps_names(ctx, "-a", "--filter", f"label={ctx.label}", "--filter", f"status={s}"))
    ctx.see("two statuses", ps_names(ctx, "-a", "--filter", f"label={ctx.label}", "--filter", "status=created", "--filter", "status=exited"))
    ctx.see("bad status", ps_names(ctx, "-a", "--filter", "status=sleeping"))


@scenario("cli.ps.filter-name-id", CLI)
def ps_name(ctx: Ctx):
    """`--filter name=` (substring) and `id=` (prefix)"""
    c, r, e = three_states(ctx)
    ctx.see("name", ps_names(ctx, "-a", "--filter", f"name={ctx.prefix}-ex"))
    ctx.see("name anchored", ps_names(ctx, "-a", "--filter", f"name=^/{ctx.prefix}-run"))
    full = inspect(ctx, c, "{{json .Id}}")
    ctx.see("id prefix", ps_names(ctx, "-a", "--filter", f"id={full[:10]}"))


@scenario("cli.ps.filter-labels-and", CLI)
def ps_labels(ctx: Ctx):
    """several `label` filters must all hold (AND); `label=k` matches the key"""
    three_states(ctx)
    ctx.see("label and tier=a", ps_names(ctx, "-a", "--filter", f"label={ctx.label}", "--filter", "label=tier=a"))
    ctx.see("label and tier", ps_names(ctx, "-a", "--filter", f"label={ctx.label}", "--filter", "label=tier"))
    ctx.see("no match", ps_names(ctx, "-a", "--filter", f"label={ctx.label}", "--filter", "label=tier=c"))


@scenario("cli.ps.filter-exited", CLI)
def ps_exited(ctx: Ctx):
    """`--filter exited=N` matches exit codes"""
    three_states(ctx)
    ctx.see("exited=2", ps_names(ctx, "-a", "--filter", f"label={ctx.label}", "--filter", "exited=2"))
    ctx.see("exited=0", ps_names(ctx, "-a", "--filter", f"label={ctx.label}", "--filter", "exited=0"))
    ctx.see("exited=x", ps_names(ctx, "-a", "--filter", "exited=x"))


@scenario("cli.ps.filter-ancestor", CLI)
def ps_ancestor(ctx: Ctx):
    """`--filter ancestor=IMAGE`"""
    three_states(ctx)
    ctx.see("ancestor idle", ps_names(ctx, "-a", "--filter", f"label={ctx.label}", "--filter", f"ancestor={IDLE}"))
    ctx.see("ancestor hello", ps_names(ctx, "-a", "--filter", f"label={ctx.label}", "--filter", f"ancestor={HELLO}"))


@scenario("cli.ps.filter-before-since", CLI)
def ps_before_since(ctx: Ctx):
    """`--filter before=` / `since=` by container"""
    c, r, e = three_states(ctx)
    ctx.see("before", ps_names(ctx, "-a", "--filter", f"label={ctx.label}", "--filter", f"before={r}"))
    ctx.see("since", ps_names(ctx, "-a", "--filter", f"label={ctx.label}", "--filter", f"since={c}"))


@scenario("cli.ps.filter-other-keys", CLI)
def ps_other(ctx: Ctx):
    """`--filter` on volume, network, publish, expose, health, isolation"""
    three_states(ctx)
    for f in ("volume=/out", "network=none", "publish=80", "expose=80", "health=none", "isolation=default"):
        ctx.see(f, ps_names(ctx, "-a", "--filter", f"label={ctx.label}", "--filter", f))


@scenario("cli.ps.filter-bad", CLI)
def ps_bad(ctx: Ctx):
    """an unknown filter key or a malformed one is refused"""
    ctx.see_result("bogus=1", ctx.docker("ps", "--filter", "bogus=1"))
    ctx.see_result("no =", ctx.docker("ps", "--filter", "status"))


@scenario("cli.ps.last-n", CLI)
def ps_last(ctx: Ctx):
    """`ps -n 2` and `ps -l` limit to the newest (within a filter)"""
    three_states(ctx)
    ctx.see("-n 2", ps_names(ctx, "-n", "2", "--filter", f"label={ctx.label}"))
    ctx.see("-l", ps_names(ctx, "-l", "--filter", f"label={ctx.label}"))


@scenario("cli.ps.size", CLI)
def ps_size(ctx: Ctx):
    """`ps -s` adds the SIZE column"""
    three_states(ctx)
    r = ctx.docker("ps", "-as", "--filter", f"label={ctx.label}")
    ctx.see("header", table(r.out)["header"])


@scenario("cli.ps.format-json", CLI)
def ps_json(ctx: Ctx):
    """`ps --format '{{json .}}'` fields"""
    three_states(ctx)
    r = ctx.docker("ps", "-a", "--filter", f"label={ctx.label}", "--format", "{{json .}}")
    ctx.see_shape("rows", [json.loads(line) for line in r.out.splitlines()])
    rows = {json.loads(line)["Names"].replace(ctx.prefix, "P"): json.loads(line) for line in r.out.splitlines()}
    ctx.see("State", {k: v["State"] for k, v in sorted(rows.items())})
    ctx.see("Status", {k: text(v["Status"]) for k, v in sorted(rows.items())})
    ctx.see("Command", {k: v["Command"] for k, v in sorted(rows.items())})
    ctx.see("Image", {k: v["Image"] for k, v in sorted(rows.items())})


# --- inspect -----------------------------------------------------------------


def inspected(ctx: Ctx) -> dict:
    name = ctx.n("i")
    ctx.ok("run", "--name", name, "-e", "X=1", "--label", "k=v", HELLO, "Zed")
    return inspect(ctx, name)


@scenario("cli.inspect.top-level", CLI)
def inspect_top(ctx: Ctx):
    """the top-level keys and types of a container's inspect document"""
    doc = inspected(ctx)
    ctx.see_shape("inspect", {k: v if not isinstance(v, dict) else {} for k, v in doc.items()})


@scenario("cli.inspect.config", CLI)
def inspect_config(ctx: Ctx):
    """inspect's Config keys and types"""
    ctx.see_shape("Config", inspected(ctx)["Config"])


@scenario("cli.inspect.config-merged", CLI)
def inspect_config_merged(ctx: Ctx):
    """Config's Env, Cmd, Entrypoint, WorkingDir, Labels merge the image's with the run's"""
    c = inspected(ctx)["Config"]
    ctx.see("merged", {k: c.get(k) for k in ("Env", "Cmd", "Entrypoint", "WorkingDir", "Labels", "Image")})


@scenario("cli.inspect.path-args", CLI)
def inspect_path_args(ctx: Ctx):
    """inspect's Path and Args are the resolved command"""
    doc = inspected(ctx)
    ctx.see("Path/Args", [doc.get("Path"), doc.get("Args")])


@scenario("cli.inspect.hostconfig", CLI)
def inspect_hostconfig(ctx: Ctx):
    """inspect's HostConfig keys and types"""
    ctx.see_shape("HostConfig", inspected(ctx)["HostConfig"])


@scenario("cli.inspect.state", CLI)
def inspect_state(ctx: Ctx):
    """inspect's State keys and types, and its values after an exit"""
    st = inspected(ctx)["State"]
    ctx.see_shape("State", st)
    ctx.see("values", {k: st.get(k) for k in ("Status", "Running", "Paused", "Restarting", "OOMKilled", "Dead", "ExitCode", "Error", "Pid")})


@scenario("cli.inspect.network-settings", CLI)
def inspect_network(ctx: Ctx):
    """inspect's NetworkSettings keys and types"""
    ctx.see_shape("NetworkSettings", inspected(ctx)["NetworkSettings"])


@scenario("cli.inspect.graph-driver", CLI)
def inspect_graph(ctx: Ctx):
    """inspect's GraphDriver, Mounts, Platform and Driver"""
    doc = inspected(ctx)
    ctx.see_shape("rest", {k: doc.get(k) for k in ("GraphDriver", "Mounts", "Platform", "Driver")})


@scenario("cli.inspect.size", CLI)
def inspect_size(ctx: Ctx):
    """`inspect --size` adds SizeRw and SizeRootFs"""
    name = ctx.n("s")
    ctx.ok("create", "--name", name, HELLO)
    doc = json.loads(ctx.ok("inspect", "--size", name))[0]
    ctx.see_shape("sizes", {k: doc.get(k, "<absent>") for k in ("SizeRw", "SizeRootFs")})


@scenario("cli.inspect.missing", CLI)
def inspect_missing(ctx: Ctx):
    """`inspect` of a missing object, and `--type` mismatches"""
    ctx.see_result("inspect missing", ctx.docker("inspect", ctx.n("nosuch")))
    ctx.see_result("container inspect missing", ctx.docker("container", "inspect", ctx.n("nosuch")))
    name = ctx.n("c")
    ctx.ok("create", "--name", name, HELLO)
    ctx.see_result("--type image of a container", ctx.docker("inspect", "--type", "image", name))


@scenario("cli.inspect.format", CLI)
def inspect_format(ctx: Ctx):
    """`inspect -f` templates over the document"""
    name = ctx.n("f")
    ctx.ok("create", "--name", name, "-e", "A=b", HELLO)
    ctx.see_result("format", ctx.docker("inspect", "-f", "{{.Name}} {{.State.Status}} {{range .Config.Env}}{{.}};{{end}}", name))


# --- events ------------------------------------------------------------------


def events(ctx: Ctx, since: float, *filters: str) -> list[dict]:
    until = f"{time.time() + 0.5:.6f}"
    args = ["events", "--since", f"{since:.6f}", "--until", until, "--format", "{{json .}}"]
    for f in filters:
        args += ["--filter", f]
    r = ctx.docker(*args)
    return [json.loads(line) for line in r.out.splitlines() if line.strip()]


@scenario("cli.events.container-lifecycle", CLI)
def events_lifecycle(ctx: Ctx):
    """the events of run -d, stop, start, kill, rm: actions in order and JSON keys"""
    since = time.time() - 0.5
    name = ctx.n("ev")
    detached_idle(ctx, name)
    ctx.ok("stop", "-t", "1", name)
    ctx.ok("start", name)
    ctx.until_logs(name, "ready")
    ctx.ok("kill", name)
    ctx.until_state(name, "exited")
    ctx.ok("rm", name)
    evs = events(ctx, since, f"container={name}")
    ctx.see("actions", [e.get("Action", e.get("status")) for e in evs])
    ctx.see_shape("event", evs)
    ctx.see("actor attributes", sorted({k for e in evs for k in (e.get("Actor", {}).get("Attributes") or {})}))


@scenario("cli.events.filters", CLI)
def events_filters(ctx: Ctx):
    """`events --filter event=`, `type=`, `label=`"""
    since = time.time() - 0.5
    name = ctx.n("evf")
    ctx.ok("run", "--name", name, "--label", ctx.label, HELLO)
    ctx.see("event=die", [e.get("Action") for e in events(ctx, since, f"container={name}", "event=die")])
    ctx.see("event=start,create", [e.get("Action") for e in events(ctx, since, f"container={name}", "event=start", "event=create")])
    ctx.see("label", [e.get("Action") for e in events(ctx, since, f"label={ctx.label}", "type=container")])
    ctx.see("type=image", [e.get("Action") for e in events(ctx, since, f"container={name}", "type=image")])
