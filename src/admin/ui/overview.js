// The overview: message rates and queued messages as live charts, object
// counts, memory and disk against their alarms, listeners, version and uptime.

import { get, num, rate, bytes, duration } from './api.js';
import { LineChart } from './chart.js';
import { h, fill, stat, setText, table } from './view.js';

const RATES = [
  ['Published', 'publish', '--c1'],
  ['Confirmed', 'confirm', '--c4'],
  ['Delivered', 'deliver_get', '--c2'],
  ['Acked', 'ack', '--c3'],
  ['Redelivered', 'redeliver', '--c5'],
];

export function render(root, ctx) {
  const rates = new LineChart('chart-rates', RATES.map(([label, , color]) => ({ label, color })), { format: rate });
  const queued = new LineChart('chart-queued', [
    { label: 'Ready', color: '--c1' }, { label: 'Unacked', color: '--c3' },
  ], { format: num });
  const memory = h('div', { class: 'meter' }, h('div'));
  const disk = h('div', { class: 'meter' }, h('div'));
  const listeners = h('div');
  const node = h('dl', { class: 'kv' });
  fill(root,
    h('div', { class: 'grid' },
      stat('Queued messages', 'ov-queued'),
      stat('Connections', 'ov-connections'),
      stat('Channels', 'ov-channels'),
      stat('Queues', 'ov-queues'),
      stat('Consumers', 'ov-consumers'),
      stat('Memory', 'ov-memory', memory),
      stat('Disk free', 'ov-disk', disk)),
    h('div', { class: 'grid2' },
      h('div', { class: 'card' }, h('h2', {}, 'Message rates'), rates.el),
      h('div', { class: 'card' }, h('h2', {}, 'Queued messages'), queued.el)),
    h('div', { class: 'grid2' },
      h('div', { class: 'card' }, h('h2', {}, 'Node'), node),
      h('div', { class: 'card' }, h('h2', {}, 'Listeners'), listeners)));

  return {
    async refresh() {
      // Node figures are for monitoring users (as in RabbitMQ).
      const [o, nodes] = await Promise.all([get('/api/overview'), ctx.isMonitoring ? get('/api/nodes') : []]);
      const m = o.message_stats || {};
      const q = o.queue_totals || {};
      const t = o.object_totals || {};
      rates.push(RATES.map(([, key]) => (m[`${key}_details`] || {}).rate || 0));
      queued.push([q.messages_ready || 0, q.messages_unacknowledged || 0]);
      setText(document.getElementById('ov-queued'), num(q.messages || 0));
      setText(document.getElementById('ov-connections'), num(t.connections || 0));
      setText(document.getElementById('ov-channels'), num(t.channels || 0));
      setText(document.getElementById('ov-queues'), num(t.queues || 0));
      setText(document.getElementById('ov-consumers'), num(t.consumers || 0));
      const n = nodes[0] || {};
      setText(document.getElementById('ov-memory'), `${bytes(n.mem_used)} / ${bytes(n.mem_limit)}`);
      meter(memory, n.mem_used / n.mem_limit, n.mem_alarm);
      setText(document.getElementById('ov-disk'), `${bytes(n.disk_free)} (limit ${bytes(n.disk_free_limit)})`);
      meter(disk, n.disk_free_limit / Math.max(n.disk_free, 1), n.disk_free_alarm);
      fill(node,
        h('dt', {}, 'Node'), h('dd', {}, o.node),
        h('dt', {}, 'Version'), h('dd', {}, `${o.product_name} ${o.product_version} (RabbitMQ ${o.rabbitmq_version} API)`),
        h('dt', {}, 'Uptime'), h('dd', {}, duration(n.uptime || 0)),
        h('dt', {}, 'File descriptors'), h('dd', {}, `${num(n.fd_used)} / ${num(n.fd_total)}`),
        h('dt', {}, 'Alarms'), h('dd', {}, n.mem_alarm || n.disk_free_alarm
          ? [n.mem_alarm && 'memory', n.disk_free_alarm && 'disk'].filter(Boolean).join(', ') : 'none'),
        h('dt', {}, 'Signed in as'), h('dd', {}, ctx.user, ' ', ctx.tags.map((tag) => h('span', { class: 'tag' }, tag))));
      fill(listeners, table('listeners-table', [
        { title: 'Protocol', cell: (l) => l.protocol },
        { title: 'Address', cell: (l) => l.ip_address },
        { title: 'Port', cell: (l) => l.port, num: true },
      ], o.listeners || []));
    },
    destroy() { rates.destroy(); queued.destroy(); },
  };
}

function meter(el, fraction, alarm) {
  el.firstChild.style.width = `${Math.max(0, Math.min(1, fraction || 0)) * 100}%`;
  el.classList.toggle('alarm', !!alarm);
}
