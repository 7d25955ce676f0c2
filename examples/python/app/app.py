"""The Python example's app: answers from the table of primes that the
image's RUN step computed at build time (primes.json beside this file), for
the numbers given as arguments, greeting $NAME."""

import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
TABLE = os.path.join(HERE, "primes.json")


def sieve(limit):
    """The primes below `limit` (Eratosthenes): run once, by the RUN step."""
    composite = bytearray(limit)
    primes = []
    for n in range(2, limit):
        if not composite[n]:
            primes.append(n)
            composite[n * n :: n] = b"\x01" * len(range(n * n, limit, n))
    return primes


def write_table(path, limit):
    """Writes the primes below `limit` as JSON to `path` (the RUN step)."""
    with open(path, "w") as out:
        json.dump({"limit": limit, "primes": sieve(limit)}, out)
    print(f"wrote {path}: the primes below {limit}")


def main(argv):
    try:
        with open(TABLE) as f:
            table = json.load(f)
    except FileNotFoundError:
        print(f"app.py: {TABLE} is missing: the image's RUN step writes it", file=sys.stderr)
        return 2
    primes = table["primes"]
    known = set(primes)
    name = os.environ.get("NAME", "world")
    impl = sys.implementation.name
    version = ".".join(map(str, sys.version_info[:3]))
    print(f"Hello, {name}, from {impl} (Python {version}) on {sys.platform}!")
    print(f"{len(primes)} primes below {table['limit']}, the largest {primes[-1]}")
    for word in argv[1:]:
        try:
            n = int(word)
        except ValueError:
            print(f"app.py: not a whole number: {word!r}", file=sys.stderr)
            return 2
        if not 0 <= n < table["limit"]:
            print(f"app.py: {n} is outside the table (0 to {table['limit'] - 1})", file=sys.stderr)
            return 2
        print(f"{n} is {'prime' if n in known else 'not prime'}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
