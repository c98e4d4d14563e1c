"""Every route of every engine, as path templates, read from the engines' own route tables.

Each engine declares its routes in one table (`Engine.routes`, a list of
`transit.engines.framework.Route`). The tables are built in the engines' constructors, which
only keep their arguments, so an engine built with no storage (or no core) lists them without
serving anything. A route's regex is turned into templates: a named group becomes a
`Param`, an optional part (`(?:...)?`, `x?`) gives one template with and one without it, and
`.*`/`.+` outside a group becomes a `Param("rest")`. Every template is checked against its own
regex (`check_templates`), so a pattern this expansion misreads fails loudly instead of
fuzzing paths no route serves.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from transit.api.status import STATUS_HANDLERS
from transit.core import AUTH_FACTORIES, ENGINE_FACTORIES, TOKEN_MOUNT
from transit.engines.framework import Engine, Route
from transit.engines.identity.backend import IdentityBackend
from transit.engines.kv import KVv1Backend, KVv2Backend
from transit.engines.system.backend import SystemBackend
from transit.engines.token.backend import TokenBackend
from transit.fields import Field


@dataclass(frozen=True)
class Param:
    name: str


Part = str | Param


@dataclass(frozen=True, repr=False)
class Template:
    engine: str  # "transit", "kv-v2", "kv-v1", "system", "token", "identity", "status", "none"
    mount: str  # e.g. "transit/", "sys/", "" (status endpoints and unknown mounts)
    parts: tuple[Part, ...]  # inside the mount
    route: Route | None  # None for status endpoints and paths no engine serves
    operations: tuple[str, ...]

    @property
    def fields(self) -> dict[str, Field]:
        return self.route.fields if self.route is not None else {}

    def __repr__(self) -> str:  # short: Hypothesis prints the strategy's arguments
        return f"<{self.label()}>"

    def _repr_pretty_(self, p: Any, cycle: bool) -> None:  # Hypothesis' printer
        p.text(repr(self))

    def label(self) -> str:
        inner = "".join(p if isinstance(p, str) else "{" + p.name + "}" for p in self.parts)
        return self.mount + inner


def _group_end(pattern: str, start: int) -> int:
    """Index just past the group opening at `pattern[start] == "("` (escapes and classes
    respected)."""
    depth = 0
    i = start
    in_class = False
    while i < len(pattern):
        c = pattern[i]
        if c == "\\":
            i += 2
            continue
        if in_class:
            if c == "]":
                in_class = False
        elif c == "[":
            in_class = True
        elif c == "(":
            depth += 1
        elif c == ")":
            depth -= 1
            if depth == 0:
                return i + 1
        i += 1
    raise ValueError(f"unbalanced group in {pattern!r}")


def expand(pattern: str) -> list[tuple[Part, ...]]:
    """All templates a route pattern can produce (see the module docstring)."""
    out: list[tuple[Part, ...]] = [()]
    i = 0
    while i < len(pattern):
        c = pattern[i]
        if pattern.startswith("(?P<", i):
            end = _group_end(pattern, i)
            name = pattern[i + 4:pattern.index(">", i)]
            options: list[tuple[Part, ...]] = [(Param(name),)]
            i = end
        elif pattern.startswith("(?:", i):
            end = _group_end(pattern, i)
            options = expand(pattern[i + 3:end - 1])
            i = end
        elif pattern.startswith(".*", i) or pattern.startswith(".+", i):
            options = [(Param("rest"),)]
            i += 2
        elif c == "\\":
            options = [(pattern[i + 1],)]
            i += 2
        elif c in "()[]|+*":
            raise ValueError(f"unsupported construct at {i} in {pattern!r}")
        else:
            options = [(c,)]
            i += 1
        if i < len(pattern) and pattern[i] == "?":
            options = [(), *options]
            i += 1
        out = [prefix + opt for prefix in out for opt in options]
    return [_merge(t) for t in out]


def _merge(parts: tuple[Part, ...]) -> tuple[Part, ...]:
    merged: list[Part] = []
    for p in parts:
        if isinstance(p, str) and merged and isinstance(merged[-1], str):
            merged[-1] += p
        else:
            merged.append(p)
    return tuple(merged)


# Where the fuzz server mounts each engine (conftest creates the ones dev mode lacks).
TRANSIT_MOUNTS = ("transit/",)
KV2_MOUNTS = ("secret/",)
KV1_MOUNTS = ("kv1/",)
USERPASS_MOUNTS = ("auth/userpass/",)
JWT_MOUNTS = ("auth/jwt/",)  # configured with a static key and role "r" (fuzz conftest)
CERT_MOUNTS = ("auth/cert/",)
APPROLE_MOUNTS = ("auth/approle/",)


def _engines() -> list[tuple[str, tuple[str, ...], Engine]]:
    assert {"transit", "kv", "generic"} <= set(ENGINE_FACTORIES), ENGINE_FACTORIES
    transit = ENGINE_FACTORIES["transit"](None, {})  # type: ignore[arg-type]
    kv2 = ENGINE_FACTORIES["kv"](None, {"version": "2"})  # type: ignore[arg-type]
    kv1 = ENGINE_FACTORIES["kv"](None, {})  # type: ignore[arg-type]
    assert isinstance(kv2, KVv2Backend) and isinstance(kv1, KVv1Backend)
    userpass = AUTH_FACTORIES["userpass"](None, {})  # type: ignore[arg-type]
    jwt = AUTH_FACTORIES["jwt"](None, {})  # type: ignore[arg-type]
    cert = AUTH_FACTORIES["cert"](None, {})  # type: ignore[arg-type]
    approle = AUTH_FACTORIES["approle"](None, {})  # type: ignore[arg-type]
    return [
        ("userpass", USERPASS_MOUNTS, userpass),
        ("jwt", JWT_MOUNTS, jwt),
        ("cert", CERT_MOUNTS, cert),
        ("approle", APPROLE_MOUNTS, approle),
        ("transit", TRANSIT_MOUNTS, transit),
        ("kv-v2", KV2_MOUNTS, kv2),
        ("kv-v1", KV1_MOUNTS, kv1),
        ("system", ("sys/",), SystemBackend(None)),  # type: ignore[arg-type]
        ("token", (TOKEN_MOUNT,), TokenBackend(None, None)),  # type: ignore[arg-type]
        ("identity", ("identity/",), IdentityBackend(None)),  # type: ignore[arg-type]
    ]


# Routes left out, with the reason: a streaming answer has no end to check.
EXCLUDED = {("system", "monitor")}


def all_templates() -> list[Template]:
    """Every route of every engine under each of its mounts, the unauthenticated status
    endpoints, and a few paths no engine serves (an unknown mount, cubbyhole, the root)."""
    templates: list[Template] = []
    for engine_name, mounts, engine in _engines():
        for route in engine.routes:
            if (engine_name, route.pattern) in EXCLUDED:
                continue
            ops = tuple(sorted(route.operations))
            for parts in expand(route.pattern):
                for mount in mounts:
                    templates.append(Template(engine_name, mount, parts, route, ops))
    for path in STATUS_HANDLERS:
        templates.append(Template("status", "", (path,), None, ("read", "update")))
    for parts in (("nope/", Param("rest")), ("cubbyhole/", Param("rest")), ("",),
                  (Param("rest"),)):
        templates.append(Template("none", "", parts, None, ()))
    return templates


def check_templates(templates: list[Template], sample: dict[str, str]) -> list[str]:
    """Templates whose filled-in form the route's own regex does not accept (should be none).
    `sample` gives a valid value per parameter name ("rest" and unknown names: "a")."""
    bad: list[str] = []
    for t in templates:
        if t.route is None:
            continue
        inner = "".join(p if isinstance(p, str) else sample.get(p.name, "a") for p in t.parts)
        if t.route.regex.fullmatch(inner) is None:
            bad.append(f"{t.label()} -> {inner!r} !~ {t.route.pattern!r}")
    return bad


def param_names(templates: list[Template]) -> set[str]:
    return {p.name for t in templates for p in t.parts if isinstance(p, Param)}


def summary(templates: list[Template]) -> dict[str, Any]:
    counts: dict[str, int] = {}
    for t in templates:
        counts[t.engine] = counts.get(t.engine, 0) + 1
    return counts
