// The public /v1 API with the user's token. The token lives in sessionStorage only (this tab,
// gone when it closes), travels in the X-Vault-Token header, never in a URL.

const TOKEN_KEY = 'transit.token';

export const session = {
  get token() { return sessionStorage.getItem(TOKEN_KEY) || ''; },
  set(token) { sessionStorage.setItem(TOKEN_KEY, token); },
  clear() { sessionStorage.removeItem(TOKEN_KEY); },
};

export class ApiError extends Error {
  constructor(status, errors, path) {
    super(errors.length ? errors.join('; ') : `HTTP ${status}`);
    this.status = status;
    this.errors = errors;
    this.path = path;
  }
}

// One request: resolves to the decoded JSON body (null for 204), rejects with ApiError
// carrying the `errors` exactly as the API sent them.
export async function api(method, path, body, { token = session.token, query } = {}) {
  const headers = {};
  if (token) headers['X-Vault-Token'] = token;
  const init = { method, headers, cache: 'no-store', credentials: 'omit', referrerPolicy: 'no-referrer' };
  if (body !== undefined) {
    headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  const qs = query ? `?${new URLSearchParams(query)}` : '';
  const resp = await fetch(`/v1/${path}${qs}`, init);
  const text = await resp.text();
  let data = null;
  if (text) {
    try { data = JSON.parse(text); } catch { data = text; }
  }
  if (!resp.ok) {
    const errors = data && typeof data === 'object' && Array.isArray(data.errors)
      ? data.errors : (typeof data === 'string' && data ? [data] : []);
    if (resp.status === 403 && token && token === session.token && path !== 'auth/token/lookup-self') {
      // maybe the token itself is gone (revoked, expired): app.js asks lookup-self
      window.dispatchEvent(new CustomEvent('transit:forbidden'));
    }
    throw new ApiError(resp.status, errors, path);
  }
  return data;
}

export const get = (path, query) => api('GET', path, undefined, { query });
export const post = (path, body = {}) => api('POST', path, body);
export const put = (path, body = {}) => api('PUT', path, body);
export const del = (path) => api('DELETE', path);

// A LIST: the keys, or [] when there are none (Vault answers 404 to an empty list).
export async function list(path) {
  try {
    const r = await api('GET', path, undefined, { query: { list: 'true' } });
    return (r && r.data && r.data.keys) || [];
  } catch (err) {
    if (err.status === 404 && !err.errors.length) return [];
    throw err;
  }
}

// sys/capabilities-self for several paths at once: {path: [capabilities]}. A path the call
// cannot answer counts as denied (the UI hides the action; the API would refuse it anyway).
export async function capabilities(paths) {
  const out = {};
  if (!paths.length) return out;
  try {
    const r = await post('sys/capabilities-self', { paths });
    const data = (r && r.data) || {};
    for (const p of paths) out[p] = data[p] || (paths.length === 1 ? r.capabilities : null) || ['deny'];
  } catch {
    for (const p of paths) out[p] = ['deny'];
  }
  return out;
}

export function can(caps, ...ops) {
  if (!caps || caps.includes('deny')) return false;
  if (caps.includes('root')) return true;
  return ops.some((op) => caps.includes(op));
}
