"""Claiming, renewing and finishing handler runs: on the broker's Redis when the receiver put the run there,
else in the event log.

A run's bookkeeping (claim with a lease, renew the lease, record the outcome) is what keeps handler success
exactly-once. In the event log it costs two SQL write transactions per run, which decided a worker's
throughput. On a Redis broker the receiver creates each event's runs, pending, in a Redis hash
(`messages.run_key`) in the same call that queues its tasks; a worker then claims and finishes a run with one
atomic script each, on the Redis its tasks come from, and the script appends the transition to the event-log
stream, which the log writer writes into the run table in batches (and then drops the finished run from
Redis). A run with no Redis state (another broker, a finished run already in the event log, a replay of a
dead run) is claimed in the event log as before. Whichever holds a run's state decides it: the two never both
do, because Redis state is only ever created at acceptance, before the run's first task exists.

An event SuprSend sends again after the dedup window gets fresh Redis state; the event log's record of its earlier
success is what skips it, so a first claim reads the run in the event log (one point read, ~100 µs) -- unless the
event is younger than the dedup window less an hour (a quarter of a window shorter than four hours). Such an event
cannot have been accepted before: an earlier acceptance came after the event happened, so its dedup key would
still be there and the receiver would have answered `duplicate` instead of creating runs. (The margin allows for
the sender's clock; an event without a time, or any event when SUPRHOOK_DEDUP_TTL is 0, is always read.)
"""
from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Callable, Iterable, Mapping, Sequence

from ..messages import RUN_TTL, RunTransition
from .db import DEAD
from .store import DONE, EventStore, RunInProgress, clip_error

log = logging.getLogger("suprhook.runs")

# KEYS[1] = the event's run hash; ARGV = handler, lease seconds, event id, TTL. Returns {attempt, ""} when claimed,
# {0, ""} when finished already, {-2, seconds left} when another holds a live lease, {-1, ""} when Redis has no
# state for it (the event log decides). Times are Redis's own clock. A claim is not sent to the event log: most
# runs finish long before their first lease renewal (a third of the lease), whose entry tells the log the run is
# running; a run's outcome carries its attempt number. That keeps the log writer at two entries per event (the
# event, the outcome) instead of three. A holder that dies before renewing leaves the run pending in the log:
# its message comes back from the broker (unacked, after the visibility timeout), or the sweep re-sends it.
_CLAIM = """
local v = redis.call('HGET', KEYS[1], ARGV[1])
if not v then return {-1, ''} end
local s, a, l = string.match(v, '^(%a+)|(%d+)|([%d%.]+)$')
if not s then return {-1, ''} end
if s == 'succeeded' or s == 'skipped' or s == 'dead' then return {0, ''} end
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
if s == 'running' and tonumber(l) >= now then return {-2, string.format('%.3f', tonumber(l) - now)} end
a = tonumber(a) + 1
local lease = string.format('%.3f', now + tonumber(ARGV[2]))
redis.call('HSET', KEYS[1], ARGV[1], 'running|' .. a .. '|' .. lease)
redis.call('EXPIRE', KEYS[1], ARGV[4])
return {a, ''}
"""
# ARGV = handler, attempt, status, error ('' for none), event id, TTL, mode: 'log' records the outcome and queues
# it for the event log; 'drop' forgets the run (the event log already had its outcome); then the follow-ups the
# run sent, as JSON text ('' for none). 1 done, 0 taken over by a later attempt, -1 no state.
_FINISH = """
local v = redis.call('HGET', KEYS[1], ARGV[1])
if not v then return -1 end
local s, a = string.match(v, '^(%a+)|(%d+)|')
if s ~= 'running' or a ~= ARGV[2] then return 0 end
if ARGV[7] == 'drop' then redis.call('HDEL', KEYS[1], ARGV[1]) return 1 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[3] .. '|' .. a .. '|0')
redis.call('EXPIRE', KEYS[1], ARGV[6])
local t = redis.call('TIME')
local entry = {e = ARGV[5], h = ARGV[1], a = tonumber(a), s = ARGV[3], t = tonumber(t[1]) + tonumber(t[2]) / 1000000}
if ARGV[4] ~= '' then entry.err = ARGV[4] end
if ARGV[8] and ARGV[8] ~= '' then entry.f = ARGV[8] end
redis.call('XADD', KEYS[2], '*', 'run', cjson.encode(entry))
return 1
"""
# ARGV = handler, attempt, lease seconds, event id, TTL: 1 renewed, 0 taken over, -1 no state.
_RENEW = """
local v = redis.call('HGET', KEYS[1], ARGV[1])
if not v then return -1 end
local s, a = string.match(v, '^(%a+)|(%d+)|')
if s ~= 'running' or a ~= ARGV[2] then return 0 end
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local lease = string.format('%.3f', now + tonumber(ARGV[3]))
redis.call('HSET', KEYS[1], ARGV[1], 'running|' .. a .. '|' .. lease)
redis.call('EXPIRE', KEYS[1], ARGV[5])
redis.call('XADD', KEYS[2], '*', 'run', cjson.encode({e = ARGV[4], h = ARGV[1], a = tonumber(a), s = 'running',
  l = tonumber(lease), t = now}))
return 1
"""
# ARGV = handler: make a run claimable again (replay, the sweep). 1 reopened, 0 finished or under a live lease
# (nothing changed), -1 no state.
_REOPEN = """
local v = redis.call('HGET', KEYS[1], ARGV[1])
if not v then return -1 end
local s, a, l = string.match(v, '^(%a+)|(%d+)|([%d%.]+)$')
if not s then return -1 end
if s == 'succeeded' or s == 'skipped' then return 0 end
if s == 'running' then
  local t = redis.call('TIME')
  if tonumber(l) >= tonumber(t[1]) + tonumber(t[2]) / 1000000 then return 0 end
end
redis.call('HSET', KEYS[1], ARGV[1], 'pending|' .. a .. '|0')
return 1
"""
# KEYS = run hashes; ARGV = (handler, state) pairs: drop each run still in that state (the event log has it).
_FORGET = """
local n = 0
for i = 1, #KEYS do
  if redis.call('HGET', KEYS[i], ARGV[2 * i - 1]) == ARGV[2 * i] then
    redis.call('HDEL', KEYS[i], ARGV[2 * i - 1])
    n = n + 1
  end
end
return n
"""


@dataclass(frozen=True)
class Claim:
    """A claimed run: its attempt number (0: it finished already, skip it) and where its state is kept."""

    attempt: int
    where: str  # "redis" | "log"


Held = tuple[str, str, int, str]  # (event_id, handler, attempt, where): a run whose lease this process renews


class RunBook:
    """Run bookkeeping for one process. `client`: the broker's Redis (None on any other broker: the event log
    alone); `key_of(event_id)`: its run hash; `stream`: the event-log stream the transitions go to."""

    def __init__(self, store_of: Callable[[], EventStore], client: Any = None,
                 key_of: Callable[[str], str] | None = None, stream: str = "", dedup_ttl: float = 0) -> None:
        self.store_of, self.client, self.key_of, self.stream = store_of, client, key_of, stream
        self.dedup_ttl = dedup_ttl
        if client is not None:
            if key_of is None or not stream:
                raise ValueError("a Redis run book needs key_of and the event-log stream")
            self._claim, self._finish = client.register_script(_CLAIM), client.register_script(_FINISH)
            self._renew, self._reopen = client.register_script(_RENEW), client.register_script(_REOPEN)
            self._forget = client.register_script(_FORGET)

    def _keys(self, event_id: str) -> list[str]:
        return [self.key_of(event_id), self.stream]  # type: ignore[misc]

    def begin(self, event_id: str, handler: str, lease: float, happened: datetime | None = None) -> Claim:
        """Claim a run for `lease` seconds. `happened`: the event's own time (`event.timestamp`), which spares a
        young event's first claim the event log read. RunInProgress: another process holds a live lease on it."""
        if self.client is not None:
            code, left = self._claim(keys=[self.key_of(event_id)], args=[handler, lease, event_id, RUN_TTL])  # type: ignore[misc]
            if code == 0:
                return Claim(0, "redis")
            if code == -2:
                raise RunInProgress(f"{handler} for {event_id} is running elsewhere", retry_in=float(left))
            if code > 0:
                claim = Claim(int(code), "redis")
                if code == 1 and not self._too_young_to_repeat(happened):
                    return self._unless_logged_done(event_id, handler, claim)
                return claim
        return Claim(self.store_of().begin_run(event_id, handler, lease), "log")

    def _too_young_to_repeat(self, happened: datetime | None) -> bool:
        """Could no earlier acceptance of this event exist (its dedup key would still be there)? The margin, for
        the sender's clock: an hour, or a quarter of a shorter dedup window."""
        if happened is None or self.dedup_ttl <= 0 or happened.tzinfo is None:
            return False
        margin = min(3600.0, self.dedup_ttl / 4)
        age = time.time() - happened.timestamp()
        return -margin < age < self.dedup_ttl - margin

    def _unless_logged_done(self, event_id: str, handler: str, claim: Claim) -> Claim:
        """A first claim: skip it when the event log says this run finished before (an event sent again after
        the dedup window). An event log that cannot be read does not stop the run: it is the receiver's
        dedup that keeps such repeats out, and this only covers what outlives it."""
        try:
            status = self.store_of().run_status(event_id, handler)
        except Exception as exc:
            log.warning("could not read the event log before a first run (%s); running it", type(exc).__name__)
            return claim
        if status in DONE or status == DEAD:
            self._finish(keys=self._keys(event_id), args=[handler, claim.attempt, status, "", event_id, RUN_TTL,
                                                          "drop", ""])
            return Claim(0, "redis")
        return claim

    def finish(self, event_id: str, handler: str, claim: Claim, status: str, error: str | None = None,
               followups: Sequence[Mapping[str, Any]] = ()) -> bool:
        """Record an outcome, and the follow-ups the run sent (`Followup.sent`); False when a later attempt took the
        run over meanwhile (this one's lease lapsed)."""
        error = clip_error(error)
        if claim.where == "redis":
            done = self._finish(keys=self._keys(event_id), args=[
                handler, claim.attempt, status, error or "", event_id, RUN_TTL, "log",
                json.dumps(list(followups), default=str) if followups else ""])
            if done >= 0:
                return bool(done)
        return self.store_of().finish_run(event_id, handler, status, error, attempt=claim.attempt,
                                          followups=followups)

    def renew(self, held: Iterable[Held], lease: float) -> list[Held]:
        """Extend the lease of each held run (one round trip for those on Redis, one transaction for the rest);
        the runs taken over meanwhile."""
        held = list(held)
        on_redis = [h for h in held if h[3] == "redis"] if self.client is not None else []
        in_log = [h for h in held if h not in on_redis]
        lost: list[Held] = []
        if on_redis:
            pipe = self.client.pipeline(transaction=False)
            for event_id, handler, attempt, _ in on_redis:
                self._renew(keys=self._keys(event_id), args=[handler, attempt, lease, event_id, RUN_TTL], client=pipe)
            for h, renewed in zip(on_redis, pipe.execute(), strict=True):
                if renewed == -1:
                    in_log.append(h)  # its Redis state expired (a run longer than RUN_TTL): the log's lease
                elif not renewed:
                    lost.append(h)
        if in_log:
            taken = set(self.store_of().renew_leases([(e, h, a) for e, h, a, _ in in_log], lease))
            lost += [h for h in in_log if h[:3] in taken]
        return lost

    def reopen(self, event_id: str, handler: str) -> bool:
        """Make a run claimable again for a re-sent task (replay, the sweep): False, and nothing changed, when it
        succeeded meanwhile or a live lease holds it."""
        if self.client is not None:
            reopened = self._reopen(keys=[self.key_of(event_id)], args=[handler])  # type: ignore[misc]
            if reopened >= 0:
                if reopened:
                    try:  # keep the log's row in step (Redis decides: its answer is the one that counts)
                        self.store_of().reopen_run(event_id, handler)
                    except Exception as exc:
                        log.warning("reopened %s for %s on Redis, not in the event log (%s)", handler, event_id,
                                    type(exc).__name__)
                return bool(reopened)
        return self.store_of().reopen_run(event_id, handler)

    def forget(self, written: Sequence[RunTransition]) -> int:
        """Drop the Redis state of runs whose final outcome the event log now has (the log writer, after its
        batch committed): later claims read the event log. How many were dropped."""
        final = [t for t in written if t.final]
        if self.client is None or not final:
            return 0
        return int(self._forget(keys=[self.key_of(t.event_id) for t in final],  # type: ignore[misc]
                                args=[x for t in final for x in (t.handler, f"{t.status}|{t.attempts}|0")]))


def open_run_book(settings: Any, store_of: Callable[[], EventStore]) -> RunBook:
    """The run book for `settings`: on the broker's Redis for a Redis broker (where the receiver creates runs),
    the event log alone on any other."""
    from ..messages import log_mode, log_stream_key, run_key

    if log_mode(settings) != "stream":
        return RunBook(store_of)
    import redis

    client = redis.Redis.from_url(settings.broker_url, socket_timeout=10, socket_connect_timeout=5,
                                  health_check_interval=25)
    return RunBook(store_of, client, lambda event_id: run_key(settings, event_id), log_stream_key(settings),
                   dedup_ttl=settings.dedup_ttl)
