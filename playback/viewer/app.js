// Tributary viewer: the stream list, a live/replay player (hls.js, or Safari's
// native HLS) and a timeline of the archived footage with clip export. Plain
// ES module, no build step; the server embeds this directory.

const $ = (id) => document.getElementById(id);
const TOKEN_KEY = 'tributary.token';
const SESSION_TTL = 3600; // seconds a signed session lasts
const RENEW_BEFORE = 10 * 60 * 1000; // renew a session this long before it expires
const LIVE_EDGE = 5000; // a click closer than this to now plays live
const MIN_CLIP = 1000;

const state = {
  token: null,
  streams: [],
  wanted: null, // stream named in the address bar
  selected: null,
  session: null, // {stream, exp (ms), query}
  renewing: null, // {stream, promise} of a session request in flight
  hls: null,
  gen: 0, // bumped by every play(), so a slow start never outlives a newer one
  retry: 0, // timer of a scheduled player restart
  mode: 'live', // live | replay | range
  from: 0, // replay/range start (ms)
  to: 0, // range end (ms)
  minutes: 60, // timeline range
  spans: [], // [{start, end, fragments}] in ms
  results: [], // inference results [{start, end, model, score}]
  sensor: null, // the linked sensor's readings: {name, points: [{t, v}], numeric: [keys], flags: [keys]}
  dead: [], // dead letters [{start, end, model, error}]
  selection: null, // {start, end} in ms
  anchor: null, // first shift-click (ms)
  hover: null, // x of the pointer over the timeline
  drag: null, // {x0, t0, moved}
};

// ---- small helpers ----

const iso = (ms) => new Date(ms).toISOString();
const enc = encodeURIComponent;

function clock(ms, withDate) {
  const d = new Date(ms);
  const t = d.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit', second: '2-digit', hour12: false });
  if (!withDate && new Date().toDateString() === d.toDateString()) return t;
  return d.toLocaleDateString([], { month: 'short', day: 'numeric' }) + ' ' + t;
}

function ago(ms) {
  const s = Math.max(0, Math.round((Date.now() - ms) / 1000));
  if (s < 2) return 'just now';
  if (s < 90) return s + ' s ago';
  if (s < 90 * 60) return Math.round(s / 60) + ' min ago';
  if (s < 36 * 3600) return Math.round(s / 3600) + ' h ago';
  return Math.round(s / 86400) + ' d ago';
}

function span(ms) {
  const s = Math.round(ms / 1000);
  if (s < 60) return s + ' s';
  if (s < 3600) return Math.floor(s / 60) + ' min ' + (s % 60) + ' s';
  return Math.floor(s / 3600) + ' h ' + Math.floor((s % 3600) / 60) + ' min';
}

function el(tag, className, text) {
  const e = document.createElement(tag);
  if (className) e.className = className;
  if (text !== undefined) e.textContent = text; // never innerHTML: names come from cameras
  return e;
}

function setStatus(text, isError) {
  const s = $('status');
  s.textContent = text || '';
  s.classList.toggle('error', !!isError);
}

// ---- auth and API ----

function loadToken() {
  const h = new URLSearchParams(location.hash.slice(1));
  const t = h.get('token');
  try {
    if (t) localStorage.setItem(TOKEN_KEY, t);
    state.token = t || localStorage.getItem(TOKEN_KEY) || null;
  } catch (e) {
    state.token = t || null; // storage disabled
  }
  state.wanted = h.get('stream');
  if (t) {
    h.delete('token'); // keep it out of the address bar and history
    const rest = h.toString();
    history.replaceState(null, '', location.pathname + location.search + (rest ? '#' + rest : ''));
  }
  $('signout').hidden = !state.token;
}

function askToken(message) {
  const d = $('auth');
  $('auth-error').textContent = message || '';
  if (!d.open) d.showModal();
}

class APIError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

async function api(path, options = {}) {
  const headers = {};
  if (state.token) headers.Authorization = 'Bearer ' + state.token;
  const res = await fetch(path, { ...options, headers });
  if (res.status === 401) {
    askToken(state.token ? 'That token was not accepted.' : '');
    throw new APIError(401, 'unauthorized', 'a token is required');
  }
  const body = await res.json().catch(() => null);
  if (!res.ok) {
    const e = (body && body.error) || {};
    throw new APIError(res.status, e.code || 'http_' + res.status, e.message || res.statusText);
  }
  return body;
}

// A signed session lets hls.js, <video> and download links fetch without headers.
async function ensureSession() {
  const name = state.selected;
  const s = state.session;
  if (s && s.stream === name && s.exp - Date.now() > RENEW_BEFORE) return s;
  if (state.renewing && state.renewing.stream === name) return state.renewing.promise;
  const promise = (async () => {
    let sess;
    try {
      const b = await api(`/v1/streams/${enc(name)}/session?ttl=${SESSION_TTL}`, { method: 'POST' });
      sess = { stream: name, query: b.query || '', exp: b.query ? b.exp * 1000 : Infinity };
    } catch (e) {
      if (e.status !== 501) throw e;
      sess = { stream: name, query: '', exp: Infinity }; // no signing key: send the token as a header
    }
    if (state.selected === name) {
      state.session = sess;
      renderSelection(); // the download link carries the signature
    }
    return sess;
  })();
  state.renewing = { stream: name, promise };
  try {
    return await promise;
  } finally {
    if (state.renewing && state.renewing.promise === promise) state.renewing = null;
  }
}

// signed puts the current session's signature on a URL (replacing an older one).
function signed(url) {
  const s = state.session;
  if (!s || !s.query) return url;
  const u = new URL(url, location.href);
  for (const [k, v] of new URLSearchParams(s.query)) u.searchParams.set(k, v);
  return u.toString();
}

function streamURL(path, params) {
  const u = new URL(`/v1/streams/${enc(state.selected)}/${path}`, location.href);
  for (const [k, v] of Object.entries(params)) u.searchParams.set(k, v);
  return signed(u.toString());
}

// ---- stream list ----

function describe(s) {
  const parts = (s.tracks || []).map((t) =>
    t.kind === 'video' && t.width ? `${t.codec} ${t.width}×${t.height}` : t.codec);
  return parts.join(' · ') || s.container || '';
}

// unplayable returns the stream's video codecs this browser cannot decode
// (H.265 outside Safari and a few platforms, say), or "".
function unplayable(s) {
  const video = /^(avc|hvc|hev|av01|vp0|vp8|vp9|dvh)/;
  const check = (c) => {
    const type = `video/mp4; codecs="${c}"`;
    if (window.MediaSource && MediaSource.isTypeSupported) return MediaSource.isTypeSupported(type);
    return document.createElement('video').canPlayType(type) !== '';
  };
  return (s.codecs || '').split(',').filter((c) => video.test(c) && !check(c)).join(', ');
}

function lastSeen(s) {
  const f = s.last_fragment;
  return f ? 'last fragment ' + ago(Date.parse(f.producer_end)) : 'no footage yet';
}

// setState shows an agent state; "" means the stream is served from the archive alone.
function setState(badge, st) {
  badge.className = 'state ' + (st || 'archived');
  badge.textContent = st || 'archived';
  badge.title = st ? 'the agent reports: ' + st : 'served from the archive (no agent on this server)';
}

async function refreshStreams() {
  try {
    const body = await api('/v1/streams');
    state.streams = body.streams || [];
    setStatus('');
  } catch (e) {
    if (e.status !== 401) setStatus('Cannot load streams: ' + e.message, true);
    return;
  }
  renderStreams();
  if (!state.selected && state.streams.length) {
    const want = state.streams.find((s) => s.name === state.wanted) ||
      state.streams.find((s) => s.last_fragment && !unplayable(s)) || state.streams[0];
    selectStream(want.name);
  }
}

const rows = new Map(); // stream name → its list elements, updated in place

function renderStreams() {
  const list = $('streams');
  state.streams.forEach((s, i) => {
    let r = rows.get(s.name);
    if (!r) {
      r = { li: el('li'), button: el('button', 'stream'), badge: el('span'), desc: el('span', 'meta'), age: el('span', 'meta') };
      r.button.type = 'button';
      const row = el('span', 'row');
      row.append(el('span', 'name', s.name), r.badge);
      r.button.append(row, r.desc, r.age);
      r.button.addEventListener('click', () => selectStream(s.name));
      r.li.append(r.button);
      rows.set(s.name, r);
    }
    setState(r.badge, s.state);
    r.desc.textContent = describe(s) + (unplayable(s) ? ' · not playable here' : '');
    r.age.textContent = lastSeen(s);
    r.button.setAttribute('aria-current', String(s.name === state.selected));
    if (list.children[i] !== r.li) list.insertBefore(r.li, list.children[i] || null);
  });
  const names = new Set(state.streams.map((s) => s.name));
  for (const [name, r] of rows) {
    if (!names.has(name)) {
      r.li.remove();
      rows.delete(name);
    }
  }
  $('streams-empty').hidden = state.streams.length > 0;
  $('stream-count').textContent = state.streams.length ? String(state.streams.length) : '';
  const cur = state.streams.find((s) => s.name === state.selected);
  if (cur) {
    setState($('title-state'), cur.state);
    $('title-info').textContent = describe(cur);
  }
}

async function selectStream(name) {
  if (state.selected === name) return;
  stopPlayer();
  Object.assign(state, { selected: name, session: null, spans: [], results: [], dead: [], sensor: null, selection: null, anchor: null });
  $('sensor-wrap').hidden = true;
  history.replaceState(null, '', location.pathname + location.search + '#stream=' + enc(name));
  $('placeholder').hidden = true;
  $('viewer').hidden = false;
  $('title').textContent = name;
  document.title = name + ' · Tributary';
  renderStreams();
  renderSelection();
  loadTimeline();
  play('live');
}

// ---- player ----

function stopPlayer() {
  clearTimeout(state.retry);
  if (state.hls) state.hls.destroy();
  state.hls = null;
  const v = $('video');
  v.removeAttribute('src');
  v.load();
}

function playerMessage(text) {
  $('player-msg').textContent = text || '';
  $('player-msg').hidden = !text;
}

// restart plays again after an error: live stays live, a replay resumes where it was.
function restart(delay) {
  clearTimeout(state.retry);
  const at = playingDate();
  state.retry = setTimeout(() => {
    if (state.mode === 'live') play('live');
    else play(state.mode, at || state.from, state.to);
  }, delay);
}

async function play(mode, from, to) {
  const name = state.selected;
  const gen = ++state.gen;
  stopPlayer();
  Object.assign(state, { mode, from: from || 0, to: to || 0 });
  playerMessage('');
  renderMode();
  try {
    await ensureSession();
  } catch (e) {
  if (gen === state.gen) playerMessage('Cannot open a playback session: ' + e.message);
    return;
  }
  if (gen !== state.gen) return; // superseded by another play() or stream
  stopPlayer();
  const params = { mode: 'live' };
  if (mode === 'replay') Object.assign(params, { mode: 'live_replay', start: iso(from) });
  if (mode === 'range') Object.assign(params, { mode: 'on_demand', start: iso(from), end: iso(to) });
  const src = streamURL('hls/master.m3u8', params);
  const video = $('video');
  const cur = state.streams.find((s) => s.name === name);
  const missing = cur ? unplayable(cur) : '';
  if (missing) {
    playerMessage(`This browser cannot decode ${missing}. Safari plays H.265; the timeline and clip downloads work anyway.`);
    return;
  }

  if (window.Hls && Hls.isSupported()) {
    const hls = new Hls({
      lowLatencyMode: true,
      backBufferLength: 90,
      // a replay playlist grows like a live one: start at its beginning, not its live edge
      startPosition: mode === 'live' ? -1 : 0,
      // every request gets the current signature, so a session renewed
      // during a long watch keeps working
      xhrSetup(xhr, url) {
        xhr.open('GET', signed(url), true);
        if (!(state.session && state.session.query) && state.token) xhr.setRequestHeader('Authorization', 'Bearer ' + state.token);
      },
    });
    let mediaRecoveries = 0;
    hls.on(Hls.Events.MANIFEST_PARSED, () => video.play().catch(() => {}));
    hls.on(Hls.Events.FRAG_BUFFERED, () => playerMessage(''));
    hls.on(Hls.Events.ERROR, (_, d) => {
      if (!d.fatal || state.hls !== hls) return;
      if (d.type === Hls.ErrorTypes.MEDIA_ERROR && mediaRecoveries++ < 2) {
        hls.recoverMediaError();
        return;
      }
      const code = d.response && d.response.code;
      if (code === 404 && d.details === 'manifestLoadError') playerMessage('No footage to play yet; retrying…');
      else playerMessage(`Playback stopped (${d.details}${code ? ', HTTP ' + code : ''}); retrying…`);
      if (code === 403) state.session = null; // signature expired: get a new one
      restart(3000);
    });
    hls.loadSource(src);
    hls.attachMedia(video);
    state.hls = hls;
  } else if (video.canPlayType('application/vnd.apple.mpegurl')) {
    video.src = src; // Safari: native HLS; the playlists carry the signature
    video.play().catch(() => {});
  } else {
    playerMessage('This browser cannot play HLS (no Media Source Extensions).');
  }
}

$('video').addEventListener('error', () => {
  if (state.hls || !$('video').getAttribute('src')) return; // hls.js reports its own
  playerMessage('Playback stopped; retrying…');
  state.session = null;
  restart(3000);
});

// playingDate is the wall-clock time of the picture on screen (ms), or null.
function playingDate() {
  if (state.hls) {
    const d = state.hls.playingDate;
    return d && !isNaN(d.getTime()) ? d.getTime() : null;
  }
  const v = $('video');
  if (v.getStartDate) {
    const s = v.getStartDate().getTime();
    if (!isNaN(s)) return s + v.currentTime * 1000;
  }
  return null;
}

function renderMode() {
  const at = playingDate();
  const badge = $('badge');
  const lat = $('latency');
  const behind = at ? Date.now() - at : null;
  if (state.mode === 'live') {
    badge.textContent = 'LIVE';
    badge.className = 'badge live';
    lat.textContent = behind !== null ? (behind / 1000).toFixed(1) + ' s behind live' : '';
  } else {
    badge.textContent = state.mode === 'range' ? 'CLIP' : 'REPLAY';
    badge.className = 'badge';
    lat.textContent = at ? clock(at) : '';
  }
  $('golive').hidden = state.mode === 'live' && (behind === null || behind < 30000);
  let pos = '';
  if (state.mode === 'replay') pos = 'Replaying from ' + clock(state.from) + ', then following live';
  if (state.mode === 'range') pos = 'Playing ' + clock(state.from) + ' – ' + clock(state.to);
  if (at && state.mode !== 'live') pos += ' · showing ' + clock(at) + ' (' + ago(at) + ')';
  $('position').textContent = pos;
}

$('golive').addEventListener('click', () => play('live'));

// ---- timeline ----

const BAR_Y = 10;
const BAR_H = 26;
const colors = {};

function view() {
  const range = state.minutes * 60 * 1000;
  const now = Date.now();
  return { start: now - range, end: now + range * 0.025 }; // room to see the now marker
}

function timeAt(x) {
  const c = $('timeline');
  const v = view();
  const t = v.start + (x / c.clientWidth) * (v.end - v.start);
  return Math.min(Math.max(t, v.start), Date.now());
}

function spanAt(t) {
  return state.spans.find((s) => t >= s.start && t <= s.end);
}

function tickStep(rangeMS) {
  const min = 60 * 1000;
  for (const m of [1, 2, 5, 10, 15, 30, 60, 120, 180, 360]) {
    if (rangeMS / (m * min) <= 8) return m * min;
  }
  return 720 * min;
}

const rangeText = () => (state.minutes < 60 ? state.minutes + ' min' : state.minutes / 60 + ' h');

async function loadTimeline() {
  const name = state.selected;
  if (!name) return;
  const end = Date.now();
  const start = end - state.minutes * 60 * 1000;
  try {
    const b = await api(`/v1/streams/${enc(name)}/timeline?start=${enc(iso(start))}&end=${enc(iso(end))}`);
    if (state.selected !== name) return;
    state.spans = (b.spans || []).map((s) => ({ start: Date.parse(s.start), end: Date.parse(s.end), fragments: s.fragments }));
    const total = state.spans.reduce((n, s) => n + (s.end - s.start), 0);
    $('timeline-msg').textContent = state.spans.length
      ? `${span(total)} of footage in ${state.spans.length} span${state.spans.length > 1 ? 's' : ''} over the last ${rangeText()}`
      : `No footage in the last ${rangeText()}`;
  } catch (e) {
    if (state.selected === name && e.status !== 401) $('timeline-msg').textContent = 'Cannot load the timeline: ' + e.message;
  }
  await loadResults(name, start, end);
  await loadSensor(name, start, end);
  drawTimeline();
}

// The readings of a sensor stream linked to this camera (stream.json's
// link), thinned to about one per pixel, for the chart under the timeline.
async function loadSensor(name, start, end) {
  const linked = state.streams.find((s) => s.link === name);
  if (!linked) {
    state.sensor = null;
    $('sensor-wrap').hidden = true;
    return;
  }
  const w = Math.max(200, $('timeline').clientWidth || 800);
  const step = Math.max(1, Math.floor((end - start) / w));
  try {
    const headers = state.token ? { Authorization: 'Bearer ' + state.token } : {};
    const res = await fetch(`/v1/streams/${enc(linked.name)}/samples?start=${enc(iso(start))}&end=${enc(iso(end))}&step=${step}ms&limit=20000`, { headers });
    if (!res.ok) throw new Error(res.status + ' ' + res.statusText);
    const text = await res.text();
    if (state.selected !== name) return;
    const points = [];
    for (const line of text.split('\n')) {
      if (!line) continue;
      try {
        const r = JSON.parse(line);
        points.push({ t: Date.parse(r.time), v: r.value });
      } catch (e) { /* skip a bad line */ }
    }
    points.sort((a, b) => a.t - b.t); // late readings come in fragments of their own
    const first = points.find((p) => p.v && typeof p.v === 'object');
    const keys = first ? Object.keys(first.v) : [];
    const numeric = keys.filter((k) => typeof first.v[k] === 'number' && !/^(ts|time|timestamp)$/i.test(k)).slice(0, 3);
    const flags = keys.filter((k) => typeof first.v[k] === 'boolean').slice(0, 2);
    state.sensor = { name: linked.name, points, numeric, flags };
    $('sensor-wrap').hidden = false;
    $('sensor-msg').textContent = points.length
      ? `${linked.name}: ${numeric.concat(flags).join(', ') || 'readings'} · ${points.length} points`
      : `${linked.name}: no readings in the last ${rangeText()}`;
  } catch (e) {
    state.sensor = null;
    $('sensor-wrap').hidden = false;
    $('sensor-msg').textContent = `Cannot load ${linked.name}'s readings: ${e.message}`;
  }
}

const seriesColors = ['#4dabf7', '#ffa94d', '#b197fc'];

// canvasFor sizes a canvas to its box at the screen's pixel ratio, clears
// it, and gives its 2D context, size and the timeline's time → x mapping.
function canvasFor(c) {
  const dpr = window.devicePixelRatio || 1;
  const w = c.clientWidth;
  const h = c.clientHeight;
  if (c.width !== Math.round(w * dpr) || c.height !== Math.round(h * dpr)) {
    c.width = Math.round(w * dpr);
    c.height = Math.round(h * dpr);
  }
  const g = c.getContext('2d');
  g.setTransform(dpr, 0, 0, dpr, 0, 0);
  g.clearRect(0, 0, w, h);
  const v = view();
  return { g, w, h, v, x: (t) => ((t - v.start) / (v.end - v.start)) * w };
}

// drawSensor draws the linked sensor's readings on the timeline's time
// axis: numbers as lines (each scaled to its own range), booleans as
// bands, and the playhead where the video is.
function drawSensor() {
  const c = $('sensor-chart');
  const sd = state.sensor;
  if (!sd || c.clientWidth === 0) return;
  const { g, w, h, v, x } = canvasFor(c);
  const pts = sd.points;
  // booleans: a band while true
  sd.flags.forEach((k, i) => {
    g.fillStyle = i === 0 ? 'rgba(255, 107, 107, 0.28)' : 'rgba(105, 219, 124, 0.28)';
    for (let j = 0; j < pts.length; j++) {
      if (!pts[j].v || pts[j].v[k] !== true) continue;
      const x0 = x(pts[j].t);
      const x1 = j + 1 < pts.length ? x(pts[j + 1].t) : x0 + 2;
      g.fillRect(x0, 0, Math.max(1, x1 - x0), h);
    }
  });
  // numbers: a line each, scaled to its range, with the range written
  g.font = '11px system-ui, sans-serif';
  g.textBaseline = 'top';
  sd.numeric.forEach((k, i) => {
    const vals = pts.filter((p) => p.v && typeof p.v[k] === 'number');
    if (vals.length === 0) return;
    let lo = Infinity;
    let hi = -Infinity;
    for (const p of vals) {
      lo = Math.min(lo, p.v[k]);
      hi = Math.max(hi, p.v[k]);
    }
    const pad = hi === lo ? 1 : (hi - lo) * 0.1;
    const y = (val) => h - 4 - ((val - lo + pad) / (hi - lo + 2 * pad)) * (h - 8);
    g.strokeStyle = seriesColors[i % seriesColors.length];
    g.lineWidth = 1.5;
    g.beginPath();
    vals.forEach((p, j) => (j === 0 ? g.moveTo(x(p.t), y(p.v[k])) : g.lineTo(x(p.t), y(p.v[k]))));
    g.stroke();
    g.fillStyle = g.strokeStyle;
    g.textAlign = 'left';
    g.fillText(`${k} ${+lo.toFixed(2)}–${+hi.toFixed(2)}`, 6 + i * 150, 4);
  });
  // where the video is, and its reading
  const at = playingDate();
  if (at && at >= v.start) {
    const px = Math.round(x(at));
    g.fillStyle = '#ffd43b';
    g.fillRect(px - 1, 0, 2, h);
    let near = null;
    for (const p of pts) {
      if (p.t <= at) near = p;
      else break;
    }
    if (near && near.v && typeof near.v === 'object') {
      const label = sd.numeric.concat(sd.flags).map((k) => `${k} ${near.v[k]}`).join('  ');
      g.fillStyle = colors.text || '#fff';
      g.textAlign = px > w - 160 ? 'right' : 'left';
      g.textBaseline = 'bottom';
      g.fillText(label, px + (px > w - 160 ? -6 : 6), h - 4);
    }
  }
}

// Inference results of the range: a strip along the bottom of the bar,
// coloured by the answer's activity (or score) from green (0) to red (1);
// dead letters in red along the top.
async function loadResults(name, start, end) {
  const q = `start=${enc(iso(start))}&end=${enc(iso(end))}&limit=10000`;
  try {
    const [r, d] = await Promise.all([
      api(`/v1/streams/${enc(name)}/results?${q}`),
      api(`/v1/streams/${enc(name)}/deadletters?${q}`),
    ]);
    if (state.selected !== name) return;
    const score = (o) => (o && typeof o.activity === 'number' ? o.activity : o && typeof o.score === 'number' ? o.score : null);
    state.results = (r.results || []).map((x) => ({
      start: Date.parse(x.producer_start), end: Date.parse(x.producer_end), model: x.model, score: score(x.output),
    }));
    state.dead = (d.deadletters || []).map((x) => ({
      start: Date.parse(x.producer_start), end: Date.parse(x.producer_end), model: x.model, error: x.error,
    }));
    if (state.results.length || state.dead.length) {
      const models = [...new Set(state.results.map((x) => x.model))].join(', ');
      $('timeline-msg').textContent += ` · ${state.results.length} inference result${state.results.length === 1 ? '' : 's'}` +
        (models ? ` (${models})` : '') + (state.dead.length ? `, ${state.dead.length} failed` : '');
    }
  } catch (e) {
    state.results = [];
    state.dead = [];
  }
}

function resultAt(t) {
  return (state.results || []).find((r) => t >= r.start && t < r.end) || (state.dead || []).find((r) => t >= r.start && t < r.end);
}

function drawTimeline() {
  const c = $('timeline');
  if (!state.selected || c.clientWidth === 0) return;
  drawSensor();
  if (!colors.span) {
    const cs = getComputedStyle(document.documentElement);
    for (const k of ['span', 'track', 'now', 'muted', 'line', 'accent', 'text']) colors[k] = cs.getPropertyValue('--' + k).trim();
  }
  const { g, w, h, v, x } = canvasFor(c);

  // the track (empty = no footage), then the spans over it
  g.fillStyle = colors.track;
  g.fillRect(0, BAR_Y, w, BAR_H);
  g.fillStyle = colors.span;
  for (const s of state.spans) {
    const x0 = Math.max(0, x(s.start));
    const x1 = Math.min(w, x(s.end));
    if (x1 >= 0 && x0 <= w) g.fillRect(x0, BAR_Y, Math.max(1.5, x1 - x0), BAR_H);
  }

  // inference results and dead letters
  for (const r of state.results || []) {
    const x0 = Math.max(0, x(r.start));
    const x1 = Math.min(w, x(r.end));
    if (x1 < 0 || x0 > w) continue;
    g.fillStyle = r.score === null ? colors.accent : `hsl(${Math.round(120 - 120 * Math.min(1, Math.max(0, r.score)))}, 75%, 50%)`;
    g.fillRect(x0, BAR_Y + BAR_H - 6, Math.max(1.5, x1 - x0 - 0.5), 6);
  }
  g.fillStyle = '#e03131';
  for (const r of state.dead || []) {
    const x0 = Math.max(0, x(r.start));
    const x1 = Math.min(w, x(r.end));
    if (x1 >= 0 && x0 <= w) g.fillRect(x0, BAR_Y, Math.max(1.5, x1 - x0), 4);
  }

  // ticks on local-time boundaries
  const nx = Math.round(x(Date.now()));
  const step = tickStep(v.end - v.start);
  const tz = new Date(v.start).getTimezoneOffset() * 60000;
  g.font = '11px system-ui, sans-serif';
  g.textAlign = 'center';
  g.textBaseline = 'alphabetic';
  for (let t = Math.ceil((v.start - tz) / step) * step + tz; t < v.end; t += step) {
    const tx = Math.round(x(t)) + 0.5;
    g.fillStyle = colors.line;
    g.fillRect(tx, BAR_Y + BAR_H, 1, 5);
    if (tx > 18 && tx < nx - 40) {
      g.fillStyle = colors.muted;
      const d = new Date(t);
      g.fillText(String(d.getHours()).padStart(2, '0') + ':' + String(d.getMinutes()).padStart(2, '0'), tx, h - 6);
    }
  }

  // the selection, or the first point of a shift-click selection
  const sel = state.selection;
  if (sel) {
    g.fillStyle = 'rgba(255, 255, 255, 0.22)';
    g.fillRect(x(sel.start), BAR_Y - 4, Math.max(2, x(sel.end) - x(sel.start)), BAR_H + 8);
    g.fillStyle = colors.text;
    g.fillRect(Math.round(x(sel.start)), BAR_Y - 4, 2, BAR_H + 8);
    g.fillRect(Math.round(x(sel.end)) - 2, BAR_Y - 4, 2, BAR_H + 8);
  }
  if (state.anchor !== null) {
    g.fillStyle = colors.text;
    g.fillRect(Math.round(x(state.anchor)) - 1, BAR_Y - 4, 2, BAR_H + 8);
  }

  // what is on screen now
  const at = playingDate();
  if (at && at >= v.start) {
    const px = Math.round(x(at));
    g.fillStyle = '#ffd43b';
    g.fillRect(px - 1, BAR_Y - 4, 2, BAR_H + 8);
    g.beginPath();
    g.moveTo(px - 5, BAR_Y - 8);
    g.lineTo(px + 5, BAR_Y - 8);
    g.lineTo(px, BAR_Y - 3);
    g.fill();
  }

  // now
  g.fillStyle = colors.now;
  g.fillRect(nx - 1, 2, 2, BAR_H + 14);
  g.textAlign = 'right';
  g.fillText('now', nx + 8, h - 6);

  if (state.hover !== null) {
    g.fillStyle = 'rgba(255, 255, 255, 0.6)';
    g.fillRect(Math.round(state.hover), BAR_Y, 1, BAR_H);
  }
}

function showTip(px) {
  const t = timeAt(px);
  const tip = $('tip');
  let text = clock(t, state.minutes > 360);
  if (!spanAt(t)) text += ' · no footage';
  const r = resultAt(t);
  if (r) text += r.error ? ` · ${r.model} failed` : r.score !== null ? ` · ${r.model} ${r.score.toFixed(2)}` : ` · ${r.model} result`;
  if (state.drag && state.drag.moved) text = clock(Math.min(state.drag.t0, t)) + ' – ' + clock(Math.max(state.drag.t0, t)) + ' (' + span(Math.abs(t - state.drag.t0)) + ')';
  tip.textContent = text;
  tip.style.left = Math.min(Math.max(px, 60), $('timeline').clientWidth - 60) + 'px';
  tip.hidden = false;
}

function setSelection(a, b) {
  const start = Math.min(a, b);
  const end = Math.max(a, b);
  state.selection = end - start >= MIN_CLIP ? { start, end } : null;
  renderSelection();
}

function renderSelection() {
  const sel = state.selection;
  $('selection').hidden = !sel;
  if (!sel) return;
  $('sel-text').textContent = `${clock(sel.start, state.minutes > 360)} – ${clock(sel.end, state.minutes > 360)} · ${span(sel.end - sel.start)}`;
  const a = $('download');
  a.href = streamURL('clip.mp4', { start: iso(sel.start), end: iso(sel.end) });
  const stamp = iso(sel.start).replace(/[-:]/g, '').replace(/\.\d+Z$/, 'Z');
  a.setAttribute('download', `${state.selected}-${stamp}.mp4`.replace(/[^A-Za-z0-9_.-]/g, '_'));
}

// playFrom plays from a clicked time; a click in a gap starts at the next footage.
function playFrom(t) {
  if (Date.now() - t < LIVE_EDGE) return play('live');
  if (!spanAt(t)) {
    const next = state.spans.find((s) => s.start > t);
    if (!next) return play('live');
    t = next.start;
  }
  play('replay', t);
}

const canvas = $('timeline');
canvas.addEventListener('pointerdown', (e) => {
  if (e.button !== 0) return;
  canvas.setPointerCapture(e.pointerId);
  state.drag = { x0: e.offsetX, t0: timeAt(e.offsetX), moved: false };
});
canvas.addEventListener('pointermove', (e) => {
  state.hover = e.offsetX;
  const d = state.drag;
  if (d && (d.moved || Math.abs(e.offsetX - d.x0) > 4)) {
    d.moved = true;
    state.anchor = null;
    setSelection(d.t0, timeAt(e.offsetX));
  }
  showTip(e.offsetX);
  drawTimeline();
});
canvas.addEventListener('pointerup', (e) => {
  const d = state.drag;
  state.drag = null;
  if (!d) return;
  const t = timeAt(e.offsetX);
  if (d.moved) {
    setSelection(d.t0, t);
  } else if (e.shiftKey) {
    if (state.anchor === null) {
      state.anchor = t;
      setSelection(t, t);
    } else {
      setSelection(state.anchor, t);
      state.anchor = null;
    }
  } else {
    state.anchor = null;
    playFrom(t);
  }
  drawTimeline();
});
canvas.addEventListener('pointerleave', () => {
  state.hover = null;
  $('tip').hidden = true;
  drawTimeline();
});
canvas.addEventListener('pointercancel', () => { state.drag = null; });

for (const b of document.querySelectorAll('.ranges button')) {
  b.addEventListener('click', () => {
    state.minutes = Number(b.dataset.minutes);
    for (const o of document.querySelectorAll('.ranges button')) o.setAttribute('aria-pressed', String(o === b));
    loadTimeline();
  });
}
$('sel-clear').addEventListener('click', () => {
  state.selection = null;
  state.anchor = null;
  renderSelection();
  drawTimeline();
});
$('sel-play').addEventListener('click', () => {
  if (state.selection) play('range', state.selection.start, state.selection.end);
});

// ---- wiring ----

$('auth-form').addEventListener('submit', () => {
  const t = $('token-input').value.trim();
  state.token = t;
  try {
    localStorage.setItem(TOKEN_KEY, t);
  } catch (e) { /* storage disabled: keep it for this page */ }
  $('signout').hidden = false;
  $('token-input').value = '';
  const name = state.selected;
  state.selected = null;
  refreshStreams();
  if (name) selectStream(name);
});
$('signout').addEventListener('click', () => {
  try {
    localStorage.removeItem(TOKEN_KEY);
  } catch (e) { /* nothing stored */ }
  state.token = null;
  location.reload();
});
window.addEventListener('hashchange', () => {
  const name = new URLSearchParams(location.hash.slice(1)).get('stream');
  if (name && name !== state.selected) selectStream(name);
});
window.addEventListener('resize', drawTimeline);

let ticks = 0;
setInterval(() => {
  ticks++;
  renderMode();
  drawTimeline();
  if (document.hidden || $('auth').open) return;
  if (ticks % 10 === 0) {
    refreshStreams();
    loadTimeline();
  } else if (ticks % 2 === 0) {
    renderStreams(); // ages
  }
  const s = state.session;
  if (s && s.exp - Date.now() < RENEW_BEFORE) ensureSession().catch(() => {});
}, 500);

// ---- publishing the browser's camera (WHIP) ----

const pub = { pc: null, media: null, location: null, token: null };

function pubStatus(text, isError) {
  $('pub-status').textContent = text;
  $('pub-status').classList.toggle('error', !!isError);
}

async function startPublish() {
  const name = $('pub-name').value.trim();
  if (!$('pub-name').checkValidity()) {
    pubStatus('A stream name is letters, digits, "_", "." and "-".', true);
    return;
  }
  $('pub-start').disabled = true;
  try {
    if (!navigator.mediaDevices) throw new Error('the camera needs a secure page (https or localhost)');
    pubStatus('Asking for the camera…');
    pub.media = await navigator.mediaDevices.getUserMedia({ video: { width: 1280, height: 720, frameRate: 30 }, audio: true });
    $('pub-preview').srcObject = pub.media;
    const pc = new RTCPeerConnection();
    pub.pc = pc;
    const want = $('pub-codec').value.toLowerCase();
    for (const track of pub.media.getTracks()) {
      const tr = pc.addTransceiver(track, { direction: 'sendonly' });
      if (track.kind === 'video' && tr.setCodecPreferences) {
        const all = RTCRtpSender.getCapabilities('video').codecs;
        const pick = all.filter((c) => c.mimeType.toLowerCase() === 'video/' + want);
        if (pick.length === 0) throw new Error('this browser cannot send ' + want.toUpperCase());
        // RTX stays: retransmissions, and padding off the media stream
        tr.setCodecPreferences(pick.concat(all.filter((c) => c.mimeType.toLowerCase() === 'video/rtx')));
      }
    }
    pc.onconnectionstatechange = () => {
      if (pc !== pub.pc) return;
      if (pc.connectionState === 'connected') pubStatus(`Publishing to "${name}". It appears in the list once its first fragment is archived.`);
      if (pc.connectionState === 'failed') pubStatus('The connection failed (a firewall between this browser and the agent?).', true);
    };
    await pc.setLocalDescription(await pc.createOffer());
    await new Promise((resolve) => {
      if (pc.iceGatheringState === 'complete') return resolve();
      pc.onicegatheringstatechange = () => pc.iceGatheringState === 'complete' && resolve();
      setTimeout(resolve, 2000);
    });
    pubStatus('Connecting…');
    const headers = { 'Content-Type': 'application/sdp' };
    pub.token = $('pub-token').value.trim() || state.token;
    if (pub.token) headers.Authorization = 'Bearer ' + pub.token;
    const res = await fetch(`/v1/streams/${enc(name)}/whip`, { method: 'POST', headers, body: pc.localDescription.sdp });
    const body = await res.text();
    if (res.status === 401) throw new Error('this token may not publish: enter a push token (putmedia.tokens) above');
    if (res.status !== 201) throw new Error(`the agent answered ${res.status}: ${body.trim()}`);
    pub.location = res.headers.get('Location');
    await pc.setRemoteDescription({ type: 'answer', sdp: body });
    $('pub-stop').disabled = false;
  } catch (e) {
    pubStatus('Could not publish: ' + e.message, true);
    await stopPublish(true);
  }
}

async function stopPublish(keepStatus) {
  const { pc, media, location: loc } = pub;
  pub.pc = pub.media = pub.location = null;
  if (loc) {
    const headers = pub.token ? { Authorization: 'Bearer ' + pub.token } : {};
    await fetch(loc, { method: 'DELETE', headers }).catch(() => {});
  }
  if (pc) pc.close();
  if (media) media.getTracks().forEach((t) => t.stop());
  $('pub-preview').srcObject = null;
  $('pub-start').disabled = false;
  $('pub-stop').disabled = true;
  if (!keepStatus) pubStatus('Stopped.');
  refreshStreams();
}

$('publish-open').addEventListener('click', () => $('publish').showModal());
$('pub-start').addEventListener('click', startPublish);
$('pub-stop').addEventListener('click', () => stopPublish(false));
$('pub-close').addEventListener('click', () => $('publish').close());
window.addEventListener('pagehide', () => {
  if (pub.location) fetch(pub.location, { method: 'DELETE', keepalive: true, headers: pub.token ? { Authorization: 'Bearer ' + pub.token } : {} });
});

loadToken();
refreshStreams();
{
  // #publish=<stream>[&codec=VP8] opens the publish dialog, filled in;
  // the camera starts only on a click of Start
  const h = new URLSearchParams(location.hash.slice(1));
  if (h.get('publish')) {
    $('pub-name').value = h.get('publish');
    if (h.get('codec')) $('pub-codec').value = h.get('codec').toUpperCase();
    $('publish').showModal();
  }
}
