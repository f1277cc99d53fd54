"""Load benchmark of ``POST /recommendations`` against a real uvicorn server on 127.0.0.1.

    python benchmarks/api_load.py                          # the shipped KB (a fresh copy)
    python benchmarks/api_load.py --kb /path/to/kb.duckdb  # a copy of an existing KB
    python benchmarks/api_load.py --synthetic-runs 1000000 # a synthetic KB (benchmarks/kb_synthetic.py)
    python benchmarks/api_load.py --synthetic-runs 30000 --synthetic-datasets 264 --synthetic-configs 600

The server runs as a subprocess (``uvicorn --factory metalearn.service.app:create_app``, 1 worker). Queries are the
meta-feature vectors of KB datasets, each perturbed (every value scaled by a random factor in
[0.8, 1.25]) so no two requests are the same. ``--clients`` concurrent keep-alive clients (asyncio,
raw HTTP/1.1 so the load generator stays cheap) run two bounded phases:

1. **closed loop** (``--duration`` s): every client sends its next request as soon as the previous
   answer arrives — the maximum throughput, and the latency at saturation;
2. **open loop** at ``--rate`` requests/s in total (``--duration`` s): requests are sent on a fixed
   schedule spread over the clients and latency is measured from the *scheduled* send time, so a
   slow server cannot hide its queueing delay (no coordinated omission).

Prints throughput, p50/p90/p99/max latency and the error count of each phase, and ``--json`` writes
them to a file. Traffic goes to 127.0.0.1 only and every loop is bounded in time.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]


# ----------------------------------------------------------------------------------------- server
def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _get_json(url: str, timeout: float = 30.0) -> Any:
    with urllib.request.urlopen(url, timeout=timeout) as resp:
        return json.loads(resp.read())


def _post_json(url: str, body: bytes, timeout: float = 30.0) -> Any:
    req = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"}, method="POST")
    with urllib.request.urlopen(req, timeout=timeout) as resp:
        return json.loads(resp.read())


def start_server(
    kb_path: Path, port: int, env_extra: dict[str, str], workers: int = 1
) -> subprocess.Popen[bytes]:
    """uvicorn on 127.0.0.1:``port``; ``workers`` > 1 share the KB read-only (as ``metalearn serve``)."""
    env = dict(os.environ)
    env.update(
        {
            "METALEARN_KB": str(kb_path),
            "METALEARN_ADVISOR_REFRESH_SECONDS": "0",
            "PYTHONPATH": str(REPO) + os.pathsep + env.get("PYTHONPATH", ""),
        }
    )
    env.update(env_extra)
    if workers > 1:
        env["METALEARN_KB_READ_ONLY"] = "1"
    cmd = [
        sys.executable, "-m", "uvicorn", "--factory", "metalearn.service.app:create_app",
        "--host", "127.0.0.1", "--port", str(port), "--workers", str(workers),
        "--log-level", "warning", "--no-access-log",
    ]  # fmt: skip
    proc = subprocess.Popen(cmd, env=env, cwd=str(REPO))
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the server exited with code {proc.returncode} before it was ready")
        try:
            if _get_json(f"http://127.0.0.1:{port}/health", timeout=2)["status"] == "ok":
                return proc
        except OSError:
            time.sleep(0.2)
    proc.kill()
    raise RuntimeError("the server did not become ready in 600 s")


def stop_server(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


# ---------------------------------------------------------------------------------------- queries
def make_queries(base: str, n: int, seed: int, strategy: str | None, k: int) -> list[bytes]:
    """Request bodies: perturbed meta-feature vectors of KB datasets (with their kinds)."""
    rng = np.random.default_rng(seed)
    vectors: list[tuple[str, dict[str, float | None]]] = []
    offset = 0
    while len(vectors) < 200:
        page = _get_json(f"{base}/datasets?limit=200&offset={offset}")
        for d in page["items"]:
            mf = _get_json(f"{base}/datasets/{d['dataset_id']}")["metafeatures"]
            if mf:
                vectors.append((d["kind"], mf))
        if page["next_offset"] is None:
            break
        offset = page["next_offset"]
    if not vectors:
        raise RuntimeError(
            "the KB has no meta-feature vectors of the server's extractor version to query with"
        )
    bodies = []
    for i in range(n):
        kind, mf = vectors[i % len(vectors)]
        noisy = {
            name: (None if v is None else float(v) * float(np.exp(rng.uniform(np.log(0.8), np.log(1.25)))))
            for name, v in mf.items()
        }
        body: dict[str, Any] = {"metafeatures": noisy, "kind": kind, "k": k}
        if strategy:
            body["strategy"] = strategy
        bodies.append(json.dumps(body).encode())
    return bodies


# ----------------------------------------------------------------------------------------- client
class RawClient:
    """A minimal keep-alive HTTP/1.1 client (the load generator must cost less than the server)."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def connect(self) -> None:
        self.reader, self.writer = await asyncio.open_connection(self.host, self.port)

    async def post(self, path: str, body: bytes, headers: dict[str, str] | None = None) -> int:
        if self.writer is None or self.reader is None:
            await self.connect()
        assert self.writer is not None and self.reader is not None
        head = (
            f"POST {path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\nContent-Type: application/json\r\n"
            + "".join(f"{k}: {v}\r\n" for k, v in (headers or {}).items())
            + f"Content-Length: {len(body)}\r\n\r\n"
        ).encode()
        self.writer.write(head + body)
        await self.writer.drain()
        status_line = await self.reader.readline()
        if not status_line:
            raise ConnectionError("the server closed the connection")
        status = int(status_line.split()[1])
        length = 0
        close = False
        while True:
            line = await self.reader.readline()
            if line in (b"\r\n", b"\n", b""):
                break
            name, _, value = line.decode("latin-1").partition(":")
            lname = name.strip().lower()
            if lname == "content-length":
                length = int(value.strip())
            elif lname == "connection" and value.strip().lower() == "close":
                close = True
        if length:
            await self.reader.readexactly(length)
        if close:
            await self.close()
        return status

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            with contextlib.suppress(OSError):
                await self.writer.wait_closed()
        self.reader = self.writer = None


@dataclass
class PhaseResult:
    name: str
    seconds: float
    requests: int
    errors: int
    throughput: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    status_counts: dict[str, int] = field(default_factory=dict)

    def line(self) -> str:
        return (
            f"{self.name:<28} {self.requests:>7} req in {self.seconds:5.1f} s = {self.throughput:7.1f} req/s   "
            f"p50 {self.p50_ms:7.2f} ms  p90 {self.p90_ms:7.2f} ms  p99 {self.p99_ms:7.2f} ms  "
            f"max {self.max_ms:7.1f} ms  errors {self.errors}"
        )


def _summarise(name: str, latencies: list[float], statuses: list[int], seconds: float) -> PhaseResult:
    lat = np.asarray(latencies) * 1000.0 if latencies else np.asarray([np.nan])
    counts: dict[str, int] = {}
    for s in statuses:
        counts[str(s)] = counts.get(str(s), 0) + 1
    return PhaseResult(
        name=name,
        seconds=seconds,
        requests=len(statuses),
        errors=sum(1 for s in statuses if s != 200),
        throughput=len(statuses) / seconds if seconds > 0 else 0.0,
        p50_ms=float(np.percentile(lat, 50)),
        p90_ms=float(np.percentile(lat, 90)),
        p99_ms=float(np.percentile(lat, 99)),
        max_ms=float(np.max(lat)),
        status_counts=counts,
    )


async def closed_loop(
    port: int, bodies: list[bytes], clients: int, duration: float, path: str = "/recommendations",
    headers: dict[str, str] | None = None,
) -> PhaseResult:
    latencies: list[float] = []
    statuses: list[int] = []
    stop_at = time.perf_counter() + duration

    async def worker(i: int) -> None:
        client = RawClient("127.0.0.1", port)
        j = i
        try:
            while time.perf_counter() < stop_at:
                body = bodies[j % len(bodies)]
                j += clients
                t0 = time.perf_counter()
                try:
                    status = await client.post(path, body, headers)
                except (ConnectionError, OSError, asyncio.IncompleteReadError):
                    status = 599
                    await client.close()
                latencies.append(time.perf_counter() - t0)
                statuses.append(status)
        finally:
            await client.close()

    t_start = time.perf_counter()
    await asyncio.gather(*(worker(i) for i in range(clients)))
    return _summarise(f"closed loop, {clients} clients", latencies, statuses, time.perf_counter() - t_start)


async def open_loop(
    port: int, bodies: list[bytes], clients: int, duration: float, rate: float, path: str = "/recommendations",
    headers: dict[str, str] | None = None,
) -> PhaseResult:
    """``rate`` req/s in total on a fixed schedule; latency counted from the scheduled send time."""
    latencies: list[float] = []
    statuses: list[int] = []
    interval = clients / rate  # each client's period
    t_start = time.perf_counter() + 0.2

    async def worker(i: int) -> None:
        client = RawClient("127.0.0.1", port)
        await client.connect()
        n = 0
        try:
            while True:
                scheduled = t_start + (i / clients) * interval + n * interval
                if scheduled - t_start >= duration:
                    break
                delay = scheduled - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
                body = bodies[(n * clients + i) % len(bodies)]
                try:
                    status = await client.post(path, body, headers)
                except (ConnectionError, OSError, asyncio.IncompleteReadError):
                    status = 599
                    await client.close()
                latencies.append(time.perf_counter() - scheduled)
                statuses.append(status)
                n += 1
        finally:
            await client.close()

    await asyncio.gather(*(worker(i) for i in range(clients)))
    seconds = max(time.perf_counter() - t_start, 1e-9)
    return _summarise(f"open loop, {rate:g} req/s offered", latencies, statuses, seconds)


# ------------------------------------------------------------------------------------------- main
def prepare_kb(args: argparse.Namespace, workdir: Path) -> tuple[Path, dict[str, str], str]:
    """The KB file the server will own, extra server env, and a description."""
    target = workdir / "kb.duckdb"
    if args.synthetic_runs:
        sys.path.insert(0, str(REPO / "benchmarks"))
        from kb_synthetic import METAFEATURE_VERSION, build_synthetic_kb

        t0 = time.perf_counter()
        build_synthetic_kb(
            target,
            args.synthetic_runs,
            args.seed,
            n_datasets=args.synthetic_datasets,
            n_configs=args.synthetic_configs,
            real_spaces=True,
        )
        what = (
            f"synthetic: {args.synthetic_runs:,} runs, {args.synthetic_datasets} datasets, "
            f"{args.synthetic_configs} configurations"
        )
        print(f"built a {what} KB in {time.perf_counter() - t0:.1f} s")
        return target, {"METALEARN_METAFEATURE_VERSION": METAFEATURE_VERSION}, what
    if args.kb:
        shutil.copyfile(args.kb, target)
        return target, {}, f"copy of {args.kb}"
    from metalearn.kb.shipped import open_default_kb, shipped_snapshot

    if shipped_snapshot() is None:
        raise SystemExit("this install ships no KB snapshot; pass --kb PATH or --synthetic-runs N")
    open_default_kb(target).close()  # a fresh file seeded from the shipped snapshot
    return target, {}, "the shipped KB"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kb", type=Path, help="KB file to copy and serve (default: the shipped KB)")
    parser.add_argument(
        "--synthetic-runs", type=int, default=0, help="serve a synthetic KB with this many runs"
    )
    parser.add_argument("--synthetic-datasets", type=int, default=300, help="datasets of the synthetic KB")
    parser.add_argument(
        "--synthetic-configs", type=int, default=5000, help="configurations of the synthetic KB"
    )
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument(
        "--workers", type=int, default=1, help="server processes (> 1: read-only KB, as `metalearn serve --workers`)"
    )
    parser.add_argument("--duration", type=float, default=20.0, help="seconds per phase")
    parser.add_argument(
        "--rate", type=float, default=300.0, help="open-loop offered load (req/s); 0 skips it"
    )
    parser.add_argument("--strategy", default=None, help="recommender strategy (default: the service's)")
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--warmup", type=float, default=3.0, help="seconds of unmeasured load first")
    parser.add_argument("--json", type=Path, help="write the results here")
    args = parser.parse_args(argv)
    if not 0 < args.duration <= 600 or not 0 < args.clients <= 1000:
        raise SystemExit("--duration must be in (0, 600] and --clients in (0, 1000]")

    with tempfile.TemporaryDirectory(prefix="metalearn-api-load-") as tmp:
        kb_path, env, what = prepare_kb(args, Path(tmp))
        port = free_port()
        t0 = time.perf_counter()
        proc = start_server(kb_path, port, env, workers=args.workers)
        print(f"server ready on 127.0.0.1:{port} in {time.perf_counter() - t0:.1f} s ({what})")
        try:
            base = f"http://127.0.0.1:{port}"
            stats = _get_json(f"{base}/kb/stats")
            print(f"KB: {stats.get('datasets')} datasets, {stats.get('configurations')} configurations, "
                  f"{stats.get('runs')} runs")  # fmt: skip
            bodies = make_queries(base, 2000, args.seed, args.strategy, args.k)
            sizes = [len(_post_json(f"{base}/recommendations", b)["recommendations"]) for b in bodies[:50]]
            print(f"sanity: {sum(1 for n in sizes if n)} of {len(sizes)} sample queries got recommendations "
                  f"(mean {np.mean(sizes):.1f} configurations)")  # fmt: skip
            if not any(sizes):
                raise SystemExit(
                    "no query got a recommendation: the KB has no usable runs for the served spaces"
                )
            if args.warmup > 0:
                asyncio.run(closed_loop(port, bodies, min(args.clients, 8), args.warmup))
            results = [asyncio.run(closed_loop(port, bodies, args.clients, args.duration))]
            if args.rate > 0:
                results.append(asyncio.run(open_loop(port, bodies, args.clients, args.duration, args.rate)))
        finally:
            stop_server(proc)
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"POST /recommendations, k={args.k}, strategy={args.strategy or 'default'}, {args.workers} server "
          f"worker(s), {os.cpu_count()} CPUs, "
          f"load average {load}")  # fmt: skip
    for r in results:
        print(r.line())
    if args.json:
        args.json.write_text(json.dumps({"kb": what, "results": [asdict(r) for r in results]}, indent=2))


if __name__ == "__main__":
    main()
