"""Suite `serve`: a bounded load test of `blastscan serve` on loopback: concurrent clients,
a fixed request budget and time limit, zero 5xx expected, latency percentiles and the server's
memory; then malformed and hostile requests, each of which must get a 4xx.

    python benchmarks/run_all.py --suite serve --serve-bundle BUNDLE [--serve-image IMAGE]
        [--serve-clients 8 --serve-seconds 30 --serve-budget 2000]

For a soak, give it minutes and a large budget (`--serve-seconds 240 --serve-budget 100000`):
the server's RSS is sampled every second and reported per minute, with its growth over the
second half of the run (near zero when memory has plateaued).
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
from benchkit import DATA, REPO, Context, Part, Result, Skip


def add_arguments(parser) -> None:
    group = parser.add_argument_group("serve suite")
    group.add_argument(
        "--serve-bundle",
        type=Path,
        default=REPO / "runs" / "fast-cpu-bundle",
        metavar="BUNDLE",
        help="load: the bundle to serve",
    )
    group.add_argument(
        "--serve-image",
        type=Path,
        metavar="IMAGE",
        help="load: the image every request posts (default: the dataset's first)",
    )
    group.add_argument("--serve-clients", type=int, default=8, help="load: concurrent clients")
    group.add_argument("--serve-seconds", type=float, default=30, help="load: time limit")
    group.add_argument("--serve-budget", type=int, default=2000, help="load: at most this many requests")  # fmt: skip


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
    import httpx

    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            time.sleep(0.5)
    raise RuntimeError("server did not become healthy")


def bad_requests(url: str) -> dict[str, int]:
    """Malformed and hostile requests: each must get a 4xx, never a 5xx."""
    import httpx

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


def load_test(bundle: Path, image: Path, clients: int, seconds: float, budget: int, log) -> dict:
    """Serve `bundle` on a free loopback port, hammer it, and return what was measured."""
    import httpx

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    server = subprocess.Popen(
        [sys.executable, "-m", "blastscan", "serve", str(bundle), "--port", str(port)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        wait_healthy(url)
        payload = Path(image).read_bytes()
        rss_start = rss_mb(server.pid)
        latencies, statuses, lock = [], [], threading.Lock()
        memory = [rss_start]
        sampled_at = [0.0]
        began = time.time()
        stop = time.time() + seconds

        def client() -> None:
            with httpx.Client(timeout=60) as http:
                while time.time() < stop:
                    with lock:
                        if len(statuses) >= budget:
                            return
                    t = time.perf_counter()
                    r = http.post(
                        f"{url}/api/predict", files={"file": ("s.jpg", payload, "image/jpeg")}
                    )
                    with lock:
                        latencies.append(time.perf_counter() - t)
                        statuses.append(r.status_code)

        threads = [threading.Thread(target=client) for _ in range(clients)]
        for t in threads:
            t.start()
        while any(t.is_alive() for t in threads):
            memory.append(rss_mb(server.pid))
            sampled_at.append(time.time() - began)
            time.sleep(1)
        lat = np.array(latencies) * 1000
        result = {
            "clients": clients, "seconds": seconds, "budget": budget,
            "requests": len(statuses), "errors_5xx": sum(s >= 500 for s in statuses),
            "non_200": sum(s != 200 for s in statuses),
            "p50_ms": float(np.percentile(lat, 50)), "p99_ms": float(np.percentile(lat, 99)),
            "throughput_rps": len(statuses) / max(1e-9, min(seconds, time.time() - stop + seconds)),
            "rss_mb_start": rss_start, "rss_mb_peak": max(memory), "rss_mb_end": memory[-1],
            **rss_trend(sampled_at, memory),
            "bad_requests": bad_requests(url),
            "server_alive_after": server.poll() is None,
        }  # fmt: skip
        log(f"  load: {json.dumps(result)}")
        return result
    finally:
        server.terminate()
        server.wait(timeout=30)


def _first_image() -> Path | None:
    return next(iter(sorted(DATA.glob("Original/*/*.jpg"))), None) if DATA.is_dir() else None


def bench_load(ctx: Context) -> list[Result]:
    args = ctx.args
    image = args.serve_image or _first_image()
    if not args.serve_bundle.is_dir():
        raise Skip(f"no bundle at {args.serve_bundle} (--serve-bundle)")
    if image is None or not Path(image).is_file():
        raise Skip("no image to post (--serve-image)")
    seconds = 10.0 if ctx.cfg.quick else args.serve_seconds
    out = load_test(args.serve_bundle, Path(image), args.serve_clients, seconds, args.serve_budget,
                    ctx.log)  # fmt: skip
    what = f"{out['clients']} clients, {out['requests']} requests"
    rows = [
        Result("serve/throughput", f"POST /api/predict, {what}, requests/s",
               out["throughput_rps"], "requests/s",
               notes=f"{out['errors_5xx']} 5xx, {out['non_200']} non-200; server alive after: "
               f"{out['server_alive_after']}"),
        Result("serve/latency_p50", f"POST /api/predict latency, {what}, median", out["p50_ms"], "ms"),
        Result("serve/latency_p99", f"POST /api/predict latency, {what}, 99th percentile",
               out["p99_ms"], "ms"),
        Result("serve/rss_growth_second_half", "server RSS growth over the second half of the run",
               out["rss_mb_growth_second_half"], "MB",
               notes=f"RSS start {out['rss_mb_start']:.0f} MB, peak {out['rss_mb_peak']:.0f} MB"),
    ]  # fmt: skip
    rows[0].extra.update(out)
    return rows


PARTS = [
    Part("load", "bounded load test of blastscan serve on loopback: 5xx, latency, RSS", bench_load)
]
