#!/usr/bin/env python3
"""Warren vs RabbitMQ, side by side, with the same client (warren-perf).

Builds Warren (unless --no-build), makes sure a RabbitMQ is running on
127.0.0.1:5672 (installing / starting it if needed), starts a private Warren
on a free port, then runs the same warren-perf scenarios against each broker,
alternating Warren, RabbitMQ, Warren, RabbitMQ, ... It samples each broker's
RSS every 100 ms, prints a markdown table of medians and writes it (plus the
raw results) to --out-md / --out-json. See interop/bench/README.md.

Standard library only.
"""

import argparse
import datetime
import json
import os
import platform
import re
import resource
import shutil
import signal
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SBIN_PATHS = ["/usr/sbin", "/usr/lib/rabbitmq/bin", "/sbin", "/usr/local/sbin"]
RSS_INTERVAL = 0.1
BROKER_NAMES = {"warren": "Warren", "rabbitmq": "RabbitMQ"}


def log(msg):
    print(f"[side-by-side {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


class Interrupted(Exception):
    pass


def _on_signal(signum, _frame):
    raise Interrupted(f"signal {signum}")


def raise_nofile():
    """preexec_fn: soft open-files limit up to the hard limit (2,000 idle connections need it)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY:
        hard = 1 << 20
    if soft != resource.RLIM_INFINITY and soft < hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        except (ValueError, OSError):
            pass


def which(name):
    path = os.environ.get("PATH", "") + os.pathsep + os.pathsep.join(SBIN_PATHS)
    return shutil.which(name, path=path)


def run_cmd(cmd, timeout=60, env=None, cwd=None):
    """Runs a short command; returns (rc, stdout+stderr). Never raises for failures."""
    try:
        p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=timeout,
                           env=env, cwd=cwd, text=True, errors="replace")
        return p.returncode, p.stdout
    except subprocess.TimeoutExpired as e:
        out = e.stdout.decode(errors="replace") if isinstance(e.stdout, bytes) else (e.stdout or "")
        return 124, out + f"\n(timed out after {timeout}s)"
    except OSError as e:
        return 127, str(e)


def port_open(host, port, timeout=0.5):
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def amqp_server_properties(host, port, timeout=5.0):
    """Opens an AMQP 0-9-1 handshake and returns connection.start's product/version strings."""
    with socket.create_connection((host, port), timeout=timeout) as s:
        s.sendall(b"AMQP\x00\x00\x09\x01")
        buf = b""
        deadline = time.time() + timeout
        while time.time() < deadline:
            if len(buf) >= 7:
                size = struct.unpack(">I", buf[3:7])[0]
                if len(buf) >= 8 + size:
                    break
            chunk = s.recv(65536)
            if not chunk:
                break
            buf += chunk
    if len(buf) < 7 or buf[0] != 1:
        raise RuntimeError(f"no AMQP 0-9-1 connection.start from {host}:{port} (got {buf[:16]!r})")
    props = {}
    for key in (b"product", b"version", b"platform"):
        m = re.search(bytes([len(key)]) + re.escape(key) + b"S(....)", buf, re.S)
        if m:
            n = struct.unpack(">I", m.group(1))[0]
            props[key.decode()] = buf[m.end():m.end() + n].decode(errors="replace")
    return props


# ---------------------------------------------------------------- RSS sampling

def read_rss_kib(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return None


def descendants(pid):
    """pid and all its descendants (via /proc/<pid>/task/*/children)."""
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        try:
            for tid in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{tid}/children") as f:
                    todo.extend(int(c) for c in f.read().split())
        except OSError:
            pass
    return out


def rss_of(pids):
    """Sum of VmRSS over pids (KiB); None if the first (main) one is gone."""
    total = None
    for i, p in enumerate(pids):
        r = read_rss_kib(p)
        if r is None:
            if i == 0:
                return None
            continue
        total = (total or 0) + r
    return total


class Sampler(threading.Thread):
    def __init__(self, pids):
        super().__init__(daemon=True)
        self.pids = pids
        self.samples = []  # (monotonic time, KiB)
        self.stop_event = threading.Event()

    def run(self):
        while not self.stop_event.is_set():
            r = rss_of(self.pids)
            if r is not None:
                self.samples.append((time.monotonic(), r))
            self.stop_event.wait(RSS_INTERVAL)

    def stop(self):
        self.stop_event.set()
        self.join(timeout=2)
        r = rss_of(self.pids)
        if r is not None:
            self.samples.append((time.monotonic(), r))

    def peak(self):
        return max((r for _, r in self.samples), default=None)


# ---------------------------------------------------------------- brokers

class Warren:
    key = "warren"

    def __init__(self, binary, workdir):
        self.binary = binary
        self.workdir = workdir
        self.port = None
        self.proc = None
        self.error = None
        self.version = None
        self.restarts = 0
        self.logfile = os.path.join(workdir, "warren.log")
        # More command-line arguments (a --config, say).
        self.extra_args = []

    @property
    def uri(self):
        return f"amqp://guest:guest@127.0.0.1:{self.port}/%2f"

    def start(self):
        rc, out = run_cmd([self.binary, "--version"], timeout=10)
        self.version = out.strip() if rc == 0 else "unknown"
        data = os.path.join(self.workdir, "data")
        shutil.rmtree(data, ignore_errors=True)
        os.makedirs(data, exist_ok=True)
        self.port = free_port()
        # Admin and metrics on ports of their own: RabbitMQ may hold 15672 and 15692.
        cmd = [self.binary, "--listen", f"127.0.0.1:{self.port}", "--admin-listen", "127.0.0.1:0",
               "--metrics-listen", "127.0.0.1:0", "--data-dir", data, "--log-level", "warn", *self.extra_args]
        with open(self.logfile, "a") as lf:
            lf.write(f"\n=== {' '.join(cmd)} ({time.strftime('%H:%M:%S')})\n")
            lf.flush()
            self.proc = subprocess.Popen(cmd, stdout=lf, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                         preexec_fn=raise_nofile)
        deadline = time.time() + 30
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"warren exited with {self.proc.returncode}: {tail(self.logfile)}")
            if port_open("127.0.0.1", self.port):
                return
            time.sleep(0.1)
        raise RuntimeError("warren did not listen within 30s")

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self.proc = None

    def restart(self):
        self.stop()
        self.restarts += 1
        self.start()

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def ensure_alive(self):
        """Restarts Warren if it died (the run that killed it already reported the failure)."""
        if not self.alive():
            code = self.proc.returncode if self.proc else None
            log(f"warren is not running (exit {code}); restarting it")
            self.restart()

    def pids(self):
        return [self.proc.pid]

    def connection_cap(self, wanted):
        return wanted, None


class RabbitMQ:
    key = "rabbitmq"

    def __init__(self, args, workdir):
        self.port = args.rabbit_port
        self.nodename = args.rabbit_nodename
        self.allow_install = not args.no_install
        self.workdir = workdir
        self.proc = None  # set only if we started it
        self.started_by_us = False
        self.pid = None
        self.error = None
        self.version = None
        self.erlang = None
        self.logfile = os.path.join(workdir, "rabbitmq-server.log")

    @property
    def uri(self):
        return f"amqp://guest:guest@127.0.0.1:{self.port}/%2f"

    def env(self):
        env = dict(os.environ)
        env["PATH"] = env.get("PATH", "") + os.pathsep + os.pathsep.join(SBIN_PATHS)
        if self.nodename:
            env["RABBITMQ_NODENAME"] = self.nodename
        if self.port != 5672:
            env["RABBITMQ_NODE_PORT"] = str(self.port)
        return env

    def ctl(self, *a, timeout=60):
        exe = which("rabbitmqctl")
        if not exe:
            return 127, "rabbitmqctl not found"
        return run_cmd([exe, *a], timeout=timeout, env=self.env())

    def install(self):
        if which("rabbitmq-server"):
            return
        if not self.allow_install:
            raise RuntimeError("rabbitmq-server is not installed (and --no-install was given)")
        log("rabbitmq-server not found: apt-get install -y rabbitmq-server")
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        rc, out = run_cmd(["apt-get", "install", "-y", "rabbitmq-server"], timeout=900, env=env)
        if rc != 0:
            run_cmd(["apt-get", "update"], timeout=600, env=env)
            rc, out = run_cmd(["apt-get", "install", "-y", "rabbitmq-server"], timeout=900, env=env)
        if rc != 0 or not which("rabbitmq-server"):
            raise RuntimeError(f"apt-get install rabbitmq-server failed: {out.strip().splitlines()[-1:]}")

    def start(self):
        self.install()
        if not port_open("127.0.0.1", self.port):
            self._launch()
        props = amqp_server_properties("127.0.0.1", self.port)
        if props.get("product") != "RabbitMQ":
            raise RuntimeError(f"127.0.0.1:{self.port} is {props.get('product', '?')}, not RabbitMQ")
        self.version = props.get("version", "?")
        if not self.version.startswith("3.10"):
            log(f"warning: RabbitMQ {self.version} (the comparison is meant for 3.10)")
        rc, out = self.ctl("eval", "erlang:system_info(otp_release).", timeout=30)
        self.erlang = out.strip().strip('"') if rc == 0 else None
        self.pid = self._find_pid()
        log(f"RabbitMQ {self.version} on 127.0.0.1:{self.port}, beam.smp pid {self.pid}"
            f"{' (started by this script)' if self.started_by_us else ' (already running; left running)'}")

    def _launch(self):
        exe = which("rabbitmq-server")
        env = self.env()
        env["RABBITMQ_NODE_IP_ADDRESS"] = "127.0.0.1"
        cmd, cwd = [exe], None
        inner = "/usr/lib/rabbitmq/bin/rabbitmq-server"
        if os.geteuid() == 0 and os.path.exists(inner) and run_cmd(["id", "-u", "rabbitmq"], timeout=10)[0] == 0:
            # What Debian's wrapper does (su to the rabbitmq user), plus raising the soft open-files
            # limit that su's pam_limits resets to 1024: that would cap RabbitMQ at ~830 sockets.
            cmd = ["su", "rabbitmq", "-s", "/bin/sh", "-c", f'ulimit -n "$(ulimit -Hn)" 2>/dev/null; exec {inner}']
            cwd = "/var/lib/rabbitmq" if os.path.isdir("/var/lib/rabbitmq") else None
        log(f"nothing listens on 127.0.0.1:{self.port}: starting {' '.join(cmd)}")
        with open(self.logfile, "a") as lf:
            self.proc = subprocess.Popen(cmd, stdout=lf, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                         env=env, cwd=cwd, start_new_session=True, preexec_fn=raise_nofile)
        self.started_by_us = True
        deadline = time.time() + 180
        last = ""
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"rabbitmq-server exited with {self.proc.returncode}: {tail(self.logfile)}")
            rc, last = self.ctl("await_startup", "--timeout", "10", timeout=30)
            if rc == 0 and port_open("127.0.0.1", self.port):
                return
            time.sleep(1)
        raise RuntimeError(f"RabbitMQ did not start within 180s: {last.strip()[-200:]}")

    def _find_pid(self):
        rc, out = self.ctl("eval", "os:getpid().", timeout=30)
        m = re.search(r'"(\d+)"', out) if rc == 0 else None
        if m and comm(int(m.group(1))) == "beam.smp":
            return int(m.group(1))
        rc, out = run_cmd(["pgrep", "-f", "beam.smp"], timeout=10)
        pids = [int(p) for p in out.split()] if rc == 0 else []
        if len(pids) == 1:
            return pids[0]
        rc, out = run_cmd(["ss", "-ltnpH", f"sport = :{self.port}"], timeout=10)
        m = re.search(r'"beam\.smp",pid=(\d+)', out)
        if m:
            return int(m.group(1))
        raise RuntimeError("cannot find RabbitMQ's beam.smp pid")

    def ensure_alive(self):
        if not port_open("127.0.0.1", self.port):
            raise RuntimeError(f"RabbitMQ is not listening on 127.0.0.1:{self.port} any more")
        if comm(self.pid) != "beam.smp":
            self.pid = self._find_pid()

    def pids(self):
        return descendants(self.pid)

    def connection_cap(self, wanted):
        """RabbitMQ refuses sockets past file_handle_cache's sockets_limit (0.9 x (ulimit -n - 100));
        run fewer idle connections rather than exhaust a broker that others may be using."""
        rc, out = self.ctl("eval", "file_handle_cache:info([sockets_limit, sockets_used]).", timeout=30)
        m = re.search(r"sockets_limit,(\d+)\},\{sockets_used,(\d+)", out.replace(" ", "")) if rc == 0 else None
        if not m:
            return wanted, None
        limit, used = int(m.group(1)), int(m.group(2))
        room = int((limit - used) * 0.5)
        if wanted <= room:
            return wanted, None
        return max(1, room), f"RabbitMQ sockets_limit {limit} (ulimit -n): held {max(1, room)} connections"

    def stop(self):
        if not self.started_by_us or self.proc is None:
            return
        log("stopping the RabbitMQ this script started")
        self.ctl("stop", timeout=120)
        try:
            self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
                self.proc.wait(timeout=30)
            except (OSError, subprocess.TimeoutExpired):
                try:
                    os.killpg(self.proc.pid, signal.SIGKILL)
                except OSError:
                    pass
        if self.pid and comm(self.pid) == "beam.smp":
            try:
                os.kill(self.pid, signal.SIGTERM)
            except OSError:
                pass
        self.proc = None


def comm(pid):
    try:
        with open(f"/proc/{pid}/comm") as f:
            return f.read().strip()
    except (OSError, TypeError):
        return None


def tail(path, n=3):
    try:
        with open(path, errors="replace") as f:
            lines = [l.strip() for l in f.read().splitlines() if l.strip()]
        return " / ".join(lines[-n:])
    except OSError:
        return ""


# ---------------------------------------------------------------- scenarios

class Metric:
    def __init__(self, label, fn, better, fmt):
        self.label, self.fn, self.better, self.fmt = label, fn, better, fmt


def fmt_rate(v):
    return f"{v:,.0f}"


def fmt_mb(v):
    return f"{v:,.1f}"


def fmt_us(v):
    return f"{v:,.0f}"


def fmt_kib(v):
    return f"{v:,.1f}"


def fmt_mib(v):
    return f"{v:,.0f}"


def summary_metric(field):
    return lambda run: run["summary"][field]


def per_unit_rss(field):
    def fn(run):
        n = run["summary"].get(field) or 0
        if not n or run.get("rss_hold_kib") is None or run.get("rss_before_kib") is None:
            return None
        return (run["rss_hold_kib"] - run["rss_before_kib"]) / n
    return fn


def peak_mib(run):
    return run["peak_rss_kib"] / 1024 if run.get("peak_rss_kib") else None


class Scenario:
    def __init__(self, key, title, args, metrics, kind="throughput", warren_supported=True,
                 queues=1, persistent=False):
        self.key, self.title, self.args, self.metrics = key, title, args, metrics
        self.kind, self.warren_supported = kind, warren_supported
        self.queues, self.persistent = queues, persistent


def scenarios(o):
    tput = ["--scenario", "throughput", "-z", str(o.duration), "--warmup", str(o.warmup)]
    acks = ["--multi-ack-every", "50", "-Q", "500"]
    delivered = Metric("delivered msg/s", summary_metric("consumed_per_sec"), "higher", fmt_rate)
    rpc = ["--scenario", "rpc", "-z", str(o.duration), "--warmup", str(o.warmup)]
    rpc_metrics = [Metric("round trip p50 (µs)", summary_metric("latency_us_p50"), "lower", fmt_us),
                   Metric("round trip p99 (µs)", summary_metric("latency_us_p99"), "lower", fmt_us)]
    return [
        Scenario("transient-noack", "1. transient 16 B, 1→1→1, no-ack",
                 tput + ["-x1", "-y1", "-q1", "-s16", "-a"], [delivered]),
        Scenario("transient-ack", "2. transient 16 B, manual ack (multi/50), prefetch 500",
                 tput + ["-x1", "-y1", "-q1", "-s16"] + acks, [delivered]),
        Scenario("persistent-confirm", "3. persistent 16 B, durable queue, confirms (1000), manual ack",
                 tput + ["-x1", "-y1", "-q1", "-s16", "--persistent", "-c", "1000"] + acks,
                 [Metric("confirmed publishes/s", summary_metric("confirmed_per_sec"), "higher", fmt_rate),
                  delivered], persistent=True),
        Scenario("fanout4", "4. fanout to 4 queues, 1 producer, 4 consumers, no-ack",
                 tput + ["-x1", "-y4", "-q4", "-s16", "--exchange", "fanout", "-a"],
                 [Metric("deliveries/s (all queues)", summary_metric("consumed_per_sec"), "higher", fmt_rate)],
                 queues=4),
        Scenario("rpc-direct-reply-to", "5a. RPC, direct reply-to", rpc + ["--direct-reply-to"], rpc_metrics,
                 kind="rpc", warren_supported=False),
        Scenario("rpc-reply-queue", "5b. RPC, reply queue", rpc, rpc_metrics, kind="rpc"),
        Scenario("large-64k", "6. 64 KiB bodies, 1→1→1, no-ack",
                 tput + ["-x1", "-y1", "-q1", "-s65536", "-a"],
                 [Metric("delivered MB/s", summary_metric("consumed_mb_per_sec"), "higher", fmt_mb)]),
        Scenario("backlog", f"7. backlog of {o.backlog:,} × 16 B (confirms 1000), then drain (no-ack)",
                 ["--scenario", "backlog", "--backlog", str(o.backlog), "-x1", "-y1", "-q1", "-s16",
                  "-c", "1000", "-a"],
                 [Metric("publish msg/s", summary_metric("published_per_sec"), "higher", fmt_rate),
                  Metric("drain msg/s", summary_metric("consumed_per_sec"), "higher", fmt_rate),
                  Metric("peak RSS (MiB)", peak_mib, "lower", fmt_mib)], kind="backlog"),
        Scenario("idle-connections", f"8a. {o.connections:,} idle connections",
                 ["--scenario", "idle", "--connections", str(o.connections), "-q", "0", "-z", str(o.hold)],
                 [Metric("RSS per connection (KiB)", per_unit_rss("connections"), "lower", fmt_kib)],
                 kind="idle", queues=0),
        Scenario("idle-queues", f"8b. {o.idle_queues:,} queues (1 connection)",
                 ["--scenario", "idle", "--connections", "1", "-q", str(o.idle_queues), "-z", str(o.hold)],
                 [Metric("RSS per queue (KiB)", per_unit_rss("queues"), "lower", fmt_kib)],
                 kind="idle", queues=o.idle_queues),
    ]


# Idle scenarios run first, on brokers that have not yet been through the
# heavy scenarios (Warren is also restarted before each memory scenario).
RUN_ORDER = ["idle-connections", "idle-queues", "transient-noack", "transient-ack", "persistent-confirm",
             "fanout4", "rpc-direct-reply-to", "rpc-reply-queue", "large-64k", "backlog"]


def perf_timeout(sc, o, args):
    if sc.kind == "rpc":
        return o.warmup + o.duration + 30
    if sc.kind == "throughput":
        return o.warmup + o.duration + 90
    if sc.kind == "backlog":
        return 120 + o.backlog / 1000
    n = int(args[args.index("--connections") + 1]) + int(args[args.index("-q") + 1])
    return o.hold + 120 + n / 20


def run_perf(perf, broker, sc, o):
    """One warren-perf run against one broker, with RSS sampling. Returns a result record."""
    args = list(sc.args)
    note = None
    if sc.key == "idle-connections":
        i = args.index("--connections") + 1
        n, note = broker.connection_cap(int(args[i]))
        args[i] = str(n)
    cmd = [perf, "--uri", broker.uri, "--json"] + args
    rec = {"broker": broker.key, "scenario": sc.key, "args": args, "ok": False, "error": None,
           "summary": None, "note": note, "peak_rss_kib": None}
    try:
        broker.ensure_alive()
    except Exception as e:  # noqa: BLE001 - any setup failure is this run's failure
        rec["error"] = f"broker unavailable: {e}"
        return rec
    pids = broker.pids()
    rec["rss_pids"] = pids
    before = []
    for _ in range(3):
        r = rss_of(pids)
        if r is not None:
            before.append(r)
        time.sleep(RSS_INTERVAL)
    rec["rss_before_kib"] = statistics.median(before) if before else None
    sampler = Sampler(pids)
    sampler.start()
    hold_at = []
    err_lines = []
    started = time.monotonic()
    timeout = perf_timeout(sc, o, args)
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
                            text=True, errors="replace", preexec_fn=raise_nofile)

    def read_err():
        for line in proc.stderr:
            line = line.rstrip()
            if line.startswith("holding "):
                hold_at.append(time.monotonic())
            err_lines.append(line)
            del err_lines[:-50]

    out_chunks = []
    readers = [threading.Thread(target=read_err, daemon=True),
               threading.Thread(target=lambda: out_chunks.append(proc.stdout.read()), daemon=True)]
    for t in readers:
        t.start()
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        rec["error"] = f"timed out after {timeout:.0f}s"
    except BaseException:
        proc.kill()
        proc.wait()
        sampler.stop()
        raise
    for t in readers:
        t.join(timeout=5)
    out = "".join(out_chunks)
    sampler.stop()
    rec["wall_seconds"] = round(time.monotonic() - started, 2)
    rec["peak_rss_kib"] = sampler.peak()
    rec["rss_samples"] = len(sampler.samples)
    if rec["error"] is None and proc.returncode != 0:
        msg = next((l for l in reversed(err_lines) if l.startswith("warren-perf:")), None)
        msg = msg or (err_lines[-1] if err_lines else f"exit {proc.returncode}")
        rec["error"] = msg.replace("warren-perf: ", "", 1)
    if rec["error"] is None:
        line = next((l for l in reversed(out.splitlines()) if l.startswith("{")), None)
        try:
            rec["summary"] = json.loads(line)
        except (TypeError, ValueError):
            rec["error"] = "no JSON summary in warren-perf's output"
    if rec["error"] is None and sc.kind in ("throughput", "rpc"):
        if "a client stopped early" in err_lines or not rec["summary"].get("consumed_per_sec"):
            rec["error"] = "a client stopped early" if "a client stopped early" in err_lines \
                else "nothing was consumed"
    if rec["error"] is None and sc.kind == "idle":
        hold = float(args[args.index("-z") + 1])
        if hold_at:
            lo, hi = hold_at[0] + min(1.0, hold / 4), hold_at[0] + hold - 0.1
            held = [r for ts, r in sampler.samples if lo <= ts <= hi] or \
                   [r for ts, r in sampler.samples if ts >= hold_at[0]]
            rec["rss_hold_kib"] = statistics.median(held) if held else None
        if rec.get("rss_hold_kib") is None:
            rec["error"] = "could not sample RSS while the connections/queues were held"
    if rec["error"]:
        rec["stderr_tail"] = err_lines[-10:]
        cleanup_after_failure(perf, broker, sc)
    rec["ok"] = rec["error"] is None
    return rec


def cleanup_after_failure(perf, broker, sc):
    """A failed run may leave its queues (and messages) behind: delete them with warren-perf itself."""
    if sc.kind == "rpc" or (broker.key == "warren" and not broker.alive()):
        return
    if sc.kind == "idle":
        if not sc.queues:
            return
        args = ["--scenario", "idle", "--connections", "1", "-q", str(sc.queues), "-z", "0"]
    else:
        # backlog of 0 messages with no producers/consumers: declares, then deletes perf-q-0..n-1
        args = ["--scenario", "backlog", "--backlog", "0", "-x0", "-y0", "-q", str(sc.queues)]
        if sc.persistent:
            args.append("--persistent")
    rc, out = run_cmd([perf, "--uri", broker.uri, "--json"] + args, timeout=120 + sc.queues / 20)
    if rc != 0:
        log(f"cleanup after the failed run on {broker.key} failed: {out.strip()[-200:]}")


# ---------------------------------------------------------------- report

def machine_info():
    cpu = "unknown CPU"
    try:
        with open("/proc/cpuinfo") as f:
            m = re.search(r"^model name\s*:\s*(.+)$", f.read(), re.M)
            cpu = m.group(1).strip() if m else cpu
    except OSError:
        pass
    mem = None
    try:
        with open("/proc/meminfo") as f:
            m = re.search(r"^MemTotal:\s*(\d+) kB", f.read(), re.M)
            mem = int(m.group(1)) / 1024 / 1024 if m else None
    except OSError:
        pass
    return {"nproc": os.cpu_count(), "cpu": cpu, "ram_gib": round(mem, 1) if mem else None,
            "kernel": platform.release(), "loadavg": os.getloadavg()}


def git_rev():
    rc, out = run_cmd(["git", "-C", REPO, "rev-parse", "--short", "HEAD"], timeout=10)
    if rc != 0:
        return None
    rc2, st = run_cmd(["git", "-C", REPO, "status", "--porcelain", "--untracked-files=no"], timeout=10)
    return out.strip() + ("-dirty" if rc2 == 0 and st.strip() else "")


def md_escape(s):
    return str(s).replace("|", "\\|").replace("\n", " ")


def short_error(e, n=70):
    e = " ".join(str(e).split())
    return e if len(e) <= n else e[:n - 1] + "…"


def aggregate(sc, metric, runs):
    """(median value or None, cell text, notes) over one broker's rounds."""
    if not runs:
        return None, "not run", []
    vals = []
    errors = []
    notes = []
    for r in runs:
        if r["ok"]:
            v = metric.fn(r)
            if v is not None:
                vals.append(v)
        else:
            errors.append(r["error"])
        if r.get("note") and r["note"] not in notes:
            notes.append(r["note"])
    if not vals:
        err = errors[0] if errors else "no value"
        return None, f"n/a (error: {short_error(err)})", notes
    med = statistics.median(vals)
    text = metric.fmt(med)
    if errors:
        text += f" ({len(vals)}/{len(runs)} ok)"
    if notes:
        text += " †"
    return med, text, notes


def peak_cell(runs):
    if not runs:
        return "–"
    peaks = [r["peak_rss_kib"] for r in runs if r.get("peak_rss_kib")]
    return f"{statistics.median(peaks) / 1024:,.0f} MiB" if peaks else "–"


def ratio_cell(metric, w, r):
    if w is None or r is None:
        return "–"
    if metric.better == "higher":
        return f"{w / r:.2f}× (W/R)" if r > 0 else "–"
    if w <= 0:
        return "–" if w < 0 or r <= 0 else "∞ (R/W)"
    return f"{r / w:.2f}× (R/W)"


def build_table(scs, results, brokers_run):
    lines = ["| scenario | metric | Warren | RabbitMQ | ratio | peak RSS Warren | peak RSS RabbitMQ |",
             "| --- | --- | ---: | ---: | ---: | ---: | ---: |"]
    footnotes = []
    for sc in scs:
        if sc.key not in results:
            continue
        per = results[sc.key]
        for i, metric in enumerate(sc.metrics):
            cells = {}
            vals = {}
            for b in ("warren", "rabbitmq"):
                runs = per.get(b) if b in brokers_run else None
                vals[b], cells[b], notes = aggregate(sc, metric, runs)
                for n in notes:
                    fn = f"† {BROKER_NAMES[b]}, {sc.title}: {n}"
                    if fn not in footnotes:
                        footnotes.append(fn)
            lines.append("| " + " | ".join(md_escape(c) for c in [
                sc.title if i == 0 else "", metric.label, cells["warren"], cells["rabbitmq"],
                ratio_cell(metric, vals["warren"], vals["rabbitmq"]),
                peak_cell(per.get("warren")) if i == 0 else "",
                peak_cell(per.get("rabbitmq")) if i == 0 else ""]) + " |")
    return lines, footnotes


# ---------------------------------------------------------------- main

def parse_args(argv):
    p = argparse.ArgumentParser(description="Warren vs RabbitMQ with warren-perf, side by side.",
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--brokers", default="warren,rabbitmq", help="comma-separated: warren, rabbitmq")
    p.add_argument("--rounds", type=int, default=1, help="runs per scenario and broker (medians reported)")
    p.add_argument("--duration", type=float, default=None, help="seconds measured per throughput/RPC run "
                   "(default 10, or 1 with --quick)")
    p.add_argument("--warmup", type=float, default=None, help="warm-up seconds (default 2, or 0.5 with --quick)")
    p.add_argument("--backlog", type=int, default=None, help="backlog messages (default 1000000, 20000 quick)")
    p.add_argument("--connections", type=int, default=None, help="idle connections (default 2000, 200 quick)")
    p.add_argument("--idle-queues", type=int, default=None, help="idle queues (default 10000, 1000 quick)")
    p.add_argument("--hold", type=float, default=None, help="seconds the idle scenarios hold (default 5, 2 quick)")
    p.add_argument("--quick", action="store_true", help="smoke run: ~1 s per scenario, small backlog/idle counts")
    p.add_argument("--scenarios", default=None, help="comma-separated subset of: " + ", ".join(RUN_ORDER))
    p.add_argument("--no-build", action="store_true", help="skip cargo build --release --bins")
    p.add_argument("--no-install", action="store_true", help="never apt-get install rabbitmq-server")
    p.add_argument("--rabbit-port", type=int, default=5672, help="RabbitMQ AMQP port on 127.0.0.1")
    p.add_argument("--rabbit-nodename", default=None,
                   help="RABBITMQ_NODENAME for rabbitmqctl (and for a node this script starts)")
    p.add_argument("--warren-restart", choices=["memory", "always", "never"], default="memory",
                   help="restart Warren before each run: of the memory scenarios (backlog, idle), always, never")
    p.add_argument("--pause", type=float, default=None, help="seconds between runs (default 2, 0.5 quick)")
    p.add_argument("--out-md", help="write the markdown report here")
    p.add_argument("--out-json", help="write the raw results (JSON) here")
    p.add_argument("--keep-tmp", action="store_true", help="keep the temporary directory (Warren data, logs)")
    o = p.parse_args(argv)
    q = o.quick
    defaults = {"duration": (10, 1), "warmup": (2, 0.5), "backlog": (1_000_000, 20_000),
                "connections": (2000, 200), "idle_queues": (10_000, 1000), "hold": (5, 2), "pause": (2, 0.5)}
    for k, (full, quick) in defaults.items():
        if getattr(o, k) is None:
            setattr(o, k, quick if q else full)
    o.brokers = [b.strip().lower() for b in o.brokers.split(",") if b.strip()]
    bad = [b for b in o.brokers if b not in BROKER_NAMES]
    if bad or not o.brokers:
        p.error(f"--brokers: unknown {bad}; use warren and/or rabbitmq")
    if o.rounds < 1:
        p.error("--rounds must be at least 1")
    if o.scenarios:
        o.scenarios = [s.strip() for s in o.scenarios.split(",") if s.strip()]
        bad = [s for s in o.scenarios if s not in RUN_ORDER]
        if bad:
            p.error(f"--scenarios: unknown {bad}")
    return o


def target_dir():
    t = os.environ.get("CARGO_TARGET_DIR")
    if t:
        return t if os.path.isabs(t) else os.path.join(REPO, t)
    return os.path.join(REPO, "target")


def main(argv):
    o = parse_args(argv)
    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGHUP, _on_signal)

    if not o.no_build:
        log("cargo build --release --bins")
        rc = subprocess.call(["cargo", "build", "--release", "--bins"], cwd=REPO)
        if rc != 0:
            log(f"cargo build failed ({rc})")
            return 2
    release = os.path.join(target_dir(), "release")
    warren_bin, perf_bin = os.path.join(release, "warren"), os.path.join(release, "warren-perf")
    for b in (warren_bin, perf_bin):
        if not os.access(b, os.X_OK):
            log(f"missing {b} (build first, or set CARGO_TARGET_DIR)")
            return 2

    wanted = [s for s in RUN_ORDER if o.scenarios is None or s in o.scenarios]
    all_scs = scenarios(o)
    by_key = {s.key: s for s in all_scs}
    table_scs = [s for s in all_scs if s.key in wanted]
    workdir = tempfile.mkdtemp(prefix="warren-side-by-side-")
    brokers = {}
    broker_errors = {}
    results = {}
    started_at = datetime.datetime.now(datetime.timezone.utc)
    warren_failed = []
    runs_ok = 0
    interrupted = None
    try:
        if "warren" in o.brokers:
            w = Warren(warren_bin, workdir)
            try:
                w.start()
                brokers["warren"] = w
                log(f"{w.version} on 127.0.0.1:{w.port} (pid {w.proc.pid}, data in {workdir})")
            except Exception as e:  # noqa: BLE001
                broker_errors["warren"] = str(e)
                w.stop()
                log(f"warren did not start: {e}")
        if "rabbitmq" in o.brokers:
            r = RabbitMQ(o, workdir)
            try:
                r.start()
                brokers["rabbitmq"] = r
            except Exception as e:  # noqa: BLE001
                broker_errors["rabbitmq"] = str(e)
                r.stop()
                log(f"RabbitMQ unavailable: {e}")

        total = len(wanted) * o.rounds * len(o.brokers)
        n = 0
        for key in wanted:
            sc = by_key[key]
            results[key] = {b: [] for b in o.brokers}
            for rnd in range(o.rounds):
                for b in o.brokers:
                    n += 1
                    if b not in brokers:
                        results[key][b].append({"broker": b, "scenario": key, "ok": False,
                                                "error": f"{BROKER_NAMES[b]} unavailable: "
                                                         f"{broker_errors.get(b)}"})
                        continue
                    broker = brokers[b]
                    if b == "warren" and (o.warren_restart == "always" or
                                          (o.warren_restart == "memory" and sc.kind in ("backlog", "idle"))):
                        try:
                            broker.restart()
                        except Exception as e:  # noqa: BLE001
                            log(f"warren restart failed: {e}")
                    log(f"[{n}/{total}] {key} round {rnd + 1}/{o.rounds} on {BROKER_NAMES[b]} ...")
                    rec = run_perf(perf_bin, broker, sc, o)
                    if sc.kind == "rpc" and not rec["ok"] and rec["error"].startswith("timed out"):
                        # warren-perf's RPC requester can wait forever for the reply to a request
                        # sent just as the responder stopped (a client-side shutdown race): retry once.
                        log(f"    {rec['error']}: retrying once (warren-perf RPC shutdown race)")
                        first = rec
                        rec = run_perf(perf_bin, broker, sc, o)
                        rec["note"] = "first attempt timed out (warren-perf RPC shutdown race); retried"
                        rec["first_attempt"] = first
                    rec["round"] = rnd + 1
                    results[key][b].append(rec)
                    if rec["ok"]:
                        runs_ok += 1
                        shown = ", ".join(f"{m.label} {m.fmt(m.fn(rec))}" for m in sc.metrics
                                          if m.fn(rec) is not None)
                    else:
                        shown = f"FAILED: {rec['error']}"
                        if b == "warren" and sc.warren_supported:
                            warren_failed.append(f"{key} (round {rnd + 1}): {rec['error']}")
                    peak = rec.get("peak_rss_kib")
                    log(f"    {shown}" + (f"; peak RSS {peak / 1024:,.0f} MiB" if peak else ""))
                    time.sleep(o.pause)
    except (KeyboardInterrupt, Interrupted) as e:
        interrupted = str(e) or "interrupted"
        log(f"interrupted ({interrupted}); reporting what ran")
    finally:
        for b in brokers.values():
            try:
                b.stop()
            except Exception as e:  # noqa: BLE001
                log(f"stopping {b.key}: {e}")

    # A scenario Warren supports but that it could not run because it did not start also counts.
    if "warren" in o.brokers and "warren" not in brokers:
        warren_failed.append(f"warren did not start: {broker_errors.get('warren')}")

    mi = machine_info()
    w, r = brokers.get("warren"), brokers.get("rabbitmq")
    versions = []
    if "warren" in o.brokers:
        versions.append(f"Warren {(w.version or '?').replace('warren ', '') if w else 'n/a'}"
                        f" (git {git_rev() or '?'})")
    if "rabbitmq" in o.brokers:
        versions.append(f"RabbitMQ {r.version} / Erlang OTP {r.erlang or '?'}"
                        f"{' (started by this script)' if r.started_by_us else ''}" if r else
                        f"RabbitMQ n/a ({short_error(broker_errors.get('rabbitmq'), 100)})")
    mode = "quick smoke run" if o.quick else "full run"
    header = [f"# Warren vs RabbitMQ, side by side ({mode}, {started_at:%Y-%m-%d %H:%M} UTC)", "",
              f"Machine: {mi['nproc']} CPUs ({mi['cpu']}), {mi['ram_gib']} GiB RAM, Linux {mi['kernel']}, "
              f"load average at start {mi['loadavg'][0]:.2f}. Versions: {'; '.join(versions)}. "
              f"Client: warren-perf, same machine. Medians of {o.rounds} round(s), brokers alternating; "
              f"throughput/RPC runs: {o.duration:g} s after {o.warmup:g} s warm-up.", ""]
    lines, footnotes = build_table(table_scs, results, o.brokers)
    notes = ["", "Ratio > 1 means Warren is better: W/R = Warren ÷ RabbitMQ for higher-is-better metrics, "
             "R/W = RabbitMQ ÷ Warren for lower-is-better ones (latency, RSS). Peak RSS: highest VmRSS "
             "sampled every 100 ms during the run (RabbitMQ: beam.smp plus children), median over rounds. "
             "Idle RSS per unit = (median RSS while held − RSS just before) ÷ count."
             + (" Warren is restarted before the backlog and idle runs." if o.warren_restart == "memory"
                else "")]
    notes += footnotes
    if interrupted:
        notes.append(f"Interrupted ({interrupted}): partial results.")
    report = "\n".join(header + lines + notes) + "\n"
    print(report)

    raw = {"started_at": started_at.isoformat(), "options": {k: v for k, v in vars(o).items()},
           "machine": mi, "versions": versions, "brokers": {
               k: {"uri": b.uri, "pid": (b.proc.pid if k == "warren" and b.proc else getattr(b, "pid", None)),
                   "version": b.version, "started_by_us": getattr(b, "started_by_us", True)}
               for k, b in brokers.items()},
           "broker_errors": broker_errors, "warren_failures": warren_failed, "interrupted": interrupted,
           "table_markdown": report, "results": results}
    if o.out_md:
        with open(o.out_md, "w") as f:
            f.write(report)
    if o.out_json:
        with open(o.out_json, "w") as f:
            json.dump(raw, f, indent=2, default=str)
            f.write("\n")
    if o.keep_tmp:
        log(f"kept {workdir}")
    else:
        shutil.rmtree(workdir, ignore_errors=True)

    if warren_failed:
        log("Warren failed: " + "; ".join(warren_failed))
        return 1
    if interrupted:
        return 130
    if runs_ok == 0:
        log("nothing could run")
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
