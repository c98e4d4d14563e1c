// Secrets engines: sys/mounts, with their type; a transit mount links to its keys.

import { get } from '../api.js';
import { h, seg, table } from '../dom.js';

export async function render(el) {
  el.append(h('h1', {}, 'Secrets engines'));
  const r = await get('sys/mounts');
  const mounts = r.data || {};
  const rows = Object.keys(mounts).sort().map((path) => {
    const m = mounts[path];
    const name = path.replace(/\/$/, '');
    return h('tr', { 'data-mount': name },
      h('td', {}, m.type === 'transit' ? h('a', { href: `#/keys/${seg(name)}` }, path) : path),
      h('td', {}, h('span', { class: 'badge' }, m.type)),
      h('td', {}, m.description || ''),
      h('td', {}, m.accessor || ''),
      h('td', {}, m.local ? 'local' : ''));
  });
  el.append(table(['Path', 'Type', 'Description', 'Accessor', ''], rows, { class: 'mounts' }));
}
