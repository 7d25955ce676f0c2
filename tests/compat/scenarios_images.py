"""Scenarios of the image verbs and daemon-wide views through the docker
CLI: images and its filters, tag/rmi, inspect, history, save/load, prune,
system df/info/version."""

from __future__ import annotations

import json
import time

from endpoint import Ctx
from normalize import table, text
from registry import CAT, HELLO, IDLE, scenario

CLI = "docker CLI"


def refs(ctx: Ctx, *args: str) -> list[str]:
    """`images --format` REPO:TAG lines for ARGS, this scenario's prefix masked."""
    r = ctx.docker("images", "--format", "{{.Repository}}:{{.Tag}}", *args)
    if r.code != 0:
        return [f"exit {r.code}: {text(r.err.strip())}"]
    return sorted(x.replace(ctx.prefix, "P") for x in r.out.split())


def ours(ctx: Ctx) -> list[str]:
    """This scenario's REPO:TAGs, picked from all images in Python (so the
    tag verbs are checked whatever `images` filters do)."""
    r = ctx.docker("images", "--format", "{{.Repository}}:{{.Tag}}")
    return sorted(x.replace(ctx.prefix, "P") for x in r.out.split() if x.startswith(ctx.prefix))


def tags(ctx: Ctx) -> tuple[str, str, str]:
    """Three tags of this scenario: two of hello, one of idle."""
    a, b, c = f"{ctx.n('img')}:a", f"{ctx.n('img')}:b", f"{ctx.n('other')}:1"
    ctx.ok("tag", HELLO, a)
    ctx.ok("tag", HELLO, b)
    ctx.ok("tag", IDLE, c)
    return a, b, c


@scenario("cli.images.table", CLI)
def images_table(ctx: Ctx):
    """`images` columns, and a row of a tagged image"""
    a, _, _ = tags(ctx)
    r = ctx.docker("images", a)
    t = table(r.out.replace(ctx.prefix, "P"))
    ctx.see("header", t["header"])
    ctx.see("rows", t["rows"])


@scenario("cli.images.repository-arg", CLI)
def images_repo_arg(ctx: Ctx):
    """`images REPO` and `images REPO:TAG` select by reference"""
    tags(ctx)
    ctx.see("repo", refs(ctx, ctx.n("img")))
    ctx.see("repo:tag", refs(ctx, f"{ctx.n('img')}:b"))
    ctx.see("missing", refs(ctx, ctx.n("nosuch")))


@scenario("cli.images.filter-reference", CLI)
def images_reference(ctx: Ctx):
    """`--filter reference=` with globs"""
    tags(ctx)
    ctx.see("glob", refs(ctx, "--filter", f"reference={ctx.prefix}-*"))
    ctx.see("tag glob", refs(ctx, "--filter", f"reference={ctx.prefix}-img:*"))
    ctx.see("two", refs(ctx, "--filter", f"reference={ctx.prefix}-img:a", "--filter", f"reference={ctx.prefix}-other:1"))


@scenario("cli.images.filter-label", CLI)
def images_label(ctx: Ctx):
    """`--filter label=` on image labels (within a reference)"""
    tags(ctx)
    scope = f"reference={ctx.prefix}-*"
    ctx.see("title=hello", refs(ctx, "--filter", scope, "--filter", "label=org.opencontainers.image.title=hello"))
    ctx.see("key", refs(ctx, "--filter", scope, "--filter", "label=org.opencontainers.image.title"))
    ctx.see("none", refs(ctx, "--filter", scope, "--filter", "label=nosuch"))


@scenario("cli.images.filter-before-since", CLI)
def images_before_since(ctx: Ctx):
    """`--filter before=` / `since=` an image"""
    tags(ctx)
    scope = f"reference={ctx.prefix}-*"
    ctx.see("before idle", refs(ctx, "--filter", scope, "--filter", f"before={IDLE}"))
    ctx.see("since hello", refs(ctx, "--filter", scope, "--filter", f"since={HELLO}"))


@scenario("cli.images.filter-bad", CLI)
def images_bad(ctx: Ctx):
    """an unknown `images` filter is refused"""
    ctx.see_result("bogus", ctx.docker("images", "--filter", "bogus=1"))
    ctx.see_result("dangling=maybe", ctx.docker("images", "--filter", "dangling=maybe"))


@scenario("cli.images.quiet-digests", CLI)
def images_quiet(ctx: Ctx):
    """`images -q`, `--digests` and `--no-trunc` columns"""
    a, _, _ = tags(ctx)
    ctx.see_result("-q", ctx.docker("images", "-q", a))
    ctx.see("--digests header", table(ctx.docker("images", "--digests", a).out)["header"])
    ctx.see_result("--no-trunc -q", ctx.docker("images", "--no-trunc", "-q", a))


@scenario("cli.images.format-json", CLI)
def images_json(ctx: Ctx):
    """`images --format '{{json .}}'` fields"""
    a, _, _ = tags(ctx)
    r = ctx.docker("images", "--format", "{{json .}}", a)
    ctx.see_shape("rows", [json.loads(line) for line in r.out.splitlines()])


@scenario("cli.tag", CLI)
def tag(ctx: Ctx):
    """`tag` adds a name to the same image; bad and missing sources are refused"""
    a = f"{ctx.n('t')}:1"
    ctx.see_result("tag", ctx.docker("tag", HELLO, a))
    ids = [ctx.ok("image", "inspect", "-f", "{{.Id}}", x).strip() for x in (HELLO, a)]
    ctx.see("same image", ids[0] == ids[1])
    ctx.see_result("missing source", ctx.docker("tag", f"{ctx.n('nosuch')}:1", a))
    ctx.see_result("bad target", ctx.docker("tag", HELLO, "Bad:Name"))
    ctx.see_result("tag default latest", ctx.docker("tag", HELLO, ctx.n("t")))
    ctx.see("refs", ours(ctx))


@scenario("cli.rmi", CLI)
def rmi(ctx: Ctx):
    """`rmi` of one of two tags untags; of the last tag deletes"""
    a, b, _ = tags(ctx)
    ctx.see_result("rmi a", ctx.docker("rmi", a))
    ctx.see("left", ours(ctx))
    ctx.see_result("rmi missing", ctx.docker("rmi", a))


@scenario("cli.rmi-in-use", CLI)
def rmi_in_use(ctx: Ctx):
    """`rmi` of an image a container uses is refused by ID, allowed by a tag when others remain, `-f` forces"""
    img = f"{ctx.n('use')}:1"
    ctx.ok("tag", IDLE, img)
    name = ctx.n("c")
    ctx.ok("create", "--name", name, img)
    image_id = ctx.ok("image", "inspect", "-f", "{{.Id}}", img).strip()
    r = ctx.docker("rmi", image_id)
    ctx.see("rmi by id exit", r.code)
    ctx.see("rmi by id says", "conflict" in r.err or "being used" in r.err or "referenced in multiple" in r.err)
    ctx.see_result("rmi tag", ctx.docker("rmi", img))
    ctx.see("container still there", ctx.state(name))


@scenario("cli.image.inspect", CLI)
def image_inspect(ctx: Ctx):
    """`image inspect` keys and types, and Config's values"""
    doc = json.loads(ctx.ok("image", "inspect", HELLO))[0]
    ctx.see_shape("image", doc)
    ctx.see("Config", {k: doc["Config"].get(k) for k in ("Entrypoint", "Cmd", "Env", "WorkingDir", "Labels")})
    ctx.see("tagged", HELLO in (doc.get("RepoTags") or []))


@scenario("cli.image.inspect-missing", CLI)
def image_inspect_missing(ctx: Ctx):
    """`image inspect` of a missing image"""
    ctx.see_result("missing", ctx.docker("image", "inspect", f"{ctx.n('nosuch')}:1"))


@scenario("cli.history", CLI)
def history(ctx: Ctx):
    """`history` columns and its JSON rows"""
    r = ctx.docker("history", HELLO)
    ctx.see("exit", r.code)
    ctx.see("header", table(r.out)["header"])
    j = ctx.docker("history", "--format", "{{json .}}", HELLO)
    ctx.see_shape("rows", [json.loads(line) for line in j.out.splitlines()])
    ctx.see_result("missing", ctx.docker("history", ctx.n("nosuch")))


@scenario("cli.save-load", CLI)
def save_load(ctx: Ctx):
    """`save` then `rmi` then `load` brings the tag back, and says so"""
    img = f"{ctx.n('sl')}:1"
    ctx.ok("tag", HELLO, img)
    tar = ctx.tmp / "img.tar"
    ctx.see_result("save", ctx.docker("save", "-o", str(tar), img))
    ctx.ok("rmi", img)
    ctx.see_result("load", ctx.docker("load", "-i", str(tar)))
    ctx.see("refs", ours(ctx))
    ctx.see_result("run loaded", ctx.docker("run", "--rm", img))


@scenario("cli.save-stdout-load-stdin", CLI)
def save_stdout(ctx: Ctx):
    """`save` to stdout and `load` from stdin; a terminal-less `save` without -o works"""
    img = f"{ctx.n('ss')}:1"
    ctx.ok("tag", HELLO, img)
    import subprocess

    saved = subprocess.run(["docker", "save", img], capture_output=True, env=ctx.ep.env, timeout=60)
    ctx.see("save exit", saved.returncode)
    ctx.ok("rmi", img)
    ctx.see_result("load -q", ctx.docker("load", "-q", stdin=saved.stdout))
    ctx.see("refs", ours(ctx))


@scenario("cli.load-garbage", CLI)
def load_garbage(ctx: Ctx):
    """`load` of something that is not an image tar fails"""
    r = ctx.docker("load", stdin=b"this is not a tar\n" * 100)
    ctx.see("exit", r.code)
    ctx.see("stdout", r.out)


@scenario("cli.save-missing", CLI)
def save_missing(ctx: Ctx):
    """`save` of a missing image fails"""
    r = ctx.docker("save", "-o", str(ctx.tmp / "x.tar"), f"{ctx.n('nosuch')}:1")
    ctx.see("exit", r.code)


@scenario("cli.image-prune-label", CLI, serial=True)
def image_prune_label(ctx: Ctx):
    """`image prune -a --filter label=` spares images without the label"""
    img = f"{ctx.n('p')}:1"
    ctx.ok("tag", HELLO, img)
    r = ctx.docker("image", "prune", "-a", "-f", "--filter", "label=nosuch.label")
    ctx.see("exit", r.code)
    ctx.see("says", text(r.out.strip().splitlines()[-1]) if r.out.strip() else "")
    ctx.see("tag kept", ours(ctx))


@scenario("cli.images.dangling-prune", CLI, serial=True)
def images_dangling(ctx: Ctx):
    """an image whose last tag moved away is dangling: `images -f dangling=true` lists it, `image prune` removes it"""
    tar = ctx.tmp / "cat.tar"
    ctx.ok("save", "-o", str(tar), CAT)
    cat_id = ctx.ok("image", "inspect", "-f", "{{.Id}}", CAT).strip()
    moved = f"{ctx.n('dangle')}:1"

    def dangling() -> list[str]:
        # Only whether our image is listed, and that every listed one is
        # untagged: the oracle is shared (other runs, other people) and may
        # hold dangling images of its own, which `prune` then removes too.
        r = ctx.docker("images", "--no-trunc", "--format", "{{.ID}} {{.Repository}}:{{.Tag}}", "--filter", "dangling=true")
        if r.code != 0:
            return [f"exit {r.code}: {text(r.err.strip())}"]
        rows = [line.split() for line in r.out.splitlines() if line.strip()]
        return sorted(("ours " if row[0] == cat_id else "other ") + row[-1] for row in rows if row[0] == cat_id or row[-1] != "<none>:<none>")

    try:
        ctx.ok("tag", CAT, moved)
        ctx.ok("rmi", CAT)
        ctx.ok("tag", HELLO, moved)
        ctx.see("dangling", dangling())
        ctx.see("-a has <none>", "<none>:<none>" in refs(ctx, "-a"))
        r = ctx.docker("image", "prune", "-f")
        ctx.see("prune exit", r.code)
        ctx.see("prune says", [text(line) for line in r.out.splitlines() if not line.startswith(("deleted:", "untagged:"))])
        ctx.see("prune deleted ours", f"deleted: {cat_id}" in r.out)
        ctx.see("dangling after", dangling())
    finally:
        ctx.ok("load", "-i", str(tar))
    ctx.see("restored", CAT in ctx.docker("images", "--format", "{{.Repository}}:{{.Tag}}").out.split())


@scenario("cli.system-df", CLI, serial=True)
def system_df(ctx: Ctx):
    """`system df` rows and `-v` sections"""
    r = ctx.docker("system", "df")
    t = table(r.out)
    ctx.see("header", t["header"])
    ctx.see("types", [row[0] for row in t["rows"]])
    j = ctx.docker("system", "df", "--format", "{{json .}}")
    ctx.see_shape("json", [json.loads(line) for line in j.out.splitlines()])
    v = ctx.docker("system", "df", "-v")
    ctx.see("-v sections", [line for line in v.out.splitlines() if line.endswith("space usage:")])


@scenario("cli.system-prune", CLI, serial=True)
def system_prune(ctx: Ctx):
    """`system prune -f --filter label=` removes stopped containers that match, keeps the rest"""
    a, b = ctx.n("a"), ctx.n("b")
    ctx.ok("create", "--name", a, "--label", ctx.label, HELLO)
    ctx.ok("create", "--name", b, HELLO)
    r = ctx.docker("system", "prune", "-f", "--filter", f"label={ctx.label}")
    ctx.see("exit", r.code)
    ctx.see("stderr", text(r.err))
    ctx.see("left", [ctx.state(a), ctx.state(b)])


@scenario("cli.info", CLI)
def info(ctx: Ctx):
    """`info --format '{{json .}}'` keys and types; MemTotal and NCPU are real"""
    doc = json.loads(ctx.ok("info", "--format", "{{json .}}"))
    doc.pop("ClientInfo", None)
    ctx.see_shape("info", doc)
    ctx.see("MemTotal > 0", (doc.get("MemTotal") or 0) > 0)
    ctx.see("NCPU > 0", (doc.get("NCPU") or 0) > 0)


@scenario("cli.info.text", CLI)
def info_text(ctx: Ctx):
    """`info` prints without server errors"""
    r = ctx.docker("info")
    ctx.see("exit", r.code)
    ctx.see("errors", [line for line in r.out.splitlines() + r.err.splitlines() if "ERROR" in line])


@scenario("cli.version", CLI)
def version(ctx: Ctx):
    """`version --format '{{json .Server}}'` keys and types"""
    doc = json.loads(ctx.ok("version", "--format", "{{json .Server}}"))
    ctx.see_shape("server", doc)
    ctx.see("component names", [c.get("Name") for c in doc.get("Components") or []][:1])


@scenario("cli.system-events-since-until", CLI)
def events_image(ctx: Ctx):
    """image `tag`/`untag` events through `events --filter type=image`"""
    since = time.time() - 0.5
    img = f"{ctx.n('ev')}:1"
    ctx.ok("tag", HELLO, img)
    ctx.ok("rmi", img)
    until = f"{time.time() + 0.5:.6f}"
    r = ctx.docker(
        "events", "--since", f"{since:.6f}", "--until", until, "--filter", "type=image", "--filter", f"image={img}",
        "--format", "{{json .}}",
    )
    evs = [json.loads(line) for line in r.out.splitlines()]
    ctx.see("actions", [e.get("Action") for e in evs])
    ctx.see_shape("events", evs)
    ctx.see("IDs set", [bool(e.get("Actor", {}).get("ID")) for e in evs])
