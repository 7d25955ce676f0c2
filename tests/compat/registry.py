"""The table of scenarios: each is a small function run once against
dockerd and once against wrun, recording what it observes."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

# The images every scenario may use, the same name on both daemons:
# wrun builds them from examples/ (and the tests' cat module); dockerd
# imports their native twins (tests/compat/native/*.c).
HELLO = "compat-hello:1.0"
IDLE = "compat-idle:1.0"
CAT = "compat-cat:1.0"
FS_COPY = "compat-fs-copy:1.0"
# examples/fsh (the file shell) with tests/compat/fsh-image's files.
FSH = "compat-fsh:1.0"
BASE_IMAGES = (HELLO, IDLE, CAT, FS_COPY, FSH)

CLIENTS = ("docker CLI", "HTTP API", "docker-py", "docker-compose")


@dataclass
class Case:
    name: str
    client: str
    fn: Callable
    serial: bool
    timeout: float
    chain: str | None

    @property
    def checks(self) -> str:
        """The first line of the scenario's docstring: what it compares."""
        doc = (self.fn.__doc__ or "").strip()
        return doc.splitlines()[0] if doc else ""


CASES: list[Case] = []


def scenario(name: str, client: str, serial: bool = False, timeout: float = 60, chain: str | None = None):
    """Registers a scenario. `serial` ones look at daemon-wide state (all
    images, prune, df) and run alone, after the concurrent ones; those of
    one `chain` run one after the other, beside the concurrent ones."""
    assert client in CLIENTS, client

    def register(fn):
        assert all(c.name != name for c in CASES), f"duplicate scenario {name}"
        CASES.append(Case(name, client, fn, serial, timeout, chain))
        return fn

    return register
