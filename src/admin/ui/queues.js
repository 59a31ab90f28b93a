// Queues: filtered, sorted and paginated on the server (RabbitMQ's
// page/page_size/name/sort parameters), so 100,000 queues cost one page.

import { api, get, enc, num, rate } from './api.js';
import { h, fill, table, act, field, pager } from './view.js';

const PAGE_SIZE = 50;
const COLUMNS = [
  'name', 'vhost', 'type', 'state', 'durable', 'auto_delete', 'exclusive', 'policy', 'consumers',
  'messages', 'messages_ready', 'messages_unacknowledged',
  'message_stats.publish_details.rate', 'message_stats.deliver_get_details.rate', 'message_stats.ack_details.rate',
].join(',');

export function render(root, ctx) {
  const state = { page: 1, filter: '', regex: false, sort: 'name', reverse: false };
  const filter = h('input', { id: 'queue-filter', placeholder: 'Filter by name', type: 'search' });
  const regex = h('input', { type: 'checkbox', id: 'queue-filter-regex' });
  const list = h('div');
  const pages = h('div', { class: 'pager' });
  let debounce;
  const changed = () => {
    clearTimeout(debounce);
    debounce = setTimeout(() => { state.page = 1; state.filter = filter.value; state.regex = regex.checked; ctx.refresh(); }, 250);
  };
  filter.addEventListener('input', changed);
  regex.addEventListener('change', changed);
  fill(root,
    h('div', { class: 'card' },
      h('div', { class: 'row' }, h('h2', {}, 'Queues'), h('span', { class: 'spacer' }), filter, h('label', { class: 'muted' }, regex, ' regex')),
      list, pages),
    ctx.canChange ? declareForm(ctx) : null);

  const sortBy = (key) => {
    state.reverse = state.sort === key ? !state.reverse : key !== 'name';
    state.sort = key;
    ctx.refresh();
  };

  return {
    async refresh() {
      const q = new URLSearchParams({
        page: state.page, page_size: PAGE_SIZE, name: state.filter, use_regex: state.regex,
        sort: state.sort, sort_reverse: state.reverse, columns: COLUMNS,
      });
      let answer;
      try {
        answer = await get(`/api/queues?${q}`);
      } catch (e) {
        // The page went away (queues deleted): back to the first.
        if (e.status === 400 && state.page > 1) { state.page = 1; return this.refresh(); }
        if (e.status === 400) { fill(list, h('p', { class: 'error' }, e.message)); fill(pages); return; }
        throw e;
      }
      fill(list, table('queues-table', [
        { title: 'Name', sort: 'name', cell: (r) => h('a', { href: `#/queues/${enc(r.vhost)}/${enc(r.name)}` }, r.name) },
        { title: 'Virtual host', sort: 'vhost', cell: (r) => r.vhost },
        { title: 'Type', cell: (r) => r.type },
        { title: 'Features', cell: (r) => features(r) },
        { title: 'State', cell: (r) => r.state },
        { title: 'Ready', num: true, sort: 'messages_ready', cell: (r) => num(r.messages_ready) },
        { title: 'Unacked', num: true, sort: 'messages_unacknowledged', cell: (r) => num(r.messages_unacknowledged) },
        { title: 'Total', num: true, sort: 'messages', cls: 'messages', cell: (r) => num(r.messages) },
        { title: 'Consumers', num: true, sort: 'consumers', cell: (r) => num(r.consumers) },
        { title: 'In', num: true, sort: 'message_stats.publish_details.rate', cell: (r) => rate(r.message_stats?.publish_details?.rate) },
        { title: 'Out', num: true, sort: 'message_stats.deliver_get_details.rate', cell: (r) => rate(r.message_stats?.deliver_get_details?.rate) },
      ], answer.items, {
        rowAttrs: (r) => ({ dataset: { queue: r.name, vhost: r.vhost } }),
        sort: { key: state.sort, reverse: state.reverse }, onSort: sortBy,
        empty: state.filter ? 'No queue matches the filter.' : 'No queues.',
      }));
      fill(pages, pager(answer, 'queues', (p) => { state.page = p; ctx.refresh(); }));
    },
  };
}

function features(q) {
  const f = [];
  if (q.durable) f.push('D');
  if (q.auto_delete) f.push('AD');
  if (q.exclusive) f.push('Excl');
  return [f.map((x) => h('span', { class: 'tag', title: { D: 'durable', AD: 'auto-delete', Excl: 'exclusive' }[x] }, x)),
    q.policy ? h('span', { class: 'tag', title: 'policy' }, q.policy) : null];
}

function declareForm(ctx) {
  const vhost = h('input', { id: 'declare-vhost', value: '/' });
  const name = h('input', { id: 'declare-name', required: true });
  const durable = h('select', { id: 'declare-durable' }, h('option', { value: 'true' }, 'durable'), h('option', { value: 'false' }, 'transient'));
  const args = h('input', { id: 'declare-arguments', placeholder: '{"x-max-length": 1000}' });
  const submit = async (ev) => {
    ev.preventDefault();
    let arguments_ = {};
    try { arguments_ = args.value.trim() ? JSON.parse(args.value) : {}; } catch { arguments_ = null; }
    await act(`Queue ${name.value} declared`, async () => {
      if (arguments_ === null) throw new Error('arguments are not JSON');
      await api('PUT', `/api/queues/${enc(vhost.value)}/${enc(name.value)}`,
        { durable: durable.value === 'true', auto_delete: false, arguments: arguments_ });
    });
    ctx.refresh();
  };
  return h('form', { class: 'card inline', onsubmit: submit },
    h('h2', { style: 'width: 100%' }, 'Add a queue'),
    field('Virtual host', vhost), field('Name', name), field('Durability', durable), field('Arguments (JSON)', args),
    h('button', { type: 'submit', class: 'primary', id: 'declare-submit' }, 'Add queue'));
}
