"""docker-py against a wrun daemon: containers.run (plain, remove, auto_remove,
a failing guest), attach without streaming, and logs with times.

Usage: docker_run.py DOCKER_HOST. Prints one line per check; exits non-zero
with the reason on the first that fails.
"""

import sys
import time

import docker

client = docker.DockerClient(base_url=sys.argv[1], timeout=120)


def check(what, got, want):
    if got != want:
        sys.exit(f"{what}: got {got!r}, want {want!r}")
    print(f"ok: {what}")


# containers.run with detach=False: create, inspect, start, logs(follow),
# wait. With auto_remove the instance is gone by the time the logs, the
# inspect of its TTY and the wait come: dockerd loses that race now and
# then (docker-py issue 2655); wrun must not. Twenty in a row.
for i in range(20):
    check(f"run(auto_remove=True) #{i}",
          client.containers.run("hello:1.0", ["auto"], auto_remove=True),
          b"Hello, auto!\n")
check("run()", client.containers.run("hello:1.0", ["plain"]), b"Hello, plain!\n")
check("run(remove=True)",
      client.containers.run("hello:1.0", ["gone"], remove=True, name="py-gone"),
      b"Hello, gone!\n")
check("the removed instance is gone",
      [c.name for c in client.containers.list(all=True) if c.name == "py-gone"], [])
check("run(stream=True)",
      b"".join(client.containers.run("hello:1.0", ["s"], stream=True, auto_remove=True)),
      b"Hello, s!\n")

# A failing guest: ContainerError with its exit code and its stderr.
try:
    client.containers.run("idle:1.0", ["nope"], remove=True)
    sys.exit("run of a failing guest raised nothing")
except docker.errors.ContainerError as e:
    check("ContainerError.exit_status", e.exit_status, 2)
    check("ContainerError.stderr", e.stderr, b"idle: SECONDS must be a whole number (or spin)\n")

# attach(stream=False, logs=True) on an exited instance returns its log and
# ends; without logs it returns nothing, at once.
c = client.containers.create("hello:1.0", ["attach"], name="py-attach")
c.start()
check("wait", c.wait()["StatusCode"], 0)
check("attach(stream=False, logs=True)", c.attach(stream=False, logs=True), b"Hello, attach!\n")
check("attach(stream=False, logs=False)", c.attach(stream=False, logs=False), b"")

# logs with timestamps, since and until (docker-py sends Unix seconds).
between = time.time()
c.start()
check("wait again", c.wait()["StatusCode"], 0)
stamped = c.logs(timestamps=True).decode().splitlines()
check("two stamped lines", [line.split(" ", 1)[1] for line in stamped], ["Hello, attach!"] * 2)
check("since", c.logs(since=between), b"Hello, attach!\n")
check("until", c.logs(until=between), b"Hello, attach!\n")
c.remove()
print("all ok")
