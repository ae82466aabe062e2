"""`python -m bench`: suprhook measured against baselines from the same run; prints a markdown table.

Everything runs on 127.0.0.1 under a temp dir, needs Redis on 127.0.0.1:6379 (db 13) for the Redis
figures, and stops by itself in about five minutes. Phases:
  ingest    POST /webhooks/suprsend (token auth + validation + normalization + dedup + enqueue + event-log
            stream, one Redis call) under gunicorn (2 gthread workers x 4 threads, keep-alive), load from
            `wrk -c 8` (or bench/loadgen.py when wrk is missing) in its own process, the seed's inbound reply
            with a unique text per request, 3 alternating rounds, medians. Baselines, in the same gunicorn
            configuration: the receiver users write themselves (bench/handwritten.py: token, marshmallow
            schema, Redis SET NX, apply_async) and a bare Flask endpoint that parses the JSON and answers 202.
  dispatch  the backlog ingest left on Redis drained by `celery -A celery_worker worker -c 2` into a no-op
            handler; baseline: as many bare Celery no-op tasks (bench/raw_celery_app.py), same broker and
            worker settings. Timed from worker_ready to the last completion.
  e2e       a fixed offered rate (200 events/s, open loop) through gunicorn + worker; latency from the
            moment the request is sent to handler start, on Redis and on the embedded default (SQLite
            broker); how late the generator itself sent (vs the schedule) is printed beside it.
  memory    peak RSS (VmHWM) of the busiest receiver and worker process in those runs.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import redis
import requests

from bench.loadgen import percentile
from bench.probe import completions, last_completion

REPO = Path(__file__).resolve().parent.parent
REDIS = "redis://127.0.0.1:6379/13"
TOKEN = "bench-token-" + uuid.uuid4().hex
SEED = REPO / "examples/payloads/whatsapp_inbound_reply.json"


def templates(tmp: Path) -> tuple[Path, Path]:
    """Body templates: the seed inbound reply with a unique supr_nid and text per request (and, for e2e, a due
    time); issue 13 measured the same."""
    body = json.loads(SEED.read_text())
    body["reference"]["supr_nid"] = "__NID__"
    body["suprsend_inbound_message"]["text"]["body"] = "reply __NID__"
    body["suprsend_inbound_message"]["timestamp"] = int(time.time() * 1000)  # sent now, as live traffic is
    plain = tmp / "body.json"
    plain.write_text(json.dumps(body))
    stamped = tmp / "body_sent.json"
    stamped.write_text(json.dumps({**body, "bench_sent": "__SENT__"}).replace('"__SENT__"', "__SENT__"))
    return plain, stamped


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Proc:
    """A subprocess in its own session, logged to a file, stopped with its whole group."""

    def __init__(self, cmd: list[str], env: dict[str, str], log: Path) -> None:
        self.log = log
        with open(log, "ab") as out:
            self.proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT,
                                         start_new_session=True)

    def check(self) -> None:
        if self.proc.poll() is not None:
            raise RuntimeError(f"{self.log.name} exited with {self.proc.returncode}:\n{self.log.read_text()[-3000:]}")

    def peak_rss_mb(self, children_only: bool = False) -> float:
        """The largest VmHWM among this process group's processes (pool/worker children only if asked)."""
        peaks = []
        for pid in _group(self.proc.pid):
            if children_only and pid == self.proc.pid:
                continue
            try:
                status = Path(f"/proc/{pid}/status").read_text()
            except OSError:
                continue
            peaks += [int(line.split()[1]) / 1024 for line in status.splitlines() if line.startswith("VmHWM:")]
        return max(peaks, default=float("nan"))

    def cpu_seconds(self) -> float:
        """CPU time (user + system) used so far by this process group's live processes."""
        total = 0
        for pid in _group(self.proc.pid):
            try:
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            total += int(fields[11]) + int(fields[12])
        return total / os.sysconf("SC_CLK_TCK")

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()


def _group(pgid: int) -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if os.getpgid(int(entry.name)) == pgid:
                    pids.append(int(entry.name))
            except OSError:
                pass
    return pids


def wait_for(predicate: Any, timeout: float, what: str, proc: Proc | None = None) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None:
            proc.check()
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise TimeoutError(f"{what} not within {timeout} s")


class Bench:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.tmp = Path(tempfile.mkdtemp(prefix="suprhook-bench-"))
        self.run_id = uuid.uuid4().hex[:8]
        self.plain, self.stamped = templates(self.tmp)
        self.procs: list[Proc] = []
        self.wrk = shutil.which("wrk") if not args.python_load else None
        self.rounds = 0

    def env(self, name: str, broker: str) -> dict[str, str]:
        data = self.tmp / name
        data.mkdir(exist_ok=True)
        env = {**os.environ, "PYTHONPATH": str(REPO), "SUPRHOOK_ENV": "production", "SUPRHOOK_AUTH_TOKENS": TOKEN,
               "SUPRHOOK_DATA_DIR": str(data), "SUPRHOOK_HANDLERS": "bench.noop_handlers", "BENCH_DIR": str(data),
               "SUPRHOOK_QUEUE": f"bench-{self.run_id}-{name}",
               "SUPRHOOK_METRICS_TOKEN": "bench-metrics-token",  # production refuses an open /metrics
               # one load generator is one source: a limit it never reaches, so the check still runs
               "SUPRHOOK_RATE_LIMIT": "1000000", "SUPRHOOK_RATE_LIMIT_BURST": "1000000"}
        for key in ("CELERY_BROKER_URL", "SUPRHOOK_DEDUP_URL", "SUPRHOOK_STORE_URL"):
            env.pop(key, None)
        if broker == "redis":
            env.update(CELERY_BROKER_URL=REDIS, SUPRHOOK_DEDUP_URL=REDIS)
            if self.args.store_url:
                env["SUPRHOOK_STORE_URL"] = self.args.store_url
        return env

    def start(self, cmd: list[str], env: dict[str, str], log: str) -> Proc:
        proc = Proc(cmd, env, self.tmp / log)
        self.procs.append(proc)
        return proc

    def gunicorn(self, app: str, env: dict[str, str], log: str) -> tuple[Proc, str]:
        port = free_port()
        metrics = self.tmp / f"metrics-{log}"
        # The production command from README "Production" (deploy/Procfile), for both sides.
        proc = self.start([sys.executable, "-m", "gunicorn", "-c", "python:suprhook.handlers.web.gunicorn_conf",
                           "-w", str(self.args.receivers), "-k", "gthread", "--threads", str(self.args.threads),
                           "--keep-alive", "30", "-b", f"127.0.0.1:{port}", "--log-level", "warning", app],
                          {**env, "PROMETHEUS_MULTIPROC_DIR": str(metrics)}, log)
        base = f"http://127.0.0.1:{port}"

        def up() -> bool:
            try:
                return requests.get(base + "/healthz", timeout=1).status_code == 200
            except requests.RequestException:
                return False

        wait_for(up, 60, f"gunicorn {app}", proc)
        return proc, base + "/webhooks/suprsend"

    def worker(self, app: str, env: dict[str, str], name: str) -> tuple[Proc, float]:
        proc = self.start([sys.executable, "-m", "celery", "-A", app, "worker", "-c", "2", "-Q",
                           env["SUPRHOOK_QUEUE"], "--without-gossip", "--without-mingle", "--without-heartbeat",
                           "--loglevel", "WARNING"], env, f"worker-{name}-{app}.log")
        ready = Path(env["BENCH_DIR"]) / f"ready.{'raw' if 'raw' in app else 'suprhook'}"
        wait_for(ready.exists, 90, f"worker {app}", proc)
        return proc, float(ready.read_text())

    def load(self, mode: str, url: str, seconds: float, auth: str, prefix: str,
             rate: float = 0.0) -> dict[str, float]:
        if mode == "closed" and self.wrk:
            cmd = [self.wrk, "-t", "1", "-c", str(self.args.connections), "-d", f"{max(1, round(seconds))}s", "-s",
                   str(REPO / "bench/ingest.lua"), url, "--", str(self.plain), auth, prefix]
        else:
            cmd = [sys.executable, "-m", "bench.loadgen", mode, "--url", url, "--auth", auth, "--prefix", prefix,
                   "--duration", str(seconds), "--rate", str(rate or self.args.rate),
                   "--connections", str(self.args.connections),
                   "--template", str(self.plain if mode == "closed" else self.stamped)]
        out = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=seconds + 120,
                             env={**os.environ, "PYTHONPATH": str(REPO)})
        line = next((x for x in out.stdout.splitlines() if x.startswith("BENCH ")), None)
        if line is None:
            raise RuntimeError(f"load generator failed: {out.stdout[-2000:]} {out.stderr[-2000:]}")
        result = json.loads(line[6:])
        result["rps"] = (result["requests"] - result["non2xx"]) / result["seconds"]  # answered 2xx only
        return result

    # -- phases ------------------------------------------------------------------------------------
    def ingest(self, app: str, name: str, env: dict[str, str]) -> tuple[dict[str, float], float]:
        auth = f"Bearer {TOKEN}"
        proc, url = self.gunicorn(app, env, f"gunicorn-{name}.log")
        self.load("closed", url, 1, auth, f"{self.run_id}-{name}-warm")  # imports, connections, first writes
        cpu = proc.cpu_seconds()
        self.rounds += 1  # a fresh prefix per round: a repeated body would be a cheap duplicate, not an event
        result = self.load("closed", url, self.args.seconds, auth, f"{self.run_id}-{name}-r{self.rounds}")
        result["cpu_ms"] = (proc.cpu_seconds() - cpu) * 1000 / max(1, result["requests"] - result["non2xx"])
        rss = proc.peak_rss_mb(children_only=True)
        proc.stop()
        return result, rss

    def drain(self, app: str, env: dict[str, str], count: int, name: str) -> tuple[float, float, float]:
        proc, ready = self.worker(app, env, name)
        data = Path(env["BENCH_DIR"])
        cpu = proc.cpu_seconds()
        wait_for(lambda: len(completions(data)) >= count, 600, f"{count} completions", proc)
        rate = count / (last_completion(data) - ready)
        cpu_ms = (proc.cpu_seconds() - cpu) * 1000 / count
        rss = proc.peak_rss_mb()
        proc.stop()
        return rate, rss, cpu_ms

    def e2e(self, broker: str, rate: float) -> dict[str, float]:
        name = f"{broker}-{rate:.0f}"
        env = self.env(f"e2e-{name}", broker)
        receiver, url = self.gunicorn("wsgi:app", env, f"gunicorn-e2e-{name}.log")
        worker, _ = self.worker("celery_worker", env, f"e2e-{name}")
        warm = self.load("open", url, 1, f"Bearer {TOKEN}", f"{self.run_id}-e2e-{name}-warm", rate)
        data = Path(env["BENCH_DIR"])
        warm_accepted = warm["requests"] - warm["non2xx"]
        wait_for(lambda: len(completions(data)) >= warm_accepted, 300, "warm-up", worker)
        for path in data.glob("done.*"):
            path.write_text("")
        load = self.load("open", url, self.args.e2e_seconds, f"Bearer {TOKEN}", f"{self.run_id}-e2e-{name}", rate)
        accepted = load["requests"] - load["non2xx"]
        wait_for(lambda: len(completions(data)) >= accepted, 300, f"{accepted} handler starts", worker)
        latencies = [float(x) * 1000 for x in completions(data) if x != "-"]
        result = {"offered": rate, "achieved": load["rps"], "non2xx": load["non2xx"],
                  "p50": percentile(latencies, 50), "p99": percentile(latencies, 99), "http_p50": load["p50_ms"],
                  "http_p99": load["p99_ms"], "late_p99": load["late_p99_ms"],
                  "receiver_rss": receiver.peak_rss_mb(children_only=True),
                  "worker_rss": worker.peak_rss_mb()}
        receiver.stop()
        worker.stop()
        return result

    def run(self) -> dict[str, Any]:
        r = redis.Redis.from_url(REDIS)
        r.ping()
        results: dict[str, Any] = {}
        try:
            only = self.args.only
            if only in (None, "ingest", "dispatch"):
                bare_env = self.env("bare", "redis")
                hand_env = self.env("handwritten", "redis")
                ours_env = self.env("ingest", "redis")
                bare, hand, ours = [], [], []
                for _ in range(self.args.repeat):  # alternating rounds: the machine's drift hits all three
                    if only != "dispatch":
                        bare.append(self.ingest("bench.bare_flask:app", "bare", bare_env))
                        hand.append(self.ingest("bench.handwritten:app", "handwritten", hand_env))
                    ours.append(self.ingest("wsgi:app", "ours", ours_env))
                results["ingest"] = {"bare": _median(bare) if bare else {},
                                     "handwritten": _median(hand) if hand else {}, "ours": _median(ours)}
            if only in (None, "dispatch"):
                queue = ours_env["SUPRHOOK_QUEUE"]
                count = r.llen(queue)
                results["dispatch_events"] = count
                ours_rate, ours_rss, ours_cpu = self.drain("celery_worker", ours_env, count, "ours")
                raw_env = {**self.env("raw", "redis"), "SUPRHOOK_QUEUE": queue}
                subprocess.run([sys.executable, "-c", "import sys; from bench.raw_celery_app import publish; "
                                "publish(int(sys.argv[1]), sys.argv[2], sys.argv[3])", str(count), str(self.plain),
                                f"{self.run_id}-raw"], cwd=REPO, env=raw_env, check=True)
                raw_rate, raw_rss, raw_cpu = self.drain("bench.raw_celery_app", raw_env, count, "raw")
                results["dispatch"] = {"ours": ours_rate, "raw": raw_rate, "ours_rss": ours_rss, "raw_rss": raw_rss,
                                       "ours_cpu": ours_cpu, "raw_cpu": raw_cpu}
            if only in (None, "e2e"):
                results["e2e_redis"] = self.e2e("redis", self.args.rate)
            if only in (None, "embedded"):
                results["e2e_embedded"] = self.e2e("embedded", self.args.rate)
                results["e2e_embedded_low"] = self.e2e("embedded", self.args.embedded_rate)
        finally:
            for proc in self.procs:
                proc.stop()
            for key in r.scan_iter(f"*bench-{self.run_id}*"):
                r.delete(key)
        return results



def _median(runs: list[tuple[dict[str, float], float]]) -> dict[str, float]:
    keys = runs[0][0].keys()
    merged = {k: statistics.median(r[0][k] for r in runs) for k in keys}
    merged["rss"] = statistics.median(r[1] for r in runs)
    return merged


def table(results: dict[str, Any], args: argparse.Namespace, loadgen: str) -> str:
    ing, dis = results["ingest"], results["dispatch"]
    ours, hand, bare = ing["ours"], ing["handwritten"], ing["bare"]
    rows = [
        ("ingest: requests/s answered 2xx, POST -> 202 (Redis), vs the hand-written receiver", f"{ours['rps']:.0f}",
         f"{hand['rps']:.0f}", f"{ours['rps'] / hand['rps']:.2f}x", "≥ 1.00x"),
        ("ingest: latency p99 ms, vs the hand-written receiver", f"{ours['p99_ms']:.1f}", f"{hand['p99_ms']:.1f}",
         f"{ours['p99_ms'] / hand['p99_ms']:.2f}x", "≤ 1.50x"),
        ("ingest: requests/s, vs a bare Flask endpoint (parse JSON, 202)", f"{ours['rps']:.0f}", f"{bare['rps']:.0f}",
         f"{ours['rps'] / bare['rps']:.2f}x", ""),
        ("ingest: non-2xx answers (ours / hand-written / bare)", f"{ours['non2xx']:.0f}",
         f"{hand['non2xx']:.0f} / {bare['non2xx']:.0f}", "", "must be 0"),
        ("ingest: CPU ms per request (receiver processes), vs hand-written", f"{ours['cpu_ms']:.2f}",
         f"{hand['cpu_ms']:.2f}", f"{hand['cpu_ms'] / ours['cpu_ms']:.2f}x", ""),
        ("ingest: latency p50 / p99 ms (bare Flask for scale)", f"{ours['p50_ms']:.1f} / {ours['p99_ms']:.1f}",
         f"{bare['p50_ms']:.1f} / {bare['p99_ms']:.1f}", "", ""),
        (f"dispatch: events/s, {results['dispatch_events']} queued -> no-op (Redis, -c 2)",
         f"{dis['ours']:.0f}", f"{dis['raw']:.0f}", f"{dis['ours'] / dis['raw']:.2f}x", "≥ 0.90x"),
        ("dispatch: CPU ms per event (worker + pool processes)", f"{dis['ours_cpu']:.2f}", f"{dis['raw_cpu']:.2f}",
         f"{dis['raw_cpu'] / dis['ours_cpu']:.2f}x", ""),
    ]
    for key, broker in (("e2e_redis", "Redis"), ("e2e_embedded", "embedded"), ("e2e_embedded_low", "embedded")):
        e = results[key]
        rows.append((f"end to end @ {e['offered']:.0f}/s offered ({broker}): POST sent -> handler start p50 / p99 ms",
                     f"{e['p50']:.1f} / {e['p99']:.1f}", "", "", "p99 ≤ 50 ms" if key == "e2e_redis" else ""))
        rows.append((f"  ... achieved /s, non-2xx, HTTP p50 / p99 ms, generator late p99 ms ({broker}, "
                     f"{e['offered']:.0f}/s)", f"{e['achieved']:.0f}, {e['non2xx']}, {e['http_p50']:.1f} / "
                     f"{e['http_p99']:.1f}, {e['late_p99']:.1f}", "", "", ""))
    rows += [
        ("memory: peak RSS of a receiver process MB (ingest), vs hand-written", f"{ours['rss']:.0f}",
         f"{hand['rss']:.0f}", f"{ours['rss'] / hand['rss']:.2f}x", ""),
        ("memory: peak RSS of a receiver process MB (e2e redis / embedded)",
         f"{results['e2e_redis']['receiver_rss']:.0f} / {results['e2e_embedded']['receiver_rss']:.0f}", "", "", ""),
        ("memory: peak RSS of a worker process MB (dispatch)", f"{dis['ours_rss']:.0f}", f"{dis['raw_rss']:.0f}",
         f"{dis['ours_rss'] / dis['raw_rss']:.2f}x", ""),
    ]
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.machine())
    head = (f"suprhook bench: {os.cpu_count()} cores ({cpu}), Python {platform.python_version()}, "
            f"gunicorn {args.receivers} gthread workers x {args.threads} threads, {args.connections} connections, "
            f"load: {loadgen}, {args.seconds:.0f} s per ingest run x {args.repeat}")
    lines = [head, "", "| figure | suprhook | baseline | ratio | target |", "|---|---:|---:|---:|---|"]
    lines += [f"| {' | '.join(row)} |" for row in rows]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=8.0, help="length of each ingest run (default 8)")
    parser.add_argument("--e2e-seconds", type=float, default=10.0, help="length of each end-to-end run")
    parser.add_argument("--rate", type=float, default=200.0, help="offered events/s end to end (default 200)")
    parser.add_argument("--embedded-rate", type=float, default=50.0,
                        help="a second end-to-end run on the embedded broker at this rate (default 50)")
    parser.add_argument("--connections", type=int, default=8, help="keep-alive connections (default 8)")
    parser.add_argument("--receivers", type=int, default=2, help="gunicorn worker processes (default 2)")
    parser.add_argument("--threads", type=int, default=4, help="threads per gunicorn worker (default 4)")
    parser.add_argument("--repeat", type=int, default=3, help="alternating ingest rounds per receiver; medians shown")
    parser.add_argument("--python-load", action="store_true", help="use bench/loadgen.py even if wrk exists")
    parser.add_argument("--store-url", help="event log for the Redis runs (default: SQLite under the temp dir), "
                        "e.g. postgresql+psycopg://postgres@127.0.0.1/suprhook_bench")
    parser.add_argument("--json", action="store_true", help="also print the raw results as JSON")
    parser.add_argument("--only", choices=("ingest", "dispatch", "e2e", "embedded"),
                        help="one phase only, printed as JSON (dispatch runs suprhook's ingest to fill its queue)")
    args = parser.parse_args()
    bench = Bench(args)
    started = time.monotonic()
    results = bench.run()
    loadgen = "wrk (1 thread)" if bench.wrk else "bench/loadgen.py (Python threads)"
    if args.only:
        print(json.dumps(results, indent=1))
        return
    print(table(results, args, loadgen))
    print(f"\n(run took {time.monotonic() - started:.0f} s; logs in {bench.tmp})")
    if args.json:
        print(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
