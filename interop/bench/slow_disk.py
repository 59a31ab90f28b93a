#!/usr/bin/env python3
"""A slow disk must not stall unrelated connections (issue #13).

Starts each given `warren` binary on a free port and a fresh data directory
with a simulated slow disk (`WARREN_STORE_SLOW_SYNC_MS`: every synced store
batch takes that much longer), then for --duration seconds per load:

* hammer connections wait for the disk in a loop: `tx.commit` of one
  persistent message (load "commit"), or `queue.declare` + `queue.delete`
  of a durable queue (load "declare");
* one probe connection, meanwhile, does transient round trips (publish to
  its own queue, `basic.get` it back) and times each one.

Prints a markdown table: the probe's round-trip latency (p50/p99/max), how
many it made, and how many commits/declares the hammers made.

    python3 interop/bench/slow_disk.py --binary before=/tmp/warren-before \
        --binary after=target/release/warren [--slow-ms 50] [--hammers 4] [--duration 10]
"""
import argparse
import os
import shutil
import socket
import subprocess
import tempfile
import threading
import time

import pika


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(binary, slow_ms):
    port, data = free_port(), tempfile.mkdtemp(prefix="warren-slow-disk-")
    env = dict(os.environ, WARREN_STORE_SLOW_SYNC_MS=str(slow_ms))
    args = [binary, "--listen", f"127.0.0.1:{port}", "--data-dir", data, "--log-level", "warn",
            "--admin-listen", f"127.0.0.1:{free_port()}", "--metrics-listen", f"127.0.0.1:{free_port()}"]
    proc = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 20
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return proc, port, data
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise SystemExit(f"{binary} did not start listening")


def hammer(url, load, index, stop, counts):
    conn = pika.BlockingConnection(pika.URLParameters(url))
    ch = conn.channel()
    q = f"slow-disk-hammer-{index}"
    done = 0
    if load == "commit":
        ch.queue_declare(q, durable=True)
        ch.tx_select()
        props = pika.BasicProperties(delivery_mode=2)
        while not stop.is_set():
            ch.basic_publish("", q, b"x" * 64, props)
            ch.tx_commit()
            done += 1
        ch.queue_delete(q)
    else:
        while not stop.is_set():
            name = f"{q}-{done}"
            ch.queue_declare(name, durable=True)
            ch.queue_delete(name)
            done += 1
    counts[index] = done
    conn.close()


def probe(url, stop, latencies):
    conn = pika.BlockingConnection(pika.URLParameters(url))
    ch = conn.channel()
    q = ch.queue_declare("", exclusive=True).method.queue
    while not stop.is_set():
        started = time.perf_counter()
        ch.basic_publish("", q, b"ping")
        while ch.basic_get(q, auto_ack=True)[0] is None:
            pass
        latencies.append(time.perf_counter() - started)
    conn.close()


def percentile(sorted_values, p):
    return sorted_values[min(len(sorted_values) - 1, int(len(sorted_values) * p))]


def run(binary, load, args):
    proc, port, data = start(binary, args.slow_ms)
    url = f"amqp://guest:guest@127.0.0.1:{port}/%2f"
    try:
        stop, counts, latencies = threading.Event(), [0] * args.hammers, []
        threads = [threading.Thread(target=hammer, args=(url, load, i, stop, counts))
                   for i in range(args.hammers)]
        for t in threads:
            t.start()
        time.sleep(0.5)  # the hammers are at it
        prober = threading.Thread(target=probe, args=(url, stop, latencies))
        prober.start()
        time.sleep(args.duration)
        stop.set()
        for t in threads + [prober]:
            t.join()
        lat = sorted(latencies)
        ms = lambda s: f"{s * 1000:.2f} ms"
        return (f"| {load} | {len(lat)} | {ms(percentile(lat, 0.5))} | {ms(percentile(lat, 0.99))} "
                f"| {ms(lat[-1])} | {sum(counts)} |")
    finally:
        proc.terminate()
        proc.wait()
        shutil.rmtree(data, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--binary", action="append", required=True, help="label=path to a warren binary")
    ap.add_argument("--slow-ms", type=int, default=50, help="extra time per synced store batch")
    ap.add_argument("--hammers", type=int, default=4, help="connections waiting for the disk")
    ap.add_argument("--duration", type=float, default=10, help="seconds per run")
    ap.add_argument("--loads", default="commit,declare")
    args = ap.parse_args()
    print(f"slow disk: +{args.slow_ms} ms per synced batch; {args.hammers} hammer connections; "
          f"{args.duration:g} s per run; {os.cpu_count()} cores\n")
    for spec in args.binary:
        label, path = spec.split("=", 1)
        print(f"**{label}** (`{path}`)\n")
        print("| hammers wait on | probe round trips | p50 | p99 | max | hammer commits/declares |")
        print("|---|---|---|---|---|---|")
        for load in args.loads.split(","):
            print(run(path, load, args), flush=True)
        print()


if __name__ == "__main__":
    main()
