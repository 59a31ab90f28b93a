#!/usr/bin/env python3
"""Binding at scale (issue #13): N bindings from one exchange to one queue
(distinct keys), for each exchange type, then unbinding them all, timed
through pika against a running broker. Prints a markdown table.

    python3 interop/bench/bind_scale.py [--url amqp://guest:guest@127.0.0.1:5672/%2f] [-n 50000]
"""
import argparse
import time

import pika


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--url", default="amqp://guest:guest@127.0.0.1:5672/%2f")
    ap.add_argument("-n", type=int, default=50_000)
    args = ap.parse_args()
    conn = pika.BlockingConnection(pika.URLParameters(args.url))
    ch = conn.channel()
    print(f"| exchange type | bind {args.n:,} | unbind {args.n:,} | delete the queue |")
    print("|---|---|---|---|")
    for kind in ("fanout", "direct", "topic", "headers"):
        x, q = f"bind-scale-{kind}", f"bind-scale-{kind}-q"
        ch.exchange_declare(x, kind, auto_delete=False)
        ch.queue_declare(q)
        start = time.perf_counter()
        for i in range(args.n):
            arguments = {"k": i} if kind == "headers" else None
            ch.queue_bind(q, x, routing_key=f"k.{i}", arguments=arguments)
        bound = time.perf_counter() - start
        start = time.perf_counter()
        for i in range(args.n):
            arguments = {"k": i} if kind == "headers" else None
            ch.queue_unbind(q, x, routing_key=f"k.{i}", arguments=arguments)
        unbound = time.perf_counter() - start
        for i in range(args.n):
            arguments = {"k": i} if kind == "headers" else None
            ch.queue_bind(q, x, routing_key=f"k.{i}", arguments=arguments)
        start = time.perf_counter()
        ch.queue_delete(q)
        deleted = time.perf_counter() - start
        ch.exchange_delete(x)
        print(f"| {kind} | {bound:.1f} s | {unbound:.1f} s | {deleted * 1000:.0f} ms |")
    conn.close()


if __name__ == "__main__":
    main()
