"""One daemon under test (dockerd or wrun) as the scenarios see it: the
docker CLI, raw HTTP over its socket, docker-py and docker-compose, each
pointed at that daemon, plus what a scenario observes there."""

from __future__ import annotations

import http.client
import json
import os
import shutil
import socket
import subprocess
import time
import urllib.parse
from dataclasses import dataclass
from pathlib import Path

from normalize import shape, text


@dataclass
class Result:
    """A finished client command."""

    code: int
    out: str
    err: str


@dataclass
class Response:
    """One HTTP answer from the daemon."""

    status: int
    headers: dict
    body: bytes

    def json(self):
        return json.loads(self.body)


class ScenarioTimeout(Exception):
    """A condition a scenario polls for did not hold within its deadline."""


class UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float):
        super().__init__("localhost", timeout=timeout)
        self.socket_path = path

    def connect(self):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(self.timeout)
        s.connect(self.socket_path)
        self.sock = s


class Endpoint:
    """A daemon: `side` is "docker" (the oracle) or "wrun"."""

    def __init__(self, side: str, host: str, work: Path):
        assert host.startswith("unix://"), host
        self.side = side
        self.host = host
        self.socket_path = host[len("unix://") :]
        self.work = work
        self.env = dict(os.environ)
        self.env.update(
            DOCKER_HOST=host,
            DOCKER_CONFIG=str(work / "docker-config"),
            DOCKER_CLI_HINTS="false",
            COMPOSE_INTERACTIVE_NO_CLI="1",
        )
        for var in ("DOCKER_CONTEXT", "DOCKER_API_VERSION", "DOCKER_TLS_VERIFY", "DOCKER_CERT_PATH"):
            self.env.pop(var, None)
        (work / "docker-config").mkdir(parents=True, exist_ok=True)


class Ctx:
    """One scenario's run against one endpoint: unique names, a private
    temp folder, the clients, and the list of observations compared with
    the other side's."""

    def __init__(self, ep: Endpoint, case: str, prefix: str, tmp: Path, deadline: float):
        self.ep = ep
        self.side = ep.side
        self.case = case
        self.prefix = prefix
        self.tmp = tmp
        self.deadline = deadline
        self.observed: list[tuple[str, object]] = []
        self._sdk = None
        tmp.mkdir(parents=True, exist_ok=True)

    # --- names -----------------------------------------------------------
    def n(self, what: str) -> str:
        """A container/image/project name unique to this scenario and run,
        the same on both sides (so outputs naming it compare equal)."""
        return f"{self.prefix}-{what}"

    @property
    def label(self) -> str:
        """`key=value` carried by this scenario's containers, for filters."""
        return f"wrun-compat.case={self.prefix}"

    # --- observations ----------------------------------------------------
    def see(self, what: str, value) -> None:
        """Records one observation; both sides must record the same."""
        self.observed.append((what, value))

    def see_shape(self, what: str, doc) -> None:
        """Records the keys and value types of a JSON document."""
        self.observed.append((what, {"shape": shape(doc)}))

    def see_result(self, what: str, r: Result, out=True, err=True) -> None:
        """Records exit code and (normalized) output of a client command."""
        v = {"exit": r.code}
        if out:
            v["stdout"] = text(r.out, self.prefix)
        if err:
            v["stderr"] = text(r.err, self.prefix)
        self.see(what, v)

    # --- clients ---------------------------------------------------------
    def _timeout(self, timeout: float | None) -> float:
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise ScenarioTimeout("the scenario ran out of time")
        return min(timeout or left, left)

    def docker(self, *args: str, stdin: str | bytes | None = None, timeout: float | None = None) -> Result:
        """The stock docker CLI against this endpoint."""
        return self.run(["docker", *args], stdin=stdin, timeout=timeout)

    def run(self, argv: list[str], stdin=None, timeout=None, cwd=None, env: dict | None = None) -> Result:
        data = stdin.encode() if isinstance(stdin, str) else stdin
        try:
            p = subprocess.run(
                argv,
                input=data if data is not None else b"",
                capture_output=True,
                env=env if env is not None else self.ep.env,
                timeout=self._timeout(timeout),
                cwd=cwd,
            )
        except subprocess.TimeoutExpired as e:
            raise ScenarioTimeout(f"{' '.join(argv)} did not finish") from e
        return Result(p.returncode, p.stdout.decode(errors="replace"), p.stderr.decode(errors="replace"))

    def ok(self, *args: str, stdin=None) -> str:
        """docker ARGS that must succeed (setup steps); returns stdout."""
        r = self.docker(*args, stdin=stdin)
        if r.code != 0:
            raise SetupFailed(f"docker {' '.join(args)} exited {r.code}: {r.err.strip()}")
        return r.out

    def compose(self, project_dir: Path, *args: str, stdin=None, project: str | None = None, cli_attach: bool = False) -> Result:
        """docker-compose 1.29 in `project_dir` (its docker-compose.yml),
        with this scenario's project name (or `project`). `run` attaches
        through docker-py and dockerpty (COMPOSE_INTERACTIVE_NO_CLI), or
        with `cli_attach` as compose does by default: `docker start
        --attach --interactive`."""
        exe = shutil.which("docker-compose") or "docker-compose"
        env = None
        if cli_attach:
            env = {k: v for k, v in self.ep.env.items() if k != "COMPOSE_INTERACTIVE_NO_CLI"}
        return self.run([exe, "--ansi", "never", "-p", project or self.prefix, *args], stdin=stdin, cwd=project_dir, env=env)

    def api(self, method: str, path: str, body=None, query: dict | None = None, headers: dict | None = None, timeout=30) -> Response:
        """One raw HTTP request over the daemon's socket; `body` is sent as
        JSON unless it is bytes."""
        if query:
            path += "?" + urllib.parse.urlencode(query)
        hdrs = dict(headers or {})
        payload = None
        if body is not None:
            if isinstance(body, (bytes, bytearray)):
                payload = bytes(body)
            else:
                payload = json.dumps(body).encode()
                hdrs.setdefault("Content-Type", "application/json")
        conn = UnixHTTPConnection(self.ep.socket_path, self._timeout(timeout))
        try:
            conn.request(method, path, body=payload, headers=hdrs)
            r = conn.getresponse()
            data = r.read()
            return Response(r.status, {k.lower(): v for k, v in r.getheaders()}, data)
        finally:
            conn.close()

    @property
    def sdk(self):
        """A docker-py (7.x) client of this endpoint, API version negotiated."""
        if self._sdk is None:
            import docker

            self._sdk = docker.DockerClient(base_url=self.ep.host, version="auto", timeout=30)
        return self._sdk

    def close(self):
        if self._sdk is not None:
            self._sdk.close()

    # --- waiting ---------------------------------------------------------
    def until(self, what: str, check, timeout: float = 20):
        """Polls `check()` until it returns a true value (returned), with a
        deadline; never a fixed sleep."""
        end = min(time.monotonic() + timeout, self.deadline)
        delay = 0.02
        while True:
            v = check()
            if v:
                return v
            if time.monotonic() > end:
                raise ScenarioTimeout(f"waited in vain for {what}")
            time.sleep(delay)
            delay = min(delay * 2, 0.25)

    def state(self, name: str) -> str:
        """The container's State.Status (inspect), or "" when it is gone."""
        r = self.docker("inspect", "-f", "{{.State.Status}}", name)
        return r.out.strip() if r.code == 0 else ""

    def until_state(self, name: str, status: str, timeout: float = 20):
        self.until(f"{name} to be {status}", lambda: self.state(name) == status, timeout)

    def until_logs(self, name: str, needle: str, timeout: float = 20):
        self.until(f"'{needle}' in the logs of {name}", lambda: needle in self.docker("logs", name).out, timeout)


class SetupFailed(Exception):
    """A step a scenario needs (not the behaviour it compares) failed."""
