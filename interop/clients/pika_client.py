#!/usr/bin/env python3
"""Interop check with pika (Python): publish/consume, topic routing, RPC.

Reads the broker URL from $AMQP_URL (default amqp://guest:guest@127.0.0.1:5672/%2f).
With $AMQPS_URL (amqps://...) and $AMQPS_CA (a PEM file of the CA that signed the
broker's certificate) it also publishes and consumes over TLS; $AMQPS_CERT and
$AMQPS_KEY add a client certificate.
Exits 0 on success, non-zero with a message on failure. Bounded by an overall
timeout (INTEROP_TIMEOUT seconds, default 60).
"""

import os
import signal
import ssl
import sys
import threading
import time
import uuid

import pika

URL = os.environ.get("AMQP_URL") or "amqp://guest:guest@127.0.0.1:5672/%2f"
OVERALL_TIMEOUT = int(os.environ.get("INTEROP_TIMEOUT", "60"))
WAIT = 10.0  # seconds for any single wait on the broker
SUFFIX = uuid.uuid4().hex[:10]


class Failure(Exception):
    pass


def check(cond, msg):
    if not cond:
        raise Failure(msg)


def on_alarm(_signum, _frame):
    print(f"pika: FAIL: overall timeout of {OVERALL_TIMEOUT}s exceeded", file=sys.stderr)
    os._exit(2)


def connect():
    params = pika.URLParameters(URL)
    params.socket_timeout = WAIT
    params.blocked_connection_timeout = WAIT
    params.connection_attempts = 1
    return pika.BlockingConnection(params)


def consume_n(ch, queue, n, auto_ack=True):
    """Consume n messages from queue (bounded); returns list of (method, props, body)."""
    out = []
    deadline = time.monotonic() + WAIT
    for method, props, body in ch.consume(queue, auto_ack=auto_ack, inactivity_timeout=0.2):
        if method is not None:
            out.append((method, props, body))
            if not auto_ack:
                ch.basic_ack(method.delivery_tag)
            if len(out) == n:
                break
        if time.monotonic() > deadline:
            break
    ch.cancel()
    return out


def test_publish_consume(conn):
    ch = conn.channel()
    q = ch.queue_declare(queue="", exclusive=True).method.queue
    check(q.startswith("amq.gen-"), f"server-named queue has unexpected name {q!r}")
    ch.confirm_delivery()
    props = pika.BasicProperties(
        content_type="text/plain",
        delivery_mode=2,
        message_id="pika-1",
        headers={"n": 42, "s": "str", "nested": {"a": [1, 2, 3]}, "flag": True},
    )
    bodies = [f"pika message {i}".encode() for i in range(5)]
    for b in bodies:
        ch.basic_publish(exchange="", routing_key=q, body=b, properties=props)

    declared = ch.queue_declare(queue=q, passive=True).method
    check(declared.message_count == 5, f"passive declare: message_count {declared.message_count} != 5")

    # basic.get first one with manual ack.
    method, got_props, body = ch.basic_get(q, auto_ack=False)
    check(method is not None, "basic.get returned get-empty")
    check(body == bodies[0], f"basic.get body {body!r}")
    check(method.message_count == 4, f"get-ok message_count {method.message_count} != 4")
    ch.basic_ack(method.delivery_tag)

    got = consume_n(ch, q, 4, auto_ack=False)
    check([b for _, _, b in got] == bodies[1:], f"consumed bodies {[b for _, _, b in got]!r}")
    for _, p, _ in got:
        check(p.content_type == "text/plain", f"content_type {p.content_type!r}")
        check(p.delivery_mode == 2, f"delivery_mode {p.delivery_mode!r}")
        check(p.message_id == "pika-1", f"message_id {p.message_id!r}")
        check(p.headers.get("n") == 42, f"header n {p.headers.get('n')!r}")
        check(p.headers.get("s") in ("str", b"str"), f"header s {p.headers.get('s')!r}")
        check(p.headers.get("flag") is True, f"header flag {p.headers.get('flag')!r}")
        nested = p.headers.get("nested") or {}
        check(nested.get("a") == [1, 2, 3], f"nested header {nested!r}")

    method, _, _ = ch.basic_get(q, auto_ack=True)
    check(method is None, "queue should be empty")

    # Mandatory unroutable publish is returned (pika raises UnroutableError in confirm mode).
    try:
        ch.basic_publish(exchange="", routing_key=f"no-such-queue-{SUFFIX}", body=b"x", mandatory=True)
        raise Failure("mandatory unroutable publish was not returned")
    except pika.exceptions.UnroutableError as e:
        check(len(e.messages) == 1, f"returned messages {e.messages!r}")
    ch.close()
    print("pika: publish/consume ok")


def test_topic_routing(conn):
    ch = conn.channel()
    ex = f"interop.pika.topic.{SUFFIX}"
    ch.exchange_declare(exchange=ex, exchange_type="topic", auto_delete=True)
    patterns = {"star": "logs.*", "hash": "logs.#", "err": "*.error", "all": "#"}
    queues = {}
    for name, pattern in patterns.items():
        q = ch.queue_declare(queue="", exclusive=True).method.queue
        ch.queue_bind(queue=q, exchange=ex, routing_key=pattern)
        queues[name] = q
    keys = ["logs", "logs.info", "logs.error", "logs.app.error", "app.error", "other"]
    for k in keys:
        ch.basic_publish(exchange=ex, routing_key=k, body=k.encode())
    expected = {
        "star": {"logs.info", "logs.error"},
        "hash": {"logs", "logs.info", "logs.error", "logs.app.error"},
        "err": {"logs.error", "app.error"},
        "all": set(keys),
    }
    time.sleep(0.3)
    for name, q in queues.items():
        got = set()
        deadline = time.monotonic() + WAIT
        while time.monotonic() < deadline:
            method, _, body = ch.basic_get(q, auto_ack=True)
            if method is None:
                if got == expected[name]:
                    break
                time.sleep(0.05)
                continue
            got.add(body.decode())
        check(got == expected[name], f"topic {patterns[name]!r}: got {sorted(got)} want {sorted(expected[name])}")
    ch.exchange_delete(exchange=ex)
    ch.close()
    print("pika: topic routing ok")


def rpc_server(ready, stop, errors):
    try:
        conn = connect()
        ch = conn.channel()
        ch.queue_declare(queue=RPC_QUEUE, exclusive=False, auto_delete=True)
        ch.basic_qos(prefetch_count=1)

        def on_request(chan, method, props, body):
            reply = b"pong:" + body
            chan.basic_publish(
                exchange="",
                routing_key=props.reply_to,
                properties=pika.BasicProperties(correlation_id=props.correlation_id),
                body=reply,
            )
            chan.basic_ack(method.delivery_tag)

        ch.basic_consume(queue=RPC_QUEUE, on_message_callback=on_request)
        ready.set()
        while not stop.is_set():
            conn.process_data_events(time_limit=0.1)
        conn.close()
    except Exception as e:  # reported by the main thread
        errors.append(e)
        ready.set()


RPC_QUEUE = f"interop.pika.rpc.{SUFFIX}"


def test_rpc(conn):
    ready, stop, errors = threading.Event(), threading.Event(), []
    server = threading.Thread(target=rpc_server, args=(ready, stop, errors), daemon=True)
    server.start()
    check(ready.wait(WAIT), "rpc server did not start")
    check(not errors, f"rpc server failed: {errors!r}")
    try:
        ch = conn.channel()
        reply_q = ch.queue_declare(queue="", exclusive=True).method.queue
        check(reply_q.startswith("amq.gen-"), f"reply queue name {reply_q!r}")
        responses = {}

        def on_response(_chan, _method, props, body):
            responses[props.correlation_id] = body

        ch.basic_consume(queue=reply_q, on_message_callback=on_response, auto_ack=True)
        sent = {}
        for i in range(3):
            corr = str(uuid.uuid4())
            sent[corr] = f"ping{i}".encode()
            ch.basic_publish(
                exchange="",
                routing_key=RPC_QUEUE,
                properties=pika.BasicProperties(reply_to=reply_q, correlation_id=corr),
                body=sent[corr],
            )
        deadline = time.monotonic() + WAIT
        while len(responses) < len(sent) and time.monotonic() < deadline:
            conn.process_data_events(time_limit=0.1)
        check(not errors, f"rpc server failed: {errors!r}")
        check(set(responses) == set(sent), f"rpc: got replies for {sorted(responses)}, sent {sorted(sent)}")
        for corr, body in sent.items():
            check(responses[corr] == b"pong:" + body, f"rpc reply {responses[corr]!r} for {body!r}")
        ch.close()
    finally:
        stop.set()
        server.join(WAIT)
    print("pika: rpc ok")


def test_dead_letters_and_priorities(conn):
    ch = conn.channel()
    dlq = ch.queue_declare(queue="", exclusive=True).method.queue
    args = {"x-dead-letter-exchange": "", "x-dead-letter-routing-key": dlq}
    work = ch.queue_declare(queue="", exclusive=True, arguments=args).method.queue
    ch.confirm_delivery()
    ch.basic_publish("", work, b"reject-me")
    ch.basic_publish("", work, b"expire-me", pika.BasicProperties(expiration="50"))
    method, _props, body = ch.basic_get(work, auto_ack=False)
    check(body == b"reject-me", f"basic.get returned {body!r}")
    ch.basic_reject(method.delivery_tag, requeue=False)
    deadline = time.monotonic() + WAIT
    while ch.queue_declare(queue=dlq, passive=True).method.message_count < 2:
        check(time.monotonic() < deadline, "dead letters did not arrive")
        time.sleep(0.05)
    got = {}
    for _ in range(2):
        _m, props, body = ch.basic_get(dlq, auto_ack=True)
        got[body] = props
    rejected = got[b"reject-me"].headers["x-death"][0]
    check(rejected["reason"] == "rejected" and rejected["queue"] == work, f"x-death {rejected!r}")
    check(rejected["count"] == 1 and rejected["routing-keys"] == [work], f"x-death {rejected!r}")
    expired = got[b"expire-me"]
    check(expired.expiration is None, "a dead letter kept its expiration")
    death = expired.headers["x-death"][0]
    check(death["reason"] == "expired" and death["original-expiration"] == "50", f"x-death {death!r}")
    check(expired.headers["x-first-death-reason"] == "expired", f"headers {expired.headers!r}")

    ranked = ch.queue_declare(queue="", exclusive=True, arguments={"x-max-priority": 5}).method.queue
    for p in (1, 5, 3):
        ch.basic_publish("", ranked, f"p{p}".encode(), pika.BasicProperties(priority=p))
    order = [ch.basic_get(ranked, auto_ack=True)[2] for _ in range(3)]
    check(order == [b"p5", b"p3", b"p1"], f"priority order {order!r}")
    ch.close()
    print("pika: dead letters and priorities ok")


def test_tls():
    """Over AMQPS, trusting only $AMQPS_CA: the broker's certificate must chain to it."""
    url = os.environ.get("AMQPS_URL")
    if not url:
        return
    ctx = ssl.create_default_context(cafile=os.environ.get("AMQPS_CA"))
    if os.environ.get("AMQPS_CERT"):
        ctx.load_cert_chain(os.environ["AMQPS_CERT"], os.environ.get("AMQPS_KEY"))
    params = pika.URLParameters(url)
    params.ssl_options = pika.SSLOptions(ctx, server_hostname=params.host)
    params.socket_timeout = WAIT
    params.connection_attempts = 1
    conn = pika.BlockingConnection(params)
    ch = conn.channel()
    q = ch.queue_declare(queue=f"pika-tls-{SUFFIX}", exclusive=True).method.queue
    ch.confirm_delivery()
    big = os.urandom(300_000)  # many TLS records
    ch.basic_publish("", q, b"over tls")
    ch.basic_publish("", q, big)
    got = [body for _m, _p, body in consume_n(ch, q, 2)]
    check(got == [b"over tls", big], f"over TLS got {len(got)} messages")
    conn.close()
    print("pika: tls ok")


def main():
    signal.signal(signal.SIGALRM, on_alarm)
    signal.alarm(OVERALL_TIMEOUT)
    try:
        conn = connect()
        test_publish_consume(conn)
        test_topic_routing(conn)
        test_rpc(conn)
        test_dead_letters_and_priorities(conn)
        conn.close()
        test_tls()
    except Failure as e:
        print(f"pika: FAIL: {e}", file=sys.stderr)
        return 1
    except Exception as e:  # connection errors, channel closes, ...
        print(f"pika: FAIL: {type(e).__name__}: {e!r}", file=sys.stderr)
        return 1
    print("pika: all ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
