"""A load generator in its own process, keep-alive HTTP/1.1 (`python -m bench.loadgen ...`).

closed  C connections post back to back for D seconds (the fallback for `wrk` when it is not installed)
open    a fixed offered rate: request i is due at t0 + i/rate and sent by whichever thread is free, so a
        slow response never delays the next send (no coordinated omission); the body carries `bench_sent`,
        the wall time just before it is sent; `late_p99_ms` says how late the generator itself was
Prints one line `BENCH {json}` with requests, seconds, non2xx, errors, p50_ms, p99_ms (response time from
the due time), late_p99_ms.
"""
from __future__ import annotations

import argparse
import http.client
import json
import threading
import time
from urllib.parse import urlsplit


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q / 100 * (len(ordered) - 1))))]


class Client:
    def __init__(self, url: str, auth: str) -> None:
        parts = urlsplit(url)
        self.host, self.port, self.path = parts.hostname, parts.port, parts.path
        self.headers = {"Content-Type": "application/json", **({"Authorization": auth} if auth else {})}
        self.conn = http.client.HTTPConnection(self.host, self.port, timeout=30)

    def post(self, body: bytes) -> int:
        for attempt in (0, 1):
            try:
                self.conn.request("POST", self.path, body, self.headers)
                response = self.conn.getresponse()
                response.read()
                return response.status
            except (http.client.HTTPException, OSError):
                self.conn.close()
                self.conn = http.client.HTTPConnection(self.host, self.port, timeout=30)
                if attempt:
                    raise
        return 0


def run(args: argparse.Namespace) -> dict[str, float]:
    template = open(args.template).read()
    latencies: list[float] = []
    lateness: list[float] = []
    counts = {"requests": 0, "non2xx": 0, "errors": 0}
    lock = threading.Lock()
    next_index = iter(range(10**9))
    started = time.monotonic()
    deadline = started + args.duration

    def worker() -> None:
        client = Client(args.url, args.auth)
        while True:
            with lock:
                i = next(next_index)
            if args.mode == "open":
                due = started + i / args.rate
                if due >= deadline:
                    return
                delay = due - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                late = time.monotonic() - due
                sent = time.time()
            else:
                due = time.monotonic()
                if due >= deadline:
                    return
                late, sent = 0.0, time.time()
            body = template.replace("__NID__", f"{args.prefix}-{i}").replace("__SENT__", repr(sent)).encode()
            try:
                status = client.post(body)
            except Exception:
                with lock:
                    counts["errors"] += 1
                continue
            elapsed = time.monotonic() - due
            with lock:
                counts["requests"] += 1
                counts["non2xx"] += not 200 <= status < 300
                latencies.append(elapsed * 1000)
                lateness.append(late * 1000)

    threads = [threading.Thread(target=worker) for _ in range(args.connections)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    seconds = time.monotonic() - started
    return {**counts, "seconds": seconds, "p50_ms": percentile(latencies, 50), "p99_ms": percentile(latencies, 99),
            "late_p99_ms": percentile(lateness, 99)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mode", choices=("closed", "open"))
    parser.add_argument("--url", required=True)
    parser.add_argument("--template", required=True, help="body file with __NID__ (and __SENT__ for open)")
    parser.add_argument("--auth", default="")
    parser.add_argument("--prefix", default="bench")
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--connections", type=int, default=16, help="threads, each with a keep-alive connection")
    parser.add_argument("--rate", type=float, default=200.0)
    print("BENCH " + json.dumps(run(parser.parse_args())), flush=True)


if __name__ == "__main__":
    main()
