// Cluster: every node from sys/ha-status with its role, the leader, this node's seal state.

import { api, get } from '../api.js';
import { errorBox, fmtTime, h, table } from '../dom.js';

async function settle(promise) {
  try { return { value: await promise }; } catch (error) { return { error }; }
}

function healthLink(apiAddress) {
  if (!apiAddress) return h('span', { class: 'muted' }, 'no api_addr');
  let url;
  try { url = new URL('/v1/sys/health', apiAddress).href; } catch { return apiAddress; }
  return h('a', { href: url, target: '_blank', rel: 'noopener noreferrer' }, 'health');
}

function role(node) {
  if (node.active_node) return h('span', { class: 'badge ok' }, 'active');
  if (node.performance_standby) return h('span', { class: 'badge info' }, 'performance standby');
  return h('span', { class: 'badge' }, 'standby');
}

// A performance standby's staleness: how far its caches may be behind the active node's
// writes (transit's gauge vault.<host>.cluster.invalidation.lag, seconds; null: unconfirmed).
function staleness(metrics) {
  const gauges = (metrics && metrics.Gauges) || [];
  const g = gauges.find((x) => /(^|\.)cluster\.invalidation\.lag$/.test(x.Name));
  if (!g) return null;
  return g.Value === null || Number.isNaN(g.Value) ? 'staleness not confirmed' : `caches at most ${Number(g.Value).toFixed(3)} s behind`;
}

export async function render(el) {
  el.append(h('h1', {}, 'Cluster'));
  const [ha, leader, seal, health, metrics] = await Promise.all([
    settle(get('sys/ha-status')), settle(api('GET', 'sys/leader')),
    settle(api('GET', 'sys/seal-status')),
    settle(api('GET', 'sys/health', undefined, { query: { standbyok: 'true', perfstandbyok: 'true' } })),
    settle(api('GET', 'sys/metrics', undefined, { query: { format: 'json' } })),
  ]);

  const s = seal.value || {};
  const l = leader.value || {};
  const hl = health.value || {};
  el.append(h('div', { class: 'cards' },
    h('div', { class: 'card stat' }, h('span', {}, 'Seal'),
      h('strong', { 'data-field': 'sealed' }, seal.error ? '?' : (s.sealed ? 'sealed' : 'unsealed')),
      h('small', {}, `${s.type || ''} ${s.t ? `${s.t}/${s.n}` : ''}`)),
    h('div', { class: 'card stat' }, h('span', {}, 'HA'),
      h('strong', {}, l.ha_enabled ? 'enabled' : 'disabled'),
      h('small', {}, l.leader_address ? `leader ${l.leader_address}` : '')),
    h('div', { class: 'card stat' }, h('span', {}, 'This node'),
      h('strong', {}, hl.performance_standby ? 'performance standby' : (hl.standby ? 'standby' : 'active')),
      h('small', { 'data-field': 'staleness' }, hl.performance_standby
        ? (staleness(metrics.value) || `last remote WAL ${l.performance_standby_last_remote_wal}`)
        : (hl.version ? `version ${hl.version}` : ''))),
    h('div', { class: 'card stat' }, h('span', {}, 'Cluster'),
      h('strong', {}, s.cluster_name || hl.cluster_name || ''),
      h('small', {}, s.storage_type ? `storage ${s.storage_type}` : '')),
  ));

  el.append(h('h2', {}, 'Nodes'));
  if (ha.error) {
    el.append(errorBox(ha.error));
    return;
  }
  const nodes = (ha.value.data && ha.value.data.nodes) || ha.value.nodes || [];
  el.append(table(['Node', 'Role', 'API address', 'Last echo', 'Version', 'Health'],
    nodes.map((n) => h('tr', { 'data-node': n.node_id || n.hostname },
      h('td', {}, n.node_id || n.hostname || '(this node)', n.hostname && n.node_id ? h('small', {}, ` ${n.hostname}`) : null),
      h('td', {}, role(n), n.standby_problem ? h('small', { class: 'warn' }, ` ${n.standby_problem}`) : null),
      h('td', {}, n.api_address || ''),
      h('td', {}, n.active_node ? '' : fmtTime(n.last_echo)),
      h('td', {}, n.version || ''),
      h('td', {}, healthLink(n.api_address)))),
    { class: 'nodes' }));
}
