"""The embedded SQLite broker: concurrent producers on a fresh file, cleanup of consumed rows."""
from __future__ import annotations

import multiprocessing as mp
import sqlite3

from suprhook.handlers.stores import embedded

from .conftest import make_status, stack_config


def _produce(config: dict, barrier, results) -> None:
    from suprhook.handlers import Registry
    from suprhook.receiver import create_app

    registry = Registry()
    registry(event_type="status", name="noop")(print)
    client = create_app(config, registry=registry).test_client()
    barrier.wait(timeout=60)
    results.put(client.post("/webhooks/suprsend", json=make_status()).status_code)


def test_processes_starting_together_on_a_fresh_broker_all_enqueue(tmp_path):
    """Four processes create the broker file and publish at the same moment (kombu's queue-row
    race made some of these fail on first publish before queues were declared under a lock)."""
    ctx = mp.get_context("spawn")
    for round_ in range(3):
        config = stack_config(tmp_path / f"r{round_}", None)
        barrier, results = ctx.Barrier(4), ctx.Queue()
        procs = [ctx.Process(target=_produce, args=(config, barrier, results)) for _ in range(4)]
        for p in procs:
            p.start()
        for p in procs:
            p.join(90)
        codes = [results.get(timeout=5) for _ in procs]
        assert codes == [202] * 4, codes
        url = f"sqla+sqlite:///{tmp_path / f'r{round_}' / 'broker.sqlite3'}"
        assert embedded.queue_depth(url) == 4


def test_consumed_rows_are_purged(tmp_path):
    url = f"sqla+sqlite:///{tmp_path / 'broker.sqlite3'}"
    config = stack_config(tmp_path, None)
    from suprhook.handlers import Registry
    from suprhook.receiver import create_app

    registry = Registry()
    registry(name="noop")(print)
    client = create_app(config, registry=registry).test_client()
    for _ in range(3):
        assert client.post("/webhooks/suprsend", json=make_status()).status_code == 202
    with sqlite3.connect(embedded.sqlite_path(url)) as db:  # what a consumer's fetch does
        db.execute("UPDATE kombu_message SET visible = 0 WHERE id IN (SELECT id FROM kombu_message LIMIT 2)")
    assert embedded.queue_depth(url) == 1
    assert embedded.purge_consumed(url) == 2
    assert embedded.queue_depth(url) == 1  # the unconsumed message is untouched
    with sqlite3.connect(embedded.sqlite_path(url)) as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
