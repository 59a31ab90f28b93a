#!/usr/bin/env node
// Interop check with amqplib (Node): publish/consume, topic routing, RPC.
//
// Reads the broker URL from $AMQP_URL (default amqp://guest:guest@127.0.0.1:5672/%2f).
// With $AMQPS_URL (amqps://...) and $AMQPS_CA (a PEM file of the CA that signed the
// broker's certificate) it also publishes and consumes over TLS; $AMQPS_CERT and
// $AMQPS_KEY add a client certificate.
// Exits 0 on success, non-zero with a message on failure. Bounded by an overall
// timeout (INTEROP_TIMEOUT seconds, default 60).
'use strict';

const amqp = require('amqplib');
const crypto = require('node:crypto');
const fs = require('node:fs');

const URL = process.env.AMQP_URL || 'amqp://guest:guest@127.0.0.1:5672/%2f';
const OVERALL_TIMEOUT_MS = 1000 * Number(process.env.INTEROP_TIMEOUT || 60);
const WAIT_MS = 10000; // any single wait on the broker
const SUFFIX = crypto.randomBytes(5).toString('hex');

const overall = setTimeout(() => {
  console.error(`amqplib: FAIL: overall timeout of ${OVERALL_TIMEOUT_MS / 1000}s exceeded`);
  process.exit(2);
}, OVERALL_TIMEOUT_MS);

function check(cond, msg) {
  if (!cond) throw new Error(msg);
}

function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

function withTimeout(promise, what) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out waiting for ${what}`)), WAIT_MS);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/** Consume `n` messages from `queue` (bounded); resolves with the messages. */
async function consumeN(ch, queue, n, { noAck = true } = {}) {
  const got = [];
  let done;
  const finished = new Promise((resolve) => (done = resolve));
  const { consumerTag } = await ch.consume(
    queue,
    (msg) => {
      if (msg === null) return; // cancelled by the server
      got.push(msg);
      if (!noAck) ch.ack(msg);
      if (got.length === n) done();
    },
    { noAck },
  );
  check(consumerTag.startsWith('amq.ctag-'), `consumer tag ${consumerTag}`);
  await withTimeout(finished, `${n} messages on ${queue}`);
  await ch.cancel(consumerTag);
  return got;
}

async function testPublishConsume(conn) {
  const ch = await conn.createConfirmChannel();
  const { queue: q } = await ch.assertQueue('', { exclusive: true });
  check(q.startsWith('amq.gen-'), `server-named queue ${q}`);

  const bodies = [0, 1, 2, 3, 4].map((i) => Buffer.from(`amqplib message ${i}`));
  const options = {
    contentType: 'text/plain',
    persistent: true,
    messageId: 'amqplib-1',
    correlationId: 'corr-1',
    headers: { n: 42, s: 'str', nested: { a: [1, 2, 3] }, flag: true },
  };
  for (const b of bodies) ch.sendToQueue(q, b, options);
  await withTimeout(ch.waitForConfirms(), 'publisher confirms');

  const checked = await ch.checkQueue(q);
  check(checked.messageCount === 5, `checkQueue messageCount ${checked.messageCount} != 5`);

  const first = await ch.get(q, { noAck: false });
  check(first !== false, 'basic.get returned get-empty');
  check(first.content.equals(bodies[0]), `basic.get body ${first.content}`);
  check(first.fields.messageCount === 4, `get-ok messageCount ${first.fields.messageCount} != 4`);
  ch.ack(first);

  const got = await consumeN(ch, q, 4, { noAck: false });
  got.forEach((msg, i) => {
    check(msg.content.equals(bodies[i + 1]), `consumed body ${msg.content} at ${i}`);
    const p = msg.properties;
    check(p.contentType === 'text/plain', `contentType ${p.contentType}`);
    check(p.deliveryMode === 2, `deliveryMode ${p.deliveryMode}`);
    check(p.messageId === 'amqplib-1', `messageId ${p.messageId}`);
    check(p.correlationId === 'corr-1', `correlationId ${p.correlationId}`);
    check(p.headers.n === 42, `header n ${p.headers.n}`);
    check(p.headers.s === 'str', `header s ${p.headers.s}`);
    check(p.headers.flag === true, `header flag ${p.headers.flag}`);
    check(JSON.stringify(p.headers.nested) === '{"a":[1,2,3]}', `nested ${JSON.stringify(p.headers.nested)}`);
    check(msg.fields.exchange === '' && msg.fields.routingKey === q, `fields ${JSON.stringify(msg.fields)}`);
  });
  check((await ch.get(q)) === false, 'queue should be empty');

  // Mandatory unroutable publish comes back as basic.return.
  const returned = new Promise((resolve) => ch.once('return', resolve));
  ch.publish('', `no-such-queue-${SUFFIX}`, Buffer.from('bounce'), { mandatory: true });
  const ret = await withTimeout(returned, 'basic.return');
  check(ret.fields.replyCode === 312, `return replyCode ${ret.fields.replyCode}`);
  check(ret.fields.replyText === 'NO_ROUTE', `return replyText ${ret.fields.replyText}`);
  check(ret.content.toString() === 'bounce', `returned body ${ret.content}`);
  await withTimeout(ch.waitForConfirms(), 'publisher confirms');
  await ch.close();
  console.log('amqplib: publish/consume ok');
}

async function testTopicRouting(conn) {
  const ch = await conn.createChannel();
  const ex = `interop.amqplib.topic.${SUFFIX}`;
  await ch.assertExchange(ex, 'topic', { autoDelete: true, durable: false });
  const patterns = { star: 'logs.*', hash: 'logs.#', err: '*.error', all: '#' };
  const queues = {};
  for (const [name, pattern] of Object.entries(patterns)) {
    const { queue } = await ch.assertQueue('', { exclusive: true });
    await ch.bindQueue(queue, ex, pattern);
    queues[name] = queue;
  }
  const keys = ['logs', 'logs.info', 'logs.error', 'logs.app.error', 'app.error', 'other'];
  for (const k of keys) ch.publish(ex, k, Buffer.from(k));
  const expected = {
    star: ['logs.error', 'logs.info'],
    hash: ['logs', 'logs.app.error', 'logs.error', 'logs.info'],
    err: ['app.error', 'logs.error'],
    all: [...keys].sort(),
  };
  for (const [name, q] of Object.entries(queues)) {
    const got = (await consumeN(ch, q, expected[name].length)).map((m) => m.content.toString()).sort();
    check(
      JSON.stringify(got) === JSON.stringify(expected[name]),
      `topic ${patterns[name]}: got ${got} want ${expected[name]}`,
    );
  }
  // Nothing extra arrived.
  await sleep(200);
  for (const [name, q] of Object.entries(queues)) {
    const extra = await ch.get(q);
    check(extra === false, `topic ${patterns[name]}: unexpected ${extra && extra.content}`);
  }
  await ch.deleteExchange(ex);
  await ch.close();
  console.log('amqplib: topic routing ok');
}

async function testRpc(conn) {
  const rpcQueue = `interop.amqplib.rpc.${SUFFIX}`;

  // Server on its own connection.
  const serverConn = await amqp.connect(URL);
  const server = await serverConn.createChannel();
  await server.assertQueue(rpcQueue, { autoDelete: true, durable: false });
  await server.prefetch(1);
  await server.consume(rpcQueue, (msg) => {
    if (msg === null) return;
    server.sendToQueue(msg.properties.replyTo, Buffer.concat([Buffer.from('pong:'), msg.content]), {
      correlationId: msg.properties.correlationId,
    });
    server.ack(msg);
  });

  try {
    const ch = await conn.createChannel();
    const { queue: replyQ } = await ch.assertQueue('', { exclusive: true });
    check(replyQ.startsWith('amq.gen-'), `reply queue ${replyQ}`);
    const pending = new Map();
    await ch.consume(
      replyQ,
      (msg) => {
        if (msg === null) return;
        const resolve = pending.get(msg.properties.correlationId);
        if (resolve) resolve(msg.content.toString());
      },
      { noAck: true },
    );
    const calls = [0, 1, 2].map((i) => {
      const corr = crypto.randomUUID();
      const reply = new Promise((resolve) => pending.set(corr, resolve));
      ch.sendToQueue(rpcQueue, Buffer.from(`ping${i}`), { replyTo: replyQ, correlationId: corr });
      return withTimeout(reply, `rpc reply ${i}`).then((body) =>
        check(body === `pong:ping${i}`, `rpc reply ${body} for ping${i}`),
      );
    });
    await Promise.all(calls);
    await ch.close();
  } finally {
    await serverConn.close();
  }
  console.log('amqplib: rpc ok');
}

/** Over AMQPS, trusting only $AMQPS_CA: the broker's certificate must chain to it. */
async function testTls() {
  const url = process.env.AMQPS_URL;
  if (!url) return;
  const opts = {};
  if (process.env.AMQPS_CA) opts.ca = [fs.readFileSync(process.env.AMQPS_CA)];
  if (process.env.AMQPS_CERT) opts.cert = fs.readFileSync(process.env.AMQPS_CERT);
  if (process.env.AMQPS_KEY) opts.key = fs.readFileSync(process.env.AMQPS_KEY);
  const conn = await withTimeout(amqp.connect(url, opts), 'TLS connection');
  conn.on('error', (err) => console.error(`amqplib: TLS connection error: ${err.message}`));
  try {
    const protocol = conn.connection.stream.getProtocol();
    const ch = await conn.createConfirmChannel();
    const { queue: q } = await ch.assertQueue(`amqplib-tls-${SUFFIX}`, { exclusive: true });
    const big = crypto.randomBytes(300000); // many TLS records
    ch.sendToQueue(q, Buffer.from('over tls'));
    ch.sendToQueue(q, big);
    await withTimeout(ch.waitForConfirms(), 'publisher confirms over TLS');
    const got = await consumeN(ch, q, 2);
    check(got[0].content.toString() === 'over tls', `over TLS got ${got[0].content}`);
    check(got[1].content.equals(big), 'the large message arrived changed over TLS');
    await ch.close();
    console.log(`amqplib: tls ok (${protocol})`);
  } finally {
    await conn.close().catch(() => {});
  }
}

async function main() {
  const conn = await withTimeout(amqp.connect(URL), 'connection');
  conn.on('error', (err) => console.error(`amqplib: connection error: ${err.message}`));
  try {
    await testPublishConsume(conn);
    await testTopicRouting(conn);
    await testRpc(conn);
  } finally {
    await conn.close().catch(() => {});
  }
  await testTls();
}

main().then(
  () => {
    clearTimeout(overall);
    console.log('amqplib: all ok');
    process.exit(0);
  },
  (err) => {
    clearTimeout(overall);
    console.error(`amqplib: FAIL: ${err && err.stack ? err.stack : err}`);
    process.exit(1);
  },
);
