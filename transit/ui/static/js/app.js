// The application: login with a token, a hash router (#/page/...: nothing secret in it), the
// navigation limited to what sys/capabilities-self allows.

import { api, capabilities, can, session } from './api.js';
import { clear, errorBox, field, h } from './dom.js';
import * as cluster from './pages/cluster.js';
import * as secrets from './pages/secrets.js';
import * as keys from './pages/keys.js';
import * as key from './pages/key.js';
import * as actions from './pages/actions.js';
import * as policies from './pages/policies.js';
import * as audit from './pages/audit.js';
import * as metrics from './pages/metrics.js';

const ROUTES = [
  [/^cluster$/, cluster.render, 'cluster'],
  [/^secrets$/, secrets.render, 'secrets'],
  [/^keys(?:\/([^/]+))?$/, keys.render, 'keys'],
  [/^keys\/([^/]+)\/([^/]+)$/, key.render, 'keys'],
  [/^actions\/([^/]+)\/([^/]+)(?:\/([a-z]+))?$/, actions.render, 'keys'],
  [/^policies$/, policies.renderList, 'policies'],
  [/^policies\/([^/]+)$/, policies.renderOne, 'policies'],
  [/^audit$/, audit.render, 'audit'],
  [/^metrics$/, metrics.render, 'metrics'],
];

// The API paths behind each navigation entry: the link shows when the token may read it.
const NAV_PATHS = {
  cluster: 'sys/ha-status',
  secrets: 'sys/mounts',
  policies: 'sys/policies/acl',
  audit: 'sys/audit',
  metrics: 'sys/metrics',
};

const main = document.getElementById('main');
const nav = document.getElementById('nav');
const whoami = document.getElementById('whoami');
const logoutBtn = document.getElementById('logout');
const menuToggle = document.getElementById('menu-toggle');
let cleanup = null;
let generation = 0;
let identity = null;

export function navigate(path) {
  if (location.hash === `#/${path}`) route();
  else location.hash = `#/${path}`;
}

function logout() {
  session.clear();
  identity = null;
  navigate('login');
}

async function checkSession() {
  // Every page load re-reads the token's identity; a 403 means it is gone: forget it.
  if (!session.token) return false;
  if (identity) return true;
  try {
    const r = await api('GET', 'auth/token/lookup-self');
    identity = r.data;
  } catch (err) {
    if (err.status === 403) session.clear();
    identity = null;
    return false;
  }
  await showNav();
  return true;
}

async function showNav() {
  const caps = await capabilities(Object.values(NAV_PATHS));
  for (const a of nav.querySelectorAll('a')) {
    const p = NAV_PATHS[a.dataset.page];
    a.hidden = p ? !can(caps[p], 'read', 'list', 'sudo') : false;
  }
  nav.hidden = false;
  menuToggle.hidden = false;
  logoutBtn.hidden = false;
  whoami.textContent = identity ? `${identity.display_name || 'token'} (${(identity.policies || []).join(', ')})` : '';
}

// The first page this token may see (a token that may not read sys/ha-status lands on keys).
function firstPage() {
  const a = [...nav.querySelectorAll('a')].find((x) => !x.hidden);
  return a ? a.dataset.page : 'keys';
}

function hideNav() {
  nav.hidden = true;
  menuToggle.hidden = true;
  logoutBtn.hidden = true;
  whoami.textContent = '';
}

function renderLogin(next) {
  hideNav();
  const input = h('input', { type: 'password', name: 'token', id: 'token', autocomplete: 'off', required: true });
  const errSlot = h('div');
  const form = h('form', { class: 'card login', id: 'login-form' },
    h('h1', {}, 'Sign in to transit'),
    h('p', {}, 'Enter a token. It is kept in this browser tab only (sessionStorage) and sent to the /v1 API in the X-Vault-Token header.'),
    field('Token', input), errSlot,
    h('button', { type: 'submit', id: 'login' }, 'Sign in'));
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    clear(errSlot);
    try {
      const r = await api('GET', 'auth/token/lookup-self', undefined, { token: input.value.trim() });
      session.set(input.value.trim());
      identity = r.data;
      await showNav();
      navigate(next && next !== 'login' ? next : firstPage());
    } catch (err) {
      clear(errSlot, errorBox(err));
    }
  });
  clear(main, form);
  input.focus();
}

// A route parameter; a malformed %-escape is kept as typed (it only ever names a path).
function decode(x) {
  if (x === undefined) return undefined;
  try { return decodeURIComponent(x); } catch { return x; }
}

async function route() {
  const gen = ++generation;
  if (cleanup) { try { cleanup(); } catch { /* the old page is gone anyway */ } cleanup = null; }
  nav.classList.remove('open');
  const path = location.hash.replace(/^#\/?/, '') || (identity ? firstPage() : 'cluster');
  if (path === 'login' || !(await checkSession())) {
    if (gen === generation) renderLogin(path === 'login' ? '' : path);
    return;
  }
  if (gen !== generation) return;
  for (const [re, render, page] of ROUTES) {
    const m = path.match(re);
    if (!m) continue;
    for (const a of nav.querySelectorAll('a')) a.classList.toggle('current', a.dataset.page === page);
    const params = m.slice(1).map(decode);
    const page_el = h('section', { class: 'page', 'data-page': page });
    clear(main, page_el);
    try {
      const c = await render(page_el, params, { navigate, identity, isCurrent: () => gen === generation });
      if (gen === generation) cleanup = typeof c === 'function' ? c : null;
      else if (typeof c === 'function') c();
    } catch (err) {
      if (gen === generation) page_el.append(errorBox(err));
    }
    return;
  }
  clear(main, h('section', { class: 'page' }, h('h1', {}, 'Not found'), h('p', {}, path)));
}

// A 403 somewhere: if lookup-self answers 403 too, the token is gone (revoked or expired):
// forget it and sign in again; otherwise it was only this action the ACL refused.
let checking = false;
window.addEventListener('transit:forbidden', async () => {
  if (checking || !session.token) return;
  checking = true;
  try {
    await api('GET', 'auth/token/lookup-self');
  } catch (err) {
    if (err.status === 403) logout();
  } finally {
    checking = false;
  }
});

logoutBtn.addEventListener('click', logout);
menuToggle.addEventListener('click', () => nav.classList.toggle('open'));
window.addEventListener('hashchange', route);
route();
