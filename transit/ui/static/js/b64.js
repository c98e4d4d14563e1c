// base64 of UTF-8 text and back: the user types text, the API wants base64.

export function textToB64(text) {
  const bytes = new TextEncoder().encode(text);
  let bin = '';
  for (const b of bytes) bin += String.fromCharCode(b);
  return btoa(bin);
}

export function b64ToBytes(b64) {
  const bin = atob(b64);
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}

// The text, or null when the bytes are not valid UTF-8 (binary data: show the base64).
export function b64ToText(b64) {
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(b64ToBytes(b64));
  } catch {
    return null;
  }
}

export function isB64(s) {
  return /^[A-Za-z0-9+/]*={0,2}$/.test(s) && s.length % 4 === 0;
}
