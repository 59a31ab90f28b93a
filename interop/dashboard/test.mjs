#!/usr/bin/env node
// End-to-end test of Warren's web dashboard.
//
// Starts `warren` ($WARREN_BIN) on free ports with a fresh data directory,
// drives Debian's Chromium through playwright-core against the dashboard on
// the admin port, and checks what the pages show and do against a real AMQP
// client (amqplib). Prints `ok - <check>` per check; on the first failure
// prints `not ok - <check>: <why>`, warren's stderr and the page's errors,
// and exits 1. Screenshots go to $DASHBOARD_ARTIFACTS.
//
// Environment:
//   WARREN_BIN           the broker binary (default $CARGO_TARGET_DIR/debug/warren, else target/debug/warren)
//   CHROMIUM             the browser (default /usr/bin/chromium)
//   DASHBOARD_ARTIFACTS  where screenshots go (default interop/dashboard/artifacts)
//   DASHBOARD_TIMEOUT    seconds the whole test may take (default 180)

import { spawn } from 'node:child_process';
import fs from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';

import amqp from 'amqplib';
import { chromium } from 'playwright-core';

const here = path.dirname(fileURLToPath(import.meta.url));
const repoRoot = path.resolve(here, '..', '..');

const WARREN_BIN = path.resolve(
  process.env.WARREN_BIN ?? path.resolve(repoRoot, process.env.CARGO_TARGET_DIR ?? 'target', 'debug', 'warren'),
);
const CHROMIUM = process.env.CHROMIUM ?? '/usr/bin/chromium';
const ARTIFACTS = path.resolve(process.env.DASHBOARD_ARTIFACTS ?? path.join(here, 'artifacts'));
const OVERALL_TIMEOUT_MS = 1000 * Number(process.env.DASHBOARD_TIMEOUT ?? 180);
const CHROMIUM_ARGS = [
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];
const WAIT_MS = 15_000; // default bound of any single wait

const GUEST_BASIC = `Basic ${Buffer.from('guest:guest').toString('base64')}`;

// Everything that must be torn down, and what to show when a check fails.
const state = {
  warren: null, // ChildProcess
  warrenExit: null, // "code 1" / "signal SIGKILL" once it has exited
  warrenOutput: '',
  dataDir: null,
  browser: null,
  amqpConns: new Set(),
  amqpErrors: [],
  pageErrors: [],
  lastPage: null, // the page a failure screenshot shows
  interrupted: false,
};
let currentCheck = 'setup';

// ---------------------------------------------------------------------------
// Small helpers

class CheckFailed extends Error {}

function assert(cond, message) {
  if (!cond) throw new CheckFailed(message);
}

/** Runs one named check; prints `ok - name` when it passes. */
async function check(name, fn) {
  currentCheck = name;
  await fn();
  console.log(`ok - ${name}`);
}

/**
 * Polls `fn` every 100 ms until it returns a truthy value (which is returned)
 * or `ms` pass. A throw from `fn` counts as "not yet"; the last one is
 * reported on timeout. Fails at once if warren has exited.
 */
async function waitFor(fn, what, ms = WAIT_MS) {
  const deadline = Date.now() + ms;
  let last;
  for (;;) {
    if (state.warrenExit) throw new CheckFailed(`warren exited (${state.warrenExit}) while waiting for ${what}`);
    try {
      const value = await fn();
      if (value) return value;
      last = value;
    } catch (e) {
      last = e;
    }
    if (Date.now() >= deadline) {
      const detail = last instanceof Error ? `; last error: ${last.message}` : `; last value: ${JSON.stringify(last)}`;
      throw new CheckFailed(`timed out after ${ms / 1000}s waiting for ${what}${detail}`);
    }
    await sleep(100);
  }
}

/** Bounds a promise that has no timeout of its own. */
async function within(promise, what, ms = WAIT_MS) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new CheckFailed(`timed out after ${ms / 1000}s waiting for ${what}`)), ms);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

async function freePorts(n) {
  const servers = await Promise.all(
    Array.from({ length: n }, () => new Promise((resolve, reject) => {
      const srv = net.createServer();
      srv.once('error', reject);
      srv.listen(0, '127.0.0.1', () => resolve(srv));
    })),
  );
  const ports = servers.map((s) => s.address().port);
  await Promise.all(servers.map((s) => new Promise((resolve) => s.close(resolve))));
  return ports;
}

function accepts(port) {
  return new Promise((resolve) => {
    const sock = net.connect(port, '127.0.0.1');
    sock.once('connect', () => {
      sock.destroy();
      resolve(true);
    });
    sock.once('error', () => resolve(false));
  });
}

// ---------------------------------------------------------------------------
// Warren

async function startWarren() {
  const [amqpPort, adminPort] = await freePorts(2);
  state.dataDir = await fs.mkdtemp(path.join(os.tmpdir(), 'warren-dashboard-'));
  const args = [
    '--listen', `127.0.0.1:${amqpPort}`,
    '--admin-listen', `127.0.0.1:${adminPort}`,
    '--metrics-listen', '127.0.0.1:0',
    '--data-dir', state.dataDir,
    '--log-level', 'warn',
  ];
  const child = spawn(WARREN_BIN, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  state.warren = child;
  const keep = (chunk) => {
    state.warrenOutput = (state.warrenOutput + chunk).slice(-64 * 1024);
  };
  child.stdout.setEncoding('utf8').on('data', keep);
  child.stderr.setEncoding('utf8').on('data', keep);
  child.on('error', (e) => {
    state.warrenExit = `could not start ${WARREN_BIN}: ${e.message}`;
  });
  child.on('exit', (code, signal) => {
    state.warrenExit = signal ? `signal ${signal}` : `code ${code}`;
  });

  await waitFor(() => accepts(amqpPort), `warren to accept AMQP on 127.0.0.1:${amqpPort}`, 30_000);
  await waitFor(() => accepts(adminPort), `warren to accept HTTP on 127.0.0.1:${adminPort}`, 30_000);
  return { amqpPort, adminPort };
}

async function stopWarren() {
  const child = state.warren;
  if (!child || state.warrenExit) return;
  const exited = new Promise((resolve) => child.once('exit', resolve));
  child.kill('SIGTERM');
  const stopped = await Promise.race([exited.then(() => true), sleep(5000).then(() => false)]);
  if (!stopped) {
    child.kill('SIGKILL');
    await exited;
  }
}

// ---------------------------------------------------------------------------
// AMQP (amqplib)

async function amqpConnect(url, options = {}) {
  const conn = await within(amqp.connect(url, options), `an AMQP connection to ${url.replace(/\/\/[^@]*@/, '//***@')}`);
  state.amqpConns.add(conn);
  // An 'error' without a listener would throw out of amqplib's socket handler.
  conn.on('error', (e) => state.amqpErrors.push(`connection: ${e.message}`));
  conn.on('close', () => state.amqpConns.delete(conn));
  return conn;
}

async function amqpChannel(conn, { confirm = false } = {}) {
  const ch = await (confirm ? conn.createConfirmChannel() : conn.createChannel());
  ch.on('error', (e) => state.amqpErrors.push(`channel: ${e.message}`));
  return ch;
}

async function publishConfirmed(ch, queue, bodies) {
  for (const body of bodies) ch.sendToQueue(queue, Buffer.from(body), { persistent: true });
  await within(ch.waitForConfirms(), `publisher confirms for ${bodies.length} messages to ${queue}`);
}

// ---------------------------------------------------------------------------
// Browser

async function newPage(browser) {
  const context = await browser.newContext({ viewport: { width: 1366, height: 900 } });
  context.setDefaultTimeout(WAIT_MS);
  const page = await context.newPage();
  state.lastPage = page;
  const tag = `page ${state.pageErrors.length}`;
  page.on('pageerror', (e) => state.pageErrors.push(`${tag}: uncaught ${e.message}`));
  page.on('console', (msg) => {
    if (msg.type() === 'error') state.pageErrors.push(`${tag}: console: ${msg.text()}`);
  });
  return { context, page };
}

/** The trimmed text of the first match, or null when nothing matches (never waits). */
function textOf(page, selector) {
  return page.evaluate((sel) => document.querySelector(sel)?.textContent.trim() ?? null, selector);
}

function hashOf(page) {
  return page.evaluate(() => location.hash);
}

async function waitForText(page, selector, expected, ms = WAIT_MS) {
  await waitFor(async () => (await textOf(page, selector)) === expected, `${selector} to read ${JSON.stringify(expected)}`, ms);
}

async function waitVisible(page, selector, ms = WAIT_MS) {
  await waitFor(() => page.locator(selector).first().isVisible(), `${selector} to be visible`, ms);
}

/** Clicks a navigation link and waits for the route it leads to. */
async function navigate(page, name, hash) {
  await page.click(`a[data-page="${name}"]`);
  await waitFor(async () => (await hashOf(page)) === hash, `location.hash to become ${hash}`);
}

/** Sets a form field: selectOption for a <select>, fill for anything else. */
async function setField(page, selector, value) {
  await page.locator(selector).waitFor({ state: 'visible' });
  const tag = await page.locator(selector).evaluate((el) => el.tagName);
  if (tag === 'SELECT') await page.selectOption(selector, value);
  else await page.fill(selector, value);
}

async function login(page, user, password) {
  await page.locator('#login-username').waitFor({ state: 'visible' });
  await page.fill('#login-username', user);
  await page.fill('#login-password', password);
  await page.click('#login-submit');
}

async function screenshot(page, name) {
  const file = path.join(ARTIFACTS, name);
  // From the top: a sticky header is drawn where the page is scrolled to.
  await page.evaluate(() => window.scrollTo(0, 0));
  await page.screenshot({ path: file, fullPage: true });
  console.log(`# screenshot ${shown(file)}`);
}

/** `file` relative to the working directory when it lies inside it. */
function shown(file) {
  const rel = path.relative(process.cwd(), file);
  return rel.startsWith('..') ? file : rel;
}

/** Answers a fetch of /api/overview made by the page itself, as the UI makes it. */
function pageFetchStatus(page, url) {
  return page.evaluate(
    async (u) => (await fetch(u, { credentials: 'same-origin', headers: { 'X-Warren-UI': '1' } })).status,
    url,
  );
}

// ---------------------------------------------------------------------------
// The test

async function main() {
  await fs.mkdir(ARTIFACTS, { recursive: true });

  let ports;
  await check(`warren starts (${WARREN_BIN})`, async () => {
    ports = await startWarren();
  });
  const amqpUrl = (user, password) => `amqp://${encodeURIComponent(user)}:${encodeURIComponent(password)}@127.0.0.1:${ports.amqpPort}`;
  const base = `http://127.0.0.1:${ports.adminPort}`;

  // a. Messages to look at.
  let guest, ch;
  await check('amqplib: declare ui-orders and other-q, publish order-1..order-5 with confirms', async () => {
    guest = await amqpConnect(amqpUrl('guest', 'guest'));
    ch = await amqpChannel(guest, { confirm: true });
    await ch.assertQueue('ui-orders', { durable: true });
    await ch.assertQueue('other-q', { durable: true });
    await publishConfirmed(ch, 'ui-orders', ['order-1', 'order-2', 'order-3', 'order-4', 'order-5']);
    const { messageCount } = await ch.checkQueue('ui-orders');
    assert(messageCount === 5, `ui-orders holds ${messageCount} messages, expected 5`);
  });

  // b. Login.
  let context, page;
  await check(`chromium starts (${CHROMIUM})`, async () => {
    state.browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS });
    ({ context, page } = await newPage(state.browser));
  });

  await check('login: a wrong password shows #login-error and no app', async () => {
    await page.goto(`${base}/`);
    await login(page, 'guest', 'not-the-password');
    await waitFor(async () => (await textOf(page, '#login-error'))?.length > 0, '#login-error to show a message');
    await waitVisible(page, '#login-error');
    assert(!(await page.locator('#app').isVisible()), '#app is visible after a refused login');
  });

  await check('login: guest/guest shows #app and #whoami names guest', async () => {
    await login(page, 'guest', 'guest');
    await waitVisible(page, '#app');
    await waitFor(async () => /\bguest\b/.test((await textOf(page, '#whoami')) ?? ''), '#whoami to show guest');
    assert(!(await page.locator('#login-username').isVisible()), 'the login form is still visible after logging in');
  });

  await check('session: no credentials in web storage; HttpOnly SameSite=Strict warren_session cookie', async () => {
    const stored = await page.evaluate(() => {
      const all = [];
      for (const storage of [localStorage, sessionStorage]) {
        for (let i = 0; i < storage.length; i++) {
          const key = storage.key(i);
          all.push(`${key}=${storage.getItem(key)}`);
        }
      }
      return all;
    });
    const base64 = Buffer.from('guest:guest').toString('base64'); // Z3Vlc3Q6Z3Vlc3Q=
    const leaks = stored.filter((s) => s.includes('Basic ') || s.includes(base64.replace(/=+$/, '')));
    assert(leaks.length === 0, `web storage holds credentials: ${JSON.stringify(leaks)}`);
    const scriptCookies = await page.evaluate(() => document.cookie);
    assert(scriptCookies === '', `document.cookie is readable by scripts: ${JSON.stringify(scriptCookies)}`);
    const cookies = await context.cookies(base);
    const session = cookies.find((c) => c.name === 'warren_session');
    assert(session, `no warren_session cookie (cookies: ${cookies.map((c) => c.name).join(', ') || 'none'})`);
    assert(session.httpOnly === true, 'warren_session is not HttpOnly');
    assert(session.sameSite === 'Strict', `warren_session has SameSite=${session.sameSite}, expected Strict`);
    state.guestSession = session.value;
    // The cookie alone is not enough: a cross-site page cannot add the header.
    // (Asked from Node: that 401 carries the Basic challenge, which a browser would hold for its own login box.)
    const bare = (await fetch(`${base}/api/overview`, { headers: { Cookie: `warren_session=${session.value}` } })).status;
    assert(bare === 401, `the session cookie without X-Warren-UI answered ${bare}, expected 401`);
  });

  // c. Overview.
  await check('overview: #ov-queued is a number, #ov-queues >= 1, rate and queued charts', async () => {
    // The overview is the app's landing route ('' or '#/').
    if (!['', '#/'].includes(await hashOf(page))) await page.evaluate(() => { location.hash = '#/'; });
    await waitFor(async () => /^\d[\d,.\s]*$/.test((await textOf(page, '#ov-queued')) ?? ''), '#ov-queued to show a number');
    await waitFor(async () => Number.parseInt((await textOf(page, '#ov-queues')) ?? '', 10) >= 1, '#ov-queues to read 1 or more');
    for (const chart of ['#chart-rates', '#chart-queued']) {
      await waitFor(async () => (await page.locator(`canvas${chart}`).count()) === 1, `a <canvas> ${chart}`);
    }
    await screenshot(page, 'overview.png');
  });

  // d. Queues list.
  const ordersCell = '#queues-table tr[data-queue="ui-orders"] td.messages';
  await check('queues: ui-orders row shows 5 messages', async () => {
    await navigate(page, 'queues', '#/queues');
    await waitVisible(page, '#queues-table');
    await waitForText(page, ordersCell, '5');
  });

  await check('queues: 3 more published over AMQP show up as 8', async () => {
    await publishConfirmed(ch, 'ui-orders', ['order-6', 'order-7', 'order-8']);
    await waitForText(page, ordersCell, '8');
  });

  await check('queues: the filter "ui-ord" keeps ui-orders and hides other-q', async () => {
    await waitVisible(page, '#queues-table tr[data-queue="other-q"]');
    await page.fill('#queue-filter', 'ui-ord');
    await waitFor(
      async () => !(await page.locator('#queues-table tr[data-queue="other-q"]').isVisible()),
      'other-q to be filtered out',
    );
    assert(await page.locator('#queues-table tr[data-queue="ui-orders"]').isVisible(), 'ui-orders was filtered out too');
    await screenshot(page, 'queues.png');
  });

  // e. One queue.
  await check('queue page: the name link opens #/queues/%2F/ui-orders with 8 messages', async () => {
    await page.locator('tr[data-queue="ui-orders"] a', { hasText: 'ui-orders' }).first().click();
    await waitFor(async () => (await hashOf(page)) === '#/queues/%2F/ui-orders', 'location.hash to become #/queues/%2F/ui-orders');
    await waitForText(page, '#q-messages', '8');
  });

  await check('queue page: get 2 messages (ack_requeue_true) shows order-1 first', async () => {
    await setField(page, '#get-count', '2');
    await setField(page, '#get-ackmode', 'ack_requeue_true');
    await page.click('#get-submit');
    await waitFor(async () => (await page.locator('.message-payload').count()) === 2, 'two .message-payload elements');
    const first = await page.locator('.message-payload').first().textContent();
    assert(first.includes('order-1'), `the first payload is ${JSON.stringify(first)}, expected it to contain order-1`);
    await screenshot(page, 'queue.png');
  });

  await check('queue page: purge, confirmed in a dialog, empties the queue', async () => {
    await page.click('#purge');
    await waitVisible(page, '#confirm-yes');
    await page.click('#confirm-yes');
    await waitForText(page, '#q-messages', '0');
    const { messageCount } = await ch.checkQueue('ui-orders');
    assert(messageCount === 0, `amqplib sees ${messageCount} messages in ui-orders after the purge`);
  });

  await check('queue page: move, confirmed in a dialog, takes the messages to another queue', async () => {
    await ch.assertQueue('ui-archive', { durable: true });
    await publishConfirmed(ch, 'ui-orders', ['late-1', 'late-2']);
    await waitForText(page, '#q-messages', '2');
    await setField(page, '#move-destination', 'ui-archive');
    await page.click('#move-submit');
    await waitVisible(page, '#confirm-yes');
    await page.click('#confirm-yes');
    await waitForText(page, '#q-messages', '0');
    const { messageCount } = await ch.checkQueue('ui-archive');
    assert(messageCount === 2, `amqplib sees ${messageCount} messages in ui-archive after the move, expected 2`);
    const first = await ch.get('ui-archive', { noAck: true });
    assert(first && first.content.toString() === 'late-1', `the first moved message is ${first && first.content}, expected late-1`);
  });

  // f. Admin: users, permissions, policies.
  await check('admin: add user ui-user', async () => {
    await navigate(page, 'admin', '#/admin');
    await setField(page, '#user-name', 'ui-user');
    await setField(page, '#user-password', 's3cret-ui');
    await setField(page, '#user-tags', '');
    await page.click('#user-add');
    await waitVisible(page, 'tr[data-user="ui-user"]');
  });

  await check('admin: grant ui-user .* on / and it can declare a queue over AMQP', async () => {
    await setField(page, '#perm-user', 'ui-user');
    await setField(page, '#perm-vhost', '/');
    for (const field of ['#perm-configure', '#perm-write', '#perm-read']) await setField(page, field, '.*');
    await page.click('#perm-set');
    await waitVisible(page, 'tr[data-permission="/|ui-user"]');
    const conn = await amqpConnect(amqpUrl('ui-user', 's3cret-ui'));
    const uch = await amqpChannel(conn);
    await uch.assertQueue('ui-user.q', { exclusive: true });
    await conn.close();
  });

  await check('admin: policy ui-cap (max-length 2 on ^capped\\.) caps capped.q at 2 messages', async () => {
    await setField(page, '#policy-vhost', '/');
    await setField(page, '#policy-name', 'ui-cap');
    await setField(page, '#policy-pattern', '^capped\\.');
    await setField(page, '#policy-applyto', 'queues');
    await setField(page, '#policy-definition', '{"max-length": 2}');
    await setField(page, '#policy-priority', '0');
    await page.click('#policy-add');
    await waitVisible(page, 'tr[data-policy="/|ui-cap"]');
    await ch.assertQueue('capped.q');
    await publishConfirmed(ch, 'capped.q', ['c-1', 'c-2', 'c-3', 'c-4', 'c-5']);
    await waitFor(async () => (await ch.checkQueue('capped.q')).messageCount === 2, 'capped.q to hold 2 messages', 10_000);
    await screenshot(page, 'admin.png');
  });

  // g. Connections: close one from the UI.
  await check('connections: close ui-victim from the UI with a reason', async () => {
    const victim = await amqpConnect(amqpUrl('guest', 'guest'), { clientProperties: { connection_name: 'ui-victim' } });
    const closed = new Promise((resolve) => {
      victim.once('error', resolve);
      victim.once('close', resolve);
    });
    await navigate(page, 'connections', '#/connections');
    const row = 'tr[data-client-name="ui-victim"]';
    await waitVisible(page, row);
    await page.click(`${row} button.close-conn`);
    await waitVisible(page, '#close-reason');
    await page.fill('#close-reason', 'closed from the UI test');
    await page.click('#confirm-yes');
    const err = await within(closed, 'amqplib to see ui-victim closed by the broker');
    assert(err instanceof Error, 'ui-victim was closed without an error (expected CONNECTION_FORCED)');
    assert(/CONNECTION_FORCED|320/.test(err.message), `ui-victim's close is not CONNECTION_FORCED: ${err.message}`);
    assert(err.message.includes('closed from the UI test'), `the close does not carry the reason: ${err.message}`);
    await screenshot(page, 'connections.png');
  });

  // h. A monitoring user sees but cannot change.
  await check('monitoring: ui-watcher (created over the HTTP API) sees ui-orders without purge or get', async () => {
    const res = await fetch(`${base}/api/users/ui-watcher`, {
      method: 'PUT',
      headers: { Authorization: GUEST_BASIC, 'Content-Type': 'application/json' },
      body: JSON.stringify({ password: 'w4tch', tags: 'monitoring' }),
    });
    assert(res.ok, `PUT /api/users/ui-watcher answered ${res.status}: ${await res.text()}`);

    const watcher = await newPage(state.browser);
    const wpage = watcher.page;
    await wpage.goto(`${base}/`);
    await login(wpage, 'ui-watcher', 'w4tch');
    await waitVisible(wpage, '#app');
    await wpage.evaluate(() => { location.hash = '#/queues/%2F/ui-orders'; });
    await waitVisible(wpage, '#q-messages');
    await waitForText(wpage, '#q-messages', '0');
    // Controls may render a moment after the numbers: they must stay absent.
    const until = Date.now() + 1000;
    while (Date.now() < until) {
      for (const control of ['#purge', '#get-submit']) {
        const n = await wpage.locator(control).count();
        assert(n === 0, `${control} is offered to a monitoring user`);
      }
      await sleep(100);
    }
    const stored = await wpage.evaluate(() => JSON.stringify({ ...localStorage, ...sessionStorage }));
    assert(!stored.includes('w4tch'), 'web storage holds ui-watcher\'s password');
    await watcher.context.close();
  });

  await check('management: a refused purge says why and keeps the session', async () => {
    // Tagged management, with no permissions in "/": the overview must not
    // need monitoring's endpoints, and a refused action must not log out.
    const res = await fetch(`${base}/api/users/ui-manager`, {
      method: 'PUT',
      headers: { Authorization: GUEST_BASIC, 'Content-Type': 'application/json' },
      body: JSON.stringify({ password: 'm4nage', tags: 'management' }),
    });
    assert(res.ok, `PUT /api/users/ui-manager answered ${res.status}: ${await res.text()}`);
    const manager = await newPage(state.browser);
    const mpage = manager.page;
    await mpage.goto(`${base}/`);
    await login(mpage, 'ui-manager', 'm4nage');
    await waitVisible(mpage, '#app');
    await waitFor(async () => /^\d/.test((await textOf(mpage, '#ov-queues')) ?? ''), 'the overview to load for a management user');
    await mpage.evaluate(() => { location.hash = '#/queues/%2F/ui-orders'; });
    await waitVisible(mpage, '#purge');
    await mpage.click('#purge');
    await waitVisible(mpage, '#confirm-yes');
    await mpage.click('#confirm-yes');
    await waitVisible(mpage, '.toast.bad');
    await sleep(500);
    assert(await mpage.locator('#app').isVisible(), 'a refused purge logged the user out');
    assert(!(await mpage.locator('#login-username').isVisible()), 'a refused purge showed the login form');
    await manager.context.close();
  });

  // i. Logout.
  await check('logout: back to the login form, and the API answers 401', async () => {
    await page.click('#logout');
    await waitVisible(page, '#login-username');
    assert(!(await page.locator('#app').isVisible()), '#app is still visible after logging out');
    const status = await pageFetchStatus(page, '/api/overview');
    assert(status === 401, `GET /api/overview after logout answered ${status}, expected 401`);
    // The server ended the session: its old token, replayed, is refused.
    const replay = await fetch(`${base}/api/overview`, {
      headers: { Cookie: `warren_session=${state.guestSession}`, 'X-Warren-UI': '1' },
    });
    assert(replay.status === 401, `the logged-out session's cookie, replayed, answered ${replay.status}, expected 401`);
  });

  await check('clean shutdown: amqplib connections and the browser close', async () => {
    await within(guest.close(), 'the guest AMQP connection to close');
    await within(state.browser.close(), 'the browser to close');
    state.browser = null;
  });
}

async function cleanup() {
  for (const conn of state.amqpConns) await conn.close().catch(() => {});
  state.amqpConns.clear();
  if (state.browser) await state.browser.close().catch(() => {});
  state.browser = null;
  await stopWarren().catch(() => {});
  if (state.dataDir) await fs.rm(state.dataDir, { recursive: true, force: true }).catch(() => {});
  state.dataDir = null;
}

const stripAnsi = (text) => String(text).replace(/\x1b\[[0-9;]*m/g, '');

async function report(err) {
  if (state.interrupted) return; // said already; the teardown is what failed
  const why = err instanceof CheckFailed ? err.message : err?.stack ?? err;
  console.error(`not ok - ${currentCheck}: ${stripAnsi(why)}`);
  if (state.warrenExit) console.error(`# warren exited: ${state.warrenExit}`);
  if (state.warrenOutput.trim()) {
    console.error('# warren output:');
    console.error(state.warrenOutput.trimEnd().replace(/^/gm, '#   '));
  }
  if (state.amqpErrors.length) {
    console.error('# amqplib errors:');
    for (const e of state.amqpErrors.slice(-10)) console.error(`#   ${e}`);
  }
  if (state.pageErrors.length) {
    console.error('# browser errors:');
    for (const e of state.pageErrors.slice(-30)) console.error(`#   ${e}`);
  }
  if (state.lastPage && !state.lastPage.isClosed()) {
    const file = path.join(ARTIFACTS, 'failure.png');
    await within(state.lastPage.screenshot({ path: file, fullPage: true }), 'the failure screenshot', 5000)
      .then(() => console.error(`# screenshot of the page at the failure: ${shown(file)}`))
      .catch(() => {});
  }
}

for (const signal of ['SIGINT', 'SIGTERM']) {
  process.once(signal, async () => {
    state.interrupted = true;
    console.error(`not ok - ${currentCheck}: interrupted by ${signal}`);
    await cleanup();
    process.exit(1);
  });
}

let overallTimer;
const overall = new Promise((_, reject) => {
  overallTimer = setTimeout(
    () => reject(new CheckFailed(`the whole test exceeded ${OVERALL_TIMEOUT_MS / 1000}s`)),
    OVERALL_TIMEOUT_MS,
  );
});

let failed = false;
try {
  await Promise.race([main(), overall]);
} catch (err) {
  failed = true;
  await report(err);
} finally {
  clearTimeout(overallTimer);
  await cleanup();
}
if (failed) process.exit(1);
console.log('dashboard: all checks passed');
