// One queue: its depth over the last minutes, rates, consumers (prefetch,
// activity), bindings, arguments and effective policy; get messages with
// an ackmode, publish to it, move its messages to another queue, purge it,
// delete it.

import { api, get, enc, num, rate } from './api.js';
import { LineChart } from './chart.js';
import { h, fill, stat, setText, table, act, confirmDialog, field, notify } from './view.js';

export function render(root, ctx, vhost, name) {
  const base = `/api/queues/${enc(vhost)}/${enc(name)}`;
  const depth = new LineChart('chart-depth', [
    { label: 'Ready', color: '--c1' }, { label: 'Unacked', color: '--c3' },
  ], { format: num });
  const flow = new LineChart('chart-queue-rates', [
    { label: 'In', color: '--c1' }, { label: 'Out', color: '--c2' }, { label: 'Acked', color: '--c3' },
  ], { format: rate });
  const details = h('dl', { class: 'kv' });
  const consumers = h('div');
  const bindings = h('div');
  const messages = h('div');
  fill(root,
    h('div', { class: 'row' }, h('h1', {}, `Queue ${name}`), h('span', { class: 'muted' }, `in virtual host ${vhost}`),
      h('span', { class: 'spacer' }), h('a', { href: '#/queues' }, '‹ All queues')),
    h('div', { class: 'grid' },
      stat('Messages', 'q-messages'), stat('Ready', 'q-ready'), stat('Unacked', 'q-unacked'),
      stat('Consumers', 'q-consumers'), stat('State', 'q-state')),
    h('div', { class: 'grid2' },
      h('div', { class: 'card' }, h('h2', {}, 'Depth'), depth.el),
      h('div', { class: 'card' }, h('h2', {}, 'Rates'), flow.el)),
    h('div', { class: 'grid2' },
      h('div', { class: 'card' }, h('h2', {}, 'Details'), details),
      h('div', { class: 'card' }, h('h2', {}, 'Consumers'), consumers)),
    h('div', { class: 'card' }, h('h2', {}, 'Bindings'), bindings),
    ctx.canChange ? actions(ctx, base, vhost, name, messages) : null);

  return {
    async refresh() {
      const [q, b] = await Promise.all([get(base), get(`${base}/bindings`)]);
      const m = q.message_stats || {};
      depth.push([q.messages_ready || 0, q.messages_unacknowledged || 0]);
      flow.push([m.publish_details?.rate || 0, m.deliver_get_details?.rate || 0, m.ack_details?.rate || 0]);
      setText(document.getElementById('q-messages'), num(q.messages || 0));
      setText(document.getElementById('q-ready'), num(q.messages_ready || 0));
      setText(document.getElementById('q-unacked'), num(q.messages_unacknowledged || 0));
      setText(document.getElementById('q-consumers'), num(q.consumers || 0));
      setText(document.getElementById('q-state'), q.state || '–');
      fill(details,
        h('dt', {}, 'Type'), h('dd', {}, q.type),
        h('dt', {}, 'Features'), h('dd', {}, [q.durable && 'durable', q.auto_delete && 'auto-delete', q.exclusive && 'exclusive'].filter(Boolean).join(', ') || 'transient'),
        h('dt', {}, 'Arguments'), h('dd', {}, h('pre', {}, JSON.stringify(q.arguments || {}, null, 1))),
        h('dt', {}, 'Policy'), h('dd', {}, q.policy || 'none'),
        h('dt', {}, 'Effective policy'), h('dd', {}, h('pre', {}, JSON.stringify(q.effective_policy_definition || {}, null, 1))),
        h('dt', {}, 'Consumer utilisation'), h('dd', {}, q.consumer_utilisation === undefined || q.consumer_utilisation === null ? '–' : `${Math.round(q.consumer_utilisation * 100)}%`),
        h('dt', {}, 'Memory'), h('dd', {}, q.message_bytes !== undefined ? `${num(q.message_bytes)} B of messages` : '–'));
      fill(consumers, table('consumers-table', [
        { title: 'Tag', cell: (c) => c.consumer_tag },
        { title: 'Channel', cell: (c) => c.channel_details?.name || '' },
        { title: 'Ack', cell: (c) => (c.ack_required ? 'manual' : 'auto') },
        { title: 'Prefetch', num: true, cell: (c) => c.prefetch_count },
        { title: 'Active', cell: (c) => c.activity_status || (c.active ? 'up' : 'waiting') },
      ], q.consumer_details || [], { empty: 'No consumers.' }));
      fill(bindings, table('bindings-table', [
        { title: 'From', cell: (x) => x.source === '' ? '(default exchange)' : h('a', { href: `#/exchanges/${enc(vhost)}/${enc(x.source)}` }, x.source) },
        { title: 'Routing key', cell: (x) => x.routing_key },
        { title: 'Arguments', cell: (x) => JSON.stringify(x.arguments || {}) },
      ], b, { empty: 'No bindings.' }));
    },
    destroy() { depth.destroy(); flow.destroy(); },
  };
}

function actions(ctx, base, vhost, name, messages) {
  const count = h('input', { id: 'get-count', type: 'number', min: '1', max: '1000', value: '1' });
  const ackmode = h('select', { id: 'get-ackmode' },
    h('option', { value: 'ack_requeue_true' }, 'Nack, requeue'),
    h('option', { value: 'reject_requeue_true' }, 'Reject, requeue'),
    h('option', { value: 'ack_requeue_false' }, 'Ack (removes them)'),
    h('option', { value: 'reject_requeue_false' }, 'Reject, no requeue'));
  const getMessages = async (ev) => {
    ev.preventDefault();
    try {
      const got = await api('POST', `${base}/get`, { count: Number(count.value), ackmode: ackmode.value, encoding: 'auto', truncate: 50000 });
      fill(messages, got.length ? got.map(message) : h('p', { class: 'muted' }, 'The queue is empty.'));
      ctx.refresh();
    } catch (e) {
      fill(messages, h('p', { class: 'error' }, e.message));
    }
  };
  const payload = h('textarea', { id: 'publish-payload' });
  const publish = async (ev) => {
    ev.preventDefault();
    await act('Message published', async () => {
      const r = await api('POST', `/api/exchanges/${enc(vhost)}/amq.default/publish`,
        { properties: { delivery_mode: 2 }, routing_key: name, payload: payload.value, payload_encoding: 'string' });
      if (!r.routed) throw new Error('the message was not routed');
    });
    ctx.refresh();
  };
  const destination = h('input', { id: 'move-destination', required: true, placeholder: 'another queue in this vhost' });
  const move = async (ev) => {
    ev.preventDefault();
    if (!await confirmDialog(`Move every ready message of ${name} to ${destination.value}?`)) return;
    try {
      const r = await api('POST', `${base}/move`, { destination: destination.value });
      notify(`Moved ${r.moved} messages to ${destination.value}`);
    } catch (e) {
      notify(`Moving failed: ${e.message}`, true);
    }
    ctx.refresh();
  };
  const purge = async () => {
    if (!await confirmDialog(`Purge every ready message of ${name}?`)) return;
    await act(`Queue ${name} purged`, () => api('DELETE', `${base}/contents`));
    ctx.refresh();
  };
  const remove = async () => {
    if (!await confirmDialog(`Delete queue ${name} and its messages?`)) return;
    if (await act(`Queue ${name} deleted`, () => api('DELETE', base))) location.hash = '#/queues';
  };
  return h('div', { class: 'grid2' },
    h('div', { class: 'card' }, h('h2', {}, 'Get messages'),
      h('form', { class: 'inline', onsubmit: getMessages }, field('Count', count), field('Ack mode', ackmode),
        h('button', { type: 'submit', id: 'get-submit', class: 'primary' }, 'Get')),
      messages),
    h('div', { class: 'card' }, h('h2', {}, 'Publish a message'),
      h('form', { onsubmit: publish }, payload, h('div', { class: 'row end' }, h('button', { type: 'submit', id: 'publish-submit' }, 'Publish'))),
      h('h2', {}, 'Move messages'),
      h('form', { class: 'inline', onsubmit: move }, field('To queue', destination),
        h('button', { type: 'submit', id: 'move-submit' }, 'Move')),
      h('h2', {}, 'Danger zone'),
      h('div', { class: 'row' },
        h('button', { type: 'button', id: 'purge', class: 'danger', onclick: purge }, 'Purge'),
        h('button', { type: 'button', id: 'delete-queue', class: 'danger', onclick: remove }, 'Delete queue'))));
}

function message(m) {
  return h('div', { class: 'message' },
    h('div', { class: 'muted' }, `exchange ${m.exchange || '(default)'} · key ${m.routing_key} · ${m.redelivered ? 'redelivered · ' : ''}${m.payload_bytes} bytes · ${m.payload_encoding}`),
    Object.keys(m.properties || {}).length ? h('div', { class: 'muted' }, JSON.stringify(m.properties)) : null,
    h('div', { class: 'message-payload' }, m.payload));
}
