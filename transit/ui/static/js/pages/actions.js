// Key actions, as in Vault's UI: encrypt, decrypt, rewrap, datakey, hmac, sign, verify, hash,
// random. The user types text; the UI base64-encodes it for the API (or sends it as is when
// "already base64" is ticked) and decodes base64 answers back to text where they are text.

import { capabilities, can, get, post } from '../api.js';
import { b64ToText, textToB64 } from '../b64.js';
import { clear, errorBox, field, h, output, seg } from '../dom.js';

const HASHES = ['sha2-256', 'sha2-224', 'sha2-384', 'sha2-512', 'sha3-224', 'sha3-256', 'sha3-384', 'sha3-512'];

// action -> [label, API path below the mount, whether the key type must support it]
const ACTIONS = {
  encrypt: ['Encrypt', (n) => `encrypt/${n}`, (d) => d.supports_encryption],
  decrypt: ['Decrypt', (n) => `decrypt/${n}`, (d) => d.supports_decryption],
  rewrap: ['Rewrap', (n) => `rewrap/${n}`, (d) => d.supports_encryption],
  datakey: ['Data key', (n) => `datakey/plaintext/${n}`, (d) => d.supports_encryption],
  hmac: ['HMAC', (n) => `hmac/${n}`, () => true],
  sign: ['Sign', (n) => `sign/${n}`, (d) => d.supports_signing],
  verify: ['Verify', (n) => `verify/${n}`, () => true],  // an HMAC verifies with any key
  hash: ['Hash', () => 'hash/sha2-256', () => true],
  random: ['Random', () => 'random/32', () => true],
};

function textInput(name, label, { rows = 4, b64 = true } = {}) {
  const ta = h('textarea', { name, id: `in-${name}`, rows });
  const isB64 = h('input', { type: 'checkbox', name: `${name}-is-b64` });
  const node = h('div', {}, field(label, ta), b64 ? h('label', { class: 'check' }, isB64, ' already base64') : null);
  return {
    node,
    value: () => (isB64.checked || !b64 ? ta.value.trim() : textToB64(ta.value)),
    raw: () => ta.value,
  };
}

function select(name, label, options, value) {
  const s = h('select', { name, id: `in-${name}` }, options.map((o) => h('option', { value: o, selected: o === value }, o)));
  return { node: field(label, s), value: () => s.value };
}

function input(name, label, attrs = {}) {
  const i = h('input', { name, id: `in-${name}`, autocomplete: 'off', ...attrs });
  return { node: field(label, i), value: () => i.value.trim() };
}

// The fields of each action and how its request and answer look.
function build(action, key) {
  const derived = key.derived ? textInput('context', 'Context (key derivation)', { rows: 1 }) : null;
  const ctx = (body) => { if (derived) body.context = derived.value(); return body; };
  const version = input('key_version', 'Key version (empty: the latest)', { type: 'number', min: 0 });
  const withVersion = (body) => { if (version.value()) body.key_version = Number(version.value()); return body; };
  switch (action) {
    case 'encrypt': {
      const pt = textInput('plaintext', 'Plaintext');
      return { fields: [pt, derived, version], body: () => withVersion(ctx({ plaintext: pt.value() })),
        show: (d) => [output('Ciphertext', d.ciphertext, 'ciphertext')] };
    }
    case 'decrypt': {
      const ct = input('ciphertext', 'Ciphertext', { placeholder: 'vault:v1:...' });
      return { fields: [ct, derived], body: () => ctx({ ciphertext: ct.value() }),
        show: (d) => {
          const text = b64ToText(d.plaintext);
          return [text !== null ? output('Plaintext', text, 'plaintext') : null, output('Plaintext (base64)', d.plaintext, 'plaintext-b64')];
        } };
    }
    case 'rewrap': {
      const ct = input('ciphertext', 'Ciphertext', { placeholder: 'vault:v1:...' });
      return { fields: [ct, derived, version], body: () => withVersion(ctx({ ciphertext: ct.value() })),
        show: (d) => [output('Ciphertext', d.ciphertext, 'ciphertext')] };
    }
    case 'datakey': {
      const kind = select('datakey_type', 'Type', ['plaintext', 'wrapped'], 'plaintext');
      const bits = select('bits', 'Bits', ['256', '128', '512'], '256');
      return { fields: [kind, bits, derived], path: () => `datakey/${kind.value()}/${seg(key.name)}`,
        body: () => ctx({ bits: Number(bits.value()) }),
        show: (d) => [d.plaintext ? output('Plaintext key (base64)', d.plaintext, 'plaintext-b64') : null, output('Ciphertext', d.ciphertext, 'ciphertext')] };
    }
    case 'hmac': {
      const inp = textInput('input', 'Input');
      const alg = select('algorithm', 'Algorithm', HASHES, 'sha2-256');
      return { fields: [inp, alg, version], path: () => `hmac/${seg(key.name)}/${alg.value()}`,
        body: () => withVersion({ input: inp.value() }), show: (d) => [output('HMAC', d.hmac, 'hmac')] };
    }
    case 'sign': {
      const inp = textInput('input', 'Input');
      const alg = select('hash_algorithm', 'Hash algorithm', HASHES, 'sha2-256');
      const pre = h('input', { type: 'checkbox', name: 'prehashed' });
      const rsa = key.type && key.type.startsWith('rsa') ? select('signature_algorithm', 'Signature algorithm', ['pss', 'pkcs1v15'], 'pss') : null;
      return { fields: [inp, alg, rsa, derived, version, { node: h('label', { class: 'check' }, pre, ' input is prehashed') }],
        path: () => `sign/${seg(key.name)}/${alg.value()}`,
        body: () => { const b = withVersion(ctx({ input: inp.value() })); if (pre.checked) b.prehashed = true; if (rsa) b.signature_algorithm = rsa.value(); return b; },
        show: (d) => [output('Signature', d.signature, 'signature')] };
    }
    case 'verify': {
      const inp = textInput('input', 'Input');
      const alg = select('hash_algorithm', 'Hash algorithm', HASHES, 'sha2-256');
      const kind = select('verify_kind', 'Verify', key.supports_signing ? ['signature', 'hmac'] : ['hmac'], key.supports_signing ? 'signature' : 'hmac');
      const sig = input('signature', 'Signature or HMAC', { placeholder: 'vault:v1:...' });
      const rsa = key.type && key.type.startsWith('rsa') ? select('signature_algorithm', 'Signature algorithm', ['pss', 'pkcs1v15'], 'pss') : null;
      return { fields: [inp, alg, kind, sig, rsa, derived], path: () => `verify/${seg(key.name)}/${alg.value()}`,
        body: () => { const b = ctx({ input: inp.value(), [kind.value()]: sig.value() }); if (rsa) b.signature_algorithm = rsa.value(); return b; },
        show: (d) => [h('p', { class: d.valid ? 'valid' : 'invalid', 'data-output': 'valid' }, d.valid ? 'Valid' : 'Not valid')] };
    }
    case 'hash': {
      const inp = textInput('input', 'Input');
      const alg = select('algorithm', 'Algorithm', HASHES, 'sha2-256');
      const fmt = select('format', 'Output format', ['hex', 'base64'], 'hex');
      return { fields: [inp, alg, fmt], path: () => `hash/${alg.value()}`,
        body: () => ({ input: inp.value(), format: fmt.value() }), show: (d) => [output('Sum', d.sum, 'sum')] };
    }
    case 'random': {
      const n = input('bytes', 'Bytes', { type: 'number', min: 1, max: 1024, value: 32 });
      const fmt = select('format', 'Output format', ['base64', 'hex'], 'base64');
      return { fields: [n, fmt], path: () => `random/${Number(n.value()) || 32}`,
        body: () => ({ format: fmt.value() }), show: (d) => [output('Random bytes', d.random_bytes, 'random')] };
    }
    default:
      return null;
  }
}

export async function render(el, [mount, name, action]) {
  const r = await get(`${mount}/keys/${seg(name)}`);
  const key = { ...r.data, name };
  const paths = Object.fromEntries(Object.entries(ACTIONS).map(([a, [, p]]) => [a, `${mount}/${p(name)}`]));
  const caps = await capabilities(Object.values(paths));
  const allowed = Object.keys(ACTIONS).filter((a) => ACTIONS[a][2](key) && can(caps[paths[a]], 'update', 'create'));
  el.append(h('p', { class: 'crumbs' }, h('a', { href: `#/keys/${seg(mount)}` }, `${mount}/keys`), ' / ',
    h('a', { href: `#/keys/${seg(mount)}/${seg(name)}` }, name), ' / actions'),
  h('h1', {}, `Key actions: ${name}`));
  if (!allowed.length) {
    el.append(h('p', { class: 'muted' }, 'This token may not use this key.'));
    return;
  }
  const current = allowed.includes(action) ? action : allowed[0];
  el.append(h('div', { class: 'tabs', role: 'tablist' }, allowed.map((a) => h('a', {
    href: `#/actions/${seg(mount)}/${seg(name)}/${a}`, role: 'tab', 'data-action': a,
    class: a === current ? 'current' : '', 'aria-selected': a === current ? 'true' : 'false',
  }, ACTIONS[a][0]))));

  const spec = build(current, key);
  const result = h('div', { class: 'result', id: 'result' });
  const form = h('form', { class: 'card form', id: `action-${current}` },
    spec.fields.filter(Boolean).map((f) => f.node), h('button', { type: 'submit', id: 'run' }, ACTIONS[current][0]));
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    clear(result);
    try {
      const path = spec.path ? spec.path() : ACTIONS[current][1](seg(name));
      const resp = await post(`${mount}/${path}`, spec.body());
      clear(result, spec.show((resp && resp.data) || {}));
    } catch (err) {
      clear(result, errorBox(err));
    }
  });
  el.append(form, result);
}
