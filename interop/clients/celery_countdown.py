"""Celery tasks with `countdown` and `eta` against the broker at $AMQP_URL,
through kombu's native delayed delivery (Celery 5.5 with quorum queues: a
ladder of 28 topic exchanges and TTL queues that dead-letter into each
other, so a task waits in the broker instead of in the worker's memory).

A worker runs in this process (solo pool, in a thread); each task records
when it ran. Checks that every task ran once, none before its time, and
each within a few seconds after it (the ladder's queues expire by whole
TTLs).
"""

import datetime
import os
import sys
import threading
import time
import uuid

from celery import Celery
from celery.contrib.testing.worker import start_worker
from kombu import Exchange, Queue

URL = os.environ.get("AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/%2f")
TIMEOUT = float(os.environ.get("INTEROP_TIMEOUT", "60"))

name = f"celery-countdown-{uuid.uuid4().hex[:8]}"
app = Celery("warren_interop", broker=URL)
app.conf.update(
    task_queues=[Queue(name, Exchange(name, type="topic"), routing_key=name, queue_arguments={"x-queue-type": "quorum"})],
    task_default_queue=name,
    task_default_exchange=name,
    task_default_exchange_type="topic",
    task_default_routing_key=name,
    task_default_queue_type="quorum",
    broker_transport_options={"confirm_publish": True},
    worker_detect_quorum_queues=True,
    broker_connection_retry_on_startup=True,
    task_ignore_result=True,
)

ran = {}
lock = threading.Lock()


@app.task(name="warren.record")
def record(tag):
    with lock:
        ran.setdefault(tag, []).append(time.time())


def main():
    with start_worker(app, pool="solo", perform_ping_check=False, loglevel="WARNING"):
        # The worker's DelayedDelivery bootstep declares the ladder: wait
        # until its top level is there.
        ready = time.time() + 20
        while True:
            try:
                with app.connection_for_write() as conn:
                    conn.channel().exchange_declare("celery_delayed_27", "topic", passive=True)
                break
            except Exception:
                if time.time() > ready:
                    raise
                time.sleep(0.2)
        sent = time.time()
        plans = {"now": 0, "countdown-1": 1, "countdown-3": 3, "eta-2": 2}
        for tag, wait in plans.items():
            if tag.startswith("eta"):
                eta = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(seconds=wait)
                record.apply_async((tag,), eta=eta)
            elif wait:
                record.apply_async((tag,), countdown=wait)
            else:
                record.apply_async((tag,))
        deadline = time.time() + min(TIMEOUT, 30)
        while time.time() < deadline:
            with lock:
                if len(ran) == len(plans):
                    break
            time.sleep(0.1)
        time.sleep(0.5)  # a repeat would show by now
    # Nothing left behind on a long-lived broker: the test's queue and exchange.
    with app.connection_for_write() as conn:
        ch = conn.channel()
        ch.queue_delete(name)
        ch.exchange_delete(name)
    failures = []
    for tag, wait in plans.items():
        times = ran.get(tag, [])
        if len(times) != 1:
            failures.append(f"{tag} ran {len(times)} times")
            continue
        late = times[0] - (sent + wait)
        # Waited in the broker: never early (a second's slack for ETA rounding).
        if late < -1.0 or late > 10.0:
            failures.append(f"{tag} ran {late:+.2f}s from its time")
        print(f"  {tag}: ran {late:+.2f}s from its time")
    if failures:
        print("FAIL:", "; ".join(failures))
        return 1
    print("celery countdown: ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
