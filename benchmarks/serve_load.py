"""Load test of the forecasting service on loopback: latency percentiles and throughput.

Fits the default ``rnn`` on the built-in ``synthetic`` dataset (about 10 s on a free machine;
``--model-dir`` reuses a folder instead), starts ``python -m seqcast serve`` on a free
127.0.0.1 port, and runs ``--clients`` concurrent clients, each on its own keep-alive
connection, sending 1-step forecasts from the last ``context_length`` steps of the series,
until ``--requests`` are answered or ``--seconds`` have passed. Prints p50, p90, p99 and the
maximum latency, the throughput and the error count, then stops the server with SIGTERM.
Exits 1 when there are errors or p99 is above ``--p99-target-ms``.

``--expensive N`` adds N hostile clients that ask, without pause, for forecasts of
``--expensive-horizon`` steps (1,000: rolled out one pass per step past the trained horizon)
and retry after the ``Retry-After`` they are told (at once with ``--flood``); and one more
client that asks ``/health`` every 50 ms. The 1-step clients' latencies are then those of cheap
requests while expensive ones are in flight; the expensive answers are counted by status (200,
or 503 beyond ``--max-rollouts``).
``--serve-arg`` passes options to ``seqcast serve`` (e.g. ``--serve-arg=--max-rollouts=8``).

    .venv/bin/python benchmarks/serve_load.py [--model-dir DIR] [--clients 4]
        [--requests 2000] [--seconds 60] [--expensive 45]
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from signal import SIGTERM

import httpx
import numpy as np

from seqcast.data import load_dataset

HOST = "127.0.0.1"
#: Requests each client sends before measuring: connections, thread pool, allocator.
WARMUP_PER_CLIENT = 20
#: Distinct histories cycled through, so that no two consecutive requests are identical.
N_HISTORIES = 64


@dataclass
class Tally:
    """What the clients measured; ``ticket`` hands out the request budget."""

    latencies: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    statuses: dict[int, int] = field(default_factory=dict)
    issued: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def ticket(self, limit: int) -> bool:
        with self.lock:
            if self.issued >= limit:
                return False
            self.issued += 1
            return True


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def fit_default_rnn(folder: Path) -> None:
    started = time.perf_counter()
    command = [sys.executable, "-m", "seqcast", "fit", "synthetic", "--model", "rnn"]
    subprocess.run([*command, "--out", str(folder), "--quiet"], check=True, timeout=1800)
    print(f"fitted the default rnn on synthetic in {time.perf_counter() - started:.1f} s")


def start_server(
    model_dir: Path, port: int, access_log: bool, extra: list[str]
) -> subprocess.Popen[bytes]:
    command = [sys.executable, "-m", "seqcast", "serve", str(model_dir), "--host", HOST]
    command += ["--port", str(port)] + ([] if access_log else ["--no-access-log"]) + extra
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"the server exited with {process.returncode}")
        try:
            if httpx.get(f"http://{HOST}:{port}/health", timeout=2).status_code == 200:
                return process
        except httpx.TransportError:
            time.sleep(0.1)
    process.kill()
    raise SystemExit("the server did not start within 120 s")


def request_bodies(context_length: int, horizon: int = 1) -> list[bytes]:
    """JSON bodies of ``horizon``-step forecasts from ``N_HISTORIES`` different recent
    windows."""
    values = load_dataset("synthetic").series[0].values[:, 0]
    ends = np.linspace(len(values) - N_HISTORIES * 5, len(values), N_HISTORIES).astype(int)
    return [
        json.dumps(
            {"history": values[end - context_length : end].tolist(), "horizon": horizon}
        ).encode()
        for end in ends
    ]


def client(url: str, bodies: list[bytes], tally: Tally, limit: int, deadline: float) -> None:
    headers = {"content-type": "application/json"}
    with httpx.Client(timeout=30) as http:
        for body in bodies[:WARMUP_PER_CLIENT]:
            http.post(url, content=body, headers=headers)
        i = 0
        while time.monotonic() < deadline and tally.ticket(limit):
            body = bodies[i % len(bodies)]
            i += 1
            started = time.perf_counter()
            try:
                response = http.post(url, content=body, headers=headers)
                ok = response.status_code == 200
                problem = f"{response.status_code}: {response.text[:200]}"
            except httpx.HTTPError as exc:
                ok, problem = False, f"{type(exc).__name__}: {exc}"
            elapsed = time.perf_counter() - started
            with tally.lock:
                if ok:
                    tally.latencies.append(elapsed)
                else:
                    tally.errors.append(problem)


def hostile(
    url: str, bodies: list[bytes], tally: Tally, stop: threading.Event, flood: bool
) -> None:
    """Expensive forecasts without pause; a refusal is retried after its ``Retry-After``, or
    at once when ``flood``."""
    headers = {"content-type": "application/json"}
    with httpx.Client(timeout=120) as http:
        i = 0
        while not stop.is_set():
            started = time.perf_counter()
            try:
                response = http.post(url, content=bodies[i % len(bodies)], headers=headers)
                code = response.status_code
            except httpx.HTTPError:
                code = 0
            i += 1
            with tally.lock:
                tally.statuses[code] = tally.statuses.get(code, 0) + 1
                if code == 200:
                    tally.latencies.append(time.perf_counter() - started)
            if code == 503 and not flood:
                stop.wait(float(response.headers.get("retry-after", 1)))


def prober(url: str, tally: Tally, stop: threading.Event) -> None:
    """``GET /health`` every 50 ms."""
    with httpx.Client(timeout=30) as http:
        while not stop.wait(0.05):
            started = time.perf_counter()
            ok = http.get(url).status_code == 200
            with tally.lock:
                (tally.latencies if ok else tally.errors).append(time.perf_counter() - started)


def percentiles(seconds: list[float]) -> str:
    if not seconds:
        return "none answered"
    ms = np.asarray(seconds) * 1000
    p50, p99 = np.percentile(ms, [50, 99])
    return f"p50 {p50:.1f} ms, p99 {p99:.1f} ms, max {ms.max():.1f} ms"


def run(args: argparse.Namespace, model_dir: Path) -> bool:
    port = free_port()
    server = start_server(model_dir, port, args.access_log, args.serve_arg)
    try:
        base = f"http://{HOST}:{port}"
        info = httpx.get(f"{base}/models", timeout=10).json()["models"][0]
        url = f"{base}/models/{info['name']}/forecast"
        bodies = request_bodies(info["context_length"])
        tally, expensive, health = Tally(), Tally(), Tally()
        stop = threading.Event()
        noise = [
            threading.Thread(target=hostile, args=(url, costly, expensive, stop, args.flood))
            for costly in [request_bodies(info["context_length"], args.expensive_horizon)]
            for _ in range(args.expensive)
        ]
        if args.expensive:
            noise.append(threading.Thread(target=prober, args=(f"{base}/health", health, stop)))
        for thread in noise:
            thread.start()
        time.sleep(2.0 if args.expensive else 0.0)  # the expensive ones fill their slots
        deadline = time.monotonic() + args.seconds
        threads = [
            threading.Thread(target=client, args=(url, bodies, tally, args.requests, deadline))
            for _ in range(args.clients)
        ]
        started = time.perf_counter()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=args.seconds + 60)
        wall = time.perf_counter() - started
        stop.set()
        for thread in noise:
            thread.join(timeout=180)
    finally:
        server.send_signal(SIGTERM)
        try:
            _, log = server.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            _, log = server.communicate()
    answered = len(tally.latencies)
    ms = np.asarray(tally.latencies) * 1000
    p50, p90, p99 = np.percentile(ms, [50, 90, 99]) if answered else (np.nan,) * 3
    met = answered > 0 and not tally.errors and p99 <= args.p99_target_ms
    print(
        f"serve_load: {info['model']} '{info['name']}' (history {info['context_length']} steps, "
        f"horizon 1), {args.clients} clients on {HOST}, cpus {os.cpu_count()}"
    )
    print(f"requests: {answered} answered, {len(tally.errors)} errors, in {wall:.2f} s")
    if answered:
        print(
            f"latency ms: p50 {p50:.2f}  p90 {p90:.2f}  p99 {p99:.2f}  max {ms.max():.2f}  "
            f"mean {ms.mean():.2f}"
        )
    print(f"throughput: {answered / wall:.0f} requests/s")
    if args.expensive:
        counts = ", ".join(f"{n} × {code}" for code, n in sorted(expensive.statuses.items()))
        print(
            f"while {args.expensive} clients asked for horizon {args.expensive_horizon} "
            f"{'ignoring' if args.flood else 'honouring'} Retry-After: their answers {counts}; "
            f"answered in {percentiles(expensive.latencies)}"
        )
        print(
            f"/health every 50 ms: {len(health.latencies)} answered, {len(health.errors)} "
            f"failed, {percentiles(health.latencies)}"
        )
    print(f"server exit code after SIGTERM: {server.returncode}")
    for problem in tally.errors[:5]:
        print(f"error: {problem}")
    if server.returncode != 0:
        print(log.decode(errors="replace")[-2000:], file=sys.stderr)
    print(f"p99 target {args.p99_target_ms:g} ms: {'met' if met else 'NOT met'}")
    return met and server.returncode == 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model-dir", type=Path, help="a model folder (default: fit one)")
    parser.add_argument("--clients", type=int, default=4, help="concurrent clients")
    parser.add_argument("--requests", type=int, default=2000, help="requests in all (at most)")
    parser.add_argument("--seconds", type=float, default=60.0, help="time limit (at most)")
    parser.add_argument("--p99-target-ms", type=float, default=50.0, help="p99 to meet")
    parser.add_argument("--access-log", action="store_true", help="log every request")
    parser.add_argument("--expensive", type=int, default=0, help="hostile expensive clients")
    parser.add_argument("--expensive-horizon", type=int, default=1000, help="their horizon")
    parser.add_argument("--flood", action="store_true", help="they ignore Retry-After")
    parser.add_argument(
        "--serve-arg", action="append", default=[], help="an option for seqcast serve"
    )
    args = parser.parse_args()
    if args.model_dir is not None:
        ok = run(args, args.model_dir)
    else:
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp) / "rnn"
            fit_default_rnn(folder)
            ok = run(args, folder)
    raise SystemExit(0 if ok else 1)


if __name__ == "__main__":
    main()
