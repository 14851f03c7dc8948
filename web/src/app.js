// The takedown dashboard: fetches the REST API with the session cookie and
// draws figures, tables, the trend and the world map with ECharts. No
// inline scripts (the page's CSP forbids them); every figure refreshes by
// itself.
import * as echarts from 'echarts/core';
import { LineChart, MapChart } from 'echarts/charts';
import { GridComponent, MarkAreaComponent, MarkLineComponent, MarkPointComponent, TooltipComponent, VisualMapComponent } from 'echarts/components';
import { CanvasRenderer } from 'echarts/renderers';
import { feature } from 'topojson-client';
import world from 'world-atlas/countries-110m.json';
import codes from 'i18n-iso-countries/codes.json';

echarts.use([LineChart, MapChart, GridComponent, MarkAreaComponent, MarkLineComponent, MarkPointComponent, TooltipComponent, VisualMapComponent, CanvasRenderer]);

const API = '/api/v1';
const nf = new Intl.NumberFormat('en-US');
const fmt = (n) => (n === null || n === undefined || Number.isNaN(n) ? '–' : nf.format(n));
const pct = (v) => (v === null || v === undefined ? '–' : `${v > 0 ? '−' : v < 0 ? '+' : ''}${Math.abs(v).toFixed(1)} %`);
const utc = (s) => (s ? `${new Date(s).toISOString().slice(0, 16).replace('T', ' ')} UTC` : '–');
const day = (s) => new Date(s).toISOString().slice(0, 10);
const $ = (id) => document.getElementById(id);
const csrf = document.querySelector('meta[name="csrf-token"]')?.content || '';

// ISO 3166 numeric (world-atlas ids) to alpha-2 (the API's country keys).
const alpha2 = new Map(codes.map(([a2, , num]) => [num, a2]));
const names = new Map();
const geo = feature(world, world.objects.countries);
// Rings that cross the antimeridian (Russia's Chukotka, Fiji) jump from
// +180 to -180 and would be drawn as a band across the whole map: their
// points on the far side are pinned to the antimeridian. Antarctica (010)
// spans every longitude on purpose and stays as it is.
function pinAntimeridian(ring) {
  const lons = ring.map((p) => p[0]);
  if (Math.max(...lons) - Math.min(...lons) <= 270) return;
  const east = lons.filter((x) => x > 0).length >= lons.length / 2;
  for (const p of ring) {
    if (east && p[0] < 0) p[0] = 180;
    if (!east && p[0] > 0) p[0] = -180;
  }
}
for (const f of geo.features) {
  if (f.id !== '010' && f.geometry) {
    const polys = f.geometry.type === 'Polygon' ? [f.geometry.coordinates] : f.geometry.type === 'MultiPolygon' ? f.geometry.coordinates : [];
    for (const poly of polys) poly.forEach(pinAntimeridian);
  }
}
for (const f of geo.features) {
  f.properties.iso = alpha2.get(String(f.id)) || '';
  if (f.properties.iso) names.set(f.properties.iso, f.properties.name);
}
echarts.registerMap('world', geo);
const countryName = (cc) => (names.has(cc) ? `${names.get(cc)} (${cc})` : cc);

const charts = {};
window.__takedown = { charts };

const chartTheme = { textStyle: { color: '#e8eef4' } };
function chart(id) {
  if (!charts[id]) {
    charts[id] = echarts.init($(id), null, { renderer: 'canvas' });
    window.addEventListener('resize', () => charts[id].resize());
  }
  return charts[id];
}

async function get(path) {
  const r = await fetch(API + path, { credentials: 'same-origin', headers: { 'X-CSRF-Token': csrf, Accept: 'application/json' } });
  if (r.status === 401) {
    window.location.assign('/login');
    throw new Error('session expired');
  }
  const body = await r.json().catch(() => ({}));
  if (!r.ok) {
    const e = new Error(body.error ? `${body.error.code}: ${body.error.message}` : `HTTP ${r.status}`);
    e.code = body.error?.code;
    throw e;
  }
  return body;
}

function showError(e) {
  const el = $('error');
  if (e) {
    el.textContent = `Could not refresh: ${e.message}`;
    el.hidden = false;
  } else {
    el.hidden = true;
  }
}

function stamp() {
  $('updated').textContent = new Date().toISOString().slice(0, 19).replace('T', ' ') + ' UTC';
}

function fillTable(id, rows, cols, onSelect) {
  const tb = $(id).querySelector('tbody');
  tb.replaceChildren();
  for (const row of rows) {
    const tr = document.createElement('tr');
    cols.forEach(([get, cls]) => {
      const td = document.createElement('td');
      td.textContent = get(row);
      if (cls) td.className = cls;
      tr.append(td);
    });
    if (onSelect) {
      tr.tabIndex = 0;
      const pick = () => {
        tb.querySelectorAll('tr').forEach((r) => r.removeAttribute('aria-selected'));
        tr.setAttribute('aria-selected', 'true');
        onSelect(row);
      };
      tr.addEventListener('click', pick);
      tr.addEventListener('keydown', (ev) => { if (ev.key === 'Enter' || ev.key === ' ') { ev.preventDefault(); pick(); } });
    }
    tb.append(tr);
  }
  if (rows.length === 0) {
    const tr = document.createElement('tr');
    const td = document.createElement('td');
    td.colSpan = cols.length;
    td.textContent = 'No data';
    tr.append(td);
    tb.append(tr);
  }
}

const known = (r) => r.key !== 'unknown';
// An ASN row's label: the number and, when the geo data knows it, the AS
// organisation.
const asLabel = (r) => (r.key === 'unknown' ? 'unknown' : r.org ? `AS${r.key} ${r.org}` : `AS${r.key}`);

// The whole takedown. The trend starts at the takedown's first day (the
// earliest effective day of the orders in force, or of all orders when
// none is) or at the baseline's first day if that is earlier, so that the
// chart shows the before and the after; the window stays selectable.
const DAY = 86400000;
const midnight = (t) => Math.floor(t / DAY) * DAY;
const isoDay = (t) => new Date(t).toISOString().slice(0, 10);
function takedownStart(orders) {
  const all = orders?.orders || [];
  const inForce = all.filter((o) => o.active);
  const pick = (inForce.length ? inForce : all).map((o) => Date.parse(o.effective)).filter((t) => !Number.isNaN(t));
  return pick.length ? Math.min(...pick) : null;
}

// reduction compares the baseline's mean daily count (the whole days
// inside the baseline window) with the latest whole day after it: what the
// press reports as "down 75 % since March". null when either is missing.
function reduction(points, baseline) {
  if (!baseline) return null;
  const bf = Date.parse(baseline.from);
  const bt = Date.parse(baseline.to);
  const whole = points.filter((p) => Date.parse(p.to) - Date.parse(p.from) === DAY);
  const inBase = whole.filter((p) => Date.parse(p.from) >= bf && Date.parse(p.to) <= bt);
  const after = whole.filter((p) => Date.parse(p.from) >= bt);
  if (!inBase.length || !after.length) return null;
  const mean = inBase.reduce((s, p) => s + p.unique_ips, 0) / inBase.length;
  if (mean === 0) return null;
  const last = after[after.length - 1];
  return { mean, first: inBase[0], lastBase: inBase[inBase.length - 1], last, pct: Math.round(((mean - last.unique_ips) / mean) * 1000) / 10 };
}

// trend draws the overview's trend for the selected window, ending at now
// (the server's clock: the end of its last answer's window).
async function trend(baseline, orders, now) {
  const sel = $('trend-window').value;
  const start = takedownStart(orders);
  let from;
  let what;
  if (sel === 'whole' && start !== null) {
    from = midnight(Math.min(start, baseline ? Date.parse(baseline.from) : start));
    what = `since ${isoDay(start)}, the first day of the takedown`;
  } else {
    const n = sel === 'whole' ? 30 : parseInt(sel, 10);
    from = midnight(now) - (n - 1) * DAY;
    what = sel === 'whole' ? 'last 30 days (no order yet)' : `last ${n} days`;
  }
  // The API refuses more than 800 points: weeks beyond that.
  const every = (now - from) / DAY > 800 ? 'week' : 'day';
  const series = await get(`/series?from=${isoDay(from)}&every=${every}`);
  const pts = series.points;
  const days = pts.map((p) => day(p.from));
  $('trend-title').textContent = `Trend: distinct infected IPs per ${every} (UTC), ${what}`;
  const r = every === 'day' ? reduction(pts, baseline) : null;
  const red = $('trend-reduction');
  if (r) {
    red.textContent = `${pct(r.pct)} since the baseline: ${fmt(Math.round(r.mean))} addresses a day (mean of ${day(r.first.from)} to ${day(r.lastBase.from)}), ${fmt(r.last.unique_ips)} on ${day(r.last.from)}`;
  } else {
    red.textContent = baseline ? 'The baseline has no whole day in this window.' : 'No baseline configured.';
  }
  const marks = {};
  if (r) {
    marks.markArea = { silent: true, itemStyle: { color: 'rgba(255, 180, 84, 0.15)' }, label: { color: '#ffb454', position: 'insideTop' },
      data: [[{ name: 'baseline', xAxis: day(r.first.from) }, { xAxis: day(r.lastBase.from) }]] };
    marks.markPoint = { symbol: 'circle', symbolSize: 10, itemStyle: { color: '#7ee2a8' },
      label: { position: 'top', distance: 8, color: '#0f1720', backgroundColor: '#7ee2a8', borderRadius: 3, padding: [3, 6], fontWeight: 'bold', formatter: () => pct(r.pct) },
      data: [{ name: 'reduction', coord: [day(r.last.from), r.last.unique_ips], value: r.pct }] };
  }
  const lines = [];
  if (start !== null && days.includes(isoDay(start))) lines.push({ name: 'order effective', xAxis: isoDay(start), label: { formatter: 'order effective', color: '#e8eef4' }, lineStyle: { color: '#e8eef4', type: 'dashed' } });
  if (r) lines.push({ name: 'baseline mean', yAxis: Math.round(r.mean), label: { formatter: `baseline ${fmt(Math.round(r.mean))}/day`, color: '#ffb454', position: 'insideEndTop' }, lineStyle: { color: '#ffb454' } });
  if (lines.length) marks.markLine = { silent: true, symbol: 'none', data: lines };
  chart('trend').setOption({
    ...chartTheme,
    grid: { left: 60, right: 30, top: 30, bottom: 40 },
    tooltip: { trigger: 'axis', valueFormatter: fmt },
    xAxis: { type: 'category', name: `${every} (UTC)`, nameLocation: 'middle', nameGap: 28, data: days, axisLabel: { color: '#a9b7c6' } },
    yAxis: { type: 'value', axisLabel: { color: '#a9b7c6', formatter: fmt }, splitLine: { lineStyle: { color: '#2a3a4b' } } },
    series: [{ name: 'Infected IPs', type: 'line', smooth: false, showSymbol: pts.length <= 60, data: pts.map((p) => p.unique_ips), lineStyle: { color: '#5fb3ff' }, itemStyle: { color: '#5fb3ff' }, ...marks }],
  }, { notMerge: true });
  document.body.dataset.trend = sel; // drawn: tests wait for it
}

function showHeadline(d1) {
  $('headline-24h').textContent = fmt(d1.unique_ips);
  $('hosts-24h').textContent = `about ${fmt(d1.estimated_hosts)} hosts; ${fmt(d1.resolver_ips_excluded)} resolver IPs not counted`;
}

// The last 24 hours' headline is asked for every second while the overview
// is on screen, so that a contact shows within about two seconds of its
// arrival (the pipeline makes it countable within one: docs/api.md); the
// rest of the overview, costlier and slower to change, every 30 s.
const headlineEvery = 1000;
async function headline() {
  if (current !== 'overview' || document.hidden) return;
  try {
    showHeadline(await get('/stats'));
  } catch (e) {
    // The full refresh reports errors; a missed poll is retried next second.
  }
}

// Overview. What the trend's window selector needs between refreshes is
// kept on the function: the baseline, the orders and the server's now.
async function overview() {
  const [d1, d7, c7, a7, f7, orders] = await Promise.all([
    get('/stats'),
    get('/stats?window=7d'),
    get('/stats?window=7d&by=country'),
    get('/stats?window=7d&by=asn&top=10'),
    get('/stats?window=7d&by=family&top=10'),
    // Orders are for analysts and admins; without them the trend shows
    // the last 30 days.
    get('/orders').catch(() => null),
  ]);
  showHeadline(d1);
  $('headline-7d').textContent = fmt(d7.unique_ips);
  $('hosts-7d').textContent = `about ${fmt(d7.estimated_hosts)} hosts`;
  if (d7.baseline) {
    $('change').textContent = pct(d7.reduction_pct);
    $('baseline').textContent = `7 days vs baseline ${day(d7.baseline.from)} to ${day(d7.baseline.to)} (${fmt(d7.baseline.unique_ips)} IPs)`;
  } else {
    $('change').textContent = '–';
    $('baseline').textContent = 'No baseline configured';
  }
  overview.baseline = d7.baseline || null;
  overview.orders = orders;
  overview.now = Date.parse(d1.to);
  await trend(overview.baseline, overview.orders, overview.now);
  const countries = (c7.rows || []).filter(known);
  const max = Math.max(1, ...countries.map((r) => r.unique_ips));
  chart('map').setOption({
    ...chartTheme,
    tooltip: { trigger: 'item', formatter: (p) => `${p.data ? countryName(p.data.name) : p.name}: ${p.data ? fmt(p.data.value) : 'no infected IPs'}` },
    visualMap: { min: 0, max, left: 10, bottom: 10, text: ['more', 'fewer'], calculable: false, inRange: { color: ['#fde7a3', '#f59e0b', '#b91c1c'] }, textStyle: { color: '#e8eef4' }, formatter: fmt },
    series: [{
      type: 'map', map: 'world', nameProperty: 'iso', roam: true, zoom: 1,
      itemStyle: { areaColor: '#2b3949', borderColor: '#0f1720', borderWidth: 0.5 },
      emphasis: { label: { show: false }, itemStyle: { areaColor: '#5fb3ff' } },
      data: countries.map((r) => ({ name: r.key, value: r.unique_ips })),
    }],
  });
  fillTable('top-country', countries.slice(0, 10), [[(r) => countryName(r.key)], [(r) => fmt(r.unique_ips), 'num']]);
  fillTable('top-asn', a7.rows || [], [[asLabel], [(r) => fmt(r.unique_ips), 'num']]);
  fillTable('top-family', f7.rows || [], [[(r) => r.key], [(r) => fmt(r.unique_ips), 'num']]);
}

// Countries and ASNs.
let drillKey = null;
async function drill(by, key, org) {
  drillKey = { by, key, org };
  const s = await get(`/series?window=30d&every=day&by=${by}`);
  const label = by === 'country' ? countryName(key) : asLabel({ key, org });
  $('drill-title').textContent = `Trend: ${label}, distinct infected IPs per day (UTC)`;
  chart('drill').setOption({
    ...chartTheme,
    grid: { left: 60, right: 20, top: 20, bottom: 30 },
    tooltip: { trigger: 'axis', valueFormatter: fmt },
    xAxis: { type: 'category', data: s.points.map((p) => day(p.from)), axisLabel: { color: '#a9b7c6' } },
    yAxis: { type: 'value', axisLabel: { color: '#a9b7c6', formatter: fmt }, splitLine: { lineStyle: { color: '#2a3a4b' } } },
    series: [{ type: 'line', name: label, data: s.points.map((p) => (p.rows || []).find((r) => r.key === key)?.unique_ips || 0), itemStyle: { color: '#f59e0b' } }],
  });
}

async function geoView() {
  const w = $('geo-window').value;
  const [c, a] = await Promise.all([get(`/stats?window=${w}&by=country`), get(`/stats?window=${w}&by=asn`)]);
  const cols = (label) => [[label], [(r) => fmt(r.unique_ips), 'num'], [(r) => fmt(r.baseline_unique_ips), 'num'], [(r) => pct(r.reduction_pct), 'num']];
  fillTable('geo-country', (c.rows || []).filter(known), cols((r) => countryName(r.key)), (r) => drill('country', r.key));
  fillTable('geo-asn', (a.rows || []).filter(known), cols(asLabel), (r) => drill('asn', r.key, r.org));
  const first = (c.rows || []).find(known);
  if (!drillKey && first) {
    $('geo-country').querySelector('tbody tr')?.setAttribute('aria-selected', 'true');
    drillKey = { by: 'country', key: first.key };
  }
  if (drillKey) await drill(drillKey.by, drillKey.key, drillKey.org);
}

// Orders.
async function ordersView() {
  const d = await get('/orders');
  fillTable('orders-table', d.orders, [
    [(o) => o.case], [(o) => o.court], [(o) => o.title || ''],
    [(o) => Object.entries(o.indicators || {}).map(([k, n]) => `${fmt(n)} ${k}`).join(', ') || 'none'],
    [(o) => utc(o.effective)], [(o) => utc(o.expires)],
    [(o) => (o.days_left === undefined ? '–' : fmt(o.days_left)), 'num'],
    [(o) => (o.revoked ? 'revoked' : !o.active && o.days_left === undefined ? 'expired' : o.expiring_within_30_days ? 'expires within 30 days' : o.active ? 'in force' : 'not yet in force')],
  ]);
  for (const tr of $('orders-table').querySelectorAll('tbody tr')) {
    const st = tr.lastChild;
    if (st && st.textContent === 'expires within 30 days') st.innerHTML = '<span class="warn">⚠ expires within 30 days</span>';
  }
}

// Sinkhole health.
let prev = null;
async function healthView() {
  const s = await get('/sinkhole');
  const rate = (k) => {
    if (!prev) return '…';
    const dt = (new Date(s.at) - new Date(prev.at)) / 1000;
    return dt > 0 ? fmt(Math.max(0, Math.round((s[k] - prev[k]) / dt))) : '…';
  };
  $('h-qps').textContent = rate('dns_queries_total');
  $('h-cps').textContent = rate('connections_total');
  $('h-eps').textContent = rate('events_received_total');
  $('h-dropped').textContent = fmt(s.events_dropped_persisted_total);
  $('h-limited').textContent = fmt(s.rate_limited_total);
  $('h-lag').textContent = `${fmt(s.queue_depth_events)} queued`;
  $('h-batch').textContent = `${(s.store_batch_seconds_avg * 1000).toFixed(1)} ms per store batch (average)`;
  $('h-stored').textContent = fmt(s.events_stored_total);
  $('h-reload').textContent = s.last_reload_successful === undefined ? '–' : s.last_reload_successful ? 'succeeded' : 'FAILED';
  fillTable('listeners', s.listeners || [], [[(l) => l.name], [(l) => fmt(l.events_received), 'num'], [(l) => fmt(l.events_stored), 'num'], [(l) => fmt(l.events_dropped), 'num']]);
  $('sc-checks').textContent = fmt(s.selfcheck_checks_total);
  $('sc-positive').textContent = fmt(s.selfcheck_positive_total);
  $('sc-resolver').textContent = fmt(s.selfcheck_resolver_only_total);
  $('sc-refused').textContent = fmt(s.selfcheck_refused_total);
  prev = s;
}

// Notifications.
const networksText = (n) => [...(n.asns || []).map((a) => `AS${a}`), ...(n.prefixes || []), ...(n.countries || [])].join(', ');
function deliveryStatus(d) {
  if (!d) return 'no report yet';
  if (d.state === 'pending') return d.attempts > 0 ? 'retrying' : 'pending';
  if (d.state === 'in_doubt') return 'in doubt';
  return d.state;
}
async function notificationsView() {
  const d = await get('/notifications');
  $('n-schedule').textContent = d.schedule.note ? d.schedule.note : d.schedule.enabled
    ? `Daily reports are sent at ${d.schedule.at} UTC for the previous day; figures below cover ${day(d.from)} to ${day(new Date(new Date(d.to) - 86400000))}.`
    : 'Daily reports are not scheduled on this server (notify.enabled is off); `takedown notify send` sends them by hand.';
  $('n-sent').textContent = fmt(d.counts.sent || 0);
  $('n-pending').textContent = fmt(d.counts.pending || 0);
  $('n-failed').textContent = fmt(d.counts.failed || 0);
  $('n-doubt').textContent = fmt(d.counts.in_doubt || 0);
  $('n-subscribers').textContent = fmt(d.subscribers.length);
  fillTable('notify-table', d.subscribers, [
    [(s) => s.id], [(s) => s.organisation], [(s) => networksText(s.networks || {})], [(s) => (s.formats || []).join(', ')], [(s) => s.tlp],
    [(s) => (s.last ? day(s.last.day) : '–')], [(s) => deliveryStatus(s.last)],
    [(s) => (s.last ? fmt(s.last.rows) : '–'), 'num'], [(s) => (s.last ? fmt(s.last.attempts) : '–'), 'num'],
    [(s) => (s.last && s.last.sent ? utc(s.last.sent) : '–')],
    [(s) => (!s.last ? '' : s.last.state === 'pending' && s.last.next_attempt ? `next attempt ${utc(s.last.next_attempt)}${s.last.last_error ? `; ${s.last.last_error}` : ''}` : s.last.last_error || '')],
  ]);
  const rows = $('notify-table').querySelectorAll('tbody tr');
  d.subscribers.forEach((s, i) => {
    const st = rows[i]?.children[6];
    if (!st) return;
    st.dataset.state = s.last ? s.last.state : 'none';
    if (s.last?.state === 'failed' || s.last?.state === 'in_doubt') {
      const span = document.createElement('span');
      span.className = 'warn';
      span.textContent = `⚠ ${deliveryStatus(s.last)}`;
      st.replaceChildren(span);
    } else if (s.last?.state === 'sent') {
      st.className = 'ok';
    }
  });
}

// Evidence.
async function evidenceView() {
  const h = await get('/health');
  if (!h.evidence_enabled) {
    $('e-origin').textContent = 'The evidence log is not enabled.';
    return;
  }
  try {
    const d = await get('/evidence/checkpoints/latest');
    $('e-origin').textContent = d.checkpoint.origin;
    $('e-size').textContent = fmt(d.checkpoint.size);
    $('e-root').textContent = d.checkpoint.root_hash;
    $('e-fp').textContent = d.key.fingerprint;
    $('e-note').textContent = d.checkpoint.note;
  } catch (e) {
    if (e.code === 'not_configured' || e.code === 'not_found') {
      $('e-origin').textContent = e.code === 'not_configured' ? 'The evidence log is not enabled.' : 'No checkpoint yet.';
      return;
    }
    throw e;
  }
}

const views = { overview: [overview, 30000], geo: [geoView, 30000], orders: [ordersView, 60000], health: [healthView, 5000], notifications: [notificationsView, 30000], evidence: [evidenceView, 60000] };
let timer = null;
let current = null;
let headlineTimer = null;

async function refresh() {
  const [fn] = views[current];
  try {
    await fn();
    showError(null);
    stamp();
    document.body.dataset.loaded = current;
  } catch (e) {
    showError(e);
  }
}

function show(name) {
  if (!views[name]) name = 'overview';
  current = name;
  for (const s of document.querySelectorAll('section[data-view]')) s.hidden = s.dataset.view !== name;
  for (const a of document.querySelectorAll('nav a')) {
    if (a.dataset.view === name) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
  delete document.body.dataset.loaded;
  clearInterval(timer);
  refresh().then(() => Object.values(charts).forEach((c) => c.resize()));
  timer = setInterval(refresh, views[name][1]);
  clearInterval(headlineTimer);
  if (name === 'overview') headlineTimer = setInterval(headline, headlineEvery);
}

window.addEventListener('hashchange', () => show(location.hash.slice(1)));
document.addEventListener('DOMContentLoaded', () => {
  $('geo-window').addEventListener('change', () => geoView().catch(showError));
  $('trend-window').addEventListener('change', () => {
    delete document.body.dataset.trend;
    trend(overview.baseline, overview.orders, overview.now).catch(showError);
  });
  show(location.hash.slice(1));
});
