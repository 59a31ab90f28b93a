#!/usr/bin/env python3
"""Warren's management API and Prometheus endpoints at scale (issue #12).

Starts a release `warren` on free ports with a fresh data directory, makes
--queues queues (one definitions import), then times:
  * GET /api/queues?page=1&page_size=100   (target <= 200 ms at 100,000 queues)
  * GET /api/queues (unpaginated)          (target <= 2 s)
  * GET /metrics/per-object                (target <= 2 s)
  * GET /metrics, GET /api/overview
and runs the publish benchmark (warren-perf throughput) twice: alone, and
while a scraper hits those endpoints every 5 s, to show that scraping does
not move publishing beyond noise. Prints a markdown table.

    python3 interop/bench/admin_scale.py [--queues 100000] [--no-build] [--duration 20]

Standard library only. Binaries come from $CARGO_TARGET_DIR/release.
"""

import argparse
import base64
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
AUTH = "Basic " + base64.b64encode(b"guest:guest").decode()


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def request(url, method="GET", body=None, timeout=120):
    req = urllib.request.Request(url, method=method, data=body)
    req.add_header("Authorization", AUTH)
    if body is not None:
        req.add_header("Content-Type", "application/json")
    start = time.perf_counter()
    with urllib.request.urlopen(req, timeout=timeout) as resp:
        data = resp.read()
    return time.perf_counter() - start, data


def timed(url, runs):
    times, size = [], 0
    for _ in range(runs):
        t, data = request(url)
        times.append(t)
        size = len(data)
    return statistics.median(times), max(times), size


def perf(binary, uri, duration):
    out = subprocess.run(
        [binary, "--uri", uri, "--scenario", "throughput", "--duration", str(duration), "--json",
         "-x", "1", "-y", "1", "-q", "1", "-s", "16"],
        check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])["published_per_sec"]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--queues", type=int, default=100_000)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--duration", type=int, default=20, help="seconds per publish benchmark")
    ap.add_argument("--no-build", action="store_true")
    ap.add_argument("--no-perf", action="store_true", help="time the endpoints only")
    ap.add_argument("--rounds", type=int, default=3, help="alone / scraped pairs of publish runs")
    args = ap.parse_args()

    target = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))
    if not args.no_build:
        subprocess.run(["cargo", "build", "--release", "--bin", "warren", "--bin", "warren-perf"], cwd=ROOT, check=True)
    warren = os.path.join(target, "release", "warren")
    warren_perf = os.path.join(target, "release", "warren-perf")

    amqp, admin, metrics = free_port(), free_port(), free_port()
    data = tempfile.mkdtemp(prefix="warren-scale-")
    proc = subprocess.Popen([warren, "--listen", f"127.0.0.1:{amqp}", "--admin-listen", f"127.0.0.1:{admin}",
                             "--metrics-listen", f"127.0.0.1:{metrics}", "--data-dir", data, "--log-level", "warn"])
    api = f"http://127.0.0.1:{admin}/api"
    prom = f"http://127.0.0.1:{metrics}"
    try:
        for _ in range(100):
            try:
                request(f"{api}/overview")
                break
            except OSError:
                time.sleep(0.1)
        queues = [{"name": f"scale-q-{i:06d}", "vhost": "/", "durable": True, "auto_delete": False,
                   "arguments": {}} for i in range(args.queues)]
        doc = json.dumps({"queues": queues}).encode()
        t, _ = request(f"{api}/definitions", "POST", doc, timeout=600)
        print(f"imported {args.queues} queues in {t:.1f} s", file=sys.stderr)
        rss_kib = int([l for l in open(f"/proc/{proc.pid}/status") if l.startswith("VmRSS")][0].split()[1])

        rows = []
        for label, url in [
            ("GET /api/queues?page=1&page_size=100", f"{api}/queues?page=1&page_size=100"),
            ("GET /api/queues?page=500&page_size=100&sort=name", f"{api}/queues?page=500&page_size=100&sort=name"),
            ("GET /api/queues?page=1&page_size=20&sort=messages&sort_reverse=true (warrenctl top)",
             f"{api}/queues?page=1&page_size=20&sort=messages&sort_reverse=true"),
            ("GET /api/queues (all)", f"{api}/queues"),
            ("GET /api/queues?disable_stats=true&enable_queue_totals=true", f"{api}/queues?disable_stats=true&enable_queue_totals=true"),
            ("GET /api/overview", f"{api}/overview"),
            ("GET /metrics", f"{prom}/metrics"),
            ("GET /metrics/per-object", f"{prom}/metrics/per-object"),
        ]:
            med, worst, size = timed(url, args.runs)
            rows.append((label, med, worst, size))

        print(f"\n### Management API and metrics with {args.queues:,} queues "
              f"(broker RSS after import: {rss_kib / 1024:.0f} MiB)\n")
        print("| request | median | worst | response size |")
        print("|---|---|---|---|")
        for label, med, worst, size in rows:
            print(f"| `{label}` | {med * 1000:.0f} ms | {worst * 1000:.0f} ms | {size / 1024:.0f} KiB |")
        if args.no_perf:
            return

        uri = f"amqp://guest:guest@127.0.0.1:{amqp}/%2f"
        sets = {
            "light: queues page, /metrics, overview": (
                f"{api}/queues?page=1&page_size=100", f"{prom}/metrics", f"{api}/overview"),
            "heavy: queues page, whole queue list, /metrics/per-object": (
                f"{api}/queues?page=1&page_size=100", f"{api}/queues", f"{prom}/metrics/per-object"),
        }
        runs = {"alone": []}
        spent = {name: [] for name in sets}
        for name in sets:
            runs[name] = []
        for _ in range(args.rounds):
            runs["alone"].append(perf(warren_perf, uri, args.duration))
            for name, urls in sets.items():
                stop = threading.Event()

                def scraper(urls=urls, name=name, stop=stop):
                    while not stop.is_set():
                        start = time.perf_counter()
                        for url in urls:
                            request(url)
                        spent[name].append(time.perf_counter() - start)
                        stop.wait(5)

                th = threading.Thread(target=scraper, daemon=True)
                th.start()
                runs[name].append(perf(warren_perf, uri, args.duration))
                stop.set()
                th.join()
        print(f"\n| publish benchmark (1 producer, 1 consumer, 16 B, {args.duration} s runs, "
              f"{args.rounds} rounds, alternating) | median msg/s | runs |")
        print("|---|---|---|")
        for name, values in runs.items():
            label = "alone" if name == "alone" else (
                f"scraped every 5 s, {name} (each scrape {statistics.median(spent[name]) * 1000:.0f} ms)")
            print(f"| {label} | {statistics.median(values):,.0f} | {', '.join(f'{x:,.0f}' for x in values)} |")
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        shutil.rmtree(data, ignore_errors=True)


if __name__ == "__main__":
    main()
