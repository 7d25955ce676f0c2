"""Scenarios over raw HTTP on the daemon's socket: status codes and error
bodies of bad requests, the documents of the list and system routes, the
query options the clients send."""

from __future__ import annotations

import json
import time

from endpoint import Ctx, Response, SetupFailed
from normalize import text
from registry import HELLO, IDLE, scenario

API = "HTTP API"
V = "/v1.41"


def answer(ctx: Ctx, r: Response) -> dict:
    """Status, content type and the body (error message or shape)."""
    out = {"status": r.status, "json": r.headers.get("content-type", "").startswith("application/json")}
    if r.status >= 400:
        try:
            body = r.json()
            out["body"] = {k: text(str(v).replace(ctx.prefix, "P")) for k, v in body.items()} if isinstance(body, dict) else body
        except ValueError:
            out["body"] = text(r.body.decode(errors="replace").replace(ctx.prefix, "P"))
    return out


def create(ctx: Ctx, name: str, image: str = HELLO, **extra) -> str:
    body = {"Image": image, "Labels": {"wrun-compat.case": ctx.prefix}} | extra
    r = ctx.api("POST", f"{V}/containers/create", body, {"name": name})
    if r.status != 201:
        raise SetupFailed(f"create {name}: {r.status} {r.body[:200]!r}")
    return r.json()["Id"]


def started_idle(ctx: Ctx, name: str) -> str:
    cid = create(ctx, name, IDLE)
    ctx.api("POST", f"{V}/containers/{cid}/start")
    ctx.until_logs(name, "ready")
    return cid


@scenario("api.ping", API)
def ping(ctx: Ctx):
    """`GET /_ping` and `HEAD /_ping`: body, headers the clients read"""
    r = ctx.api("GET", "/_ping")
    ctx.see("GET", {"status": r.status, "body": r.body.decode()})
    ctx.see("headers", sorted(h for h in r.headers if h in ("api-version", "ostype", "docker-experimental", "cache-control", "pragma")))
    h = ctx.api("HEAD", "/_ping")
    ctx.see("HEAD", {"status": h.status, "body": h.body.decode()})


@scenario("api.version", API)
def version(ctx: Ctx):
    """`GET /version` keys and types, unprefixed and prefixed"""
    ctx.see_shape("version", ctx.api("GET", "/version").json())
    ctx.see("prefixed", ctx.api("GET", f"{V}/version").status)


@scenario("api.version-too-new", API)
def version_too_new(ctx: Ctx):
    """a path with an API version above the daemon's is refused (400)"""
    ctx.see("v1.99", answer(ctx, ctx.api("GET", "/v1.99/version")))


@scenario("api.version-too-old", API)
def version_too_old(ctx: Ctx):
    """a path with an API version below the minimum is refused"""
    ctx.see("v1.0", answer(ctx, ctx.api("GET", "/v1.0/version")))


@scenario("api.unknown-path", API)
def unknown_path(ctx: Ctx):
    """an unknown path: 404 with Docker's body"""
    ctx.see("GET /nosuch", answer(ctx, ctx.api("GET", f"{V}/nosuch")))
    ctx.see("GET /containers/x/nosuch", answer(ctx, ctx.api("GET", f"{V}/containers/x/nosuch")))


@scenario("api.wrong-method", API)
def wrong_method(ctx: Ctx):
    """a known path with a method it does not serve"""
    ctx.see("PUT /containers/json", answer(ctx, ctx.api("PUT", f"{V}/containers/json")))
    ctx.see("DELETE /version", answer(ctx, ctx.api("DELETE", f"{V}/version")))
    ctx.see("GET /containers/create", answer(ctx, ctx.api("GET", f"{V}/containers/create")))


@scenario("api.info", API)
def info(ctx: Ctx):
    """`GET /info` keys and types"""
    ctx.see_shape("info", ctx.api("GET", f"{V}/info").json())


@scenario("api.containers-json", API)
def containers_json(ctx: Ctx):
    """`GET /containers/json?all=1` rows: keys and types"""
    create(ctx, ctx.n("a"))
    r = ctx.api("GET", f"{V}/containers/json", query={"all": "1", "filters": json.dumps({"label": [ctx.label]})})
    ctx.see("status", r.status)
    ctx.see_shape("rows", r.json())


@scenario("api.containers-json-limit-size", API)
def containers_limit(ctx: Ctx):
    """`limit=` and `size=1` of `GET /containers/json`"""
    for x in "abc":
        create(ctx, ctx.n(x))
    f = json.dumps({"label": [ctx.label]})
    r = ctx.api("GET", f"{V}/containers/json", query={"all": "1", "limit": "2", "filters": f})
    ctx.see("limit 2", [n.replace(ctx.prefix, "P") for row in r.json() for n in row["Names"]])
    r = ctx.api("GET", f"{V}/containers/json", query={"all": "1", "size": "1", "filters": f})
    ctx.see("size keys", sorted({k for row in r.json() for k in row if k.startswith("Size")}))


@scenario("api.containers-json-filters-malformed", API)
def containers_filters_malformed(ctx: Ctx):
    """`GET /containers/json` with `filters` that are not JSON is refused"""
    ctx.see("not json", answer(ctx, ctx.api("GET", f"{V}/containers/json?filters=%7B")))


@scenario("api.containers-json-filters-unknown", API)
def containers_filters_unknown(ctx: Ctx):
    """an unknown filter key is refused (400) with Docker's message; the old map form is accepted"""
    ctx.see("unknown key", answer(ctx, ctx.api("GET", f"{V}/containers/json", query={"filters": '{"bogus":["1"]}'})))
    ctx.see("old map form", ctx.api("GET", f"{V}/containers/json", query={"filters": '{"status":{"running":true}}'}).status)


@scenario("api.images-json", API)
def images_json(ctx: Ctx):
    """`GET /images/json` rows: keys and types"""
    r = ctx.api("GET", f"{V}/images/json")
    ctx.see("status", r.status)
    ctx.see_shape("rows", [row for row in r.json() if HELLO in (row.get("RepoTags") or [])])


@scenario("api.images-json-reference", API)
def images_json_reference(ctx: Ctx):
    """`GET /images/json?filters={"reference":[...]}` selects by name"""
    r = ctx.api("GET", f"{V}/images/json", query={"filters": json.dumps({"reference": [HELLO]})})
    ctx.see("tags", sorted(t for row in r.json() for t in row.get("RepoTags") or []))


@scenario("api.images-json-filters-malformed", API)
def images_filters_malformed(ctx: Ctx):
    """`GET /images/json` with `filters` that are not JSON is refused"""
    ctx.see("not json", answer(ctx, ctx.api("GET", f"{V}/images/json?filters=%7B")))


@scenario("api.images-json-filters-unknown", API)
def images_filters_unknown(ctx: Ctx):
    """an unknown `GET /images/json` filter key is refused (400)"""
    ctx.see("unknown key", answer(ctx, ctx.api("GET", f"{V}/images/json", query={"filters": '{"bogus":["1"]}'})))


@scenario("api.images-json-all-digests", API)
def images_all_digests(ctx: Ctx):
    """`all=1` and `digests=1` of `GET /images/json` answer rows of the same shape"""
    f = json.dumps({"reference": [HELLO]})
    a = ctx.api("GET", f"{V}/images/json", query={"all": "1", "filters": f})
    d = ctx.api("GET", f"{V}/images/json", query={"digests": "1", "filters": f})
    ctx.see("all", {"status": a.status, "n": len(a.json())})
    ctx.see("digests", {"status": d.status, "n": len(d.json())})
    ctx.see_shape("digests rows", d.json())


@scenario("api.create-malformed", API)
def create_malformed(ctx: Ctx):
    """`POST /containers/create` with a body that is not JSON is refused"""
    ctx.see("bad json", answer(ctx, ctx.api("POST", f"{V}/containers/create", b"{", headers={"Content-Type": "application/json"})))


@scenario("api.create-errors", API)
def create_errors(ctx: Ctx):
    """`POST /containers/create` refusals: no image, missing image, bad name, taken name"""
    ctx.see("no image", answer(ctx, ctx.api("POST", f"{V}/containers/create", {})))
    ctx.see("missing image", answer(ctx, ctx.api("POST", f"{V}/containers/create", {"Image": f"{ctx.n('nosuch')}:1"})))
    ctx.see("bad name", answer(ctx, ctx.api("POST", f"{V}/containers/create", {"Image": HELLO}, {"name": "a/b"})))
    create(ctx, ctx.n("a"))
    ctx.see("taken name", answer(ctx, ctx.api("POST", f"{V}/containers/create", {"Image": HELLO}, {"name": ctx.n("a")})))


@scenario("api.create-checks", API)
def create_checks(ctx: Ctx):
    """`POST /containers/create` values dockerd refuses whatever runs them: Memory under 6 MB, Healthcheck durations under 1 ms or negative retries, a StopSignal that is no signal (in its order)"""
    for what, extra in [
        ("memory 1", {"HostConfig": {"Memory": 1}}),
        ("memory -1", {"HostConfig": {"Memory": -1}}),
        ("memory just under 6 MB", {"HostConfig": {"Memory": 6 * 1024 * 1024 - 1}}),
        ("interval -1", {"Healthcheck": {"Test": ["CMD", "true"], "Interval": -1}}),
        ("interval 5 ns", {"Healthcheck": {"Interval": 5}}),
        ("timeout -1", {"Healthcheck": {"Timeout": -1}}),
        ("retries -1", {"Healthcheck": {"Retries": -1}}),
        ("start period -1", {"Healthcheck": {"StartPeriod": -1}}),
        ("bogus signal", {"StopSignal": "BOGUS"}),
        ("signal 0", {"StopSignal": "0"}),
        ("all three", {"StopSignal": "X", "Healthcheck": {"Interval": -1}, "HostConfig": {"Memory": 1}}),
        ("health and memory", {"Healthcheck": {"Interval": -1}, "HostConfig": {"Memory": 1}}),
    ]:
        body = {"Image": HELLO} | extra
        ctx.see(what, answer(ctx, ctx.api("POST", f"{V}/containers/create", body, {"name": ctx.n("c")})))


@scenario("api.images-json-before-bad-reference", API)
def images_before_bad_reference(ctx: Ctx):
    """`GET /images/json` with a `before`/`since` that is no reference: 400 in dockerd's words; a missing image: 404"""
    for what, value in [
        ("before bad ref!", {"before": ["bad ref!"]}),
        ("before BAD", {"before": ["BAD"]}),
        ("since a:-x", {"since": ["a:-x"]}),
        ("before missing", {"before": [f"{ctx.n('nosuch')}:1"]}),
    ]:
        ctx.see(what, answer(ctx, ctx.api("GET", f"{V}/images/json", query={"filters": json.dumps(value)})))


@scenario("api.create-answer", API)
def create_answer(ctx: Ctx):
    """`POST /containers/create` answers 201 with Id and Warnings"""
    r = ctx.api("POST", f"{V}/containers/create", {"Image": HELLO}, {"name": ctx.n("c")})
    ctx.see("status", r.status)
    ctx.see_shape("body", r.json())


@scenario("api.create-mounts", API)
def create_mounts(ctx: Ctx):
    """HostConfig.Mounts (type bind) is applied and shown by inspect"""
    out = ctx.tmp / "out"
    out.mkdir()
    cid = create(ctx, ctx.n("m"), HELLO, HostConfig={"Mounts": [{"Type": "bind", "Source": str(out), "Target": "/out"}]})
    doc = ctx.api("GET", f"{V}/containers/{cid}/json").json()
    ctx.see("Mounts", [{k: m.get(k) for k in ("Type", "Destination", "RW")} for m in doc.get("Mounts") or []])
    ctx.see("HostConfig.Mounts", [{k: m.get(k) for k in ("Type", "Target")} for m in doc["HostConfig"].get("Mounts") or []])


@scenario("api.start-stop-codes", API)
def start_stop_codes(ctx: Ctx):
    """start of a started container is 304, stop of a stopped one 304, missing ones 404"""
    cid = started_idle(ctx, ctx.n("s"))
    ctx.see("start again", answer(ctx, ctx.api("POST", f"{V}/containers/{cid}/start")))
    ctx.see("stop", answer(ctx, ctx.api("POST", f"{V}/containers/{cid}/stop", query={"t": "1"})))
    ctx.see("stop again", answer(ctx, ctx.api("POST", f"{V}/containers/{cid}/stop")))
    ctx.see("start missing", answer(ctx, ctx.api("POST", f"{V}/containers/{ctx.n('nosuch')}/start")))
    ctx.see("stop missing", answer(ctx, ctx.api("POST", f"{V}/containers/{ctx.n('nosuch')}/stop")))


@scenario("api.delete-codes", API)
def delete_codes(ctx: Ctx):
    """DELETE of a running container is 409, with force 204, missing 404"""
    cid = started_idle(ctx, ctx.n("d"))
    ctx.see("running", answer(ctx, ctx.api("DELETE", f"{V}/containers/{cid}")))
    ctx.see("force", answer(ctx, ctx.api("DELETE", f"{V}/containers/{cid}", query={"force": "1"})))
    ctx.see("missing", answer(ctx, ctx.api("DELETE", f"{V}/containers/{cid}")))


@scenario("api.kill-bad-signal", API)
def kill_bad_signal(ctx: Ctx):
    """kill with an unknown signal name or number is refused"""
    cid = started_idle(ctx, ctx.n("k"))
    ctx.see("BOGUS", answer(ctx, ctx.api("POST", f"{V}/containers/{cid}/kill", query={"signal": "BOGUS"})))
    ctx.see("99", answer(ctx, ctx.api("POST", f"{V}/containers/{cid}/kill", query={"signal": "99"})))


@scenario("api.kill-not-running", API)
def kill_not_running(ctx: Ctx):
    """kill with KILL is 204; of a stopped container 409 with Docker's message"""
    cid = started_idle(ctx, ctx.n("k"))
    ctx.see("KILL", answer(ctx, ctx.api("POST", f"{V}/containers/{cid}/kill", query={"signal": "KILL"})))
    ctx.until_state(ctx.n("k"), "exited")
    ctx.see("not running", answer(ctx, ctx.api("POST", f"{V}/containers/{cid}/kill")))


@scenario("api.exec-ids", API)
def exec_ids(ctx: Ctx):
    """container inspect's `ExecIDs` with a created, a running and an ended exec, after the container's stop and its next start; `GET /exec/{id}/json` of each after the stop"""
    cid = started_idle(ctx, ctx.n("c"))

    def exec_create(cmd: list) -> str:
        r = ctx.api("POST", f"{V}/containers/{cid}/exec", {"Cmd": cmd})
        if r.status != 201:
            raise SetupFailed(f"exec create: {r.status} {r.body[:200]!r}")
        return r.json()["Id"]

    def exec_ids() -> list | None:
        ids = ctx.api("GET", f"{V}/containers/{cid}/json").json()["ExecIDs"]
        return None if ids is None else sorted(names.get(i, "another") for i in ids)

    def exec_doc(name: str):
        r = ctx.api("GET", f"{V}/exec/{execs[name]}/json")
        if r.status != 200:
            return answer(ctx, r)
        return {k: v for k, v in r.json().items() if k in ("Running", "ExitCode", "CanRemove")}

    execs = {"created": exec_create(["/idle.wasm", "0"])}
    execs["running"] = exec_create(["/idle.wasm"])
    execs["ended"] = exec_create(["/idle.wasm", "0"])
    names = {i: name for name, i in execs.items()}
    ctx.see("ExecIDs, none started", exec_ids())
    for name in ("running", "ended"):
        ctx.api("POST", f"{V}/exec/{execs[name]}/start", {"Detach": True})
    ctx.until("the exec ended", lambda: exec_doc("ended").get("ExitCode") == 0)
    ctx.see("ExecIDs", exec_ids())
    ctx.see("ended exec", exec_doc("ended"))
    ctx.api("POST", f"{V}/containers/{cid}/stop", query={"t": "1"})
    ctx.see("ExecIDs after stop", exec_ids())
    for name in ("created", "running", "ended"):
        ctx.see(f"{name} exec after stop", exec_doc(name))
    ctx.api("POST", f"{V}/containers/{cid}/start")
    ctx.see("ExecIDs after start", exec_ids())


@scenario("api.wait-conditions", API)
def wait_conditions(ctx: Ctx):
    """`/wait` answers StatusCode and Error; a bad condition is 400"""
    cid = create(ctx, ctx.n("w"), IDLE, Cmd=["x"])
    ctx.api("POST", f"{V}/containers/{cid}/start")
    ctx.until_state(ctx.n("w"), "exited")
    r = ctx.api("POST", f"{V}/containers/{cid}/wait")
    ctx.see("wait", {"status": r.status, "body": r.json()})
    r = ctx.api("POST", f"{V}/containers/{cid}/wait", query={"condition": "not-running"})
    ctx.see("not-running", {"status": r.status, "body": r.json()})
    ctx.see("bogus", answer(ctx, ctx.api("POST", f"{V}/containers/{cid}/wait", query={"condition": "bogus"})))
    ctx.see("missing", answer(ctx, ctx.api("POST", f"{V}/containers/{ctx.n('nosuch')}/wait")))


@scenario("api.logs-no-stream", API)
def logs_no_stream(ctx: Ctx):
    """`/logs` without stdout or stderr is 400"""
    cid = create(ctx, ctx.n("l"))
    ctx.see("neither", answer(ctx, ctx.api("GET", f"{V}/containers/{cid}/logs")))
    r = ctx.api("GET", f"{V}/containers/{cid}/logs", query={"stdout": "1"})
    ctx.see("stdout of a created one", {"status": r.status, "body": r.body.decode()})


@scenario("api.logs-multiplexed", API)
def logs_multiplexed(ctx: Ctx):
    """`/logs` frames: stream byte, length, payload, for stdout and stderr"""
    cid = create(ctx, ctx.n("lm"), IDLE, Cmd=["x"])
    ctx.api("POST", f"{V}/containers/{cid}/start")
    ctx.until_state(ctx.n("lm"), "exited")
    r = ctx.api("GET", f"{V}/containers/{cid}/logs", query={"stdout": "1", "stderr": "1"})
    frames, b = [], r.body
    while len(b) >= 8:
        n = int.from_bytes(b[4:8], "big")
        frames.append([b[0], b[8 : 8 + n].decode()])
        b = b[8 + n :]
    ctx.see("frames", {"status": r.status, "content-type": r.headers.get("content-type"), "frames": frames, "rest": len(b)})


@scenario("api.inspect-size", API)
def inspect_size(ctx: Ctx):
    """`GET /containers/{id}/json?size=1` has SizeRw and SizeRootFs"""
    cid = create(ctx, ctx.n("s"))
    doc = ctx.api("GET", f"{V}/containers/{cid}/json", query={"size": "1"}).json()
    ctx.see("keys", sorted(k for k in doc if k.startswith("Size")))


@scenario("api.inspect-missing", API)
def inspect_missing(ctx: Ctx):
    """inspect of a missing container and image: 404 and Docker's message"""
    ctx.see("container", answer(ctx, ctx.api("GET", f"{V}/containers/{ctx.n('nosuch')}/json")))
    ctx.see("image", answer(ctx, ctx.api("GET", f"{V}/images/{ctx.n('nosuch')}/json")))
    ctx.see("image with tag", answer(ctx, ctx.api("GET", f"{V}/images/{ctx.n('nosuch')}:2/json")))


@scenario("api.rename-errors", API)
def rename_errors(ctx: Ctx):
    """rename without a name, to a bad name, of a missing container"""
    cid = create(ctx, ctx.n("r"))
    ctx.see("no name", answer(ctx, ctx.api("POST", f"{V}/containers/{cid}/rename")))
    ctx.see("bad name", answer(ctx, ctx.api("POST", f"{V}/containers/{cid}/rename", query={"name": "a/b"})))
    ctx.see("missing", answer(ctx, ctx.api("POST", f"{V}/containers/{ctx.n('nosuch')}/rename", query={"name": ctx.n("x")})))
    ctx.see("ok", answer(ctx, ctx.api("POST", f"{V}/containers/{cid}/rename", query={"name": ctx.n("r2")})))


@scenario("api.pause-codes", API)
def pause_codes(ctx: Ctx):
    """pause/unpause status codes, in and out of order"""
    cid = create(ctx, ctx.n("p"), IDLE)
    ctx.see("pause created", answer(ctx, ctx.api("POST", f"{V}/containers/{cid}/pause")))
    ctx.api("POST", f"{V}/containers/{cid}/start")
    ctx.see("unpause running", answer(ctx, ctx.api("POST", f"{V}/containers/{cid}/unpause")))
    ctx.see("pause", answer(ctx, ctx.api("POST", f"{V}/containers/{cid}/pause")))
    ctx.see("pause paused", answer(ctx, ctx.api("POST", f"{V}/containers/{cid}/pause")))
    ctx.see("unpause", answer(ctx, ctx.api("POST", f"{V}/containers/{cid}/unpause")))


@scenario("api.containers-prune", API)
def containers_prune(ctx: Ctx):
    """`POST /containers/prune` with a label filter: the answer's keys and what it removed"""
    a = create(ctx, ctx.n("a"))
    r = ctx.api("POST", f"{V}/containers/prune", query={"filters": json.dumps({"label": [ctx.label]})})
    ctx.see("status", r.status)
    body = r.json()
    ctx.see_shape("body", body)
    ctx.see("removed ours", (body.get("ContainersDeleted") or []) == [a])


@scenario("api.images-prune", API, serial=True)
def images_prune(ctx: Ctx):
    """`POST /images/prune` answer keys"""
    r = ctx.api("POST", f"{V}/images/prune", query={"filters": json.dumps({"label": ["nosuch.label"]})})
    ctx.see("status", r.status)
    ctx.see_shape("body", r.json())


@scenario("api.system-df", API, serial=True)
def system_df(ctx: Ctx):
    """`GET /system/df` keys and types"""
    create(ctx, ctx.n("df"))
    r = ctx.api("GET", f"{V}/system/df")
    ctx.see("status", r.status)
    ctx.see_shape("df", r.json())


@scenario("api.events-json", API)
def events_json(ctx: Ctx):
    """`GET /events?since&until` streams JSON lines with Docker's keys"""
    since = time.time() - 0.5
    cid = create(ctx, ctx.n("e"))
    ctx.api("DELETE", f"{V}/containers/{cid}")
    until = time.time() + 0.5
    r = ctx.api(
        "GET", f"{V}/events",
        query={"since": f"{since:.6f}", "until": f"{until:.6f}", "filters": json.dumps({"container": [cid]})},
    )
    evs = [json.loads(line) for line in r.body.decode().splitlines() if line.strip()]
    ctx.see("status", r.status)
    ctx.see("actions", [e.get("Action") for e in evs])
    ctx.see_shape("events", evs)


@scenario("api.events-bad", API)
def events_bad(ctx: Ctx):
    """`/events` with a bad filter or time is 400"""
    ctx.see("bad filter", answer(ctx, ctx.api("GET", f"{V}/events", query={"filters": '{"bogus":["1"]}', "until": "1"})))
    ctx.see("bad since", answer(ctx, ctx.api("GET", f"{V}/events", query={"since": "yesterday", "until": "1"})))


@scenario("api.image-tag-codes", API)
def image_tag_codes(ctx: Ctx):
    """`POST /images/{name}/tag` codes: 201, missing 404, bad repo 400"""
    ctx.see("ok", answer(ctx, ctx.api("POST", f"{V}/images/{HELLO}/tag", query={"repo": ctx.n("t"), "tag": "1"})))
    ctx.see("missing", answer(ctx, ctx.api("POST", f"{V}/images/{ctx.n('nosuch')}:1/tag", query={"repo": ctx.n("t"), "tag": "2"})))
    ctx.see("bad repo", answer(ctx, ctx.api("POST", f"{V}/images/{HELLO}/tag", query={"repo": "Bad", "tag": "1"})))


@scenario("api.image-delete", API)
def image_delete(ctx: Ctx):
    """`DELETE /images/{name}` answers the Untagged/Deleted list; missing is 404"""
    ctx.api("POST", f"{V}/images/{HELLO}/tag", query={"repo": ctx.n("t"), "tag": "1"})
    r = ctx.api("DELETE", f"{V}/images/{ctx.n('t')}:1")
    ctx.see("status", r.status)
    ctx.see("body", [{k: text(v.replace(ctx.prefix, "P")) for k, v in item.items()} for item in r.json()])
    ctx.see("missing", answer(ctx, ctx.api("DELETE", f"{V}/images/{ctx.n('t')}:1")))


@scenario("api.image-history", API)
def image_history(ctx: Ctx):
    """`GET /images/{name}/history` keys and types"""
    r = ctx.api("GET", f"{V}/images/{HELLO}/history")
    ctx.see("status", r.status)
    ctx.see_shape("history", r.json())


@scenario("api.images-create-missing", API)
def images_create(ctx: Ctx):
    """`POST /images/create` (pull) of an image no registry has"""
    r = ctx.api("POST", f"{V}/images/create", query={"fromImage": ctx.n("nosuch"), "tag": "1"}, timeout=60)
    ctx.see("status", r.status)
    ctx.see("json error", r.headers.get("content-type", "").startswith("application/json"))


@scenario("api.container-stats", API)
def container_stats(ctx: Ctx):
    """`GET /containers/{id}/stats?stream=0` keys and types"""
    cid = started_idle(ctx, ctx.n("st"))
    r = ctx.api("GET", f"{V}/containers/{cid}/stats", query={"stream": "0"})
    ctx.see("status", r.status)
    ctx.see_shape("stats", r.json())


@scenario("api.container-top", API)
def container_top(ctx: Ctx):
    """`GET /containers/{id}/top` keys; of a stopped one 409"""
    cid = started_idle(ctx, ctx.n("t"))
    r = ctx.api("GET", f"{V}/containers/{cid}/top")
    ctx.see("status", r.status)
    ctx.see_shape("top", r.json() if r.status == 200 else None)
    c2 = create(ctx, ctx.n("t2"))
    ctx.see("stopped", answer(ctx, ctx.api("GET", f"{V}/containers/{c2}/top")))


@scenario("api.networks", API)
def networks(ctx: Ctx):
    """`GET /networks` names, and `GET /networks/none`"""
    r = ctx.api("GET", f"{V}/networks")
    ctx.see("status", r.status)
    ctx.see("names", sorted(n.get("Name") for n in r.json()) if r.status == 200 else None)
    n = ctx.api("GET", f"{V}/networks/none")
    ctx.see("none", n.status)
    ctx.see_shape("none doc", n.json() if n.status == 200 else None)


@scenario("api.volumes", API)
def volumes(ctx: Ctx):
    """`GET /volumes` answers Volumes and Warnings"""
    r = ctx.api("GET", f"{V}/volumes", query={"filters": json.dumps({"name": [ctx.n("v")]})})
    ctx.see("status", r.status)
    ctx.see_shape("body", r.json() if r.status == 200 else None)
