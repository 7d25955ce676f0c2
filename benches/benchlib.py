"""Shared helpers of the Python benchmark harnesses (`daemon_scale.py`,
`density.py`): the daemon's REST API over its Unix socket, /proc readings,
percentiles, and a private `wrun daemon` that is always shut down.

Python 3 standard library only.
"""

import http.client
import json
import os
import signal
import socket
import subprocess
import time


class UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path, timeout=60):
        super().__init__("localhost", timeout=timeout)
        self.unix_path = path

    def connect(self):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(self.timeout)
        s.connect(self.unix_path)
        self.sock = s


def request(conn, method, path, body=None):
    headers = {"Content-Type": "application/json"} if body is not None else {}
    data = json.dumps(body).encode() if body is not None else None
    conn.request(method, path, body=data, headers=headers)
    resp = conn.getresponse()
    payload = resp.read()
    return resp.status, payload


def meminfo_kib(field="MemAvailable"):
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def meminfo_available_kib():
    return meminfo_kib("MemAvailable")


def proc_kib(pid, field, path="status"):
    """A `Field: N kB` line of /proc/PID/{status,smaps_rollup}; 0 when the
    process is gone."""
    try:
        with open(f"/proc/{pid}/{path}") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        pass
    return 0


def pss_kib(pid):
    return proc_kib(pid, "Pss", "smaps_rollup")


def percentile(values, p):
    if not values:
        return float("nan")
    ordered = sorted(values)
    k = min(len(ordered) - 1, max(0, round(p / 100 * (len(ordered) - 1))))
    return ordered[k]


def kill_group(proc, sig=signal.SIGKILL):
    """Kill a child started with start_new_session=True and its whole group."""
    try:
        os.killpg(proc.pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


class Daemon:
    """A `wrun daemon` on a private store and socket under WORK.

    `build(tag, context)` builds an image into its store; `start()` starts the
    daemon and waits for `/_ping`; `stop()` asks it to shut down, killing its
    process group when it does not answer. Use as a context manager.
    """

    def __init__(self, wrun, work, max_instances, extra_args=(), preexec_fn=None):
        self.wrun = os.path.realpath(wrun)
        self.work = work
        self.root = os.path.join(work, "store")
        self.sock = os.path.join(work, "wrun.sock")
        self.err_path = os.path.join(work, "daemon.err")
        self.env = dict(os.environ, WRUN_ROOT=self.root)
        self.max_instances = max_instances
        self.extra_args = list(extra_args)
        self.preexec_fn = preexec_fn
        self.proc = None

    def build(self, tag, context):
        subprocess.run([self.wrun, "build", "-q", "-t", tag, context], env=self.env, check=True,
                       stdout=subprocess.DEVNULL)

    def conn(self, timeout=60):
        return UnixHTTPConnection(self.sock, timeout=timeout)

    def start(self, timeout=30):
        self.proc = subprocess.Popen(
            [self.wrun, "daemon", "--socket", self.sock]
            + (["--max-instances", str(self.max_instances)] if self.max_instances else [])
            + self.extra_args,
            env=self.env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=open(self.err_path, "w"), start_new_session=True, preexec_fn=self.preexec_fn)
        deadline = time.time() + timeout
        while True:
            try:
                if request(self.conn(timeout=5), "GET", "/_ping")[0] == 200:
                    return
            except OSError:
                pass
            if time.time() > deadline or self.proc.poll() is not None:
                raise RuntimeError("the daemon did not start; see " + self.err_path + ": "
                                   + self.stderr_tail())
            time.sleep(0.05)

    def stderr_tail(self, n=400):
        try:
            with open(self.err_path) as f:
                return f.read()[-n:].strip()
        except OSError:
            return ""

    def stop(self, timeout=120):
        if self.proc is None or self.proc.poll() is not None:
            return
        try:
            request(self.conn(timeout=timeout), "POST", "/wrun/shutdown")
            self.proc.wait(timeout=timeout)
        except Exception:
            kill_group(self.proc)
            self.proc.wait()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()
        return False
