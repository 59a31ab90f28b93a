// Small DOM helpers shared by the pages: element building, tables,
// dialogs and notices. Text always goes in as text, never as HTML.

export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else if (k === 'class') el.className = v;
    // Through the CSSOM: the page's CSP refuses style attributes.
    else if (k === 'style') el.style.cssText = v;
    else if (k === 'dataset') Object.assign(el.dataset, v);
    else if (k in el && typeof v !== 'string') el[k] = v;
    else el.setAttribute(k, v === true ? '' : v);
  }
  for (const c of children.flat()) {
    if (c === undefined || c === null || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

/** Replaces `el`'s children. */
export function fill(el, ...children) {
  el.replaceChildren(...children.flat().filter((c) => c !== null && c !== undefined && c !== false));
  return el;
}

/** Sets text only when it changed, so the page does not flicker. */
export function setText(el, text) {
  if (el && el.textContent !== String(text)) el.textContent = String(text);
}

/** A stat tile: label, value (with an id for tests and updates). */
export function stat(label, id, extra) {
  return h('div', { class: 'stat' }, h('div', { class: 'label' }, label), h('div', { class: 'value', id }, '–'), extra);
}

/**
 * A table. columns: [{ title, cell(row) → node|text, num?, sort? }].
 * rowAttrs(row) → attributes of the <tr> (data-* for tests).
 */
export function table(id, columns, rows, { rowAttrs = () => ({}), sort, onSort, empty = 'Nothing here yet.' } = {}) {
  const head = h('tr', {}, columns.map((c) => h('th', {
    class: [c.num ? 'num' : '', c.sort ? 'sortable' : '', sort && c.sort === sort.key ? `sorted${sort.reverse ? ' rev' : ''}` : ''].join(' ').trim() || null,
    onclick: c.sort && onSort ? () => onSort(c.sort) : null,
  }, c.title)));
  const body = rows.length
    ? rows.map((r) => h('tr', rowAttrs(r), columns.map((c) => h('td', { class: c.num ? `num ${c.cls || ''}` : c.cls || null }, c.cell(r)))))
    : [h('tr', {}, h('td', { colspan: String(columns.length), class: 'muted' }, empty))];
  return h('table', { id }, h('thead', {}, head), h('tbody', {}, body));
}

const dialog = () => document.getElementById('dialog');

/** Asks before a change; resolves true on OK. `extra` adds inputs. */
export function confirmDialog(text, extra) {
  const d = dialog();
  document.getElementById('dialog-text').textContent = text;
  fill(document.getElementById('dialog-extra'), extra || []);
  d.returnValue = '';
  document.getElementById('confirm-no').onclick = () => d.close('no');
  d.showModal();
  return new Promise((resolve) => d.addEventListener('close', () => resolve(d.returnValue === 'yes'), { once: true }));
}

export function notify(text, bad = false) {
  const t = h('div', { class: `toast${bad ? ' bad' : ''}`, role: bad ? 'alert' : 'status' }, text);
  document.getElementById('toasts').append(t);
  setTimeout(() => t.remove(), bad ? 8000 : 4000);
}

/** Runs a change, telling the user how it went. */
export async function act(what, f) {
  try {
    await f();
    notify(what);
    return true;
  } catch (e) {
    notify(`${what} failed: ${e.message}`, true);
    return false;
  }
}

/** A labelled input for inline forms. */
export function field(label, input) {
  return h('label', {}, label, input);
}

/**
 * The line under a paginated list: "N of M things · page P of Q" and
 * previous / next buttons calling go(page).
 */
export function pager(answer, noun, go) {
  const pages = Math.max(1, answer.page_count);
  return [
    `${answer.filtered_count} of ${answer.total_count} ${noun} · page ${answer.page} of ${pages}`,
    h('button', { type: 'button', disabled: answer.page <= 1, onclick: () => go(answer.page - 1) }, '‹ Previous'),
    h('button', { type: 'button', disabled: answer.page >= pages, onclick: () => go(answer.page + 1) }, 'Next ›'),
  ];
}
