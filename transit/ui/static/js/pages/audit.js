// Audit devices: sys/audit (needs sudo), their type, description and options.

import { get } from '../api.js';
import { h, table } from '../dom.js';

export async function render(el) {
  el.append(h('h1', {}, 'Audit devices'));
  const r = await get('sys/audit');
  const devices = r.data || {};
  const paths = Object.keys(devices).sort();
  if (!paths.length) {
    el.append(h('p', { class: 'muted' }, 'No audit device is enabled.'));
    return;
  }
  el.append(table(['Path', 'Type', 'Description', 'Options', ''], paths.map((p) => {
    const d = devices[p];
    const opts = Object.entries(d.options || {}).map(([k, v]) => `${k}=${v}`).join(', ');
    return h('tr', { 'data-device': p }, h('td', {}, p), h('td', {}, h('span', { class: 'badge' }, d.type)),
      h('td', {}, d.description || ''), h('td', {}, opts), h('td', {}, d.local ? 'local' : ''));
  }), { class: 'audit' }));
}
