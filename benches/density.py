#!/usr/bin/env python3
"""Density benchmark (issues 5 and 20): the same idle workload under each
contender, on the same machine in the same run —

  wrun      instances in one `wrun daemon`, started through its REST API
  process   one native Linux process per instance (examples/idle built for the host)
  wasmtime  one `wasmtime run` process per instance on examples/idle/idle.wasm
  vm        one qemu-system-x86_64 per instance: Debian's cloud kernel and a
            busybox initramfs whose /init prints `ready` on the serial port
  docker    one Docker Engine container per instance (examples/idle built
            statically, imported as an image), started through dockerd's REST
            API on --docker-host like wrun's

Each contender is ramped through the steps (N = 100, 1,000, 10,000 by default;
the VM contender starts at 10, Docker goes 10, 100, 500): after each step it
settles, then records the instances reached, memory per instance (drop in
MemAvailable / N, summed PSS from /proc/PID/smaps_rollup / N; for wrun the
daemon's PSS delta / N; for Docker the delta of dockerd + containerd plus
the containers' shims and processes / N), start latency to `ready` (p50,
p99), start rate and instances per GiB. A contender stops before
MemAvailable falls under --reserve-gib (4.5 GiB) or when its time budget
(--budget, 120 s; --docker-budget, 300 s) is spent; where and why is
recorded. Everything it started is killed (process groups; Docker's
containers force-removed) and its temp dirs removed, also on Ctrl-C.

Usage:
  benches/density.py [--quick] [--contenders wrun,process,wasmtime,vm,docker]
                     [--steps 100,1000,10000] [--wrun target/release/wrun]
                     [--docker-host unix:///tmp/dk/docker.sock]

Writes target/density/results.json, report.md and density.svg. `--quick`
(N = 10, the VM N = 2) is the CI smoke pass: it exits non-zero when an
available contender does not reach its instances. Python 3 standard library
only; nothing is downloaded (the VM contender needs the Debian packages
qemu-system-x86, linux-image-cloud-amd64, busybox-static and cpio; the
Docker contender a running dockerd, root to read its processes' memory, and
rustc with glibc's static libraries, libc6-dev). Without --docker-host the
Docker contender tries $DOCKER_HOST, then /var/run/docker.sock, and is
skipped with a message when no dockerd answers there.
"""

import argparse
import glob
import gzip
import io
import json
import os
import platform
import resource
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from benchlib import Daemon, UnixHTTPConnection, kill_group, meminfo_kib, percentile, pss_kib, request  # noqa: E402

ALL = ["wrun", "process", "wasmtime", "vm", "docker"]
GIB_KIB = 1024 * 1024
STOP = threading.Event()  # set on Ctrl-C / SIGTERM: workers stop starting instances


class Skip(Exception):
    """The contender cannot run on this machine (the message says why)."""


def sh(cmd, **kw):
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=30, **kw).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def wait_token(fd, token, timeout):
    """Read from a pipe until TOKEN appears; True when it did before TIMEOUT."""
    buf = b""
    deadline = time.monotonic() + timeout
    while token not in buf:
        left = deadline - time.monotonic()
        if left <= 0:
            return False
        r, _, _ = select.select([fd], [], [], left)
        if not r:
            return False
        chunk = os.read(fd, 4096)
        if not chunk:
            return False
        buf += chunk
    return True


class Spawned:
    """Children started by one contender, killed by process group on teardown."""

    def __init__(self):
        self.procs = []
        self.lock = threading.Lock()

    def add(self, p):
        with self.lock:
            self.procs.append(p)
        if STOP.is_set():  # started while tearing down: do not leak it
            kill_group(p)

    def pids(self):
        with self.lock:
            return [p.pid for p in self.procs]

    def kill_all(self):
        with self.lock:
            procs, self.procs = self.procs, []
        for p in procs:
            kill_group(p)
        time.sleep(0.3)
        with self.lock:  # any child a worker added while we were killing
            late, self.procs = self.procs, []
        for p in late:
            kill_group(p)
        procs += late
        for p in procs:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass
        return len(procs)


class ProcessLike:
    """A contender whose instance is one child process printing `ready`."""

    name = "?"
    ready_timeout = 30.0

    def __init__(self, args, work):
        self.args = args
        self.work = work
        self.kids = Spawned()
        self.info = {}

    def command(self, i):
        raise NotImplementedError

    def setup(self):
        pass

    def start_one(self, i, sample):
        cmd = self.command(i)
        t0 = time.perf_counter()
        p = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                             stderr=subprocess.DEVNULL, start_new_session=True)
        self.kids.add(p)
        try:
            ok = wait_token(p.stdout.fileno(), b"ready", self.ready_timeout)
            t = time.perf_counter() - t0
        finally:
            p.stdout.close()  # no descriptor held per instance by the harness
        if not ok:
            raise RuntimeError(f"no `ready` within {self.ready_timeout:.0f} s (exit {p.poll()})")
        return t, None

    def pids(self):
        return self.kids.pids()

    def pss_total_kib(self):
        return sum(pss_kib(pid) for pid in self.pids())

    def teardown(self):
        return self.kids.kill_all()


class NativeProcess(ProcessLike):
    name = "process"

    def setup(self):
        exe = self.args.native
        if not exe:
            r = subprocess.run(["cargo", "build", "--release", "--manifest-path", "examples/Cargo.toml",
                                "-p", "idle", "--message-format=json"], capture_output=True, text=True)
            if r.returncode != 0:
                raise Skip("cargo could not build examples/idle for the host: " + r.stderr[-300:])
            # Where cargo put it (CARGO_TARGET_DIR may move it from examples/target).
            exe = "examples/target/release/idle"
            for line in r.stdout.splitlines():
                try:
                    msg = json.loads(line)
                except ValueError:
                    continue
                if msg.get("reason") == "compiler-artifact" and msg.get("executable") \
                        and msg.get("target", {}).get("name") == "idle":
                    exe = msg["executable"]
        if not os.access(exe, os.X_OK):
            raise Skip(f"{exe} is not an executable")
        self.exe = os.path.realpath(exe)
        self.info = {"binary": self.exe, "size_bytes": os.path.getsize(self.exe),
                     "build": "cargo build --release --manifest-path examples/Cargo.toml -p idle"}

    def command(self, i):
        return [self.exe]


class WasmtimeCli(ProcessLike):
    name = "wasmtime"

    def setup(self):
        exe = shutil.which("wasmtime") or os.path.expanduser("~/.cargo/bin/wasmtime")
        if not os.access(exe, os.X_OK):
            raise Skip("`wasmtime` is not on PATH (install: cargo install wasmtime-cli --version 48.0.8 --locked)")
        self.exe = exe
        self.wasm = os.path.realpath("examples/idle/idle.wasm")
        self.info = {"binary": exe, "version": sh([exe, "--version"]),
                     "command": "wasmtime run -C cache=y examples/idle/idle.wasm"}
        # Warm the compiled-module cache so no measured start compiles.
        p = subprocess.run([exe, "run", "-C", "cache=y", self.wasm, "0"], capture_output=True, timeout=120)
        if p.returncode != 0:
            raise Skip("wasmtime run failed: " + p.stderr.decode(errors="replace")[-300:])

    def command(self, i):
        return [self.exe, "run", "-C", "cache=y", self.wasm]


INIT = """#!/bin/busybox sh
/bin/busybox mount -t devtmpfs dev /dev 2>/dev/null
echo ready > /dev/ttyS0
while :; do /bin/busybox sleep 86400; done
"""


def newc_cpio(entries):
    """An uncompressed newc cpio archive of (name, mode, data) entries."""
    out = io.BytesIO()
    ino = 1

    def put(name, mode, data):
        nonlocal ino
        nb = name.encode() + b"\0"
        hdr = "070701" + "".join(f"{v:08x}" for v in (
            ino, mode, 0, 0, 1, 0, len(data), 0, 0, 0, 0, len(nb), 0))
        ino += 1
        out.write(hdr.encode() + nb)
        out.write(b"\0" * (-(110 + len(nb)) % 4))
        out.write(data)
        out.write(b"\0" * (-len(data) % 4))

    for name, mode, data in entries:
        put(name, mode, data)
    put("TRAILER!!!", 0, b"")
    return out.getvalue()


def is_static_elf(path):
    """True when the ELF64 file at PATH has no PT_INTERP program header."""
    import struct
    with open(path, "rb") as f:
        head = f.read(64)
        if head[:4] != b"\x7fELF" or head[4] != 2:
            return False
        phoff, = struct.unpack_from("<Q", head, 32)
        phentsize, phnum = struct.unpack_from("<HH", head, 54)
        f.seek(phoff)
        table = f.read(phentsize * phnum)
    return all(struct.unpack_from("<I", table, k * phentsize)[0] != 3 for k in range(phnum))


class QemuVm(ProcessLike):
    name = "vm"
    ready_timeout = 120.0

    def setup(self):
        self.qemu = shutil.which("qemu-system-x86_64")
        kernels = sorted(glob.glob("/boot/vmlinuz-*-cloud-amd64"))
        busybox = shutil.which("busybox") or "/bin/busybox"
        missing = []
        if not self.qemu:
            missing.append("qemu-system-x86_64 (apt-get install qemu-system-x86)")
        if not kernels:
            missing.append("/boot/vmlinuz-*-cloud-amd64 (apt-get install linux-image-cloud-amd64)")
        if not os.path.exists(busybox):
            missing.append("busybox (apt-get install busybox-static)")
        elif not is_static_elf(busybox):
            missing.append(f"a static busybox ({busybox} is dynamically linked: apt-get install busybox-static)")
        if missing:
            raise Skip("missing: " + "; ".join(missing))
        self.kernel = kernels[-1]
        # The initramfs: /bin/busybox and /init, newc cpio + gzip, built here
        # from the installed packages (the cpio format is simple enough to
        # write directly; the `cpio` tool is not needed at run time).
        with open(busybox, "rb") as f:
            bb = f.read()
        archive = newc_cpio([("bin", 0o040755, b""), ("dev", 0o040755, b""), ("proc", 0o040755, b""),
                             ("bin/busybox", 0o100755, bb), ("init", 0o100755, INIT.encode())])
        self.initrd = os.path.join(self.work, "initramfs.cpio.gz")
        with open(self.initrd, "wb") as f:
            f.write(gzip.compress(archive, compresslevel=6))
        self.mem = self.args.vm_mem
        self.accel, why = self.probe_kvm()
        self.info = {
            "qemu": sh([self.qemu, "--version"]).splitlines()[0] if self.qemu else "",
            "kernel": self.kernel,
            "kernel_package": sh(["dpkg-query", "-W", "-f=${Package} ${Version}", "linux-image-cloud-amd64"]),
            "busybox_package": sh(["dpkg-query", "-W", "-f=${Package} ${Version}", "busybox-static"]),
            "initramfs_bytes": os.path.getsize(self.initrd),
            "memory": self.mem,
            "accel": self.accel,
            "accel_reason": why,
            "command": " ".join(self.base_cmd(self.accel, "SERIAL.log")),
        }

    def base_cmd(self, accel, serial):
        a = ["-accel", "kvm"] if accel == "kvm" else ["-accel", "tcg,tb-size=32"]
        return [self.qemu] + a + [
            "-m", self.mem, "-smp", "1", "-display", "none", "-monitor", "none", "-nodefaults",
            "-no-reboot", "-serial", "file:" + serial, "-kernel", self.kernel, "-initrd", self.initrd,
            "-append", "console=ttyS0 quiet panic=-1"]

    def boot(self, accel, serial, timeout):
        t0 = time.perf_counter()
        p = subprocess.Popen(self.base_cmd(accel, serial), stdin=subprocess.DEVNULL,
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
        self.kids.add(p)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and not STOP.is_set():
            try:
                with open(serial, "rb") as f:
                    if b"\nready" in b"\n" + f.read():
                        p.stderr.close()
                        return p, time.perf_counter() - t0, ""
            except FileNotFoundError:
                pass
            if p.poll() is not None:
                break
            time.sleep(0.02)
        err = ""
        if p.poll() is not None:
            err = p.stderr.read().decode(errors="replace").strip()[-300:]
        p.stderr.close()
        return p, None, err or f"no `ready` within {timeout:.0f} s"

    def probe_kvm(self):
        if self.args.vm_accel == "tcg":
            return "tcg", "--vm-accel tcg"
        try:
            os.close(os.open("/dev/kvm", os.O_RDWR))
        except OSError as e:
            return "tcg", f"/dev/kvm unusable ({e.strerror})"
        serial = os.path.join(self.work, "kvm-probe.log")
        p, t, err = self.boot("kvm", serial, self.args.kvm_probe_timeout)
        kill_group(p)
        p.wait()
        with self.kids.lock:
            self.kids.procs.remove(p)
        if t is not None:
            return "kvm", f"KVM probe booted to `ready` in {t:.2f} s"
        return "tcg", ("/dev/kvm opens but a KVM guest did not boot to `ready` ("
                       + err.replace("\n", " ") + "); TCG used")

    def start_one(self, i, sample):
        serial = os.path.join(self.work, f"vm-{i}.log")
        p, t, err = self.boot(self.accel, serial, self.ready_timeout)
        if t is None:
            raise RuntimeError(err)
        return t, None


class WrunDaemon:
    name = "wrun"

    def __init__(self, args, work):
        self.args = args
        self.work = work
        self.daemon = None
        self.info = {}
        self.local = threading.local()
        self.sample_every = 1

    def setup(self):
        wrun = self.args.wrun
        if not os.access(wrun, os.X_OK):
            raise Skip(f"{wrun} is not built (cargo build --release)")
        pre = None
        if self.args.daemon_nofile:
            n = self.args.daemon_nofile

            def pre():
                resource.setrlimit(resource.RLIMIT_NOFILE, (n, n))
        max_n = max(self.args.steps_for["wrun"]) + 64
        self.daemon = Daemon(wrun, os.path.join(self.work, "wrun"), max_n, self.args.daemon_arg,
                             preexec_fn=pre)
        os.makedirs(self.daemon.work, exist_ok=True)
        self.daemon.build("idle:bench", "examples/idle")
        self.daemon.start()
        # Warm up: the first start compiles the module into the store's cache;
        # no measured start should.
        c = self.conn()
        t_ready, _ = self.start_one(-1, True)
        status, body = request(c, "GET", "/containers/json")
        for ent in json.loads(body) if status == 200 else []:
            request(c, "DELETE", f"/containers/{ent['Id']}?force=1")
        limits = ""
        try:
            with open(f"/proc/{self.daemon.proc.pid}/limits") as f:
                limits = next((ln for ln in f if ln.startswith("Max open files")), "")
        except OSError:
            pass
        self.info = {
            "binary": os.path.realpath(wrun),
            "version": sh([wrun, "--version"]),
            "commit": sh(["git", "rev-parse", "HEAD"]),
            "max_instances": max_n,
            "tmpfs": self.args.wrun_tmpfs,
            "read_only": self.args.wrun_read_only,
            "rootfs": "read-only (HostConfig.ReadonlyRootfs)" if self.args.wrun_read_only
                      else "writable copy-on-write view (the default)",
            "daemon_args": self.args.daemon_arg,
            "daemon_nofile": " ".join(limits.split()[3:5]),
            "daemon_base_pss_kib": pss_kib(self.daemon.proc.pid),
            "warmup_first_start_to_ready_ms": t_ready * 1e3,
            "ready_sampling": "the log of 1 instance in K (about 200 per step) is polled "
                              "(GET /containers/{id}/logs?stdout=1) until it holds `ready`",
        }

    def conn(self):
        c = getattr(self.local, "conn", None)
        if c is None:
            c = self.local.conn = self.daemon.conn(timeout=120)
        return c

    def start_one(self, i, sample):
        c = self.conn()
        t0 = time.perf_counter()
        try:
            create = {"Image": "idle:bench"}
            host = {}
            if self.args.wrun_tmpfs:
                host["Tmpfs"] = {"/tmp": ""}
            if self.args.wrun_read_only:
                host["ReadonlyRootfs"] = True
            if host:
                create["HostConfig"] = host
            status, body = request(c, "POST", "/containers/create", create)
            if status != 201:
                raise RuntimeError(f"create: {status} {body[:160].decode(errors='replace')}")
            cid = json.loads(body)["Id"]
            ts = time.perf_counter()
            status, body = request(c, "POST", f"/containers/{cid}/start")
            if status not in (204, 304):
                raise RuntimeError(f"start: {status} {body[:160].decode(errors='replace')}")
            api = time.perf_counter() - t0
            if not sample:
                return None, api
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                status, body = request(c, "GET", f"/containers/{cid}/logs?stdout=1")
                if status == 200 and b"ready" in body:
                    return time.perf_counter() - ts, api
                time.sleep(0.0005)
            raise RuntimeError("no `ready` in the log within 30 s")
        except OSError:
            self.local.conn = None
            raise

    def pids(self):
        return [self.daemon.proc.pid] if self.daemon and self.daemon.proc else []

    def pss_total_kib(self):
        return sum(pss_kib(p) for p in self.pids())

    def teardown(self):
        if self.daemon:
            # An idle instance makes no upper (its writable layer appears on
            # its first write): count them before the store goes.
            layers = os.path.join(self.daemon.root, "containers", "layers")
            self.info["uppers_at_end"] = len(os.listdir(layers)) if os.path.isdir(layers) else 0
            self.daemon.stop(timeout=180)
        return 1


def unix_socket_path(host):
    """The socket path of a Docker host given as unix:///PATH or a plain path;
    None for any other scheme (tcp://, ssh://: not on this machine)."""
    if host.startswith("unix://"):
        return host[len("unix://"):]
    if "://" in host:
        return None
    return host


def peer_pid(path):
    """The pid of the process listening on the Unix socket PATH (SO_PEERCRED)."""
    import socket
    import struct
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        s.settimeout(5)
        s.connect(path)
        creds = s.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    finally:
        s.close()
    return struct.unpack("3i", creds)[0]


def process_table():
    """{pid: (ppid, argv)} of every process readable in /proc."""
    table = {}
    for ent in os.listdir("/proc"):
        if not ent.isdigit():
            continue
        try:
            with open(f"/proc/{ent}/stat") as f:
                stat = f.read()
            with open(f"/proc/{ent}/cmdline", "rb") as f:
                argv = [a.decode(errors="replace") for a in f.read().split(b"\0") if a]
        except OSError:
            continue
        # The comm field may hold spaces and parentheses: the ppid follows the last ')'.
        ppid = int(stat[stat.rindex(")") + 2:].split()[1])
        table[int(ent)] = (ppid, argv)
    return table


def flag_value(argv, flag):
    try:
        return argv[argv.index(flag) + 1]
    except (ValueError, IndexError):
        return None


class DockerEngine:
    """Docker Engine (dockerd + containerd + one runc shim per container) on
    the socket of --docker-host, driven through its REST API like wrun.

    The instance is examples/idle built natively and statically with rustc
    (the same source as the other contenders), imported as a one-file image
    (`POST /images/create?fromSrc=-`, the API of `docker import`)."""

    name = "docker"
    ready_timeout = 60.0

    def __init__(self, args, work):
        self.args = args
        self.work = work
        self.info = {}
        self.local = threading.local()
        self.lock = threading.Lock()
        self.ids = set()
        self.token = f"{os.getpid()}-{int(time.time())}"
        self.prefix = f"bench-density-{self.token}-"
        self.image = f"bench-idle:density-{self.token}"
        self.sock = None
        self.image_made = False

    def conn(self):
        c = getattr(self.local, "conn", None)
        if c is None:
            c = self.local.conn = UnixHTTPConnection(self.sock, timeout=120)
        return c

    def call(self, method, path, body=None, ok=(200,)):
        try:
            status, payload = request(self.conn(), method, path, body)
        except OSError:
            self.local.conn = None
            raise
        if status not in ok:
            raise RuntimeError(f"{method} {path.split('?')[0]}: {status} {payload[:200].decode(errors='replace').strip()}")
        return payload

    def find_socket(self):
        given = self.args.docker_host
        host = given or os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"
        path = unix_socket_path(host)
        if path is None:
            msg = f"{host} is not a unix:// socket (the memory readings need dockerd's processes on this machine)"
            if given:
                raise RuntimeError(msg)
            raise Skip(msg)
        try:
            status, _ = request(UnixHTTPConnection(path, timeout=5), "GET", "/_ping")
        except OSError as e:
            status = f"{e.strerror or e}"
        if status != 200:
            msg = f"no dockerd answers on {host} ({status})"
            if given:
                raise RuntimeError(msg)
            raise Skip(msg + "; pass --docker-host unix:///PATH/docker.sock")
        self.sock = path

    def build_idle(self):
        """examples/idle as a static executable; returns its path."""
        exe = os.path.join(self.work, "idle")
        cmd = ["rustc", "-O", "-C", "target-feature=+crt-static", "-C", "strip=symbols",
               "--edition", "2024", "-o", exe, "examples/idle/src/main.rs"]
        r = subprocess.run(cmd, capture_output=True, text=True)
        if r.returncode != 0:
            raise Skip("rustc could not build examples/idle statically: " + r.stderr[-300:])
        if not is_static_elf(exe):
            raise Skip(f"{' '.join(cmd)} did not give a static executable")
        return exe, " ".join(cmd).replace(exe, "idle")

    def import_image(self, exe):
        import tarfile
        import urllib.parse
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w") as t:
            ti = t.gettarinfo(exe, arcname="idle")
            ti.uid = ti.gid = 0
            ti.uname = ti.gname = "root"
            with open(exe, "rb") as f:
                t.addfile(ti, f)
        repo, tag = self.image.split(":")
        q = urllib.parse.urlencode({"fromSrc": "-", "repo": repo, "tag": tag, "changes": 'CMD ["/idle"]'})
        c = UnixHTTPConnection(self.sock, timeout=120)
        c.request("POST", "/images/create?" + q, body=buf.getvalue(), headers={"Content-Type": "application/x-tar"})
        resp = c.getresponse()
        payload = resp.read()
        if resp.status != 200 or b'"error' in payload:
            raise RuntimeError(f"importing {self.image}: {resp.status} {payload[-200:].decode(errors='replace')}")
        self.image_made = True
        return len(buf.getvalue())

    def setup(self):
        self.find_socket()
        exe, build = self.build_idle()
        version = json.loads(self.call("GET", "/version"))
        info = json.loads(self.call("GET", "/info"))
        tar_bytes = self.import_image(exe)
        self.dockerd = peer_pid(self.sock)
        if pss_kib(self.dockerd) == 0:
            raise RuntimeError(f"cannot read /proc/{self.dockerd}/smaps_rollup of dockerd (run as root)")
        # Warm up (the first start of an image sets up its layer), and find
        # containerd through the warm-up's shim: its -address socket.
        t_ready, _ = self.start_one(-1, True)
        shim = self.shims(process_table())
        address = flag_value(shim[0][1], "-address") if shim else None
        if not address:
            raise RuntimeError("no containerd shim found for the warm-up container")
        self.containerd = peer_pid(address)
        self.remove_all()
        components = {c.get("Name"): c.get("Version") for c in version.get("Components", [])}
        self.info = {
            "host": "unix://" + self.sock,
            "engine": version.get("Version"), "api_version": version.get("ApiVersion"),
            "containerd": components.get("containerd"), "runc": components.get("runc"),
            "storage_driver": info.get("Driver"), "cgroup_driver": info.get("CgroupDriver"),
            "cgroup_version": info.get("CgroupVersion"), "logging_driver": info.get("LoggingDriver"),
            "dockerd_pid": self.dockerd, "containerd_pid": self.containerd, "containerd_address": address,
            "dockerd_base_pss_kib": pss_kib(self.dockerd),
            "containerd_base_pss_kib": pss_kib(self.containerd),
            "image": self.image, "image_tar_bytes": tar_bytes, "binary_bytes": os.path.getsize(exe),
            "build": build,
            "create": {"Image": self.image, "HostConfig": {"NetworkMode": "none"}},
            "pss_summed": "dockerd + containerd + each benchmark container's containerd-shim-runc-v2 "
                          "(matched by its -id) + the shim's descendants (the container's /idle)",
            "warmup_first_start_to_ready_ms": t_ready * 1e3,
            "ready_sampling": "the log of 1 instance in K (about 200 per step) is polled "
                              "(GET /containers/{id}/logs?stdout=1, every 2 ms) until it holds `ready`",
        }

    def start_one(self, i, sample):
        t0 = time.perf_counter()
        name = self.prefix + ("warmup" if i < 0 else str(i))
        body = self.call("POST", f"/containers/create?name={name}",
                         {"Image": self.image, "HostConfig": {"NetworkMode": "none"}}, ok=(201,))
        cid = json.loads(body)["Id"]
        with self.lock:
            self.ids.add(cid)
        ts = time.perf_counter()
        self.call("POST", f"/containers/{cid}/start", ok=(204, 304))
        api = time.perf_counter() - t0
        if not sample:
            return None, api
        deadline = time.monotonic() + self.ready_timeout
        while time.monotonic() < deadline:
            if b"ready" in self.call("GET", f"/containers/{cid}/logs?stdout=1"):
                return time.perf_counter() - ts, api
            time.sleep(0.002)
        raise RuntimeError(f"no `ready` in the log within {self.ready_timeout:.0f} s")

    def shims(self, table):
        """[(pid, argv)] of the shims of this run's containers."""
        with self.lock:
            ids = set(self.ids)
        return [(pid, argv) for pid, (_, argv) in table.items()
                if argv and "containerd-shim" in os.path.basename(argv[0]) and flag_value(argv, "-id") in ids]

    def pss_parts(self):
        table = process_table()
        shims = {pid for pid, _ in self.shims(table)}
        children = {}
        for pid, (ppid, _) in table.items():
            children.setdefault(ppid, []).append(pid)
        inside, todo = [], [c for s in shims for c in children.get(s, [])]
        while todo:
            pid = todo.pop()
            inside.append(pid)
            todo += children.get(pid, [])
        return {"dockerd": pss_kib(self.dockerd), "containerd": pss_kib(self.containerd),
                "shims": sum(pss_kib(p) for p in shims), "containers": sum(pss_kib(p) for p in inside),
                "shim_count": len(shims), "container_processes": len(inside)}

    def pss_total_kib(self):
        p = self.pss_parts()
        return p["dockerd"] + p["containerd"] + p["shims"] + p["containers"]

    def remove_all(self):
        """Force-remove every container this run created (tracked IDs, and by
        name prefix for a create whose answer was lost), 8 at a time."""
        import urllib.parse
        q = urllib.parse.quote(json.dumps({"name": [self.prefix]}))
        try:
            listed = {e["Id"] for e in json.loads(self.call("GET", f"/containers/json?all=1&filters={q}"))}
        except (OSError, RuntimeError, ValueError):
            listed = set()
        with self.lock:
            todo = list(self.ids | listed)
        failed = []

        def worker():
            while True:
                with self.lock:
                    if not todo:
                        return
                    cid = todo.pop()
                try:
                    self.call("DELETE", f"/containers/{cid}?force=1&v=1", ok=(204, 404))
                    with self.lock:
                        self.ids.discard(cid)
                except (OSError, RuntimeError) as e:
                    failed.append(f"{cid[:12]}: {e}")

        n = len(todo)
        threads = [threading.Thread(target=worker, daemon=True) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        if failed:
            print(f"  docker: {len(failed)} container(s) not removed (first: {failed[0]}); "
                  f"remove them with: docker rm -f $(docker ps -aq --filter name={self.prefix})", flush=True)
        return n

    def teardown(self):
        if self.sock is None:
            return 0
        n = self.remove_all()
        if self.image_made:
            try:
                self.call("DELETE", f"/images/{self.image}?force=1", ok=(200, 404))
            except (OSError, RuntimeError) as e:
                print(f"  docker: image {self.image} not removed: {e}", flush=True)
        return n


def start_batch(c, first, count, concurrency, guard, sample_every):
    """Start COUNT instances from index FIRST with CONCURRENCY threads.
    Returns (ready latencies, api latencies, started, errors, stop reason)."""
    lock = threading.Lock()
    nxt = [first]
    end = first + count
    ready, api, errors = [], [], []
    started = [0]
    stop = [None]
    consecutive = [0]

    def worker():
        while not STOP.is_set():
            with lock:
                if stop[0] or nxt[0] >= end:
                    return
                why = guard()
                if why:
                    stop[0] = why
                    return
                i = nxt[0]
                nxt[0] += 1
            try:
                t_ready, t_api = c.start_one(i, (i - first) % sample_every == 0)
            except Exception as e:  # a failed start is data, not a crash
                with lock:
                    errors.append(str(e)[:300])
                    consecutive[0] += 1
                    if consecutive[0] >= 20 and not stop[0]:
                        stop[0] = f"20 consecutive start failures (last: {str(e)[:200]})"
                continue
            with lock:
                consecutive[0] = 0
                started[0] += 1
                if t_ready is not None:
                    ready.append(t_ready)
                if t_api is not None:
                    api.append(t_api)

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(max(1, concurrency))]
    for t in threads:
        t.start()
    for t in threads:
        while t.is_alive():
            t.join(0.2)
    return ready, api, started[0], errors, stop[0]


def wait_stable(settle, limit=30.0, tol_kib=4096):
    """Sleep SETTLE, then until MemAvailable moves less than TOL over one
    second (memory freed by the previous contender is still coming back for
    a while); returns the last reading."""
    time.sleep(settle)
    end = time.monotonic() + limit
    prev = meminfo_kib()
    while time.monotonic() < end:
        time.sleep(1.0)
        cur = meminfo_kib()
        if abs(cur - prev) < tol_kib:
            return cur
        prev = cur
    return prev


KERNEL_FIELDS = ("SReclaimable", "SUnreclaim", "PageTables", "KernelStack")


def kernel_kib():
    """The kernel's own memory by kind (/proc/meminfo), which MemAvailable
    counts and PSS does not: slab (dentries, inodes, files), page tables,
    thread stacks."""
    return {k: meminfo_kib(k) for k in KERNEL_FIELDS}


def run_contender(c, steps, args, log):
    out = {"available": True, "steps": [], "stopped": None, "info": {}}
    t_setup = time.perf_counter()
    try:
        c.setup()
    except Skip as e:
        return {"available": False, "skipped": str(e), "steps": []}
    out["info"] = c.info
    out["setup_s"] = time.perf_counter() - t_setup
    avail0 = wait_stable(args.settle, limit=3.0 if args.quick else 30.0)
    kernel0 = kernel_kib()
    pss0 = c.pss_total_kib()
    parts0 = c.pss_parts() if hasattr(c, "pss_parts") else None
    reserve = int(args.reserve_gib * GIB_KIB)
    t0 = time.monotonic()
    budget = args.budget_for.get(c.name, args.budget)
    deadline = t0 + budget

    def guard():
        if meminfo_kib() < reserve:
            return f"MemAvailable under the {args.reserve_gib:g} GiB reserve"
        if time.monotonic() > deadline:
            return f"time budget of {budget:g} s spent"
        return None

    conc = args.concurrency.get(c.name, 2)
    count = 0
    for n in steps:
        need = n - count
        # Most of the step is started by CONC concurrent starters (the start
        # rate); its last PROBE instances one at a time, each timed to
        # `ready` (the latency, without the queueing of a concurrent ramp).
        probe = min(args.probe.get(c.name, 20), need)
        ramp_n = need - probe
        sample_every = max(1, ramp_n // 200) if c.name in ("wrun", "docker") else 1
        ts = time.perf_counter()
        ready, api, started, errors, why = start_batch(c, count, ramp_n, conc, guard, sample_every)
        wall = time.perf_counter() - ts
        count += started
        p_ready, p_api, p_started, p_errors = [], [], 0, []
        if not why and not STOP.is_set() and probe:
            p_ready, p_api, p_started, p_errors, why = start_batch(c, count, probe, 1, guard, 1)
            count += p_started
        errors += p_errors
        if STOP.is_set():
            raise KeyboardInterrupt
        time.sleep(args.settle)
        avail = meminfo_kib()
        kernel = kernel_kib()
        pss = c.pss_total_kib()
        parts = c.pss_parts() if parts0 is not None else None
        drop = (avail0 - avail) / max(count, 1)
        pss_per = (pss - pss0) / max(count, 1)
        step = {
            "target": n, "reached": count, "started_this_step": started + p_started, "errors": len(errors),
            "first_errors": errors[:3],
            "ramp_started": started, "ramp_wall_s": wall, "ramp_concurrency": conc,
            "start_rate_per_s": started / wall if wall > 0 and started else None,
            "ready_samples": len(p_ready),
            "ready_p50_ms": percentile(p_ready, 50) * 1e3, "ready_p99_ms": percentile(p_ready, 99) * 1e3,
            "api_p50_ms": percentile(p_api, 50) * 1e3 if p_api else None,
            "api_p99_ms": percentile(p_api, 99) * 1e3 if p_api else None,
            "ramp_ready_samples": len(ready),
            "ramp_ready_p50_ms": percentile(ready, 50) * 1e3, "ramp_ready_p99_ms": percentile(ready, 99) * 1e3,
            "ramp_api_p50_ms": percentile(api, 50) * 1e3 if api else None,
            "ramp_api_p99_ms": percentile(api, 99) * 1e3 if api else None,
            "memavailable_drop_kib_per_instance": drop, "pss_kib_per_instance": pss_per,
            "pss_total_kib": pss, "memavailable_kib": avail,
            # System-wide, like MemAvailable: moved by anything else running.
            "kernel_kib_per_instance": {k: (kernel[k] - kernel0[k]) / max(count, 1) for k in kernel},
            "instances_per_gib_pss": per_gib(pss_per),
            "instances_per_gib_memavailable": per_gib(drop),
        }
        if parts is not None:
            step["pss_parts_kib_per_instance"] = {k: (parts[k] - parts0[k]) / max(count, 1)
                                                  for k in ("dockerd", "containerd", "shims", "containers")}
            step["pss_parts_total_kib"] = parts
        out["steps"].append(step)
        log(f"  {c.name} N={count}/{n}: {drop:.0f} KiB/inst (MemAvailable), {pss_per:.0f} KiB/inst (PSS), "
            f"ready p50 {step['ready_p50_ms']:.2f} ms p99 {step['ready_p99_ms']:.2f} ms (serial), "
            f"{step['ramp_ready_p50_ms']:.2f}/{step['ramp_ready_p99_ms']:.2f} ms (ramp), "
            f"{fmt(step['start_rate_per_s'])}/s, {len(errors)} errors, {wall:.1f} s")
        if not why and count < n:
            why = f"{len(errors)} start failures (first: {errors[0] if errors else '?'})"
        if why:
            out["stopped"] = {"at": count, "target": n, "reason": why}
            log(f"  {c.name} stopped at {count}: {why}")
            break
    out["run_s"] = time.monotonic() - t0
    return out


def machine_info():
    cpu = ""
    with open("/proc/cpuinfo") as f:
        for ln in f:
            if ln.startswith("model name"):
                cpu = ln.split(":", 1)[1].strip()
                break
    return {
        "cpus": os.cpu_count(), "cpu_model": cpu,
        "mem_total_gib": round(meminfo_kib("MemTotal") / GIB_KIB, 1),
        "kernel": platform.release(), "os": sh(["sh", "-c", ". /etc/os-release; echo $PRETTY_NAME"]),
        "nofile_limit": resource.getrlimit(resource.RLIMIT_NOFILE),
        "pid_max": int(open("/proc/sys/kernel/pid_max").read()),
        "python": platform.python_version(),
        "loadavg": loadavg(),
    }


def loadavg():
    """The 1, 5 and 15 minute load averages (the machine may be shared)."""
    with open("/proc/loadavg") as f:
        return [float(x) for x in f.read().split()[:3]]


# ---------------------------------------------------------------- outputs

COLORS = {"wrun": "#1f77b4", "process": "#2ca02c", "wasmtime": "#ff7f0e", "vm": "#d62728", "docker": "#9467bd"}


def last_step(r):
    return r["steps"][-1] if r.get("steps") else None


def fmt(v, digits=1):
    if v is None or v != v:
        return "—"
    if abs(v) >= 100:
        return f"{v:,.0f}"
    return f"{v:,.{digits}f}"


def per_gib(kib):
    return GIB_KIB / kib if kib and kib > 0 else None


def ratios(results):
    """wrun's instances per GiB at its largest N over each contender's at its
    largest N, on both bases: PSS (always measurable) and the MemAvailable
    drop (includes kernel memory, but disturbed by anything else the machine
    does; None when a drop is not positive)."""
    w = last_step(results.get("wrun", {}))
    out = {}
    if not w:
        return out
    for name, r in results.items():
        s = last_step(r)
        if name == "wrun" or not s:
            continue
        x = {"wrun_at": w["reached"], "at": s["reached"]}
        for basis, key in (("pss", "pss_kib_per_instance"), ("memavailable", "memavailable_drop_kib_per_instance")):
            a, b = per_gib(w[key]), per_gib(s[key])
            x[f"wrun_instances_per_gib_{basis}"] = a
            x[f"instances_per_gib_{basis}"] = b
            x[f"ratio_{basis}"] = a / b if a and b else None
        a, b = w.get("start_rate_per_s"), s.get("start_rate_per_s")
        x["wrun_start_rate_per_s"], x["start_rate_per_s"] = a, b
        x["ratio_start_rate"] = a / b if a and b else None
        out[name] = x
    return out


def short(v):
    """A bar's label: whole numbers from 100 up (3,908), else 3 significant digits."""
    return f"{v:,.0f}" if v >= 100 else f"{v:.3g}"


def svg_chart(results):
    """Three log-scale bar panels: memory per instance (KiB), start latency
    to `ready` (ms, p50 and p99) and the start rate of the concurrent ramp
    (instances per second), each contender at its largest step."""
    import math
    rows = [(n, last_step(r)) for n, r in results.items() if last_step(r)]
    W, H, top, bottom = 1260, 400, 60, 330
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" viewBox="0 0 {W} {H}" '
           'font-family="sans-serif" font-size="12">',
           '<rect width="100%" height="100%" fill="white"/>']

    def panel(x0, width, title, unit, series):
        vals = [v for _, pairs in series for _, v in pairs if v and v > 0]
        if not vals:
            return
        lo = 10 ** math.floor(math.log10(min(vals)))
        hi = 10 ** math.ceil(math.log10(max(vals)))
        if hi <= lo:
            hi = lo * 10

        def y(v):
            return bottom - (math.log10(v) - math.log10(lo)) / (math.log10(hi) - math.log10(lo)) * (bottom - top)
        out.append(f'<text x="{x0 + width / 2}" y="24" text-anchor="middle" font-size="14" '
                   f'font-weight="bold">{title}</text>')
        out.append(f'<text x="{x0 + width / 2}" y="42" text-anchor="middle" fill="#555">{unit}, log scale</text>')
        e = lo
        while e <= hi * 1.0001:
            yy = y(e)
            out.append(f'<line x1="{x0 + 50}" x2="{x0 + width}" y1="{yy:.1f}" y2="{yy:.1f}" stroke="#ddd"/>')
            label = f"{e:g}" if e < 1e6 else f"1e{int(round(math.log10(e)))}"
            out.append(f'<text x="{x0 + 45}" y="{yy + 4:.1f}" text-anchor="end" fill="#555">{label}</text>')
            e *= 10
        group = (width - 60) / max(1, len(series))
        for gi, (name, pairs) in enumerate(series):
            gx = x0 + 60 + gi * group
            bw = (group - 16) / max(1, len(pairs))
            for bi, (kind, v) in enumerate(pairs):
                if not v or v <= 0:
                    continue
                bx = gx + bi * bw
                yy = y(v)
                op = "1" if bi == 0 else "0.55"
                out.append(f'<rect x="{bx:.1f}" y="{yy:.1f}" width="{bw - 2:.1f}" height="{bottom - yy:.1f}" '
                           f'fill="{COLORS.get(name, "#777")}" fill-opacity="{op}"><title>{name} {kind}: '
                           f'{short(v)}</title></rect>')
                out.append(f'<text x="{bx + (bw - 2) / 2:.1f}" y="{yy - 4:.1f}" text-anchor="middle" '
                           f'font-size="10">{short(v)}</text>')
                out.append(f'<text x="{bx + (bw - 2) / 2:.1f}" y="{bottom + 13}" text-anchor="middle" '
                           f'font-size="9" fill="#555">{kind}</text>')
            n_at = dict(rows)[name]["reached"]
            out.append(f'<text x="{gx + (group - 16) / 2:.1f}" y="{bottom + 30}" text-anchor="middle" '
                       f'font-weight="bold">{name}</text>')
            out.append(f'<text x="{gx + (group - 16) / 2:.1f}" y="{bottom + 44}" text-anchor="middle" '
                       f'font-size="10" fill="#555">N = {n_at:,}</text>')
        out.append(f'<line x1="{x0 + 50}" x2="{x0 + width}" y1="{bottom}" y2="{bottom}" stroke="#333"/>')

    mem = [(n, [("MemAvail", s["memavailable_drop_kib_per_instance"]), ("PSS", s["pss_kib_per_instance"])])
           for n, s in rows]
    lat = [(n, [("p50", s["ready_p50_ms"]), ("p99", s["ready_p99_ms"])]) for n, s in rows]
    rate = [(n, [("ramp", s["start_rate_per_s"])]) for n, s in rows]
    third = W / 3
    panel(0, third - 10, "Memory per idle instance", "KiB", mem)
    panel(third + 10, third - 20, "Start latency to `ready`", "ms", lat)
    panel(2 * third + 10, third - 20, "Start rate, concurrent clients", "instances/s", rate)
    out.append("</svg>")
    return "\n".join(out) + "\n"


def report_md(doc):
    res = doc["contenders"]
    load = ""
    if doc["machine"].get("loadavg") and doc.get("loadavg_end"):
        load = (f" Load average (1, 5, 15 min) {' / '.join(map(str, doc['machine']['loadavg']))} at the start, "
                f"{' / '.join(map(str, doc['loadavg_end']))} at the end.")
    L = ["# Density: wrun against processes, wasmtime, VMs and Docker Engine", "",
         f"Run {doc['started_at']} on {doc['machine']['cpus']} cores, {doc['machine']['mem_total_gib']} GiB, "
         f"{doc['machine']['cpu_model']}, kernel {doc['machine']['kernel']}. "
         f"Command: `{doc['command']}` ({doc['duration_s']:.0f} s)." + load, "",
         "Latency: the last instances of each step started one at a time (serial); "
         "under load: the concurrent ramp of the step.", "",
         "inst / GiB is by PSS; the MemAvailable column is the system-wide drop (kernel memory included, "
         "but moved by anything else running on the machine).", "",
         "| contender | N target | reached | MemAvailable drop / inst | PSS / inst | inst / GiB (PSS) | "
         "ready p50 / p99 (serial) | ready p50 / p99 (under load) | API create+start p50 / p99 (serial) | "
         "start rate (ramp) | errors |",
         "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for name, r in res.items():
        if not r.get("available"):
            L.append(f"| {name} | — | skipped: {r.get('skipped')} | | | | | | | | |")
            continue
        for s in r["steps"]:
            api = "—" if s["api_p50_ms"] is None else f"{fmt(s['api_p50_ms'], 2)} / {fmt(s['api_p99_ms'], 2)} ms"
            L.append(f"| {name} | {s['target']:,} | {s['reached']:,} | "
                     f"{fmt(s['memavailable_drop_kib_per_instance'])} KiB | {fmt(s['pss_kib_per_instance'])} KiB | "
                     f"{fmt(per_gib(s['pss_kib_per_instance']))} | {fmt(s['ready_p50_ms'], 2)} / {fmt(s['ready_p99_ms'], 2)} ms | "
                     f"{fmt(s.get('ramp_ready_p50_ms'), 2)} / {fmt(s.get('ramp_ready_p99_ms'), 2)} ms | {api} | "
                     f"{fmt(s['start_rate_per_s'])} /s | {s['errors']} |")
    wi = res.get("wrun", {}).get("info") or {}
    if wi.get("rootfs"):
        L += ["", f"wrun instances' rootfs: {wi['rootfs']}"
              + ("; with a private /tmp" if wi.get("tmpfs") else "")
              + (f"; writable layers (uppers) in the store at the end: {wi['uppers_at_end']:,}"
                 if "uppers_at_end" in wi else "") + "."]
    L += ["", "Ratios: wrun's instances per GiB at its largest N ÷ the contender's at its largest N "
          "(PSS basis; MemAvailable-drop basis where both drops are positive):", ""]
    for name, x in doc["ratios"].items():
        ma = "—" if x["ratio_memavailable"] is None else f"{x['ratio_memavailable']:,.1f}×"
        pss = "—" if x["ratio_pss"] is None else f"{x['ratio_pss']:,.1f}×"
        rate = "—" if x.get("ratio_start_rate") is None else (
            f"{x['ratio_start_rate']:,.1f}× ({fmt(x['wrun_start_rate_per_s'])}/s against "
            f"{fmt(x['start_rate_per_s'])}/s)")
        L.append(f"- {name}: **{pss}** by PSS ({fmt(x['wrun_instances_per_gib_pss'])} per GiB "
                 f"at N = {x['wrun_at']:,} against {fmt(x['instances_per_gib_pss'])} at N = {x['at']:,}); "
                 f"{ma} by MemAvailable drop; start rate of the ramp {rate}")
    L += ["", "Where each contender stopped:", ""]
    for name, r in res.items():
        if not r.get("available"):
            L.append(f"- {name}: skipped — {r.get('skipped')}")
        elif r.get("stopped"):
            st = r["stopped"]
            L.append(f"- {name}: at {st['at']:,} (step {st['target']:,}): {st['reason']}")
        else:
            L.append(f"- {name}: reached every step ({r['steps'][-1]['reached']:,})")
    dk = res.get("docker", {})
    if dk.get("available") and dk.get("info"):
        i = dk["info"]
        L += ["", f"Docker Engine {i.get('engine')} (API {i.get('api_version')}, containerd {i.get('containerd')}, "
              f"runc {i.get('runc')}, {i.get('storage_driver')}, cgroup v{i.get('cgroup_version')} "
              f"{i.get('cgroup_driver')}, log driver {i.get('logging_driver')}) on {i.get('host')}; "
              f"containers created with `{json.dumps(i.get('create'))}`. PSS summed: {i.get('pss_summed')}.", ""]
        parts = [(s["reached"], s["pss_parts_kib_per_instance"]) for s in dk["steps"]
                 if s.get("pss_parts_kib_per_instance")]
        if parts:
            L += ["| docker N | dockerd Δ / inst | containerd Δ / inst | shim / inst | container process / inst |",
                  "| ---: | ---: | ---: | ---: | ---: |"]
            for n, p in parts:
                L.append(f"| {n:,} | {fmt(p['dockerd'])} KiB | {fmt(p['containerd'])} KiB | "
                         f"{fmt(p['shims'])} KiB | {fmt(p['containers'])} KiB |")
    vm = res.get("vm", {})
    if vm.get("available"):
        L += ["", f"VM acceleration: **{vm['info'].get('accel')}** — {vm['info'].get('accel_reason')}"]
    L += ["", "![density](density.svg)", ""]
    return "\n".join(L)


def write_outputs(doc, out):
    doc["ratios"] = ratios(doc["contenders"])
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "results.json"), "w") as f:
        json.dump(doc, f, indent=2)
    with open(os.path.join(out, "density.svg"), "w") as f:
        f.write(svg_chart(doc["contenders"]))
    md = report_md(doc)
    with open(os.path.join(out, "report.md"), "w") as f:
        f.write(md)
    print()
    print(md)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="smoke pass: N = 10 (VM: 2)")
    ap.add_argument("--contenders", default=",".join(ALL))
    ap.add_argument("--steps", default="100,1000,10000", help="N steps for wrun, process and wasmtime")
    ap.add_argument("--vm-steps", default="10,100,1000")
    ap.add_argument("--docker-steps", default="10,100,500",
                    help="N steps for Docker Engine (each container costs MBs and a shim process)")
    ap.add_argument("--docker-host", help="the dockerd to measure, unix:///PATH (default: $DOCKER_HOST, "
                    "else unix:///var/run/docker.sock; the contender is skipped when none answers)")
    ap.add_argument("--docker-budget", type=float, default=300.0,
                    help="seconds of starting for Docker Engine (it starts a few containers a second)")
    ap.add_argument("--wrun", default="target/release/wrun")
    ap.add_argument("--native", help="the native idle binary (default: build it with cargo)")
    ap.add_argument("--budget", type=float, default=120.0, help="seconds of starting per contender")
    ap.add_argument("--reserve-gib", type=float, default=4.5,
                    help="stop a contender when MemAvailable falls under this (keep >= 4 GiB free)")
    ap.add_argument("--vm-mem", default="80M", help="guest memory (the smallest that boots the cloud kernel)")
    ap.add_argument("--vm-accel", choices=["auto", "tcg"], default="auto")
    ap.add_argument("--kvm-probe-timeout", type=float, default=10.0)
    ap.add_argument("--daemon-nofile", type=int, default=0,
                    help="set the daemon's RLIMIT_NOFILE (soft and hard; root may raise the hard limit)")
    ap.add_argument("--settle", type=float, default=2.0)
    ap.add_argument("--wrun-tmpfs", action="store_true",
                    help="wrun instances with a private /tmp (HostConfig.Tmpfs): two file descriptors "
                         "each, so N is capped by RLIMIT_NOFILE (by default they hold none)")
    ap.add_argument("--wrun-read-only", action="store_true",
                    help="wrun instances with a read-only rootfs (HostConfig.ReadonlyRootfs, `run "
                         "--read-only`); by default each has its writable copy-on-write view")
    ap.add_argument("--daemon-arg", action="append", default=[],
                    help="extra argument for `wrun daemon` (e.g. --daemon-arg=--max-instance-memory "
                         "--daemon-arg=64m, needed for 100,000 pool slots)")
    ap.add_argument("--out", default="target/density")
    ap.add_argument("--report-only", action="store_true",
                    help="rewrite report.md and density.svg from OUT/results.json without running anything")
    args = ap.parse_args()

    os.chdir(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    if args.report_only:
        with open(os.path.join(args.out, "results.json")) as f:
            doc = json.load(f)
        write_outputs(doc, args.out)
        return
    names = [n.strip() for n in args.contenders.split(",") if n.strip()]
    unknown = [n for n in names if n not in ALL]
    if unknown:
        sys.exit(f"unknown contender(s): {', '.join(unknown)} (known: {', '.join(ALL)})")
    steps = sorted({int(s) for s in args.steps.split(",")})
    vm_steps = sorted({int(s) for s in args.vm_steps.split(",")})
    docker_steps = sorted({int(s) for s in args.docker_steps.split(",")})
    if args.quick:
        steps, vm_steps, docker_steps = [10], [2], [10]
        args.budget = min(args.budget, 60.0)
        args.docker_budget = min(args.docker_budget, 60.0)
        args.settle = min(args.settle, 1.0)
    args.steps_for = {"wrun": steps, "process": steps, "wasmtime": steps, "vm": vm_steps, "docker": docker_steps}
    args.budget_for = {"docker": args.docker_budget}
    args.concurrency = {"wrun": 16, "process": 4, "wasmtime": 4, "vm": 2, "docker": 4}
    args.probe = {"wrun": 50, "process": 50, "wasmtime": 50, "vm": 4, "docker": 20}
    if args.quick:
        args.probe = {"wrun": 5, "process": 5, "wasmtime": 5, "vm": 1, "docker": 3}

    def on_term(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_term)
    work = tempfile.mkdtemp(prefix="wrun-density-")
    classes = {"wrun": WrunDaemon, "process": NativeProcess, "wasmtime": WasmtimeCli, "vm": QemuVm,
               "docker": DockerEngine}
    doc = {"started_at": time.strftime("%Y-%m-%d %H:%M:%S %z"), "command": " ".join(["benches/density.py"] + sys.argv[1:]),
           "machine": machine_info(), "quick": args.quick,
           "settings": {"budget_s": args.budget, "budget_s_for": args.budget_for, "reserve_gib": args.reserve_gib, "settle_s": args.settle,
                        "concurrency": args.concurrency, "serial_probe": args.probe,
                        "steps": args.steps_for},
           "contenders": {}}

    def log(msg):
        print(msg, flush=True)

    t_all = time.perf_counter()
    current = None
    interrupted = False
    try:
        for name in names:
            c = classes[name](args, os.path.join(work, name))
            os.makedirs(c.work, exist_ok=True)
            current = c
            log(f"{name}: steps {args.steps_for[name]}")
            try:
                doc["contenders"][name] = run_contender(c, args.steps_for[name], args, log)
            except KeyboardInterrupt:
                raise
            except Exception as e:
                doc["contenders"][name] = {"available": True, "steps": [], "error": repr(e),
                                           "stopped": {"at": 0, "target": 0, "reason": f"harness error: {e}"}}
                log(f"  {name}: error: {e}")
            finally:
                STOP.set()
                t = time.perf_counter()
                c.teardown()
                shutil.rmtree(c.work, ignore_errors=True)
                STOP.clear()
                current = None
                if name in doc["contenders"]:
                    doc["contenders"][name]["teardown_s"] = time.perf_counter() - t
            r = doc["contenders"][name]
            if not r.get("available"):
                log(f"  {name}: skipped: {r['skipped']}")
    except KeyboardInterrupt:
        interrupted = True
        log("interrupted: cleaning up")
    finally:
        STOP.set()
        if current is not None:
            current.teardown()
        shutil.rmtree(work, ignore_errors=True)

    doc["duration_s"] = time.perf_counter() - t_all
    doc["loadavg_end"] = loadavg()
    write_outputs(doc, args.out)
    if interrupted:
        sys.exit(130)
    if args.quick:
        failed = [n for n, r in doc["contenders"].items()
                  if r.get("available") and (not r["steps"] or r["steps"][-1]["reached"] < r["steps"][-1]["target"])]
        if failed:
            sys.exit("quick: contender(s) did not reach their instances: " + ", ".join(failed))


if __name__ == "__main__":
    main()
