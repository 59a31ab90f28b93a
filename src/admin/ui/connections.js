// Connections and channels: who is connected from where, with which
// client, TLS or not, their rates; close a connection with a reason. Both
// lists are paginated by the server, 100 rows a page.

import { api, get, enc, num, rate, bytes } from './api.js';
import { h, fill, table, act, confirmDialog, pager } from './view.js';

const PAGE_SIZE = 100;

export function render(root, ctx) {
  const conns = h('div');
  const chans = h('div');
  const connPages = h('div', { class: 'pager' });
  const chanPages = h('div', { class: 'pager' });
  const at = { connections: 1, channels: 1 };
  fill(root,
    h('div', { class: 'card' }, h('h2', {}, 'Connections'), conns, connPages),
    h('div', { class: 'card' }, h('h2', {}, 'Channels'), chans, chanPages));
  // One page of a list, back to the first when the page went away.
  const page = async (what) => {
    try {
      return await get(`/api/${what}?page=${at[what]}&page_size=${PAGE_SIZE}`);
    } catch (e) {
      if (e.status !== 400 || at[what] === 1) throw e;
      at[what] = 1;
      return get(`/api/${what}?page=1&page_size=${PAGE_SIZE}`);
    }
  };

  const close = async (c) => {
    const reason = h('input', { id: 'close-reason', value: 'Closed via the management dashboard' });
    if (!await confirmDialog(`Close connection ${c.name} (${c.client_properties?.connection_name || c.user})?`, [h('label', {}, 'Reason ', reason)])) return;
    await act('Connection closed', () => api('DELETE', `/api/connections/${enc(c.name)}`, undefined, { 'X-Reason': reason.value }));
    ctx.refresh();
  };

  return {
    async refresh() {
      const [connAnswer, chanAnswer] = await Promise.all([page('connections'), page('channels')]);
      const [cs, chs] = [connAnswer.items, chanAnswer.items];
      fill(connPages, pager(connAnswer, 'connections', (p) => { at.connections = p; ctx.refresh(); }));
      fill(chanPages, pager(chanAnswer, 'channels', (p) => { at.channels = p; ctx.refresh(); }));
      fill(conns, table('connections-table', [
        { title: 'Name', cell: (c) => c.name },
        { title: 'Client', cell: (c) => [c.client_properties?.connection_name || '', ' ', h('span', { class: 'muted' }, `${c.client_properties?.product || ''} ${c.client_properties?.version || ''}`)] },
        { title: 'User', cell: (c) => c.user },
        { title: 'Virtual host', cell: (c) => c.vhost },
        { title: 'TLS', cell: (c) => (c.ssl ? c.ssl_protocol || 'yes' : 'no') },
        { title: 'State', cell: (c) => c.state },
        { title: 'Channels', num: true, cell: (c) => num(c.channels) },
        { title: 'From client', num: true, cell: (c) => `${bytes(c.recv_oct_details?.rate)}/s` },
        { title: 'To client', num: true, cell: (c) => `${bytes(c.send_oct_details?.rate)}/s` },
        { title: '', cell: (c) => (ctx.canChange && (ctx.isAdmin || c.user === ctx.user) ? h('button', { type: 'button', class: 'danger close-conn', onclick: () => close(c) }, 'Close') : '') },
      ], cs, {
        rowAttrs: (c) => ({ dataset: { connection: c.name, clientName: c.client_properties?.connection_name || '' } }),
        empty: 'No connections.',
      }));
      fill(chans, table('channels-table', [
        { title: 'Channel', cell: (c) => c.name },
        { title: 'User', cell: (c) => c.user },
        { title: 'Mode', cell: (c) => [c.confirm && 'confirm', c.transactional && 'transactional'].filter(Boolean).join(', ') || '–' },
        { title: 'Prefetch', num: true, cell: (c) => num(c.prefetch_count) },
        { title: 'Unacked', num: true, cell: (c) => num(c.messages_unacknowledged) },
        { title: 'Consumers', num: true, cell: (c) => num(c.consumer_count) },
        { title: 'Publish', num: true, cell: (c) => rate(c.message_stats?.publish_details?.rate) },
        { title: 'Deliver', num: true, cell: (c) => rate(c.message_stats?.deliver_get_details?.rate) },
        { title: 'Ack', num: true, cell: (c) => rate(c.message_stats?.ack_details?.rate) },
      ], chs, { empty: 'No channels.' }));
    },
  };
}
