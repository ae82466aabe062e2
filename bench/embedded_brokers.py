"""Benchmark of the two "embedded" (serverless) Celery brokers against Redis.

Candidates: A) kombu ``filesystem://`` and B) kombu ``sqla+sqlite://`` (WAL
mode, polling via ``kombu.transport.sqlalchemy.Transport.polling_interval``).
Baseline: Redis at redis://127.0.0.1:6379/15, measured in the same run; every
timing figure is also printed as a ratio "x redis" (absolute numbers are noisy
here).  Each phase uses a fresh broker (own temp folder / sqlite file / unique
Redis queue).  Measured per broker:

1. producers: 4 spawned processes x 500 ~1 KB JSON ``send_task`` calls, no
   consumer; msgs/s, failed publish calls, and messages found in the queue.
2. drain: a real ``celery worker --pool=prefork --concurrency=2`` drains a
   pre-filled backlog of 2,000; events/s from first to last completion.
3. latency: 100 messages 50 ms apart to the idle worker; p50/p99 of
   completion - send time.  sqlite at polling 1.0/0.1/0.05/0.02 s,
   filesystem at 0.05 s.
4. idle CPU of the worker main process over 5 s (/proc/<pid>/stat).
5. backlog: one producer publishes 5,000; time of msgs 4501..5000 / 1..500.
6. leftovers after the drain (sqlite keeps consumed rows with visible=0).
7. live: 2 producer processes x 500 while the worker consumes (where the
   filesystem partial-read race, kombu #1551, shows up).
"LOST" always means gone for good: neither completed nor still in the queue.

Tasks record completions in Redis (INCR / RPUSH on keys unique to the run,
deleted at the end).  Every wait is bounded; subprocesses are killed in a
``finally``; the whole run takes about 2.5 minutes.

Run from the repo root:  .venv/bin/python bench/embedded_brokers.py
(BENCH_LOGLEVEL=DEBUG for verbose worker logs; logs stay in the temp dir.)
"""
import json
import math
import multiprocessing as mp
import os
import platform
import queue as stdq
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
import uuid
from contextlib import suppress

import celery
import kombu
import redis
import sqlalchemy
from celery import Celery

REDIS = "redis://127.0.0.1:6379/15"
PAD = "x" * 1000
N_PROD, PER_PROD, N_DRAIN, N_LAT, N_BACKLOG, N_LIVE = 4, 500, 2000, 100, 5000, 2
SQLITE_PIS, FS_PI, BUDGET = [1.0, 0.1, 0.05, 0.02], 0.05, 170.0
KINDS = ["redis", "filesystem", "sqlite"]

APP_SRC = '''
import json, os, time
import redis
from celery import Celery
E = os.environ
if E["BENCH_BROKER"].startswith("sqla+"):
    from kombu.transport import sqlalchemy as _sqla
    _sqla.Transport.polling_interval = float(E["BENCH_PI"])
app = Celery(E["BENCH_APP"], broker=E["BENCH_BROKER"])
app.conf.update(task_serializer="json", accept_content=["json"], task_ignore_result=True,
                broker_transport_options=json.loads(E["BENCH_TOPTS"]),
                worker_enable_remote_control=False, broker_connection_retry_on_startup=True)
R = redis.Redis.from_url(E["BENCH_REDIS"])

@app.task(name="bench.noop", acks_late=True)
def noop(p):
    now, k = time.time(), p.get("k")
    if k and "sent" in p:
        R.rpush(k, now - p["sent"])
    elif k:
        n = R.incr(k)
        if n == 1:
            R.set(k + ":t0", now)
        if n == p["n"]:
            R.set(k + ":t1", now)
'''


def make_app(name, url, topts):
    app = Celery(name, broker=url, set_as_current=False)
    app.conf.update(task_serializer="json", accept_content=["json"],
                    broker_transport_options=topts, task_ignore_result=True)
    return app


def _producer(url, topts, q, n, key, total, barrier, out):
    """Spawned producer: publish n messages, report (ok, first error, t0, t1)."""
    ok, err, t0 = 0, None, None
    try:
        app = make_app(f"{q}_p{os.getpid()}", url, topts)
        app.connection_for_write().ensure_connection(max_retries=3)
        barrier.wait(30)
        t0 = time.time()
        for i in range(n):
            if time.time() - t0 > 60:
                err = err or f"TimeLimit at msg #{i}"
                break
            try:
                app.send_task("bench.noop", args=[{"k": key, "n": total, "i": i, "pad": PAD}], queue=q)
                ok += 1
            except Exception as e:  # report and keep going
                err = err or f"{type(e).__name__} at msg #{i}: {e}".splitlines()[0][:110]
    except Exception as e:
        err = err or f"{type(e).__name__}: {e}".splitlines()[0][:110]
    out.put((ok, err, t0, time.time()))


def kill_group(p):
    """SIGKILL the process group of a worker we started (it and its prefork children)."""
    with suppress(ProcessLookupError, PermissionError):
        os.killpg(p.pid, signal.SIGKILL)
    with suppress(subprocess.TimeoutExpired):
        p.wait(5)


class Bench:
    def __init__(self, tmp):
        self.tmp, self.run = tmp, "bench_" + uuid.uuid4().hex[:8]
        self.r, self.procs, self.t_start = redis.Redis.from_url(REDIS), [], time.monotonic()
        self.res = {k: {"log_errors": 0} for k in KINDS}    # kind -> metric -> value
        self.lat, self.problems = [], []   # lat: (tag, pi, p50, p99, outcome, cpu%, ok)
        self.mod = "app_" + self.run
        with open(os.path.join(tmp, self.mod + ".py"), "w") as f:
            f.write(APP_SRC)

    def left(self):
        return BUDGET - (time.monotonic() - self.t_start)

    def broker(self, kind, phase):
        """(url, transport_options, queue) of a fresh broker for one phase."""
        q, d = f"{self.run}_{kind}_{phase}", os.path.join(self.tmp, f"{kind}_{phase}")
        if kind == "redis":
            return REDIS, {}, q
        os.makedirs(d, exist_ok=True)
        if kind == "filesystem":
            for sub in ("msgs", "processed", "control"):
                os.makedirs(os.path.join(d, sub), exist_ok=True)
            return "filesystem://", {"data_folder_in": d + "/msgs", "data_folder_out": d + "/msgs",
                                     "processed_folder": d + "/processed",
                                     "control_folder": d + "/control", "polling_interval": FS_PI}, q
        path = d + "/broker.sqlite3"
        if not os.path.exists(path):
            con = sqlite3.connect(path)
            con.execute("PRAGMA journal_mode=WAL")
            con.close()
        return f"sqla+sqlite:///{path}", {"connect_args": {"timeout": 30}}, q

    def count(self, kind, url, topts, q, visible_only=True):
        """Messages waiting in queue q (sqlite: optionally all rows, consumed ones too)."""
        if kind == "redis":
            return self.r.llen(q)
        if kind == "filesystem":
            return sum(f.endswith(f".{q}.msg") for f in os.listdir(topts["data_folder_out"]))
        con = sqlite3.connect(url.split(":///", 1)[1], timeout=30)
        try:
            return con.execute("SELECT COUNT(*) FROM kombu_message m JOIN kombu_queue q ON "
                               "m.queue_id=q.id WHERE q.name=?" + " AND m.visible=1" * visible_only,
                               (q,)).fetchone()[0]
        except sqlite3.Error as e:
            return type(e).__name__
        finally:
            con.close()

    def outcome(self, kind, url, topts, q, done, want, st):
        """'done/want' plus what is still queued and what is gone for good (LOST)."""
        s = f"{done}/{want} done" + ("" if st == "ok" else f", {st}")
        if done < want:
            queued = self.count(kind, url, topts, q)
            s += f", {queued} still queued"
            if isinstance(queued, int) and done + queued < want:
                s += f", LOST {want - done - queued}"
        return s

    def produce(self, url, topts, q, nproc, per, key="", total=0):
        """nproc spawned producers in parallel; returns (ok, [errors], msgs/s)."""
        ctx = mp.get_context("spawn")
        barrier, out = ctx.Barrier(nproc), ctx.Queue()
        ps = [ctx.Process(target=_producer, args=(url, topts, q, per, key, total, barrier, out))
              for _ in range(nproc)]
        self.procs += ps
        [p.start() for p in ps]
        res = []
        for _ in ps:
            try:
                res.append(out.get(timeout=100))
            except stdq.Empty:
                res.append((0, "Timeout: producer did not report", None, None))
        for p in ps:
            p.join(5)
            p.is_alive() and p.kill()
        starts, ends = [r[2] for r in res if r[2]], [r[3] for r in res if r[2]]
        ok = sum(r[0] for r in res)
        return ok, [r[1] for r in res if r[1]], ok / (max(ends) - min(starts)) if starts else 0.0

    def start_worker(self, url, topts, q, tag, pi):
        env = dict(os.environ, PYTHONPATH=self.tmp, BENCH_BROKER=url, BENCH_TOPTS=json.dumps(topts),
                   BENCH_PI=str(pi), BENCH_APP=f"{self.run}_{tag}", BENCH_REDIS=REDIS)
        if "processed_folder" in topts:   # filesystem moves consumed files to $TMPDIR
            env["TMPDIR"] = topts["processed_folder"]
        with open(os.path.join(self.tmp, f"worker_{tag}.log"), "wb") as log:
            p = subprocess.Popen([sys.executable, "-m", "celery", "-A", self.mod, "worker",
                                  "--pool=prefork", "--concurrency=2", "-Q", q, "-n", f"{tag}@%h",
                                  "--without-gossip", "--without-mingle", "--without-heartbeat",
                                  "-l", os.environ.get("BENCH_LOGLEVEL", "WARNING")], cwd=self.tmp,
                                 env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        p.logname = log.name
        self.procs.append(p)
        return p

    @staticmethod
    def wait_for(cond, timeout, proc):
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if cond():
                return "ok"
            if proc.poll() is not None:
                return "ok" if cond() else f"WORKER DIED rc={proc.returncode}"
            time.sleep(0.02)
        return "ok" if cond() else "TIMEOUT"

    def stop_worker(self, p, kind, tag):
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)   # idle by now; Celery takes ~4 s to react, don't wait
            with suppress(subprocess.TimeoutExpired):
                p.wait(3)
        kill_group(p)
        p.stopped = True
        with open(p.logname, errors="replace") as f:
            lines = f.read().splitlines()
        bad = [ln for ln in lines if "Traceback" in ln or "ERROR" in ln or "CRITICAL" in ln]
        exc = [ln for ln in lines if ln[:1].isalpha() and ("Error" in ln or "Exception" in ln)]
        if bad:
            self.problems.append(f"{tag}: {len(bad)} error lines in worker log, last "
                                 f"{(exc or bad)[-1][:150]!r} (log: {p.logname})")
        self.res[kind]["log_errors"] += len(bad)

    def cpu_pct(self, pid, secs=5.0):
        def cpu():
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        time.sleep(0.5)
        c0, t0 = cpu(), time.monotonic()
        time.sleep(secs)
        return 100.0 * (cpu() - c0) / (time.monotonic() - t0)

    def worker_session(self, kind, pi, drain):
        """One worker: [drain backlog | ping] -> idle CPU -> latency -> [live produce+consume]."""
        tag = f"{kind}_pi{pi}" if kind == "sqlite" else kind
        url, topts, q = self.broker(kind, "work" if drain else tag)
        app, res, cnt = make_app(f"{self.run}_{tag}_client", url, topts), self.res[kind], \
            (lambda k: int(self.r.get(k) or 0))
        key, n = f"{self.run}:{tag}:" + ("drain" if drain else "ping"), N_DRAIN if drain else 1
        for _ in range(n):
            app.send_task("bench.noop", args=[{"k": key, "n": n, "pad": PAD}], queue=q)
        p = self.start_worker(url, topts, q, tag, pi)
        try:
            st = self.wait_for(lambda: cnt(key) >= n, 75 if drain else 45, p)
            if drain:
                t0, t1, done = *(float(self.r.get(key + s) or 0) for s in (":t0", ":t1")), cnt(key)
                res["drain_rate"] = (done - 1) / (t1 - t0) if t1 > t0 else 0.0
                res["drain_ok"] = self.outcome(kind, url, topts, q, done, N_DRAIN, st)
                res["left"] = (f"{self.count(kind, url, topts, q, False)} rows "
                               f"({self.count(kind, url, topts, q)} visible)" if kind == "sqlite"
                               else f"{self.count(kind, url, topts, q)} msgs")
            if st != "ok":
                self.lat.append((tag, pi, None, None, f"not run: {st}", None, False))
                return
            cpu = self.cpu_pct(p.pid)
            lkey, t0 = f"{self.run}:{tag}:lat", time.monotonic()
            for i in range(N_LAT):
                app.send_task("bench.noop", args=[{"k": lkey, "sent": time.time(), "pad": PAD}], queue=q)
                time.sleep(max(0.0, t0 + (i + 1) * 0.05 - time.monotonic()))
            st = self.wait_for(lambda: self.r.llen(lkey) >= N_LAT, 5 + 3 * pi, p)
            v = sorted(1000 * float(x) for x in self.r.lrange(lkey, 0, -1))
            pct = lambda f: v[min(len(v) - 1, math.ceil(f * len(v)) - 1)] if v else None
            self.lat.append((tag, pi, pct(0.5), pct(0.99),
                             self.outcome(kind, url, topts, q, len(v), N_LAT, st), cpu, st == "ok"))
            if drain and (st != "ok" or self.left() < 25):
                res["live"] = "not run: " + ("worker dead" if st != "ok" else "time budget")
            elif drain:
                live = f"{self.run}:{tag}:live"
                ok, errs, _ = self.produce(url, topts, q, N_LIVE, 500, live, N_LIVE * 500)
                st = self.wait_for(lambda: cnt(live) >= ok, 30, p)
                res["live"] = self.outcome(kind, url, topts, q, cnt(live), N_LIVE * 500, st) + \
                    (f", EXC {errs[0]}" if errs else "")
        finally:
            self.stop_worker(p, kind, tag)
            app.close()

    def phase_producers(self, kind):
        url, topts, q = self.broker(kind, "prod")
        ok, errs, rate = self.produce(url, topts, q, N_PROD, PER_PROD)
        arrived, want = self.count(kind, url, topts, q), N_PROD * PER_PROD
        silent = ok - arrived if isinstance(arrived, int) else ok
        self.res[kind].update(prod_rate=rate, prod_ok=f"{arrived}/{want} in queue" + (
            f", EXC: {want - ok} publish calls raised, first {errs[0]}" if errs else "") + (
            f", LOST {silent} (published without error but missing)" if silent > 0 else ""))

    def phase_backlog(self, kind):
        url, topts, q = self.broker(kind, "backlog")
        app, early, late, err = make_app(f"{self.run}_{kind}_bl", url, topts), 0.0, 0.0, ""
        app.send_task("bench.noop", args=[{"pad": PAD}], queue=q + "_warm")  # warm the connection
        t_end = time.monotonic() + 40
        for i in range(N_BACKLOG):
            t = time.perf_counter()
            try:
                app.send_task("bench.noop", args=[{"i": i, "pad": PAD}], queue=q)
            except Exception as e:
                err = f", EXC {type(e).__name__} at msg #{i}"
                break
            dt = time.perf_counter() - t
            early, late = early + dt * (i < 500), late + dt * (i >= N_BACKLOG - 500)
            if time.monotonic() > t_end:
                err = f", TimeLimit at {i + 1} msgs"
                break
        app.close()
        self.res[kind]["backlog"] = (f"{late / early:.2f} ({early * 2:.2f} -> {late * 2:.2f} ms/msg)"
                                     if late else "n/a") + err

    def cleanup_redis(self):
        for k in self.r.scan_iter(f"*{self.run}*", count=1000):
            self.r.delete(k)
        for tag, v in self.r.hscan_iter("unacked"):
            if self.run.encode() in v:
                self.r.hdel("unacked", tag)
                self.r.zrem("unacked_index", tag)


def report(b):
    R, rd = b.res, b.res["redis"]
    num = lambda k, m: f"{R[k].get(m, 0):,.0f}" + (
        f" ({R[k][m] / rd[m]:.2f}x redis)" if R[k].get(m) and rd.get(m) else "")
    print(f"\nMachine: nproc={os.cpu_count()}, {platform.platform()}, python {platform.python_version()}, "
          f"celery {celery.__version__}, kombu {kombu.__version__}, SQLAlchemy {sqlalchemy.__version__}, "
          f"redis-server {b.r.info().get('redis_version')}, sqlite {sqlite3.sqlite_version}\n")
    rows = [("Producers 4 procs x 500, msgs/s", lambda k: num(k, "prod_rate")),
            ("Producers: correctness", lambda k: R[k].get("prod_ok", "-")),
            ("Drain 2000, prefork c=2, events/s", lambda k: num(k, "drain_rate")),
            ("Drain: correctness", lambda k: R[k].get("drain_ok", "-")),
            ("Left in broker after drain", lambda k: R[k].get("left", "-")),
            ("Live 2x500 publish while consuming", lambda k: R[k].get("live", "-")),
            ("Backlog publish time late/early (500 of 5000)", lambda k: R[k].get("backlog", "-")),
            ("Error lines in worker logs", lambda k: str(R[k]["log_errors"]))]
    print("| metric | redis (baseline) | filesystem (poll 0.05) | sqlite WAL (poll 1.0) |\n|---|---|---|---|")
    for name, f in rows:
        print(f"| {name} | " + " | ".join(f(k) for k in KINDS) + " |")
    base = next((r for r in b.lat if r[0] == "redis" and r[2]), None)
    fmt = lambda v, spec: "-" if v is None else format(v, spec)
    print("\n| worker (poll s) | latency p50 ms | p99 ms | p50 / p99 x redis | received "
          "| idle CPU, worker main process, % of a core |\n|---|---|---|---|---|---|")
    for tag, pi, p50, p99, outc, cpu, _ in b.lat:
        rr = f"{p50 / base[2]:.1f}x / {p99 / base[3]:.1f}x" if base and p50 else "-"
        print(f"| {tag.split('_')[0]} ({'event loop' if tag == 'redis' else pi}) | {fmt(p50, '.1f')} | "
              f"{fmt(p99, '.1f')} | {rr} | {outc} | {fmt(cpu, '.1f')} |")
    flags = ("LOST", "EXC", "DIED", "TIMEOUT")
    bad = [f"{k} {m}: {R[k][m]}" for k in KINDS for m in ("prod_ok", "drain_ok", "live", "backlog")
           if any(f in str(R[k].get(m, "")) for f in flags)]
    bad += [f"{r[0]} latency: {r[4]}" for r in b.lat if not r[6]]
    best = min((r for r in b.lat if r[0].startswith("sqlite") and r[6] and r[5] < 5.0),
               key=lambda r: r[2], default=None)
    print("\nVERDICT: " + ("loss / exceptions / crashes -> " + "; ".join(bad) if bad
                           else "no message lost and no exception with any broker") + ". "
          + (f"Lowest sqlite p50 at idle CPU < 5% of a core: poll {best[1]} s (p50 {best[2]:.0f} ms, "
             f"p99 {best[3]:.0f} ms, idle CPU {best[5]:.1f}%)." if best else "No sqlite poll met idle CPU < 5%."))
    for p in b.problems:
        print("PROBLEM: " + p)


def main():
    tmp = tempfile.mkdtemp(prefix="embedded_brokers_")
    b = Bench(tmp)
    log = lambda s: print(f"[{time.monotonic() - b.t_start:5.1f}s] {s}", flush=True)
    log(f"run {b.run}, temp dir {tmp}")
    try:
        for kind in KINDS:
            for phase in (b.phase_producers, b.phase_backlog):
                log(f"{phase.__name__} {kind}")
                phase(kind)
            log(f"worker {kind}")
            b.worker_session(kind, SQLITE_PIS[0] if kind == "sqlite" else FS_PI, drain=True)
        for pi in SQLITE_PIS[1:]:
            if b.left() < 20:
                b.problems.append(f"sqlite poll {pi}: skipped (time budget)")
                continue
            log(f"worker sqlite poll {pi}")
            b.worker_session("sqlite", pi, drain=False)
        log("done")
        report(b)
    finally:
        for p in b.procs:
            if isinstance(p, subprocess.Popen) and not getattr(p, "stopped", False):
                kill_group(p)
            elif isinstance(p, mp.process.BaseProcess) and p.is_alive():
                p.kill()
        b.cleanup_redis()
        print(f"(worker logs and broker files kept in {tmp})")


if __name__ == "__main__":
    main()
