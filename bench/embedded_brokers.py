"""Benchmark of the two "embedded" (serverless) Celery brokers against Redis.

Candidates: A) kombu ``filesystem://`` and B) kombu ``sqla+sqlite://`` (WAL
mode, polling via ``kombu.transport.sqlalchemy.Transport.polling_interval``).
Baseline: Redis at redis://127.0.0.1:6379/15, measured in the same run, so
every timing figure is also printed as a ratio "x redis" (absolute numbers are
noisy on a shared 2-core box).  Measured per broker, each phase on a fresh
broker instance (own temp folder / sqlite file / unique Redis queue):

1. producers: 4 spawned processes x 500 ~1 KB JSON ``send_task`` calls, no
   consumer; msgs/s and whether every message is in the queue afterwards.
2. drain: a real ``celery worker --pool=prefork --concurrency=2`` drains a
   pre-filled backlog of 2,000; events/s from first to last completion.
3. latency: 100 messages 50 ms apart to the idle worker; p50/p99 of
   (completion - send time).  sqlite at polling 1.0/0.1/0.05/0.02 s,
   filesystem at 0.05 s.
4. idle CPU of the worker main process over 5 s (from /proc/<pid>/stat).
5. backlog: one producer publishes 5,000; time of msgs 4501..5000 / 1..500.
6. leftovers after the drain (sqlite keeps consumed rows with visible=0).
7. live: 2 producers x 500 while the worker consumes (the filesystem
   partial-read race, kombu #1551, shows up here if anywhere).

The tasks record completions in Redis (INCR / RPUSH under keys unique to the
run); all keys of the run are deleted at the end.  Every wait is bounded;
all subprocesses are killed in a ``finally``.

Run from the repo root:  .venv/bin/python bench/embedded_brokers.py
"""
import json, math, multiprocessing as mp, os, platform, queue as stdq
import signal, sqlite3, subprocess, sys, tempfile, time, uuid

import celery, kombu, redis, sqlalchemy
from celery import Celery

REDIS = "redis://127.0.0.1:6379/15"
PAD = "x" * 1000
N_PROD, PER_PROD, N_DRAIN, N_LAT, N_BACKLOG, N_LIVE = 4, 500, 2000, 100, 5000, 2
SQLITE_PIS = [1.0, 0.1, 0.05, 0.02]
FS_PI, BUDGET = 0.05, 165.0
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
    if not k:
        return
    if "sent" in p:
        R.rpush(k, now - p["sent"])
        return
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
    """Spawned producer process: publish n messages, report (ok, err, t0, t1)."""
    ok, err, t0 = 0, None, None
    try:
        app = make_app(f"{q}_p{os.getpid()}", url, topts)
        app.connection_for_write().ensure_connection(max_retries=3)
        barrier.wait(30)
        t0 = time.time()
        for i in range(n):
            if time.time() - t0 > 60:
                err = err or "TimeLimit: gave up after 60 s"
                break
            try:
                app.send_task("bench.noop", args=[{"k": key, "n": total, "i": i, "pad": PAD}], queue=q)
                ok += 1
            except Exception as e:  # report, keep going
                err = err or f"{type(e).__name__}: {e}"[:100]
    except Exception as e:
        err = err or f"{type(e).__name__}: {e}"[:100]
    out.put((ok, err, t0, time.time()))


class Bench:
    def __init__(self, tmp):
        self.tmp, self.run = tmp, "bench_" + uuid.uuid4().hex[:8]
        self.r = redis.Redis.from_url(REDIS)
        self.procs, self.t_start = [], time.monotonic()
        self.res = {k: {} for k in KINDS}      # kind -> metric -> value
        self.lat = []                          # latency/cpu rows
        self.problems = []
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
        """Messages still waiting in queue q (sqlite: optionally all rows)."""
        if kind == "redis":
            return self.r.llen(q)
        if kind == "filesystem":
            return sum(f.endswith(f".{q}.msg") for f in os.listdir(topts["data_folder_out"]))
        con = sqlite3.connect(url.split(":///", 1)[1], timeout=30)
        try:
            sql = ("SELECT COUNT(*) FROM kombu_message m JOIN kombu_queue q ON m.queue_id=q.id"
                   " WHERE q.name=?" + (" AND m.visible=1" if visible_only else ""))
            return con.execute(sql, (q,)).fetchone()[0]
        except sqlite3.Error as e:
            return f"{type(e).__name__}"
        finally:
            con.close()

    def produce(self, url, topts, q, nproc, per, key="", total=0):
        """nproc spawned producers; returns (ok, [errors], msgs/s)."""
        ctx = mp.get_context("spawn")
        barrier, out = ctx.Barrier(nproc), ctx.Queue()
        ps = [ctx.Process(target=_producer, args=(url, topts, q, per, key, total, barrier, out))
              for _ in range(nproc)]
        self.procs += ps
        for p in ps:
            p.start()
        res = []
        for _ in ps:
            try:
                res.append(out.get(timeout=100))
            except stdq.Empty:
                res.append((0, "Timeout: producer did not report", None, None))
        for p in ps:
            p.join(5)
            if p.is_alive():
                p.kill()
        ok = sum(r[0] for r in res)
        errs = [r[1] for r in res if r[1]]
        starts, ends = [r[2] for r in res if r[2]], [r[3] for r in res if r[2]]
        rate = ok / (max(ends) - min(starts)) if starts else 0.0
        return ok, errs, rate

    def start_worker(self, url, topts, q, tag, pi):
        env = dict(os.environ, PYTHONPATH=self.tmp, BENCH_BROKER=url, BENCH_TOPTS=json.dumps(topts),
                   BENCH_PI=str(pi), BENCH_APP=f"{self.run}_{tag}", BENCH_REDIS=REDIS)
        if "processed_folder" in topts:   # filesystem moves consumed files to $TMPDIR
            env["TMPDIR"] = topts["processed_folder"]
        log = open(os.path.join(self.tmp, f"worker_{tag}.log"), "wb")
        p = subprocess.Popen([sys.executable, "-m", "celery", "-A", self.mod, "worker",
                              "--pool=prefork", "--concurrency=2", "-Q", q, "-n", f"{tag}@%h",
                              "--without-gossip", "--without-mingle", "--without-heartbeat",
                              "-l", "WARNING"], cwd=self.tmp, env=env, stdout=log,
                             stderr=subprocess.STDOUT, start_new_session=True)
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
                return f"WORKER DIED rc={proc.returncode}"
            time.sleep(0.02)
        return "ok" if cond() else "TIMEOUT"

    def stop_worker(self, p, label):
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
            try:
                p.wait(15)
            except subprocess.TimeoutExpired:
                pass
        kill_group(p)
        p.stopped = True
        with open(p.logname, errors="replace") as f:
            lines = f.read().splitlines()
        bad = [ln for ln in lines if "Traceback" in ln or "ERROR" in ln or "CRITICAL" in ln]
        if bad:
            exc = [ln for ln in lines if ln[:1].isalpha() and ("Error" in ln or "Exception" in ln)]
            self.problems.append(f"{label}: {len(bad)} error lines in worker log, e.g. "
                                 f"{(exc or bad)[-1][:160]!r} (log: {p.logname})")
        return len(bad)

    def cpu_pct(self, pid, secs=5.0):
        def cpu():
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        time.sleep(0.5)
        c0, t0 = cpu(), time.monotonic()
        time.sleep(secs)
        return 100.0 * (cpu() - c0) / (time.monotonic() - t0)

    def latency(self, app, q, p, tag, pi):
        key = f"{self.run}:{tag}:lat"
        t0 = time.monotonic()
        for i in range(N_LAT):
            app.send_task("bench.noop", args=[{"k": key, "sent": time.time(), "pad": PAD}], queue=q)
            time.sleep(max(0.0, t0 + (i + 1) * 0.05 - time.monotonic()))
        st = self.wait_for(lambda: self.r.llen(key) >= N_LAT, 5 + 3 * pi, p)
        v = sorted(1000 * float(x) for x in self.r.lrange(key, 0, -1))
        pct = lambda qq: v[min(len(v) - 1, math.ceil(qq * len(v)) - 1)] if v else float("nan")
        return pct(0.5), pct(0.99), len(v), st

    def worker_session(self, kind, pi, drain):
        """One worker: [drain backlog] -> idle CPU -> latency -> [live produce+consume]."""
        tag = f"{kind}{'_pi' + str(pi) if kind == 'sqlite' else ''}"
        url, topts, q = self.broker(kind, "work" if drain else tag)
        app, res = make_app(f"{self.run}_{tag}_client", url, topts), self.res[kind]
        key = f"{self.run}:{tag}:drain" if drain else f"{self.run}:{tag}:ping"
        n = N_DRAIN if drain else 1
        for _ in range(n):
            app.send_task("bench.noop", args=[{"k": key, "n": n, "pad": PAD}], queue=q)
        p = self.start_worker(url, topts, q, tag, pi)
        try:
            cnt = lambda k: int(self.r.get(k) or 0)
            st = self.wait_for(lambda: cnt(key) >= n, 75 if drain else 45, p)
            if drain:
                t0, t1 = (float(self.r.get(key + s) or 0) for s in (":t0", ":t1"))
                done = cnt(key)
                res["drain_rate"] = (done - 1) / (t1 - t0) if t1 > t0 else 0.0
                res["drain_ok"] = f"{done}/{N_DRAIN}" + ("" if st == "ok" else f" {st}") + \
                    (f" LOST {N_DRAIN - done}" if done < N_DRAIN else "")
                res["left"] = (f"{self.count(kind, url, topts, q, False)} rows "
                               f"({self.count(kind, url, topts, q)} visible)" if kind == "sqlite"
                               else f"{self.count(kind, url, topts, q)} msgs")
            if p.poll() is not None or (st != "ok" and not drain):
                self.lat.append((tag, pi, None, None, 0, None, st))
                return
            cpu = self.cpu_pct(p.pid)
            p50, p99, got, lst = self.latency(app, q, p, tag, pi)
            self.lat.append((tag, pi, p50, p99, got, cpu, lst))
            if drain and p.poll() is None and self.left() > 25:
                lkey = f"{self.run}:{tag}:live"
                ok, errs, _ = self.produce(url, topts, q, N_LIVE, 500, lkey, N_LIVE * 500)
                st = self.wait_for(lambda: cnt(lkey) >= ok, 30, p)
                got = cnt(lkey)
                res["live"] = f"{got}/{N_LIVE * 500}" + ("" if st == "ok" else f" {st}") + \
                    (f" LOST {N_LIVE * 500 - got}" if got < N_LIVE * 500 else "") + \
                    (f" EXC {errs[0]}" if errs else "")
        finally:
            res.setdefault("log_errors", 0)
            res["log_errors"] += self.stop_worker(p, tag)
            app.close()

    def phase_producers(self, kind):
        url, topts, q = self.broker(kind, "prod")
        ok, errs, rate = self.produce(url, topts, q, N_PROD, PER_PROD)
        arrived, want = self.count(kind, url, topts, q), N_PROD * PER_PROD
        self.res[kind]["prod_rate"] = rate
        lost = want - arrived if isinstance(arrived, int) else want
        self.res[kind]["prod_ok"] = f"{arrived}/{want}" + (f" LOST {lost}" if lost else "") + \
            (f" EXC x{len(errs)} {errs[0]}" if errs else "")

    def phase_backlog(self, kind):
        url, topts, q = self.broker(kind, "backlog")
        app, early, late, err = make_app(f"{self.run}_{kind}_bl", url, topts), 0.0, 0.0, None
        app.send_task("bench.noop", args=[{"pad": PAD}], queue=q + "_warm")  # warm connection
        t_end = time.monotonic() + 40
        for i in range(N_BACKLOG):
            t = time.perf_counter()
            try:
                app.send_task("bench.noop", args=[{"i": i, "pad": PAD}], queue=q)
            except Exception as e:
                err = f"{type(e).__name__}: {e}"[:80]
                break
            dt = time.perf_counter() - t
            early += dt if i < 500 else 0.0
            late += dt if i >= N_BACKLOG - 500 else 0.0
            if time.monotonic() > t_end:
                err = f"TimeLimit at {i + 1} msgs"
                break
        app.close()
        self.res[kind]["backlog"] = (f"{late / early:.2f} ({early * 2:.2f} -> {late * 2:.2f} ms/msg)"
                                     if late else f"n/a ({err})") + (f" {err}" if err and late else "")

    def cleanup_redis(self):
        for k in self.r.scan_iter(f"*{self.run}*", count=1000):
            self.r.delete(k)
        for tag, v in self.r.hscan_iter("unacked"):
            if self.run.encode() in v:
                self.r.hdel("unacked", tag)
                self.r.zrem("unacked_index", tag)


def kill_group(p):
    """Kill the process group of a worker we started (its prefork children)."""
    try:
        os.killpg(p.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    try:
        p.wait(5)
    except subprocess.TimeoutExpired:
        pass


def report(b):
    R = b.res
    rd = R["redis"]
    def ratio(v, base):
        return f" ({v / base:.2f}x redis)" if v and base else ""
    print(f"\nMachine: nproc={os.cpu_count()}, {platform.platform()}, python {platform.python_version()}, "
          f"celery {celery.__version__}, kombu {kombu.__version__}, SQLAlchemy {sqlalchemy.__version__}, "
          f"redis-server {b.r.info().get('redis_version')}, sqlite {sqlite3.sqlite_version}\n")
    rows = [("Producers 4x500, msgs/s", lambda k: f"{R[k].get('prod_rate', 0):,.0f}" + ratio(R[k].get('prod_rate'), rd.get('prod_rate'))),
            ("Producers: arrived in queue", lambda k: R[k].get("prod_ok", "-")),
            ("Drain 2000, prefork c=2, events/s", lambda k: f"{R[k].get('drain_rate', 0):,.0f}" + ratio(R[k].get('drain_rate'), rd.get('drain_rate'))),
            ("Drain: completed", lambda k: R[k].get("drain_ok", "-")),
            ("Left after drain", lambda k: R[k].get("left", "-")),
            ("Live 2x500 produce+consume", lambda k: R[k].get("live", "-")),
            ("Backlog publish late/early (500 of 5000)", lambda k: R[k].get("backlog", "-")),
            ("Error lines in worker logs", lambda k: str(R[k].get("log_errors", "-")))]
    print("| metric | redis (baseline) | filesystem | sqlite WAL (poll 1.0) |\n|---|---|---|---|")
    for name, f in rows:
        print(f"| {name} | " + " | ".join(f(k) for k in KINDS) + " |")
    base = next((r for r in b.lat if r[0] == "redis"), None)
    print("\n| worker (poll s) | latency p50 ms | p99 ms | p50 / p99 x redis | received | idle CPU main proc, % of a core |\n|---|---|---|---|---|---|")
    for tag, pi, p50, p99, got, cpu, st in b.lat:
        rr = (f"{p50 / base[2]:.1f}x / {p99 / base[3]:.1f}x" if base and base[2] and p50 is not None
              and tag != "redis" else "1.0x / 1.0x" if tag == "redis" else "-")
        f = lambda v, fmt: "-" if v is None else format(v, fmt)
        pol = "event loop" if tag == "redis" else pi
        print(f"| {tag.split('_')[0]} ({pol}) | {f(p50, '.1f')} | {f(p99, '.1f')} | {rr} | "
              f"{got}/{N_LAT}{'' if st == 'ok' else ' ' + st} | {f(cpu, '.1f')} |")
    bad = [k for k in KINDS if any(s in " ".join(str(R[k].get(m, "")) for m in
           ("prod_ok", "drain_ok", "live")) for s in ("LOST", "EXC", "DIED", "TIMEOUT"))]
    bad += [r[0] for r in b.lat if r[6] != "ok" or r[4] < N_LAT]
    ok_sql = [r for r in b.lat if r[0].startswith("sqlite") and r[2] is not None and r[5] is not None]
    best = min((r for r in ok_sql if r[5] < 5.0), key=lambda r: r[2], default=None)
    print("\nVERDICT: " + (f"message loss / errors / crashes seen in: {', '.join(sorted(set(bad)))}; "
                           if bad else "no message lost and no exception in any broker; ")
          + (f"lowest sqlite p50 with idle CPU < 5% of a core: poll {best[1]} s "
             f"(p50 {best[2]:.0f} ms, idle CPU {best[5]:.1f}%)." if best else "no sqlite setting met idle CPU < 5%."))
    for p in b.problems:
        print("PROBLEM: " + p)


def main():
    tmp = tempfile.mkdtemp(prefix="embedded_brokers_")
    b = Bench(tmp)
    print(f"run {b.run}, temp dir {tmp}", flush=True)
    try:
        for kind in KINDS:
            for phase in (b.phase_producers, b.phase_backlog):
                print(f"[{time.monotonic() - b.t_start:5.1f}s] {phase.__name__} {kind}", flush=True)
                phase(kind)
            print(f"[{time.monotonic() - b.t_start:5.1f}s] worker {kind}", flush=True)
            b.worker_session(kind, 1.0 if kind == "sqlite" else FS_PI, drain=True)
        for pi in SQLITE_PIS[1:]:
            if b.left() < 20:
                b.problems.append(f"sqlite poll {pi}: skipped (time budget)")
                continue
            print(f"[{time.monotonic() - b.t_start:5.1f}s] worker sqlite poll {pi}", flush=True)
            b.worker_session("sqlite", pi, drain=False)
        print(f"[{time.monotonic() - b.t_start:5.1f}s] done", flush=True)
        report(b)
    finally:
        for p in b.procs:
            if isinstance(p, subprocess.Popen):
                if not getattr(p, "stopped", False):
                    kill_group(p)
            elif p.is_alive():
                p.kill()
        b.cleanup_redis()
        print(f"(worker logs and broker files kept in {tmp})")


if __name__ == "__main__":
    main()
