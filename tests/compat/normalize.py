"""What makes two daemons' answers comparable: the shape (keys and value
types) of a JSON document, and text with IDs, times, durations and sizes
replaced by placeholders."""

from __future__ import annotations

import re

# Keys whose values are maps keyed by data (label names, paths, ports,
# network names), not by schema: their keys are compared as data only when
# a scenario records them on purpose, so a map's shape is its value type.
DATA_KEYED = {
    "Labels",
    "Data",
    "Ports",
    "ExposedPorts",
    "Volumes",
    "Networks",
    "Options",
    "Plugins",
    "Runtimes",
    "IndexConfigs",
    "Attributes",
    "Annotations",
    "Sysctls",
    "StorageOpt",
    "Tmpfs",
    "PortBindings",
    "Config",  # LogConfig.Config only; see _data_keyed
    "DriverOpts",
}


def _data_keyed(path: str, key: str) -> bool:
    if key == "Config":
        return path.endswith("LogConfig")
    return key in DATA_KEYED


def _scalar(v) -> str:
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, (int, float)):
        return "number"
    if isinstance(v, str):
        return "string"
    return type(v).__name__


def merge(a, b):
    """Merges two shapes seen at one place (array elements, map values)."""
    if a is None:
        return b
    if b is None:
        return a
    if isinstance(a, dict) and isinstance(b, dict):
        return {k: merge(a.get(k), b.get(k)) for k in sorted(set(a) | set(b))}
    if isinstance(a, list) and isinstance(b, list):
        return ["array", merge(a[1], b[1])]
    if a == b:
        return a
    return "|".join(sorted(set(_kinds(a)) | set(_kinds(b))))


def _kinds(s):
    if isinstance(s, dict):
        return ["object"]
    if isinstance(s, list):
        return ["array"]
    return s.split("|")


def shape(doc, path: str = ""):
    """The keys and JSON types of `doc`: objects map keys to shapes, arrays
    become ["array", merged element shape], maps keyed by data
    {"{map}": merged value shape}, scalars their type name."""
    if isinstance(doc, dict):
        out = {}
        for k, v in sorted(doc.items()):
            sub = f"{path}.{k}" if path else k
            if isinstance(v, dict) and _data_keyed(path, k):
                merged = None
                for item in v.values():
                    merged = merge(merged, shape(item, sub + ".*"))
                out[k] = {"{map}": merged}
            else:
                out[k] = shape(v, sub)
        return out
    if isinstance(doc, list):
        merged = None
        for item in doc:
            merged = merge(merged, shape(item, path + "[]"))
        return ["array", merged]
    return _scalar(doc)


# Keys wrun adds to Docker's documents under this prefix (WrunCreated,
# WrunCapacity, ...) are its own extensions: clients ignore unknown keys.
WRUN_EXTENSION = "Wrun"


def shape_diff(a, b, path: str = "") -> list[str]:
    """Where shape `a` (dockerd's) and `b` (wrun's) differ, one line each."""
    out: list[str] = []
    here = path or "(document)"
    if a is None or b is None:
        return out  # an empty array or map matches any
    if isinstance(a, dict) and isinstance(b, dict):
        for k in sorted(set(a) | set(b)):
            sub = f"{path}.{k}" if path else k
            if k not in b:
                out.append(f"{sub}: missing in wrun")
            elif k not in a:
                if not k.startswith(WRUN_EXTENSION):
                    out.append(f"{sub}: only in wrun")
            else:
                out.extend(shape_diff(a[k], b[k], sub))
        return out
    if isinstance(a, list) and isinstance(b, list):
        return shape_diff(a[1], b[1], path + "[]")
    if a != b:
        out.append(f"{here}: {_name(a)} in dockerd, {_name(b)} in wrun")
    return out


def _name(s) -> str:
    if isinstance(s, dict):
        return "object"
    if isinstance(s, list):
        return "array"
    return s


_ID64 = re.compile(r"\b[0-9a-f]{64}\b")
_ID12 = re.compile(r"\b[0-9a-f]{12}\b")
_TIME = re.compile(r"\b\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)")
_AGO = re.compile(
    r"\b(Less than a second|About a minute|About an hour|an? (second|minute|hour|day|week|month|year)"
    r"|\d+ (seconds?|minutes?|hours?|days?|weeks?|months?|years?))( ago)?"
)
_SIZE = re.compile(r"\b\d+(\.\d+)?\s?(B|kB|KB|MB|GB|KiB|MiB|GiB)\b")
_EPOCH = re.compile(r"\b1\d{9}(\.\d+)?\b")


def text(s: str, prefix: str | None = None) -> str:
    """`s` with IDs, times, ages and sizes replaced by placeholders."""
    s = _ID64.sub("<id>", s)
    s = _ID12.sub("<id12>", s)
    s = _TIME.sub("<time>", s)
    s = _AGO.sub("<age>", s)
    s = _SIZE.sub("<size>", s)
    s = _EPOCH.sub("<epoch>", s)
    return s


def table(out: str) -> dict:
    """A CLI table: its header cells and each row's cells (split on two
    or more spaces), normalized."""
    lines = [line for line in out.splitlines() if line.strip()]
    if not lines:
        return {"header": [], "rows": []}
    split = lambda line: [c for c in re.split(r"\s{2,}", line.strip())]
    return {"header": split(lines[0]), "rows": [split(text(line)) for line in lines[1:]]}
