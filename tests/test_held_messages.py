"""Refreshing held Redis messages (handlers/worker/leases.py) must never touch the connection the worker's BRPOP
waits on. It did: `channel.client` is bound to that connection, so a refresh that fired while a BRPOP was in
flight read the BRPOP's answer as its own, and the message BRPOP had popped was gone (about one task per 8,000
in `python -m bench`'s dispatch phase, each run only by the recovery sweep 30 s later). Real Redis and kombu;
this drives kombu's Redis channel by hand, as the worker's event loop does."""
from __future__ import annotations

import time
from types import SimpleNamespace

import redis
from kombu import Connection, Consumer, Producer, Queue

from suprhook.handlers.worker.leases import RefreshHeldMessages, held_delivery_tags

REDIS = "redis://127.0.0.1:6379/0"


def test_a_refresh_while_brpop_is_in_flight_loses_no_message(redis_prefix):
    name = redis_prefix + "held"
    received = []
    with Connection(REDIS, transport_options={"visibility_timeout": 30}) as conn:
        channel = conn.channel()
        queue = Queue(name, routing_key=name, channel=channel)
        queue.declare()
        consumer = Consumer(channel, [queue], callbacks=[lambda body, message: received.append((body, message))],
                            accept=["json"])
        consumer.consume()
        producer = Producer(channel)
        producer.publish({"n": 1}, routing_key=name, serializer="json")
        conn.drain_events(timeout=5)  # one message held, unacknowledged: something for the refresh to refresh
        assert [body for body, _ in received] == [{"n": 1}]
        assert held_delivery_tags(channel)

        producer.publish({"n": 2}, routing_key=name, serializer="json")
        channel._brpop_start()  # the event loop's BRPOP (kombu's own call): Redis pops {"n": 2} and answers
        client = redis.Redis.from_url(REDIS)
        deadline = time.monotonic() + 5
        while client.llen(name) and time.monotonic() < deadline:
            time.sleep(0.01)
        assert client.llen(name) == 0  # popped: its answer waits on the BRPOP connection

        step = RefreshHeldMessages(SimpleNamespace())
        assert step.refresh(SimpleNamespace(task_consumer=SimpleNamespace(channel=channel))) == 1  # a timer fires

        channel._brpop_read()  # the event loop reads the BRPOP's answer
        assert [body for body, _ in received] == [{"n": 1}, {"n": 2}]  # delivered, not eaten by the refresh
        for _, message in received:
            message.ack()
        consumer.cancel()
