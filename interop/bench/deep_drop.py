#!/usr/bin/env python3
"""Dropping a deep, paged-out queue, and memory after a burst (issue #13).

Starts a `warren` binary on free ports with a fresh data directory, samples
its resident memory (VmRSS) every 20 ms, and runs one scenario:

  purge | delete   publishes --gib of persistent messages (random sizes in
                   --min-kib..--max-kib) to durable queue `deep` (one in ten
                   also to durable queue `keep`: shared messages), then drops
                   `deep` with queue.purge or queue.delete. Reports the time to
                   the reply, the latency of a confirmed publish made right
                   after it (a drop done on the confirm path shows there), the
                   time until the broker's store settled, and peak RSS during
                   the drop.
  burst            publishes --gib the same way (--transient: non-persistent
                   messages to non-durable queues, all held in memory), consumes everything, then
                   reports RSS right after and after --idle seconds.

Every scenario reports RSS after publishing, peak RSS, and RSS --idle
seconds after the drop. Needs pika (pip install pika).

    python3 interop/bench/deep_drop.py --warren /tmp/warren-before --scenario delete
    python3 interop/bench/deep_drop.py --scenario purge --gib 2 --json out.json

Without --warren the release binary of $CARGO_TARGET_DIR (or target/) is used.
"""

import argparse
import json
import os
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time

import pika

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def rss(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return 0
    return 0


class Sampler(threading.Thread):
    """Samples RSS; `peak_since(t)` is the highest reading from t on."""

    def __init__(self, pid):
        super().__init__(daemon=True)
        self.pid, self.samples, self.stop = pid, [], False

    def run(self):
        while not self.stop:
            self.samples.append((time.monotonic(), rss(self.pid)))
            time.sleep(0.02)

    def peak_since(self, t):
        return max((r for (at, r) in self.samples if at >= t), default=0)


def gib(b):
    return f"{b / (1 << 30):.2f} GiB"


def start(binary, data):
    port = free_port()
    cmd = [binary, "--listen", f"127.0.0.1:{port}", "--data-dir", data, "--log-level", "warn",
           "--admin-listen", f"127.0.0.1:{free_port()}", "--metrics-listen", f"127.0.0.1:{free_port()}"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=sys.stderr)
    for _ in range(400):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return proc, port
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise SystemExit("warren did not start")


def channel(port):
    params = pika.ConnectionParameters("127.0.0.1", port, frame_max=131072, heartbeat=0,
                                       blocked_connection_timeout=600)
    conn = pika.BlockingConnection(params)
    ch = conn.channel()
    ch.confirm_delivery()
    return conn, ch


def publish(ch, total, min_kib, max_kib, transient):
    ch.exchange_declare("deep.x", "direct", durable=True)
    for q in ("deep", "keep"):
        ch.queue_declare(q, durable=not transient)
    ch.queue_declare("probe", durable=True)
    ch.queue_bind("deep", "deep.x", "deep")
    ch.queue_bind("deep", "deep.x", "both")
    ch.queue_bind("keep", "deep.x", "both")
    rng = random.Random(13)
    block = os.urandom(max_kib * 1024)
    props = pika.BasicProperties(delivery_mode=1 if transient else 2)
    sent = n = 0
    started = time.monotonic()
    while sent < total:
        size = rng.randint(min_kib * 1024, max_kib * 1024)
        key = "both" if n % 10 == 0 else "deep"
        ch.basic_publish("deep.x", key, block[:size], props)
        sent += size
        n += 1
    return n, sent, time.monotonic() - started


def settled(port, timeout=600):
    """Seconds until a confirmed publish to `probe` is answered (the store's
    writer caught up with everything before it)."""
    conn, ch = channel(port)
    t = time.monotonic()
    ch.basic_publish("", "probe", b"x", pika.BasicProperties(delivery_mode=2))
    took = time.monotonic() - t
    conn.close()
    return took


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--warren", help="warren binary (default: the release build)")
    ap.add_argument("--scenario", choices=["purge", "delete", "burst"], default="delete")
    ap.add_argument("--gib", type=float, default=2.0)
    ap.add_argument("--min-kib", type=int, default=64)
    ap.add_argument("--max-kib", type=int, default=1024)
    ap.add_argument("--transient", action="store_true",
                    help="non-persistent messages to non-durable queues (held in memory, not paged out)")
    ap.add_argument("--idle", type=float, default=10.0, help="seconds to wait before the last RSS reading")
    ap.add_argument("--json", help="also write the figures here")
    a = ap.parse_args()
    target = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))
    binary = a.warren or os.path.join(target, "release", "warren")
    data = tempfile.mkdtemp(prefix="warren-deep-drop-")
    proc, port = start(binary, data)
    sampler = Sampler(proc.pid)
    sampler.start()
    out = {"binary": binary, "scenario": a.scenario, "gib": a.gib, "transient": a.transient}
    try:
        conn, ch = channel(port)
        n, sent, took = publish(ch, int(a.gib * (1 << 30)), a.min_kib, a.max_kib, a.transient)
        out.update(messages=n, bytes=sent, publish_s=round(took, 2))
        time.sleep(2)
        out["rss_after_publish"] = rss(proc.pid)
        t0 = time.monotonic()
        if a.scenario == "burst":
            got = 0
            for method, _, body in ch.consume("deep", auto_ack=False, inactivity_timeout=5):
                if method is None:
                    break
                ch.basic_ack(method.delivery_tag)
                got += 1
                if got == n:
                    break
            ch.cancel()
            out["consumed"] = got
            out["consume_s"] = round(time.monotonic() - t0, 2)
        elif a.scenario == "purge":
            ch.queue_purge("deep")
            out["reply_s"] = round(time.monotonic() - t0, 3)
        else:
            ch.queue_delete("deep")
            out["reply_s"] = round(time.monotonic() - t0, 3)
        out["confirm_after_s"] = round(settled(port), 3)
        out["settled_s"] = round(time.monotonic() - t0, 3)
        out["rss_right_after"] = rss(proc.pid)
        time.sleep(a.idle)
        out["peak_rss_during"] = sampler.peak_since(t0)
        out[f"rss_idle_{a.idle:g}s"] = rss(proc.pid)
        # The other queue still holds its shared messages.
        out["keep_count"] = ch.queue_declare("keep", passive=True).method.message_count
        conn.close()
    finally:
        sampler.stop = True
        proc.terminate()
        proc.wait()
        shutil.rmtree(data, ignore_errors=True)
    for k, v in out.items():
        print(f"{k:>20}: {gib(v) if k.startswith(('rss', 'peak')) else v}")
    if a.json:
        with open(a.json, "w") as f:
            json.dump(out, f, indent=1)


if __name__ == "__main__":
    main()
