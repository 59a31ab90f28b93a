// Administration: users, virtual hosts, permissions, policies, and the
// definitions file. Each section shows what the caller's tags let it see;
// forms appear only for those who may change.

import { api, get, enc } from './api.js';
import { h, fill, table, act, field, confirmDialog, notify } from './view.js';

export function render(root, ctx) {
  const users = h('div');
  const vhosts = h('div');
  const perms = h('div');
  const policies = h('div');
  const sections = [];
  let known = new Set();
  if (ctx.isAdmin) sections.push(section('Users', users, userForm(ctx, (name) => known.has(name))), section('Virtual hosts', vhosts, vhostForm(ctx)),
    section('Permissions', perms, permissionForm(ctx)));
  sections.push(section('Policies', policies, ctx.isPolicymaker ? policyForm(ctx) : null));
  if (ctx.isAdmin) sections.push(definitions(ctx));
  fill(root, sections);

  const remove = (what, path) => async () => {
    if (!await confirmDialog(`Delete ${what}?`)) return;
    await act(`Deleted ${what}`, () => api('DELETE', path));
    ctx.refresh();
  };
  const deleteButton = (what, path) => h('button', { type: 'button', class: 'danger', onclick: remove(what, path) }, 'Delete');

  return {
    async refresh() {
      if (ctx.isAdmin) {
        const [us, vs, ps] = await Promise.all([get('/api/users'), get('/api/vhosts'), get('/api/permissions')]);
        known = new Set(us.map((u) => u.name));
        fill(users, table('users-table', [
          { title: 'Name', cell: (u) => u.name },
          { title: 'Tags', cell: (u) => (Array.isArray(u.tags) ? u.tags : String(u.tags || '').split(',')).filter(Boolean).map((t) => h('span', { class: 'tag' }, t)) },
          { title: 'Can log in', cell: (u) => (u.password_hash ? 'with a password' : 'no password') },
          { title: '', cell: (u) => (u.name === ctx.user ? '' : deleteButton(`user ${u.name}`, `/api/users/${enc(u.name)}`)) },
        ], us, { rowAttrs: (u) => ({ dataset: { user: u.name } }) }));
        fill(vhosts, table('vhosts-table', [
          { title: 'Name', cell: (v) => v.name },
          { title: 'Description', cell: (v) => v.description || '' },
          { title: 'Messages', num: true, cell: (v) => v.messages ?? '–' },
          { title: '', cell: (v) => deleteButton(`virtual host ${v.name}`, `/api/vhosts/${enc(v.name)}`) },
        ], vs, { rowAttrs: (v) => ({ dataset: { vhost: v.name } }) }));
        fill(perms, table('permissions-table', [
          { title: 'User', cell: (p) => p.user },
          { title: 'Virtual host', cell: (p) => p.vhost },
          { title: 'Configure', cell: (p) => p.configure },
          { title: 'Write', cell: (p) => p.write },
          { title: 'Read', cell: (p) => p.read },
          { title: '', cell: (p) => deleteButton(`the permissions of ${p.user} in ${p.vhost}`, `/api/permissions/${enc(p.vhost)}/${enc(p.user)}`) },
        ], ps, { rowAttrs: (p) => ({ dataset: { permission: `${p.vhost}|${p.user}` } }) }));
      }
      const pol = await get('/api/policies');
      fill(policies, table('policies-table', [
        { title: 'Virtual host', cell: (p) => p.vhost },
        { title: 'Name', cell: (p) => p.name },
        { title: 'Pattern', cell: (p) => p.pattern },
        { title: 'Apply to', cell: (p) => p['apply-to'] },
        { title: 'Definition', cell: (p) => JSON.stringify(p.definition) },
        { title: 'Priority', num: true, cell: (p) => p.priority },
        { title: '', cell: (p) => (ctx.isPolicymaker ? deleteButton(`policy ${p.name}`, `/api/policies/${enc(p.vhost)}/${enc(p.name)}`) : '') },
      ], pol, { rowAttrs: (p) => ({ dataset: { policy: `${p.vhost}|${p.name}` } }) }));
    },
  };
}

function section(title, body, form) {
  return h('div', { class: 'card' }, h('h2', {}, title), body, form);
}

/** An inline form whose submit runs `send` and refreshes the page. */
function form(ctx, what, fields, send, id) {
  const submit = async (ev) => {
    ev.preventDefault();
    if (await act(what(), send)) ctx.refresh();
  };
  return h('form', { class: 'inline', onsubmit: submit, style: 'margin-top: 12px' }, fields,
    h('button', { type: 'submit', class: 'primary', id }, 'Save'));
}

/**
 * Adds a user, or changes one: a blank password keeps the user's own and
 * blank tags keep theirs (a blank sent would disable password login or
 * remove every tag), so changing one of them cannot wipe the other.
 */
function userForm(ctx, exists) {
  const name = h('input', { id: 'user-name', required: true, autocomplete: 'off' });
  const password = h('input', { id: 'user-password', type: 'password', autocomplete: 'new-password', placeholder: 'blank: unchanged' });
  const tags = h('input', { id: 'user-tags', placeholder: 'administrator, monitoring, …' });
  const save = async () => {
    const existing = exists(name.value);
    if (!existing && !password.value) throw new Error('a new user needs a password');
    const body = {};
    if (password.value) body.password = password.value;
    if (tags.value.trim() || !existing) body.tags = tags.value;
    if (existing && !Object.keys(body).length) throw new Error('nothing to change: give a password or tags');
    await api('PUT', `/api/users/${enc(name.value)}`, body);
    password.value = '';
  };
  return form(ctx, () => `User ${name.value} saved`, [field('Name', name), field('Password', password), field('Tags', tags)], save, 'user-add');
}

function vhostForm(ctx) {
  const name = h('input', { id: 'vhost-name', required: true });
  const description = h('input', { id: 'vhost-description' });
  return form(ctx, () => `Virtual host ${name.value} saved`, [field('Name', name), field('Description', description)],
    () => api('PUT', `/api/vhosts/${enc(name.value)}`, { description: description.value }), 'vhost-add');
}

function permissionForm(ctx) {
  const user = h('input', { id: 'perm-user', required: true });
  const vhost = h('input', { id: 'perm-vhost', value: '/' });
  const configure = h('input', { id: 'perm-configure', value: '.*' });
  const write = h('input', { id: 'perm-write', value: '.*' });
  const read = h('input', { id: 'perm-read', value: '.*' });
  return form(ctx, () => `Permissions of ${user.value} in ${vhost.value} set`,
    [field('User', user), field('Virtual host', vhost), field('Configure', configure), field('Write', write), field('Read', read)],
    () => api('PUT', `/api/permissions/${enc(vhost.value)}/${enc(user.value)}`, { configure: configure.value, write: write.value, read: read.value }),
    'perm-set');
}

function policyForm(ctx) {
  const vhost = h('input', { id: 'policy-vhost', value: '/' });
  const name = h('input', { id: 'policy-name', required: true });
  const pattern = h('input', { id: 'policy-pattern', required: true });
  const applyTo = h('select', { id: 'policy-applyto' }, ['all', 'queues', 'exchanges', 'classic_queues', 'quorum_queues', 'streams'].map((v) => h('option', { value: v }, v)));
  const definition = h('input', { id: 'policy-definition', placeholder: '{"max-length": 1000}', required: true });
  const priority = h('input', { id: 'policy-priority', type: 'number', value: '0' });
  return form(ctx, () => `Policy ${name.value} saved`,
    [field('Virtual host', vhost), field('Name', name), field('Pattern', pattern), field('Apply to', applyTo), field('Definition (JSON)', definition), field('Priority', priority)],
    async () => {
      let def;
      try { def = JSON.parse(definition.value); } catch { throw new Error('the definition is not JSON'); }
      await api('PUT', `/api/policies/${enc(vhost.value)}/${enc(name.value)}`,
        { pattern: pattern.value, 'apply-to': applyTo.value, definition: def, priority: Number(priority.value) });
    }, 'policy-add');
}

function definitions(ctx) {
  const download = async () => {
    try {
      const defs = await get('/api/definitions');
      const url = URL.createObjectURL(new Blob([JSON.stringify(defs, null, 2)], { type: 'application/json' }));
      const a = h('a', { href: url, download: `warren-definitions-${new Date().toISOString().slice(0, 10)}.json` });
      document.body.append(a);
      a.click();
      a.remove();
      setTimeout(() => URL.revokeObjectURL(url), 1000);
    } catch (e) {
      notify(`Export failed: ${e.message}`, true);
    }
  };
  const file = h('input', { type: 'file', id: 'definitions-file', accept: 'application/json,.json' });
  const upload = async (ev) => {
    ev.preventDefault();
    const f = file.files[0];
    if (!f) return;
    const text = await f.text();
    if (await act('Definitions imported', () => api('POST', '/api/definitions', text))) ctx.refresh();
  };
  return h('div', { class: 'card' }, h('h2', {}, 'Definitions'),
    h('p', { class: 'muted' }, 'Users, virtual hosts, permissions, policies, queues, exchanges and bindings, in RabbitMQ\'s format.'),
    h('div', { class: 'row' },
      h('button', { type: 'button', id: 'definitions-download', onclick: download }, 'Download'),
      h('form', { class: 'inline', onsubmit: upload }, file, h('button', { type: 'submit', id: 'definitions-upload' }, 'Upload'))));
}
