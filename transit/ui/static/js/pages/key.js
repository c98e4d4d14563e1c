// One transit key: its settings, its versions with their creation times, and what an admin
// does with it: configure (minimum versions, deletion, export, auto-rotation), rotate (after a
// confirmation), trim, delete (when deletion_allowed). Each action shows only when
// sys/capabilities-self allows it.

import { capabilities, can, del, get, post } from '../api.js';
import { clear, confirmDialog, errorBox, field, fmtTime, h, seg, table } from '../dom.js';

function versionRows(keys) {
  return Object.keys(keys || {}).map(Number).sort((a, b) => b - a).map((v) => {
    const info = keys[v];
    const created = typeof info === 'object' ? info.creation_time : info;
    const pub = typeof info === 'object' && info.public_key;
    return h('tr', { 'data-version': v },
      h('td', {}, String(v)),
      h('td', {}, fmtTime(created)),
      h('td', {}, pub ? h('details', {}, h('summary', {}, info.name || 'public key'), h('pre', {}, pub)) : ''));
  });
}

function settingsTable(d) {
  const rows = [
    ['type', d.type], ['latest_version', d.latest_version],
    ['min_decryption_version', d.min_decryption_version],
    ['min_encryption_version', d.min_encryption_version],
    ['min_available_version', d.min_available_version],
    ['deletion_allowed', d.deletion_allowed], ['exportable', d.exportable],
    ['allow_plaintext_backup', d.allow_plaintext_backup],
    ['auto_rotate_period', d.auto_rotate_period], ['derived', d.derived],
    ['convergent_encryption', d.convergent_encryption],
    ['supports_encryption', d.supports_encryption], ['supports_signing', d.supports_signing],
  ].filter(([, v]) => v !== undefined);
  return h('dl', { class: 'settings' }, rows.map(([k, v]) => [h('dt', {}, k), h('dd', { 'data-field': k }, String(v))]));
}

function configForm(base, d, reload) {
  const minDec = h('input', { type: 'number', min: 0, name: 'min_decryption_version', id: 'min_decryption_version', value: d.min_decryption_version });
  const minEnc = h('input', { type: 'number', min: 0, name: 'min_encryption_version', id: 'min_encryption_version', value: d.min_encryption_version });
  const delAllowed = h('input', { type: 'checkbox', name: 'deletion_allowed', id: 'deletion_allowed', checked: d.deletion_allowed });
  const exportable = h('input', { type: 'checkbox', name: 'exportable', checked: d.exportable, disabled: d.exportable });
  const backup = h('input', { type: 'checkbox', name: 'allow_plaintext_backup', checked: d.allow_plaintext_backup, disabled: d.allow_plaintext_backup });
  const rotate = h('input', { name: 'auto_rotate_period', id: 'auto_rotate_period', value: `${d.auto_rotate_period || 0}s`, placeholder: '0 (off), or e.g. 24h' });
  const errSlot = h('div');
  const form = h('form', { class: 'card form', id: 'key-config' },
    h('h2', {}, 'Configuration'),
    h('div', { class: 'grid' },
      field('Min decryption version', minDec), field('Min encryption version', minEnc, '0: the latest'),
      field('Auto-rotate period', rotate)),
    h('div', { class: 'checks' },
      h('label', {}, delAllowed, ' deletion allowed'),
      h('label', {}, exportable, ' exportable (one-way)'),
      h('label', {}, backup, ' allow plaintext backup (one-way)')),
    errSlot, h('button', { type: 'submit', id: 'save-config' }, 'Save'));
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    clear(errSlot);
    const body = {
      min_decryption_version: Number(minDec.value),
      min_encryption_version: Number(minEnc.value),
      deletion_allowed: delAllowed.checked,
    };
    if (exportable.checked && !d.exportable) body.exportable = true;
    if (backup.checked && !d.allow_plaintext_backup) body.allow_plaintext_backup = true;
    if (rotate.value.trim() !== `${d.auto_rotate_period || 0}s`) body.auto_rotate_period = rotate.value.trim();
    try {
      await post(`${base}/config`, body);
      await reload('Configuration saved.');
    } catch (err) {
      clear(errSlot, errorBox(err));
    }
  });
  return form;
}

function trimForm(base, d, reload) {
  const minAvail = h('input', { type: 'number', min: 1, name: 'min_available_version', value: d.min_decryption_version });
  const errSlot = h('div');
  const form = h('form', { class: 'card form', id: 'key-trim' },
    h('h2', {}, 'Trim versions'),
    h('p', { class: 'muted' }, 'Removes every version below the one given, for good. It may not be above min_decryption_version or min_encryption_version.'),
    field('Min available version', minAvail), errSlot,
    h('button', { type: 'submit', class: 'danger' }, 'Trim'));
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    clear(errSlot);
    if (!(await confirmDialog(`Delete every version of this key below ${minAvail.value}? This cannot be undone.`, 'Trim'))) return;
    try {
      await post(`${base}/trim`, { min_available_version: Number(minAvail.value) });
      await reload('Trimmed.');
    } catch (err) {
      clear(errSlot, errorBox(err));
    }
  });
  return form;
}

export async function render(el, [mount, name], { navigate }) {
  const base = `${mount}/keys/${seg(name)}`;
  const plainBase = `${mount}/keys/${name}`;
  const caps = await capabilities([plainBase, `${plainBase}/config`, `${plainBase}/rotate`, `${plainBase}/trim`]);

  const body = h('div');
  const notice = h('div', { 'aria-live': 'polite' });
  el.append(h('p', { class: 'crumbs' }, h('a', { href: `#/keys/${seg(mount)}` }, `${mount}/keys`), ' / ', name),
    h('h1', {}, name), notice, body);

  const reload = async (message) => {
    const r = await get(base);
    draw(r.data);
    clear(notice, message ? h('div', { class: 'notice', role: 'status' }, message) : null);
  };

  function draw(d) {
    const rotateErr = h('div');
    const deleteErr = h('div');
    const buttons = h('div', { class: 'actions' },
      h('a', { class: 'button', href: `#/actions/${seg(mount)}/${seg(name)}`, id: 'key-actions' }, 'Key actions'));
    if (can(caps[`${plainBase}/rotate`], 'update')) {
      buttons.append(h('button', {
        type: 'button', id: 'rotate',
        onclick: async () => {
          clear(rotateErr);
          if (!(await confirmDialog(`Rotate "${name}"? New encryptions will use version ${d.latest_version + 1}.`, 'Rotate'))) return;
          try {
            await post(`${base}/rotate`);
            await reload(`Rotated: the latest version is now ${d.latest_version + 1}.`);
          } catch (err) { clear(rotateErr, errorBox(err)); }
        },
      }, 'Rotate'));
    }
    if (d.deletion_allowed && can(caps[plainBase], 'delete')) {
      buttons.append(h('button', {
        type: 'button', id: 'delete', class: 'danger',
        onclick: async () => {
          clear(deleteErr);
          if (!(await confirmDialog(`Delete the key "${name}" and every version of it? Data encrypted with it can never be decrypted again.`, 'Delete'))) return;
          try {
            await del(base);
            navigate(`keys/${seg(mount)}`);
          } catch (err) { clear(deleteErr, errorBox(err)); }
        },
      }, 'Delete'));
    }
    clear(body,
      buttons, rotateErr, deleteErr,
      h('div', { class: 'two-col' },
        h('div', { class: 'card' }, h('h2', {}, 'Settings'), settingsTable(d)),
        h('div', { class: 'card' }, h('h2', {}, 'Versions'),
          table(['Version', 'Created', 'Public key'], versionRows(d.keys), { class: 'versions' }),
          d.min_decryption_version > 1 && d.min_decryption_version > (d.min_available_version || 0) + 1
            ? h('small', { class: 'muted' }, `Versions below min_decryption_version (${d.min_decryption_version}) still exist but are not listed; trim removes them.`)
            : null)),
      can(caps[`${plainBase}/config`], 'update') ? configForm(base, d, reload) : null,
      can(caps[`${plainBase}/trim`], 'update') ? trimForm(base, d, reload) : null);
  }

  try {
    await reload();
  } catch (err) {
    body.append(errorBox(err));
  }
}
