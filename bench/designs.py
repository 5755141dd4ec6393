"""Take and push designs, each measured alone, in this process, as the raw loops are.

Every take loop does what a busy worker with one slot does per job, minus running it: take the
oldest job of the first non-empty of three queues (all jobs wait in the lowest, as in the raw
``BRPOP`` loop, so every take looks at all three), acknowledging the previous job in the same
round trip, then ``json.loads`` the body. They differ only in how the take is made:

- ``main``: the design before issue 16, ``reserve.lua`` through redis-py's ``Script`` (five keys
  per queue, the periodic step skipped as a busy worker does);
- ``slim, redis-py``: ``take.lua`` (three keys per queue, no periodic step) through redis-py's
  ``Script``: what the slimmer script alone is worth;
- ``slim, lane``: the driver's own take as it landed, ``take.lua`` sent by the driver's lane;
- ``in-flight list``: a per-worker in-flight list as Sidekiq's super_fetch and dramatiq keep, in
  one script through the lane: ``LREM`` acknowledges, ``LMOVE`` takes into the list, the crash
  count is read as in ``take.lua``. No deadline is written: a reaper would return the lists of
  workers whose registry heartbeat stopped (not built; only the take is measured);
- ``in-flight list, no Lua``: the same with plain commands through the lane: one ``LMOVE`` per
  queue in priority order, each its own round trip (pipelining them would take one job from every
  non-empty queue), the acknowledgement pipelined with the first.

The push designs: ``main`` is ``push.lua`` (the job, a wake-up token, a trim) through redis-py's
``Script``; ``LPUSH, redis-py`` is the landed push's one command through redis-py's generic path.
docs/performance.md compares them.
"""

from __future__ import annotations

import functools
import json
import time
from collections.abc import Callable
from typing import Any

__all__ = ["cases", "figures"]

QUEUES = ("bench-high", "bench-default", "bench-low")

MAIN_PUSH = """
for _, body in ipairs(ARGV) do
  redis.call('LPUSH', KEYS[1], body)
  redis.call('LPUSH', KEYS[2], '1')
end
redis.call('LTRIM', KEYS[2], 0, 999)
return #ARGV
"""

IN_FLIGHT = """
local inflight = KEYS[#KEYS]
local out = {0}
for a = 1, #ARGV do out[1] = redis.call('LREM', inflight, 1, ARGV[a]) end
for i = 0, (#KEYS - 1) / 2 - 1 do
  local body = redis.call('LMOVE', KEYS[i*2+1], inflight, 'RIGHT', 'LEFT')
  if body then
    out[2] = i + 1
    out[3] = body
    out[4] = tonumber(redis.call('HGET', KEYS[i*2+2], body) or '0')
    return out
  end
end
return out
"""

DESIGNS = {
    "design_take_main": "take design: main's reserve.lua through redis-py",
    "design_take_slim_redispy": "take design: take.lua through redis-py",
    "design_take_slim_lane": "take design: take.lua through the lane (landed)",
    "design_take_inflight": "take design: in-flight list, LMOVE in one script",
    "design_take_inflight_plain": "take design: in-flight list, LMOVE per queue, no Lua",
}
PUSHES = {
    "design_push_main": "push design: main's push.lua through redis-py",
    "design_push_lpush_redispy": "push design: one LPUSH through redis-py",
}


# Where each design's time goes: its server time per take (INFO commandstats of its command, as
# bench.run's SERVER_TIME_OF) and the client CPU of the whole loop per take (time.process_time).
SERVER_COMMAND = {key: "lmove" if key.endswith("_plain") else "evalsha" for key in DESIGNS}


def figures(figure: Callable[..., Any]) -> list[Any]:
    """The figures of this module, built with bench.run's Figure."""
    out = [figure(k, label, "jobs/s", baseline="raw_brpop") for k, label in DESIGNS.items()]
    out += [figure(k, label, "jobs/s", baseline="raw_lpush") for k, label in PUSHES.items()]
    out.append(figure("cpu_raw_brpop", "client CPU per take: raw BRPOP + json.loads", "us", higher_is_better=False))
    for key, label in DESIGNS.items():
        name = label.removeprefix("take design: ")
        out.append(figure(f"cpu_{key}", f"client CPU per take: {name}", "us", higher_is_better=False))
        per = "per LMOVE" if SERVER_COMMAND[key] == "lmove" else "per take"
        out.append(figure(f"srv_{key}", f"server time {per}: {name}", "us", higher_is_better=False))
    return out


def cases(url: str, n_take: int, n_push: int, figures: dict[str, Any]) -> list[tuple[str, Callable[[], float]]]:
    """(figure key, measurement) pairs for bench.run's loop; the CPU figures are filled on the way."""
    out: list[tuple[str, Callable[[], float]]] = []
    for key in DESIGNS:
        out.append((key, functools.partial(take, url, key, n_take, figures[f"cpu_{key}"].runs)))
    for key in PUSHES:
        out.append((key, functools.partial(push, url, key, n_push)))
    return out


def _driver(url: str) -> Any:
    from bench.workers import oxide_app

    return oxide_app(url, 90.0).driver("redis")


def take(url: str, design: str, n: int, cpu_runs: list[float]) -> float:
    from bench.workers import noop_job
    from oxide.drivers.reservations import keys_of

    driver = _driver(url)
    client, scripts = driver.client, driver.scripts
    body = noop_job(0).to_json()
    for start in range(0, n, 10_000):
        client.lpush(keys_of(QUEUES[-1])[0], *[body] * min(10_000, n - start))
    step = _take_step(design, driver, client, scripts)
    began, cpu = time.perf_counter(), time.process_time()
    previous: Any = None
    for _ in range(n):
        previous, text = step(previous)
        json.loads(text)
    rate = n / (time.perf_counter() - began)
    cpu_runs.append((time.process_time() - cpu) / n * 1e6)
    driver.close()
    return rate


def _take_step(design: str, driver: Any, client: Any, scripts: Any) -> Callable[[Any], tuple[Any, bytes]]:
    """One take of ``design``: (what to acknowledge next time, the body taken)."""
    from oxide.drivers.reservations import _script_text, keys_of

    if design == "design_take_main":
        reserve = client.register_script(_script_text("reserve"))
        keys = [k for q in QUEUES for k in keys_of(q)]
        counter = iter(range(1, 1 << 62))

        def main(previous: Any) -> tuple[Any, bytes]:
            acks = () if previous is None else (3, previous)
            reply = reserve(keys=keys, args=["", 90_000, f"w.{next(counter)}", 1, "0", "0", *acks])
            return reply[2], reply[2].split(b"|", 1)[1]

        return main
    if design == "design_take_slim_redispy":
        take_script = client.register_script(_script_text("take"))
        keys = [keys_of(q)[kind] for kind in (0, 1, 4) for q in QUEUES]
        counter = iter(range(1, 1 << 62))

        def slim(previous: Any) -> tuple[Any, bytes]:
            acks = () if previous is None else (3, previous)
            deadline = int(time.time() * 1000) + 90_000  # the driver follows the server's clock; this is the same host
            member = take_script(keys=keys, args=[1, deadline, f"w.{next(counter)}", *acks]).split(b" ", 3)[3]
            return member, member.split(b"|", 1)[1]

        return slim
    if design == "design_take_slim_lane":

        def landed(previous: Any) -> tuple[Any, bytes]:
            _held, taken = driver.take(QUEUES, 1.0, done=() if previous is None else previous)
            return taken, taken[0].body

        return landed
    inflight = keys_of(QUEUES[-1])[0] + ":inflight:bench"  # one worker's list, beside its queue's keys
    lane = scripts.lane
    if design == "design_take_inflight":
        keys = [k for q in QUEUES for k in (keys_of(q)[0], keys_of(q)[4])] + [inflight]
        script = lane.script(IN_FLIGHT, keys, key_count=len(keys))

        def in_flight(previous: Any) -> tuple[Any, bytes]:
            reply = script(() if previous is None else (previous,))
            return reply[2], reply[2]

        return in_flight
    from oxide.drivers.lane import packed, packed_head

    moves = [packed(5, packed_head("LMOVE", keys_of(q)[0], inflight, "RIGHT", "LEFT"), ()) for q in QUEUES]
    lrem = packed_head("LREM", inflight, 1)

    def in_flight_plain(previous: Any) -> tuple[Any, bytes]:
        first = [moves[0]] if previous is None else [packed(3, lrem, (previous,)), moves[0]]
        body = lane.call_many(first)[-1]
        for move in moves[1:]:
            if body is not None:
                break
            body = lane.call(move)
        return body, body

    return in_flight_plain


def push(url: str, design: str, n: int) -> float:
    from bench.workers import noop_job
    from oxide.drivers.reservations import keys_of

    driver = _driver(url)
    client = driver.client
    jobs = [noop_job(i) for i in range(n)]
    ready, notify = keys_of(QUEUES[-1])[0], keys_of(QUEUES[-1])[3]
    client.ping()
    if design == "design_push_main":
        script = client.register_script(MAIN_PUSH)

        def one(body: str) -> None:
            script(keys=[ready, notify], args=[body])
    else:

        def one(body: str) -> None:
            client.lpush(ready, body)

    start = time.perf_counter()
    for job in jobs:
        one(job.to_json())
    rate = n / (time.perf_counter() - start)
    driver.close()
    return rate
