"""Scenarios of the registry routes (issue 15): `docker login`, `docker
push`, `docker pull` and their API routes, each side against a registry of
its own (Debian's docker-registry on 127.0.0.1, a free port), the port and
the digests left out of what is compared. dockerd cannot pull wasm images
(`operating system is not supported`), so a successful pull is compared
in tests/registry_daemon.rs, not here."""

from __future__ import annotations

import base64
import contextlib
import json
import re
import shutil
import socket
import subprocess
import time
import urllib.request

from endpoint import Ctx, SetupFailed
from normalize import text
from registry import HELLO, scenario

CLI = "docker CLI"
API = "HTTP API"
V = "/v1.41"
REGISTRY_BIN = "/usr/bin/docker-registry"
ANONYMOUS = base64.urlsafe_b64encode(b"{}").decode()


def auth_header(user: str, password: str, server: str) -> str:
    doc = {"username": user, "password": password, "serveraddress": server}
    return base64.urlsafe_b64encode(json.dumps(doc).encode()).decode()


@contextlib.contextmanager
def local_registry(ctx: Ctx, login: tuple[str, str] | None = None):
    """A docker-registry in the scenario's temp folder: yields its
    `127.0.0.1:PORT`, or None (seen the same on both sides) when the
    registry or htpasswd is not installed."""
    if not shutil.which(REGISTRY_BIN) or (login and not shutil.which("htpasswd")):
        ctx.see("no docker-registry or htpasswd", True)
        yield None
        return
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    host = f"127.0.0.1:{port}"
    config = ctx.tmp / "registry.yml"
    yaml = (
        "version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\n"
        f"storage:\n  filesystem:\n    rootdirectory: {ctx.tmp / 'registry-data'}\n"
        f"http:\n  addr: {host}\n"
    )
    if login:
        entries = subprocess.run(["htpasswd", "-Bbn", *login], capture_output=True, check=True).stdout
        (ctx.tmp / "htpasswd").write_bytes(entries)
        yaml += f"auth:\n  htpasswd:\n    realm: compat\n    path: {ctx.tmp / 'htpasswd'}\n"
    config.write_text(yaml)
    child = subprocess.Popen([REGISTRY_BIN, "serve", str(config)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(f"http://{host}/v2/", timeout=2)
                break
            except urllib.error.HTTPError:
                break  # 401: up, with a login
            except OSError:
                if time.monotonic() > deadline or child.poll() is not None:
                    raise SetupFailed(f"docker-registry did not answer on {host}")
                time.sleep(0.05)
        yield host
    finally:
        child.kill()
        child.wait()


def plain(ctx: Ctx, host: str, s: str) -> str:
    """`s` with this side's registry address, its docker config folder
    and digest sizes left out (then the usual IDs and digests)."""
    s = s.replace(host, "<registry>").replace(str(ctx.ep.work), "<work>")
    s = re.sub(r"size: \d+", "size: <n>", s)
    return text(s, ctx.prefix)


def lines(ctx: Ctx, host: str, body: bytes) -> list:
    """A progress stream's lines: each status (normalized), whether it has
    an id, its error, its aux keys."""
    seen = []
    for raw in body.decode(errors="replace").splitlines():
        if not raw.strip():
            continue
        m = json.loads(raw)
        seen.append(
            {
                "status": plain(ctx, host, m.get("status", "")),
                "id": "id" in m,
                "error": plain(ctx, host, m.get("error", "")),
                "aux": sorted((m.get("aux") or {}).keys()),
            }
        )
    return seen


@scenario("cli.login", CLI)
def login(ctx: Ctx):
    """`docker login` to a registry with htpasswd: a wrong password, the
    right one, logout"""
    with local_registry(ctx, ("alice", "secret")) as host:
        if host is None:
            return
        for password in ("wrong", "secret"):
            r = ctx.docker("login", host, "-u", "alice", "--password-stdin", stdin=password + "\n")
            ctx.see(f"login {password}", {"exit": r.code, "stdout": plain(ctx, host, r.out), "stderr": plain(ctx, host, r.err)})
        r = ctx.docker("logout", host)
        ctx.see("logout", {"exit": r.code, "stdout": plain(ctx, host, r.out)})


@scenario("api.auth", API)
def auth(ctx: Ctx):
    """`POST /auth`: right and wrong credentials, an open registry"""
    with local_registry(ctx, ("alice", "secret")) as host:
        if host is None:
            return
        for password in ("wrong", "secret"):
            r = ctx.api("POST", f"{V}/auth", body={"username": "alice", "password": password, "serveraddress": host})
            ctx.see(f"auth {password}", (r.status, plain(ctx, host, r.body.decode(errors="replace"))))
    with local_registry(ctx) as host:
        if host is None:
            return
        r = ctx.api("POST", f"{V}/auth", body={"username": "bob", "password": "x", "serveraddress": host})
        ctx.see("open registry", (r.status, plain(ctx, host, r.body.decode(errors="replace"))))


@scenario("cli.push-pull-errors", CLI)
def push_pull(ctx: Ctx):
    """`docker push` (again: Layer already exists), a push of a name not
    stored, a pull of a tag the registry lacks, anonymous push and pull to
    a registry that needs a login"""
    with local_registry(ctx) as host:
        if host is None:
            return
        name = f"{host}/{ctx.n('hello')}:1"
        ctx.ok("tag", HELLO, name)
        try:
            for what in ("push", "push again"):
                r = ctx.docker("push", name)
                out = plain(ctx, host, r.out)
                # The layer count differs (wasm vs native images): each
                # distinct line once.
                ctx.see(what, {"exit": r.code, "lines": sorted(set(out.splitlines()))})
            r = ctx.docker("push", f"{host}/{ctx.n('missing')}:1")
            ctx.see("push missing", {"exit": r.code, "stderr": plain(ctx, host, r.err)})
            r = ctx.docker("pull", f"{host}/{ctx.n('nope')}:1")
            ctx.see("pull missing", {"exit": r.code, "stderr": plain(ctx, host, r.err)})
        finally:
            ctx.docker("rmi", name)
    with local_registry(ctx, ("alice", "secret")) as host:
        if host is None:
            return
        name = f"{host}/{ctx.n('hello')}:1"
        ctx.ok("tag", HELLO, name)
        try:
            r = ctx.docker("push", name)
            ctx.see("anonymous push", {"exit": r.code, "stderr": plain(ctx, host, r.err)})
            r = ctx.docker("pull", f"{host}/{ctx.n('other')}:1")
            ctx.see("anonymous pull", {"exit": r.code, "stderr": plain(ctx, host, r.err)})
        finally:
            ctx.docker("rmi", name)


@scenario("api.image-push", API)
def image_push(ctx: Ctx):
    """`POST /images/{name}/push`: the stream's lines and aux, no
    X-Registry-Auth, a name not stored; `POST /images/create` of a tag the
    registry lacks and of a bad tag"""
    with local_registry(ctx) as host:
        if host is None:
            return
        repo = f"{host}/{ctx.n('hello')}"
        ctx.ok("tag", HELLO, f"{repo}:1")
        try:
            r = ctx.api("POST", f"{V}/images/{repo}/push", query={"tag": "1"}, headers={"X-Registry-Auth": ANONYMOUS}, timeout=60)
            seen = lines(ctx, host, r.body)
            # One `Preparing` and one `Pushed` per layer: the layer counts differ.
            ctx.see("push", (r.status, [l for i, l in enumerate(seen) if l not in seen[:i]]))
            r = ctx.api("POST", f"{V}/images/{repo}/push", query={"tag": "1"})
            ctx.see("no X-Registry-Auth", (r.status, r.body.decode(errors="replace").strip()))
            r = ctx.api("POST", f"{V}/images/{host}/{ctx.n('missing')}/push", query={"tag": "1"}, headers={"X-Registry-Auth": ANONYMOUS})
            ctx.see("missing", (r.status, lines(ctx, host, r.body)))
            r = ctx.api("POST", f"{V}/images/create", query={"fromImage": f"{host}/{ctx.n('nope')}", "tag": "1"}, timeout=60)
            ctx.see("pull missing", (r.status, plain(ctx, host, r.body.decode(errors="replace").strip())))
            r = ctx.api("POST", f"{V}/images/create", query={"fromImage": repo, "tag": "a:b"})
            ctx.see("bad tag", (r.status, r.body.decode(errors="replace").strip()))
        finally:
            ctx.docker("rmi", f"{repo}:1")
