#!/usr/bin/env python3
"""The memory alarm under a flood: publishers send 1 MiB messages as fast as
they can into queues nobody consumes, against a `warren` started here with a
memory watermark. Samples the broker's RSS every 100 ms and prints the peak
next to the watermark, how often publishers were blocked, how many messages
the broker took, and whether it is still alive and serving at the end.

    python3 interop/bench/memory_flood.py [--watermark-mib 512] [--seconds 60]
        [--publishers 4] [--size-kib 1024] [--persistent] [--warren BIN]

Loopback only; stops by itself. Needs pika (pip install pika).
"""
import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

import pika


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def rss_mib(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except FileNotFoundError:
        return None
    return None


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    target = os.environ.get("CARGO_TARGET_DIR", "target")
    ap.add_argument("--warren", default=os.path.join(target, "release", "warren"))
    ap.add_argument("--watermark-mib", type=int, default=512)
    ap.add_argument("--seconds", type=float, default=60)
    ap.add_argument("--publishers", type=int, default=4)
    ap.add_argument("--size-kib", type=int, default=1024)
    ap.add_argument("--persistent", action="store_true", help="persistent messages into durable queues")
    args = ap.parse_args()

    data = tempfile.mkdtemp(prefix="warren-flood-")
    port, admin, metrics = free_port(), free_port(), free_port()
    config = os.path.join(data, "warren.toml")
    with open(config, "w") as f:
        f.write(f"[memory]\nhigh_watermark_bytes = {args.watermark_mib << 20}\n")
    proc = subprocess.Popen(
        [args.warren, "--config", config, "--listen", f"127.0.0.1:{port}",
         "--admin-listen", f"127.0.0.1:{admin}", "--metrics-listen", f"127.0.0.1:{metrics}",
         "--data-dir", os.path.join(data, "d"), "--log-level", "warn"],
    )
    try:
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.1)
        result = flood(args, proc, port, admin)
    finally:
        proc.kill()
        proc.wait()
        shutil.rmtree(data, ignore_errors=True)
    print(json.dumps(result, indent=2))
    return 0 if result["alive"] and result["served_after"] else 1


def flood(args, proc, port, admin):
    body = b"x" * (args.size_kib * 1024)
    stop = threading.Event()
    published = [0] * args.publishers
    blocked = [0] * args.publishers
    errors = []
    params = pika.ConnectionParameters("127.0.0.1", port, heartbeat=0, blocked_connection_timeout=None)
    props = pika.BasicProperties(delivery_mode=2 if args.persistent else 1)

    def publisher(i):
        try:
            conn = pika.BlockingConnection(params)
            conn.add_on_connection_blocked_callback(lambda *_: blocked.__setitem__(i, blocked[i] + 1))
            ch = conn.channel()
            q = f"flood-{i}"
            ch.queue_declare(q, durable=args.persistent)
            while not stop.is_set():
                ch.basic_publish("", q, body, props)
                published[i] += 1
        except Exception as e:  # a publisher blocked at stop time is cut off
            if not stop.is_set():
                errors.append(repr(e))

    samples = []
    threads = [threading.Thread(target=publisher, args=(i,), daemon=True) for i in range(args.publishers)]
    for t in threads:
        t.start()
    started = time.time()
    while time.time() - started < args.seconds and proc.poll() is None:
        r = rss_mib(proc.pid)
        if r is not None:
            samples.append(r)
        time.sleep(0.1)
    stop.set()
    alive = proc.poll() is None
    # The broker still answers: the admin API lists the queues, and a fresh
    # connection declares, publishes and gets (the alarm may still hold
    # publishers; a basic.get needs none).
    depth = None
    served_after = False
    if alive:
        try:
            req = urllib.request.Request(f"http://127.0.0.1:{admin}/api/queues")
            req.add_header("Authorization", "Basic Z3Vlc3Q6Z3Vlc3Q=")
            with urllib.request.urlopen(req, timeout=30) as r:
                depth = sum(q.get("messages", 0) for q in json.load(r))
            conn = pika.BlockingConnection(params)
            ch = conn.channel()
            m = ch.basic_get("flood-0", auto_ack=True)
            served_after = m[0] is not None
            conn.close()
        except Exception as e:
            errors.append(f"after the flood: {e!r}")
    peak = max(samples) if samples else None
    return {
        "watermark_mib": args.watermark_mib,
        "seconds": args.seconds,
        "publishers": args.publishers,
        "message_kib": args.size_kib,
        "persistent": args.persistent,
        "published_by_clients": sum(published),
        "messages_in_queues": depth,
        "blocked_notices": sum(blocked),
        "rss_peak_mib": round(peak, 1) if peak else None,
        "rss_peak_over_watermark": round(peak / args.watermark_mib, 2) if peak else None,
        "rss_median_mib": round(sorted(samples)[len(samples) // 2], 1) if samples else None,
        "alive": alive,
        "served_after": served_after,
        "errors": errors[:5],
    }


if __name__ == "__main__":
    sys.exit(main())
