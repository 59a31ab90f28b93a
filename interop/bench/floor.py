#!/usr/bin/env python3
"""Warren against the floor of the machine (issue #17), in the same run.

For each scenario of issue #17, runs `warren-perf` against a private release
Warren with `--floor` (the same scenario, right after, over a trivial
user-space relay: see src/perf/floor.rs) and `--broker-pid` (broker CPU per
delivered message, from /proc), and, where the target names it, against the
RabbitMQ on 127.0.0.1:5672 (started, or installed from Debian, by
side_by_side.py's helpers). Latency runs twice: with the cores idle, and with
`--background-load` (a spinning thread at nice 19 keeps a core awake), as
the two regimes of a virtual machine differ by ~50 µs per wake-up.

Prints a markdown table (and writes it to --out-md): each figure, its
floor, the share or multiple of the floor, RabbitMQ's where measured, and
the target. Standard library only.

    python3 interop/bench/floor.py                     # everything, ~6 minutes
    python3 interop/bench/floor.py --only rpc,64k      # a subset
    python3 interop/bench/floor.py --no-rabbitmq       # Warren and the floor only
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import side_by_side as sbs  # noqa: E402  (the brokers, RSS sampling, logging)

# key: (title, warren-perf arguments, what is compared, target)
SCENARIOS = {
    "rpc-direct": ("RPC, direct reply-to", ["--scenario", "rpc", "--direct-reply-to"], "latency",
                   "p50 ≤ 1.5×, p99 ≤ 2× the floor's; p99 ≤ ½ RabbitMQ's"),
    "rpc-queue": ("RPC, reply queue", ["--scenario", "rpc"], "latency",
                  "p50 ≤ 1.5×, p99 ≤ 2× the floor's; p99 ≤ ½ RabbitMQ's"),
    "64k": ("64 KiB bodies, 1→1, no-ack", ["-x1", "-y1", "-s", "65536", "-a"], "bytes", "≥ 90% of the floor's MB/s"),
    "1m": ("1 MiB bodies, 1→1, no-ack", ["-x1", "-y1", "-s", "1048576", "-a"], "bytes", "≥ 80% of the floor's MB/s"),
    "16m": ("16 MiB bodies, 1→1, no-ack", ["-x1", "-y1", "-s", "16777216", "-a"], "bytes",
            "≥ 80% of the floor's MB/s"),
    "steady": ("16 B at 100k msg/s, 1→1, manual ack", ["-x1", "-y1", "-s16", "-r", "100000", "-Q", "1000",
                                                         "--multi-ack-every", "50"], "latency", "p99 ≤ 0.3 ms"),
    "persistent-16": ("persistent + confirms (1000), 16 B, 1 publisher, no-ack",
                      ["-x1", "-y1", "-s16", "--persistent", "-c", "1000", "-a"], "cpu", "CPU per message halved"),
    "persistent-1k-8": ("persistent + confirms (1000), 1 KiB, 8 publishers, no-ack",
                        ["-x8", "-y8", "-q8", "-s1024", "--persistent", "-c", "1000", "-a"], "cpu",
                        "CPU per message halved"),
    # Manual acks: the messages are written (the no-ack rows hand them over unwritten).
    "persistent-16-ack": ("persistent + confirms (1000), 16 B, 1 publisher, manual ack",
                          ["-x1", "-y1", "-s16", "--persistent", "-c", "1000"], "cpu", "(the store's own cost)"),
    "persistent-1k-8-ack": ("persistent + confirms (1000), 1 KiB, 8 publishers, manual ack",
                            ["-x8", "-y8", "-q8", "-s1024", "--persistent", "-c", "1000"], "cpu",
                            "(the store's own cost)"),
    # Manual acks, so the message is written and its confirm waits for the disk.
    "confirm-1": ("persistent, 1 confirm outstanding, 16 B, manual ack",
                  ["-x1", "-y1", "-s16", "--persistent", "-c", "1"],
                  "cpu", "p99 ≤ 2 fdatasyncs"),
    "one-to-one": ("16 B, 1→1, no-ack", ["-x1", "-y1", "-s16", "-a"], "rate", "(the reference for 64×64×64)"),
    # The reference is the same backlog drained from memory (a head that holds it all).
    "paged-drain": ("draining a paged-out backlog, 16 B persistent (confirms 1000), no-ack",
                    ["--scenario", "backlog", "-x1", "-y1", "-q1", "-s16", "--persistent", "-c", "1000", "-a"],
                    "backlog", "≥ 80% of the in-memory drain rate"),
    "64x64x64": ("64 queues × 64 producers × 64 consumers, 16 B, no-ack",
                 ["-x64", "-y64", "-q64", "-s16", "-a"], "rate", "≥ 1→1's msg/s"),
}
LATENCY_REGIMES = [("idle", []), ("loaded", ["--background-load"])]
RABBIT_TOO = {"rpc-direct", "rpc-queue"}


def perf(binary, uri, args, o, floor, pid):
    cmd = [binary, "--uri", uri, "--json", "-z", str(o.duration), "--warmup", str(o.warmup), *args]
    if pid:
        cmd += ["--broker-pid", str(pid)]
    if floor:
        cmd.append("--floor")
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=600)
    line = next((l for l in reversed(p.stdout.splitlines()) if l.startswith("{")), None)
    if p.returncode != 0 or not line:
        raise RuntimeError(f"{' '.join(cmd)}: {p.stderr.strip().splitlines()[-1:]}")
    return json.loads(line)


def run_warren(warren, binary, args, o, floor):
    sampler = sbs.Sampler(warren.pids())
    sampler.start()
    try:
        s = perf(binary, warren.uri, args, o, floor, warren.proc.pid)
    finally:
        sampler.stop()
    s["peak_rss_mib"] = (sampler.peak() or 0) / 1024
    return s


def run_backlog(warren, binary, args, o, work):
    """The backlog drained from pages (default head), and as the floor the
    same backlog drained from memory, on a Warren whose head holds it all."""
    conf = os.path.join(work, "all-in-memory.toml")
    with open(conf, "w") as f:
        f.write(f"[storage]\nqueue_head_messages = {o.backlog + 1}\nqueue_head_bytes = {1 << 40}\n")
    memdir = os.path.join(work, "in-memory")
    os.makedirs(memdir, exist_ok=True)
    mem = sbs.Warren(warren.binary, memdir)
    mem.extra_args = ["--config", conf]
    mem.start()
    try:
        floor = run_warren(mem, binary, args, o, False)
    finally:
        mem.stop()
        shutil.rmtree(memdir, ignore_errors=True)
    warren.restart()
    s = run_warren(warren, binary, args, o, False)
    s["floor"] = floor
    s["backlog"] = o.backlog
    return s


def us(v):
    return f"{v} µs"


def rows_for(key, s, rabbit):
    """Markdown rows: scenario/regime label, metric, Warren, floor, against the floor, RabbitMQ."""
    title, _, kind, _ = SCENARIOS[key]
    f = s.get("floor") or {}
    out = []
    cpu = s.get("broker_cpu_us_per_msg")
    fcpu = f.get("broker_cpu_us_per_msg")
    if kind == "backlog":
        w, fl = s["consumed_per_sec"], f["consumed_per_sec"]
        out.append((f"drain msg/s (floor: {s['backlog']:,} in memory)", f"{w:,.0f}", f"{fl:,.0f}",
                    f"{100 * w / fl:.0f}%", ""))
        out.append(("publish msg/s", f"{s['published_per_sec']:,.0f}", f"{f['published_per_sec']:,.0f}", "", ""))
        out.append(("broker peak RSS", f"{s['peak_rss_mib']:.0f} MiB", f"{f['peak_rss_mib']:.0f} MiB", "", ""))
    elif kind == "latency":
        for p in ("p50", "p99"):
            w, fl = s[f"latency_us_{p}"], f.get(f"latency_us_{p}")
            r = rabbit and rabbit[f"latency_us_{p}"]
            out.append((f"latency {p}", us(w), us(fl) if fl else "", f"{w / max(fl, 1):.2f}×" if fl else "",
                        us(r) if r else ""))
    elif kind == "bytes":
        w, fl = s["consumed_mb_per_sec"], f.get("consumed_mb_per_sec")
        out.append(("MB/s", f"{w:,.0f}", f"{fl:,.0f}" if fl else "", f"{100 * w / fl:.0f}%" if fl else "", ""))
        out.append(("broker peak RSS", f"{s['peak_rss_mib']:.0f} MiB", "", "", ""))
    else:
        w, fl = s["consumed_per_sec"], f.get("consumed_per_sec")
        out.append(("delivered msg/s", f"{w:,.0f}", f"{fl:,.0f}" if fl else "",
                    f"{100 * w / fl:.0f}%" if fl else "", ""))
        if kind == "cpu":
            c = s["confirmed_per_sec"]
            out.append(("confirmed msg/s", f"{c:,.0f}", "", "", ""))
            # A confirm's floor is the disk's: an append and fdatasync (--fsync-floor).
            fs50, fs99 = s.get("fdatasync_us_p50"), s.get("fdatasync_us_p99")
            out.append(("confirm p50 / p99 (floor: fdatasync)", f"{s['confirm_us_p50']} / {s['confirm_us_p99']} µs",
                        f"{fs50} / {fs99} µs" if fs99 else "",
                        f"{s['confirm_us_p99'] / fs99:.1f} fdatasyncs at p99" if fs99 else "", ""))
            out.append(("delivery latency p50 / p99", f"{s['latency_us_p50']} / {s['latency_us_p99']} µs", "", "", ""))
    if cpu is not None:
        out.append(("CPU per message", f"{cpu:.2f} µs", f"{fcpu:.2f} µs" if fcpu is not None else "",
                    f"{cpu / fcpu:.1f}×" if fcpu else "", ""))
    return out


def run_all(o, keys, binaries, perf_bin, work):
    """Every scenario of `keys` against one Warren (restarted where a row
    needs an empty broker) and RabbitMQ where named; the table's lines."""
    warren = sbs.Warren(os.path.join(binaries, "warren"), work)
    warren.start()
    rabbit = None
    lines = ["| scenario | regime | metric | Warren | floor | Warren ÷ floor | RabbitMQ 3.10 | target |",
             "|---|---|---|---:|---:|---:|---:|---|"]
    try:
        if not o.no_rabbitmq and RABBIT_TOO & set(keys):
            rabbit = sbs.RabbitMQ(o, work)
            rabbit.start()
        for key in keys:
            title, args, kind, target = SCENARIOS[key]
            regimes = LATENCY_REGIMES if kind == "latency" else [("", [])]
            for regime, extra in regimes:
                sbs.log(f"{key} {regime}")
                if kind == "bytes" or key.startswith("persistent") or key == "confirm-1":
                    warren.restart()  # each starts from an empty broker: RSS and disk are its own
                floor = kind in ("latency", "bytes") or key in ("one-to-one", "64x64x64")
                fsync = ["--fsync-floor", work] if kind == "cpu" else []
                if kind == "backlog":
                    args = args + ["--backlog", str(o.backlog)]
                    s = run_backlog(warren, perf_bin, args, o, work)
                else:
                    s = run_warren(warren, perf_bin, args + extra + fsync, o, floor)
                r = None
                if rabbit and key in RABBIT_TOO:
                    r = perf(perf_bin, rabbit.uri, args + extra, o, False, rabbit.pid)
                for i, (metric, w, fl, share, rb) in enumerate(rows_for(key, s, r)):
                    label = title if i == 0 else ""
                    lines.append(f"| {label} | {regime if i == 0 else ''} | {metric} | {w} | {fl} | {share} | {rb} | "
                                 f"{target if i == 0 else ''} |")
    finally:
        warren.stop()
        if rabbit:
            rabbit.stop()
    return lines


def main(argv):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--only", help="comma-separated subset of: " + ", ".join(SCENARIOS))
    p.add_argument("--duration", type=float, default=8.0)
    p.add_argument("--warmup", type=float, default=1.0)
    p.add_argument("--backlog", type=int, default=10_000_000, help="messages of the paged-drain scenario")
    p.add_argument("--no-rabbitmq", action="store_true")
    p.add_argument("--no-build", action="store_true")
    p.add_argument("--out-md")
    # What side_by_side.RabbitMQ reads.
    p.add_argument("--rabbit-port", type=int, default=5672)
    p.add_argument("--rabbit-nodename", default=None)
    p.add_argument("--no-install", action="store_true")
    o = p.parse_args(argv)
    keys = [k.strip() for k in o.only.split(",")] if o.only else list(SCENARIOS)
    bad = [k for k in keys if k not in SCENARIOS]
    if bad:
        p.error(f"unknown scenarios {bad}")
    if not o.no_build:
        subprocess.check_call(["cargo", "build", "--release", "--bins"], cwd=sbs.REPO)
    binaries = os.path.join(sbs.target_dir(), "release")
    perf_bin = os.path.join(binaries, "warren-perf")
    work = tempfile.mkdtemp(prefix="warren-floor-")
    try:
        lines = run_all(o, keys, binaries, perf_bin, work)
    finally:
        # A paged-drain run leaves over a GiB of store behind.
        shutil.rmtree(work, ignore_errors=True)
    rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=sbs.REPO, stdout=subprocess.PIPE,
                         text=True).stdout.strip()
    report = f"Run {time.strftime('%Y-%m-%d')} (git {rev}), {o.duration:g} s per run:\n\n" + "\n".join(lines)
    print(report)
    if o.out_md:
        with open(o.out_md, "w") as f:
            f.write(report + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
