#!/usr/bin/env python3
"""Differential tests: every scenario of the table runs against a real
dockerd (the oracle) and against wrun's daemon, through the docker CLI,
raw HTTP, docker-py and docker-compose; their observations must agree, or
the difference must be listed in expectations.toml with its reason.

Run by tests/docker_compat.rs (which starts the wrun daemon and builds its
images); see docs/docker-compat.md for running it by hand."""

from __future__ import annotations

import argparse
import concurrent.futures
import hashlib
import io
import json
import random
import re
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
import tomllib
import traceback
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
sys.path.insert(0, str(HERE))

from endpoint import Ctx, Endpoint, ScenarioTimeout, SetupFailed  # noqa: E402
from normalize import shape_diff, text  # noqa: E402
from registry import BASE_IMAGES, CASES, CLIENTS, Case  # noqa: E402

import scenarios_api  # noqa: E402,F401
import scenarios_build  # noqa: E402,F401
import scenarios_cli  # noqa: E402,F401
import scenarios_compose  # noqa: E402,F401
import scenarios_images  # noqa: E402,F401
import scenarios_networks  # noqa: E402,F401
import scenarios_registry  # noqa: E402,F401
import scenarios_rootfs  # noqa: E402,F401
import scenarios_sdk  # noqa: E402,F401
import scenarios_volumes  # noqa: E402,F401

KINDS = {"deliberate": "deliberate difference", "bug": "known bug"}
DOC_COMMAND = "WRUN_DOCKER_ORACLE=$(dev/oracle) cargo test --test docker_compat -- --nocapture"

# --- the oracle's images: native twins of wrun's examples ------------------

TWINS = {
    # image: (source, file in the rootfs, extra rootfs files)
    "compat-hello:1.0": ("hello.c", "hello.wasm", {}),
    "compat-idle:1.0": ("idle.c", "idle.wasm", {}),
    "compat-cat:1.0": ("cat.c", "cat.wasm", {}),
    "compat-fs-copy:1.0": ("fs-copy.c", "fs-copy.wasm", {"share/words.txt": REPO / "examples/fs-copy/words.txt"}),
    # tests/compat/fsh-image/wrun.toml copies these two folders.
    "compat-fsh:1.0": ("fsh.c", "fsh.wasm", {"etc": HERE / "fsh-image/etc", "data": HERE / "fsh-image/data"}),
}


def extra_key(extra: dict) -> list:
    """What a twin's cache key covers of its extra files: each file's text,
    a folder's files with their modes."""
    out = []
    for name, path in sorted(extra.items()):
        path = Path(path)
        if path.is_dir():
            files = [(str(f.relative_to(path)), f.stat().st_mode & 0o7777, f.read_text() if f.is_file() else "") for f in sorted(path.rglob("*"))]
            out.append((name, files))
        else:
            out.append((name, path.read_text()))
    return out


def owned_by_root(info: tarfile.TarInfo) -> tarfile.TarInfo:
    info.uid = info.gid = 0
    info.uname = info.gname = "root"
    return info


def import_changes(config: dict) -> list[str]:
    """`docker import -c` lines giving a native image wrun's image config."""
    changes = []
    if config.get("Entrypoint"):
        changes.append("ENTRYPOINT " + json.dumps(config["Entrypoint"]))
    if config.get("Cmd"):
        changes.append("CMD " + json.dumps(config["Cmd"]))
    for e in config.get("Env") or []:
        k, _, v = e.partition("=")
        changes.append(f"ENV {k}={json.dumps(v)}")
    if config.get("WorkingDir"):
        changes.append(f"WORKDIR {config['WorkingDir']}")
    if config.get("User"):
        changes.append(f"USER {config['User']}")
    for k, v in sorted((config.get("Labels") or {}).items()):
        changes.append(f"LABEL {json.dumps(k)}={json.dumps(v)}")
    for v in sorted(config.get("Volumes") or {}):
        changes.append(f"VOLUME {json.dumps([v])}")
    for p in sorted(config.get("ExposedPorts") or {}):
        changes.append(f"EXPOSE {p}")
    return changes


def prepare_oracle(oracle: Ctx, wrun: Ctx, work: Path) -> None:
    """Imports the native twin of each base image into dockerd, with the
    config of wrun's image, unless an identical one is there already."""
    for image, (source, target, extra) in TWINS.items():
        r = wrun.docker("image", "inspect", image)
        if r.code != 0:
            raise SetupFailed(f"wrun's daemon lacks {image}: {r.err.strip()}")
        config = json.loads(r.out)[0]["Config"]
        changes = import_changes(config)
        src = (HERE / "native" / source).read_bytes()
        key = hashlib.sha256(
            json.dumps([changes, src.decode(), extra_key(extra)]).encode()
        ).hexdigest()[:16]
        have = oracle.docker("image", "inspect", "-f", "{{.Comment}}", image)
        if have.code == 0 and have.out.strip() == f"wrun-compat twin {key}":
            continue
        binary = work / target
        cc = subprocess.run(["gcc", "-static", "-O2", "-o", str(binary), str(HERE / "native" / source)], capture_output=True, text=True)
        if cc.returncode != 0:
            raise SetupFailed(f"gcc -static {source}: {cc.stderr.strip()}")
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w") as t:
            t.add(binary, arcname=target)
            for name, path in extra.items():
                if Path(path).is_dir():
                    # As wrun's COPY of a folder: the folder 0755, what is
                    # in it with its own modes.
                    def top_dir(info: tarfile.TarInfo, top=name) -> tarfile.TarInfo:
                        if info.name == top:
                            info.mode = 0o755
                        return owned_by_root(info)

                    t.add(path, arcname=name, filter=top_dir)
                    continue
                parent = name.rsplit("/", 1)[0]
                info = tarfile.TarInfo(parent)
                info.type = tarfile.DIRTYPE
                info.mode = 0o755
                t.addfile(info)
                t.add(path, arcname=name)
        args = ["import", "-m", f"wrun-compat twin {key}"]
        for c in changes:
            args += ["-c", c]
        oracle.ok(*args, "-", image, stdin=buf.getvalue())


# --- running -----------------------------------------------------------------


def run_side(case: Case, ep: Endpoint, prefix: str, work: Path) -> tuple[list, str | None]:
    """Runs one scenario against one daemon; returns its observations and,
    if the scenario itself broke, why."""
    ctx = Ctx(ep, case.name, prefix, work / ep.side / prefix, time.monotonic() + case.timeout)
    broke = None
    try:
        case.fn(ctx)
    except (ScenarioTimeout, SetupFailed) as e:
        ctx.see("stopped", f"{type(e).__name__}: {text(str(e), prefix)}")
        broke = f"{type(e).__name__}: {e}"
    except Exception as e:  # a client's exception is an observation too
        ctx.see("stopped", f"{type(e).__module__}.{type(e).__name__}: {text(str(e), prefix)}")
        broke = "".join(traceback.format_exception(e)).strip()
    finally:
        try:
            cleanup(ctx)
        finally:
            ctx.close()
    return ctx.observed, broke


class Side:
    """One scenario against one daemon, in a thread of its own: a client
    call that hangs past the scenario's time is abandoned (the thread is a
    daemon thread) and recorded as such."""

    GRACE = 15

    def __init__(self, case: Case, ep: Endpoint, prefix: str, work: Path):
        self.case, self.ep, self.prefix, self.work = case, ep, prefix, work
        self.result = None
        self.seconds = float(case.timeout + self.GRACE)
        self.thread = threading.Thread(target=self._run, daemon=True, name=f"{case.name}@{ep.side}")

    def _run(self):
        start = time.monotonic()
        self.result = run_side(self.case, self.ep, self.prefix, self.work)
        self.seconds = time.monotonic() - start

    def finish(self):
        self.thread.join(self.case.timeout + self.GRACE)
        if self.result is None:
            why = f"ScenarioTimeout: still running after {self.case.timeout + self.GRACE:.0f} s (a client call hangs)"
            self.result = ([("stopped", why)], why)


def cleanup(ctx: Ctx) -> None:
    """Removes what the scenario made (names start with its prefix); lists
    everything and picks in Python, so it works whatever filters do."""
    ctx.deadline = time.monotonic() + 60
    ps = ctx.docker("ps", "-a", "--format", "{{.ID}} {{.Names}}")
    ids = [line.split()[0] for line in ps.out.splitlines() if len(line.split()) > 1 and line.split()[1].startswith(ctx.prefix)]
    if ids:
        ctx.docker("rm", "-f", *ids)
    images = ctx.docker("images", "--format", "{{.Repository}}:{{.Tag}}")
    refs = [r for r in images.out.split() if r.startswith(ctx.prefix)]
    if refs:
        ctx.docker("rmi", "-f", *refs)


def compare(docker_obs: list, wrun_obs: list) -> list[str]:
    """The differences between two observation lists, one line each."""
    diffs = []
    for i in range(max(len(docker_obs), len(wrun_obs))):
        d = docker_obs[i] if i < len(docker_obs) else None
        w = wrun_obs[i] if i < len(wrun_obs) else None
        if d == w or (d and w and d[0] == w[0] and is_shape(d[1]) and is_shape(w[1]) and not shape_diff(d[1]["shape"], w[1]["shape"])):
            continue
        if d is None:
            diffs.append(f"{w[0]}: only in wrun: {short(w[1])}")
            continue
        if w is None:
            diffs.append(f"{d[0]}: not reached in wrun (dockerd: {short(d[1])})")
            continue
        if d[0] != w[0]:
            diffs.append(f"step {i}: dockerd recorded {d[0]} = {short(d[1])}; wrun recorded {w[0]} = {short(w[1])}")
            break
        what, dv, wv = d[0], d[1], w[1]
        if is_shape(dv) and is_shape(wv):
            diffs.extend(f"{what}: {line}" for line in shape_diff(dv["shape"], wv["shape"]))
        elif isinstance(dv, dict) and isinstance(wv, dict):
            for k in list(dv) + [k for k in wv if k not in dv]:
                if dv.get(k) != wv.get(k):
                    diffs.append(f"{what}.{k}: dockerd {short(dv.get(k))}, wrun {short(wv.get(k))}")
        else:
            diffs.append(f"{what}: dockerd {short(dv)}, wrun {short(wv)}")
    return diffs


def is_shape(v) -> bool:
    return isinstance(v, dict) and set(v) == {"shape"}


def as_json(o):
    """JSON for what json cannot encode itself (the SDK's bytes)."""
    return o.decode(errors="replace") if isinstance(o, bytes) else repr(o)


def short(v, limit: int = 300) -> str:
    s = json.dumps(v, default=as_json)
    return s if len(s) <= limit else s[: limit - 3] + "..."


def judge(case: Case, diffs: list[str], oracle_broke: str | None, expected: dict | None) -> tuple[str, bool]:
    """A scenario's result and whether it passes."""
    if oracle_broke:
        return "scenario broken against dockerd", False
    if not diffs:
        if expected:
            return "same, but listed as a difference", False
        return "same", True
    if expected:
        return KINDS[expected["kind"]], True
    return "UNLISTED DIFFERENCE", False


def run_all(cases: list[Case], oracle: Endpoint, wrun: Endpoint, run_id: str, work: Path, jobs: int):
    index = {c.name: i for i, c in enumerate(CASES)}

    def one(case: Case):
        prefix = f"cx{run_id}{index[case.name]:03d}"
        sides = [Side(case, ep, prefix, work) for ep in (oracle, wrun)]
        for s in sides:
            s.thread.start()
        for s in sides:
            s.finish()
        (dobs, dbroke), (wobs, wbroke) = (s.result for s in sides)
        print(f"  ran {case.name}: dockerd {sides[0].seconds:.1f} s, wrun {sides[1].seconds:.1f} s", file=sys.stderr, flush=True)
        return case, dobs, dbroke, wobs, wbroke

    def chain(group: list[Case]):
        return [one(c) for c in group]

    chains: dict[str, list[Case]] = {}
    for c in cases:
        if c.chain and not c.serial:
            chains.setdefault(c.chain, []).append(c)
    tasks = [(chain, g) for g in chains.values()]
    tasks += [(lambda c: [one(c)], c) for c in cases if not c.serial and not c.chain]
    results = []
    with concurrent.futures.ThreadPoolExecutor(jobs) as pool:
        for rs in pool.map(lambda t: t[0](t[1]), tasks):
            results.extend(rs)
    for c in cases:
        if c.serial:
            r = one(c)
            results.append(r)
    return results




# --- expectations and the report ---------------------------------------------


def load_expectations(path: Path) -> dict:
    data = tomllib.loads(path.read_text())
    names = {c.name for c in CASES}
    for name, e in data.items():
        if name not in names:
            raise SystemExit(f"{path}: [{name!r}] names no scenario")
        if e.get("kind") not in KINDS:
            raise SystemExit(f"{path}: [{name!r}] kind must be one of {sorted(KINDS)}")
        if not str(e.get("reason", "")).strip():
            raise SystemExit(f"{path}: [{name!r}] needs a reason")
    return data


def doc_text(rows: list[dict]) -> str:
    counts = {}
    for r in rows:
        counts[r["result"]] = counts.get(r["result"], 0) + 1
    clients = [c for c in CLIENTS if any(r["client"] == c for r in rows)]
    out = [
        "# Docker compatibility: wrun against a real dockerd",
        "",
        "<!-- Written by tests/compat/harness.py from its results; do not edit by hand. -->",
        "",
        "Every scenario below runs twice, once against Docker Engine 20.10 (the",
        "oracle: a private `dockerd` started by `dev/oracle`, running native static",
        "binaries imported with `docker import`) and once against `wrun daemon`",
        "(running the wasm examples under the same image names and configs),",
        f"through the real clients: {', '.join(clients)}. It compares exit codes,",
        "output and table columns (IDs, times and sizes masked), the keys and value",
        "types of every JSON document (keys wrun adds as `Wrun…` extensions",
        "aside), status codes and error bodies of bad",
        "requests, and what filters and options do. A difference is either listed",
        "in `tests/compat/expectations.toml` with its reason — a deliberate one, or",
        "a known bug not yet fixed — or the test fails; a listed difference that",
        "no longer differs fails it too, so this page stays true.",
        "",
        "Run it by hand (as root; `dev/oracle` starts dockerd if none answers):",
        "",
        "```sh",
        DOC_COMMAND,
        "```",
        "",
        "`WRUN_COMPAT_ONLY=REGEX` runs the matching scenarios only;",
        "`WRUN_COMPAT_UPDATE_DOC=1` rewrites this page from the results. Each",
        "difference is detailed (which key, which output) in",
        "`target/tmp/docker-compat/report.md` after a run.",
        "",
        f"{len(rows)} scenarios: {counts.get('same', 0)} the same as dockerd, "
        f"{counts.get(KINDS['deliberate'], 0)} deliberate differences, {counts.get(KINDS['bug'], 0)} known bugs.",
        "",
        "| scenario | client | checks | result | reason |",
        "| --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        cell = lambda s: s.replace("|", "\\|").replace("\n", " ")
        out.append(f"| `{r['name']}` | {r['client']} | {cell(r['checks'])} | {r['result']} | {cell(r['reason'])} |")
    return "\n".join(out) + "\n"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--oracle", required=True, help="dockerd's socket, unix://PATH")
    ap.add_argument("--wrun", required=True, help="wrun daemon's socket, unix://PATH")
    ap.add_argument("--expectations", type=Path, default=HERE / "expectations.toml")
    ap.add_argument("--report", type=Path, default=REPO / "target" / "tmp" / "docker-compat")
    ap.add_argument("--doc", type=Path, default=REPO / "docs" / "docker-compat.md")
    ap.add_argument("--update-doc", action="store_true", help="rewrite --doc from the results")
    ap.add_argument("--only", help="run only the scenarios whose name matches this regex")
    ap.add_argument("--jobs", type=int, default=6, help="scenarios run at once")
    args = ap.parse_args()

    expectations = load_expectations(args.expectations)
    cases = [c for c in CASES if not args.only or re.search(args.only, c.name)]
    if not cases:
        print(f"no scenario matches {args.only!r}", file=sys.stderr)
        return 2
    args.report.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="wrun-compat-"))
    oracle = Endpoint("docker", args.oracle, work / "docker")
    wrun = Endpoint("wrun", args.wrun, work / "wrun")
    run_id = "".join(random.choice("ghjkmnpqrstvwxyz") for _ in range(4))

    setup_o = Ctx(oracle, "setup", f"cx{run_id}", work / "setup-docker", time.monotonic() + 300)
    setup_w = Ctx(wrun, "setup", f"cx{run_id}", work / "setup-wrun", time.monotonic() + 300)
    prepare_oracle(setup_o, setup_w, work)
    for image in BASE_IMAGES:
        setup_o.ok("image", "inspect", image)

    started = time.monotonic()
    results = run_all(cases, oracle, wrun, run_id, work, args.jobs)
    order = {c.name: i for i, c in enumerate(CASES)}
    results.sort(key=lambda r: order[r[0].name])

    rows, failures, details = [], [], []
    for case, dobs, dbroke, wobs, wbroke in results:
        diffs = compare(dobs, wobs)
        expected = expectations.get(case.name)
        result, passed = judge(case, diffs, dbroke, expected)
        reason = expected["reason"].strip() if expected else ""
        rows.append({"name": case.name, "client": case.client, "checks": case.checks, "result": result, "reason": reason})
        mark = "ok  " if passed else "FAIL"
        print(f"{mark} {case.name}: {result}")
        if diffs or not passed:
            details.append((case, result, diffs, dbroke, wbroke))
        if not passed:
            failures.append(case.name)
            for d in diffs[:12]:
                print(f"       {d}")
            if dbroke:
                print("       against dockerd: " + dbroke.replace("\n", "\n       "))
            if wbroke:
                print("       against wrun: " + wbroke.replace("\n", "\n       "))
            # Both sides in full: a flaky failure in CI must be diagnosable
            # from its output alone (the daemon's own log is on stderr).
            for side, obs in (("dockerd", dobs), ("wrun", wobs)):
                print(f"       {side} observed:")
                for what, value in obs:
                    print(f"         {what}: {json.dumps(value, default=as_json)}")
            if result.startswith("same, but"):
                print(f"       remove [{case.name!r}] from {args.expectations.name} (it no longer differs)")
            if result == "UNLISTED DIFFERENCE":
                print(f"       fix it, or list [{case.name!r}] in {args.expectations.name} with kind and reason")

    (args.report / "results.json").write_text(
        json.dumps(
            [
                {"name": c.name, "client": c.client, "result": res, "diffs": diffs, "dockerd_broke": db, "wrun_broke": wb}
                for c, res, diffs, db, wb in details
            ],
            indent=1,
        )
    )
    report = ["# docker-compat: the differences of the last run", ""]
    for case, result, diffs, dbroke, wbroke in details:
        report.append(f"## {case.name} ({case.client}): {result}")
        report.append("")
        report.extend(f"- {d}" for d in diffs)
        if wbroke:
            report += ["", "wrun side stopped at:", "", "```", wbroke, "```"]
        report.append("")
    (args.report / "report.md").write_text("\n".join(report))

    doc = doc_text(rows)
    whole = len(cases) == len(CASES)
    if whole and args.update_doc and not failures:
        args.doc.write_text(doc)
        print(f"wrote {args.doc}")
    elif whole and args.update_doc:
        print(f"did not write {args.doc}: the failures above come first")
    elif whole and not failures:
        current = args.doc.read_text() if args.doc.exists() else ""
        if current != doc:
            (args.report / "docker-compat.md").write_text(doc)
            print(f"FAIL {args.doc} is not what this run found; regenerate it with WRUN_COMPAT_UPDATE_DOC=1 ({DOC_COMMAND})")
            failures.append("docs")

    same = sum(1 for r in rows if r["result"] == "same")
    listed = sum(1 for r in rows if r["result"] in KINDS.values())
    print(
        f"{len(rows)} scenarios in {time.monotonic() - started:.0f} s: {same} same, {listed} listed differences, "
        f"{len(failures)} failures; details in {args.report / 'report.md'}"
    )
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
