// The dashboard's shell: login, the hash router, and one poller that
// refreshes the page shown every 5 s, backing off on errors and pausing
// while the tab is hidden. Pages are modules with
// render(root, ctx) → { refresh(), destroy?() }.

import { api, get, onUnauthorized } from './api.js';
import { fill, notify, setText } from './view.js';
import * as overview from './overview.js';
import * as queues from './queues.js';
import * as queue from './queue.js';
import * as exchanges from './exchanges.js';
import * as connections from './connections.js';
import * as admin from './admin.js';

const POLL_MS = 5000;
const MAX_BACKOFF_MS = 60000;
const $ = (id) => document.getElementById(id);

const routes = [
  [/^#?\/?$/, 'overview', () => overview],
  [/^#\/queues\/([^/]+)\/([^/]+)$/, 'queues', () => queue],
  [/^#\/queues\/?$/, 'queues', () => queues],
  [/^#\/exchanges(?:\/([^/]+)\/([^/]*))?$/, 'exchanges', () => exchanges],
  [/^#\/connections\/?$/, 'connections', () => connections],
  [/^#\/admin\/?$/, 'admin', () => admin],
];

let ctx = null;
let current = null;
let timer = null;
let delay = POLL_MS;

function theme(next) {
  const stored = localStorage.getItem('warren-theme');
  const dark = window.matchMedia('(prefers-color-scheme: dark)').matches;
  const t = next || stored || (dark ? 'dark' : 'light');
  document.documentElement.dataset.theme = t;
  if (next) localStorage.setItem('warren-theme', t);
}

function showLogin(message = '') {
  stop();
  ctx = null;
  $('app').hidden = true;
  $('login').hidden = false;
  setText($('login-error'), message);
  $('login-username').focus();
}

async function showApp(who) {
  const tags = who.tags || [];
  const has = (t) => tags.includes(t);
  ctx = {
    user: who.name,
    tags,
    isAdmin: has('administrator'),
    isPolicymaker: has('administrator') || has('policymaker'),
    isMonitoring: has('administrator') || has('monitoring'),
    // A user whose only tag is monitoring gets no buttons that change
    // anything (the API itself, as RabbitMQ's, would let them act where
    // their vhost permissions allow).
    canChange: has('administrator') || has('policymaker') || has('management'),
    refresh: () => poll(),
  };
  $('login').hidden = true;
  $('app').hidden = false;
  setText($('whoami'), who.name);
  await route();
}

async function route() {
  if (!ctx) return;
  stop();
  if (current && current.destroy) current.destroy();
  const hash = location.hash || '#/';
  const found = routes.find(([re]) => re.test(hash));
  if (!found) { location.hash = '#/'; return; }
  const [re, name, page] = found;
  let params;
  try {
    params = (hash.match(re) || []).slice(1).map((p) => (p === undefined ? undefined : decodeURIComponent(p)));
  } catch {
    location.hash = '#/';
    return;
  }
  document.querySelectorAll('nav a').forEach((a) => a.classList.toggle('active', a.dataset.page === name));
  const root = fill($('page'));
  current = page().render(root, ctx, ...params);
  delay = POLL_MS;
  await poll();
}

function stop() {
  clearTimeout(timer);
  timer = null;
}

let generation = 0;

/** Refreshes the page now and schedules the next refresh; a newer call supersedes an older one. */
async function poll() {
  stop();
  const mine = ++generation;
  const page = current;
  if (!page || !ctx) return;
  if (!document.hidden) {
    try {
      await page.refresh();
      delay = POLL_MS;
      $('status').classList.remove('stale');
      $('status').title = `Updated ${new Date().toLocaleTimeString()}`;
    } catch (e) {
      if (!ctx) return;
      delay = Math.min(delay * 2, MAX_BACKOFF_MS);
      $('status').classList.add('stale');
      $('status').title = `Failed: ${e.message}; next try in ${delay / 1000} s`;
    }
  }
  if (mine === generation && page === current && ctx) timer = setTimeout(poll, delay);
}

async function login(ev) {
  ev.preventDefault();
  const username = $('login-username').value;
  const password = $('login-password').value;
  try {
    const who = await api('POST', '/ui/login', { username, password });
    $('login-password').value = '';
    await showApp(who);
  } catch (e) {
    setText($('login-error'), e.status === 401 ? `Login failed: ${e.message}` : e.message);
  }
}

async function logout() {
  try { await api('POST', '/ui/logout'); } catch { /* the session ends anyway */ }
  showLogin();
}

async function start() {
  theme();
  $('theme').addEventListener('click', () => theme(document.documentElement.dataset.theme === 'dark' ? 'light' : 'dark'));
  $('login-form').addEventListener('submit', login);
  $('logout').addEventListener('click', logout);
  window.addEventListener('hashchange', route);
  document.addEventListener('visibilitychange', () => { if (!document.hidden && ctx) poll(); });
  onUnauthorized(() => { if (ctx) { notify('Your session ended: please log in again.', true); showLogin(); } });
  try {
    await showApp(await get('/api/whoami'));
  } catch {
    showLogin();
  }
}

start();
