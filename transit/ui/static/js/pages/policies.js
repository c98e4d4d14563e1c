// ACL policies: the list, and one policy's HCL to read or edit; the server's parse error is
// shown inline under the editor, as the API sent it.

import { capabilities, can, get, list, put } from '../api.js';
import { clear, errorBox, field, h, seg, table } from '../dom.js';

export async function renderList(el, _params, { navigate }) {
  el.append(h('h1', {}, 'ACL policies'));
  const names = await list('sys/policies/acl');
  el.append(table(['Policy'], names.map((n) => h('tr', { 'data-policy': n },
    h('td', {}, h('a', { href: `#/policies/${seg(n)}` }, n)))), { class: 'policies' }));
  const caps = await capabilities(['sys/policies/acl/*']);
  if (can(caps['sys/policies/acl/*'], 'create', 'update')) {
    const name = h('input', { name: 'name', id: 'new-policy-name', required: true, autocomplete: 'off' });
    const form = h('form', { class: 'card form inline', id: 'new-policy' },
      field('New policy', name), h('button', { type: 'submit' }, 'Create'));
    form.addEventListener('submit', (ev) => {
      ev.preventDefault();
      navigate(`policies/${seg(name.value.trim())}`);
    });
    el.append(form);
  }
}

export async function renderOne(el, [name]) {
  const path = `sys/policies/acl/${name}`;
  el.append(h('p', { class: 'crumbs' }, h('a', { href: '#/policies' }, 'policies'), ' / ', name), h('h1', {}, name));
  let text = '';
  let exists = true;
  try {
    const r = await get(`sys/policies/acl/${seg(name)}`);
    text = (r.data && r.data.policy) || '';
  } catch (err) {
    if (err.status !== 404) throw err;
    exists = false;
  }
  const caps = await capabilities([path]);
  const editable = name !== 'root' && can(caps[path], exists ? 'update' : 'create', 'update');
  const editor = h('textarea', { id: 'policy-hcl', name: 'policy', rows: 18, spellcheck: 'false', readonly: !editable }, text);
  const errSlot = h('div', { id: 'policy-error' });
  const notice = h('div', { 'aria-live': 'polite' });
  const form = h('form', { class: 'card form', id: 'policy-form' },
    field('Policy (HCL)', editor), errSlot, notice,
    editable ? h('button', { type: 'submit', id: 'save-policy' }, 'Save') : h('p', { class: 'muted' }, name === 'root' ? 'The root policy cannot be changed.' : 'This token may not change this policy.'));
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    clear(errSlot);
    clear(notice);
    try {
      await put(`sys/policies/acl/${seg(name)}`, { policy: editor.value });
      clear(notice, h('div', { class: 'notice', role: 'status' }, 'Saved.'));
    } catch (err) {
      clear(errSlot, errorBox(err));
    }
  });
  el.append(form);
}
