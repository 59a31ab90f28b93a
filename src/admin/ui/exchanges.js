// Exchanges: the list, and one exchange with its bindings in and out and a
// form to publish a test message through it.

import { api, get, enc, rate } from './api.js';
import { h, fill, table, act, field } from './view.js';

export function render(root, ctx, vhost, name) {
  return vhost === undefined ? list(root, ctx) : one(root, ctx, vhost, name);
}

function list(root, ctx) {
  const filter = h('input', { id: 'exchange-filter', type: 'search', placeholder: 'Filter by name' });
  const body = h('div');
  let debounce;
  filter.addEventListener('input', () => { clearTimeout(debounce); debounce = setTimeout(() => ctx.refresh(), 250); });
  fill(root, h('div', { class: 'card' }, h('div', { class: 'row' }, h('h2', {}, 'Exchanges'), h('span', { class: 'spacer' }), filter), body));
  return {
    async refresh() {
      const q = new URLSearchParams({ page: 1, page_size: 500, name: filter.value, sort: 'name' });
      const answer = await get(`/api/exchanges?${q}`);
      fill(body, table('exchanges-table', [
        { title: 'Name', cell: (x) => h('a', { href: `#/exchanges/${enc(x.vhost)}/${enc(x.name || 'amq.default')}` }, x.name || '(AMQP default)') },
        { title: 'Virtual host', cell: (x) => x.vhost },
        { title: 'Type', cell: (x) => x.type },
        { title: 'Features', cell: (x) => [x.durable ? 'durable' : 'transient', x.internal && 'internal', x.auto_delete && 'auto-delete'].filter(Boolean).join(', ') },
        { title: 'In', num: true, cell: (x) => rate(x.message_stats?.publish_in_details?.rate) },
        { title: 'Out', num: true, cell: (x) => rate(x.message_stats?.publish_out_details?.rate) },
      ], answer.items, { rowAttrs: (x) => ({ dataset: { exchange: x.name, vhost: x.vhost } }) }),
      answer.filtered_count > answer.items.length
        ? h('p', { class: 'muted' }, `The first ${answer.items.length} of ${answer.filtered_count}: filter to see the others.`) : null);
    },
  };
}

function one(root, ctx, vhost, name) {
  const base = `/api/exchanges/${enc(vhost)}/${enc(name)}`;
  const info = h('dl', { class: 'kv' });
  const out = h('div');
  const into = h('div');
  const key = h('input', { id: 'exchange-publish-key' });
  const payload = h('textarea', { id: 'exchange-publish-payload' });
  const publish = async (ev) => {
    ev.preventDefault();
    await act('Message published', async () => {
      const r = await api('POST', `${base}/publish`, { properties: {}, routing_key: key.value, payload: payload.value, payload_encoding: 'string' });
      if (!r.routed) throw new Error('published, but no queue was bound to take it');
    });
  };
  fill(root,
    h('div', { class: 'row' }, h('h1', {}, `Exchange ${name}`), h('span', { class: 'muted' }, `in virtual host ${vhost}`),
      h('span', { class: 'spacer' }), h('a', { href: '#/exchanges' }, '‹ All exchanges')),
    h('div', { class: 'grid2' },
      h('div', { class: 'card' }, h('h2', {}, 'Details'), info),
      ctx.canChange ? h('div', { class: 'card' }, h('h2', {}, 'Publish a test message'),
        h('form', { onsubmit: publish }, field('Routing key', key), payload,
          h('div', { class: 'row end' }, h('button', { type: 'submit', class: 'primary', id: 'exchange-publish' }, 'Publish')))) : null),
    h('div', { class: 'grid2' },
      h('div', { class: 'card' }, h('h2', {}, 'Bindings from this exchange'), out),
      h('div', { class: 'card' }, h('h2', {}, 'Bindings to this exchange'), into)));
  const bindingTable = (id, rows, end) => table(id, [
    { title: end === 'destination' ? 'To' : 'From', cell: (b) => `${b[end]}${end === 'destination' ? ` (${b.destination_type})` : ''}` },
    { title: 'Routing key', cell: (b) => b.routing_key },
    { title: 'Arguments', cell: (b) => JSON.stringify(b.arguments || {}) },
  ], rows, { empty: 'No bindings.' });
  return {
    async refresh() {
      const [x, src, dst] = await Promise.all([get(base), get(`${base}/bindings/source`), get(`${base}/bindings/destination`)]);
      fill(info,
        h('dt', {}, 'Type'), h('dd', {}, x.type),
        h('dt', {}, 'Durable'), h('dd', {}, String(x.durable)),
        h('dt', {}, 'Internal'), h('dd', {}, String(x.internal)),
        h('dt', {}, 'Arguments'), h('dd', {}, h('pre', {}, JSON.stringify(x.arguments || {}, null, 1))),
        h('dt', {}, 'Policy'), h('dd', {}, x.policy || 'none'));
      fill(out, bindingTable('exchange-bindings-out', src, 'destination'));
      fill(into, bindingTable('exchange-bindings-in', dst, 'source'));
    },
  };
}
