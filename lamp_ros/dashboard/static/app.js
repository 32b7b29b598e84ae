// lamp_ros dashboard: one WebSocket to the dashboard node (state as JSON, camera frames as binary), plain
// HTTP for the e-stop. No build step, no libraries. The e-stop form works even if this script does not.
'use strict';

const CAMERAS = ['front', 'wrist', 'policy'];            // the server's camera order (binary message byte 0)
const params = new URLSearchParams(location.search);
if (params.get('token')) sessionStorage.setItem('lamp_token', params.get('token'));
const token = sessionStorage.getItem('lamp_token') || '';
const $ = (id) => document.getElementById(id);
let ws = null, state = null, retryMs = 500;
const frameUrls = {};
window.lampDashboard = { frames: { front: 0, wrist: 0, policy: 0 }, latencyMs: {}, connected: false };

function banner(id, text) {
  const el = $(id);
  el.textContent = text || '';
  el.classList.toggle('hidden', !text);
}

function connect() {
  const scheme = location.protocol === 'https:' ? 'wss' : 'ws';
  ws = new WebSocket(`${scheme}://${location.host}/ws` + (token ? `?token=${encodeURIComponent(token)}` : ''));
  ws.binaryType = 'arraybuffer';
  ws.onopen = () => { retryMs = 500; window.lampDashboard.connected = true; banner('banner-connection', ''); };
  ws.onclose = () => {
    window.lampDashboard.connected = false;
    banner('banner-connection', 'Connection to the robot computer lost: reconnecting... ' +
           '(the e-stop button still works while the page loads)');
    setTimeout(connect, retryMs);
    retryMs = Math.min(retryMs * 2, 5000);
  };
  ws.onmessage = (event) => {
    if (typeof event.data === 'string') {
      const message = JSON.parse(event.data);
      if (message.state) { state = message.state; render(state); }
      if (message.reply) showReply(message.reply);
    } else {
      showFrame(event.data);
    }
  };
}

function showFrame(buffer) {
  const view = new DataView(buffer);
  const camera = CAMERAS[view.getUint8(0)];
  const stamp = view.getFloat64(1, true);
  const url = URL.createObjectURL(new Blob([buffer.slice(9)], { type: 'image/jpeg' }));
  const img = $(`cam-${camera}`);
  img.onload = () => { if (frameUrls[camera]) URL.revokeObjectURL(frameUrls[camera]); frameUrls[camera] = url; };
  img.src = url;
  const latency = Date.now() - stamp * 1000;               // capture stamp -> shown (same clock on loopback)
  window.lampDashboard.frames[camera] += 1;
  window.lampDashboard.latencyMs[camera] = latency;
  $(`lat-${camera}`).textContent = `${latency.toFixed(0)} ms`;
}

function send(action, value) {
  if (!ws || ws.readyState !== WebSocket.OPEN) { showReply({ ok: false, message: 'not connected' }); return; }
  ws.send(JSON.stringify({ action, value }));
}

function showReply(reply) {
  $('reply').textContent = reply.message;
  $('reply').className = reply.ok ? '' : 'error';
}

function render(s) {
  banner('banner-graph', s.graph_running ? '' : 'GRAPH NOT RUNNING: no safety status from the robot graph.');
  $('estop').classList.toggle('engaged', s.estop === true);
  $('estop').textContent = s.estop === true ? 'E-STOP ENGAGED' : 'E-STOP';
  const safety = s.safety || {};
  $('summary').textContent = `instruction: ${s.instruction || '-'}\nmode: ${s.mode || '?'}` +
    (s.took_over ? ' (this page has control)' : '');
  $('safety').textContent = `safety: ${safety.state || '?'}  ${(safety.reasons || []).join(', ')}`;
  $('command').textContent = `command m/s: ${(s.command || []).map((v) => v.toFixed(3)).join(', ')}\n` +
    `end effector m: ${s.ee ? s.ee.map((v) => v.toFixed(3)).join(', ') : '-'}`;
  const e = s.episode || {};
  $('episode').textContent = `episode #${e.episode ?? '-'} ${e.state || ''}  step ${e.step ?? '-'}/` +
    `${e.max_steps ?? '-'}  interventions ${e.interventions ?? 0}  success ${e.success ? 'yes' : 'no'}`;
  const l = s.learner || {};
  $('learner').textContent = `policy model: ${(s.policy || {}).model_version || '-'}\n` +
    `learner: ${l.bundle_version || '-'}  updates ${l.updates ?? '-'}  ${l.training || ''}`;
  const history = $('instruction-history');
  history.replaceChildren(...(s.instructions || []).map((t) => Object.assign(document.createElement('option'), { value: t })));
  drawArm(s);
  const episodes = s.episodes || [];
  plot('plot-reward', 'reward per episode', episodes.map((r) => r.reward));
  plot('plot-success', 'success (last 20 episodes)', rolling(episodes.map((r) => (r.success ? 1 : 0)), 20), [0, 1]);
  plot('plot-interventions', 'interventions per episode', episodes.map((r) => r.interventions));
  $('log').textContent = (s.log || []).map((line) => `${line.clock} ${line.text}`).join('\n');
}

function rolling(values, n) {
  return values.map((_, i) => { const w = values.slice(Math.max(0, i - n + 1), i + 1); return w.reduce((a, b) => a + b, 0) / w.length; });
}

function plot(id, title, values, range) {
  const c = $(id), g = c.getContext('2d');
  g.clearRect(0, 0, c.width, c.height);
  g.fillStyle = '#333'; g.font = '11px sans-serif'; g.fillText(`${title}${values.length ? '' : ': none yet'}`, 4, 12);
  if (!values.length) return;
  const lo = range ? range[0] : Math.min(0, ...values), hi = range ? range[1] : Math.max(1e-9, ...values);
  g.strokeStyle = '#1565c0'; g.beginPath();
  values.forEach((v, i) => {
    const x = 4 + (c.width - 8) * (values.length > 1 ? i / (values.length - 1) : 0.5);
    const y = c.height - 4 - (c.height - 22) * (v - lo) / (hi - lo || 1);
    if (i) g.lineTo(x, y); else g.moveTo(x, y);
  });
  g.stroke();
  g.fillText(`${values[values.length - 1].toFixed(2)}  (${lo.toFixed(2)}..${hi.toFixed(2)})`, c.width - 130, 12);
}

function drawArm(s) {
  if (!s.box) return;
  const views = [['view-top', 0, 1, 'top: x up, y left'], ['view-side', 0, 2, 'side: x right, z up']];
  for (const [id, a, b, title] of views) {
    const c = $(id), g = c.getContext('2d');
    const lo = s.box.min, hi = s.box.max, pad = 20;
    const span = Math.max(hi[a] - lo[a], hi[b] - lo[b]);
    const scale = (Math.min(c.width, c.height) - 2 * pad) / span;
    // top view: x forward (up the canvas), y left; side view: x right, z up
    const px = (p) => (id === 'view-top' ? [c.width / 2 - (p[b] - (lo[b] + hi[b]) / 2) * scale, c.height - pad - (p[a] - lo[a]) * scale]
                                         : [pad + (p[a] - lo[a]) * scale, c.height - pad - (p[b] - lo[b]) * scale]);
    g.clearRect(0, 0, c.width, c.height);
    g.fillStyle = '#333'; g.font = '11px sans-serif'; g.fillText(title, 4, 12);
    const corner = (i, j) => { const p = [0, 0, 0]; p[a] = i ? hi[a] : lo[a]; p[b] = j ? hi[b] : lo[b]; return px(p); };
    g.strokeStyle = '#c62828'; g.beginPath();
    [[0, 0], [1, 0], [1, 1], [0, 1], [0, 0]].forEach(([i, j], k) => { const [x, y] = corner(i, j); if (k) g.lineTo(x, y); else g.moveTo(x, y); });
    g.stroke();
    if (!s.ee) continue;
    const [x, y] = px(s.ee);
    g.fillStyle = '#1565c0'; g.beginPath(); g.arc(x, y, 5, 0, 2 * Math.PI); g.fill();
    const cmd = s.command || [0, 0, 0], tip = s.ee.map((v, i) => v + cmd[i] * 0.5);  // 0.5 s of the command
    const [tx, ty] = px(tip);
    g.strokeStyle = '#2e7d32'; g.beginPath(); g.moveTo(x, y); g.lineTo(tx, ty); g.stroke();
  }
}

// The e-stop: fetch when scripts run (no page reload), the form's own POST when they do not.
$('estop-form').addEventListener('submit', (event) => {
  event.preventDefault();
  fetch('/api/estop', { method: 'POST' }).then(() => showReply({ ok: true, message: 'e-stop engaged' }),
    () => $('estop-form').submit());
});
$('release').addEventListener('click', () => send('release'));
$('instruction-form').addEventListener('submit', (event) => {
  event.preventDefault();
  send('instruction', $('instruction').value);
});
document.querySelectorAll('button[data-action]').forEach((b) => b.addEventListener('click', () => send(b.dataset.action, b.dataset.value)));
connect();
