#!/usr/bin/env python3
"""Connection scale (issue #13): N concurrent AMQP connections, each with a
channel and a consumer, held against a real `warren`; then a burst of M
connections opened and closed, twice, checking nothing leaks.

Reports warren's RSS before / while holding / after, the memory per
connection, its open file descriptors and the admin API's connection count.
Standard library only: a minimal AMQP 0-9-1 client on asyncio (a socket and
a few bytes of state per connection, so the client stays small).

  interop/bench/conn_scale.py                      # 10,000 held, 2 x 20,000 burst
  interop/bench/conn_scale.py --connections 1000 --burst 2000 --hold 2
  interop/bench/conn_scale.py --warren PATH        # default: $CARGO_TARGET_DIR/release/warren

It starts its own warren (loopback, free ports, a temporary data directory)
and stops it at the end. Client sockets come from 127.0.0.1 … 127.0.0.8 so
the ephemeral ports of one source address are not the limit. Exit status 0
when every connection opened and nothing leaked, 1 otherwise.
"""

import argparse
import asyncio
import base64
import json
import os
import resource
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import time
import urllib.request

QUEUE = b"conn-scale"
SOURCES = [f"127.0.0.{i}" for i in range(1, 9)]


def shortstr(s: bytes) -> bytes:
    return bytes([len(s)]) + s


def longstr(s: bytes) -> bytes:
    return struct.pack(">I", len(s)) + s


def method(channel: int, class_id: int, method_id: int, args: bytes = b"") -> bytes:
    payload = struct.pack(">HH", class_id, method_id) + args
    return struct.pack(">BHI", 1, channel, len(payload)) + payload + b"\xce"


async def read_method(reader) -> tuple:
    """The next method frame's (class, method, arguments); skips heartbeats."""
    while True:
        kind, _channel, size = struct.unpack(">BHI", await reader.readexactly(7))
        payload = await reader.readexactly(size + 1)
        if kind == 1:
            class_id, method_id = struct.unpack(">HH", payload[:4])
            return class_id, method_id, payload[4:-1]


async def expect(reader, class_id: int, method_id: int) -> bytes:
    got = await read_method(reader)
    if got[:2] != (class_id, method_id):
        raise RuntimeError(f"expected {class_id}.{method_id}, got {got[0]}.{got[1]} {got[2][:80]!r}")
    return got[2]


async def open_connection(port: int, source: str, consume: bool):
    """Handshake (heartbeats off), channel 1, and a consumer if asked."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port, local_addr=(source, 0))
    writer.write(b"AMQP\x00\x00\x09\x01")
    await expect(reader, 10, 10)  # start
    writer.write(method(0, 10, 11, struct.pack(">I", 0) + shortstr(b"PLAIN")
                        + longstr(b"\0guest\0guest") + shortstr(b"en_US")))
    tune = await expect(reader, 10, 30)
    channel_max, frame_max, _heartbeat = struct.unpack(">HIH", tune[:8])
    writer.write(method(0, 10, 31, struct.pack(">HIH", channel_max, frame_max, 0)))
    writer.write(method(0, 10, 40, shortstr(b"/") + shortstr(b"") + b"\x00"))
    await expect(reader, 10, 41)
    writer.write(method(1, 20, 10, shortstr(b"")))
    await expect(reader, 20, 11)
    if consume:
        # reserved, queue, tag (server-made), no-ack, arguments
        writer.write(method(1, 60, 20, struct.pack(">H", 0) + shortstr(QUEUE) + shortstr(b"")
                            + b"\x02" + struct.pack(">I", 0)))
        await expect(reader, 60, 21)
    return reader, writer


async def close_connection(conn) -> None:
    reader, writer = conn
    try:
        writer.write(method(0, 10, 50, struct.pack(">H", 200) + shortstr(b"bye") + struct.pack(">HH", 0, 0)))
        while (await read_method(reader))[:2] != (10, 51):
            pass
    finally:
        writer.close()
        try:
            await writer.wait_closed()
        except OSError:
            pass


class Warren:
    def __init__(self, binary: str):
        self.dir = tempfile.mkdtemp(prefix="warren-conn-scale-")
        self.port, self.admin = free_port(), free_port()
        self.log = open(os.path.join(self.dir, "warren.log"), "wb")
        self.proc = subprocess.Popen(
            [binary, "--listen", f"127.0.0.1:{self.port}", "--admin-listen", f"127.0.0.1:{self.admin}",
             "--metrics-listen", "127.0.0.1:0", "--log-level", "warn", "--data-dir", os.path.join(self.dir, "data")],
            stdout=subprocess.DEVNULL, stderr=self.log)
        deadline = time.time() + 30
        while time.time() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("warren did not start")

    def rss(self) -> int:
        with open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
        return 0

    def fds(self) -> int:
        return len(os.listdir(f"/proc/{self.proc.pid}/fd"))

    def fd_limit(self) -> int:
        with open(f"/proc/{self.proc.pid}/limits") as f:
            for line in f:
                if line.startswith("Max open files"):
                    return int(line.split()[3])
        return 0

    def api(self, path: str):
        req = urllib.request.Request(f"http://127.0.0.1:{self.admin}/api/{path}")
        req.add_header("Authorization", "Basic " + base64.b64encode(b"guest:guest").decode())
        with urllib.request.urlopen(req, timeout=30) as r:
            return json.load(r)

    def connections(self) -> int:
        return self.api("overview")["object_totals"]["connections"]

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def mb(n: int) -> str:
    return f"{n / 1048576:.1f} MB"


async def settle(w: Warren, want: int, limit: float = 60.0) -> int:
    """Waits until the admin API counts `want` connections; returns the count."""
    deadline = time.time() + limit
    n = w.connections()
    while n != want and time.time() < deadline:
        await asyncio.sleep(0.5)
        n = w.connections()
    await asyncio.sleep(1.0)
    return n


async def open_many(port: int, n: int, parallel: int, consume: bool):
    sem = asyncio.Semaphore(parallel)
    failures = []

    async def one(i):
        async with sem:
            try:
                return await asyncio.wait_for(open_connection(port, SOURCES[i % len(SOURCES)], consume), 60)
            except Exception as e:  # noqa: BLE001 - counted and reported
                failures.append(repr(e))
                return None

    conns = await asyncio.gather(*(one(i) for i in range(n)))
    return [c for c in conns if c], failures


async def close_many(conns, parallel: int):
    sem = asyncio.Semaphore(parallel)

    async def one(c):
        async with sem:
            try:
                await asyncio.wait_for(close_connection(c), 30)
            except Exception:  # noqa: BLE001 - the broker side is checked instead
                c[1].close()

    await asyncio.gather(*(one(c) for c in conns))


async def burst(port: int, n: int, parallel: int):
    """n connections opened (handshake + channel) and closed, `parallel` at a time."""
    sem = asyncio.Semaphore(parallel)
    failures = []

    async def one(i):
        async with sem:
            try:
                c = await asyncio.wait_for(open_connection(port, SOURCES[i % len(SOURCES)], False), 60)
                await asyncio.wait_for(close_connection(c), 30)
            except Exception as e:  # noqa: BLE001 - counted and reported
                failures.append(repr(e))

    await asyncio.gather(*(one(i) for i in range(n)))
    return failures


async def main(a) -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    if hard < a.connections + 100:
        print(f"the client's fd limit ({hard}) is below {a.connections} connections", file=sys.stderr)
        return 1
    w = Warren(a.warren)
    ok = True
    try:
        # One queue for every consumer.
        r, wr = await open_connection(w.port, SOURCES[0], False)
        wr.write(method(1, 50, 10, struct.pack(">H", 0) + shortstr(QUEUE) + b"\x00" + struct.pack(">I", 0)))
        await expect(r, 50, 11)
        await close_connection((r, wr))
        await settle(w, 0)
        rss0, fds0 = w.rss(), w.fds()
        print(f"warren pid {w.proc.pid}, fd limit {w.fd_limit()}; client fd limit {hard}")
        print(f"idle:            RSS {mb(rss0)}, {fds0} fds")

        t = time.time()
        conns, failures = await open_many(w.port, a.connections, a.parallel, True)
        opened = time.time() - t
        held = await settle(w, len(conns))
        rss1, fds1 = w.rss(), w.fds()
        consumers = w.api("queues/%2F/" + QUEUE.decode())["consumers"]
        per = (rss1 - rss0) / max(len(conns), 1)
        print(f"holding:         {len(conns)} connections opened in {opened:.1f} s ({len(conns) / opened:.0f}/s), "
              f"{len(failures)} failed; admin API: {held} connections, {consumers} consumers")
        print(f"                 RSS {mb(rss1)}, {fds1} fds; per connection (channel + consumer): "
              f"{per / 1024:.1f} KiB")
        if failures:
            print(f"                 first failures: {failures[:3]}")
            ok = False
        peak = rss1
        for _ in range(int(a.hold)):
            await asyncio.sleep(1)
            peak = max(peak, w.rss())
        t = time.time()
        await close_many(conns, a.parallel)
        left = await settle(w, 0)
        rss2, fds2 = w.rss(), w.fds()
        print(f"closed:          in {time.time() - t:.1f} s; admin API: {left} connections; "
              f"RSS {mb(rss2)} (peak while held {mb(peak)}), {fds2} fds")
        ok &= left == 0 and fds2 <= fds0 + 2

        rss_after = []
        for round_ in (1, 2):
            t = time.time()
            failures = await burst(w.port, a.burst, a.parallel)
            took = time.time() - t
            left = await settle(w, 0)
            rss3, fds3 = w.rss(), w.fds()
            rss_after.append(rss3)
            print(f"burst {round_}:         {a.burst} opened and closed in {took:.1f} s ({a.burst / took:.0f}/s), "
                  f"{len(failures)} failed; after: admin API {left} connections, RSS {mb(rss3)}, {fds3} fds")
            if failures:
                print(f"                 first failures: {failures[:3]}")
            ok &= not failures and left == 0 and fds3 <= fds0 + 2
        grew = rss_after[1] - rss_after[0]
        print(f"leak check:      fds {fds0} idle -> {fds3} after the bursts; RSS after burst 2 - after burst 1 = "
              f"{grew / 1024:+.0f} KiB ({grew / a.burst:+.1f} B per connection)")
        ok &= grew < a.burst * 64  # well under 64 B a connection: memory is not kept per connection
    finally:
        w.stop()
    print("ok" if ok else "FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    target = os.environ.get("CARGO_TARGET_DIR", os.path.join(os.path.dirname(__file__), "..", "..", "target"))
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--warren", default=os.path.join(target, "release", "warren"))
    p.add_argument("--connections", type=int, default=10_000)
    p.add_argument("--burst", type=int, default=20_000)
    p.add_argument("--parallel", type=int, default=200, help="handshakes in flight at once")
    p.add_argument("--hold", type=float, default=5, help="seconds to hold the connections")
    sys.exit(asyncio.run(main(p.parse_args())))
