"""Scenarios of user-defined networks (issue 21's control plane): the
`/networks` routes' documents, status codes and words, an instance's
endpoint in inspect, and the docker CLI's network verbs. Each scenario
removes the networks it made (the harness removes containers only); they
run alone (serial), as api.networks lists every network."""

from __future__ import annotations

from endpoint import Ctx
from normalize import text
from registry import HELLO, scenario
from scenarios_api import API, V, answer, create


def removing(ctx: Ctx, *names: str) -> None:
    for n in names:
        ctx.api("DELETE", f"{V}/networks/{n}")


@scenario("api.network-create-inspect", API, serial=True)
def network_create_inspect(ctx: Ctx):
    """`POST /networks/create` and `GET /networks/{id}`: documents, lookups, refusals"""
    name = ctx.n("net")
    try:
        r = ctx.api("POST", f"{V}/networks/create", {"Name": name, "CheckDuplicate": True, "Labels": {"k": "v"}})
        ctx.see("create", r.status)
        ctx.see_shape("create doc", r.json() if r.status == 201 else None)
        nid = r.json().get("Id", "") if r.status == 201 else ""
        for key, by in ((name, "name"), (nid, "id"), (nid[:10], "prefix")):
            n = ctx.api("GET", f"{V}/networks/{key}")
            ctx.see(f"inspect by {by}", n.status)
            ctx.see_shape(f"doc by {by}", n.json() if n.status == 200 else None)
        doc = ctx.api("GET", f"{V}/networks/{name}").json()
        ctx.see("driver scope labels", [doc.get("Driver"), doc.get("Scope"), doc.get("Labels")])
        ctx.see("taken", answer(ctx, ctx.api("POST", f"{V}/networks/create", {"Name": name, "CheckDuplicate": True})))
        ctx.see("missing", answer(ctx, ctx.api("GET", f"{V}/networks/{ctx.n('nosuch')}")))
        ctx.see("bad driver", answer(ctx, ctx.api("POST", f"{V}/networks/create", {"Name": ctx.n("d"), "Driver": "foo"})))
        ctx.see("bad subnet", answer(ctx, ctx.api("POST", f"{V}/networks/create", {"Name": ctx.n("s"), "IPAM": {"Config": [{"Subnet": "bogus"}]}})))
        ctx.see("predefined rm", answer(ctx, ctx.api("DELETE", f"{V}/networks/none")))
    finally:
        removing(ctx, name)


@scenario("api.network-overlap", API, serial=True)
def network_overlap(ctx: Ctx):
    """a subnet overlapping another network's is refused"""
    a, b = ctx.n("a"), ctx.n("b")
    try:
        r = ctx.api("POST", f"{V}/networks/create", {"Name": a, "IPAM": {"Config": [{"Subnet": "10.213.0.0/16"}]}})
        ctx.see("first", r.status)
        doc = ctx.api("GET", f"{V}/networks/{a}").json()
        ctx.see("ipam", doc.get("IPAM"))
        ctx.see("overlap", answer(ctx, ctx.api("POST", f"{V}/networks/create", {"Name": b, "IPAM": {"Config": [{"Subnet": "10.213.5.0/24"}]}})))
    finally:
        removing(ctx, a, b)


@scenario("api.network-endpoint", API, serial=True)
def network_endpoint(ctx: Ctx):
    """an instance created on a network with an alias: its endpoint, connect, disconnect"""
    net = ctx.n("net")
    try:
        ctx.api("POST", f"{V}/networks/create", {"Name": net, "IPAM": {"Config": [{"Subnet": "10.214.0.0/24"}]}})
        name = ctx.n("c")
        cid = create(ctx, name, HELLO, HostConfig={"NetworkMode": net},
                     NetworkingConfig={"EndpointsConfig": {net: {"Aliases": ["api"]}}})
        doc = ctx.api("GET", f"{V}/containers/{cid}/json").json()
        ctx.see("mode", text(doc["HostConfig"]["NetworkMode"], ctx.prefix))
        ctx.see("networks", sorted(k.replace(ctx.prefix, "P") for k in doc["NetworkSettings"]["Networks"]))
        ctx.see_shape("endpoint", doc["NetworkSettings"]["Networks"].get(net))
        ctx.see("alias", (doc["NetworkSettings"]["Networks"].get(net) or {}).get("Aliases", [None])[0])
        ctx.see("disconnect", answer(ctx, ctx.api("POST", f"{V}/networks/{net}/disconnect", {"Container": name})))
        ctx.see("disconnect again", answer(ctx, ctx.api("POST", f"{V}/networks/{net}/disconnect", {"Container": name})))
        ctx.see("connect", answer(ctx, ctx.api("POST", f"{V}/networks/{net}/connect", {"Container": name, "EndpointConfig": {"Aliases": ["web"]}})))
        ctx.see("no such container", answer(ctx, ctx.api("POST", f"{V}/networks/{net}/connect", {"Container": ctx.n("nosuch")})))
        ctx.api("DELETE", f"{V}/containers/{cid}")
        ctx.see("rm after", answer(ctx, ctx.api("DELETE", f"{V}/networks/{net}")))
    finally:
        removing(ctx, net)


@scenario("cli.network-ls", "docker CLI", serial=True)
def network_ls(ctx: Ctx):
    """`docker network create/ls/rm`: the output and the columns"""
    name = ctx.n("net")
    try:
        r = ctx.docker("network", "create", "--label", "k=v", name)
        ctx.see("create exit", r.code)
        r = ctx.docker("network", "ls", "--filter", f"name={name}", "--format", "{{.Name}} {{.Driver}} {{.Scope}} {{.Labels}} {{.Internal}}")
        ctx.see("ls", text(r.out.replace(ctx.prefix, "P")))
        r = ctx.docker("network", "ls", "--filter", f"name={name}")
        ctx.see("header", r.out.splitlines()[0].split() if r.out else None)
        ctx.see_result("taken", ctx.docker("network", "create", name), out=False)
        ctx.see_result("rm", ctx.docker("network", "rm", name))
    finally:
        removing(ctx, name)
