"""RoleFollower (transit/cluster/follower.py): a sibling worker takes the role the lock says
its node has, with a fake backend and core."""

from __future__ import annotations

import asyncio
from typing import Any

from transit.cluster.activeterm import FENCE_CLOSED
from transit.cluster.advert import LeaderRecord, leader_key
from transit.cluster.follower import NotReady, RoleFollower
from transit.errors import StorageError
from transit.storage.base import Versioned


class FakeBackend:
    def __init__(self) -> None:
        self.holder: tuple[str, int] | None = None
        self.fence: int | None = None
        self.lock_ttl = 4.0
        self.fail = False
        self.acquired = 0

    async def lock_holder(self) -> tuple[str, int] | None:
        if self.fail:
            raise StorageError("redis unreachable")
        return self.holder

    async def acquire_lock(self, owner: str, min_epoch: int = 0) -> int | None:  # never called
        self.acquired += 1
        return None


class FakeCore:
    """A core whose barrier holds worker 0's advertisement of whatever term `backend` says
    the lock is in (worker 0 has finished activating), unless `advertised` is False."""

    def __init__(self, backend: FakeBackend | None = None) -> None:
        self.sealed = False
        self.calls: list[Any] = []
        self.not_ready = 0
        self.barrier = self
        self.backend = backend
        self.advertised = True

    async def become_active(self, record: Any) -> None:
        if self.not_ready:
            self.not_ready -= 1
            raise NotReady("worker 0 is still activating")
        self.calls.append(("active", record))

    async def become_standby(self) -> None:
        self.calls.append("standby")

    async def get(self, key: str) -> bytes | None:
        return None

    async def get_versioned(self, key: str) -> Versioned:
        holder = None if self.backend is None else self.backend.holder
        if not self.advertised or holder is None or key != leader_key(holder[0].split("@")[0]):
            return Versioned(None, "")
        record = LeaderRecord("n1", "http://w0", "https://w0:1", "c", "k", holder[0], holder[1])
        return Versioned(record.to_json(), "v")


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def make() -> tuple[RoleFollower, FakeBackend, FakeCore, Clock, list[str]]:
    backend, clock = FakeBackend(), Clock()
    core = FakeCore(backend)
    relayed: list[str] = []

    async def relay(kind: str, payload: dict[str, Any]) -> None:
        relayed.append(kind)

    f = RoleFollower(core, backend, "n1", "http://a", "https://a:1", 4.0, relay=relay,
                     clock=clock)
    return f, backend, core, clock, relayed


def test_follows_the_lock_of_its_own_node() -> None:
    f, backend, core, clock, relayed = make()

    async def go() -> None:
        await f.check()  # nobody holds the lock
        assert not f.is_active and backend.fence is None and core.calls == []
        backend.holder = ("other", 3)
        await f.check()
        assert not f.is_active and backend.fence is None
        backend.holder = ("n1", 4)  # worker 0 of our node won
        await f.check()
        assert f.is_active and backend.fence == 4 and f.epoch == 4
        assert core.calls == [("active", None)]  # no advertisement, no cluster listener
        record = await f.leader()
        assert record is not None and record.api_addr == "http://a"
        await f.check()  # unchanged: nothing happens
        assert core.calls == [("active", None)]
        backend.holder = ("n1", 6)  # worker 0 began a new term: only the fence follows
        await f.check()
        assert f.is_active and backend.fence == 6 and core.calls == [("active", None)]
        await f.step_down()
        assert relayed == ["step-down"]  # asked of worker 0, not done here
        backend.holder = ("other", 7)
        await f.check()
        assert not f.is_active and backend.fence == FENCE_CLOSED
        assert core.calls[-1] == "standby"
        assert backend.acquired == 0

    asyncio.run(go())


def test_follows_only_once_worker_0_has_advertised_the_term() -> None:
    """Worker 0 advertises last in its activation: until then this worker stays a standby
    (and forwards to nobody), so its health never says active before worker 0 can serve."""
    f, backend, core, _clock, _ = make()
    backend.holder = ("n1", 5)
    core.advertised = False

    async def go() -> None:
        await f.check()
        assert not f.is_active and core.calls == []
        assert await f.refresh_leader() is None
        core.advertised = True
        record = await f.refresh_leader()
        assert record is not None and record.epoch == 5 and record.api_addr == "http://w0"
        await f.check()
        assert f.is_active and backend.fence == 5

    asyncio.run(go())


def test_not_ready_is_retried() -> None:
    f, backend, core, _clock, _ = make()
    core.not_ready = 1
    backend.holder = ("n1", 2)

    async def go() -> None:
        await f.check()
        assert not f.is_active and backend.fence == FENCE_CLOSED
        await f.check()
        assert f.is_active and backend.fence == 2

    asyncio.run(go())


def test_unreadable_lock_leaves_the_role_only_after_ttl_minus_margin() -> None:
    f, backend, core, clock, _ = make()
    backend.holder = ("n1", 2)

    async def go() -> None:
        await f.check()
        assert f.is_active
        backend.fail = True
        clock.now += 2.0  # < ttl - margin (4 - 1)
        await f.check()
        assert f.is_active and backend.fence == 2
        clock.now += 1.5
        await f.check()
        assert not f.is_active and backend.fence == FENCE_CLOSED
        assert f.last_leave is not None and f.last_leave[0] == "overdue"

    asyncio.run(go())


def test_sealed_core_is_never_active() -> None:
    f, backend, core, _clock, _ = make()
    backend.holder = ("n1", 2)

    async def go() -> None:
        await f.check()
        assert f.is_active
        core.sealed = True
        await f.check()
        assert not f.is_active and backend.fence == FENCE_CLOSED

    asyncio.run(go())


def test_stop_leaves_the_role() -> None:
    f, backend, core, _clock, _ = make()
    backend.holder = ("n1", 2)

    async def go() -> None:
        f.start()
        for _ in range(50):
            if f.is_active:
                break
            await asyncio.sleep(0.01)
        assert f.is_active
        await f.stop()
        assert not f.is_active and backend.fence == FENCE_CLOSED

    asyncio.run(go())


# -- the lock owner: `<node id>@<instance>`, one per running server ---------------------------


class RecordStore(FakeCore):
    """A core whose barrier holds advertisements."""

    def __init__(self) -> None:
        super().__init__()
        self.stored: dict[str, bytes] = {}

    async def get(self, key: str) -> bytes | None:
        return self.stored.get(key)

    async def get_versioned(self, key: str) -> Versioned:
        value = self.stored.get(key)
        return Versioned(value, "" if value is None else "v")


def make_owned(owner: str = "n1@mine") -> tuple[RoleFollower, FakeBackend, RecordStore]:
    backend, core = FakeBackend(), RecordStore()
    backend.owner = owner  # type: ignore[attr-defined]  # as the server sets it
    f = RoleFollower(core, backend, "n1", "http://a", "https://a:1", 4.0, clock=Clock())
    return f, backend, core


def test_never_follows_another_process_with_the_same_node_id() -> None:
    f, backend, core = make_owned()
    assert f.owner == "n1@mine" and f.node_id == "n1"

    async def go() -> None:
        for holder in (("n1@other", 4), ("n1", 5), ("n1@mine2", 6)):
            backend.holder = holder  # type: ignore[assignment]
            await f.check()
            assert not f.is_active and backend.fence is None and core.calls == []
        backend.holder = ("n1@mine", 7)  # worker 0 of this very server
        await f.check()  # it has not advertised this term yet: not followed
        assert not f.is_active and core.calls == []
        core.stored[leader_key("n1")] = LeaderRecord(
            "n1", "http://a", "https://a:1", "c", "k", "n1@mine", 7).to_json()
        await f.check()
        assert f.is_active and backend.fence == 7
        assert f._record is not None and f._record.owner == "n1@mine"
        backend.holder = ("n1@other", 8)  # the other process took over: leave at once
        await f.check()
        assert not f.is_active and backend.fence == FENCE_CLOSED
        assert backend.acquired == 0

    asyncio.run(go())


def test_leader_of_the_same_node_id_is_the_holders_record_only() -> None:
    """Processes sharing a node id share `core/leader/<node id>`: the record is used only
    when it names the owner that holds the lock."""
    from transit.cluster.advert import LeaderRecord, leader_key

    f, backend, core = make_owned()
    other = LeaderRecord("n1", "http://b", "https://b:1", "c", "k", "n1@other")
    mine = LeaderRecord("n1", "http://a", "https://a:1", "c", "k", "n1@mine", 4)
    mine_before = LeaderRecord("n1", "http://a", "https://a:1", "c2", "k2", "n1@mine", 2)

    async def go() -> None:
        backend.holder = ("n1@other", 3)
        core.stored[leader_key("n1")] = mine.to_json()  # our own old record: not the leader
        assert await f.refresh_leader() is None
        core.stored[leader_key("n1")] = other.to_json()
        assert await f.refresh_leader() == other
        # worker 0 of ours won, its record not rewritten yet: no leader, not the other one
        backend.holder = ("n1@mine", 4)
        assert await f.refresh_leader() is None
        core.stored[leader_key("n1")] = mine_before.to_json()  # our record of an earlier term
        assert await f.refresh_leader() is None
        core.stored[leader_key("n1")] = mine.to_json()
        assert await f.refresh_leader() == mine
        assert f.max_epoch == 4  # every holder read counts

    asyncio.run(go())


def test_explicit_owner_wins() -> None:
    backend, core = FakeBackend(), FakeCore()
    f = RoleFollower(core, backend, "n1", "http://a", "https://a:1", 4.0, owner="n1@abc")
    assert (f.owner, f.node_id) == ("n1@abc", "n1")
    g = RoleFollower(core, backend, "n1", "http://a", "https://a:1", 4.0)
    assert (g.owner, g.node_id) == ("n1", "n1")  # a backend without an owner: the node id


# -- issue 15 item 3: a deposed node stops serving as active at once ---------------------------
def test_a_follower_stops_serving_once_the_lock_is_unconfirmed_too_long() -> None:
    f, backend, core, clock, _relayed = make()
    backend.holder = (f.owner, 7)

    async def go() -> None:
        await f.check()
        assert f.is_active and f.serving
        clock.now += f.lock_ttl - f.margin - 0.01
        assert f.serving
        clock.now += 0.02  # e.g. the process was paused: no poll has run since
        assert f.is_active and not f.serving  # refused per request before the poll leaves
        await f.check()  # the poll leaves, then takes the role again: the lock is still ours
        assert f.is_active and f.serving

    asyncio.run(go())


def test_a_fence_error_deposes_a_follower_at_once() -> None:
    f, backend, core, clock, _relayed = make()
    backend.holder = (f.owner, 7)

    async def go() -> None:
        await f.check()
        assert f.serving
        backend.holder = ("other@x", 8)
        f.deposed("a storage write was fenced")
        assert not f.serving  # at once, before the role is left
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        assert not f.is_active and backend.fence == FENCE_CLOSED
        assert core.calls[-1] == "standby"

    asyncio.run(go())


def test_the_controller_serves_only_within_ttl_minus_margin() -> None:
    from transit.cluster.ha import HAController

    backend, core, clock = FakeBackend(), FakeCore(), Clock()
    c = HAController(core, backend, "n1", "http://a", "https://a:1", 4.0, clock=clock)
    assert not c.serving
    c.deposed()  # no term on: nothing to signal (a stale "lost" would end the next term)
    assert c._request is None
    c.state = "active"
    c._serve_until = clock.now + c.lock_ttl - c.margin
    assert c.serving
    clock.now += c.lock_ttl - c.margin
    assert not c.serving


def test_core_refuses_as_a_deposed_active_and_deposes_on_a_fence_error() -> None:
    from transit.core import Core
    from transit.errors import Fenced
    from transit.logical import UPDATE, Request
    from transit.storage.inmem import InmemBackend

    class Ha:
        def __init__(self) -> None:
            self.state, self.epoch, self.fresh, self.why = "active", 3, True, ""

        @property
        def serving(self) -> bool:
            return self.state == "active" and self.fresh

        def deposed(self, why: str = "fenced") -> None:
            self.fresh, self.why = False, why

    async def go() -> None:
        core = Core(InmemBackend())
        await core.setup_dev("root")
        await core.handle(Request(UPDATE, "", {}, None, client_token="root"), "transit/keys/k")

        def encrypt() -> Request:
            return Request(UPDATE, "", {"plaintext": "aGk="}, None, client_token="root")

        ha = Ha()
        core.ha = ha  # type: ignore[assignment]
        assert (await core.handle(encrypt(), "transit/encrypt/k")) is not None
        ha.fresh = False  # past ttl − margin: a cached encrypt is refused too
        try:
            await core.handle(encrypt(), "transit/encrypt/k")
            raise AssertionError("a deposed active answered an encrypt")
        except Fenced as exc:
            assert exc.message == "node is not active"
        assert "not confirmed" in ha.why

        ha2 = Ha()
        core.ha = ha2  # type: ignore[assignment]

        class FencedEngine:  # a handler whose storage write is fenced
            async def exists(self, req: Any) -> bool:
                return True

            async def handle(self, req: Any) -> Any:
                raise Fenced("the lock no longer holds this node's epoch")

        route = core.route

        def fenced_route(path: str) -> Any:
            routed = route(path)
            return (FencedEngine(), *routed[1:]) if path.endswith("/rotate") else routed

        core.route = fenced_route  # type: ignore[method-assign]
        try:
            await core.handle(Request(UPDATE, "", {}, None, client_token="root"),
                              "transit/keys/k/rotate")
        except Fenced:
            pass
        assert not ha2.fresh and "fenced" in ha2.why
        try:  # and from then on, encrypt from the cache is refused
            await core.handle(encrypt(), "transit/encrypt/k")
            raise AssertionError("a fenced active answered an encrypt")
        except Fenced:
            pass

    asyncio.run(go())


# -- a request arriving while the node takes the active role waits for it ----------------------
def test_activated_waits_for_the_activation_in_progress() -> None:
    from transit.cluster.ha import HAController

    backend, clock = FakeBackend(), Clock()
    c = HAController(FakeCore(backend), backend, "n1", "http://a", "https://a:1", 4.0,
                     clock=clock)

    async def go() -> None:
        assert not c.activating
        await asyncio.wait_for(c.activated(), 1)  # nothing in progress: returns at once
        c._activation_began()
        assert c.activating
        waiter = asyncio.ensure_future(c.activated(5))
        await asyncio.sleep(0)  # one turn of the loop: the waiter is now waiting
        assert not waiter.done()
        c._activation_ended()
        await asyncio.wait_for(waiter, 1)
        assert not c.activating
        c._activation_began()
        await c.activated(0.05)  # bounded: returns at the deadline
        assert c.activating

    asyncio.run(go())


def test_await_leader_waits_for_the_holders_advertisement() -> None:
    """A standby asked to forward while the holder is still activating waits (bounded) for
    its advertisement instead of answering 503 at once."""
    from transit.cluster.ha import HAController

    backend = FakeBackend()
    core = FakeCore(backend)
    c = HAController(core, backend, "n2", "http://b", "https://b:1", 4.0)

    async def go() -> None:
        assert await c.await_leader(0.2) is None  # no holder: no wait
        backend.holder = ("n1@w", 3)
        core.advertised = False
        started = asyncio.get_running_loop().time()
        assert await c.await_leader(0.2) is None
        assert asyncio.get_running_loop().time() - started >= 0.2

        async def advertise() -> None:
            await asyncio.sleep(0.1)
            core.advertised = True

        task = asyncio.ensure_future(advertise())
        record = await c.await_leader(5)
        await task
        assert record is not None and record.epoch == 3 and record.owner == "n1@w"

    asyncio.run(go())


def test_a_follower_serves_only_until_the_lock_it_saw_expires() -> None:
    """The lock may have been renewed long before the follower looked (or worker 0 may be
    gone): it serves until the expiry it read with the holder, not a full TTL from its look."""
    f, backend, core, clock, _relayed = make()
    left = [4.0]

    async def lock_holder_ttl() -> tuple[tuple[str, int] | None, float]:
        return backend.holder, left[0]

    backend.lock_holder_ttl = lock_holder_ttl  # type: ignore[attr-defined]
    backend.holder = (f.owner, 7)

    async def go() -> None:
        await f.check()
        assert f.is_active and f.serving
        left[0] = f.margin + 0.5  # worker 0 last renewed a while ago
        await f.check()
        assert f.serving
        clock.now += 0.49
        assert f.serving
        clock.now += 0.02  # past what the lock had left (minus the margin)
        assert not f.serving
        left[0] = 4.0  # renewed again
        await f.check()
        assert f.serving

    asyncio.run(go())
