// Metrics: request rate and mean latency from sys/metrics (JSON), polled every few seconds and
// drawn as two small SVG charts, with the per-mount totals below. transit's sys/metrics
// counts since the node started, so each point is the difference from the previous poll.

import { api } from '../api.js';
import { clear, errorBox, h, svg, table } from '../dom.js';

const POLL_MS = 3000;
const POINTS = 40;
const REQUESTS = 'vault.core.handle_request';

function totals(samples) {
  let count = 0;
  let sum = 0;
  const byMount = new Map();
  for (const s of samples || []) {
    if (s.Name !== REQUESTS) continue;
    count += s.Count;
    sum += s.Sum;
    const key = `${(s.Labels && s.Labels.mount) || '(none)'}`;
    const m = byMount.get(key) || { count: 0, sum: 0 };
    m.count += s.Count;
    m.sum += s.Sum;
    byMount.set(key, m);
  }
  return { count, sum, byMount };
}

function chart(title, points, unit, cls) {
  const W = 320;
  const H = 110;
  const P = 6;
  const max = Math.max(1e-9, ...points.map((p) => p.v));
  const x = (i) => P + (i * (W - 2 * P)) / Math.max(1, POINTS - 1);
  const y = (v) => H - P - ((H - 2 * P) * v) / max;
  const offset = POINTS - points.length;
  const d = points.map((p, i) => `${i ? 'L' : 'M'}${x(i + offset).toFixed(1)},${y(p.v).toFixed(1)}`).join(' ');
  const last = points.length ? points[points.length - 1].v : 0;
  return h('figure', { class: `card chart ${cls}` },
    h('figcaption', {}, title, h('strong', { 'data-metric': cls }, ` ${last.toFixed(last < 10 ? 2 : 0)} ${unit}`)),
    svg('svg', { viewBox: `0 0 ${W} ${H}`, role: 'img', 'aria-label': title },
      svg('line', { x1: P, y1: H - P, x2: W - P, y2: H - P, class: 'axis' }),
      svg('path', { d: d || `M${P},${H - P}`, class: 'line' }),
      svg('text', { x: P, y: 12, class: 'max' }, document.createTextNode(`max ${max.toFixed(max < 10 ? 2 : 0)}`))));
}

export async function render(el, _params, { isCurrent }) {
  el.append(h('h1', {}, 'Metrics'), h('p', { class: 'muted' }, `Requests handled by this node, from sys/metrics, every ${POLL_MS / 1000} s.`));
  const charts = h('div', { class: 'charts' });
  const errSlot = h('div');
  const detail = h('div');
  el.append(errSlot, charts, detail);
  const rate = [];
  const latency = [];
  let prev = null;
  let timer = null;

  async function poll() {
    let m;
    try {
      m = await api('GET', 'sys/metrics', undefined, { query: { format: 'json' } });
      clear(errSlot);
    } catch (err) {
      clear(errSlot, errorBox(err));
      return;
    }
    if (!isCurrent()) return;
    const now = performance.now();
    const t = totals(m.Samples);
    if (prev && t.count >= prev.count) {
      const dt = (now - prev.at) / 1000;
      const dc = t.count - prev.count;
      rate.push({ v: dc / dt });
      latency.push({ v: dc ? (t.sum - prev.sum) / dc : (latency.length ? latency[latency.length - 1].v : 0) });
      if (rate.length > POINTS) { rate.shift(); latency.shift(); }
    }
    prev = { ...t, at: now };
    clear(charts, chart('Requests per second', rate, 'req/s', 'rate'), chart('Mean latency', latency, 'ms', 'latency'));
    const rows = [...t.byMount.entries()].sort((a, b) => b[1].count - a[1].count).map(([mount, v]) => h('tr', {},
      h('td', {}, mount), h('td', {}, String(v.count)), h('td', {}, v.count ? (v.sum / v.count).toFixed(2) : '')));
    clear(detail, h('h2', {}, 'Since the node started'), table(['Mount', 'Requests', 'Mean ms'], rows, { class: 'metrics' }));
  }

  await poll();
  timer = setInterval(poll, POLL_MS);
  return () => clearInterval(timer);
}
