// Talking to the admin API and formatting what it says. Every request
// carries the X-Warren-UI header; the session cookie goes along by itself.

export class ApiError extends Error {
  constructor(status, reason) {
    super(reason || `HTTP ${status}`);
    this.status = status;
  }
}

const TIMEOUT_MS = 20000;
let unauthorized = () => {};
/** Called when a request finds the session gone. */
export function onUnauthorized(f) { unauthorized = f; }

export async function api(method, path, body, headers = {}) {
  const init = { method, credentials: 'same-origin', headers: { 'X-Warren-UI': '1', ...headers } };
  if (body !== undefined) {
    init.headers['Content-Type'] = 'application/json';
    init.body = typeof body === 'string' ? body : JSON.stringify(body);
  }
  // A request that hangs must not stop the polling behind it.
  const abort = new AbortController();
  const timer = setTimeout(() => abort.abort(), TIMEOUT_MS);
  init.signal = abort.signal;
  let r;
  try {
    r = await fetch(path, init);
  } catch (e) {
    throw new ApiError(0, e.name === 'AbortError' ? `no answer in ${TIMEOUT_MS / 1000} s` : e.message);
  } finally {
    clearTimeout(timer);
  }
  const text = await r.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch { data = text; }
  if (!r.ok) {
    // "not_authorized": no live session. A permission or tag refused is
    // "not_authorised" (also a 401, as RabbitMQ answers) and ends nothing.
    if (r.status === 401 && data && data.error === 'not_authorized' && !path.startsWith('/ui/login')) unauthorized();
    throw new ApiError(r.status, data && (data.reason || data.error));
  }
  return data;
}

export const get = (path) => api('GET', path);
export const enc = encodeURIComponent;

const units = ['', 'k', 'M', 'G', 'T'];
/** 1234567 → "1.2M". */
export function num(n) {
  if (n === undefined || n === null || Number.isNaN(n)) return '–';
  let i = 0, v = Math.abs(n);
  while (v >= 1000 && i < units.length - 1) { v /= 1000; i++; }
  const s = i === 0 ? (Number.isInteger(v) ? String(v) : v.toFixed(1)) : v.toFixed(v < 10 ? 2 : 1);
  return (n < 0 ? '-' : '') + s + units[i];
}
/** A rate; '–' where the API gives none. */
export const rate = (r) => (r === undefined || r === null ? '–' : `${num(Math.round(r * 10) / 10)}/s`);
/** 3650722201 → "3.4 GiB". */
export function bytes(b) {
  if (b === undefined || b === null) return '–';
  const u = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0, v = b;
  while (v >= 1024 && i < u.length - 1) { v /= 1024; i++; }
  return `${i === 0 ? v : v.toFixed(1)} ${u[i]}`;
}
/** Milliseconds → "3d 4h", "5m 2s". */
export function duration(ms) {
  let s = Math.floor(ms / 1000);
  const d = Math.floor(s / 86400); s %= 86400;
  const h = Math.floor(s / 3600); s %= 3600;
  const m = Math.floor(s / 60); s %= 60;
  if (d) return `${d}d ${h}h`;
  if (h) return `${h}h ${m}m`;
  return m ? `${m}m ${s}s` : `${s}s`;
}
/** A dotted path into an object: pick(q, 'message_stats.publish_details.rate'). */
export function pick(o, path) {
  return path.split('.').reduce((v, k) => (v === undefined || v === null ? undefined : v[k]), o);
}
