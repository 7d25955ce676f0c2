#!/usr/bin/env python3
"""Slow and hostile clients against the API socket (issue 12): what each
attack costs the daemon, and whether it keeps answering meanwhile.

Attacks, one after the other, each for --hold seconds (the slow one for
--slow-secs):

  idle      --connections connections that connect and send nothing
  partial   --connections connections that send the start of a request
            head (--partial-bytes of it) and never finish it
  slow      --slow-clients connections that send a request head one byte a
            second; the daemon should close them (its header timeout)
  stalled   --stalled-loads POST /images/load that send the start of an
            archive (a tar header) and then nothing; GET /images/json is
            timed while they hang
  load      POST /images/load declaring a --load-bytes body: a valid tar
            header of one blob that size, then random bytes at full speed,
            cut (the socket closed) halfway through
  noread    --noread-clients GET /containers/ID/logs of a chatty instance
            (some --chatty-mib MiB of log) that never read the answer

Throughout, probes run beside the attack: GET /_ping on a new connection
every 50 ms (its latency, p50/p99/max, and any failure), `docker ps` every
second (DOCKER_HOST=unix://SOCKET; any failure is counted), and the
daemon's RSS and open descriptors every 250 ms. After `load` the daemon's
staging area (ROOT/tmp) must be empty again (wrun only).

By default a private `wrun daemon` (--wrun) runs on a temporary store;
`--socket S --pid P` attacks a running daemon instead (e.g. the Docker
Engine of dev/oracle: --socket /tmp/wrun-oracle/docker.sock --pid
$(cat /tmp/wrun-oracle/dockerd.pid) --chatty-image IMAGE, an image whose
command writes --chatty-mib MiB to stdout).

Usage:
  benches/hostile_clients.py [--wrun target/release/wrun] [--phases idle,partial,slow,stalled,load,noread]
                             [--connections 1000] [--hold 10] [--slow-secs 40]
                             [--load-bytes 1073741824] [--daemon-arg ARG ...]
                             [--socket S --pid P [--chatty-image IMAGE]] [--json OUT]

Prints one table row per phase (Markdown) and exits 1 when a probe failed,
a slow client outlived --slow-secs, or the staging area was left behind.
Python 3 standard library only.
"""

import argparse
import hashlib
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from benchlib import Daemon, UnixHTTPConnection, percentile, proc_kib  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PING = b"GET /_ping HTTP/1.1\r\nHost: docker\r\n\r\n"


def ping_once(sock_path, timeout=10.0):
    """Latency of one GET /_ping on a new connection, in seconds; raises
    on a failure or a non-200 answer."""
    t0 = time.perf_counter()
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(timeout)
    try:
        s.connect(sock_path)
        s.sendall(PING)
        data = b""
        while b"\r\n\r\n" not in data or not data.endswith(b"OK"):
            chunk = s.recv(4096)
            if not chunk:
                break
            data += chunk
        if not data.startswith(b"HTTP/1.1 200"):
            raise OSError(f"unexpected answer {data[:40]!r}")
    finally:
        s.close()
    return time.perf_counter() - t0


def fd_count(pid):
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return 0


class Probes:
    """Ping, `docker ps` and /proc samples in background threads, each
    sample tagged with the phase running when it was taken."""

    def __init__(self, sock_path, pid, docker_config):
        self.sock_path = sock_path
        self.pid = pid
        self.phase = "start"
        self.pings = []  # (phase, seconds or None)
        self.ps = []  # (phase, ok, seconds, error)
        self.proc = []  # (phase, rss_kib, fds)
        self.stop = threading.Event()
        self.docker_env = dict(os.environ, DOCKER_HOST="unix://" + sock_path,
                               DOCKER_CONFIG=docker_config)
        self.threads = [threading.Thread(target=f, daemon=True)
                        for f in (self._ping, self._ps, self._sample)]

    def start(self):
        for t in self.threads:
            t.start()

    def finish(self):
        self.stop.set()
        for t in self.threads:
            t.join()

    def _ping(self):
        while not self.stop.is_set():
            phase = self.phase
            try:
                self.pings.append((phase, ping_once(self.sock_path)))
            except OSError:
                self.pings.append((phase, None))
            self.stop.wait(0.05)

    def _ps(self):
        while not self.stop.is_set():
            phase = self.phase
            t0 = time.perf_counter()
            try:
                out = subprocess.run(["docker", "ps", "-q"], env=self.docker_env, timeout=30,
                                     capture_output=True, text=True)
                ok, err = out.returncode == 0, out.stderr.strip()[-200:]
            except subprocess.TimeoutExpired:
                ok, err = False, "timed out after 30 s"
            self.ps.append((phase, ok, time.perf_counter() - t0, err))
            self.stop.wait(1.0)

    def _sample(self):
        while not self.stop.is_set():
            self.proc.append((self.phase, proc_kib(self.pid, "VmRSS"), fd_count(self.pid)))
            self.stop.wait(0.25)

    def summary(self, phase):
        lat = [v for p, v in self.pings if p == phase and v is not None]
        failed = sum(1 for p, v in self.pings if p == phase and v is None)
        ps = [(ok, dt, err) for p, ok, dt, err in self.ps if p == phase]
        proc = [(rss, fds) for p, rss, fds in self.proc if p == phase]
        return {
            "pings": len(lat) + failed,
            "ping_failed": failed,
            "ping_p50_ms": percentile(lat, 50) * 1000,
            "ping_p99_ms": percentile(lat, 99) * 1000,
            "ping_max_ms": max(lat, default=float("nan")) * 1000,
            "ps_runs": len(ps),
            "ps_failed": sum(1 for ok, _, _ in ps if not ok),
            "ps_errors": sorted({err for ok, _, err in ps if not ok}),
            "ps_max_ms": max((dt for _, dt, _ in ps), default=float("nan")) * 1000,
            "rss_max_mib": max((r for r, _ in proc), default=0) / 1024,
            "fds_max": max((f for _, f in proc), default=0),
        }


def open_many(sock_path, n, first_bytes=b""):
    socks = []
    for _ in range(n):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.connect(sock_path)
        if first_bytes:
            s.sendall(first_bytes)
        socks.append(s)
    return socks


def closed_by_peer(s):
    """Whether the daemon closed `s` (EOF or reset), without blocking."""
    s.setblocking(False)
    try:
        return s.recv(1, socket.MSG_PEEK) == b""
    except BlockingIOError:
        return False
    except OSError:
        return True


def hold_connections(probes, phase, sock_path, n, first_bytes, hold):
    probes.phase = phase
    socks = open_many(sock_path, n, first_bytes)
    time.sleep(hold)
    closed = sum(1 for s in socks if closed_by_peer(s))
    for s in socks:
        s.close()
    return {"held": len(socks), "closed_by_daemon": closed}


def slow_head(probes, sock_path, clients, secs):
    """Clients sending a head one byte a second; when the daemon closed
    each (None: still open after `secs`)."""
    probes.phase = "slow"
    head = b"GET /containers/json HTTP/1.1\r\nHost: docker\r\n" + b"X-Slow: " + b"a" * 4096
    socks = open_many(sock_path, clients)
    t0 = time.monotonic()
    closed_at = [None] * clients
    i = 0
    while time.monotonic() - t0 < secs and any(c is None for c in closed_at):
        for k, s in enumerate(socks):
            if closed_at[k] is not None:
                continue
            try:
                s.send(head[i % len(head):i % len(head) + 1])
            except OSError:
                closed_at[k] = time.monotonic() - t0
                continue
            if closed_by_peer(s):
                closed_at[k] = time.monotonic() - t0
            s.setblocking(True)
        i += 1
        time.sleep(1.0)
    for s in socks:
        s.close()
    done = [c for c in closed_at if c is not None]
    return {"clients": clients, "closed_by_daemon": len(done),
            "closed_after_s": round(percentile(done, 50), 1) if done else None}


def tar_header(name, size):
    h = bytearray(512)
    h[0:len(name)] = name.encode()
    h[100:108] = b"0000644\0"
    h[108:116] = b"0000000\0"
    h[116:124] = b"0000000\0"
    h[124:136] = b"%011o\0" % size
    h[136:148] = b"00000000000\0"
    h[148:156] = b" " * 8
    h[156:157] = b"0"
    h[257:263] = b"ustar\0"
    h[263:265] = b"00"
    h[148:155] = b"%06o\0" % sum(h)
    return bytes(h)


def stalled_loads(probes, sock_path, n, hold):
    probes.phase = "stalled"
    socks = []
    for _ in range(n):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.connect(sock_path)
        s.sendall(b"POST /images/load?quiet=1 HTTP/1.1\r\nHost: docker\r\n"
                  b"Content-Type: application/x-tar\r\nContent-Length: 67108864\r\n\r\n"
                  + tar_header("blobs/sha256/" + "0" * 64, 67108864 - 1024))
        socks.append(s)
    t0 = time.monotonic()
    try:
        api(sock_path, "GET", "/images/json", timeout=30)
        images = f"{(time.monotonic() - t0) * 1000:.0f} ms"
    except (OSError, RuntimeError) as e:
        images = f"failed after {time.monotonic() - t0:.0f} s: {e}"
    time.sleep(hold)
    for s in socks:
        s.close()
    return {"stalled_loads": n, "images_json": images}


def cut_load(probes, sock_path, total, staging):
    """A POST /images/load declaring `total` bytes, cut at half."""
    probes.phase = "load"
    blob = total - 1024
    name = "blobs/sha256/" + hashlib.sha256(b"never the digest").hexdigest()
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(sock_path)
    s.sendall(b"POST /images/load?quiet=1 HTTP/1.1\r\nHost: docker\r\n"
              b"Content-Type: application/x-tar\r\n"
              + f"Content-Length: {total}\r\n\r\n".encode())
    s.sendall(tar_header(name, blob))
    chunk = os.urandom(1 << 20)
    sent, t0, peak_staged = 512, time.monotonic(), 0
    while sent < total // 2:
        n = min(len(chunk), total // 2 - sent)
        s.sendall(chunk[:n])
        sent += n
        if staging and sent % (64 << 20) < (1 << 20):
            peak_staged = max(peak_staged, dir_bytes(staging))
    elapsed = time.monotonic() - t0
    s.close()
    result = {"sent_mib": sent >> 20, "mib_per_s": round((sent >> 20) / max(elapsed, 1e-9)),
              "staged_peak_mib": peak_staged >> 20}
    if staging:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and os.listdir(staging):
            time.sleep(0.1)
        result["staging_left"] = os.listdir(staging)
    time.sleep(2)
    return result


def dir_bytes(path):
    total = 0
    for d, _, files in os.walk(path):
        for f in files:
            try:
                total += os.lstat(os.path.join(d, f)).st_size
            except OSError:
                pass
    return total


def api(sock_path, method, path, body=None, timeout=300):
    c = UnixHTTPConnection(sock_path, timeout=timeout)
    headers = {"Content-Type": "application/json"} if body is not None else {}
    c.request(method, path, body=json.dumps(body).encode() if body is not None else None,
              headers=headers)
    r = c.getresponse()
    data = r.read()
    c.close()
    if r.status >= 300:
        raise RuntimeError(f"{method} {path}: {r.status} {data[:200]!r}")
    return json.loads(data) if data.strip() else None


def chatty_container(sock_path, image, mib, wrun_hello):
    """An exited container whose log holds about `mib` MiB: with `wrun_hello`
    the hello example greeting a long list of names, started again until the
    log is that large; otherwise `image`, which writes it in one run."""
    name = "hB-chatty-%d" % os.getpid()
    if wrun_hello:
        names = ["n%06d" % i for i in range(80_000)]  # ~ 800 KiB a run
        cid = api(sock_path, "POST", f"/containers/create?name={name}",
                  {"Image": image, "Cmd": names})["Id"]
        runs = max(1, mib * 1024 // 800)
    else:
        cid = api(sock_path, "POST", f"/containers/create?name={name}", {"Image": image})["Id"]
        runs = 1
    for _ in range(runs):
        api(sock_path, "POST", f"/containers/{cid}/start")
        api(sock_path, "POST", f"/containers/{cid}/wait")
    return cid


def no_read(probes, sock_path, cid, clients, hold):
    probes.phase = "noread"
    socks = open_many(sock_path, clients,
                      f"GET /containers/{cid}/logs?stdout=1&stderr=1 HTTP/1.1\r\n"
                      "Host: docker\r\n\r\n".encode())
    time.sleep(hold)
    for s in socks:
        s.close()
    return {"clients": clients}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--wrun", default=os.path.join(REPO, "target/release/wrun"))
    ap.add_argument("--daemon-arg", action="append", default=[])
    ap.add_argument("--socket")
    ap.add_argument("--pid", type=int)
    ap.add_argument("--chatty-image")
    ap.add_argument("--phases", default="idle,partial,slow,stalled,load,noread")
    ap.add_argument("--connections", type=int, default=1000)
    ap.add_argument("--partial-bytes", type=int, default=1024)
    ap.add_argument("--hold", type=float, default=10)
    ap.add_argument("--slow-clients", type=int, default=20)
    ap.add_argument("--slow-secs", type=float, default=40)
    ap.add_argument("--load-bytes", type=int, default=1 << 30)
    ap.add_argument("--stalled-loads", type=int, default=600)
    ap.add_argument("--noread-clients", type=int, default=20)
    ap.add_argument("--chatty-mib", type=int, default=64)
    ap.add_argument("--json")
    args = ap.parse_args()
    phases = args.phases.split(",")
    unknown = set(phases) - {"idle", "partial", "slow", "stalled", "load", "noread"}
    if unknown:
        ap.error(f"unknown phase(s) {', '.join(sorted(unknown))}")
    if (args.socket is None) != (args.pid is None):
        ap.error("--socket and --pid go together")

    work = tempfile.mkdtemp(prefix="hostile-")
    daemon = None
    if args.socket:
        sock_path, pid, staging = args.socket, args.pid, None
    else:
        daemon = Daemon(args.wrun, work, None, extra_args=args.daemon_arg)
        if "noread" in phases:
            daemon.build("hello:bench", os.path.join(REPO, "examples/hello"))
        daemon.start()
        sock_path, pid = daemon.sock, daemon.proc.pid
        staging = os.path.join(daemon.root, "tmp")
        os.makedirs(staging, exist_ok=True)
    probes = Probes(sock_path, pid, os.path.join(work, "docker-config"))
    results = {}
    try:
        cid = None
        if "noread" in phases:
            image = args.chatty_image or "hello:bench"
            cid = chatty_container(sock_path, image, args.chatty_mib, args.chatty_image is None)
        probes.start()
        probes.phase = "baseline"
        time.sleep(5)
        results["baseline"] = {}
        if "idle" in phases:
            results["idle"] = hold_connections(
                probes, "idle", sock_path, args.connections, b"", args.hold)
        if "partial" in phases:
            head = (b"GET /containers/json HTTP/1.1\r\nHost: docker\r\nX-Pad: "
                    + b"a" * max(0, args.partial_bytes - 50))
            results["partial"] = hold_connections(
                probes, "partial", sock_path, args.connections, head, args.hold)
        if "slow" in phases:
            results["slow"] = slow_head(probes, sock_path, args.slow_clients, args.slow_secs)
        if "stalled" in phases:
            results["stalled"] = stalled_loads(probes, sock_path, args.stalled_loads, args.hold)
        if "load" in phases:
            results["load"] = cut_load(probes, sock_path, args.load_bytes, staging)
        if "noread" in phases:
            results["noread"] = no_read(probes, sock_path, cid, args.noread_clients, args.hold)
        probes.phase = "after"
        time.sleep(3)
        results["after"] = {}
    finally:
        probes.finish()
        if cid:
            try:
                api(sock_path, "DELETE", f"/containers/{cid}?force=1")
            except Exception as e:  # the report says what went wrong
                print(f"removing the chatty container: {e}", file=sys.stderr)
        if daemon:
            daemon.stop()
        shutil.rmtree(work, ignore_errors=True)

    failed = False
    print("| phase | attack result | /_ping p50 / p99 / max (ms) | ping failures | docker ps ok / runs (max ms) | RSS max (MiB) | fds max |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for phase, outcome in results.items():
        s = probes.summary(phase)
        outcome.update(s)
        failed |= s["ping_failed"] > 0 or s["ps_failed"] > 0
        if phase == "slow" and outcome["closed_by_daemon"] < outcome["clients"]:
            failed = True
        if phase == "stalled" and not outcome["images_json"].endswith(" ms"):
            failed = True
        if phase == "load" and outcome.get("staging_left"):
            failed = True
        attack = {k: v for k, v in outcome.items() if k not in s}
        print(f"| {phase} | {json.dumps(attack) if attack else ''} "
              f"| {s['ping_p50_ms']:.1f} / {s['ping_p99_ms']:.1f} / {s['ping_max_ms']:.1f} "
              f"| {s['ping_failed']} of {s['pings']} "
              f"| {s['ps_runs'] - s['ps_failed']} / {s['ps_runs']} ({s['ps_max_ms']:.0f}) "
              f"| {s['rss_max_mib']:.1f} | {s['fds_max']} |")
        for err in s["ps_errors"]:
            print(f"  docker ps failed in {phase}: {err}", file=sys.stderr)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
