"""Scenarios through the Docker SDK for Python (docker-py 7): the calls its
users make most, and what they return or raise."""

from __future__ import annotations

import time

from endpoint import Ctx
from normalize import text
from registry import CAT, HELLO, IDLE, scenario

SDK = "docker-py"


def raised(ctx: Ctx, what: str, call) -> object:
    """Records the exception class a call raises (or that it returned)."""
    try:
        v = call()
    except Exception as e:  # the class is the observation
        ctx.see(what, {"raised": f"{type(e).__module__}.{type(e).__name__}", "status": getattr(e, "status_code", None)})
        return None
    ctx.see(what, {"returned": type(v).__name__})
    return v


def labelled(ctx: Ctx) -> dict:
    k, v = ctx.label.split("=", 1)
    return {k: v}


@scenario("sdk.run-output", SDK)
def run_output(ctx: Ctx):
    """`containers.run(image)` returns the guest's output"""
    ctx.see("run", ctx.sdk.containers.run(HELLO, name=ctx.n("o"), labels=labelled(ctx)))


@scenario("sdk.run-auto-remove", SDK)
def run_auto_remove(ctx: Ctx):
    """`containers.run(auto_remove=True)` returns the output and leaves nothing"""
    # A guest that lives 2 s: with a shorter one dockerd itself may remove
    # it before docker-py asks for its logs (409).
    ctx.see("run", ctx.sdk.containers.run(IDLE, ["2"], name=ctx.n("ar"), auto_remove=True))
    ctx.until("the container to go", lambda: ctx.state(ctx.n("ar")) == "")
    ctx.see("gone", True)


@scenario("sdk.run-remove", SDK)
def run_remove(ctx: Ctx):
    """`containers.run(remove=True)` (client-side removal) returns the output"""
    ctx.see("run", ctx.sdk.containers.run(HELLO, name=ctx.n("rr"), remove=True, environment={"GREETING": "Yo"}))


@scenario("sdk.run-error", SDK)
def run_error(ctx: Ctx):
    """a failing guest raises ContainerError with its exit status and stderr"""
    import docker

    try:
        ctx.sdk.containers.run(IDLE, ["bad"], name=ctx.n("e"), stderr=True)
        ctx.see("raised", None)
    except docker.errors.ContainerError as e:
        ctx.see("raised", {"exit_status": e.exit_status, "stderr": e.stderr})


@scenario("sdk.run-detach-wait", SDK)
def run_detach_wait(ctx: Ctx):
    """`run(detach=True)` then `wait()` and `logs()`"""
    c = ctx.sdk.containers.run(IDLE, ["0"], name=ctx.n("dw"), detach=True)
    ctx.see("wait", c.wait(timeout=60))
    ctx.see("logs", c.logs())
    ctx.see("logs stderr only", c.logs(stdout=False))
    c.reload()
    ctx.see("status", c.status)


@scenario("sdk.run-stream", SDK)
def run_stream(ctx: Ctx):
    """`run(stream=True)` yields the output"""
    out = b"".join(ctx.sdk.containers.run(IDLE, ["0"], name=ctx.n("s"), stream=True))
    ctx.see("streamed", out)


@scenario("sdk.logs-options", SDK)
def logs_options(ctx: Ctx):
    """`logs(tail=, timestamps=, since=, until=)`"""
    c = ctx.sdk.containers.run(IDLE, ["0"], name=ctx.n("lo"), detach=True)
    c.wait(timeout=60)
    ctx.see("tail=1", c.logs(tail=1))
    ctx.see("timestamps", text(c.logs(timestamps=True).decode()))
    ctx.see("since future", c.logs(since=int(time.time()) + 3600))
    ctx.see("until past", c.logs(until=946684800))


@scenario("sdk.logs-stream-follow", SDK)
def logs_follow(ctx: Ctx):
    """`logs(stream=True, follow=True)` ends when the container does"""
    c = ctx.sdk.containers.run(IDLE, name=ctx.n("lf"), detach=True)
    ctx.until_logs(ctx.n("lf"), "ready")
    stream = c.logs(stream=True, follow=True)
    first = next(stream)
    c.kill()
    rest = b"".join(stream)
    ctx.see("followed", first + rest)


@scenario("sdk.attach-logs-exited", SDK, timeout=20)
def attach_logs(ctx: Ctx):
    """`attach(stream=False, logs=True)` on an exited container returns"""
    c = ctx.sdk.containers.run(IDLE, ["0"], name=ctx.n("al"), detach=True)
    c.wait(timeout=60)
    ctx.until_logs(ctx.n("al"), "done")
    # That it returns, not what: dockerd 20.10 itself answers the log only
    # now and then here (mostly nothing).
    ctx.see("returns", type(c.attach(stream=False, logs=True)).__name__)


@scenario("sdk.attach-socket-stdin", SDK)
def attach_socket(ctx: Ctx):
    """`attach_socket` to a `-i` container: what is written comes back"""
    c = ctx.sdk.containers.run(CAT, name=ctx.n("as"), detach=True, stdin_open=True)
    ctx.until_state(ctx.n("as"), "running")
    sock = c.attach_socket(params={"stdin": 1, "stdout": 1, "stream": 1})
    raw = sock._sock
    raw.settimeout(20)
    raw.sendall(b"hi\n")
    got = b""
    end = time.monotonic() + 20
    while b"hi\n" not in got and time.monotonic() < end:
        chunk = raw.recv(4096)
        if not chunk:
            break
        got += chunk
    sock.close()
    # Without a TTY the answer is multiplexed: one 8-byte header, then "hi\n".
    ctx.see("frame", [got[:1], got[8:]] if len(got) >= 8 else got)


@scenario("sdk.lifecycle", SDK)
def lifecycle(ctx: Ctx):
    """stop, start, restart, pause, unpause, kill: status after each (reload)"""
    c = ctx.sdk.containers.run(IDLE, name=ctx.n("lc"), detach=True)
    seen = []
    for verb in ("pause", "unpause", "stop", "start", "restart", "kill"):
        getattr(c, verb)(**({"timeout": 1} if verb in ("stop", "restart") else {}))
        if verb == "kill":
            ctx.until_state(ctx.n("lc"), "exited")
        c.reload()
        seen.append([verb, c.status])
    ctx.see("states", seen)
    ctx.see("exit", c.attrs["State"]["ExitCode"])


@scenario("sdk.rename-remove", SDK)
def rename_remove(ctx: Ctx):
    """`rename`, then `remove(force=True)` of a running container"""
    c = ctx.sdk.containers.run(IDLE, name=ctx.n("a"), detach=True)
    c.rename(ctx.n("b"))
    c.reload()
    ctx.see("name", c.name.replace(ctx.prefix, "P"))
    c.remove(force=True)
    raised(ctx, "get after remove", lambda: ctx.sdk.containers.get(ctx.n("b")))


@scenario("sdk.errors", SDK)
def errors(ctx: Ctx):
    """the exception classes of common mistakes"""
    raised(ctx, "get missing container", lambda: ctx.sdk.containers.get(ctx.n("nosuch")))
    raised(ctx, "get missing image", lambda: ctx.sdk.images.get(f"{ctx.n('nosuch')}:1"))
    raised(ctx, "create missing image", lambda: ctx.sdk.containers.create(f"{ctx.n('nosuch')}:1"))
    c = ctx.sdk.containers.create(HELLO, name=ctx.n("c"))
    raised(ctx, "create taken name", lambda: ctx.sdk.containers.create(HELLO, name=ctx.n("c")))
    raised(ctx, "unpause created", lambda: c.unpause())
    raised(ctx, "kill created", lambda: c.kill())


@scenario("sdk.list-filters", SDK)
def list_filters(ctx: Ctx):
    """`containers.list(all, filters=..., limit=)`"""
    lab = labelled(ctx)
    ctx.sdk.containers.create(HELLO, name=ctx.n("c"), labels=lab | {"tier": "a"})
    ctx.sdk.containers.run(IDLE, name=ctx.n("r"), labels=lab | {"tier": "b"}, detach=True)
    names = lambda cs: sorted(c.name.replace(ctx.prefix, "P") for c in cs)
    ctx.see("running", names(ctx.sdk.containers.list(filters={"label": ctx.label})))
    ctx.see("all", names(ctx.sdk.containers.list(all=True, filters={"label": ctx.label})))
    ctx.see("two labels", names(ctx.sdk.containers.list(all=True, filters={"label": [ctx.label, "tier=a"]})))
    ctx.see("status", names(ctx.sdk.containers.list(all=True, filters={"label": ctx.label, "status": "created"})))
    ctx.see("limit", len(ctx.sdk.containers.list(all=True, limit=1, filters={"label": ctx.label})))


@scenario("sdk.container-attrs", SDK)
def container_attrs(ctx: Ctx):
    """the attrs docker-py reads: image, labels, status, ports, health"""
    c = ctx.sdk.containers.create(HELLO, name=ctx.n("a"), labels={"x": "1"})
    ctx.see("status", c.status)
    ctx.see("labels", c.labels)
    ctx.see("image", c.image.id == ctx.sdk.images.get(HELLO).id)
    ctx.see("ports", c.ports)
    ctx.see("health", c.health)


@scenario("sdk.images", SDK)
def images(ctx: Ctx):
    """`images.get`, `tag`, `list(name=)`, `remove`"""
    img = ctx.sdk.images.get(HELLO)
    ctx.see("tagged", HELLO in img.tags)
    ctx.see("labels", img.labels)
    ctx.see("tag", img.tag(ctx.n("t"), "1"))
    listed = ctx.sdk.images.list(name=ctx.n("t"))
    ctx.see("list name", sorted(t.replace(ctx.prefix, "P") for i in listed for t in i.tags if t.startswith(ctx.prefix)))
    ctx.see("list name: images", len(listed))
    ctx.see("list filter", len(ctx.sdk.images.list(filters={"reference": f"{ctx.n('t')}:*"})))
    ctx.sdk.images.remove(f"{ctx.n('t')}:1")
    ctx.see("after remove", len(ctx.sdk.images.list(name=ctx.n("t"))))


@scenario("sdk.image-save-load", SDK)
def image_save_load(ctx: Ctx):
    """`image.save()` chunks, then `images.load()` returns the image"""
    ctx.sdk.images.get(HELLO).tag(ctx.n("sl"), "1")
    data = b"".join(ctx.sdk.images.get(f"{ctx.n('sl')}:1").save(named=True))
    ctx.sdk.images.remove(f"{ctx.n('sl')}:1")
    loaded = ctx.sdk.images.load(data)
    ctx.see("loaded tags", sorted(t.replace(ctx.prefix, "P") for i in loaded for t in i.tags if t.startswith(ctx.prefix)))


@scenario("sdk.system", SDK)
def system(ctx: Ctx):
    """`ping`, `version`, `info`, `df` through the SDK"""
    ctx.see("ping", ctx.sdk.ping())
    ctx.see_shape("version", ctx.sdk.version())
    ctx.see("info keys", sorted(k for k in ("ID", "Containers", "Images", "MemTotal", "NCPU", "OperatingSystem", "ServerVersion") if k in ctx.sdk.info()))
    ctx.see("df keys", sorted(ctx.sdk.df()))


@scenario("sdk.events", SDK)
def events(ctx: Ctx):
    """`events(decode=True, since, until, filters)` of one container"""
    since = time.time() - 0.5
    c = ctx.sdk.containers.run(HELLO, name=ctx.n("ev"), detach=True)
    c.wait(timeout=60)
    c.remove()
    evs = list(ctx.sdk.events(decode=True, since=since, until=time.time() + 0.5, filters={"container": c.id}))
    ctx.see("actions", [e.get("Action") for e in evs])
    ctx.see("status field", [e.get("status") for e in evs])


@scenario("sdk.prune", SDK)
def prune(ctx: Ctx):
    """`containers.prune(filters=label)` answer"""
    c = ctx.sdk.containers.create(HELLO, name=ctx.n("p"), labels=labelled(ctx))
    r = ctx.sdk.containers.prune(filters={"label": ctx.label})
    ctx.see("deleted ours", r.get("ContainersDeleted") == [c.id])
    ctx.see("keys", sorted(r))


@scenario("sdk.stats", SDK)
def stats(ctx: Ctx):
    """`container.stats(stream=False)` keys and types"""
    c = ctx.sdk.containers.run(IDLE, name=ctx.n("st"), detach=True)
    ctx.until_logs(ctx.n("st"), "ready")
    ctx.see_shape("stats", c.stats(stream=False))


@scenario("sdk.exec-run", SDK)
def exec_run(ctx: Ctx):
    """`container.exec_run` into a running container"""
    c = ctx.sdk.containers.run(IDLE, name=ctx.n("x"), detach=True)
    ctx.until_logs(ctx.n("x"), "ready")
    r = raised(ctx, "exec_run", lambda: c.exec_run(["/idle.wasm", "0"]))
    if r is not None:
        ctx.see("result", [r.exit_code, r.output])


@scenario("sdk.run-options", SDK)
def run_options(ctx: Ctx):
    """`run` with working_dir, user, mem_limit, nano_cpus, init, privileged, read_only: applied or refused"""
    def one(**kw):
        try:
            ctx.sdk.containers.create(HELLO, name=ctx.n("o" + "".join(kw)[:8]), **kw)
            return {"created": True}
        except Exception as e:
            return {"raised": type(e).__name__}

    for kw in ({"working_dir": "/"}, {"user": "1000"}, {"mem_limit": "64m"}, {"nano_cpus": 500000000},
               {"init": True}, {"privileged": True}, {"read_only": True}, {"cap_add": ["NET_ADMIN"]}):
        ctx.see(str(kw), one(**kw))
