"""Scenarios of the writable rootfs (issue 13) and the verbs on it: a
container's writes, creations, deletions and renames seen by `docker diff`,
kept by stop/start and unseen by other containers; `--read-only`;
`--storage-opt size=`; `docker cp` both ways; `docker export`; `docker
exec`; `docker commit`; `docker import`. The guest is the file shell
(examples/fsh, image compat-fsh:1.0; its twin tests/compat/native/fsh.c),
which takes its script as arguments: `write /a hi ; cat /a`."""

from __future__ import annotations

import base64
import io
import json
import re
import subprocess
import tarfile

from endpoint import Ctx, Result
from normalize import table, text
from registry import CAT, FSH, HELLO, scenario

API = "HTTP API"
CLI = "docker CLI"
SDK = "docker-py"
V = "/v1.41"

# What dockerd adds to every container's rootfs for a Linux process (its
# init layer and mount points), which `export` and `cp` show and a wasm
# instance has no use for: compared apart, in cli.export.runtime-files.
DOCKER_RUNTIME_FILES = {
    ".dockerenv",
    "dev",
    "dev/console",
    "dev/pts",
    "dev/shm",
    "etc/hostname",
    "etc/hosts",
    "etc/mtab",
    "etc/resolv.conf",
    "proc",
    "sys",
}

# The program files of the images: a wasm module on one side, a static
# binary on the other, so their sizes are not compared.
PROGRAMS = {"fsh.wasm", "hello.wasm", "cat.wasm"}


# The docker CLI's own log lines when the daemon answered before it sent the
# whole tar (which side sees them is a race).
_CLI_TAR_LOG = re.compile(r'^time="[^"]*" level=error msg="Can\'t (add file .* to tar|close tar writer): io: read/write on closed pipe"\n', re.M)
# dockerd names its overlay2 merged folder in a path error; wrun names the
# container's path only.
_OVERLAY_PATH = re.compile(r"/\S*/overlay2/<id>/merged(?=/)")


def see(ctx: Ctx, what: str, r: Result, out=True, err=True) -> None:
    """Records a client command's result, with the scenario's host folder
    as `<tmp>`, dockerd's storage path and the CLI's tar-writer race lines
    left out."""
    v = {"exit": r.code}
    for key, stream, keep in (("stdout", r.out, out), ("stderr", r.err, err)):
        if keep:
            t = text(stream.replace(str(ctx.tmp), "<tmp>"), ctx.prefix)
            v[key] = _OVERLAY_PATH.sub("", _CLI_TAR_LOG.sub("", t))
    ctx.see(what, v)


def fsh(script: str) -> list[str]:
    """The file shell's arguments for `script`, its commands separated by
    ` ; ` (no argument holds a space)."""
    return script.split()


def run_fsh(ctx: Ctx, what: str, script: str, *opts: str, image: str = FSH) -> Result:
    """`docker run --rm OPTS IMAGE SCRIPT`, its result recorded."""
    r = ctx.docker("run", "--rm", *opts, image, *fsh(script))
    see(ctx, what, r)
    return r


def see_diff(ctx: Ctx, what: str, container: str) -> None:
    """`docker diff`: its exit code, its lines as a sorted list (dockerd
    prints them in its upper directory's readdir order, which nothing
    fixes), whether each path comes after its parent's line, and stderr."""
    r = ctx.docker("diff", container)
    lines = [line for line in r.out.splitlines() if line]
    seen, parents_first = set(), True
    for line in lines:
        path = line[2:]
        parent = path.rsplit("/", 1)[0]
        if parent and any(line2[2:] == parent for line2 in lines) and parent not in seen:
            parents_first = False
        seen.add(path)
    ctx.see(what, {"exit": r.code, "lines": sorted(lines), "parents first": parents_first, "stderr": text(r.err, ctx.prefix)})


def members(data: bytes, skip=frozenset()) -> list:
    """A tar's members: name (no `./`, no trailing `/`), type, permission
    bits, owner ids, size (a program's as `<program>`), link target; in
    the tar's order."""
    out = []
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as t:
        for m in t.getmembers():
            name = m.name.removeprefix("./").rstrip("/")
            if name in skip:
                continue
            kind = {tarfile.DIRTYPE: "dir", tarfile.REGTYPE: "file", tarfile.AREGTYPE: "file", tarfile.SYMTYPE: "symlink", tarfile.LNKTYPE: "hardlink"}.get(m.type, repr(m.type))
            size = "<program>" if name.rsplit("/", 1)[-1] in PROGRAMS else m.size
            out.append({"name": name, "type": kind, "mode": oct(m.mode & 0o7777), "uid": m.uid, "gid": m.gid, "size": size, "link": m.linkname})
    return out


def contents(data: bytes) -> dict:
    """A tar's regular files' text by name (programs left out)."""
    out = {}
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as t:
        for m in t.getmembers():
            name = m.name.removeprefix("./")
            if m.isfile() and name.rsplit("/", 1)[-1] not in PROGRAMS:
                out[name] = t.extractfile(m).read().decode(errors="replace")
    return out


def tar_of(files: dict) -> bytes:
    """A tar of `files` (name: text, or None for a folder), owned by root."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as t:
        for name, body in files.items():
            info = tarfile.TarInfo(name)
            info.uname = info.gname = "root"
            info.mtime = 1700000000
            if body is None:
                info.type, info.mode = tarfile.DIRTYPE, 0o755
                t.addfile(info)
            else:
                data = body.encode()
                info.size, info.mode = len(data), 0o644
                t.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def binary(ctx: Ctx, r) -> bytes:
    """stdout of a docker command as bytes (a tar on `-`)."""
    p = subprocess.run(["docker", *r], capture_output=True, env=ctx.ep.env, timeout=ctx._timeout(60))
    return p.stdout


def host_tree(root) -> list:
    """What a host folder holds: relative path, type, mode, size or text."""
    out = []
    for p in sorted(root.rglob("*")):
        rel = str(p.relative_to(root))
        if p.is_symlink():
            out.append([rel, "symlink", str(p.readlink())])
        elif p.is_dir():
            out.append([rel, "dir", oct(p.stat().st_mode & 0o777)])
        else:
            out.append([rel, "file", oct(p.stat().st_mode & 0o777), p.read_text(errors="replace")])
    return out


def export_of(ctx: Ctx, c: str) -> bytes:
    path = ctx.tmp / "export.tar"
    ctx.see_result("export -o", ctx.docker("export", "-o", str(path), c))
    return path.read_bytes() if path.exists() else b""


def contents_raw(data: bytes, name: str) -> bytes:
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as t:
        for m in t.getmembers():
            if m.name.removeprefix("./") == name and m.isfile():
                return t.extractfile(m).read()
    return b""


def running_fsh(ctx: Ctx, name: str, *opts: str) -> None:
    """A container of the file shell that has written /ready and sleeps."""
    ctx.ok("run", "-d", "--name", name, *opts, FSH, *fsh("write /ready 1 ; sleep 600000"))
    ctx.until("the container wrote /ready", lambda: ctx.docker("cp", f"{name}:/ready", "-").code == 0)


def tar_bytes(name: str, body: bytes, mode: int) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as t:
        info = tarfile.TarInfo(name)
        info.size, info.mode = len(body), mode
        t.addfile(info, io.BytesIO(body))
    return buf.getvalue()


def answer(ctx: Ctx, r) -> dict:
    try:
        body = r.json()
    except ValueError:
        body = text(r.body.decode(errors="replace"))
    return {"status": r.status, "body": json.loads(text(json.dumps(body)).replace(ctx.prefix, "P"))}


# --- the writes and docker diff -----------------------------------------------


@scenario("cli.rootfs.diff", CLI)
def rootfs_diff(ctx: Ctx):
    """a container writes, creates, deletes, renames files and folders: what it reads back, `docker diff`'s A/C/D lines (parents first); diff of a created and of a missing container"""
    c, fresh = ctx.n("w"), ctx.n("fresh")
    script = (
        "write /etc/motd changed ; append /data/keep.txt more ; write /new.txt n ; rm /data/gone.txt ; "
        "mv /data/old.txt /data/renamed.txt ; mkdir /d2 ; write /d2/x y ; mkdir-p /d3/a/b ; rm-r /data/sub ; "
        "ln-s /etc/motd /d2/link ; truncate /etc/motd 3 ; mkdir /data/sub ; write /data/sub/again z ; "
        "rm /nowhere ; rmdir /data ; mv /data/keep.txt /absent/x ; cat /etc/motd ; cat /data/keep.txt ; tree /data ; ls /d2 ; readlink /d2/link ; stat /d3/a"
    )
    ctx.see_result("run", ctx.docker("run", "--name", c, FSH, *fsh(script)))
    see_diff(ctx, "diff", c)
    ctx.see_result("container diff", ctx.docker("container", "diff", c), out=False)
    ctx.ok("create", "--name", fresh, FSH)
    see_diff(ctx, "diff of a created container", fresh)
    see_diff(ctx, "diff of a missing container", ctx.n("none"))
    see_diff(ctx, "diff with no name", "")


@scenario("cli.rootfs.whiteouts", CLI)
def rootfs_whiteouts(ctx: Ctx):
    """a deleted image file made again, an image folder replaced by a file and a file by a folder, a name that looks like a whiteout: what the guest sees and `docker diff`"""
    c = ctx.n("wo")
    script = (
        "rm /data/gone.txt ; write /data/gone.txt back ; rm-r /data/sub ; write /data/sub file ; "
        "rm /etc/motd ; mkdir /etc/motd ; write /etc/motd/inside i ; write /data/.wh.keep.txt w ; "
        "cat /data/gone.txt ; stat /data/sub ; ls /etc/motd ; cat /data/keep.txt ; ls /data"
    )
    ctx.see_result("run", ctx.docker("run", "--name", c, FSH, *fsh(script)))
    see_diff(ctx, "diff", c)


@scenario("cli.rootfs.keeps-writes", CLI)
def rootfs_keeps_writes(ctx: Ctx):
    """stop/start keeps a container's writes; another container and a new run see the image; after `rm` a run again sees the image"""
    c = ctx.n("keep")
    ctx.ok("create", "--name", c, FSH, *fsh("append /log x ; cat /log ; write /etc/motd mine ; cat /etc/motd"))
    ctx.see_result("first start", ctx.docker("start", "-a", c))
    ctx.see_result("second start", ctx.docker("start", "-a", c))
    ctx.see_result("restart", ctx.docker("restart", c), out=False)
    ctx.until_state(c, "exited")
    ctx.see_result("logs", ctx.docker("logs", c))
    run_fsh(ctx, "another container", "cat /log ; cat /etc/motd")
    see_diff(ctx, "diff", c)
    ctx.ok("rm", c)
    ctx.ok("create", "--name", c, FSH, *fsh("cat /log ; cat /etc/motd"))
    ctx.see_result("same name after rm", ctx.docker("start", "-a", c))
    see_diff(ctx, "diff after rm", c)


@scenario("cli.rootfs.workdir", CLI)
def rootfs_workdir(ctx: Ctx):
    """relative paths in the guest resolve against `run -w`: reads, writes, what `docker diff` shows"""
    c = ctx.n("wd")
    see(ctx, "run -w", ctx.docker("run", "--name", c, "-w", "/data", FSH, *fsh("cat keep.txt ; write here.txt h ; cat /data/here.txt")))
    see_diff(ctx, "diff", c)


@scenario("cli.rootfs.read-only", CLI)
def rootfs_read_only(ctx: Ctx):
    """`--read-only`: reads work, `docker diff` is empty, inspect's ReadonlyRootfs; the guest's failed writes compared apart (cli.rootfs.read-only-errno)"""
    c = ctx.n("ro")
    r = ctx.docker("run", "--name", c, "--read-only", FSH, *fsh("write /etc/motd x ; cat /etc/motd ; tree /data"))
    ctx.see("exit", r.code)
    ctx.see("read lines", [line for line in r.out.splitlines() if ": error " not in line])
    see_diff(ctx, "diff", c)
    ctx.see("ReadonlyRootfs", ctx.ok("inspect", "-f", "{{.HostConfig.ReadonlyRootfs}}", c).strip())
    run_fsh(ctx, "without --read-only", "write /etc/motd x ; cat /etc/motd")


@scenario("cli.rootfs.read-only-errno", CLI)
def rootfs_read_only_errno(ctx: Ctx):
    """`--read-only`: the errno each write, create, delete, rename and mkdir fails with, as the guest prints it"""
    run_fsh(
        ctx,
        "writes",
        "write /etc/motd x ; write /new y ; append /data/keep.txt z ; rm /data/keep.txt ; mkdir /x ; "
        "mv /data/old.txt /data/o ; rm-r /data/sub ; ln-s /etc/motd /l ; truncate /etc/motd 0 ; cat /etc/motd",
        "--read-only",
    )


@scenario("cli.volume.read-only-errno", CLI)
def volume_read_only_errno(ctx: Ctx):
    """`-v DIR:/ro:ro`: the errno each write, create, delete, rename (within it and to a writable bind) and link under a read-only bind fails with, as the guest prints it; the bind's files unchanged"""
    ro, rw = ctx.tmp / "ro-errno", ctx.tmp / "rw-errno"
    (ro / "sub").mkdir(parents=True)
    (ro / "empty").mkdir()
    (ro / "kept.txt").write_text("kept\n")
    (ro / "sub" / "in.txt").write_text("in\n")
    rw.mkdir()
    run_fsh(
        ctx,
        "writes",
        "write /ro/kept.txt x ; write /ro/new y ; append /ro/kept.txt z ; rm /ro/kept.txt ; mkdir /ro/x ; "
        "rmdir /ro/empty ; mv /ro/kept.txt /ro/k ; mv /ro/kept.txt /rw/k ; rm-r /ro/sub ; ln-s /ro/kept.txt /ro/l ; "
        "ln /ro/kept.txt /ro/h ; truncate /ro/kept.txt 0 ; cat /ro/kept.txt ; tree /ro",
        "-v", f"{ro}:/ro:ro", "-v", f"{rw}:/rw",
    )
    ctx.see("host files", sorted(str(p.relative_to(ro)) for p in ro.rglob("*")))
    ctx.see("rw bind", sorted(str(p.relative_to(rw)) for p in rw.rglob("*")))


@scenario("cli.rootfs.storage-opt", CLI)
def rootfs_storage_opt(ctx: Ctx):
    """`run --storage-opt size=`: a limit on what the container writes (a write past it fails with ENOSPC), a size that is no size"""
    run_fsh(ctx, "size=1m", "fill /small 100000 ; fill /big 2000000 ; stat /small", "--storage-opt", "size=1m")
    run_fsh(ctx, "size=bogus", "echo ran", "--storage-opt", "size=bogus")


@scenario("cli.rootfs.storage-opt-unknown", CLI)
def rootfs_storage_opt_unknown(ctx: Ctx):
    """`run --storage-opt` with a key the driver does not know, or no `=`: refused (125) in dockerd's words"""
    run_fsh(ctx, "unknown key", "echo ran", "--storage-opt", "bogus=1")
    run_fsh(ctx, "no value", "echo ran", "--storage-opt", "size")


# --- docker cp ----------------------------------------------------------------


@scenario("cli.cp.from-container", CLI)
def cp_from_container(ctx: Ctx):
    """`docker cp CONTAINER:SRC DEST`: a file to a folder, to a new name, a folder, `folder/.`, a file with a trailing `/`, a missing source, a missing parent on the host, `-` (a tar)"""
    c = ctx.n("src")
    ctx.ok("run", "--name", c, FSH, *fsh("write /data/new.txt n ; ln-s /etc/motd /data/link ; rm /data/gone.txt"))
    out = ctx.tmp / "out"
    out.mkdir()
    steps = [
        ("file into a folder", f"{c}:/etc/motd", "into/"),
        ("file to a new name", f"{c}:/data/new.txt", "named.txt"),
        ("folder to a new name", f"{c}:/data", "datacopy"),
        ("folder into an existing folder", f"{c}:/data", "into"),
        ("folder contents", f"{c}:/data/.", "contents"),
        ("a symlink", f"{c}:/data/link", "link"),
        ("a file with a trailing /", f"{c}:/etc/motd/", "slash"),
        ("a missing source", f"{c}:/data/gone.txt", "gone"),
        ("a missing host parent", f"{c}:/etc/motd", "no/such/dir/motd"),
        ("file onto a host folder", f"{c}:/etc/motd", "into"),
        ("a missing container", f"{ctx.n('none')}:/etc/motd", "x"),
    ]
    (out / "into").mkdir()
    for what, src, dest in steps:
        see(ctx, what, ctx.run(["docker", "cp", src, dest], cwd=out))
    ctx.see("host tree", host_tree(out))
    for what, src in (("a file to -", "/etc/motd"), ("a folder to -", "/data"), ("contents to -", "/data/."), ("a symlink to -", "/data/link")):
        data = binary(ctx, ["cp", f"{c}:{src}", "-"])
        ctx.see(what, {"members": members(data), "contents": contents(data)})
    see(ctx, "-L a symlink", ctx.run(["docker", "cp", "-L", f"{c}:/data/link", "followed"], cwd=out))
    ctx.see("followed", (out / "followed").read_text() if (out / "followed").exists() else None)


@scenario("cli.cp.into-container", CLI)
def cp_into_container(ctx: Ctx):
    """`docker cp SRC CONTAINER:DEST`: a file into a folder, to a new name, over an image file, a folder, `folder/.`, onto a file, into a missing parent, a tar on `-`; what the container then reads and `docker diff`"""
    c = ctx.n("dst")
    ctx.ok("create", "--name", c, FSH, *fsh("cat /data/hello.txt ; cat /etc/motd ; tree /data ; tree /in ; cat /renamed.txt"))
    src = ctx.tmp / "src"
    (src / "dir" / "sub").mkdir(parents=True)
    (src / "hello.txt").write_text("hello from the host\n")
    (src / "motd").write_text("motd from the host\n")
    (src / "dir" / "a.txt").write_text("a\n")
    (src / "dir" / "sub" / "b.txt").write_text("b\n")
    steps = [
        ("file into a folder", "hello.txt", f"{c}:/data/"),
        ("file to a new name", "hello.txt", f"{c}:/renamed.txt"),
        ("file over an image file", "motd", f"{c}:/etc/motd"),
        ("file onto a folder without /", "hello.txt", f"{c}:/etc"),
        ("folder to a new name", "dir", f"{c}:/in"),
        ("folder contents into a folder", "dir/.", f"{c}:/data"),
        ("folder onto a file", "dir", f"{c}:/etc/motd"),
        ("file into a missing parent", "hello.txt", f"{c}:/no/such/hello.txt"),
        ("file to a missing folder with /", "hello.txt", f"{c}:/nodir/"),
        ("a missing host file", "absent.txt", f"{c}:/data/"),
        ("a missing container", "hello.txt", f"{ctx.n('none')}:/data/"),
    ]
    for what, s, dest in steps:
        see(ctx, what, ctx.run(["docker", "cp", s, dest], cwd=src))
    tar = tar_of({"fromtar": None, "fromtar/t.txt": "from a tar\n", "top.txt": "top\n"})
    ctx.see_result("a tar on -", ctx.docker("cp", "-", f"{c}:/data", stdin=tar))
    ctx.see_result("a tar on - to a file", ctx.docker("cp", "-", f"{c}:/etc/motd", stdin=tar))
    ctx.see_result("start", ctx.docker("start", "-a", c))
    see_diff(ctx, "diff", c)


@scenario("cli.cp.stopped-and-running", CLI)
def cp_running(ctx: Ctx):
    """`docker cp` into and out of a running container, and out of one that never ran (the image's files)"""
    c, fresh = ctx.n("run"), ctx.n("fresh")
    ctx.ok("run", "-d", "--name", c, FSH, *fsh("write /ready 1 ; sleep 600000"))
    ctx.until("the container wrote /ready", lambda: ctx.docker("cp", f"{c}:/ready", "-").code == 0)
    f = ctx.tmp / "f.txt"
    f.write_text("into a running one\n")
    ctx.see_result("into", ctx.docker("cp", str(f), f"{c}:/data/f.txt"))
    data = binary(ctx, ["cp", f"{c}:/data/f.txt", "-"])
    ctx.see("out again", contents(data))
    ctx.ok("create", "--name", fresh, FSH)
    data = binary(ctx, ["cp", f"{fresh}:/data", "-"])
    ctx.see("out of a created container", {"members": members(data), "contents": contents(data)})
    ctx.docker("rm", "-f", c)


@scenario("cli.cp.symlinks", CLI)
def cp_symlinks(ctx: Ctx):
    """`docker cp` through symlinks the container made: one climbing out with `../`, one to a folder, a dangling one (`-L` out, and into them): resolved inside the container"""
    c = ctx.n("ln")
    ctx.ok("run", "--name", c, FSH, *fsh("ln-s ../../../../../etc/motd /data/up ; ln-s /etc /data/etc ; ln-s /nonexistent/x /data/dangling"))
    for src in ("/data/up", "/data/etc/motd", "/data/dangling"):
        r = ctx.docker("cp", "-L", f"{c}:{src}", "-")
        data = binary(ctx, ["cp", "-L", f"{c}:{src}", "-"]) if r.code == 0 else b""
        ctx.see(f"-L {src}", {"exit": r.code, "stderr": text(r.err, ctx.prefix), "members": members(data) if data else None, "contents": contents(data) if data else None})
    f = ctx.tmp / "hi.txt"
    f.write_text("hi\n")
    see(ctx, "into a symlinked folder", ctx.docker("cp", str(f), f"{c}:/data/etc/"))
    see(ctx, "onto a symlink climbing out", ctx.docker("cp", str(f), f"{c}:/data/up"))
    see(ctx, "onto a dangling symlink", ctx.docker("cp", str(f), f"{c}:/data/dangling"))
    see_diff(ctx, "diff", c)
    for path in ("/etc/hi.txt", "/etc/motd", "/data/up"):
        data = binary(ctx, ["cp", f"{c}:{path}", "-"])
        ctx.see(f"then {path}", {"members": members(data) if data else None, "contents": contents(data) if data else None})


@scenario("cli.cp.symlink-loop", CLI)
def cp_symlink_loop(ctx: Ctx):
    """`docker cp -L` through a symlink loop the container made: exit code and error"""
    c = ctx.n("loop")
    ctx.ok("run", "--name", c, FSH, *fsh("ln-s /data/loop /data/loop"))
    see(ctx, "-L through a loop", ctx.docker("cp", "-L", f"{c}:/data/loop/x", "-"))


@scenario("cli.cp.volume", CLI)
def cp_volume(ctx: Ctx):
    """`docker cp` into and out of a named volume's and a bind's mount points, into a read-only bind, out of a folder holding mount points: exit codes, errors, what the container then reads, the host folders; `docker export` of the container (mount points, no mount's files)"""
    c, vol = ctx.n("v"), ctx.n("vol")
    f = ctx.tmp / "hi.txt"
    f.write_text("hi\n")
    bind, ro = ctx.tmp / "bind", ctx.tmp / "ro"
    (bind / "sub").mkdir(parents=True)
    (bind / "in-bind.txt").write_text("in the bind\n")
    ro.mkdir()
    (ro / "kept.txt").write_text("kept\n")
    try:
        ctx.ok("create", "--name", c, "-v", f"{vol}:/vol", "-v", f"{bind}:/mnt/b", "-v", f"{ro}:/ro:ro", FSH, *fsh("cat /vol/hi.txt ; cat /mnt/b/sub/hi.txt ; cat /mnt/b/in-bind.txt"))
        see(ctx, "into the volume", ctx.docker("cp", str(f), f"{c}:/vol/"))
        see(ctx, "out of the volume", ctx.docker("cp", f"{c}:/vol", str(ctx.tmp / "out")))
        see(ctx, "into the bind", ctx.docker("cp", str(f), f"{c}:/mnt/b/sub/"))
        see(ctx, "into the read-only bind", ctx.docker("cp", str(f), f"{c}:/ro/"))
        ctx.see("host folders", {"bind": host_tree(bind), "ro": host_tree(ro), "out": host_tree(ctx.tmp / "out")})
        data = binary(ctx, ["cp", f"{c}:/mnt", "-"])
        ctx.see("a folder holding a bind, to -", {"members": members(data), "contents": contents(data)})
        data = binary(ctx, ["cp", f"{c}:/ro/kept.txt", "-"])
        ctx.see("out of the read-only bind, to -", contents(data))
        data = binary(ctx, ["export", c])
        ctx.see("export: mount points and what is below them", sorted(m["name"] for m in members(data) if m["name"].split("/")[0] in ("vol", "mnt", "ro")))
        see(ctx, "the container reads", ctx.docker("start", "-a", c))
    finally:
        ctx.docker("rm", "-f", "-v", c)
        ctx.docker("volume", "rm", "-f", vol)


@scenario("cli.cp.not-a-tar", CLI)
def cp_not_a_tar(ctx: Ctx):
    """`docker cp - CONTAINER:DIR` of bytes that are no tar: exit code and error"""
    c = ctx.n("c")
    ctx.ok("create", "--name", c, FSH)
    see(ctx, "not a tar on -", ctx.docker("cp", "-", f"{c}:/data", stdin=b"not a tar at all, " * 40))


# --- docker export ------------------------------------------------------------


@scenario("cli.export", CLI)
def export(ctx: Ctx):
    """`docker export`: the merged rootfs as a tar (member names, types, modes, owners, sizes, link targets, file contents; dockerd's own runtime files aside); export of a missing container; to a terminal-less stdout"""
    c = ctx.n("exp")
    ctx.ok("run", "--name", c, FSH, *fsh("write /etc/motd changed ; write /new.txt n ; rm /data/gone.txt ; mv /data/old.txt /data/renamed.txt ; mkdir /d2 ; ln-s /etc/motd /d2/link ; rm-r /data/sub"))
    data = export_of(ctx, c)
    ctx.see("members", sorted(members(data, DOCKER_RUNTIME_FILES), key=lambda m: m["name"]))
    ctx.see("contents", {k: v for k, v in contents(data).items() if k not in DOCKER_RUNTIME_FILES})
    ctx.see("same on stdout", sorted(m["name"] for m in members(binary(ctx, ["export", c]), DOCKER_RUNTIME_FILES)) == sorted(m["name"] for m in members(data, DOCKER_RUNTIME_FILES)))
    ctx.see_result("missing container", ctx.docker("export", ctx.n("none")), out=False)
    see(ctx, "missing -o folder", ctx.docker("export", "-o", str(ctx.tmp / "no" / "such.tar"), c))


@scenario("cli.export.runtime-files", CLI)
def export_runtime_files(ctx: Ctx):
    """`docker export`: which of dockerd's runtime files (/.dockerenv, /dev, /proc, /sys, /etc/hosts, ...) the tar holds"""
    c = ctx.n("exp")
    ctx.ok("create", "--name", c, FSH)
    data = binary(ctx, ["export", c])
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as t:
        names = {m.name.removeprefix("./").rstrip("/") for m in t.getmembers()}
    ctx.see("runtime files", sorted(names & DOCKER_RUNTIME_FILES))


@scenario("cli.export.owner-names", CLI)
def export_owner_names(ctx: Ctx):
    """`docker export` and `docker cp … -`: the owner and group names in the tar headers"""
    c = ctx.n("own")
    ctx.ok("run", "--name", c, FSH, *fsh("write /new.txt n"))
    for what, args in (("export", ["export", c]), ("cp", ["cp", f"{c}:/data", "-"])):
        with tarfile.open(fileobj=io.BytesIO(binary(ctx, args)), mode="r:") as t:
            ctx.see(what, sorted({f"{m.uname}/{m.gname}" for m in t.getmembers()}))


# --- the routes, raw and through docker-py ------------------------------------


@scenario("api.rootfs-routes", API)
def rootfs_routes(ctx: Ctx):
    """`/changes`, `/export`, `/archive` (HEAD, GET, PUT): status codes, the path-stat header, the 4xx bodies of a missing container, path, parent, a non-folder destination, `noOverwriteDirNonDir`"""
    c = ctx.n("r")
    ctx.ok("run", "--name", c, FSH, *fsh("write /new.txt n ; rm /data/gone.txt ; ln-s /etc/motd /link"))
    ch = ctx.api("GET", f"{V}/containers/{c}/changes")
    ctx.see("changes", {"status": ch.status, "body": sorted(ch.json(), key=lambda x: x["Path"])})
    fresh = ctx.n("fresh")
    ctx.ok("create", "--name", fresh, FSH)
    ctx.see("changes of a created container", answer(ctx, ctx.api("GET", f"{V}/containers/{fresh}/changes")))
    ctx.see("changes of a missing container", answer(ctx, ctx.api("GET", f"{V}/containers/{ctx.n('none')}/changes")))
    ex = ctx.api("GET", f"{V}/containers/{c}/export")
    ctx.see("export", {"status": ex.status, "type": ex.headers.get("content-type"), "is a tar": bool(members(ex.body)) if ex.status == 200 else None})
    ctx.see("export of a missing container", answer(ctx, ctx.api("GET", f"{V}/containers/{ctx.n('none')}/export")))
    for what, path in (("a file", "/etc/motd"), ("a folder", "/data"), ("a symlink", "/link"), ("the root", "/")):
        h = ctx.api("HEAD", f"{V}/containers/{c}/archive", query={"path": path})
        stat = h.headers.get("x-docker-container-path-stat")
        doc = json.loads(base64.b64decode(stat)) if stat else None
        if doc:
            doc["mtime"] = "<time>"
            if doc.get("name") in PROGRAMS:
                doc["size"] = "<program>"
        ctx.see(f"HEAD {what}", {"status": h.status, "stat": doc})
    for what, path in (("missing path", "/absent"), ("missing parent", "/no/such/x"), ("empty path", "")):
        ctx.see(f"HEAD {what}", ctx.api("HEAD", f"{V}/containers/{c}/archive", query={"path": path}).status)
        ctx.see(f"GET {what}", answer(ctx, ctx.api("GET", f"{V}/containers/{c}/archive", query={"path": path})))
    ctx.see("GET a missing container", answer(ctx, ctx.api("GET", f"{V}/containers/{ctx.n('none')}/archive", query={"path": "/"})))
    ctx.see("GET without path", answer(ctx, ctx.api("GET", f"{V}/containers/{c}/archive")))
    tar = tar_of({"put.txt": "put\n"})
    ctx.see("PUT", answer(ctx, ctx.api("PUT", f"{V}/containers/{c}/archive", tar, {"path": "/data"}, {"Content-Type": "application/x-tar"})))
    ctx.see("PUT onto a file", answer(ctx, ctx.api("PUT", f"{V}/containers/{c}/archive", tar, {"path": "/etc/motd"}, {"Content-Type": "application/x-tar"})))
    ctx.see("PUT into a missing folder", answer(ctx, ctx.api("PUT", f"{V}/containers/{c}/archive", tar, {"path": "/absent"}, {"Content-Type": "application/x-tar"})))
    ctx.see("PUT noOverwriteDirNonDir", answer(ctx, ctx.api("PUT", f"{V}/containers/{c}/archive", tar_of({"motd": None}), {"path": "/etc", "noOverwriteDirNonDir": "true"}, {"Content-Type": "application/x-tar"})))
    g = ctx.api("GET", f"{V}/containers/{c}/archive", query={"path": "/data/put.txt"})
    ctx.see("GET what PUT wrote", {"status": g.status, "contents": contents(g.body) if g.status == 200 else None})


@scenario("api.archive-not-a-tar", API)
def archive_not_a_tar(ctx: Ctx):
    """`PUT /containers/{id}/archive` with a body that is no tar: status and body; the container unchanged"""
    c = ctx.n("c")
    ctx.ok("create", "--name", c, FSH)
    ctx.see("PUT", answer(ctx, ctx.api("PUT", f"{V}/containers/{c}/archive", b"x" * 2048, {"path": "/data"}, {"Content-Type": "application/x-tar"})))
    see_diff(ctx, "diff", c)


@scenario("sdk.rootfs", SDK)
def sdk_rootfs(ctx: Ctx):
    """docker-py: `container.diff()`, `put_archive`, `get_archive` (its stat), `export()`"""
    c = ctx.sdk.containers.run(FSH, fsh("write /new.txt n ; rm /data/gone.txt"), name=ctx.n("c"), detach=True)
    ctx.until_state(ctx.n("c"), "exited")
    ctx.see("diff", sorted(c.diff(), key=lambda x: x["Path"]))
    ctx.see("put_archive", c.put_archive("/data", tar_of({"put.txt": "put\n"})))
    stream, stat = c.get_archive("/data/put.txt")
    stat["mtime"] = "<time>"
    ctx.see("get_archive", {"stat": stat, "contents": contents(b"".join(stream))})
    names = sorted(m["name"] for m in members(b"".join(c.export()), DOCKER_RUNTIME_FILES))
    ctx.see("export", names)


# --- docker exec --------------------------------------------------------------


@scenario("cli.exec.rootfs", CLI)
def exec_rootfs(ctx: Ctx):
    """`docker exec` into a running container: output, exit code, what it writes seen by the container's diff and by the next exec"""
    c = ctx.n("ex")
    try:
        running_fsh(ctx, c)
        ctx.see_result("exec", ctx.docker("exec", c, "/fsh.wasm", *fsh("cat /ready ; write /by-exec e ; tree /data")))
        ctx.see_result("exit code", ctx.docker("exec", c, "/fsh.wasm", *fsh("echo bye ; exit 3")))
        ctx.see_result("failed command", ctx.docker("exec", c, "/fsh.wasm", *fsh("cat /absent")))
        ctx.see_result("next exec", ctx.docker("exec", c, "/fsh.wasm", *fsh("cat /by-exec ; tree /data")))
        see_diff(ctx, "diff", c)
    finally:
        ctx.docker("rm", "-f", c)


@scenario("cli.exec.workdir", CLI)
def exec_workdir(ctx: Ctx):
    """relative paths in the program resolve against `exec -w`: reads, writes, what `docker diff` shows"""
    e = ctx.n("ex")
    try:
        running_fsh(ctx, e)
        see(ctx, "exec -w", ctx.docker("exec", "-w", "/data", e, "/fsh.wasm", *fsh("cat keep.txt ; write here.txt h ; cat /data/here.txt")))
        see_diff(ctx, "diff after exec", e)
    finally:
        ctx.docker("rm", "-f", e)


@scenario("cli.exec.env-stdin", CLI)
def exec_env_stdin(ctx: Ctx):
    """`docker exec -e` (another program copied into the container reads it) and `exec -i` (stdin reaches the program)"""
    c, h, cat = ctx.n("ex"), ctx.n("hello"), ctx.n("cat")
    try:
        running_fsh(ctx, c)
        ctx.ok("create", "--name", h, HELLO)
        hello = contents_raw(binary(ctx, ["cp", f"{h}:/hello.wasm", "-"]), "hello.wasm")
        ctx.docker("cp", "-", f"{c}:/", stdin=tar_bytes("hello.wasm", hello, 0o755))
        ctx.see_result("-e", ctx.docker("exec", "-e", "GREETING=Hi", c, "/hello.wasm", "exec"))
        ctx.see_result("without -e", ctx.docker("exec", c, "/hello.wasm"))
        ctx.ok("run", "-d", "-i", "--name", cat, CAT)
        ctx.until_state(cat, "running")
        ctx.see_result("-i", ctx.docker("exec", "-i", cat, "/cat.wasm", stdin="through exec -i\n"))
    finally:
        ctx.docker("rm", "-f", c, h, cat)


@scenario("cli.exec.errors", CLI)
def exec_errors(ctx: Ctx):
    """`docker exec` into a stopped container (409's words), a missing container, without a command"""
    c = ctx.n("stopped")
    ctx.ok("create", "--name", c, FSH)
    ctx.see_result("stopped", ctx.docker("exec", c, "/fsh.wasm", "echo", "x"))
    ctx.see_result("missing", ctx.docker("exec", ctx.n("none"), "/fsh.wasm"))
    ctx.see_result("no command", ctx.docker("exec", c))


@scenario("api.exec-stopped", API)
def exec_stopped_api(ctx: Ctx):
    """`POST /containers/{id}/exec` on a created, an exited and a missing container, `GET /exec/{id}/json` of a missing exec: status and body"""
    c, e = ctx.n("created"), ctx.n("exited")
    ctx.ok("create", "--name", c, FSH)
    ctx.ok("run", "--name", e, FSH, "echo", "x")
    cmd = {"Cmd": ["/fsh.wasm", "echo", "x"], "AttachStdout": True}
    for what, name in (("created", c), ("exited", e)):
        ctx.see(what, answer(ctx, ctx.api("POST", f"{V}/containers/{name}/exec", cmd)))
    ctx.see("missing", answer(ctx, ctx.api("POST", f"{V}/containers/{ctx.n('none')}/exec", cmd)))
    ctx.see("exec of a missing id", answer(ctx, ctx.api("GET", f"{V}/exec/{'0' * 64}/json")))


@scenario("cli.exec.missing-program", CLI)
def exec_missing_program(ctx: Ctx):
    """`docker exec` of a path the container does not hold, or in a missing `-w` folder: the exit code and the error"""
    c = ctx.n("ex")
    try:
        running_fsh(ctx, c)
        ctx.see_result("missing", ctx.docker("exec", c, "/no/such/program"))
        ctx.see_result("missing -w folder", ctx.docker("exec", "-w", "/nonexist", c, "/fsh.wasm", "echo", "x"))
    finally:
        ctx.docker("rm", "-f", c)


@scenario("cli.exec.tty", CLI)
def exec_tty(ctx: Ctx):
    """`docker exec -t` into a running container"""
    c = ctx.n("ex")
    try:
        running_fsh(ctx, c)
        ctx.see_result("-t", ctx.docker("exec", "-t", c, "/fsh.wasm", "echo", "tty"))
    finally:
        ctx.docker("rm", "-f", c)


# --- docker commit ------------------------------------------------------------


@scenario("cli.commit", CLI)
def commit(ctx: Ctx):
    """`docker commit -c 'CMD …' -m MSG`: the new image runs with the changes (deletions too) and the new CMD; inspect's Config.Cmd and Comment; `docker history`'s rows"""
    c, image = ctx.n("c"), ctx.n("img") + ":v1"
    ctx.ok("run", "--name", c, FSH, *fsh("write /etc/motd committed ; write /new.txt n ; rm /data/gone.txt ; mv /data/old.txt /data/renamed.txt ; rm-r /data/sub"))
    r = ctx.docker("commit", "-c", 'CMD ["cat","/etc/motd",";","tree","/data",";","cat","/new.txt"]', "-m", "the message", c, image)
    ctx.see("commit", {"exit": r.code, "stdout": text(r.out), "stderr": text(r.err, ctx.prefix)})
    ctx.see_result("run the new image", ctx.docker("run", "--rm", image))
    ctx.see_result("run it with args", ctx.docker("run", "--rm", image, *fsh("stat /data/sub ; stat /data/gone.txt")))
    doc = json.loads(ctx.ok("image", "inspect", image))[0]
    ctx.see("Config.Cmd", doc["Config"].get("Cmd"))
    ctx.see("Config.Entrypoint", doc["Config"].get("Entrypoint"))
    ctx.see("Comment", doc.get("Comment"))
    ctx.see("layers", len(doc["RootFS"]["Layers"]) - len(json.loads(ctx.ok("image", "inspect", FSH))[0]["RootFS"]["Layers"]))
    h = ctx.docker("history", "--no-trunc", "--format", "{{.CreatedBy}}|{{.Comment}}", image)
    ctx.see("history top", {"exit": h.code, "top": text(h.out.splitlines()[0]) if h.out else ""})
    # The rows below are the base image's, which differ by construction
    # (built on one side, imported on the other): the header and the top.
    t = table(ctx.ok("history", image))
    ctx.see("history table", {"header": t["header"], "top": t["rows"][:1]})
    see_diff(ctx, "diff of a container of the new image", ctx.ok("create", "--name", ctx.n("c2"), image).strip())


@scenario("cli.commit.errors", CLI)
def commit_errors(ctx: Ctx):
    """`docker commit` of a missing container, with a change it does not take, to a bad name; without a name (a dangling image)"""
    c = ctx.n("c")
    ctx.ok("create", "--name", c, FSH)
    ctx.see_result("missing container", ctx.docker("commit", ctx.n("none"), ctx.n("x")))
    ctx.see_result("bad change", ctx.docker("commit", "-c", "FROM scratch", c, ctx.n("x")))
    ctx.see_result("unknown change", ctx.docker("commit", "-c", "BOGUS x", c, ctx.n("x")))
    ctx.see_result("bad name", ctx.docker("commit", c, "Bad/Name"))
    r = ctx.docker("commit", c)
    ctx.see("no name", {"exit": r.code, "stdout": text(r.out)})
    if r.code == 0:
        ctx.docker("rmi", r.out.strip())


@scenario("cli.commit.source-container", CLI)
def commit_source_container(ctx: Ctx):
    """`docker commit`: image inspect's Container (the committed container's ID) and ContainerConfig.Cmd"""
    c, image = ctx.n("c"), ctx.n("img") + ":v1"
    ctx.ok("run", "--name", c, FSH, *fsh("write /new.txt n"))
    cid = ctx.ok("inspect", "-f", "{{.Id}}", c).strip()
    ctx.ok("commit", c, image)
    doc = json.loads(ctx.ok("image", "inspect", image))[0]
    ctx.see("Container is the container's ID", doc.get("Container") == cid)
    ctx.see("ContainerConfig.Cmd", (doc.get("ContainerConfig") or {}).get("Cmd"))


@scenario("sdk.commit", SDK)
def sdk_commit(ctx: Ctx):
    """docker-py: `container.commit()` with a message and a change, then run the new image"""
    c = ctx.sdk.containers.run(FSH, fsh("write /data/put.txt put ; rm /data/gone.txt"), name=ctx.n("c"), detach=True)
    ctx.until_state(ctx.n("c"), "exited")
    image = c.commit(repository=ctx.n("img"), tag="v1", message="from the sdk", changes=['CMD ["cat","/data/put.txt"]'])
    ctx.see("commit", {"Comment": image.attrs.get("Comment"), "Cmd": image.attrs["Config"].get("Cmd"), "tags": [t.replace(ctx.prefix, "P") for t in image.tags]})
    ctx.see("run it", ctx.sdk.containers.run(image.id, remove=True))


# --- docker import ------------------------------------------------------------


@scenario("cli.import", CLI)
def import_(ctx: Ctx):
    """`docker import` of a rootfs tar (the side's own program in it) with `-c` and `-m`, from a file and from `-`: the image runs, inspect's Config and Comment, `docker history`"""
    c = ctx.n("src")
    ctx.ok("create", "--name", c, FSH)
    program = contents_raw(binary(ctx, ["cp", f"{c}:/fsh.wasm", "-"]), "fsh.wasm")
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as t:
        for name, body, mode in (("fsh.wasm", program, 0o755), ("hello.txt", b"imported\n", 0o644)):
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(body), mode
            t.addfile(info, io.BytesIO(body))
    tar = ctx.tmp / "rootfs.tar"
    tar.write_bytes(buf.getvalue())
    image = ctx.n("imp") + ":1"
    r = ctx.docker("import", "-c", 'ENTRYPOINT ["/fsh.wasm"]', "-c", 'CMD ["cat","/hello.txt"]', "-c", "ENV A=b", "-m", "imported here", str(tar), image)
    ctx.see("import", {"exit": r.code, "stdout": text(r.out), "stderr": text(r.err, ctx.prefix)})
    ctx.see_result("run", ctx.docker("run", "--rm", image))
    doc = json.loads(ctx.ok("image", "inspect", image))[0]
    ctx.see("Config", {k: doc["Config"].get(k) for k in ("Entrypoint", "Cmd", "Env", "WorkingDir")})
    ctx.see("Comment", doc.get("Comment"))
    ctx.see("layers", len(doc["RootFS"]["Layers"]))
    ctx.see_result("history", ctx.docker("history", "--format", "{{.CreatedBy}}|{{.Comment}}", image))
    stdin_image = ctx.n("imp") + ":stdin"
    r = ctx.docker("import", "-c", 'ENTRYPOINT ["/fsh.wasm"]', "-", stdin_image, stdin=buf.getvalue())
    ctx.see("import -", {"exit": r.code, "stdout": text(r.out), "stderr": text(r.err, ctx.prefix)})
    ctx.see_result("run it", ctx.docker("run", "--rm", stdin_image, "cat", "/hello.txt"))
    ctx.see_result("history of -", ctx.docker("history", "--format", "{{.CreatedBy}}|{{.Comment}}", stdin_image))
    ctx.see_result("bad change", ctx.docker("import", "-c", "BOGUS x", str(tar), ctx.n("bad")))
    see(ctx, "missing file", ctx.docker("import", str(ctx.tmp / "absent.tar"), ctx.n("bad")))
