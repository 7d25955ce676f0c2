#!/usr/bin/env python3
"""What the writable rootfs (issue 13) costs a `wrun daemon`: start latency
against the size of the image's rootfs, and the disk of many instances that
each wrote a little — each with the same run under `--read-only` beside it.

  latency  images of examples/fsh with a tiny rootfs (the module alone) and
           with SIZE MB more of files (--sizes 0,50,500: 10,000-byte files of
           random bytes, 100 to a directory, at /data); --starts instances of
           each, started one at a time through the API (create + start, then
           the log polled until the guest's `ready`), the images and the two
           modes taking turns so load on the machine falls on all alike; every
           instance stays alive (idle, `fsh echo ready ; sleep …`) until the
           end of the phase. Reported: create+start and start → `ready`,
           p50 / p99, per image and mode.
  disk     per mode, a fresh store holding the --disk-size MB image: one
           instance runs `fsh write /note hi` to its end, then --writers - 1
           more (4 API connections); the store's disk use (st_blocks of each
           inode once, symlinks not followed) and the filesystem's free space
           (statfs) are read before the first, after it, and after the last.
           Every writable instance's upper is checked to hold `note` = `hi`;
           under --read-only every write must have failed (exit 1).

Usage:
  benches/rootfs_density.py [--wrun PATH] [--sizes 0,50,500] [--starts 300]
                            [--disk-size 50] [--writers 1000] [--out DIR]

Writes OUT/results.json and OUT/report.md (default target/rootfs-density).
Copy the release binary aside first (`cp target/release/wrun /tmp/wrun-bench`)
so a rebuild does not change it mid-run. Python 3 standard library only; the
daemons run on private stores and sockets under a temporary directory that is
removed at the end (--keep leaves it).
"""

import argparse
import json
import os
import platform
import random
import shutil
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from benchlib import Daemon, percentile, request  # noqa: E402

FILE_BYTES = 10_000
PER_DIR = 100
SLEEP_MS = "86400000"
MODES = ("writable", "read-only")


def make_context(work, fsh, size_mb):
    """A build context: fsh.wasm, and SIZE_MB of incompressible files."""
    ctx = os.path.join(work, f"ctx-{size_mb}")
    os.makedirs(ctx)
    shutil.copy(fsh, os.path.join(ctx, "fsh.wasm"))
    toml = ['module = "fsh.wasm"', 'workdir = "/"']
    files = size_mb * 1_000_000 // FILE_BYTES
    if files:
        for i in range(files):
            d = os.path.join(ctx, "data", f"d{i // PER_DIR:04}")
            if i % PER_DIR == 0:
                os.makedirs(d)
            with open(os.path.join(d, f"f{i % PER_DIR:03}"), "wb") as f:
                f.write(os.urandom(FILE_BYTES))
        toml += ["", "[[copy]]", 'src = "data"', 'dest = "/data"']
    with open(os.path.join(ctx, "wrun.toml"), "w") as f:
        f.write("\n".join(toml) + "\n")
    return ctx, files


def disk_use(path):
    """(bytes on disk, apparent bytes, inodes) of a tree: each inode once."""
    seen = set()
    blocks = size = 0
    stack = [path]
    while stack:
        p = stack.pop()
        try:
            st = os.lstat(p)
        except FileNotFoundError:
            continue
        if (st.st_dev, st.st_ino) in seen:
            continue
        seen.add((st.st_dev, st.st_ino))
        blocks += st.st_blocks * 512
        size += st.st_size
        if os.path.isdir(p) and not os.path.islink(p):
            try:
                stack.extend(os.path.join(p, n) for n in os.listdir(p))
            except FileNotFoundError:
                pass
    return blocks, size, len(seen)


def store_use(root):
    """The store's disk use, in total and by part."""
    parts = {}
    total = disk_use(root)
    for name in sorted(os.listdir(root)):
        parts[name] = disk_use(os.path.join(root, name))[0]
    layers = os.path.join(root, "containers", "layers")
    if os.path.isdir(layers):
        parts["containers/layers"] = disk_use(layers)[0]
        parts["containers"] -= parts["containers/layers"]
    return {"bytes": total[0], "apparent_bytes": total[1], "inodes": total[2], "parts": parts}


def fs_used(path):
    st = os.statvfs(path)
    return (st.f_blocks - st.f_bfree) * st.f_frsize


class Client:
    """One keep-alive API connection per thread to a daemon."""

    def __init__(self, daemon):
        self.daemon = daemon
        self.local = threading.local()

    def call(self, method, path, body=None, ok=(200, 201, 204, 304)):
        c = getattr(self.local, "conn", None)
        if c is None:
            c = self.local.conn = self.daemon.conn(timeout=300)
        try:
            status, payload = request(c, method, path, body)
        except OSError:
            self.local.conn = None
            raise
        if status not in ok:
            raise RuntimeError(f"{method} {path}: {status} {payload[:200].decode(errors='replace')}")
        return status, payload

    def create(self, image, cmd, read_only):
        body = {"Image": image, "Cmd": cmd}
        if read_only:
            body["HostConfig"] = {"ReadonlyRootfs": True}
        _, payload = self.call("POST", "/containers/create", body)
        return json.loads(payload)["Id"]

    def start(self, cid):
        self.call("POST", f"/containers/{cid}/start")

    def wait(self, cid):
        _, payload = self.call("POST", f"/containers/{cid}/wait")
        return json.loads(payload)["StatusCode"]

    def wait_log(self, cid, token=b"ready", timeout=30.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            _, payload = self.call("GET", f"/containers/{cid}/logs?stdout=1")
            if token in payload:
                return
            time.sleep(0.0005)
        raise RuntimeError(f"instance {cid[:12]}: no `{token.decode()}` in its log within {timeout:g} s")

    def remove_all(self, ids, threads=4):
        todo = list(ids)
        lock = threading.Lock()

        def worker():
            while True:
                with lock:
                    if not todo:
                        return
                    cid = todo.pop()
                self.call("DELETE", f"/containers/{cid}?force=1", ok=(204, 404))

        run_threads(worker, threads)


def run_threads(fn, n):
    errors = []

    def guarded():
        try:
            fn()
        except Exception as e:  # reported after the join
            errors.append(e)

    ts = [threading.Thread(target=guarded, daemon=True) for _ in range(n)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    if errors:
        raise errors[0]


def new_daemon(args, work, name, max_instances):
    d = Daemon(args.wrun, os.path.join(work, name), max_instances, args.daemon_arg)
    os.makedirs(d.work)
    return d


def latency_phase(args, work, contexts, log):
    n_variants = len(contexts) * len(MODES)
    d = new_daemon(args, work, "latency", n_variants * args.starts + 64)
    out = {"images": {}, "rows": []}
    try:
        for size, (ctx, files) in contexts.items():
            t = time.perf_counter()
            d.build(f"fsh{size}:bench", ctx)
            out["images"][str(size)] = {"files": files, "build_s": time.perf_counter() - t}
        d.start()
        cl = Client(d)
        snaps = os.path.join(d.root, "snapshots")
        for s in os.listdir(snaps):
            use = disk_use(os.path.join(snaps, s))
            log(f"  snapshot {s[:12]}: {use[1] / 1e6:.1f} MB in {use[2]:,} inodes")
        # Warm-up: the first start compiles the module into the store's cache.
        for size in contexts:
            cid = cl.create(f"fsh{size}:bench", ["echo", "ready"], False)
            cl.start(cid)
            cl.wait(cid)
            cl.call("DELETE", f"/containers/{cid}?force=1")
        samples = {(size, mode): {"api": [], "ready": []} for size in contexts for mode in MODES}
        ids = []
        variants = list(samples)
        cmd = ["echo", "ready", ";", "sleep", SLEEP_MS]
        t0 = time.perf_counter()
        for r in range(args.starts):
            # A different order each round: no variant always follows another.
            random.Random(r).shuffle(variants)
            for size, mode in variants:
                ts = time.perf_counter()
                cid = cl.create(f"fsh{size}:bench", cmd, mode == "read-only")
                t_started = time.perf_counter()
                cl.start(cid)
                t_api = time.perf_counter() - ts
                cl.wait_log(cid)
                t_ready = time.perf_counter() - t_started
                ids.append(cid)
                samples[(size, mode)]["api"].append(t_api)
                samples[(size, mode)]["ready"].append(t_ready)
        out["wall_s"] = time.perf_counter() - t0
        for (size, mode), s in sorted(samples.items(), key=lambda kv: (kv[0][0], kv[0][1] != "writable")):
            row = {"size_mb": size, "mode": mode, "n": len(s["api"]),
                   "api_p50_ms": percentile(s["api"], 50) * 1e3, "api_p99_ms": percentile(s["api"], 99) * 1e3,
                   "ready_p50_ms": percentile(s["ready"], 50) * 1e3,
                   "ready_p99_ms": percentile(s["ready"], 99) * 1e3}
            out["rows"].append(row)
            log(f"  {size} MB {mode}: create+start p50 {row['api_p50_ms']:.2f} p99 {row['api_p99_ms']:.2f} ms; "
                f"start → ready p50 {row['ready_p50_ms']:.2f} p99 {row['ready_p99_ms']:.2f} ms")
        layers = os.path.join(d.root, "containers", "layers")
        out["uppers_after"] = len(os.listdir(layers)) if os.path.isdir(layers) else 0
        t = time.perf_counter()
        cl.remove_all(ids)
        out["remove_s"] = time.perf_counter() - t
    finally:
        d.stop(timeout=300)
    return out


def disk_phase(args, work, ctx, mode, log):
    d = new_daemon(args, work, f"disk-{mode}", args.writers + 64)
    out = {"mode": mode}
    try:
        d.build("fshdisk:bench", ctx)
        d.start()
        cl = Client(d)
        read_only = mode == "read-only"
        cid = cl.create("fshdisk:bench", ["echo", "warm"], False)
        cl.start(cid)
        cl.wait(cid)
        cl.call("DELETE", f"/containers/{cid}?force=1")
        cmd = ["write", "/note", "hi"]
        want = 1 if read_only else 0
        ids = []
        codes = {}
        lock = threading.Lock()

        def one():
            cid = cl.create("fshdisk:bench", cmd, read_only)
            cl.start(cid)
            code = cl.wait(cid)
            with lock:
                ids.append(cid)
                codes[code] = codes.get(code, 0) + 1

        os.sync()
        out["before"] = store_use(d.root)
        out["fs_used_before"] = fs_used(d.root)
        one()
        os.sync()
        out["after_1"] = store_use(d.root)
        out["fs_used_after_1"] = fs_used(d.root)
        left = [args.writers - 1]

        def worker():
            while True:
                with lock:
                    if left[0] <= 0:
                        return
                    left[0] -= 1
                one()

        t = time.perf_counter()
        run_threads(worker, 4)
        out["run_s"] = time.perf_counter() - t
        os.sync()
        out["after_n"] = store_use(d.root)
        out["fs_used_after_n"] = fs_used(d.root)
        out["n"] = len(ids)
        out["exit_codes"] = codes
        if codes != {want: args.writers}:
            raise RuntimeError(f"{mode}: exit codes {codes}, expected {want} for all {args.writers}")
        layers = os.path.join(d.root, "containers", "layers")
        if read_only:
            uppers = os.listdir(layers) if os.path.isdir(layers) else []
            if uppers:
                raise RuntimeError(f"read-only instances made {len(uppers)} uppers")
        else:
            for cid in ids:
                with open(os.path.join(layers, cid, "note"), "rb") as f:
                    if f.read() != b"hi":
                        raise RuntimeError(f"instance {cid[:12]}: its upper's note is not `hi`")
        one_b, n_b = out["after_1"]["bytes"], out["after_n"]["bytes"]
        out["ratio"] = n_b / one_b
        out["per_instance_bytes"] = (n_b - one_b) / max(1, args.writers - 1)
        out["per_instance_by_part"] = {
            k: (out["after_n"]["parts"].get(k, 0) - out["after_1"]["parts"].get(k, 0)) / max(1, args.writers - 1)
            for k in out["after_n"]["parts"]}
        log(f"  {mode}: store {out['before']['bytes'] / 1e6:.1f} MB before, {one_b / 1e6:.1f} MB with 1, "
            f"{n_b / 1e6:.1f} MB with {args.writers:,} ({out['ratio']:.3f}×; "
            f"{out['per_instance_bytes'] / 1024:.1f} KiB per instance: "
            + ", ".join(f"{k} {v / 1024:.1f}" for k, v in out["per_instance_by_part"].items() if v) + ")")
        t = time.perf_counter()
        cl.remove_all(ids)
        out["remove_s"] = time.perf_counter() - t
    finally:
        d.stop(timeout=300)
    return out


def mb(b):
    return f"{b / 1e6:,.1f} MB"


def report_md(doc):
    m = doc["machine"]
    L = ["# The writable rootfs: start latency against rootfs size, and disk per instance", "",
         f"Run {doc['started_at']} on {m['cpus']} cores, {m['mem_total_gib']} GiB, kernel {m['kernel']}; "
         f"`{doc['wrun_version']}` ({doc['wrun']}). Command: `{doc['command']}` ({doc['duration_s']:.0f} s). "
         f"Load average (1, 5, 15 min) {' / '.join(map(str, doc['loadavg_start']))} at the start, "
         f"{' / '.join(map(str, doc['loadavg_end']))} at the end.", ""]
    lat = doc.get("latency")
    if lat:
        L += [f"Start latency: {lat['rows'][0]['n']} instances of each image and mode started one at a time, "
              "all kept alive (idle) to the end of the phase.", "",
              "| rootfs | files | mode | create+start p50 / p99 | start → `ready` p50 / p99 |",
              "| --- | ---: | --- | ---: | ---: |"]
        for r in lat["rows"]:
            img = lat["images"][str(r["size_mb"])]
            L.append(f"| {r['size_mb']} MB | {img['files']:,} | {r['mode']} | "
                     f"{r['api_p50_ms']:.2f} / {r['api_p99_ms']:.2f} ms | "
                     f"{r['ready_p50_ms']:.2f} / {r['ready_p99_ms']:.2f} ms |")
        L += ["", f"Uppers in the store after the phase (none of the instances wrote): {lat['uppers_after']}.", ""]
    disk = doc.get("disk")
    if disk:
        L += [f"Disk: a store holding the {doc['args']['disk_size']} MB image; instances run "
              "`fsh write /note hi` to their end.", "",
              "| mode | store before | with 1 instance | with N | N | N ÷ 1 | per extra instance | "
              "filesystem used, Δ 1 → N |",
              "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
        for r in disk:
            L.append(f"| {r['mode']} | {mb(r['before']['bytes'])} | {mb(r['after_1']['bytes'])} | "
                     f"{mb(r['after_n']['bytes'])} | {r['n']:,} | **{r['ratio']:.3f}×** | "
                     f"{r['per_instance_bytes'] / 1024:.1f} KiB | "
                     f"{mb(r['fs_used_after_n'] - r['fs_used_after_1'])} |")
        L += ["", "Per extra instance, by part of the store:", ""]
        for r in disk:
            L.append(f"- {r['mode']}: " + ", ".join(
                f"`{k}` {v / 1024:.1f} KiB" for k, v in r["per_instance_by_part"].items() if v))
    return "\n".join(L) + "\n"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--wrun", default="target/release/wrun")
    ap.add_argument("--fsh", default="examples/fsh/fsh.wasm")
    ap.add_argument("--sizes", default="0,50,500", help="MB of files in the images of the latency phase")
    ap.add_argument("--starts", type=int, default=300, help="instances of each image and mode")
    ap.add_argument("--disk-size", type=int, default=50, help="MB of files in the image of the disk phase")
    ap.add_argument("--writers", type=int, default=1000, help="instances of the disk phase, per mode")
    ap.add_argument("--phases", default="latency,disk")
    ap.add_argument("--daemon-arg", action="append", default=[], help="extra argument for `wrun daemon`")
    ap.add_argument("--work", help="where the stores go (default: a new directory under $TMPDIR)")
    ap.add_argument("--keep", action="store_true", help="leave the work directory")
    ap.add_argument("--out", default="target/rootfs-density")
    args = ap.parse_args()
    phases = set(args.phases.split(","))
    if phases - {"latency", "disk"} or not phases:
        ap.error(f"--phases: latency and/or disk, not {args.phases!r}")
    try:
        sizes = sorted({int(s) for s in args.sizes.split(",")})
    except ValueError:
        ap.error(f"--sizes: comma-separated whole MB, not {args.sizes!r}")
    if min(sizes) < 0 or args.starts < 1 or args.writers < 2 or args.disk_size < 0:
        ap.error("--sizes, --disk-size must be ≥ 0, --starts ≥ 1, --writers ≥ 2")
    if not os.access(args.wrun, os.X_OK):
        sys.exit(f"rootfs_density: {args.wrun} is not an executable (cargo build --release)")
    if not os.path.isfile(args.fsh):
        sys.exit(f"rootfs_density: {args.fsh} is missing (examples/fsh/fsh.wasm)")
    args.wrun = os.path.realpath(args.wrun)
    os.makedirs(args.out, exist_ok=True)
    work = args.work or tempfile.mkdtemp(prefix="wrun-rootfs-density-")
    os.makedirs(work, exist_ok=True)

    def log(msg):
        print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)

    with open("/proc/meminfo") as f:
        mem_kib = int(f.readline().split()[1])
    doc = {"started_at": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
           "command": " ".join([os.path.basename(sys.argv[0])] + sys.argv[1:]),
           "args": vars(args), "wrun": args.wrun,
           "wrun_version": subprocess.run([args.wrun, "--version"], capture_output=True, text=True).stdout.strip(),
           "commit": subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                                    text=True).stdout.strip(),
           "machine": {"cpus": os.cpu_count(), "mem_total_gib": round(mem_kib / 1024 / 1024, 1),
                       "kernel": platform.release()},
           "loadavg_start": [round(x, 2) for x in os.getloadavg()]}
    t0 = time.perf_counter()
    try:
        contexts = {}
        need = set(sizes) if "latency" in phases else set()
        if "disk" in phases:
            need.add(args.disk_size)
        for size in sorted(need):
            t = time.perf_counter()
            contexts[size] = make_context(work, args.fsh, size)
            log(f"context of {size} MB: {contexts[size][1]:,} files ({time.perf_counter() - t:.1f} s)")
        if "latency" in phases:
            log("latency phase")
            doc["latency"] = latency_phase(args, work, {s: contexts[s] for s in sizes}, log)
        if "disk" in phases:
            doc["disk"] = []
            for mode in MODES:
                log(f"disk phase, {mode}")
                doc["disk"].append(disk_phase(args, work, contexts[args.disk_size][0], mode, log))
        doc["duration_s"] = time.perf_counter() - t0
        doc["loadavg_end"] = [round(x, 2) for x in os.getloadavg()]
        with open(os.path.join(args.out, "results.json"), "w") as f:
            json.dump(doc, f, indent=1, default=str)
        report = report_md(json.loads(json.dumps(doc, default=str)))
        with open(os.path.join(args.out, "report.md"), "w") as f:
            f.write(report)
        print(report, flush=True)
    finally:
        if not args.keep:
            # Slow on a disk that discards freed blocks (the 500 MB image's
            # 50,000 files): after the results are written.
            log(f"removing {work}")
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
