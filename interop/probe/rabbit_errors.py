#!/usr/bin/env python3
"""Raw-socket AMQP 0-9-1 probe (stdlib only).

Records exactly how a broker (RabbitMQ as the reference) answers bad input and
common misuse, so Warren can copy the behaviour.  Every case uses a fresh TCP
connection; each read has a ~2 s timeout and every case is wrapped in
try/except so one odd case cannot stop the rest.

Usage:
    python3 rabbit_errors.py [--host 127.0.0.1] [--port 5672]
                             [--out /work/notes/rabbit-errors.md]
                             [--json results.json] [--only SUBSTRING]
                             [--long]   # include the slow (>10 s) timing cases
"""
import argparse
import json
import os
import random
import socket
import string
import struct
import subprocess
import sys
import time
import traceback

FRAME_METHOD, FRAME_HEADER, FRAME_BODY, FRAME_HEARTBEAT = 1, 2, 3, 8
FRAME_END = 0xCE
PROTO_HEADER = b"AMQP\x00\x00\x09\x01"
TIMEOUT = 2.0

# --------------------------------------------------------------------------
# Method spec (the subset of AMQP 0-9-1 we need to encode and decode)
# --------------------------------------------------------------------------
B, O, S, L, LL, SS, LS, T = "bit", "octet", "short", "long", "longlong", "shortstr", "longstr", "table"

METHODS = {
    (10, 10): ("connection.start", [("version_major", O), ("version_minor", O), ("server_properties", T), ("mechanisms", LS), ("locales", LS)]),
    (10, 11): ("connection.start-ok", [("client_properties", T), ("mechanism", SS), ("response", LS), ("locale", SS)]),
    (10, 20): ("connection.secure", [("challenge", LS)]),
    (10, 21): ("connection.secure-ok", [("response", LS)]),
    (10, 30): ("connection.tune", [("channel_max", S), ("frame_max", L), ("heartbeat", S)]),
    (10, 31): ("connection.tune-ok", [("channel_max", S), ("frame_max", L), ("heartbeat", S)]),
    (10, 40): ("connection.open", [("virtual_host", SS), ("reserved_1", SS), ("reserved_2", B)]),
    (10, 41): ("connection.open-ok", [("reserved_1", SS)]),
    (10, 50): ("connection.close", [("reply_code", S), ("reply_text", SS), ("class_id", S), ("method_id", S)]),
    (10, 51): ("connection.close-ok", []),
    (10, 60): ("connection.blocked", [("reason", SS)]),
    (10, 61): ("connection.unblocked", []),
    (20, 10): ("channel.open", [("reserved_1", SS)]),
    (20, 11): ("channel.open-ok", [("reserved_1", LS)]),
    (20, 20): ("channel.flow", [("active", B)]),
    (20, 21): ("channel.flow-ok", [("active", B)]),
    (20, 40): ("channel.close", [("reply_code", S), ("reply_text", SS), ("class_id", S), ("method_id", S)]),
    (20, 41): ("channel.close-ok", []),
    (40, 10): ("exchange.declare", [("reserved_1", S), ("exchange", SS), ("type", SS), ("passive", B), ("durable", B), ("auto_delete", B), ("internal", B), ("no_wait", B), ("arguments", T)]),
    (40, 11): ("exchange.declare-ok", []),
    (40, 20): ("exchange.delete", [("reserved_1", S), ("exchange", SS), ("if_unused", B), ("no_wait", B)]),
    (40, 21): ("exchange.delete-ok", []),
    (40, 30): ("exchange.bind", [("reserved_1", S), ("destination", SS), ("source", SS), ("routing_key", SS), ("no_wait", B), ("arguments", T)]),
    (40, 31): ("exchange.bind-ok", []),
    (40, 40): ("exchange.unbind", [("reserved_1", S), ("destination", SS), ("source", SS), ("routing_key", SS), ("no_wait", B), ("arguments", T)]),
    (40, 51): ("exchange.unbind-ok", []),
    (50, 10): ("queue.declare", [("reserved_1", S), ("queue", SS), ("passive", B), ("durable", B), ("exclusive", B), ("auto_delete", B), ("no_wait", B), ("arguments", T)]),
    (50, 11): ("queue.declare-ok", [("queue", SS), ("message_count", L), ("consumer_count", L)]),
    (50, 20): ("queue.bind", [("reserved_1", S), ("queue", SS), ("exchange", SS), ("routing_key", SS), ("no_wait", B), ("arguments", T)]),
    (50, 21): ("queue.bind-ok", []),
    (50, 30): ("queue.purge", [("reserved_1", S), ("queue", SS), ("no_wait", B)]),
    (50, 31): ("queue.purge-ok", [("message_count", L)]),
    (50, 40): ("queue.delete", [("reserved_1", S), ("queue", SS), ("if_unused", B), ("if_empty", B), ("no_wait", B)]),
    (50, 41): ("queue.delete-ok", [("message_count", L)]),
    (50, 50): ("queue.unbind", [("reserved_1", S), ("queue", SS), ("exchange", SS), ("routing_key", SS), ("arguments", T)]),
    (50, 51): ("queue.unbind-ok", []),
    (60, 10): ("basic.qos", [("prefetch_size", L), ("prefetch_count", S), ("global", B)]),
    (60, 11): ("basic.qos-ok", []),
    (60, 20): ("basic.consume", [("reserved_1", S), ("queue", SS), ("consumer_tag", SS), ("no_local", B), ("no_ack", B), ("exclusive", B), ("no_wait", B), ("arguments", T)]),
    (60, 21): ("basic.consume-ok", [("consumer_tag", SS)]),
    (60, 30): ("basic.cancel", [("consumer_tag", SS), ("no_wait", B)]),
    (60, 31): ("basic.cancel-ok", [("consumer_tag", SS)]),
    (60, 40): ("basic.publish", [("reserved_1", S), ("exchange", SS), ("routing_key", SS), ("mandatory", B), ("immediate", B)]),
    (60, 50): ("basic.return", [("reply_code", S), ("reply_text", SS), ("exchange", SS), ("routing_key", SS)]),
    (60, 60): ("basic.deliver", [("consumer_tag", SS), ("delivery_tag", LL), ("redelivered", B), ("exchange", SS), ("routing_key", SS)]),
    (60, 70): ("basic.get", [("reserved_1", S), ("queue", SS), ("no_ack", B)]),
    (60, 71): ("basic.get-ok", [("delivery_tag", LL), ("redelivered", B), ("exchange", SS), ("routing_key", SS), ("message_count", L)]),
    (60, 72): ("basic.get-empty", [("reserved_1", SS)]),
    (60, 80): ("basic.ack", [("delivery_tag", LL), ("multiple", B)]),
    (60, 90): ("basic.reject", [("delivery_tag", LL), ("requeue", B)]),
    (60, 100): ("basic.recover-async", [("requeue", B)]),
    (60, 110): ("basic.recover", [("requeue", B)]),
    (60, 111): ("basic.recover-ok", []),
    (60, 120): ("basic.nack", [("delivery_tag", LL), ("multiple", B), ("requeue", B)]),
    (85, 10): ("confirm.select", [("nowait", B)]),
    (85, 11): ("confirm.select-ok", []),
    (90, 10): ("tx.select", []),
    (90, 11): ("tx.select-ok", []),
    (90, 20): ("tx.commit", []),
    (90, 21): ("tx.commit-ok", []),
    (90, 30): ("tx.rollback", []),
    (90, 31): ("tx.rollback-ok", []),
}
BY_NAME = {v[0]: (k, v[1]) for k, v in METHODS.items()}


def method_name(cid, mid):
    m = METHODS.get((cid, mid))
    return m[0] if m else "%d.%d" % (cid, mid)


# --------------------------------------------------------------------------
# Encoding
# --------------------------------------------------------------------------
def enc_ss(v):
    b = v.encode() if isinstance(v, str) else v
    return struct.pack(">B", len(b)) + b


def enc_ls(v):
    b = v.encode() if isinstance(v, str) else v
    return struct.pack(">I", len(b)) + b


def enc_value(v):
    """Python value -> tagged field value.  Use (tag, value) for explicit tags."""
    if isinstance(v, tuple):
        tag, val = v
        fmt = {"b": ">b", "B": ">B", "s": ">h", "u": ">H", "I": ">i", "i": ">I",
               "l": ">q", "L": ">Q", "f": ">f", "d": ">d", "T": ">Q"}
        if tag in fmt:
            return tag.encode() + struct.pack(fmt[tag], val)
        if tag == "t":
            return b"t" + struct.pack(">B", 1 if val else 0)
        if tag in "Sx":
            return tag.encode() + enc_ls(val)
        if tag == "V":
            return b"V"
        raise ValueError(tag)
    if isinstance(v, bool):
        return b"t" + struct.pack(">B", 1 if v else 0)
    if isinstance(v, int):
        if -2 ** 31 <= v < 2 ** 31:
            return b"I" + struct.pack(">i", v)
        return b"l" + struct.pack(">q", v)
    if isinstance(v, float):
        return b"d" + struct.pack(">d", v)
    if isinstance(v, (str, bytes)):
        return b"S" + enc_ls(v)
    if isinstance(v, dict):
        return b"F" + enc_table(v)
    if isinstance(v, list):
        inner = b"".join(enc_value(x) for x in v)
        return b"A" + struct.pack(">I", len(inner)) + inner
    if v is None:
        return b"V"
    raise TypeError(type(v))


def enc_table(d):
    inner = b"".join(enc_ss(k) + enc_value(v) for k, v in (d or {}).items())
    return struct.pack(">I", len(inner)) + inner


def enc_args(spec, kw):
    out = b""
    bitacc, nbits = 0, 0
    for name, typ in spec:
        val = kw.get(name)
        if typ == B:
            if val:
                bitacc |= 1 << nbits
            nbits += 1
            if nbits == 8:
                out += struct.pack(">B", bitacc)
                bitacc, nbits = 0, 0
            continue
        if nbits:
            out += struct.pack(">B", bitacc)
            bitacc, nbits = 0, 0
        if typ == O:
            out += struct.pack(">B", val or 0)
        elif typ == S:
            out += struct.pack(">H", val or 0)
        elif typ == L:
            out += struct.pack(">I", val or 0)
        elif typ == LL:
            out += struct.pack(">Q", val or 0)
        elif typ == SS:
            out += enc_ss(val or "")
        elif typ == LS:
            out += enc_ls(val or b"")
        elif typ == T:
            out += enc_table(val or {})
    if nbits:
        out += struct.pack(">B", bitacc)
    return out


def method_payload(name, **kw):
    (cid, mid), spec = BY_NAME[name]
    return struct.pack(">HH", cid, mid) + enc_args(spec, kw)


def frame(typ, ch, payload, end=FRAME_END, size=None):
    if size is None:
        size = len(payload)
    return struct.pack(">BHI", typ, ch, size) + payload + bytes([end])


def mframe(ch, name, **kw):
    return frame(FRAME_METHOD, ch, method_payload(name, **kw))


def header_payload(body_size, class_id=60, flags=0, props=b""):
    return struct.pack(">HHQH", class_id, 0, body_size, flags) + props


# --------------------------------------------------------------------------
# Decoding
# --------------------------------------------------------------------------
class Reader:
    def __init__(self, data):
        self.d, self.p = data, 0

    def take(self, n):
        if self.p + n > len(self.d):
            raise ValueError("truncated")
        r = self.d[self.p:self.p + n]
        self.p += n
        return r

    def unpack(self, fmt):
        return struct.unpack(fmt, self.take(struct.calcsize(fmt)))[0]

    def ss(self):
        return self.take(self.unpack(">B")).decode("utf-8", "replace")

    def ls(self):
        return self.take(self.unpack(">I"))

    def table(self):
        r = Reader(self.ls())
        out = {}
        while r.p < len(r.d):
            k = r.ss()
            out[k] = r.value()
        return out

    def value(self):
        tag = chr(self.take(1)[0])
        fmts = {"b": ">b", "B": ">B", "s": ">h", "u": ">H", "I": ">i", "i": ">I",
                "l": ">q", "L": ">Q", "f": ">f", "d": ">d", "T": ">Q"}
        if tag in fmts:
            return self.unpack(fmts[tag])
        if tag == "t":
            return bool(self.take(1)[0])
        if tag == "D":
            sc = self.unpack(">B")
            return ("decimal", sc, self.unpack(">i"))
        if tag in "Sx":
            v = self.ls()
            try:
                return v.decode()
            except UnicodeDecodeError:
                return repr(v)
        if tag == "A":
            r = Reader(self.ls())
            out = []
            while r.p < len(r.d):
                out.append(r.value())
            return out
        if tag == "F":
            return self.table()
        if tag == "V":
            return None
        raise ValueError("unknown field tag %r" % tag)


def dec_args(spec, data):
    r = Reader(data)
    out = {}
    bitbyte, nbit = 0, 8
    for name, typ in spec:
        if typ == B:
            if nbit == 8:
                bitbyte, nbit = r.unpack(">B"), 0
            out[name] = bool(bitbyte & (1 << nbit))
            nbit += 1
            continue
        nbit = 8
        if typ == O:
            out[name] = r.unpack(">B")
        elif typ == S:
            out[name] = r.unpack(">H")
        elif typ == L:
            out[name] = r.unpack(">I")
        elif typ == LL:
            out[name] = r.unpack(">Q")
        elif typ == SS:
            out[name] = r.ss()
        elif typ == LS:
            v = r.ls()
            try:
                out[name] = v.decode()
            except UnicodeDecodeError:
                out[name] = repr(v)
        elif typ == T:
            out[name] = r.table()
    return out


class Frame:
    def __init__(self, typ, ch, payload, end, raw=None):
        self.typ, self.ch, self.payload, self.end, self.raw = typ, ch, payload, end, raw
        self.name, self.args = None, {}
        if typ == FRAME_METHOD and len(payload) >= 4:
            cid, mid = struct.unpack(">HH", payload[:4])
            self.cid, self.mid = cid, mid
            self.name = method_name(cid, mid)
            if (cid, mid) in METHODS:
                try:
                    self.args = dec_args(METHODS[(cid, mid)][1], payload[4:])
                except Exception as e:  # noqa
                    self.args = {"decode_error": str(e)}

    def describe(self, brief=False):
        if self.raw is not None:
            return "raw bytes %r" % self.raw
        end = "" if self.end == FRAME_END else " (BAD frame-end 0x%02x)" % self.end
        if self.typ == FRAME_METHOD:
            a = self.args
            if self.name in ("connection.close", "channel.close"):
                return "ch%d %s(code=%d, text=%r, class_id=%d, method_id=%d [%s])%s" % (
                    self.ch, self.name, a["reply_code"], a["reply_text"], a["class_id"],
                    a["method_id"], method_name(a["class_id"], a["method_id"]), end)
            if brief and self.name == "connection.start":
                return "ch0 connection.start(%d-%d, ...)" % (a["version_major"], a["version_minor"])
            if a:
                return "ch%d %s(%s)%s" % (self.ch, self.name,
                                         ", ".join("%s=%r" % kv for kv in a.items()), end)
            return "ch%d %s%s" % (self.ch, self.name, end)
        if self.typ == FRAME_HEADER:
            try:
                cid, w, size, flags = struct.unpack(">HHQH", self.payload[:14])
                return "ch%d content-header(class=%d, body_size=%d, flags=0x%04x)%s" % (
                    self.ch, cid, size, flags, end)
            except struct.error:
                return "ch%d content-header(?)" % self.ch
        if self.typ == FRAME_BODY:
            return "ch%d content-body(%d bytes: %r)%s" % (self.ch, len(self.payload), self.payload[:40], end)
        if self.typ == FRAME_HEARTBEAT:
            return "ch%d heartbeat%s" % (self.ch, end)
        return "frame type=%d ch=%d size=%d%s" % (self.typ, self.ch, len(self.payload), end)


# --------------------------------------------------------------------------
# Connection
# --------------------------------------------------------------------------
class Conn:
    def __init__(self, host, port):
        self.sock = socket.create_connection((host, port), timeout=5)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""
        self.eof = None  # None | "EOF" | "RST"
        self.eof_at = None
        self.start = None
        self.tune = None
        self.log = []

    # ---- raw IO
    def send(self, data):
        try:
            self.sock.sendall(data)
            return True
        except OSError as e:
            self._mark_eof("send failed: %s" % e.__class__.__name__)
            return False

    def _mark_eof(self, what):
        if self.eof is None:
            self.eof = what
            self.eof_at = time.time()

    def _fill(self, deadline):
        rem = deadline - time.time()
        if rem <= 0 or self.eof:
            return False
        self.sock.settimeout(rem)
        try:
            d = self.sock.recv(65536)
        except socket.timeout:
            return False
        except ConnectionResetError:
            self._mark_eof("RST (connection reset)")
            return False
        except OSError as e:
            self._mark_eof("error %s" % e)
            return False
        if not d:
            self._mark_eof("EOF (FIN)")
            return False
        self.buf += d
        return True

    def read_raw(self, timeout=TIMEOUT):
        """Read raw bytes until EOF or timeout; returns bytes."""
        deadline = time.time() + timeout
        while self._fill(deadline):
            pass
        d, self.buf = self.buf, b""
        return d

    def read_frame(self, timeout=TIMEOUT):
        deadline = time.time() + timeout
        while True:
            if self.buf[:4] == b"AMQP" and len(self.buf) >= 8:
                raw, self.buf = self.buf[:8], self.buf[8:]
                return Frame(None, None, b"", None, raw=raw)
            if len(self.buf) >= 7:
                typ, ch, size = struct.unpack(">BHI", self.buf[:7])
                if len(self.buf) >= size + 8:
                    payload, end = self.buf[7:7 + size], self.buf[7 + size]
                    self.buf = self.buf[size + 8:]
                    return Frame(typ, ch, payload, end)
            if self.eof:
                if self.buf:
                    raw, self.buf = self.buf, b""
                    return Frame(None, None, b"", None, raw=raw)
                return None
            if not self._fill(deadline):
                if self.eof and self.buf:
                    continue
                return None

    def wait_eof(self, timeout=TIMEOUT):
        """Wait for the server to close the socket; returns (closed?, extra frames)."""
        t0 = time.time()
        extra = []
        deadline = t0 + timeout
        while time.time() < deadline and not self.eof:
            f = self.read_frame(deadline - time.time())
            if f is not None:
                extra.append(f.describe())
        return self.eof, (self.eof_at - t0 if self.eof_at else None), extra

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    # ---- AMQP helpers
    def send_method(self, ch, name, **kw):
        return self.send(mframe(ch, name, **kw))

    def expect(self, name, timeout=TIMEOUT, ch=None):
        f = self.read_frame(timeout)
        if f is None or f.name != name or (ch is not None and f.ch != ch):
            raise RuntimeError("expected %s, got %s (socket: %s)" % (
                name, f.describe() if f else "nothing", self.eof or "open"))
        return f

    def handshake(self, vhost="/", user="guest", password="guest", stop_after=None,
                  channel_max=None, frame_max=None, heartbeat=0, caps=True):
        self.send(PROTO_HEADER)
        self.start = self.expect("connection.start")
        if stop_after == "start":
            return
        props = {"product": "warren-probe", "platform": "python3"}
        if caps:
            props["capabilities"] = {
                "publisher_confirms": True, "consumer_cancel_notify": True,
                "exchange_exchange_bindings": True, "basic.nack": True,
                "connection.blocked": True, "authentication_failure_close": True,
            }
        self.send_method(0, "connection.start-ok", client_properties=props, mechanism="PLAIN",
                         response=b"\0" + user.encode() + b"\0" + password.encode(), locale="en_US")
        self.tune = self.expect("connection.tune")
        if stop_after == "tune":
            return
        t = self.tune.args
        self.send_method(0, "connection.tune-ok",
                         channel_max=t["channel_max"] if channel_max is None else channel_max,
                         frame_max=t["frame_max"] if frame_max is None else frame_max,
                         heartbeat=heartbeat)
        if stop_after == "tune-ok":
            return
        self.send_method(0, "connection.open", virtual_host=vhost)
        self.expect("connection.open-ok")

    def open_channel(self, ch):
        self.send_method(ch, "channel.open")
        self.expect("channel.open-ok", ch=ch)

    def call(self, ch, name, expect=None, **kw):
        """Send a synchronous method and return the first method frame back."""
        self.send_method(ch, name, **kw)
        while True:
            f = self.read_frame()
            if f is None:
                raise RuntimeError("no reply to %s (socket: %s)" % (name, self.eof or "open"))
            if f.typ == FRAME_METHOD and (f.ch == ch or f.ch == 0):
                if expect and f.name != expect:
                    raise RuntimeError("%s -> %s" % (name, f.describe()))
                return f

    def publish(self, ch, exchange, rk, body=b"x", mandatory=False, immediate=False):
        data = mframe(ch, "basic.publish", exchange=exchange, routing_key=rk,
                      mandatory=mandatory, immediate=immediate)
        data += frame(FRAME_HEADER, ch, header_payload(len(body)))
        if body:
            data += frame(FRAME_BODY, ch, body)
        return self.send(data)


def observe(c, timeout=TIMEOUT, reply_close_ok=True, stop_on=(), eof_wait=5.0):
    """Collect what the server sends after a stimulus.

    Stops at channel.close / connection.close / any method in stop_on / EOF /
    `timeout` seconds of silence.  On connection.close replies close-ok (if
    reply_close_ok) and then waits for the socket to close.
    Returns dict(frames=[...], socket=str).
    """
    frames = []
    t0 = time.time()
    sock_state = None
    while True:
        f = c.read_frame(timeout)
        if f is None:
            if c.eof:
                sock_state = "closed by server: %s after %.0f ms" % (c.eof, (c.eof_at - t0) * 1000)
            else:
                sock_state = "open (no further bytes in %.1f s)" % timeout
            break
        frames.append(f.describe())
        if f.name == "connection.close":
            if reply_close_ok:
                c.send_method(0, "connection.close-ok")
                closed, dt, extra = c.wait_eof(eof_wait)
                frames.extend(extra)
                if closed:
                    sock_state = "client sent close-ok; server closed socket (%s) %.0f ms later" % (closed, dt * 1000)
                else:
                    sock_state = "client sent close-ok; socket still open after %.1f s" % eof_wait
            else:
                closed, dt, extra = c.wait_eof(eof_wait)
                frames.extend(extra)
                sock_state = ("no close-ok sent; server closed socket (%s) %.0f ms later" % (closed, dt * 1000)
                              if closed else "no close-ok sent; socket still open after %.1f s" % eof_wait)
            break
        if f.name == "channel.close" or f.name in stop_on:
            sock_state = "open"
            break
    return {"frames": frames, "socket": sock_state}


# --------------------------------------------------------------------------
# Case registry
# --------------------------------------------------------------------------
CASES = []


def case(section, title, sent=""):
    def deco(fn):
        CASES.append({"section": section, "title": title, "sent": sent, "fn": fn})
        return fn
    return deco


RUN_ID = "".join(random.choice(string.ascii_lowercase) for _ in range(5))
CREATED_Q, CREATED_X = set(), set()


def qn(name):
    n = "probe-%s-%s" % (RUN_ID, name)
    CREATED_Q.add(n)
    return n


def xn(name):
    n = "probe-%s-x-%s" % (RUN_ID, name)
    CREATED_X.add(n)
    return n


ARGS = None  # argparse namespace, set in main


def new_conn():
    return Conn(ARGS.host, ARGS.port)


def ready(ch=1):
    """Fresh connection, handshake done, channel `ch` open."""
    c = new_conn()
    c.handshake()
    if ch:
        c.open_channel(ch)
    return c


def alive_check(c, ch=9):
    """After a stimulus that got no reply, check the connection still works."""
    try:
        c.send_method(ch, "channel.open")
        f = c.read_frame()
        res = "liveness check (channel.open on ch%d): %s" % (ch, f.describe() if f else
                                                             "no reply, socket: %s" % (c.eof or "open"))
        if f and f.name == "channel.open-ok":
            c.send(frame(1, 1, method_payload("queue.declare", queue="", exclusive=True)))
            g = c.read_frame()
            res += "; queue.declare on ch1: %s" % (g.describe() if g else "no reply (%s)" % (c.eof or "open"))
        return res
    except Exception as e:  # noqa
        return "liveness check failed: %s" % e


def expect_error(c, data, silent_ok_check=True, **kw):
    kw.setdefault("timeout", getattr(c, "obs_timeout", TIMEOUT))
    c.send(data)
    r = observe(c, **kw)
    if not r["frames"] and not c.eof and silent_ok_check:
        r["frames"].append("(nothing) -> " + alive_check(c))
    return r


# ==========================================================================
# Section 1: protocol header variants
# ==========================================================================
def header_case(hdr, wait=TIMEOUT):
    def fn():
        c = new_conn()
        c.send(hdr)
        data = c.read_raw(wait)
        desc = []
        if data[:4] == b"AMQP" and len(data) >= 8:
            desc.append("header echo %r" % data[:8])
            rest = data[8:]
        else:
            rest = data
        if rest:
            try:
                typ, ch, size = struct.unpack(">BHI", rest[:7])
                f = Frame(typ, ch, rest[7:7 + size], rest[7 + size] if len(rest) > 7 + size else 0)
                desc.append(f.describe(brief=True))
            except Exception:  # noqa
                desc.append("bytes %r" % rest[:60])
        if not data:
            desc.append("(no bytes)")
        sock = ("closed by server: %s" % c.eof) if c.eof else "open after %.1f s" % wait
        c.close()
        return {"frames": desc, "socket": sock}
    return fn


for _h, _note in [
    (b"AMQP\x00\x00\x09\x01", "correct 0-9-1 header (baseline)"),
    (b"AMQP\x00\x00\x09\x00", "0-9-0 (wrong revision)"),
    (b"AMQP\x01\x01\x00\x09", "legacy 0-9 header"),
    (b"AMQP\x01\x01\x08\x00", "legacy 0-8 header"),
    (b"AMQP\x00\x00\x08\x00", "AMQP 0-8 in 0-9-1 layout"),
    (b"AMQP\x00\x01\x00\x00", "AMQP 1.0 (no plugin)"),
    (b"AMQP\x03\x01\x00\x00", "AMQP 1.0 SASL layer"),
    (b"HTTP/1.1", "HTTP/1.1"),
    (b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", "full HTTP request"),
    (b"AMQP\x00\x00\x09\x01\x01\x00", "correct header + 2 stray bytes"),
]:
    case(1, _note, repr(_h))(header_case(_h))

case(1, "partial header 'AMQP' then silence (2 s)", "b'AMQP'")(header_case(b"AMQP"))


@case(1, "header then silence: handshake_timeout (waits up to 15 s)", "correct header, never send start-ok")
def _handshake_timeout():
    if not ARGS.long:
        return {"frames": ["skipped (use --long)"], "socket": "-"}
    c = new_conn()
    c.send(PROTO_HEADER)
    t0 = time.time()
    f = c.read_frame()
    frames = [f.describe(brief=True) if f else "nothing"]
    while time.time() - t0 < 15 and not c.eof:
        g = c.read_frame(15 - (time.time() - t0))
        if g:
            frames.append(g.describe())
    sock = ("closed by server (%s) %.1f s after header" % (c.eof, c.eof_at - t0)) if c.eof else "open after 15 s"
    return {"frames": frames, "socket": sock}


# ==========================================================================
# Section 2a: frame-level errors before / during the handshake
# ==========================================================================
def pre(stop_after="start"):
    c = new_conn()
    c.handshake(stop_after=stop_after)
    c.obs_timeout = PRE_WAIT
    return c


PRE_WAIT = 5.0  # RabbitMQ sleeps 3 s (SILENT_CLOSE_DELAY) before a silent handshake close


START_OK = dict(client_properties={"product": "warren-probe"}, mechanism="PLAIN",
                response=b"\0guest\0guest", locale="en_US")


@case("2a", "start-ok with bad frame-end octet (0x00)", "after connection.start")
def _():
    c = pre()
    return expect_error(c, frame(1, 0, method_payload("connection.start-ok", **START_OK), end=0x00))


@case("2a", "unknown frame type 9 on ch0 instead of start-ok")
def _():
    c = pre()
    return expect_error(c, frame(9, 0, b"abc"))


def hb_then_start_ok(ch):
    c = pre()
    c.send(frame(8, ch, b""))
    r = observe(c, timeout=1.0)
    frames = ["after heartbeat: " + ("; ".join(r["frames"]) or "nothing")]
    if c.eof:
        return {"frames": frames, "socket": r["socket"]}
    c.send_method(0, "connection.start-ok", **START_OK)
    r = observe(c, timeout=PRE_WAIT, stop_on=("connection.tune",))
    frames.append("then start-ok: " + ("; ".join(r["frames"]) or "nothing"))
    return {"frames": frames, "socket": r["socket"]}


@case("2a", "heartbeat frame on ch0 instead of start-ok (then start-ok)")
def _():
    return hb_then_start_ok(0)


@case("2a", "connection.open instead of start-ok")
def _():
    c = pre()
    return expect_error(c, mframe(0, "connection.open", virtual_host="/"))


@case("2a", "channel.open on ch1 instead of start-ok")
def _():
    c = pre()
    return expect_error(c, mframe(1, "channel.open"))


@case("2a", "start-ok on channel 1")
def _():
    c = pre()
    return expect_error(c, mframe(1, "connection.start-ok", **START_OK))


@case("2a", "truncated start-ok (mechanism shortstr len 200, 3 bytes)")
def _():
    c = pre()
    p = struct.pack(">HH", 10, 11) + enc_table({}) + b"\xc8abc"
    return expect_error(c, frame(1, 0, p))


@case("2a", "start-ok frame announcing size 200000 (frame_max not yet negotiated)")
def _():
    c = pre()
    p = method_payload("connection.start-ok", **START_OK)
    p = p + b"\0" * (200000 - len(p))
    return expect_error(c, frame(1, 0, p))


@case("2a", "start-ok frame of 5000 bytes (> 4096 FRAME_MIN) during handshake")
def _():
    c = pre()
    props = {"product": "warren-probe", "pad": "p" * 4800}
    return expect_error(c, mframe(0, "connection.start-ok", client_properties=props, mechanism="PLAIN",
                                  response=b"\0guest\0guest", locale="en_US"), stop_on=("connection.tune",))


@case("2a", "bad password, client capability authentication_failure_close=true")
def _():
    c = new_conn()
    c.send(PROTO_HEADER)
    c.expect("connection.start")
    props = {"product": "warren-probe", "capabilities": {"authentication_failure_close": True}}
    return expect_error(c, mframe(0, "connection.start-ok", client_properties=props, mechanism="PLAIN",
                                  response=b"\0guest\0wrong", locale="en_US"))


@case("2a", "bad password, no authentication_failure_close capability")
def _():
    c = pre()
    return expect_error(c, mframe(0, "connection.start-ok", client_properties={"product": "p"},
                                  mechanism="PLAIN", response=b"\0guest\0wrong", locale="en_US"),
                        silent_ok_check=False)


@case("2a", "unknown user 'nobody'")
def _():
    c = new_conn()
    c.send(PROTO_HEADER)
    c.expect("connection.start")
    props = {"capabilities": {"authentication_failure_close": True}}
    return expect_error(c, mframe(0, "connection.start-ok", client_properties=props, mechanism="PLAIN",
                                  response=b"\0nobody\0guest", locale="en_US"))


@case("2a", "unknown mechanism 'FOO'")
def _():
    c = pre()
    return expect_error(c, mframe(0, "connection.start-ok", client_properties={}, mechanism="FOO",
                                  response=b"\0guest\0guest", locale="en_US"))


@case("2a", "PLAIN response without NULs ('guestguest')")
def _():
    c = pre()
    props = {"capabilities": {"authentication_failure_close": True}}
    return expect_error(c, mframe(0, "connection.start-ok", client_properties=props, mechanism="PLAIN",
                                  response=b"guestguest", locale="en_US"))


@case("2a", "AMQPLAIN mechanism with LOGIN/PASSWORD table")
def _():
    c = pre()
    resp = enc_table({"LOGIN": "guest", "PASSWORD": "guest"})[4:]
    return expect_error(c, mframe(0, "connection.start-ok", client_properties={}, mechanism="AMQPLAIN",
                                  response=resp, locale="en_US"), stop_on=("connection.tune",))


@case("2a", "unknown locale 'xx_XX'")
def _():
    c = pre()
    return expect_error(c, mframe(0, "connection.start-ok", client_properties={}, mechanism="PLAIN",
                                  response=b"\0guest\0guest", locale="xx_XX"), stop_on=("connection.tune",))


@case("2a", "tune-ok frame_max=1000 (< 4096)")
def _():
    c = pre("tune")
    return expect_error(c, mframe(0, "connection.tune-ok", channel_max=2047, frame_max=1000, heartbeat=0)
                        + mframe(0, "connection.open", virtual_host="/"), stop_on=("connection.open-ok",))


@case("2a", "tune-ok frame_max=200000 (> server 131072)")
def _():
    c = pre("tune")
    return expect_error(c, mframe(0, "connection.tune-ok", channel_max=2047, frame_max=200000, heartbeat=0)
                        + mframe(0, "connection.open", virtual_host="/"), stop_on=("connection.open-ok",))


@case("2a", "tune-ok frame_max=0 (unlimited)")
def _():
    c = pre("tune")
    return expect_error(c, mframe(0, "connection.tune-ok", channel_max=2047, frame_max=0, heartbeat=0)
                        + mframe(0, "connection.open", virtual_host="/"), stop_on=("connection.open-ok",))


@case("2a", "tune-ok channel_max=3000 (> server 2047)")
def _():
    c = pre("tune")
    return expect_error(c, mframe(0, "connection.tune-ok", channel_max=3000, frame_max=131072, heartbeat=0)
                        + mframe(0, "connection.open", virtual_host="/"), stop_on=("connection.open-ok",))


@case("2a", "tune-ok channel_max=0 (unlimited)")
def _():
    c = pre("tune")
    return expect_error(c, mframe(0, "connection.tune-ok", channel_max=0, frame_max=131072, heartbeat=0)
                        + mframe(0, "connection.open", virtual_host="/"), stop_on=("connection.open-ok",))


@case("2a", "skip tune-ok, send connection.open directly")
def _():
    c = pre("tune")
    return expect_error(c, mframe(0, "connection.open", virtual_host="/"), stop_on=("connection.open-ok",))


@case("2a", "connection.open vhost '/nope' (missing)")
def _():
    c = pre("tune-ok")
    return expect_error(c, mframe(0, "connection.open", virtual_host="/nope"), stop_on=("connection.open-ok",))


@case("2a", "connection.open vhost '' (empty)")
def _():
    c = pre("tune-ok")
    return expect_error(c, mframe(0, "connection.open", virtual_host=""), stop_on=("connection.open-ok",))


@case("2a", "channel.open on ch1 after tune-ok, before connection.open")
def _():
    c = pre("tune-ok")
    return expect_error(c, mframe(1, "channel.open"))


@case("2a", "heartbeat on ch1 during handshake (after connection.start, then start-ok)")
def _():
    return hb_then_start_ok(1)


@case("2a", "second connection.open after open-ok")
def _():
    c = ready(0)
    return expect_error(c, mframe(0, "connection.open", virtual_host="/"))


@case("2a", "second start-ok after open-ok")
def _():
    c = ready(0)
    return expect_error(c, mframe(0, "connection.start-ok", **START_OK))


@case("2a", "heartbeat=1 negotiated, client then silent (waits up to 8 s)")
def _():
    c = new_conn()
    c.handshake(heartbeat=1)
    t0 = time.time()
    frames = []
    while time.time() - t0 < 8 and not c.eof:
        f = c.read_frame(8 - (time.time() - t0))
        if f:
            frames.append("%.1fs: %s" % (time.time() - t0, f.describe()))
    sock = ("closed by server (%s) %.1f s after open-ok" % (c.eof, c.eof_at - t0)) if c.eof else "open after 8 s"
    return {"frames": frames, "socket": sock}


# ==========================================================================
# Section 2b: frame-level errors after the handshake (channel 1 open)
# ==========================================================================
DECL = method_payload("queue.declare", queue="", exclusive=True)


@case("2b", "bad frame-end octet (0x00) on queue.declare ch1")
def _():
    return expect_error(ready(), frame(1, 1, DECL, end=0x00))


@case("2b", "bad frame-end octet (0x00) on heartbeat ch0")
def _():
    return expect_error(ready(), frame(8, 0, b"", end=0x00))


@case("2b", "unknown frame type 9 on ch0")
def _():
    return expect_error(ready(), frame(9, 0, b"abc"))


@case("2b", "unknown frame type 9 on ch1")
def _():
    return expect_error(ready(), frame(9, 1, b"abc"))


@case("2b", "frame type 4 (old 0-8 oob-method) on ch1")
def _():
    return expect_error(ready(), frame(4, 1, b"abc"))


@case("2b", "queue.declare: queue shortstr length 200, only 3 bytes follow")
def _():
    p = struct.pack(">HHH", 50, 10, 0) + b"\xc8abc"
    return expect_error(ready(), frame(1, 1, p))


@case("2b", "queue.declare: missing bits+table (payload ends after queue name)")
def _():
    p = struct.pack(">HHH", 50, 10, 0) + enc_ss("q")
    return expect_error(ready(), frame(1, 1, p))


@case("2b", "queue.declare: arguments table with unknown field type 'Z'")
def _():
    tbl = enc_ss("x-foo") + b"Z\x00\x00"
    p = struct.pack(">HHH", 50, 10, 0) + enc_ss("") + b"\x04" + struct.pack(">I", len(tbl)) + tbl
    return expect_error(ready(), frame(1, 1, p))


@case("2b", "queue.declare: table length larger than payload")
def _():
    p = struct.pack(">HHH", 50, 10, 0) + enc_ss("") + b"\x04" + struct.pack(">I", 1000) + b"abc"
    return expect_error(ready(), frame(1, 1, p))


@case("2b", "queue.declare with 5 trailing garbage bytes after valid args")
def _():
    return expect_error(ready(), frame(1, 1, DECL + b"\x01\x02\x03\x04\x05"),
                        stop_on=("queue.declare-ok",))


@case("2b", "method frame with 2-byte payload (class id only)")
def _():
    return expect_error(ready(), frame(1, 1, b"\x00\x32"))


@case("2b", "method frame with empty payload")
def _():
    return expect_error(ready(), frame(1, 1, b""))


@case("2b", "unknown class 999 method 10 on ch1")
def _():
    return expect_error(ready(), frame(1, 1, struct.pack(">HH", 999, 10)))


@case("2b", "unknown class 999 method 10 on ch0")
def _():
    return expect_error(ready(), frame(1, 0, struct.pack(">HH", 999, 10)))


@case("2b", "class 50 unknown method 99 on ch1")
def _():
    return expect_error(ready(), frame(1, 1, struct.pack(">HH", 50, 99)))


@case("2b", "class 10 unknown method 99 on ch0")
def _():
    return expect_error(ready(), frame(1, 0, struct.pack(">HH", 10, 99)))


@case("2b", "queue.declare on ch5 (never opened)")
def _():
    return expect_error(ready(), frame(1, 5, DECL))


@case("2b", "channel.close on ch5 (never opened)")
def _():
    return expect_error(ready(), mframe(5, "channel.close", reply_code=200, reply_text="bye"))


@case("2b", "channel.close-ok on ch5 (never opened)")
def _():
    return expect_error(ready(), mframe(5, "channel.close-ok"))


@case("2b", "content header on ch1 with no preceding basic.publish")
def _():
    return expect_error(ready(), frame(2, 1, header_payload(5)))


@case("2b", "content body on ch1 with no preceding header")
def _():
    return expect_error(ready(), frame(3, 1, b"hello"))


@case("2b", "content header on ch5 (never opened)")
def _():
    return expect_error(ready(), frame(2, 5, header_payload(5)))


@case("2b", "basic.publish then queue.declare instead of header")
def _():
    return expect_error(ready(), mframe(1, "basic.publish", exchange="", routing_key="x") + frame(1, 1, DECL))


@case("2b", "basic.publish, header(body_size=5), then a method instead of the body")
def _():
    return expect_error(ready(), mframe(1, "basic.publish", exchange="", routing_key="x")
                        + frame(2, 1, header_payload(5)) + frame(1, 1, DECL))


@case("2b", "basic.publish then body frame (no header)")
def _():
    return expect_error(ready(), mframe(1, "basic.publish", exchange="", routing_key="x")
                        + frame(3, 1, b"hello"))


@case("2b", "basic.publish then heartbeat (ch0) then header+body")
def _():
    return expect_error(ready(), mframe(1, "basic.publish", exchange="", routing_key="x") + frame(8, 0, b"")
                        + frame(2, 1, header_payload(5)) + frame(3, 1, b"hello"))


@case("2b", "basic.publish on ch1, then method on ch2 (interleaved), then header on ch1")
def _():
    c = ready()
    c.open_channel(2)
    return expect_error(c, mframe(1, "basic.publish", exchange="", routing_key="x") + frame(1, 2, DECL)
                        + frame(2, 1, header_payload(5)) + frame(3, 1, b"hello"),
                        stop_on=("queue.declare-ok",))


@case("2b", "frame announcing size 200000 (> frame_max 131072), full payload sent")
def _():
    c = ready()
    data = mframe(1, "basic.publish", exchange="", routing_key="nowhere") + frame(2, 1, header_payload(300000))
    return expect_error(c, data + frame(3, 1, b"\0" * 200000))


@case("2b", "frame header only announcing size 200000 (no payload sent)")
def _():
    c = ready()
    data = mframe(1, "basic.publish", exchange="", routing_key="nowhere") + frame(2, 1, header_payload(300000))
    return expect_error(c, data + struct.pack(">BHI", 3, 1, 200000))


@case("2b", "body frame payload = 131064 (frame_max-8, total frame == frame_max)")
def _():
    c = ready()
    data = mframe(1, "basic.publish", exchange="", routing_key="nowhere") + frame(2, 1, header_payload(131064))
    return expect_error(c, data + frame(3, 1, b"\0" * 131064))


@case("2b", "body frame payload = 131065 (total frame frame_max+1)")
def _():
    c = ready()
    data = mframe(1, "basic.publish", exchange="", routing_key="nowhere") + frame(2, 1, header_payload(131065))
    return expect_error(c, data + frame(3, 1, b"\0" * 131065))


@case("2b", "body frame payload = 131072 (== frame_max)")
def _():
    c = ready()
    data = mframe(1, "basic.publish", exchange="", routing_key="nowhere") + frame(2, 1, header_payload(131072))
    return expect_error(c, data + frame(3, 1, b"\0" * 131072))


@case("2b", "body frame payload = 131073 (frame_max+1)")
def _():
    c = ready()
    data = mframe(1, "basic.publish", exchange="", routing_key="nowhere") + frame(2, 1, header_payload(300000))
    return expect_error(c, data + frame(3, 1, b"\0" * 131073))


@case("2b", "channel.open on ch3000 (channel_max=2047)")
def _():
    return expect_error(ready(0), mframe(3000, "channel.open"), stop_on=("channel.open-ok",))


@case("2b", "channel.open on ch2047 (== channel_max)")
def _():
    return expect_error(ready(0), mframe(2047, "channel.open"), stop_on=("channel.open-ok",))


@case("2b", "channel.open on ch2048 (channel_max+1)")
def _():
    return expect_error(ready(0), mframe(2048, "channel.open"), stop_on=("channel.open-ok",))


@case("2b", "tune-ok channel_max=2, then open ch1, ch2, ch3")
def _():
    c = new_conn()
    c.handshake(channel_max=2)
    frames = []
    for ch in (1, 2, 3):
        c.send_method(ch, "channel.open")
        r = observe(c, stop_on=("channel.open-ok",))
        frames.append("open ch%d: %s" % (ch, "; ".join(r["frames"]) or "nothing"))
        if c.eof:
            break
    return {"frames": frames, "socket": r["socket"]}


@case("2b", "tune-ok channel_max=2, open ch5 and ch9 (numbers > channel_max, count <= 2)")
def _():
    c = new_conn()
    c.handshake(channel_max=2)
    frames = []
    for ch in (5, 9):
        c.send_method(ch, "channel.open")
        r = observe(c, stop_on=("channel.open-ok",))
        frames.append("open ch%d: %s" % (ch, "; ".join(r["frames"]) or "nothing"))
        if c.eof:
            break
    return {"frames": frames, "socket": r["socket"]}


@case("2b", "channel.open on ch65535")
def _():
    return expect_error(ready(0), mframe(65535, "channel.open"), stop_on=("channel.open-ok",))


@case("2b", "channel.open on ch0")
def _():
    return expect_error(ready(0), mframe(0, "channel.open"))


@case("2b", "channel.open twice on ch1")
def _():
    return expect_error(ready(), mframe(1, "channel.open"))


@case("2b", "heartbeat frame on ch1")
def _():
    return expect_error(ready(), frame(8, 1, b""))


@case("2b", "heartbeat frame on ch0 with 3-byte payload")
def _():
    return expect_error(ready(), frame(8, 0, b"abc"))


@case("2b", "content header with class_id 50 after basic.publish")
def _():
    return expect_error(ready(), mframe(1, "basic.publish", exchange="", routing_key="x")
                        + frame(2, 1, header_payload(5, class_id=50)) + frame(3, 1, b"hello"))


@case("2b", "content header with weight != 0")
def _():
    p = struct.pack(">HHQH", 60, 7, 5, 0)
    return expect_error(ready(), mframe(1, "basic.publish", exchange="", routing_key="x")
                        + frame(2, 1, p) + frame(3, 1, b"hello"))


@case("2b", "content header truncated (4 bytes)")
def _():
    return expect_error(ready(), mframe(1, "basic.publish", exchange="", routing_key="x")
                        + frame(2, 1, b"\x00\x3c\x00\x00"))


@case("2b", "content header flags claim content-type but no property bytes")
def _():
    p = struct.pack(">HHQH", 60, 0, 5, 0x8000)
    return expect_error(ready(), mframe(1, "basic.publish", exchange="", routing_key="x")
                        + frame(2, 1, p) + frame(3, 1, b"hello"))


@case("2b", "body (10 bytes) longer than header body_size=5")
def _():
    return expect_error(ready(), mframe(1, "basic.publish", exchange="", routing_key="x")
                        + frame(2, 1, header_payload(5)) + frame(3, 1, b"0123456789"))


@case("2b", "two body frames 3+3 bytes for body_size=5")
def _():
    return expect_error(ready(), mframe(1, "basic.publish", exchange="", routing_key="x")
                        + frame(2, 1, header_payload(5)) + frame(3, 1, b"abc") + frame(3, 1, b"def"))


def body_mismatch(header_size, bodies):
    c = ready()
    q = qn("bodysize-%d-%d" % (header_size, len(bodies)))
    declare_q(c, q)
    data = mframe(1, "basic.publish", exchange="", routing_key=q) + frame(2, 1, header_payload(header_size))
    for b in bodies:
        data += frame(3, 1, b)
    r = expect_error(c, data, silent_ok_check=False)
    if c.eof:
        return r
    time.sleep(0.2)
    c.send_method(1, "basic.get", queue=q, no_ack=True)
    frames = list(r["frames"])
    for _ in range(4):
        f = c.read_frame(1.0)
        if not f:
            break
        frames.append("basic.get -> " + f.describe())
        if f.name == "basic.get-empty" or f.name == "channel.close" or f.name == "connection.close" \
                or f.typ == FRAME_BODY:
            break
    if not c.eof:
        frames.append(alive_check(c))
    return {"frames": frames, "socket": c.eof or "open"}


@case("2b", "to a queue: body 10 bytes for body_size=5, then basic.get")
def _():
    return body_mismatch(5, [b"0123456789"])


@case("2b", "to a queue: bodies 3+3 bytes for body_size=5, then basic.get")
def _():
    return body_mismatch(5, [b"abc", b"def"])


@case("2b", "to a queue: empty body frame + 5 bytes for body_size=5, then basic.get")
def _():
    return body_mismatch(5, [b"", b"hello"])


@case("2b", "to a queue: body_size=0 with no body frame, then basic.get")
def _():
    return body_mismatch(0, [])


@case("2b", "header body_size=0 followed by a body frame")
def _():
    return expect_error(ready(), mframe(1, "basic.publish", exchange="", routing_key="x")
                        + frame(2, 1, header_payload(0)) + frame(3, 1, b"abc"))


@case("2b", "empty body frame (size 0) for body_size=5, then 5 bytes")
def _():
    return expect_error(ready(), mframe(1, "basic.publish", exchange="", routing_key="x")
                        + frame(2, 1, header_payload(5)) + frame(3, 1, b"") + frame(3, 1, b"hello"))


@case("2b", "basic.publish on ch0 (with header+body)")
def _():
    return expect_error(ready(), mframe(0, "basic.publish", exchange="", routing_key="x")
                        + frame(2, 0, header_payload(5)) + frame(3, 0, b"hello"))


@case("2b", "queue.declare on ch0")
def _():
    return expect_error(ready(), frame(1, 0, DECL))


@case("2b", "content header on ch0")
def _():
    return expect_error(ready(), frame(2, 0, header_payload(5)))


@case("2b", "connection.close sent on ch1")
def _():
    return expect_error(ready(), mframe(1, "connection.close", reply_code=200, reply_text="bye"))


@case("2b", "connection.tune-ok sent again on ch0 after open")
def _():
    return expect_error(ready(), mframe(0, "connection.tune-ok", channel_max=2047, frame_max=131072))


@case("2b", "client sends server-only method basic.deliver on ch1")
def _():
    return expect_error(ready(), mframe(1, "basic.deliver", consumer_tag="x", delivery_tag=1,
                                        exchange="", routing_key="x"))


@case("2b", "client sends queue.declare-ok on ch1")
def _():
    return expect_error(ready(), mframe(1, "queue.declare-ok", queue="x"))


@case("2b", "channel.flow active=false from client")
def _():
    return expect_error(ready(), mframe(1, "channel.flow", active=False), stop_on=("channel.flow-ok",))


@case("2b", "basic.recover-async on ch1")
def _():
    return expect_error(ready(), mframe(1, "basic.recover-async", requeue=True))


@case("2b", "tx.commit without tx.select")
def _():
    return expect_error(ready(), mframe(1, "tx.commit"), stop_on=("tx.commit-ok",))


@case("2b", "tx.select after confirm.select")
def _():
    c = ready()
    c.call(1, "confirm.select", expect="confirm.select-ok")
    return expect_error(c, mframe(1, "tx.select"), stop_on=("tx.select-ok",))


@case("2b", "confirm.select after tx.select")
def _():
    c = ready()
    c.call(1, "tx.select", expect="tx.select-ok")
    return expect_error(c, mframe(1, "confirm.select"), stop_on=("confirm.select-ok",))


# ==========================================================================
# Section 3: channel-level misuse
# ==========================================================================
def sync_err(c, ch, name, stop=None, **kw):
    """Send a (sync) method and observe; stop at the normal reply."""
    ok = BY_NAME[name][0]
    reply = METHODS.get((ok[0], ok[1] + 1), (None,))[0]
    return expect_error(c, mframe(ch, name, **kw), stop_on=(reply,) + ((stop,) if stop else ()))


def declare_q(c, name, ch=1, **kw):
    return c.call(ch, "queue.declare", expect="queue.declare-ok", queue=name, **kw)


def declare_x(c, name, typ="direct", ch=1, **kw):
    return c.call(ch, "exchange.declare", expect="exchange.declare-ok", exchange=name, type=typ, **kw)


@case(3, "queue.declare redeclare: durable=true then durable=false")
def _():
    c = ready()
    q = qn("dur")
    declare_q(c, q, durable=True)
    return sync_err(c, 1, "queue.declare", queue=q, durable=False)


@case(3, "queue.declare redeclare: x-max-length 10 then 20")
def _():
    c = ready()
    q = qn("maxlen")
    declare_q(c, q, arguments={"x-max-length": 10})
    return sync_err(c, 1, "queue.declare", queue=q, arguments={"x-max-length": 20})


@case(3, "queue.declare redeclare: x-max-length 10 then no args")
def _():
    c = ready()
    q = qn("maxlen2")
    declare_q(c, q, arguments={"x-max-length": 10})
    return sync_err(c, 1, "queue.declare", queue=q)


@case(3, "queue.declare redeclare: x-max-length 10 (I) then 10 as long-long (l)")
def _():
    c = ready()
    q = qn("maxlen3")
    declare_q(c, q, arguments={"x-max-length": 10})
    return sync_err(c, 1, "queue.declare", queue=q, arguments={"x-max-length": ("l", 10)})


@case(3, "queue.declare redeclare: auto_delete differs")
def _():
    c = ready()
    q = qn("ad")
    declare_q(c, q)
    return sync_err(c, 1, "queue.declare", queue=q, auto_delete=True)


@case(3, "queue.declare redeclare: non-exclusive queue redeclared exclusive (same conn)")
def _():
    c = ready()
    q = qn("excl-redecl")
    declare_q(c, q)
    return sync_err(c, 1, "queue.declare", queue=q, exclusive=True)


@case(3, "queue.declare passive on existing queue with different flags/args")
def _():
    c = ready()
    q = qn("passive-diff")
    declare_q(c, q, arguments={"x-max-length": 10})
    return sync_err(c, 1, "queue.declare", queue=q, passive=True, durable=True,
                    arguments={"x-max-length": 99})


@case(3, "exchange.declare redeclare: direct then fanout")
def _():
    c = ready()
    x = xn("type")
    declare_x(c, x, "direct")
    return sync_err(c, 1, "exchange.declare", exchange=x, type="fanout")


@case(3, "exchange.declare redeclare: durable differs")
def _():
    c = ready()
    x = xn("dur")
    declare_x(c, x, "direct")
    return sync_err(c, 1, "exchange.declare", exchange=x, type="direct", durable=True)


@case(3, "exchange.declare passive with different type (existing)")
def _():
    c = ready()
    x = xn("ptype")
    declare_x(c, x, "direct")
    return sync_err(c, 1, "exchange.declare", exchange=x, type="fanout", passive=True)


@case(3, "queue.declare passive of missing queue")
def _():
    return sync_err(ready(), 1, "queue.declare", queue=qn("missing"), passive=True)


@case(3, "exchange.declare passive of missing exchange")
def _():
    return sync_err(ready(), 1, "exchange.declare", exchange=xn("missing"), type="direct", passive=True)


@case(3, "exchange.declare passive of missing exchange with empty type")
def _():
    return sync_err(ready(), 1, "exchange.declare", exchange=xn("missing2"), type="", passive=True)


@case(3, "queue.declare 'amq.foo'")
def _():
    return sync_err(ready(), 1, "queue.declare", queue="amq.foo")


@case(3, "queue.declare passive 'amq.foo'")
def _():
    return sync_err(ready(), 1, "queue.declare", queue="amq.foo", passive=True)


@case(3, "exchange.declare 'amq.foo'")
def _():
    return sync_err(ready(), 1, "exchange.declare", exchange="amq.foo", type="direct")


@case(3, "exchange.declare '' (default exchange)")
def _():
    return sync_err(ready(), 1, "exchange.declare", exchange="", type="direct")


@case(3, "exchange.declare passive '' (default exchange)")
def _():
    return sync_err(ready(), 1, "exchange.declare", exchange="", type="direct", passive=True)


@case(3, "exchange.declare 'amq.direct' direct durable=true (same as existing)")
def _():
    return sync_err(ready(), 1, "exchange.declare", exchange="amq.direct", type="direct", durable=True)


@case(3, "exchange.declare 'amq.direct' direct durable=false (differs)")
def _():
    return sync_err(ready(), 1, "exchange.declare", exchange="amq.direct", type="direct", durable=False)


@case(3, "exchange.declare 'amq.direct' as fanout")
def _():
    return sync_err(ready(), 1, "exchange.declare", exchange="amq.direct", type="fanout", durable=True)


@case(3, "exchange.declare type 'foo' (unknown type)")
def _():
    return sync_err(ready(), 1, "exchange.declare", exchange=xn("foo"), type="foo")


@case(3, "exchange.declare type '' (empty, non-passive)")
def _():
    return sync_err(ready(), 1, "exchange.declare", exchange=xn("emptytype"), type="")


@case(3, "exchange.declare type 'x-consistent-hash' (plugin not enabled)")
def _():
    return sync_err(ready(), 1, "exchange.declare", exchange=xn("ch"), type="x-consistent-hash")


@case(3, "basic.publish to missing exchange")
def _():
    c = ready()
    c.publish(1, xn("nope"), "rk", b"hello")
    return observe(c)


@case(3, "basic.publish to missing exchange with confirm.select")
def _():
    c = ready()
    c.call(1, "confirm.select", expect="confirm.select-ok")
    c.publish(1, xn("nope2"), "rk", b"hello")
    return observe(c)


@case(3, "basic.publish mandatory=true unroutable (not an error; basic.return)")
def _():
    c = ready()
    c.publish(1, "", qn("unroutable"), b"hello", mandatory=True)
    r = observe(c, stop_on=("basic.return",))
    f = c.read_frame(0.5)
    while f:
        r["frames"].append(f.describe())
        f = c.read_frame(0.5)
    return r


@case(3, "basic.publish with immediate=true")
def _():
    c = ready()
    q = qn("imm")
    declare_q(c, q)
    c.publish(1, "", q, b"hello", immediate=True)
    return observe(c)


@case(3, "queue.bind to missing exchange")
def _():
    c = ready()
    q = qn("bindq")
    declare_q(c, q)
    return sync_err(c, 1, "queue.bind", queue=q, exchange=xn("nope"), routing_key="k")


@case(3, "queue.bind missing queue to amq.direct")
def _():
    return sync_err(ready(), 1, "queue.bind", queue=qn("nope"), exchange="amq.direct", routing_key="k")


@case(3, "queue.bind missing queue to missing exchange")
def _():
    return sync_err(ready(), 1, "queue.bind", queue=qn("nope"), exchange=xn("nope"), routing_key="k")


@case(3, "queue.unbind of a binding that does not exist (both exist)")
def _():
    c = ready()
    q = qn("unbind")
    declare_q(c, q)
    return sync_err(c, 1, "queue.unbind", queue=q, exchange="amq.direct", routing_key="never")


@case(3, "queue.unbind missing queue")
def _():
    return sync_err(ready(), 1, "queue.unbind", queue=qn("nope"), exchange="amq.direct", routing_key="k")


@case(3, "queue.bind to default exchange ''")
def _():
    c = ready()
    q = qn("binddef")
    declare_q(c, q)
    return sync_err(c, 1, "queue.bind", queue=q, exchange="", routing_key=q)


@case(3, "queue.unbind from default exchange ''")
def _():
    c = ready()
    q = qn("unbinddef")
    declare_q(c, q)
    return sync_err(c, 1, "queue.unbind", queue=q, exchange="", routing_key=q)


@case(3, "exchange.bind destination=x source='' (from default)")
def _():
    c = ready()
    x = xn("e2e-dst")
    declare_x(c, x, "fanout")
    return sync_err(c, 1, "exchange.bind", destination=x, source="", routing_key="k")


@case(3, "exchange.bind destination='' source=amq.fanout (to default)")
def _():
    return sync_err(ready(), 1, "exchange.bind", destination="", source="amq.fanout", routing_key="k")


@case(3, "exchange.bind missing source")
def _():
    c = ready()
    x = xn("e2e-dst2")
    declare_x(c, x, "fanout")
    return sync_err(c, 1, "exchange.bind", destination=x, source=xn("nope"), routing_key="k")


@case(3, "queue.delete of missing queue")
def _():
    return sync_err(ready(), 1, "queue.delete", queue=qn("nope"))


@case(3, "queue.delete of missing queue with if_empty+if_unused")
def _():
    return sync_err(ready(), 1, "queue.delete", queue=qn("nope"), if_empty=True, if_unused=True)


@case(3, "queue.delete '' (empty name, no prior declare on channel)")
def _():
    return sync_err(ready(), 1, "queue.delete", queue="")


@case(3, "queue.delete '' after server-named declare (uses last declared queue)")
def _():
    c = ready()
    f = c.call(1, "queue.declare", expect="queue.declare-ok", queue="")
    r = sync_err(c, 1, "queue.delete", queue="")
    r["frames"].insert(0, "(declared %s)" % f.args["queue"])
    return r


@case(3, "exchange.delete of missing exchange")
def _():
    return sync_err(ready(), 1, "exchange.delete", exchange=xn("nope"))


@case(3, "exchange.delete of missing exchange if_unused")
def _():
    return sync_err(ready(), 1, "exchange.delete", exchange=xn("nope"), if_unused=True)


@case(3, "exchange.delete if_unused on exchange that has a binding")
def _():
    c = ready()
    x = xn("used")
    q = qn("used")
    declare_x(c, x, "direct")
    declare_q(c, q)
    c.call(1, "queue.bind", expect="queue.bind-ok", queue=q, exchange=x, routing_key="k")
    return sync_err(c, 1, "exchange.delete", exchange=x, if_unused=True)


@case(3, "exchange.delete 'amq.direct'")
def _():
    return sync_err(ready(), 1, "exchange.delete", exchange="amq.direct")


@case(3, "exchange.delete '' (default exchange)")
def _():
    return sync_err(ready(), 1, "exchange.delete", exchange="")


@case(3, "queue.delete if_empty on queue with 1 message")
def _():
    c = ready()
    q = qn("ifempty")
    declare_q(c, q)
    c.publish(1, "", q, b"m")
    time.sleep(0.2)
    return sync_err(c, 1, "queue.delete", queue=q, if_empty=True)


@case(3, "queue.delete if_unused on queue with a consumer")
def _():
    c = ready()
    q = qn("ifunused")
    declare_q(c, q)
    c.call(1, "basic.consume", expect="basic.consume-ok", queue=q, consumer_tag="c1")
    return sync_err(c, 1, "queue.delete", queue=q, if_unused=True)


@case(3, "queue.delete (plain) of queue with consumer on another channel")
def _():
    c = ready()
    c.open_channel(2)
    q = qn("delcons")
    declare_q(c, q)
    c.call(2, "basic.consume", expect="basic.consume-ok", queue=q, consumer_tag="c1")
    c.send_method(1, "queue.delete", queue=q)
    frames = []
    for _ in range(4):
        f = c.read_frame(1.0)
        if not f:
            break
        frames.append(f.describe())
    return {"frames": frames, "socket": c.eof or "open"}


@case(3, "queue.purge of missing queue")
def _():
    return sync_err(ready(), 1, "queue.purge", queue=qn("nope"))


@case(3, "basic.get from missing queue")
def _():
    return sync_err(ready(), 1, "basic.get", queue=qn("nope"), stop="basic.get-empty")


@case(3, "basic.consume on missing queue")
def _():
    return sync_err(ready(), 1, "basic.consume", queue=qn("nope"), consumer_tag="c1")


@case(3, "basic.consume twice with same consumer tag on one channel")
def _():
    c = ready()
    q = qn("dupctag")
    declare_q(c, q)
    c.call(1, "basic.consume", expect="basic.consume-ok", queue=q, consumer_tag="ctag1")
    return sync_err(c, 1, "basic.consume", queue=q, consumer_tag="ctag1")


@case(3, "same consumer tag on two different channels (not an error?)")
def _():
    c = ready()
    c.open_channel(2)
    q = qn("dupctag2")
    declare_q(c, q)
    c.call(1, "basic.consume", expect="basic.consume-ok", queue=q, consumer_tag="ctag1")
    return sync_err(c, 2, "basic.consume", queue=q, consumer_tag="ctag1")


@case(3, "basic.cancel of unknown consumer tag")
def _():
    return sync_err(ready(), 1, "basic.cancel", consumer_tag="nope")


@case(3, "basic.ack with unknown delivery tag 99")
def _():
    return expect_error(ready(), mframe(1, "basic.ack", delivery_tag=99))


@case(3, "basic.ack delivery tag 99 multiple=true (nothing outstanding)")
def _():
    return expect_error(ready(), mframe(1, "basic.ack", delivery_tag=99, multiple=True))


@case(3, "basic.ack delivery tag 0 multiple=false")
def _():
    return expect_error(ready(), mframe(1, "basic.ack", delivery_tag=0))


@case(3, "basic.ack delivery tag 0 multiple=true (nothing outstanding)")
def _():
    return expect_error(ready(), mframe(1, "basic.ack", delivery_tag=0, multiple=True))


@case(3, "basic.ack same tag twice")
def _():
    c = ready()
    q = qn("dblack")
    declare_q(c, q)
    c.publish(1, "", q, b"m")
    time.sleep(0.2)
    f = c.call(1, "basic.get", expect="basic.get-ok", queue=q)
    c.read_frame()
    c.read_frame()
    tag = f.args["delivery_tag"]
    c.send_method(1, "basic.ack", delivery_tag=tag)
    return expect_error(c, mframe(1, "basic.ack", delivery_tag=tag))


@case(3, "basic.reject unknown tag 99")
def _():
    return expect_error(ready(), mframe(1, "basic.reject", delivery_tag=99))


@case(3, "basic.nack unknown tag 99")
def _():
    return expect_error(ready(), mframe(1, "basic.nack", delivery_tag=99))


@case(3, "basic.ack of a no_ack (auto-ack) delivery")
def _():
    c = ready()
    q = qn("noackack")
    declare_q(c, q)
    c.publish(1, "", q, b"m")
    time.sleep(0.2)
    f = c.call(1, "basic.get", expect="basic.get-ok", queue=q, no_ack=True)
    c.read_frame()
    c.read_frame()
    return expect_error(c, mframe(1, "basic.ack", delivery_tag=f.args["delivery_tag"]))


@case(3, "basic.qos prefetch_size=1000")
def _():
    return sync_err(ready(), 1, "basic.qos", prefetch_size=1000, prefetch_count=10)


@case(3, "basic.qos prefetch_count=0, global=true")
def _():
    return sync_err(ready(), 1, "basic.qos", prefetch_count=0, **{"global": True})


def excl_pair():
    a = ready()
    q = qn("excl-%d" % random.randint(0, 10 ** 6))
    declare_q(a, q, exclusive=True)
    b = ready()
    return a, b, q


@case(3, "exclusive queue (conn A) -> conn B queue.declare same args")
def _():
    a, b, q = excl_pair()
    return sync_err(b, 1, "queue.declare", queue=q, exclusive=True)


@case(3, "exclusive queue (conn A) -> conn B queue.declare non-exclusive")
def _():
    a, b, q = excl_pair()
    return sync_err(b, 1, "queue.declare", queue=q)


@case(3, "exclusive queue (conn A) -> conn B queue.declare passive")
def _():
    a, b, q = excl_pair()
    return sync_err(b, 1, "queue.declare", queue=q, passive=True)


@case(3, "exclusive queue (conn A) -> conn B basic.consume")
def _():
    a, b, q = excl_pair()
    return sync_err(b, 1, "basic.consume", queue=q, consumer_tag="c")


@case(3, "exclusive queue (conn A) -> conn B queue.bind")
def _():
    a, b, q = excl_pair()
    return sync_err(b, 1, "queue.bind", queue=q, exchange="amq.direct", routing_key="k")


@case(3, "exclusive queue (conn A) -> conn B queue.unbind")
def _():
    a, b, q = excl_pair()
    return sync_err(b, 1, "queue.unbind", queue=q, exchange="amq.direct", routing_key="k")


@case(3, "exclusive queue (conn A) -> conn B queue.delete")
def _():
    a, b, q = excl_pair()
    return sync_err(b, 1, "queue.delete", queue=q)


@case(3, "exclusive queue (conn A) -> conn B queue.purge")
def _():
    a, b, q = excl_pair()
    return sync_err(b, 1, "queue.purge", queue=q)


@case(3, "exclusive queue (conn A) -> conn B basic.get")
def _():
    a, b, q = excl_pair()
    return sync_err(b, 1, "basic.get", queue=q, stop="basic.get-empty")


@case(3, "exclusive queue (conn A) -> conn B basic.publish to it (allowed?)")
def _():
    a, b, q = excl_pair()
    b.publish(1, "", q, b"hi")
    time.sleep(0.3)
    r = sync_err(a, 1, "queue.declare", queue=q, passive=True)
    r["frames"].insert(0, "B published, then A passive-declares:")
    return r


@case(3, "exclusive basic.consume on queue that already has a consumer")
def _():
    c = ready()
    q = qn("exclcons")
    declare_q(c, q)
    c.call(1, "basic.consume", expect="basic.consume-ok", queue=q, consumer_tag="c1")
    return sync_err(c, 1, "basic.consume", queue=q, consumer_tag="c2", exclusive=True)


@case(3, "basic.consume on queue that has an exclusive consumer")
def _():
    c = ready()
    q = qn("exclcons2")
    declare_q(c, q)
    c.call(1, "basic.consume", expect="basic.consume-ok", queue=q, consumer_tag="c1", exclusive=True)
    return sync_err(c, 1, "basic.consume", queue=q, consumer_tag="c2")


@case(3, "basic.publish to an internal exchange")
def _():
    c = ready()
    x = xn("internal")
    declare_x(c, x, "fanout", internal=True)
    c.publish(1, x, "k", b"hello")
    return observe(c)


@case(3, "basic.publish to 'amq.rabbitmq.trace'? (no) -> publish to 'amq.direct' ok baseline")
def _():
    c = ready()
    c.publish(1, "amq.direct", "nobody", b"hello")
    r = observe(c)
    return r


@case(3, "queue.declare x-max-priority 300")
def _():
    return sync_err(ready(), 1, "queue.declare", queue=qn("prio300"), arguments={"x-max-priority": 300})


@case(3, "queue.declare x-max-priority 255")
def _():
    return sync_err(ready(), 1, "queue.declare", queue=qn("prio255"), arguments={"x-max-priority": 255})


@case(3, "queue.declare x-max-priority -1")
def _():
    return sync_err(ready(), 1, "queue.declare", queue=qn("prioneg"), arguments={"x-max-priority": -1})


@case(3, "queue.declare x-message-ttl -1")
def _():
    return sync_err(ready(), 1, "queue.declare", queue=qn("ttlneg"), arguments={"x-message-ttl": -1})


@case(3, "queue.declare x-message-ttl 0 (valid?)")
def _():
    return sync_err(ready(), 1, "queue.declare", queue=qn("ttl0"), arguments={"x-message-ttl": 0})


@case(3, "queue.declare x-message-ttl 'abc' (string)")
def _():
    return sync_err(ready(), 1, "queue.declare", queue=qn("ttlstr"), arguments={"x-message-ttl": "abc"})


@case(3, "queue.declare x-expires 0")
def _():
    return sync_err(ready(), 1, "queue.declare", queue=qn("exp0"), arguments={"x-expires": 0})


@case(3, "queue.declare x-expires -5")
def _():
    return sync_err(ready(), 1, "queue.declare", queue=qn("expneg"), arguments={"x-expires": -5})


@case(3, "queue.declare x-max-length 'abc' (string)")
def _():
    return sync_err(ready(), 1, "queue.declare", queue=qn("mlstr"), arguments={"x-max-length": "abc"})


@case(3, "queue.declare x-max-length -1")
def _():
    return sync_err(ready(), 1, "queue.declare", queue=qn("mlneg"), arguments={"x-max-length": -1})


@case(3, "queue.declare x-max-length 1.5 (double)")
def _():
    return sync_err(ready(), 1, "queue.declare", queue=qn("mldbl"), arguments={"x-max-length": 1.5})


@case(3, "queue.declare x-max-length-bytes -1")
def _():
    return sync_err(ready(), 1, "queue.declare", queue=qn("mlbneg"), arguments={"x-max-length-bytes": -1})


@case(3, "queue.declare x-overflow 'foo'")
def _():
    return sync_err(ready(), 1, "queue.declare", queue=qn("ovf"), arguments={"x-overflow": "foo"})


@case(3, "queue.declare x-overflow 'reject-publish-dlx' (classic, valid)")
def _():
    return sync_err(ready(), 1, "queue.declare", queue=qn("ovf2"), arguments={"x-overflow": "reject-publish-dlx"})


@case(3, "queue.declare x-dead-letter-exchange 5 (int)")
def _():
    return sync_err(ready(), 1, "queue.declare", queue=qn("dlxint"), arguments={"x-dead-letter-exchange": 5})


@case(3, "queue.declare x-dead-letter-routing-key without x-dead-letter-exchange")
def _():
    return sync_err(ready(), 1, "queue.declare", queue=qn("dlrk"), arguments={"x-dead-letter-routing-key": "k"})


@case(3, "queue.declare x-queue-mode 'foo'")
def _():
    return sync_err(ready(), 1, "queue.declare", queue=qn("qmode"), arguments={"x-queue-mode": "foo"})


@case(3, "queue.declare unknown argument x-foo (ignored?)")
def _():
    return sync_err(ready(), 1, "queue.declare", queue=qn("xfoo"), arguments={"x-foo": "bar"})


@case(3, "queue.declare x-queue-type 'stream' (non-durable)")
def _():
    return sync_err(ready(), 1, "queue.declare", queue=qn("stream"), arguments={"x-queue-type": "stream"})


@case(3, "queue.declare x-queue-type 'stream' durable=true (then deleted)")
def _():
    c = ready()
    q = qn("stream-d")
    r = sync_err(c, 1, "queue.declare", queue=q, durable=True, arguments={"x-queue-type": "stream"})
    return r


@case(3, "queue.declare x-queue-type 'quorum' non-durable")
def _():
    return sync_err(ready(), 1, "queue.declare", queue=qn("qq"), arguments={"x-queue-type": "quorum"})


@case(3, "queue.declare x-queue-type 'quorum' durable exclusive")
def _():
    return sync_err(ready(), 1, "queue.declare", queue=qn("qqx"), durable=True, exclusive=True,
                    arguments={"x-queue-type": "quorum"})


@case(3, "queue.declare x-queue-type 'foo'")
def _():
    return sync_err(ready(), 1, "queue.declare", queue=qn("qtfoo"), arguments={"x-queue-type": "foo"})


@case(3, "queue.declare name of 256+ bytes? (shortstr max 255) -> 255-byte name")
def _():
    name = "q" * 255
    CREATED_Q.add(name)
    return sync_err(ready(), 1, "queue.declare", queue=name, exclusive=True)


@case(3, "queue.declare no_wait=true on error (redeclare durable mismatch)")
def _():
    c = ready()
    q = qn("nowait")
    declare_q(c, q, durable=True)
    return expect_error(c, mframe(1, "queue.declare", queue=q, durable=False, no_wait=True))


# ==========================================================================
# Section 5: naming and counter semantics
# ==========================================================================
@case(5, "server-named queue (queue.declare '')")
def _():
    c = ready()
    f = c.call(1, "queue.declare", queue="", exclusive=True)
    f2 = c.call(1, "queue.declare", queue="", exclusive=True)
    return {"frames": [f.describe(), f2.describe()], "socket": "open"}


@case(5, "queue.declare-ok counts with 2 ready + 1 unacked (basic.get no_ack=false)")
def _():
    c = ready()
    q = qn("counts")
    declare_q(c, q)
    for i in range(3):
        c.publish(1, "", q, b"m%d" % i)
    time.sleep(0.3)
    g = c.call(1, "basic.get", expect="basic.get-ok", queue=q)
    c.read_frame()
    c.read_frame()
    time.sleep(0.2)
    f = c.call(1, "queue.declare", queue=q, passive=True)
    f2 = c.call(1, "queue.declare", queue=q)
    return {"frames": ["get: " + g.describe(), "passive: " + f.describe(), "active: " + f2.describe()],
            "socket": "open"}


@case(5, "queue.declare-ok counts with 2 ready + 1 unacked via consumer (prefetch 1)")
def _():
    c = ready()
    q = qn("counts2")
    declare_q(c, q)
    for i in range(3):
        c.publish(1, "", q, b"m%d" % i)
    time.sleep(0.3)
    c.open_channel(2)
    c.call(2, "basic.qos", expect="basic.qos-ok", prefetch_count=1)
    ok = c.call(2, "basic.consume", expect="basic.consume-ok", queue=q, consumer_tag="")
    frames = ["consume: " + ok.describe()]
    for _ in range(3):
        f = c.read_frame(0.5)
        if f:
            frames.append(f.describe())
    time.sleep(0.2)
    frames.append("passive: " + c.call(1, "queue.declare", queue=q, passive=True).describe())
    return {"frames": frames, "socket": "open"}


@case(5, "basic.get-ok message_count semantics (3 msgs, 4 gets)")
def _():
    c = ready()
    q = qn("getcount")
    declare_q(c, q)
    for i in range(3):
        c.publish(1, "", q, b"m%d" % i)
    time.sleep(0.3)
    frames = []
    for _ in range(4):
        f = c.call(1, "basic.get", queue=q, no_ack=True)
        frames.append(f.describe())
        if f.name == "basic.get-ok":
            c.read_frame()
            c.read_frame()
    return {"frames": frames, "socket": "open"}


@case(5, "delivery tags across basic.get and consume; redelivered after reject")
def _():
    c = ready()
    q = qn("tags")
    declare_q(c, q)
    for i in range(2):
        c.publish(1, "", q, b"m%d" % i)
    time.sleep(0.3)
    frames = []
    f = c.call(1, "basic.get", queue=q)
    c.read_frame()
    c.read_frame()
    frames.append(f.describe())
    c.send_method(1, "basic.reject", delivery_tag=f.args["delivery_tag"], requeue=True)
    time.sleep(0.2)
    f = c.call(1, "basic.get", queue=q)
    c.read_frame()
    c.read_frame()
    frames.append(f.describe())
    return {"frames": frames, "socket": "open"}


@case(5, "server-generated consumer tag (consume with tag '')")
def _():
    c = ready()
    q = qn("ctag")
    declare_q(c, q)
    f = c.call(1, "basic.consume", queue=q, consumer_tag="")
    f2 = c.call(1, "basic.consume", queue=q, consumer_tag="")
    return {"frames": [f.describe(), f2.describe()], "socket": "open"}


@case(5, "queue.purge-ok / queue.delete-ok counts (3 ready + 1 unacked)")
def _():
    c = ready()
    q = qn("purge")
    declare_q(c, q)
    for i in range(4):
        c.publish(1, "", q, b"m%d" % i)
    time.sleep(0.3)
    c.call(1, "basic.get", expect="basic.get-ok", queue=q)
    c.read_frame()
    c.read_frame()
    frames = [c.call(1, "queue.purge", queue=q).describe()]
    c.open_channel(2)  # keep unacked on ch1
    frames.append(c.call(2, "queue.delete", queue=q).describe())
    return {"frames": frames, "socket": "open"}


@case(5, "channel.open-ok / connection.open-ok payloads")
def _():
    c = new_conn()
    c.send(PROTO_HEADER)
    c.expect("connection.start")
    c.send_method(0, "connection.start-ok", **START_OK)
    t = c.expect("connection.tune")
    c.send_method(0, "connection.tune-ok", channel_max=2047, frame_max=131072, heartbeat=0)
    c.send_method(0, "connection.open", virtual_host="/")
    o = c.expect("connection.open-ok")
    c.send_method(1, "channel.open")
    co = c.expect("channel.open-ok")
    return {"frames": [o.describe() + " raw=%r" % o.payload, co.describe() + " raw=%r" % co.payload],
            "socket": "open"}


# ==========================================================================
# Section 6: channel state after a channel error
# ==========================================================================
def chan_err(c, ch=1):
    c.send_method(ch, "queue.declare", queue=qn("missing-6"), passive=True)
    f = c.read_frame()
    assert f and f.name == "channel.close", f.describe() if f else None
    return f.describe()


@case(6, "after channel.close(404): channel.open on same ch WITHOUT close-ok")
def _():
    c = ready()
    frames = [chan_err(c)]
    c.send_method(1, "channel.open")
    r = observe(c, stop_on=("channel.open-ok",))
    frames.append("-> channel.open: " + ("; ".join(r["frames"]) or "nothing (ignored)"))
    if not c.eof:
        c.send_method(1, "channel.close-ok")
        r2 = observe(c, timeout=1.0)
        frames.append("-> close-ok: " + ("; ".join(r2["frames"]) or "nothing"))
        c.send_method(1, "channel.open")
        r3 = observe(c, stop_on=("channel.open-ok",))
        frames.append("-> channel.open: " + ("; ".join(r3["frames"]) or "nothing"))
        r = r3
    return {"frames": frames, "socket": r["socket"]}


def closing_then(label, data, reopen=True):
    c = ready()
    frames = []
    try:
        frames.append(chan_err(c))
        c.send(data)
        r = observe(c, stop_on=("queue.declare-ok", "channel.open-ok", "basic.get-ok", "basic.get-empty"))
        frames.append("-> %s before close-ok: %s" % (label, "; ".join(r["frames"]) or "nothing (ignored)"))
        if c.eof or not reopen:
            return {"frames": frames, "socket": r["socket"]}
        c.send_method(1, "channel.close-ok")
        r = observe(c, timeout=0.5)
        frames.append("-> close-ok: " + ("; ".join(r["frames"]) or "nothing"))
        c.send_method(1, "channel.open")
        r = observe(c, stop_on=("channel.open-ok",))
        frames.append("-> channel.open: " + ("; ".join(r["frames"]) or "nothing"))
        return {"frames": frames, "socket": r["socket"]}
    except Exception as e:  # noqa
        frames.append("PROBE EXCEPTION: %s" % e)
        return {"frames": frames, "socket": c.eof or "?"}


@case(6, "after channel.close(404): queue.declare on the closing ch before close-ok")
def _():
    return closing_then("queue.declare(server-named)", frame(1, 1, DECL))


@case(6, "after channel.close(404): basic.publish+header+body on the closing ch before close-ok")
def _():
    q = qn("closing-pub")
    c0 = ready()
    declare_q(c0, q)
    r = closing_then("publish to %s" % q, mframe(1, "basic.publish", exchange="", routing_key=q)
                     + frame(2, 1, header_payload(3)) + frame(3, 1, b"abc"))
    f = c0.call(1, "queue.declare", queue=q, passive=True)
    r["frames"].append("queue afterwards: " + f.describe())
    return r


@case(6, "after channel.close(404): stray content header on the closing ch before close-ok")
def _():
    return closing_then("stray content header", frame(2, 1, header_payload(5)))


@case(6, "after channel.close(404): stray body frame on the closing ch before close-ok")
def _():
    return closing_then("stray body", frame(3, 1, b"abc"))


@case(6, "after channel.close(404): basic.ack(99) on the closing ch before close-ok")
def _():
    return closing_then("basic.ack(99)", mframe(1, "basic.ack", delivery_tag=99))


@case(6, "after channel.close(404): unknown method 50.99 on the closing ch before close-ok")
def _():
    return closing_then("method 50.99", frame(1, 1, struct.pack(">HH", 50, 99)))


@case(6, "after channel.close(404): bad frame-end on the closing ch before close-ok")
def _():
    return closing_then("bad frame-end", frame(1, 1, DECL, end=0))


@case(6, "after channel.close(404): client answers with channel.close (not close-ok)")
def _():
    c = ready()
    frames = [chan_err(c)]
    c.send_method(1, "channel.close", reply_code=200, reply_text="ok")
    r = observe(c, stop_on=("channel.close-ok",))
    frames.append("-> channel.close: " + ("; ".join(r["frames"]) or "nothing"))
    c.send_method(1, "channel.open")
    r = observe(c, stop_on=("channel.open-ok",))
    frames.append("-> channel.open: " + ("; ".join(r["frames"]) or "nothing"))
    return {"frames": frames, "socket": r["socket"]}


@case(6, "after channel.close + close-ok: method on the closed ch without reopening")
def _():
    c = ready()
    frames = [chan_err(c)]
    c.send_method(1, "channel.close-ok")
    r = expect_error(c, frame(1, 1, DECL))
    frames.extend(r["frames"])
    return {"frames": frames, "socket": r["socket"]}


@case(6, "client channel.close -> close-ok; then method on that ch without reopening")
def _():
    c = ready()
    f = c.call(1, "channel.close", reply_code=200, reply_text="bye")
    frames = [f.describe()]
    r = expect_error(c, frame(1, 1, DECL))
    frames.extend(r["frames"])
    return {"frames": frames, "socket": r["socket"]}


@case(6, "client channel.close, then methods before reading close-ok")
def _():
    c = ready()
    c.send(mframe(1, "channel.close", reply_code=200, reply_text="bye") + frame(1, 1, DECL))
    r = observe(c, stop_on=("queue.declare-ok",))
    if r["frames"] and "close-ok" in r["frames"][-1]:
        r2 = observe(c, timeout=1.0)
        r["frames"].extend(r2["frames"] or ["(nothing more)"])
        r["socket"] = r2["socket"]
    return r


@case(6, "client channel.close with unacked message: message requeued?")
def _():
    c = ready()
    q = qn("requeue-6")
    declare_q(c, q)
    c.publish(1, "", q, b"m")
    time.sleep(0.2)
    c.open_channel(2)
    c.call(2, "basic.get", expect="basic.get-ok", queue=q)
    c.read_frame()
    c.read_frame()
    a = c.call(1, "queue.declare", queue=q, passive=True).describe()
    c.call(2, "channel.close", expect="channel.close-ok", reply_code=200, reply_text="bye")
    time.sleep(0.2)
    b = c.call(1, "queue.declare", queue=q, passive=True).describe()
    return {"frames": ["before close: " + a, "after close: " + b], "socket": "open"}


@case(6, "channel error on ch1 does not affect ch2")
def _():
    c = ready()
    c.open_channel(2)
    frames = [chan_err(c)]
    frames.append("ch2: " + c.call(2, "queue.declare", queue="", exclusive=True).describe())
    return {"frames": frames, "socket": "open"}


# ==========================================================================
# Section 7: connection.close
# ==========================================================================
@case(7, "client connection.close(200)")
def _():
    c = ready()
    t0 = time.time()
    c.send_method(0, "connection.close", reply_code=200, reply_text="bye")
    f = c.read_frame()
    frames = [f.describe() if f else "nothing"]
    closed, dt, extra = c.wait_eof()
    frames.extend(extra)
    sock = ("server closed socket (%s) %.0f ms after close-ok was read" % (closed, dt * 1000)
            if closed else "still open %.1f s after close-ok" % TIMEOUT)
    return {"frames": frames, "socket": sock}


@case(7, "client connection.close with open channels/consumers/unacked")
def _():
    c = ready()
    q = qn("cc7")
    declare_q(c, q)
    c.publish(1, "", q, b"m")
    time.sleep(0.2)
    c.call(1, "basic.consume", expect="basic.consume-ok", queue=q, consumer_tag="c")
    c.read_frame()
    c.read_frame()
    c.read_frame()
    c.send_method(0, "connection.close", reply_code=200, reply_text="bye")
    f = c.read_frame()
    frames = [f.describe() if f else "nothing"]
    closed, dt, extra = c.wait_eof()
    frames.extend(extra)
    d = ready()
    frames.append("afterwards: " + d.call(1, "queue.declare", queue=q, passive=True).describe())
    return {"frames": frames, "socket": ("server closed (%s) %.0f ms after close-ok" % (closed, dt * 1000))
            if closed else "still open"}


@case(7, "client connection.close then queue.declare before reading close-ok")
def _():
    c = ready()
    c.send(mframe(0, "connection.close", reply_code=200, reply_text="bye") + frame(1, 1, DECL))
    frames = []
    while True:
        f = c.read_frame()
        if not f:
            break
        frames.append(f.describe())
    return {"frames": frames, "socket": ("closed by server: %s" % c.eof) if c.eof else "open"}


@case(7, "client connection.close with code 320 / non-zero class-id")
def _():
    c = ready()
    c.send_method(0, "connection.close", reply_code=320, reply_text="shutdown", class_id=50, method_id=10)
    f = c.read_frame()
    closed, dt, extra = c.wait_eof()
    return {"frames": [f.describe() if f else "nothing"] + extra,
            "socket": "closed (%s)" % closed if closed else "open"}


@case(7, "server connection.close (hard error): client sends NO close-ok (waits up to 5 s)")
def _():
    c = ready()
    c.send(frame(8, 1, b""))
    return observe(c, reply_close_ok=False, eof_wait=5.0)


@case(7, "server connection.close: client sends channel.open + queue.declare instead of close-ok")
def _():
    c = ready()
    c.send(frame(8, 1, b""))
    f = c.read_frame()
    frames = [f.describe() if f else "nothing"]
    c.send(mframe(2, "channel.open") + frame(1, 1, DECL))
    r = observe(c, timeout=1.0, reply_close_ok=False, eof_wait=1.0)
    frames.append("-> methods: " + ("; ".join(r["frames"]) or "nothing (ignored)"))
    if not c.eof:
        c.send_method(0, "connection.close-ok")
        closed, dt, extra = c.wait_eof()
        frames.extend(extra)
        sock = ("close-ok -> server closed socket (%s) %.0f ms later" % (closed, dt * 1000)) if closed else "open"
    else:
        sock = r["socket"]
    return {"frames": frames, "socket": sock}


@case(7, "server connection.close: client answers with connection.close (simultaneous close)")
def _():
    c = ready()
    c.send(frame(8, 1, b""))
    f = c.read_frame()
    frames = [f.describe() if f else "nothing"]
    c.send_method(0, "connection.close", reply_code=200, reply_text="bye")
    closed, dt, extra = c.wait_eof()
    frames.extend(extra or ["(nothing)"])
    return {"frames": frames,
            "socket": ("server closed socket (%s) %.0f ms later" % (closed, dt * 1000)) if closed else "open"}


@case(7, "client connection.close -> close-ok; client keeps socket open: when does server close? (up to 35 s)")
def _():
    if not ARGS.long:
        return {"frames": ["skipped (use --long)"], "socket": "-"}
    c = ready()
    c.send_method(0, "connection.close", reply_code=200, reply_text="bye")
    f = c.read_frame()
    closed, dt, extra = c.wait_eof(35.0)
    return {"frames": [f.describe() if f else "nothing"] + extra,
            "socket": ("server closed socket (%s) %.0f ms after close-ok" % (closed, dt * 1000))
            if closed else "still open after 35 s"}


@case(7, "simultaneous close (server close, client close instead of close-ok): socket close time (up to 35 s)")
def _():
    if not ARGS.long:
        return {"frames": ["skipped (use --long)"], "socket": "-"}
    c = ready()
    c.send(frame(8, 1, b""))
    f = c.read_frame()
    c.send_method(0, "connection.close", reply_code=200, reply_text="bye")
    closed, dt, extra = c.wait_eof(35.0)
    return {"frames": [f.describe() if f else "nothing"] + extra,
            "socket": ("server closed socket (%s) %.0f ms after client's close" % (closed, dt * 1000))
            if closed else "still open after 35 s"}


@case(7, "server connection.close without close-ok: how long until socket closes (up to 35 s)")
def _():
    if not ARGS.long:
        return {"frames": ["skipped (use --long)"], "socket": "-"}
    c = ready()
    c.send(frame(8, 1, b""))
    return observe(c, reply_close_ok=False, eof_wait=35.0)


# ==========================================================================
# Section 4 (connection.start / tune dump) is produced separately
# ==========================================================================
def dump_start():
    c = new_conn()
    c.handshake(stop_after="tune")
    s, t = c.start.args, c.tune.args
    c.close()
    return s, t, c.start.payload


def rabbitmqctl_env():
    keys = ("max_message_size", "frame_max", "channel_max", "heartbeat", "handshake_timeout",
            "consumer_timeout", "max_connections", "connection_max")
    try:
        out = subprocess.run(["rabbitmqctl", "environment"], capture_output=True, text=True, timeout=60).stdout
    except Exception as e:  # noqa
        return {"error": str(e)}
    res = {}
    for line in out.splitlines():
        ls_ = line.strip()
        for k in keys:
            if ls_.startswith("{%s," % k):
                res[k] = ls_.rstrip(",")
    return res


# --------------------------------------------------------------------------
def cleanup():
    try:
        c = ready()
        for q in sorted(CREATED_Q):
            c.send_method(1, "queue.delete", queue=q)
            f = c.read_frame()
            if f and f.name == "channel.close":
                c.send_method(1, "channel.close-ok")
                c.open_channel(1)
        for x in sorted(CREATED_X):
            c.send_method(1, "exchange.delete", exchange=x)
            f = c.read_frame()
            if f and f.name == "channel.close":
                c.send_method(1, "channel.close-ok")
                c.open_channel(1)
        c.send_method(0, "connection.close", reply_code=200, reply_text="bye")
        c.read_frame()
        c.close()
    except Exception as e:  # noqa
        print("cleanup error: %s" % e, file=sys.stderr)


GEN_MARKER = "<!-- everything below is generated by rabbit_errors.py -->"


def md_escape(s_):
    return str(s_).replace("|", "\\|").replace("\n", "<br>")


SECTION_TITLES = {
    "1": "1. Protocol header variants",
    "2a": "2a. Frame/handshake errors before the connection is open",
    "2b": "2b. Frame-level errors after the handshake (channel 1 open)",
    "3": "3. Channel-level misuse",
    "5": "5. Naming and counter semantics",
    "6": "6. Channel state after a channel error",
    "7": "7. connection.close",
}


def render(results, start, tune, env):
    out = ["# RabbitMQ error behaviour (raw AMQP 0-9-1 probe)", "",
           "Generated by `interop/probe/rabbit_errors.py` against %s:%d on %s." % (
               ARGS.host, ARGS.port, time.strftime("%Y-%m-%d %H:%M:%S")),
           "Each case uses a fresh connection (guest/guest, vhost '/', channel_max/frame_max as proposed, "
           "heartbeat 0) unless stated. On `connection.close` the probe replies `connection.close-ok` "
           "and measures when the server closes the socket. 'open (no further bytes in 2.0 s)' means nothing "
           "came back; a liveness check is then shown.", ""]
    order = ["1", "2a", "2b", "3", "4", "5", "6", "7"]
    for sec in order:
        if sec == "4":
            out += ["## 4. connection.start / connection.tune", ""]
            if start:
                out += ["| field | value |", "|---|---|",
                        "| version | %d-%d |" % (start["version_major"], start["version_minor"])]
                for k, v in start["server_properties"].items():
                    if k == "capabilities":
                        continue
                    out.append("| server_properties.%s | `%s` |" % (md_escape(k), md_escape(repr(v))))
                for k, v in start["server_properties"].get("capabilities", {}).items():
                    out.append("| capabilities.%s | `%r` |" % (md_escape(k), v))
                out.append("| mechanisms | `%r` |" % start["mechanisms"])
                out.append("| locales | `%r` |" % start["locales"])
                for k, v in tune.items():
                    out.append("| tune.%s | %r |" % (k, v))
                for k, v in env.items():
                    out.append("| rabbitmqctl environment: %s | `%s` |" % (k, md_escape(v)))
                out.append("")
            continue
        rows = [r for r in results if str(r["section"]) == sec]
        if not rows:
            continue
        out += ["## " + SECTION_TITLES[sec], "", "| # | case | server response (frames, in order) | socket |",
                "|---|---|---|---|"]
        for i, r in enumerate(rows, 1):
            title = r["title"] + (" (sent %s)" % r["sent"] if r["sent"] else "")
            resp = "<br>".join(md_escape(x) for x in r["frames"]) or "(nothing)"
            out.append("| %s.%d | %s | %s | %s |" % (sec, i, md_escape(title), resp, md_escape(r["socket"])))
        out.append("")
    return "\n".join(out) + "\n"


def main():
    global ARGS
    ap = argparse.ArgumentParser()
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=5672)
    ap.add_argument("--out", default=None, help="markdown output (default: stdout)")
    ap.add_argument("--json", default=None)
    ap.add_argument("--only", default=None, help="run only cases whose title contains this")
    ap.add_argument("--long", action="store_true", help="include slow timing cases")
    ap.add_argument("--no-env", action="store_true", help="skip rabbitmqctl environment")
    ARGS = ap.parse_args()

    results = []
    for cs in CASES:
        if ARGS.only and ARGS.only not in cs["title"]:
            continue
        t0 = time.time()
        try:
            r = cs["fn"]()
        except Exception as e:  # noqa
            r = {"frames": ["PROBE EXCEPTION: %s: %s" % (e.__class__.__name__, e)], "socket": "?"}
            if os.environ.get("PROBE_DEBUG"):
                traceback.print_exc()
        r = {"section": cs["section"], "title": cs["title"], "sent": cs["sent"], **r}
        results.append(r)
        print("[%s] %-70s %.1fs\n    %s\n    socket: %s" % (
            cs["section"], cs["title"][:70], time.time() - t0, "\n    ".join(r["frames"]), r["socket"]),
            file=sys.stderr)
    try:
        start, tune, _ = dump_start()
    except Exception as e:  # noqa
        start, tune = None, {"error": str(e)}
    env = {} if ARGS.no_env else rabbitmqctl_env()
    cleanup()
    md = render(results, start, tune, env)
    if ARGS.out:
        os.makedirs(os.path.dirname(os.path.abspath(ARGS.out)), exist_ok=True)
        keep = ""
        if os.path.exists(ARGS.out):  # keep a hand-written preamble above the marker
            with open(ARGS.out) as fh:
                old = fh.read()
            if GEN_MARKER in old:
                keep = old.split(GEN_MARKER)[0]
        with open(ARGS.out, "w") as fh:
            fh.write(keep + GEN_MARKER + "\n\n" + md if keep else md)
    else:
        sys.stdout.write(md)
    if ARGS.json:
        with open(ARGS.json, "w") as fh:
            json.dump({"results": results, "start": start, "tune": tune, "env": env}, fh, indent=1, default=str)


if __name__ == "__main__":
    main()
