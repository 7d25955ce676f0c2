"""Scenarios of named volumes (the /volumes routes, `docker volume …`, `-v
NAME:/path`, an image VOLUME's anonymous volume) and of `system df`'s
volume figures. Every volume a scenario makes is named with its prefix (or
removed with its container) and removed at its end: the oracle is shared."""

from __future__ import annotations

import json

from endpoint import Ctx, Response
from normalize import text
from registry import FS_COPY, HELLO, scenario

API = "HTTP API"
CLI = "docker CLI"
SDK = "docker-py"
V = "/v1.41"


def body(ctx: Ctx, r: Response, *ids: str):
    """The status and the JSON body, the scenario's names and `ids` made
    the same on both sides, a mount point reduced to its part in the
    volumes folder."""
    try:
        doc = r.json()
    except ValueError:
        doc = text(r.body.decode(errors="replace"))
    raw = json.dumps(doc)
    for i in ids:
        raw = raw.replace(i, "<id>")
    doc = json.loads(raw.replace(ctx.prefix, "P"))
    if isinstance(doc, dict) and isinstance(doc.get("Mountpoint"), str):
        doc["Mountpoint"] = "…/volumes/" + doc["Mountpoint"].split("/volumes/", 1)[-1]
    if isinstance(doc, dict) and "CreatedAt" in doc:
        doc["CreatedAt"] = text(doc["CreatedAt"])
    return {"status": r.status, "body": doc}


def finish(ctx: Ctx, containers=(), volumes=()):
    """Removes the scenario's containers (with their anonymous volumes),
    then its volumes."""
    if containers:
        ctx.docker("rm", "-f", "-v", *containers)
    if volumes:
        ctx.docker("volume", "rm", "-f", *volumes)


@scenario("api.volume-routes", API)
def volume_routes(ctx: Ctx):
    """`/volumes` create (again: the same one), inspect, list filters, delete; dockerd's 4xx words"""
    name = ctx.n("vol")
    labels = {"wrun-compat.case": ctx.prefix, "k": "v"}
    try:
        r = ctx.api("POST", f"{V}/volumes/create", {"Name": name, "Labels": labels})
        ctx.see("create", body(ctx, r))
        ctx.see_shape("create shape", r.json())
        again = ctx.api("POST", f"{V}/volumes/create", {"Name": name, "Labels": {"other": "x"}})
        ctx.see("create again", body(ctx, again))
        ctx.see("inspect", body(ctx, ctx.api("GET", f"{V}/volumes/{name}")))
        for filters in ({"name": [ctx.prefix]}, {"label": [ctx.label, "k=v"]}, {"label": ["k=w"]}, {"driver": ["local"], "name": [ctx.prefix]}):
            lst = ctx.api("GET", f"{V}/volumes", query={"filters": json.dumps(filters)})
            doc = lst.json()
            ctx.see(f"list {filters}", {"status": lst.status, "names": [v["Name"].replace(ctx.prefix, "P") for v in doc.get("Volumes") or []], "Warnings": doc.get("Warnings")})
        for bad in ({"bogus": ["1"]}, {"dangling": ["maybe"]}):
            ctx.see(f"list {bad}", body(ctx, ctx.api("GET", f"{V}/volumes", query={"filters": json.dumps(bad)})))
        for bad in ({"Name": "x"}, {"Name": "bad/name"}, {"Name": "-ab"}, {"Name": ctx.n("nfs"), "Driver": "nfs"}):
            ctx.see(f"create {bad}", body(ctx, ctx.api("POST", f"{V}/volumes/create", bad)))
        ctx.see("inspect missing", body(ctx, ctx.api("GET", f"{V}/volumes/{ctx.n('none')}")))
        ctx.see("delete missing", body(ctx, ctx.api("DELETE", f"{V}/volumes/{ctx.n('none')}")))
        ctx.see("delete missing forced", ctx.api("DELETE", f"{V}/volumes/{ctx.n('none')}", query={"force": "1"}).status)
        ctx.see("delete", ctx.api("DELETE", f"{V}/volumes/{name}").status)
        ctx.see("inspect deleted", ctx.api("GET", f"{V}/volumes/{name}").status)
    finally:
        finish(ctx, volumes=[name])


@scenario("api.volume-in-use", API)
def volume_in_use(ctx: Ctx):
    """`DELETE /volumes/{name}` of a volume a stopped container mounts: 409 naming it, with force too"""
    vol, c = ctx.n("used"), ctx.n("c")
    try:
        r = ctx.api(
            "POST",
            f"{V}/containers/create",
            {"Image": HELLO, "Labels": {"wrun-compat.case": ctx.prefix}, "HostConfig": {"Binds": [f"{vol}:/data"]}},
            {"name": c},
        )
        cid = r.json().get("Id", "")
        ctx.see("create", r.status)
        ctx.see("made the volume", ctx.api("GET", f"{V}/volumes/{vol}").status)
        ctx.see("delete", body(ctx, ctx.api("DELETE", f"{V}/volumes/{vol}"), cid))
        ctx.see("delete forced", body(ctx, ctx.api("DELETE", f"{V}/volumes/{vol}", query={"force": "1"}), cid))
        lst = ctx.api("GET", f"{V}/volumes", query={"filters": json.dumps({"name": [ctx.prefix], "dangling": ["false"]})})
        ctx.see("not dangling", [v["Name"].replace(ctx.prefix, "P") for v in lst.json().get("Volumes") or []])
        m = ctx.api("GET", f"{V}/containers/{c}/json").json().get("Mounts") or []
        ctx.see("Mounts", [{k: str(v).replace(ctx.prefix, "P") for k, v in x.items() if k != "Source"} for x in m])
        ctx.api("DELETE", f"{V}/containers/{c}")
        ctx.see("delete after", ctx.api("DELETE", f"{V}/volumes/{vol}").status)
    finally:
        finish(ctx, [c], [vol])


@scenario("api.volumes-prune", API)
def volumes_prune(ctx: Ctx):
    """`POST /volumes/prune` with label filters: what it removes, its answer keys; a bad filter"""
    keep, gone = ctx.n("keep"), ctx.n("gone")
    try:
        for name, mark in ((keep, "keep"), (gone, "gone")):
            ctx.api("POST", f"{V}/volumes/create", {"Name": name, "Labels": {"wrun-compat.case": ctx.prefix, "mark": mark}})
        r = ctx.api("POST", f"{V}/volumes/prune", query={"filters": json.dumps({"label": [ctx.label], "label!": ["mark=keep"]})})
        doc = r.json()
        ctx.see("status", r.status)
        ctx.see_shape("answer", doc)
        ctx.see("deleted", sorted(n.replace(ctx.prefix, "P") for n in doc.get("VolumesDeleted") or []))
        ctx.see("left", sorted(v["Name"].replace(ctx.prefix, "P") for v in ctx.api("GET", f"{V}/volumes", query={"filters": json.dumps({"name": [ctx.prefix]})}).json()["Volumes"]))
        ctx.see("bad filter", body(ctx, ctx.api("POST", f"{V}/volumes/prune", query={"filters": json.dumps({"dangling": ["true"]})})))
    finally:
        finish(ctx, volumes=[keep, gone])


@scenario("cli.volume", CLI)
def volume_cli(ctx: Ctx):
    """`docker volume create|ls|inspect|rm|prune`: output, exit codes, errors"""
    a, b = ctx.n("a"), ctx.n("b")
    try:
        ctx.see_result("create", ctx.docker("volume", "create", "--label", ctx.label, a))
        ctx.see_result("create --name", ctx.docker("volume", "create", "--name", b, "--label", ctx.label, "--label", "x=y"))
        ctx.see_result("ls", ctx.docker("volume", "ls", "--filter", f"name={ctx.prefix}"))
        ctx.see_result("ls -q label", ctx.docker("volume", "ls", "-q", "--filter", "label=x=y"))
        # One label per row: the CLI joins a map's labels in Go's random order.
        ctx.see_result("ls format", ctx.docker("volume", "ls", "--filter", f"name={ctx.prefix}", "--format", '{{.Name}} {{.Driver}} {{.Scope}} {{.Label "x"}}'))
        fields = ctx.docker("volume", "inspect", "--format", "{{.Name}} {{.Driver}} {{.Scope}} {{json .Labels}} {{json .Options}}", a)
        ctx.see_result("inspect format", fields)
        doc = json.loads(ctx.ok("volume", "inspect", b))
        ctx.see_shape("inspect", doc)
        ctx.see_result("inspect missing", ctx.docker("volume", "inspect", ctx.n("none")))
        ctx.see_result("create bad", ctx.docker("volume", "create", "a/b"))
        ctx.see_result("create short", ctx.docker("volume", "create", "x"))
        ctx.see_result("create two", ctx.docker("volume", "create", ctx.n("c"), ctx.n("d")))
        ctx.see_result("rm missing", ctx.docker("volume", "rm", ctx.n("none")))
        ctx.see_result("rm -f missing", ctx.docker("volume", "rm", "-f", ctx.n("none")))
        ctx.see_result("prune", ctx.docker("volume", "prune", "-f", "--filter", "label=x=y", "--filter", f"label={ctx.label}"))
        ctx.see_result("rm", ctx.docker("volume", "rm", a))
        ctx.see_result("ls after", ctx.docker("volume", "ls", "-q", "--filter", f"name={ctx.prefix}"))
    finally:
        finish(ctx, volumes=[a, b])


@scenario("cli.run.named-volume", CLI)
def run_named_volume(ctx: Ctx):
    """`-v NAME:/path` makes the volume; another container reads what the first wrote; Mounts and Binds"""
    vol, w, r = ctx.n("data"), ctx.n("w"), ctx.n("r")
    try:
        ctx.see_result("write", ctx.docker("run", "--name", w, "-v", f"{vol}:/out", FS_COPY))
        ctx.see_result("read", ctx.docker("run", "--name", r, "-v", f"{vol}:/in:ro", "-v", f"{ctx.n('copy')}:/out", FS_COPY, "/in/words.txt", "/out/again.txt"))
        m = json.loads(ctx.ok("inspect", "-f", "{{json .Mounts}}", r))
        ctx.see("Mounts", sorted(({k: str(v).replace(ctx.prefix, "P") for k, v in x.items() if k != "Source"} for x in m), key=lambda x: x["Destination"]))
        ctx.see("Sources end in _data", all(x["Source"].endswith(f"/volumes/{x['Name']}/_data") for x in m))
        # The CLI sends the binds in the order of a Go map.
        ctx.see("Binds", sorted(b.replace(ctx.prefix, "P") for b in json.loads(ctx.ok("inspect", "-f", "{{json .HostConfig.Binds}}", r))))
        ctx.see_result("rm in use", ctx.docker("volume", "rm", vol))
    finally:
        finish(ctx, [w, r], [vol, ctx.n("copy")])


@scenario("cli.ps.volume-filter", CLI)
def ps_volume_filter(ctx: Ctx):
    """`ps --filter volume=` matches a volume's name or a mount's destination (not a volume's host path); the Mounts and LocalVolumes columns"""
    vol, v, b = ctx.n("vol"), ctx.n("v"), ctx.n("b")
    out = ctx.tmp / "bind"
    out.mkdir()
    mine = f"label={ctx.label}"
    try:
        ctx.ok("volume", "create", vol)
        ctx.ok("create", "--name", v, "--label", ctx.label, "-v", f"{vol}:/data", HELLO)
        ctx.ok("create", "--name", b, "--label", ctx.label, "-v", f"{out}:/b", HELLO)
        source = json.loads(ctx.ok("inspect", "-f", "{{json .Mounts}}", v))[0]["Source"]
        for what, value in [
            ("by name", vol),
            ("by destination", "/data"),
            ("by a volume's host path", source),
            ("by a bind's host path", str(out)),
            ("by nothing mounted", "/nowhere"),
        ]:
            ctx.see_result(what, ctx.docker("ps", "-a", "--filter", mine, "--filter", f"volume={value}", "--format", "{{.Names}}"))
        row = "{{.Names}} {{.LocalVolumes}} {{.Mounts}}"
        ctx.see_result("columns cut", ctx.docker("ps", "-a", "--filter", mine, "--filter", f"name={v}", "--format", row))
        rows = ctx.ok("ps", "-a", "--no-trunc", "--filter", mine, "--format", row)
        ctx.see("columns whole", sorted(r.replace(str(out), "<bind>") for r in rows.splitlines()))
    finally:
        finish(ctx, [v, b], [vol])


@scenario("cli.run.one-letter-volume", CLI)
def run_one_letter_volume(ctx: Ctx):
    """`-v x:/out`: a one-letter volume name, which the CLI sends as an anonymous volume's path"""
    name = ctx.n("x")
    try:
        ctx.see_result("run", ctx.docker("run", "--name", name, "-v", "x:/out", FS_COPY))
    finally:
        finish(ctx, [name])


@scenario("cli.rm-v-anonymous", CLI)
def rm_v_anonymous(ctx: Ctx):
    """an image VOLUME's anonymous volume: in Mounts, kept by `rm`, removed by `rm -v` and by `--rm`"""
    a, b = ctx.n("a"), ctx.n("b")
    made = []
    try:
        ctx.see_result("run", ctx.docker("run", "--name", a, FS_COPY))
        ctx.see_result("run", ctx.docker("run", "--name", b, FS_COPY))
        names = []
        for c in (a, b):
            m = json.loads(ctx.ok("inspect", "-f", "{{json .Mounts}}", c))
            ctx.see("Mounts", [{k: text(str(v)) for k, v in x.items() if k != "Source"} for x in m])
            names += [x["Name"] for x in m]
        made += names
        ctx.ok("rm", "-v", a)
        ctx.ok("rm", b)
        ctx.see("rm -v took it", ctx.docker("volume", "inspect", names[0]).code)
        ctx.see("rm kept it", ctx.docker("volume", "inspect", names[1]).code)
        before = set(ctx.ok("volume", "ls", "-q").split())
        ctx.see_result("run --rm", ctx.docker("run", "--rm", FS_COPY))
        # Another scenario may make volumes meanwhile: only an anonymous
        # volume of an image VOLUME at /out that is still here counts.
        def left():
            new = set(ctx.ok("volume", "ls", "-q").split()) - before
            return [n for n in new if len(n) == 64 and ctx.docker("volume", "inspect", n).code == 0]
        ctx.until("the --rm container's anonymous volume to go", lambda: not left() or None)
        ctx.see("--rm took it", left())
    finally:
        finish(ctx, [a, b], made)


@scenario("sdk.volumes", SDK)
def sdk_volumes(ctx: Ctx):
    """`volumes.create/get/list/remove` and a container's volume through the SDK"""
    name = ctx.n("sv")
    try:
        v = ctx.sdk.volumes.create(name=name, labels={"wrun-compat.case": ctx.prefix})
        ctx.see("created", (v.name.replace(ctx.prefix, "P"), sorted(v.attrs)))
        ctx.see("get", ctx.sdk.volumes.get(name).attrs["Labels"])
        ctx.see("list", [x.name.replace(ctx.prefix, "P") for x in ctx.sdk.volumes.list(filters={"label": ctx.label})])
        c = ctx.sdk.containers.create(FS_COPY, name=ctx.n("c"), volumes={name: {"bind": "/out", "mode": "rw"}})
        ctx.see("mounts", [(m["Type"], m["Destination"], m["RW"]) for m in c.attrs["Mounts"]])
        c.remove()
        ctx.sdk.volumes.get(name).remove()
        ctx.see("removed", [x.name for x in ctx.sdk.volumes.list(filters={"label": ctx.label})])
    finally:
        finish(ctx, [ctx.n("c")], [name])
