"""Dedup, enqueue and log in one Redis round trip, when the broker and the dedup store are the same Redis.

A Lua script sets the event's dedup key, LPUSHes one Celery message per handler and appends the event to
the event-log stream atomically: the event counts as accepted if and only if its tasks are queued and it
is in the stream, so there is no lease, no commit and no release to lose between steps, and the request
costs one round trip and no SQL write (the worker's log writer, handlers/worker/log_writer.py, moves the
stream into the event log in batches). Messages are built by Celery's own
protocol-2 builder (`app.amqp.as_task_v2`) and wrapped in kombu's Redis envelope exactly as
`send_task` would (see tests/test_redis_fastpath.py, which compares the two and runs a worker on them).
"""
from __future__ import annotations

import base64
import uuid
from typing import Any, Callable, Mapping, Sequence

from celery import Celery
from kombu.serialization import dumps

from ..messages import RUN_TTL
from ..stores.dedup import DUPLICATE, IN_FLIGHT, NEW

# KEYS[1] = dedup key, KEYS[2] = the event-log stream, KEYS[3] = the event's run hash, KEYS[4..] = queues;
# ARGV[1] = dedup TTL, ARGV[2..9] = the log entry's field/value pairs, ARGV[10] = the run hash's TTL, ARGV[11] = the
# number of handlers n, ARGV[12..11+n] = their names, then the messages. An existing "0" is a two-phase lease taken
# by a receiver on the other dedup path: in flight. Each handler's run is created pending (HSETNX: never over a
# run that exists) in the same atomic step as its task, so workers claim and finish it on this Redis (no worker
# can take the task before the script ends; stores/runs.py). The
# dedup key is set last: Redis does not roll a script back, so should a push fail (a queue key of the wrong type),
# the event is not remembered and the sender's retry is accepted (a task pushed twice is skipped by the run
# bookkeeping). SUPRHOOK_DEDUP_TTL=0 remembers nothing (the run bookkeeping alone then stops repeats). The stream
# entry is the event log's copy: the worker's log writer moves it into SQL, so the request makes this one write.
_ACCEPT = """
local seen = redis.call('GET', KEYS[1])
if seen then return seen end
local n = tonumber(ARGV[11])
for i = 4, #KEYS do redis.call('LPUSH', KEYS[i], ARGV[i + 8 + n]) end
redis.call('XADD', KEYS[2], '*', ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6], ARGV[7], ARGV[8], ARGV[9])
for i = 1, n do redis.call('HSETNX', KEYS[3], ARGV[11 + i], 'pending|0|0') end
if n > 0 then redis.call('EXPIRE', KEYS[3], ARGV[10]) end
if tonumber(ARGV[1]) > 0 then redis.call('SET', KEYS[1], '1', 'EX', ARGV[1]) end
return false
"""
LOG_FIELDS = ("id", "meta", "body", "headers")  # the stream entry's fields, in the script's order


class RedisFastPath:
    def __init__(self, celery: Celery, dedup_client: Any, prefix: str, ttl: int, log_stream: str,
                 run_key: Callable[[str], str]) -> None:
        """`run_key(event_id)`: the event's run hash (`messages.run_key`)."""
        self.celery, self.prefix, self.ttl, self.log_stream, self.run_key = celery, prefix, ttl, log_stream, run_key
        self.client = dedup_client
        self._accept = dedup_client.register_script(_ACCEPT)

    def message(self, task_name: str, task_id: str, arg: dict[str, Any], queue: str, argsrepr: str) -> bytes:
        """One task message in kombu's Redis envelope, as `celery.send_task(..., queue=queue)` writes it."""
        task = self.celery.amqp.as_task_v2(task_id, task_name, args=[arg], kwargs={}, argsrepr=argsrepr,
                                           kwargsrepr="{}", ignore_result=None)  # None: as send_task writes it
        content_type, encoding, body = dumps(task.body, serializer="json")
        envelope = {
            "body": base64.b64encode(body.encode(encoding) if isinstance(body, str) else body).decode(),
            "content-encoding": encoding, "content-type": content_type, "headers": task.headers,
            "properties": {**task.properties, "argsrepr": argsrepr, "kwargsrepr": "{}", "delivery_mode": 2,
                           "delivery_info": {"exchange": "", "routing_key": queue}, "priority": 0,
                           "body_encoding": "base64", "delivery_tag": str(uuid.uuid4())},
        }
        _, _, data = dumps(envelope, serializer="json")
        return data.encode() if isinstance(data, str) else data

    def accept(self, event_id: str, messages: Sequence[tuple[str, str, bytes]], entry: Mapping[str, bytes]) -> str:
        """NEW (queued and logged now), DUPLICATE (before) or IN_FLIGHT; `messages` are (handler, queue, message),
        `entry` the event-log stream entry (`messages.log_entry`)."""
        pairs = [x for name in LOG_FIELDS for x in (name, entry[name])]
        seen = self._accept(keys=[self.prefix + event_id, self.log_stream, self.run_key(event_id),
                                  *(q for _, q, _ in messages)],
                            args=[self.ttl, *pairs, RUN_TTL, len(messages), *(h for h, _, _ in messages),
                                  *(m for _, _, m in messages)])
        if seen is None:
            return NEW
        return DUPLICATE if seen == b"1" else IN_FLIGHT
