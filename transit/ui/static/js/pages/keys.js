// Transit keys of one mount: the list, and a form to create one (type and options).

import { capabilities, can, get, list, post } from '../api.js';
import { clear, errorBox, field, h, seg, table } from '../dom.js';

export const KEY_TYPES = [
  'aes256-gcm96', 'aes128-gcm96', 'chacha20-poly1305', 'ed25519', 'ecdsa-p256', 'ecdsa-p384',
  'ecdsa-p521', 'rsa-2048', 'rsa-3072', 'rsa-4096', 'hmac',
];

// The transit mounts this token can see (sys/internal/ui/mounts needs no special policy).
export async function transitMounts() {
  const r = await get('sys/internal/ui/mounts');
  const secret = (r.data && r.data.secret) || {};
  return Object.keys(secret).filter((p) => secret[p].type === 'transit')
    .map((p) => p.replace(/\/$/, '')).sort();
}

function mountPicker(mounts, current, navigate) {
  const sel = h('select', { id: 'mount', 'aria-label': 'transit mount' },
    mounts.map((m) => h('option', { value: m, selected: m === current }, m)));
  sel.addEventListener('change', () => navigate(`keys/${seg(sel.value)}`));
  return h('div', { class: 'mount-picker' }, field('Mount', sel));
}

function createForm(mount, navigate) {
  const name = h('input', { name: 'name', id: 'new-key-name', required: true, autocomplete: 'off' });
  const type = h('select', { name: 'type', id: 'new-key-type' }, KEY_TYPES.map((t) => h('option', { value: t }, t)));
  const derived = h('input', { type: 'checkbox', name: 'derived' });
  const convergent = h('input', { type: 'checkbox', name: 'convergent_encryption' });
  const exportable = h('input', { type: 'checkbox', name: 'exportable' });
  const backup = h('input', { type: 'checkbox', name: 'allow_plaintext_backup' });
  const rotate = h('input', { name: 'auto_rotate_period', placeholder: '0 (off), or e.g. 24h' });
  const keySize = h('input', { name: 'key_size', type: 'number', min: 0, placeholder: 'hmac only: 32..512' });
  const errSlot = h('div');
  const form = h('form', { class: 'card form', id: 'create-key' },
    h('h2', {}, 'Create a key'),
    h('div', { class: 'grid' }, field('Name', name), field('Type', type),
      field('Auto-rotate period', rotate), field('Key size (bytes)', keySize)),
    h('div', { class: 'checks' },
      h('label', {}, derived, ' derived'), h('label', {}, convergent, ' convergent encryption'),
      h('label', {}, exportable, ' exportable'), h('label', {}, backup, ' allow plaintext backup')),
    errSlot, h('button', { type: 'submit' }, 'Create key'));
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    clear(errSlot);
    const body = { type: type.value };
    for (const box of [derived, convergent, exportable, backup]) if (box.checked) body[box.name] = true;
    if (rotate.value.trim()) body.auto_rotate_period = rotate.value.trim();
    if (keySize.value) body.key_size = Number(keySize.value);
    try {
      await post(`${mount}/keys/${seg(name.value.trim())}`, body);
      navigate(`keys/${seg(mount)}/${seg(name.value.trim())}`);
    } catch (err) {
      clear(errSlot, errorBox(err));
    }
  });
  return form;
}

export async function render(el, [mount], { navigate }) {
  el.append(h('h1', {}, 'Transit keys'));
  const mounts = await transitMounts();
  if (!mount) {
    if (!mounts.length) {
      el.append(h('p', {}, 'No transit secrets engine is mounted (or visible to this token).'));
      return;
    }
    navigate(`keys/${seg(mounts[0])}`);
    return;
  }
  if (!mounts.includes(mount)) mounts.push(mount);
  el.append(mountPicker(mounts, mount, navigate));
  const caps = await capabilities([`${mount}/keys`, `${mount}/keys/*`]);
  const listSlot = h('div');
  el.append(listSlot);
  if (can(caps[`${mount}/keys`], 'list')) {
    try {
      const names = await list(`${mount}/keys`);
      clear(listSlot, names.length
        ? table(['Key', ''], names.map((n) => h('tr', { 'data-key': n },
          h('td', {}, h('a', { href: `#/keys/${seg(mount)}/${seg(n)}` }, n)),
          h('td', {}, h('a', { href: `#/actions/${seg(mount)}/${seg(n)}` }, 'actions')))), { class: 'keys' })
        : h('p', { class: 'muted' }, 'No keys yet.'));
    } catch (err) {
      clear(listSlot, errorBox(err));
    }
  } else {
    clear(listSlot, h('p', { class: 'muted' }, 'This token cannot list the keys of this mount.'));
  }
  if (can(caps[`${mount}/keys/*`], 'create', 'update')) el.append(createForm(mount, navigate));
}
