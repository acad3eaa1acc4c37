// emospec page: upload or record a clip, POST it to /api/v1/predict, draw the result.
// Plain browser JavaScript, no libraries and nothing from the internet.
"use strict";

const API = "/api/v1";
const RECORD_RATE_HZ = 16000;   // recordings are sent as 16-bit mono WAV at this rate
const MAX_RECORD_S = 60;
const TIMELINE_MIN_WINDOWS = 3;  // show the timeline when the clip spans at least this many windows

const LABEL_COLORS = {
  neutral: "#8a94a6", calm: "#3fb6a8", happy: "#f2a93b", sad: "#3a7bd5", angry: "#e0533d",
  fearful: "#8e5cc8", fear: "#8e5cc8", disgust: "#5c9d46", surprised: "#e36fae", surprise: "#e36fae",
};
const FALLBACK_COLORS = ["#4f46e5", "#0ea5a4", "#d97706", "#be185d", "#65a30d", "#7c3aed"];

// Colour maps: anchors (0..255 RGB) interpolated linearly.
const MAGMA = [[0, 0, 4], [28, 16, 68], [79, 18, 123], [129, 37, 129], [181, 54, 122], [229, 80, 100],
  [251, 135, 97], [254, 194, 135], [252, 253, 191]];
const DIVERGING = [[5, 48, 97], [33, 102, 172], [67, 147, 195], [146, 197, 222], [209, 229, 240],
  [247, 247, 247], [253, 219, 199], [244, 165, 130], [214, 96, 77], [178, 24, 43], [103, 0, 31]];
const CHANNEL_TITLES = { static: "Static log-Mel", delta: "Delta", delta2: "Delta-delta" };

const $ = (id) => document.getElementById(id);
const page = { card: null, recorder: null, busy: false, timer: null, playerUrl: null };

function labelColor(label, i) {
  return LABEL_COLORS[label.toLowerCase()] || FALLBACK_COLORS[i % FALLBACK_COLORS.length];
}

function setStatus(text, kind = "") {
  const s = $("status");
  s.textContent = text;
  s.className = "status" + (kind ? " " + kind : "");
}

function setBusy(busy) {
  page.busy = busy;
  $("dropzone").classList.toggle("disabled", busy);
  $("record-btn").disabled = busy && !page.recorder;
}

// ------------------------------------------------------------------ model card
async function loadCard() {
  try {
    const r = await fetch(`${API}/model`);
    page.card = await r.json();
    const c = page.card;
    $("model-info").textContent = `Model ${c.file || "(in memory)"} · ${c.labels.join(", ")} · `
      + `${(c.n_parameters / 1e6).toFixed(1)} M parameters · emospec ${c.emospec_version}`;
    $("limits-hint").textContent = `WAV, FLAC, OGG, MP3, AIFF · up to ${+c.limits.max_upload_mb.toFixed(1)} MB `
      + `and ${c.limits.max_duration_s} s`;
  } catch (e) {
    $("model-info").textContent = "Model card unavailable";
  }
}

// ------------------------------------------------------------------ WAV encoding in the browser
// MediaRecorder gives webm/opus (Chromium) or ogg/mp4, which libsndfile may not read:
// decode with the Web Audio API (resampled to RECORD_RATE_HZ), mix to mono, write 16-bit PCM WAV.
async function toWav(blob, rate = RECORD_RATE_HZ) {
  const ctx = new OfflineAudioContext(1, 1, rate);
  const audio = await ctx.decodeAudioData(await blob.arrayBuffer());
  const n = audio.length, channels = audio.numberOfChannels;
  const mono = new Float32Array(n);
  for (let c = 0; c < channels; c++) {
    const data = audio.getChannelData(c);
    for (let i = 0; i < n; i++) mono[i] += data[i] / channels;
  }
  return new Blob([encodeWav(mono, audio.sampleRate)], { type: "audio/wav" });
}

function encodeWav(samples, rate) {
  const view = new DataView(new ArrayBuffer(44 + samples.length * 2));
  const text = (offset, s) => { for (let i = 0; i < s.length; i++) view.setUint8(offset + i, s.charCodeAt(i)); };
  text(0, "RIFF"); view.setUint32(4, 36 + samples.length * 2, true); text(8, "WAVE");
  text(12, "fmt "); view.setUint32(16, 16, true); view.setUint16(20, 1, true); view.setUint16(22, 1, true);
  view.setUint32(24, rate, true); view.setUint32(28, rate * 2, true); view.setUint16(32, 2, true);
  view.setUint16(34, 16, true); text(36, "data"); view.setUint32(40, samples.length * 2, true);
  for (let i = 0; i < samples.length; i++) {
    const v = Math.max(-1, Math.min(1, samples[i]));
    view.setInt16(44 + i * 2, v < 0 ? v * 0x8000 : v * 0x7fff, true);
  }
  return view.buffer;
}

// ------------------------------------------------------------------ analysis
async function post(blob, name) {
  const form = new FormData();
  form.append("file", blob, name);
  const r = await fetch(`${API}/predict?timeline=1&features=1`, { method: "POST", body: form });
  let body;
  try { body = await r.json(); } catch (e) { body = { error: `HTTP ${r.status}`, detail: r.statusText }; }
  return { status: r.status, ok: r.ok, body };
}

async function analyse(blob, name) {
  if (page.busy) return;
  const limitMb = page.card ? page.card.limits.max_upload_mb : Infinity;
  if (blob.size > limitMb * 1048576) {
    setStatus(`${name} is ${(blob.size / 1048576).toFixed(1)} MB; the limit is ${limitMb} MB.`, "error");
    return;
  }
  showPlayer(blob);
  setBusy(true);
  setStatus(`Analysing ${name}…`, "busy");
  try {
    let res = await post(blob, name);
    if (res.status === 415) {
      // Not a format libsndfile reads (e.g. webm, m4a): let the browser decode it and send WAV.
      let wav = null;
      try { wav = await toWav(blob); } catch (e) { /* the browser cannot decode it either */ }
      if (wav) {
        setStatus(`Converting ${name} to WAV in the browser…`, "busy");
        res = await post(wav, name.replace(/\.[^.]*$/, "") + ".wav");
      }
    }
    if (!res.ok) {
      setStatus(`Could not analyse ${name}: ${res.body.error}${res.body.detail ? " — " + res.body.detail : ""}`, "error");
      return;
    }
    render(res.body, name);
    setStatus(`Analysed ${name}.`);
  } catch (e) {
    setStatus(`Request failed: ${e.message}`, "error");
  } finally {
    setBusy(false);
  }
}

function showPlayer(blob) {
  if (page.playerUrl) URL.revokeObjectURL(page.playerUrl);
  page.playerUrl = URL.createObjectURL(blob);
  $("player").src = page.playerUrl;
  $("player").hidden = false;
}

// ------------------------------------------------------------------ drawing
function render(result, name) {
  $("result").hidden = false;
  // silence is not an emotion: a silent clip comes back with label null and no scores, so no bars
  $("label").textContent = result.silent ? "silent — no emotion" : result.label;
  $("label").classList.toggle("silent", Boolean(result.silent));
  $("meta").textContent = `${result.duration_s.toFixed(2)} s · ${name}`;
  $("silent-warning").hidden = !result.silent;
  renderBars(result);
  if (result.features) renderSpectrogram(result.features);
  renderTimeline(result.timeline, result.timeline ? result.timeline.labels : []);
}

function renderBars(result) {
  const bars = $("bars");
  bars.replaceChildren();
  bars.hidden = Boolean(result.silent);
  if (result.silent) return;
  Object.keys(result.scores).forEach((label, i) => {
    const p = result.scores[label];
    const row = document.createElement("div");
    row.className = "bar-row" + (label === result.label ? " best" : "");
    row.dataset.label = label;
    row.dataset.score = String(p);
    const name = document.createElement("span");
    name.className = "bar-name";
    name.textContent = label;
    const track = document.createElement("div");
    track.className = "bar-track";
    track.setAttribute("role", "meter");
    track.setAttribute("aria-label", label);
    track.setAttribute("aria-valuemin", "0");
    track.setAttribute("aria-valuemax", "1");
    track.setAttribute("aria-valuenow", String(p));
    const fill = document.createElement("div");
    fill.className = "bar-fill";
    fill.style.width = `${(100 * p).toFixed(3)}%`;
    fill.style.background = labelColor(label, i);
    track.append(fill);
    const value = document.createElement("span");
    value.className = "bar-value";
    value.textContent = `${(100 * p).toFixed(1)}%`;
    row.append(name, track, value);
    bars.append(row);
  });
}

function colormap(anchors) {
  const lut = new Uint8ClampedArray(256 * 3);
  for (let q = 0; q < 256; q++) {
    const x = (q / 255) * (anchors.length - 1), i = Math.min(Math.floor(x), anchors.length - 2), t = x - i;
    for (let k = 0; k < 3; k++) lut[q * 3 + k] = anchors[i][k] * (1 - t) + anchors[i + 1][k] * t;
  }
  return lut;
}

function paint(canvas, width, height, lut, valueAt) {
  canvas.width = width;
  canvas.height = height;
  const ctx = canvas.getContext("2d");
  const img = ctx.createImageData(width, height);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const q = valueAt(x, y), o = (y * width + x) * 4;
      img.data[o] = lut[q * 3]; img.data[o + 1] = lut[q * 3 + 1]; img.data[o + 2] = lut[q * 3 + 2]; img.data[o + 3] = 255;
    }
  }
  ctx.putImageData(img, 0, 0);
}

function renderSpectrogram(f) {
  const host = $("spectrogram");
  host.replaceChildren();
  const fmt = (v) => (Math.abs(v) >= 10 ? v.toFixed(0) : v.toFixed(1));
  for (const ch of f.channels) {
    const bytes = Uint8Array.from(atob(ch.data), (c) => c.charCodeAt(0));
    const lut = colormap(ch.name === "static" ? MAGMA : DIVERGING);
    const panel = document.createElement("figure");
    panel.className = "panel";
    panel.dataset.channel = ch.name;
    const head = document.createElement("div");
    head.className = "panel-head";
    const title = document.createElement("b");
    title.textContent = CHANNEL_TITLES[ch.name] || ch.name;
    const range = document.createElement("span");
    range.className = "muted";
    range.textContent = `${fmt(ch.lo)} … ${fmt(ch.hi)} ${ch.unit}`;
    head.append(title, range);
    const body = document.createElement("div");
    body.className = "panel-body";
    const image = document.createElement("canvas");
    image.className = "image";
    // row 0 of the data is the lowest mel band: draw it at the bottom
    paint(image, f.frames, f.n_mels, lut, (x, y) => bytes[(f.n_mels - 1 - y) * f.frames + x]);
    const scale = document.createElement("canvas");
    scale.className = "scale";
    paint(scale, 1, 128, lut, (x, y) => Math.round(255 * (1 - y / 127)));
    body.append(image, scale);
    const axis = document.createElement("div");
    axis.className = "axis";
    for (let k = 0; k <= 4; k++) {
      const t = document.createElement("span");
      t.textContent = `${((k / 4) * f.duration_s).toFixed(1)} s`;
      axis.append(t);
    }
    panel.append(head, body, axis);
    host.append(panel);
  }
  $("spectrogram-card").hidden = false;
}

function renderTimeline(tl, labels) {
  const card = $("timeline-card");
  if (!tl || tl.windows.length < TIMELINE_MIN_WINDOWS) { card.hidden = true; return; }
  card.hidden = false;
  $("timeline-hint").textContent = `${tl.windows.length} windows of ${tl.window_s} s every ${tl.hop_s} s `
    + `over ${tl.duration_s.toFixed(1)} s; each point is one window's probabilities, the strip on top its label.`;
  const canvas = $("timeline");
  canvas.dataset.windows = String(tl.windows.length);
  const dpr = window.devicePixelRatio || 1, w = canvas.clientWidth, h = canvas.clientHeight;
  canvas.width = Math.round(w * dpr);
  canvas.height = Math.round(h * dpr);
  const ctx = canvas.getContext("2d");
  ctx.scale(dpr, dpr);
  const left = 34, right = 10, top = 22, bottom = 24, pw = w - left - right, ph = h - top - bottom;
  const tMax = tl.duration_s, xOf = (t) => left + (t / tMax) * pw, yOf = (p) => top + (1 - p) * ph;
  ctx.font = "11px system-ui, sans-serif";
  ctx.fillStyle = "#687083";
  ctx.strokeStyle = "#e3e6ed";
  ctx.lineWidth = 1;
  for (const p of [0, 0.25, 0.5, 0.75, 1]) {
    ctx.beginPath(); ctx.moveTo(left, yOf(p)); ctx.lineTo(left + pw, yOf(p)); ctx.stroke();
    ctx.fillText(p.toFixed(2), 2, yOf(p) + 4);
  }
  const step = Math.max(1, Math.ceil(tMax / 8));
  for (let t = 0; t <= tMax + 1e-9; t += step) ctx.fillText(`${t} s`, xOf(t) - 8, h - 6);
  tl.windows.forEach((win, k) => {  // the label strip: each window's label until the next window starts
    ctx.fillStyle = labelColor(win.label, labels.indexOf(win.label));
    const next = tl.windows[k + 1], x0 = Math.round(xOf(win.start_s)), x1 = Math.round(xOf(next ? next.start_s : win.end_s));
    ctx.fillRect(x0, 4, Math.max(1, x1 - x0), 10);
  });
  labels.forEach((label, i) => {
    ctx.strokeStyle = labelColor(label, i);
    ctx.lineWidth = 2;
    ctx.beginPath();
    tl.windows.forEach((win, k) => {
      const x = xOf((win.start_s + win.end_s) / 2), y = yOf(win.scores[label]);
      if (k === 0) ctx.moveTo(x, y); else ctx.lineTo(x, y);
    });
    ctx.stroke();
  });
  const legend = $("timeline-legend");
  legend.replaceChildren(...labels.map((label, i) => {
    const s = document.createElement("span");
    s.textContent = label;
    s.style.setProperty("--swatch", labelColor(label, i));
    return s;
  }));
}

// ------------------------------------------------------------------ input: file and drag-and-drop
function pickFile(file) {
  if (file) analyse(file, file.name || "upload");
}

function setupDropzone() {
  const dz = $("dropzone"), input = $("file-input");
  dz.addEventListener("click", () => { if (!page.busy) input.click(); });
  dz.addEventListener("keydown", (e) => { if ((e.key === "Enter" || e.key === " ") && !page.busy) { e.preventDefault(); input.click(); } });
  input.addEventListener("change", () => { pickFile(input.files[0]); input.value = ""; });
  for (const ev of ["dragenter", "dragover"]) {
    dz.addEventListener(ev, (e) => { e.preventDefault(); dz.classList.add("over"); });
  }
  for (const ev of ["dragleave", "drop"]) {
    dz.addEventListener(ev, (e) => { e.preventDefault(); dz.classList.remove("over"); });
  }
  dz.addEventListener("drop", (e) => pickFile(e.dataTransfer.files[0]));
  // a file dropped next to the zone must not make the browser navigate away
  window.addEventListener("dragover", (e) => e.preventDefault());
  window.addEventListener("drop", (e) => e.preventDefault());
}

// ------------------------------------------------------------------ input: microphone
async function toggleRecording() {
  if (page.recorder) { page.recorder.stop(); return; }
  if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia || !window.MediaRecorder) {
    setStatus("This browser cannot record audio here (it needs https or localhost).", "error");
    return;
  }
  let stream;
  try {
    stream = await navigator.mediaDevices.getUserMedia({ audio: true });
  } catch (e) {
    setStatus(`Microphone unavailable: ${e.message || e.name}`, "error");
    return;
  }
  const recorder = new MediaRecorder(stream), chunks = [], started = performance.now();
  recorder.ondataavailable = (e) => { if (e.data.size) chunks.push(e.data); };
  recorder.onstop = async () => {
    stream.getTracks().forEach((t) => t.stop());
    clearInterval(page.timer);
    page.recorder = null;
    $("record-btn").classList.remove("recording");
    $("record-label").textContent = "Record from microphone";
    $("record-time").hidden = true;
    const blob = new Blob(chunks, { type: recorder.mimeType || "audio/webm" });
    let wav;
    try {
      setStatus("Encoding the recording as WAV…", "busy");
      wav = await toWav(blob);
    } catch (e) {
      setStatus(`Could not decode the recording: ${e.message || e.name}`, "error");
      return;
    }
    analyse(wav, "recording.wav");
  };
  page.recorder = recorder;
  recorder.start(250);
  $("record-btn").classList.add("recording");
  $("record-label").textContent = "Stop";
  $("record-time").hidden = false;
  setStatus("Recording… press Stop when done.");
  const limit = Math.min(MAX_RECORD_S, page.card ? page.card.limits.max_duration_s : MAX_RECORD_S);
  page.timer = setInterval(() => {
    const s = (performance.now() - started) / 1000;
    $("record-time").textContent = `${Math.floor(s / 60)}:${String(Math.floor(s % 60)).padStart(2, "0")}`;
    if (s >= limit && recorder.state === "recording") recorder.stop();
  }, 200);
}

document.addEventListener("DOMContentLoaded", () => {
  setupDropzone();
  $("record-btn").addEventListener("click", toggleRecording);
  loadCard();
});
