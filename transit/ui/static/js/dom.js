// DOM helpers: every text goes in through textContent (never innerHTML), so nothing the API
// returns can run as markup; no style attributes (the Content-Security-Policy forbids them).

export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
    else if (k === 'class') el.className = v;
    else if (k === 'value') el.value = v;
    else if (k === 'checked') el.checked = !!v;
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children.flat(Infinity)) {
    if (c === undefined || c === null || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
}

export function clear(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

const SVG = 'http://www.w3.org/2000/svg';

export function svg(tag, attrs = {}, ...children) {
  const el = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, String(v));
  for (const c of children) el.append(c);
  return el;
}

// The API's error as it sent it: the HTTP status and each string of `errors`.
export function errorBox(err) {
  const box = h('div', { class: 'error', role: 'alert' });
  if (!err) return box;
  const status = err.status ? `${err.status}` : 'error';
  const lines = err.errors && err.errors.length ? err.errors : [err.message || String(err)];
  box.append(h('strong', {}, `Error ${status}`));
  box.append(h('ul', {}, lines.map((l) => h('li', {}, l))));
  return box;
}

export function showError(slot, err) {
  clear(slot, err ? errorBox(err) : null);
}

export async function copyText(text) {
  try {
    await navigator.clipboard.writeText(text);
    return true;
  } catch {
    const ta = h('textarea', { class: 'offscreen', readonly: true }, text);
    document.body.append(ta);
    ta.select();
    const ok = document.execCommand('copy');
    ta.remove();
    return ok;
  }
}

// A read-only output with a copy button (the value is never put in the URL).
export function output(label, value, name) {
  const btn = h('button', { type: 'button', class: 'secondary copy' }, 'Copy');
  btn.addEventListener('click', async () => {
    btn.textContent = (await copyText(value)) ? 'Copied' : 'Copy failed';
    setTimeout(() => { btn.textContent = 'Copy'; }, 1500);
  });
  return h('div', { class: 'output' },
    h('label', {}, label),
    h('div', { class: 'output-row' },
      h('textarea', { readonly: true, rows: 3, 'data-output': name || label }, value), btn));
}

export function field(label, input, hint) {
  return h('label', { class: 'field' }, h('span', {}, label), input,
    hint ? h('small', {}, hint) : null);
}

export function table(headers, rows, attrs = {}) {
  return h('div', { class: 'table-wrap' }, h('table', attrs,
    h('thead', {}, h('tr', {}, headers.map((x) => h('th', {}, x)))),
    h('tbody', {}, rows)));
}

// A modal confirmation (a <dialog>): resolves true when the user confirms.
export function confirmDialog(message, confirmLabel = 'Confirm') {
  return new Promise((resolve) => {
    const dlg = h('dialog', { class: 'confirm' });
    const done = (ok) => { dlg.close(); dlg.remove(); resolve(ok); };
    dlg.append(
      h('p', {}, message),
      h('div', { class: 'actions' },
        h('button', { type: 'button', class: 'secondary', 'data-confirm': 'cancel', onclick: () => done(false) }, 'Cancel'),
        h('button', { type: 'button', class: 'danger', 'data-confirm': 'ok', onclick: () => done(true) }, confirmLabel)));
    dlg.addEventListener('cancel', () => done(false));
    document.body.append(dlg);
    dlg.showModal();
  });
}

export function fmtTime(v) {
  if (v === null || v === undefined || v === '') return '';
  if (typeof v === 'number') return new Date(v * 1000).toISOString();
  return String(v);
}

export function seg(s) {
  return encodeURIComponent(s);
}
