#!/usr/bin/env python3
"""Scale benchmark of `wrun daemon` (issue 4): start N idle instances through
the REST API with concurrent requests, hold them, and measure

  - create+start throughput (instances/s) and per-instance latency (p50, p99),
  - the daemon's memory per idle instance (RSS and PSS delta / N, and the drop
    in MemAvailable / N),
  - how long `GET /containers/json?all=1` and `wrun ps -a` take at N (medians of --list-reps calls),
    and the daemon's CPU time per `GET /containers/json?all=1`,
  - how long the daemon takes to shut down with N instances running.

Usage:
  benches/daemon_scale.py [--wrun target/release/wrun] [-n 10000]
                          [--concurrency 32] [--context examples/idle]
                          [--client rust|python]

The default load client is benches/daemon_load/client.rs, built with rustc
at each run; `--client python` uses this script's own threads instead.

Writes target/daemon-scale/results.json and prints a markdown table. The
daemon runs on a private store and socket and is always shut down.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time

from benchlib import Daemon, UnixHTTPConnection, meminfo_available_kib, percentile, proc_kib, request


def proc_cpu_s(pid):
    """User + system CPU seconds of a process (all its threads)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--wrun", default="target/release/wrun")
    ap.add_argument("-n", type=int, default=10000)
    ap.add_argument("--concurrency", type=int, default=32)
    ap.add_argument("--context", default="examples/idle")
    ap.add_argument("--list-reps", type=int, default=9,
                    help="calls of GET /containers/json and `wrun ps -a` whose median is reported")
    ap.add_argument("--settle", type=float, default=3.0, help="seconds to wait before measuring memory")
    ap.add_argument("--daemon-arg", action="append", default=[], help="extra argument for `wrun daemon`")
    ap.add_argument("--host-capacity", action="store_true",
                    help="start the daemon without --max-instances (N + 64 otherwise): it sizes itself from the host")
    ap.add_argument("--tmpfs", action="store_true",
                    help="give each instance a private /tmp (HostConfig.Tmpfs): two descriptors each")
    ap.add_argument("--perf", metavar="FILE", help="record the daemon with `perf record -g` into FILE while starting")
    ap.add_argument("--client", choices=["rust", "python"], default="rust",
                    help="the load client: benches/daemon_load/client.rs (built with rustc; lean) "
                         "or this script's own threads (takes most of a core)")
    args = ap.parse_args()
    create_body = {"Image": "idle:bench"}
    if args.tmpfs:
        create_body["HostConfig"] = {"Tmpfs": {"/tmp": ""}}

    wrun = os.path.realpath(args.wrun)
    work = tempfile.mkdtemp(prefix="wrun-scale-")
    d = Daemon(wrun, work, None if args.host_capacity else args.n + 64, args.daemon_arg)
    sock, env = d.sock, d.env
    results = {"n": args.n, "concurrency": args.concurrency, "tmpfs": args.tmpfs, "client": args.client}
    try:
        if args.client == "rust":
            client_bin = os.path.join(work, "daemon_load")
            here = os.path.dirname(os.path.abspath(__file__))
            subprocess.run(["rustc", "-O", "--edition", "2024", os.path.join(here, "daemon_load", "client.rs"),
                            "-o", client_bin], check=True)
        d.build("idle:bench", args.context)
        try:
            d.start()
        except RuntimeError as e:
            sys.exit(str(e))
        daemon = d.proc

        # Warm up: the first start compiles the module into the store's
        # cache; no measured start should.
        c = UnixHTTPConnection(sock)
        status, body = request(c, "POST", "/containers/create", create_body)
        if status != 201:
            sys.exit(f"warm-up create: {status} {body[:200]!r}")
        warm = json.loads(body)["Id"]
        request(c, "POST", f"/containers/{warm}/start")
        request(c, "DELETE", f"/containers/{warm}?force=1")
        c.close()

        time.sleep(0.5)
        avail_before = meminfo_available_kib()
        rss_before = proc_kib(daemon.pid, "VmRSS")
        pss_before = proc_kib(daemon.pid, "Pss", "smaps_rollup")

        latencies = []
        errors = []
        lock = threading.Lock()
        counter = iter(range(args.n))

        def worker():
            conn = UnixHTTPConnection(sock)
            mine = []
            while True:
                with lock:
                    i = next(counter, None)
                if i is None:
                    break
                t0 = time.perf_counter()
                status, body = request(conn, "POST", "/containers/create", create_body)
                if status != 201:
                    with lock:
                        errors.append(f"create: {status} {body[:200]!r}")
                    continue
                cid = json.loads(body)["Id"]
                status, body = request(conn, "POST", f"/containers/{cid}/start")
                if status not in (204, 304):
                    with lock:
                        errors.append(f"start: {status} {body[:200]!r}")
                    continue
                mine.append(time.perf_counter() - t0)
            with lock:
                latencies.extend(mine)

        perf = None
        if args.perf:
            perf = subprocess.Popen(["perf", "record", "-g", "-o", args.perf, "-p", str(daemon.pid)],
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            time.sleep(1)
        cpu0 = proc_cpu_s(daemon.pid)
        client_cpu0 = time.process_time()
        t0 = time.perf_counter()
        if args.client == "rust":
            out = subprocess.run([client_bin, sock, str(args.n), str(args.concurrency), json.dumps(create_body)],
                                 check=True, capture_output=True, text=True).stdout
            wall = time.perf_counter() - t0
            daemon_cpu = proc_cpu_s(daemon.pid) - cpu0
            r = json.loads(out)
            client_cpu = r["client_cpu_s"]
            started, n_errors, first_errors = r["started"], r["errors"], r["first_errors"]
            p50, p99 = r["p50_s"], r["p99_s"]
        else:
            threads = [threading.Thread(target=worker) for _ in range(args.concurrency)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            wall = time.perf_counter() - t0
            daemon_cpu = proc_cpu_s(daemon.pid) - cpu0
            client_cpu = time.process_time() - client_cpu0
            started, n_errors, first_errors = len(latencies), len(errors), errors[:5]
            p50, p99 = percentile(latencies, 50), percentile(latencies, 99)
        if perf is not None:
            perf.send_signal(2)
            perf.wait()
        results.update({
            "started": started,
            "errors": n_errors,
            "first_errors": first_errors,
            "create_start_wall_s": wall,
            "create_start_per_s": started / wall if wall else 0,
            # CPU time during the ramp: the daemon's per instance, and the
            # load client's own (it shares the 2 cores).
            "daemon_cpu_us_per_instance": daemon_cpu / max(started, 1) * 1e6,
            "daemon_cpu_share": daemon_cpu / wall if wall else 0,
            "client_cpu_share": client_cpu / wall if wall else 0,
            "latency_p50_ms": p50 * 1e3,
            "latency_p99_ms": p99 * 1e3,
        })

        time.sleep(args.settle)
        c = UnixHTTPConnection(sock)
        status, body = request(c, "GET", "/containers/json")
        running = len(json.loads(body)) if status == 200 else -1
        rss_after = proc_kib(daemon.pid, "VmRSS")
        pss_after = proc_kib(daemon.pid, "Pss", "smaps_rollup")
        avail_after = meminfo_available_kib()
        per = max(started, 1)
        results.update({
            "running_after_settle": running,
            "daemon_rss_kib_before": rss_before,
            "daemon_rss_kib_after": rss_after,
            "rss_per_instance_kib": (rss_after - rss_before) / per,
            "pss_per_instance_kib": (pss_after - pss_before) / per,
            "memavailable_drop_per_instance_kib": (avail_before - avail_after) / per,
        })

        # Listing: the median of several calls (one call swings by ±30%
        # on this shared machine).
        # The daemon's CPU time per call too: on a loaded machine the wall
        # time is mostly waiting for a core, the CPU time is not.
        list_ms, ps_ms = [], []
        list_cpu0 = proc_cpu_s(daemon.pid)
        for _ in range(args.list_reps):
            t = time.perf_counter()
            status, body = request(c, "GET", "/containers/json?all=1")
            list_ms.append((time.perf_counter() - t) * 1e3)
        results["api_list_all_daemon_cpu_ms"] = (proc_cpu_s(daemon.pid) - list_cpu0) / args.list_reps * 1e3
        results["api_list_all_ms"] = percentile(list_ms, 50)
        results["api_list_all_count"] = len(json.loads(body)) if status == 200 else -1
        for _ in range(args.list_reps):
            t = time.perf_counter()
            subprocess.run([wrun, "-H", "unix://" + sock, "ps", "-a"], env=env, check=True,
                           stdout=subprocess.DEVNULL)
            ps_ms.append((time.perf_counter() - t) * 1e3)
        results["cli_ps_all_ms"] = percentile(ps_ms, 50)

        # Shutdown ends every instance (each recorded as exited) and returns.
        t = time.perf_counter()
        d.stop(timeout=600)
        results["shutdown_s"] = time.perf_counter() - t
    finally:
        d.stop()
        subprocess.run(["rm", "-rf", work])

    os.makedirs("target/daemon-scale", exist_ok=True)
    with open("target/daemon-scale/results.json", "w") as f:
        json.dump(results, f, indent=2)
    print("| metric | value |")
    print("| --- | ---: |")
    for k, v in results.items():
        if isinstance(v, float):
            v = f"{v:.2f}"
        print(f"| {k} | {v} |")


if __name__ == "__main__":
    main()
