"""Scenarios of the classic builder (issue 14): `DOCKER_BUILDKIT=0 docker
build` and raw `POST /build` on Dockerfiles both daemons can build (FROM
scratch, COPY, ENV/LABEL/ARG, multi-stage), compared by exit code, output
lines, error words and the built image's config and files."""

from __future__ import annotations

import io
import json
import re
import subprocess
import tarfile
from pathlib import Path

from endpoint import Ctx, Result
from normalize import text
from registry import scenario

CLI = "docker CLI"
API = "HTTP API"

# The classic builder's per-step container lines: dockerd runs a container
# for each metadata step (ENV, LABEL, CMD, ...), wrun has no container to
# run for them. Compared apart, in build.cli.step-lines.
_CONTAINER_LINES = re.compile(r"^( ---> Running in \S+|Removing intermediate container \S+)$")


# The smallest wasm module (the header alone): what CMD names, as wrun
# refuses an image whose command is not wasm (build.cli.cmd-not-wasm).
WASM = b"\0asm\x01\x00\x00\x00"


def write(root: Path, files: dict[str, str | bytes]) -> Path:
    """A build context: `files` (path: text or bytes) under `root`."""
    for name, body in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(body, bytes):
            path.write_bytes(body)
        else:
            path.write_text(body)
    return root


def build(ctx: Ctx, context: Path, *args: str) -> Result:
    """`docker build --no-cache ARGS CONTEXT` with the classic builder (no
    cache: dockerd's is shared by the scenarios running at once, and one's
    cleanup removes the images another's cache would reuse)."""
    env = dict(ctx.ep.env, DOCKER_BUILDKIT="0")
    # Run in the context, as a user does: `-f` is relative to the cwd.
    return ctx.run(["docker", "build", "--no-cache", *args, "."], env=env, cwd=context)


def without_containers(out: str) -> str:
    """Build output without the per-step container lines."""
    return "\n".join(line for line in out.split("\n") if not _CONTAINER_LINES.match(line))


def see_build(ctx: Ctx, what: str, r: Result) -> None:
    """Exit code, stdout (container lines dropped) and stderr, normalized."""
    # The scenario's folder names the side (docker/, wrun/): masked.
    err = r.err.replace(str(ctx.tmp), "<tmp>")
    ctx.see(what, {"exit": r.code, "stdout": text(without_containers(r.out), ctx.prefix), "stderr": text(err, ctx.prefix)})


def config(ctx: Ctx, ref: str) -> dict:
    """The parts of an image's config a Dockerfile sets."""
    r = ctx.docker("image", "inspect", "-f", "{{json .Config}}", ref)
    if r.code != 0:
        return {"exit": r.code, "stderr": text(r.err, ctx.prefix)}
    c = json.loads(r.out)
    keys = ("Cmd", "Entrypoint", "Env", "Labels", "WorkingDir", "User", "ExposedPorts", "Volumes")
    return {k: c.get(k) or None for k in keys}


def files(ctx: Ctx, ref: str) -> list[str]:
    """The paths in an image's layers (from `docker save`), sorted."""
    p = subprocess.run(["docker", "save", ref], capture_output=True, env=ctx.ep.env, timeout=ctx._timeout(60))
    if p.returncode != 0:
        return [f"exit {p.returncode}: {text(p.stderr.decode(errors='replace').strip(), ctx.prefix)}"]
    outer = tarfile.open(fileobj=io.BytesIO(p.stdout))
    manifest = json.load(outer.extractfile("manifest.json"))
    names = set()
    for layer in manifest[0]["Layers"]:
        inner = tarfile.open(fileobj=io.BytesIO(outer.extractfile(layer).read()), mode="r:*")
        for m in inner.getmembers():
            name = m.name.removeprefix("./").rstrip("/")
            if name:
                names.add(name + ("/" if m.isdir() else ""))
    return sorted(names)


# --- through the docker CLI ---------------------------------------------------


@scenario("build.cli.scratch-copy-cmd", CLI)
def scratch_copy_cmd(ctx: Ctx):
    """`FROM scratch`, `COPY`, `CMD`: the output lines, the image's config and files"""
    c = write(ctx.tmp / "ctx", {"a.txt": "hello\n", "app.wasm": WASM, "Dockerfile": 'FROM scratch\nCOPY a.txt /a.txt\nCOPY app.wasm /app.wasm\nCMD ["/app.wasm"]\n'})
    img = f"{ctx.n('img')}:1"
    see_build(ctx, "build", build(ctx, c, "-t", img))
    ctx.see("config", config(ctx, img))
    ctx.see("files", files(ctx, img))


@scenario("build.cli.step-lines", CLI)
def step_lines(ctx: Ctx):
    """the whole output of a build with metadata steps, container lines kept"""
    c = write(ctx.tmp / "ctx", {"f": WASM, "Dockerfile": 'FROM scratch\nENV A=1\nCOPY f /f\nCMD ["/f"]\n'})
    r = build(ctx, c, "-t", f"{ctx.n('img')}:1")
    ctx.see_result("build", r)


@scenario("build.cli.cmd-not-wasm", CLI)
def cmd_not_wasm(ctx: Ctx):
    """a build whose CMD names a file that is not wasm"""
    c = write(ctx.tmp / "ctx", {"a.txt": "hello\n", "Dockerfile": 'FROM scratch\nCOPY a.txt /a.txt\nCMD ["/a.txt"]\n'})
    img = f"{ctx.n('img')}:1"
    see_build(ctx, "build", build(ctx, c, "-t", img))
    ctx.see("tagged", ctx.docker("image", "inspect", img).code == 0)


@scenario("build.cli.env-label-arg", CLI)
def env_label_arg(ctx: Ctx):
    """ENV, LABEL and ARG with `--build-arg` (a default, an override, one unset)"""
    dockerfile = (
        "FROM scratch\n"
        "ARG VERSION=1\n"
        "ARG OTHER\n"
        'ENV APP_VERSION=$VERSION GREETING="hi there"\n'
        'LABEL version=$VERSION other="${OTHER:-none}"\n'
        "COPY f /f\n"
        'CMD ["/f"]\n'
    )
    c = write(ctx.tmp / "ctx", {"f": WASM, "Dockerfile": dockerfile})
    a, b = f"{ctx.n('img')}:default", f"{ctx.n('img')}:arg"
    see_build(ctx, "defaults", build(ctx, c, "-t", a))
    ctx.see("defaults config", config(ctx, a))
    see_build(ctx, "--build-arg", build(ctx, c, "--build-arg", "VERSION=7", "-t", b))
    ctx.see("--build-arg config", config(ctx, b))


@scenario("build.cli.unused-build-arg", CLI)
def unused_build_arg(ctx: Ctx):
    """a `--build-arg` no ARG declares: the build warns and succeeds"""
    c = write(ctx.tmp / "ctx", {"f": WASM, "Dockerfile": 'FROM scratch\nARG USED\nCOPY f /f\nCMD ["/f"]\n'})
    see_build(ctx, "build", build(ctx, c, "--build-arg", "USED=1", "--build-arg", "NOPE=1"))


@scenario("build.cli.quiet", CLI)
def quiet(ctx: Ctx):
    """`build -q` prints the image ID alone; a failing one prints the error only"""
    c = write(ctx.tmp / "ctx", {"f": WASM, "Dockerfile": 'FROM scratch\nCOPY f /f\nCMD ["/f"]\n'})
    img = f"{ctx.n('img')}:1"
    r = build(ctx, c, "-q", "-t", img)
    ctx.see_result("-q", r)
    built = r.out.strip()
    have = ctx.docker("image", "inspect", "-f", "{{.Id}}", img).out.strip()
    ctx.see("printed ID is the tag's", bool(built) and built == have)
    bad = write(ctx.tmp / "bad", {"Dockerfile": "FROM scratch\nFROBNICATE x\n"})
    ctx.see_result("-q failing", build(ctx, bad, "-q"))


@scenario("build.cli.target", CLI)
def target(ctx: Ctx):
    """`--target` of a multi-stage Dockerfile stops at that stage; an unknown target is refused"""
    dockerfile = (
        "FROM scratch AS base\n"
        "COPY f /f\n"
        'CMD ["/f"]\n'
        "FROM base AS second\n"
        "COPY g /g\n"
        "LABEL stage=second\n"
        "FROM scratch\n"
        "COPY --from=second /g /h\n"
        "COPY --from=base /f /app.wasm\n"
        'CMD ["/app.wasm"]\n'
    )
    c = write(ctx.tmp / "ctx", {"f": WASM, "g": "g\n", "Dockerfile": dockerfile})
    mid, last = f"{ctx.n('img')}:second", f"{ctx.n('img')}:last"
    see_build(ctx, "--target second", build(ctx, c, "--target", "second", "-t", mid))
    ctx.see("second config", config(ctx, mid))
    ctx.see("second files", files(ctx, mid))
    see_build(ctx, "whole file", build(ctx, c, "-t", last))
    ctx.see("last config", config(ctx, last))
    ctx.see("last files", files(ctx, last))
    see_build(ctx, "--target nosuch", build(ctx, c, "--target", "nosuch"))


@scenario("build.cli.label-flag", CLI)
def label_flag(ctx: Ctx):
    """`--label k=v` and `--label k` add labels over the Dockerfile's"""
    c = write(ctx.tmp / "ctx", {"f": WASM, "Dockerfile": 'FROM scratch\nLABEL a=file b=file\nCOPY f /f\nCMD ["/f"]\n'})
    img = f"{ctx.n('img')}:1"
    see_build(ctx, "build", build(ctx, c, "--label", "a=flag", "--label", "c", "-t", img))
    ctx.see("config", config(ctx, img))


@scenario("build.cli.copy-missing", CLI)
def copy_missing(ctx: Ctx):
    """a COPY of a file not in the context fails the build, naming it; no image is tagged"""
    c = write(ctx.tmp / "ctx", {"f": "x\n", "Dockerfile": "FROM scratch\nCOPY f /f\nCOPY missing.txt /m\n"})
    img = f"{ctx.n('img')}:1"
    see_build(ctx, "build", build(ctx, c, "-t", img))
    ctx.see("tagged", ctx.docker("image", "inspect", img).code == 0)


@scenario("build.cli.unknown-instruction", CLI)
def unknown_instruction(ctx: Ctx):
    """an unknown instruction is a parse error naming its line, before any step"""
    c = write(ctx.tmp / "ctx", {"Dockerfile": "FROM scratch\n# a comment\nFROBNICATE x\n"})
    see_build(ctx, "build", build(ctx, c, "-t", f"{ctx.n('img')}:1"))
    empty = write(ctx.tmp / "empty", {"Dockerfile": "# nothing\n"})
    see_build(ctx, "no instructions", build(ctx, empty))


@scenario("build.cli.dockerfile-flag", CLI)
def dockerfile_flag(ctx: Ctx):
    """`-f sub/Build.file` picks another build file; the default name is then not needed"""
    c = write(ctx.tmp / "ctx", {"f": WASM, "sub/Build.file": 'FROM scratch\nCOPY f /custom\nCMD ["/custom"]\n'})
    img = f"{ctx.n('img')}:1"
    see_build(ctx, "-f", build(ctx, c, "-f", "sub/Build.file", "-t", img))
    ctx.see("config", config(ctx, img))
    ctx.see("files", files(ctx, img))
    see_build(ctx, "no Dockerfile", build(ctx, c))


@scenario("build.cli.dockerignore", CLI)
def dockerignore(ctx: Ctx):
    """a .dockerignore excludes a file and a glob from `COPY . /app/`"""
    c = write(
        ctx.tmp / "ctx",
        {
            "keep": "a\n",
            "secret": "s\n",
            "dir/tmp.log": "t\n",
            "dir/ok": "k\n",
            "app.wasm": WASM,
            ".dockerignore": "secret\n**/*.log\n",
            "Dockerfile": 'FROM scratch\nCOPY . /app/\nCMD ["/app/app.wasm"]\n',
        },
    )
    img = f"{ctx.n('img')}:1"
    see_build(ctx, "build", build(ctx, c, "-t", img))
    ctx.see("files", files(ctx, img))


# --- raw POST /build -----------------------------------------------------------


def context_tar(entries: dict[str, str | bytes]) -> bytes:
    """A context tar of `entries` (path: text or bytes), files 0644."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as t:
        for name, body in entries.items():
            data = body if isinstance(body, bytes) else body.encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = 0o644
            t.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def post_build(ctx: Ctx, entries: dict[str, str], query: dict) -> dict:
    """POST /build of a context tar: status, content type and each JSON
    line's keys and normalized text (container lines dropped)."""
    query = dict(query, nocache="1")
    r = ctx.api("POST", "/build", body=context_tar(entries), query=query, headers={"Content-Type": "application/x-tar"}, timeout=60)
    seen = {"status": r.status, "content-type": r.headers.get("content-type", "")}
    if r.status != 200:
        seen["message"] = text(r.json().get("message", ""), ctx.prefix)
        return seen
    lines = []
    decoder = json.JSONDecoder()
    body, i = r.body.decode(), 0
    while i < len(body):
        if body[i].isspace():
            i += 1
            continue
        doc, i = decoder.raw_decode(body, i)
        if _CONTAINER_LINES.match(doc.get("stream", "").rstrip("\n")):
            continue
        lines.append({k: text(json.dumps(v, sort_keys=True), ctx.prefix) for k, v in sorted(doc.items())})
    seen["lines"] = lines
    return seen


@scenario("build.api.stream", API)
def api_stream(ctx: Ctx):
    """POST /build answers a JSON stream: Step lines, IDs, aux, Successfully built/tagged"""
    img = f"{ctx.n('img')}:1"
    entries = {"f": WASM, "Dockerfile": 'FROM scratch\nCOPY f /f\nCMD ["/f"]\n'}
    ctx.see("build", post_build(ctx, entries, {"t": img}))
    ctx.see("config", config(ctx, img))
    ctx.see("q=1", post_build(ctx, entries, {"q": "1"}))


@scenario("build.api.errors", API)
def api_errors(ctx: Ctx):
    """POST /build failures: a parse error, a missing build file, an unknown target"""
    ctx.see("unknown instruction", post_build(ctx, {"Dockerfile": "FROM scratch\nFROBNICATE x\n"}, {}))
    ctx.see("no Dockerfile", post_build(ctx, {"f": "x\n"}, {}))
    ctx.see("dockerfile=nope", post_build(ctx, {"Dockerfile": "FROM scratch\n"}, {"dockerfile": "nope"}))
    ctx.see("target nosuch", post_build(ctx, {"Dockerfile": "FROM scratch AS a\nCOPY Dockerfile /d\n"}, {"target": "nosuch"}))


@scenario("build.api.copy-missing", API)
def api_copy_missing(ctx: Ctx):
    """POST /build of a COPY of a missing file: the steps, then the error line"""
    ctx.see("copy missing", post_build(ctx, {"Dockerfile": "FROM scratch\nCOPY missing /m\n"}, {}))


@scenario("build.api.buildargs-labels", API)
def api_buildargs_labels(ctx: Ctx):
    """POST /build's buildargs and labels (JSON maps) reach the image's config"""
    img = f"{ctx.n('img')}:1"
    entries = {"f": WASM, "Dockerfile": 'FROM scratch\nARG V=1\nENV V=$V\nLABEL v=$V\nCOPY f /f\nCMD ["/f"]\n'}
    query = {"t": img, "buildargs": json.dumps({"V": "9"}), "labels": json.dumps({"extra": "yes"})}
    ctx.see("build", post_build(ctx, entries, query))
    ctx.see("config", config(ctx, img))


@scenario("build.api.dockerignore-in-context", API)
def api_dockerignore(ctx: Ctx):
    """a context sent with its .dockerignore and the files it names: what the daemon's COPY takes"""
    img = f"{ctx.n('img')}:1"
    entries = {
        "keep": "a\n",
        "secret": "s\n",
        "app.wasm": WASM,
        ".dockerignore": "secret\nDockerfile\n.dockerignore\n",
        "Dockerfile": 'FROM scratch\nCOPY . /app/\nCMD ["/app/app.wasm"]\n',
    }
    ctx.see("build", post_build(ctx, entries, {"t": img}))
    ctx.see("files", files(ctx, img))
