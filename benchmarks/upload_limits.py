"""Peak memory of ``POST /metafeatures`` with a gzip bomb (issue 14 item 8).

Writes a gzip CSV of zeros (default: 1,000 columns x 315,000 rows = 600 MiB from ~1.3 MB, the issue's
bomb) into a temporary directory, then posts it once per fresh child process to the service (FastAPI
TestClient, an empty temporary KB, default limits) and prints the status, the answer's first line, the
seconds it took and the child's RSS before the request and at its peak. Nothing is kept afterwards.

    python benchmarks/upload_limits.py                     # the issue's bomb
    python benchmarks/upload_limits.py --rows 50000        # a smaller one
    PYTHONPATH=/path/to/old/checkout python benchmarks/upload_limits.py   # the code before the fix
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

MIB = 1024 * 1024


def write_bomb(path: Path, rows: int, columns: int) -> int:
    """A binary-classification CSV of zeros (target ``y`` alternates 0/1), gzip level 9; its raw size."""
    header = (",".join(f"f{i}" for i in range(columns - 1)) + ",y\n").encode()
    zeros = b"0," * (columns - 1)
    pair = zeros + b"0\n" + zeros + b"1\n"
    chunk_pairs = 500
    block = pair * chunk_pairs
    size = len(header)
    with gzip.open(path, "wb", compresslevel=9) as out:
        out.write(header)
        left = rows
        while left >= 2 * chunk_pairs:
            out.write(block)
            size += len(block)
            left -= 2 * chunk_pairs
        rest = (pair * ((left + 1) // 2))[: left * len(zeros + b"0\n")]
        out.write(rest)
        size += len(rest)
    return size


def rss_mib() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / MIB


def child(bomb: Path) -> None:
    """One request in this (fresh) process; prints a JSON line."""
    from fastapi.testclient import TestClient

    import metalearn
    from metalearn.kb import open_kb
    from metalearn.service.app import create_app
    from metalearn.service.settings import Settings

    with tempfile.TemporaryDirectory(prefix="metalearn-bench-kb-") as tmp:
        kb = Path(tmp) / "kb.duckdb"
        open_kb(kb).close()
        values: dict[str, Any] = dict(kb=str(kb), api_keys=["bench"], advisor_refresh_seconds=0)
        settings = Settings(_env_file=None, **values)  # type: ignore[call-arg]
        with TestClient(create_app(settings)) as client:
            before = rss_mib()
            start = time.perf_counter()
            r = client.post(
                "/metafeatures",
                files={"file": (bomb.name, bomb.read_bytes(), "application/gzip")},
                data={"target": ["y"]},
                headers={"X-API-Key": "bench"},
            )
            seconds = time.perf_counter() - start
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
        text = r.text if r.status_code != 200 else f"accepted: {r.json().get('n_rows')} rows"
        print(
            json.dumps(
                {
                    "code": str(Path(metalearn.__file__).parent),
                    "status": r.status_code,
                    "answer": text[:200],
                    "seconds": round(seconds, 2),
                    "rss_before_mib": round(before),
                    "peak_rss_mib": round(peak),
                }
            )
        )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=315_000)
    ap.add_argument("--columns", type=int, default=1_000)
    ap.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(args.child)
        return
    with tempfile.TemporaryDirectory(prefix="metalearn-bomb-") as tmp:
        bomb = Path(tmp) / "bomb.csv.gz"
        raw = write_bomb(bomb, args.rows, args.columns)
        print(
            f"bomb: {args.columns} columns x {args.rows} rows, {raw / MIB:.0f} MiB from "
            f"{bomb.stat().st_size / 1e6:.2f} MB of gzip"
        )
        out = subprocess.run(
            [sys.executable, __file__, "--child", str(bomb)], capture_output=True, text=True, check=False
        )
        lines = [ln for ln in out.stdout.splitlines() if ln.startswith("{")]
        if out.returncode or not lines:
            print(f"child failed ({out.returncode}): {out.stderr.strip()[-500:]}")
            sys.exit(1)
        res = json.loads(lines[-1])
        print(f"code: {res['code']}")
        print(f"HTTP {res['status']} after {res['seconds']} s: {res['answer']}")
        print(f"RSS before the request {res['rss_before_mib']} MiB, peak {res['peak_rss_mib']} MiB")


if __name__ == "__main__":
    main()
