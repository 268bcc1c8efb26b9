"""Bounded load test of `blastscan serve` on loopback: concurrent clients, a fixed request
budget and time limit, zero 5xx expected, latency percentiles and the server's memory.

    .venv/bin/python benchmarks/load_test.py BUNDLE IMAGE [--clients 8 --seconds 30 --budget 2000]

For a soak, give it minutes and a large budget (`--seconds 240 --budget 100000`): the server's
RSS is sampled every second and reported per minute, with its growth over the second half of
the run (near zero when memory has plateaued).
"""

from __future__ import annotations

import argparse
import json
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import numpy as np


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def wait_healthy(url: str, timeout: float = 120) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            time.sleep(0.5)
    raise SystemExit("server did not become healthy")


def bad_requests(url: str) -> dict[str, int]:
    """Malformed and hostile requests: each must get a 4xx, never a 5xx."""
    cases = {
        "text as image": {"files": {"file": ("x.jpg", b"not an image", "image/jpeg")}},
        "wrong content type": {"files": {"file": ("x.txt", b"hello", "text/plain")}},
        "oversized": {"files": {"file": ("big.jpg", b"\xff" * (11 * 1024 * 1024), "image/jpeg")}},
        "no file field": {"data": {"other": "1"}},
        "many files": {"files": [("file", (f"{i}.jpg", b"x", "image/jpeg")) for i in range(50)]},
        "malformed multipart": {
            "content": b"--x\r\nbroken",
            "headers": {"content-type": "multipart/form-data; boundary=x"},
        },
    }
    return {
        name: httpx.post(f"{url}/api/predict", timeout=30, **kw).status_code
        for name, kw in cases.items()
    }


def rss_trend(seconds: list[float], rss: list[float]) -> dict[str, object]:
    """RSS at the end of each minute, and its growth over the second half of the run."""
    t, mb = np.array(seconds), np.array(rss)
    by_minute = [float(mb[t <= m * 60][-1]) for m in range(1, int(t[-1] // 60) + 1)]
    half = t >= t[-1] / 2
    return {
        "rss_mb_by_minute": [round(v, 1) for v in by_minute],
        "rss_mb_growth_second_half": float(mb[half].max() - mb[half][0]) if half.any() else 0.0,
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("bundle")
    ap.add_argument("image")
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--seconds", type=float, default=30)
    ap.add_argument("--budget", type=int, default=2000)
    args = ap.parse_args()
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    server = subprocess.Popen(
        [sys.executable, "-m", "blastscan", "serve", args.bundle, "--port", str(port)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        wait_healthy(url)
        payload = Path(args.image).read_bytes()
        rss_start = rss_mb(server.pid)
        latencies, statuses, lock = [], [], threading.Lock()
        memory = [rss_start]
        sampled_at = [0.0]
        began = time.time()
        stop = time.time() + args.seconds

        def client() -> None:
            with httpx.Client(timeout=60) as http:
                while time.time() < stop:
                    with lock:
                        if len(statuses) >= args.budget:
                            return
                    t = time.perf_counter()
                    r = http.post(
                        f"{url}/api/predict", files={"file": ("s.jpg", payload, "image/jpeg")}
                    )
                    with lock:
                        latencies.append(time.perf_counter() - t)
                        statuses.append(r.status_code)

        threads = [threading.Thread(target=client) for _ in range(args.clients)]
        for t in threads:
            t.start()
        while any(t.is_alive() for t in threads):
            memory.append(rss_mb(server.pid))
            sampled_at.append(time.time() - began)
            time.sleep(1)
        lat = np.array(latencies) * 1000
        result = {
            "clients": args.clients, "seconds": args.seconds, "budget": args.budget,
            "requests": len(statuses), "errors_5xx": sum(s >= 500 for s in statuses),
            "non_200": sum(s != 200 for s in statuses),
            "p50_ms": float(np.percentile(lat, 50)), "p99_ms": float(np.percentile(lat, 99)),
            "throughput_rps": len(statuses) / max(1e-9, min(args.seconds, time.time() - stop + args.seconds)),
            "rss_mb_start": rss_start, "rss_mb_peak": max(memory), "rss_mb_end": memory[-1],
            **rss_trend(sampled_at, memory),
            "bad_requests": bad_requests(url),
            "server_alive_after": server.poll() is None,
        }  # fmt: skip
        print(json.dumps(result, indent=1))
    finally:
        server.terminate()
        server.wait(timeout=30)


if __name__ == "__main__":
    main()
