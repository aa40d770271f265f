// The page of `pixelrnn serve`: a drawing at the model's size, and the model's answers.
// The drawing is kept as 8-bit values (H*W*C, row by row, channels last) and a region mask
// (H*W, 1 = fill in); the canvas only shows them, enlarged. Model work is a job on the server:
// the page submits it, then polls /api/jobs/ID until it is over, showing its progress.
"use strict";

const $ = (id) => document.getElementById(id);
let M = null;            // the model, from /api/model
let pix = null;          // Float32Array, H*W*C values in 0..255
let mask = null;         // Uint8Array, H*W: 1 = part of the painted region
let cell = 11;           // canvas pixels per image pixel
let stroke = null;       // {last: {x, y}} while a pointer draws
let inspectTimer = null;
let inspectTicket = 0;

function showMessage(text) {
  const box = $("message");
  box.textContent = text || "";
  box.hidden = !text;
}

async function api(path, body) {
  const init = body === undefined ? {} : {
    method: "POST", headers: {"Content-Type": "application/json"}, body: JSON.stringify(body)};
  let response;
  try {
    response = await fetch(path, init);
  } catch (e) {
    throw new Error("the server does not answer (is pixelrnn serve still running?)");
  }
  const data = await response.json().catch(() => ({error: `HTTP ${response.status}`}));
  if (!response.ok) throw new Error(data.error || `HTTP ${response.status}`);
  return data;
}

// Submit a job and poll it; `show(job)` sees every state. Resolves with the result, or null
// when a newer request replaced it.
async function runJob(path, body, show) {
  let job = await api(path, body);
  while (job.status === "queued" || job.status === "running") {
    show(job);
    job = await api(`/api/jobs/${job.id}?wait=0.25`);
  }
  show(job);
  if (job.status === "cancelled") return null;
  if (job.status !== "done") throw new Error(job.error || job.status);
  return job.result;
}

// A job's progress, shown in the element `${name}-status` (and a bar before it, for generations).
function progressShower(name, withBar = true) {
  const status = $(`${name}-status`);
  let bar = $(`${name}-progress`);
  if (!bar && withBar) {
    bar = document.createElement("progress");
    bar.id = `${name}-progress`;
    bar.max = 1;
    status.before(bar);
  }
  return (job) => {
    const running = job.status === "queued" || job.status === "running";
    if (bar) {
      bar.classList.toggle("busy", running);
      bar.value = job.progress || 0;
    }
    if (job.status === "queued") status.textContent = "waiting for the model…";
    else if (running) status.textContent = `${Math.round(100 * (job.progress || 0))} %`;
    else if (job.status === "done") status.textContent = `${job.seconds.toFixed(2)} s`;
    else status.textContent = "";
  };
}

// -- the drawing ----------------------------------------------------------------------------
function unknownAt(i, j) {
  const region = $("region").value;
  if (region === "bottom") return i >= Math.floor(M.height / 2);
  if (region === "right") return j >= Math.floor(M.width / 2);
  return mask[i * M.width + j] === 1;
}

// An 8-bit value as the model sees it: quantized to its levels (v * levels // 256), shown again
// in 8 bits (a 2-level model sees black or white).
function seen(v) {
  const q = Math.floor(Math.round(v) * M.levels / 256);
  return Math.round(q * 255 / (M.levels - 1));
}

function render() {
  const ctx = $("canvas").getContext("2d");
  const C = M.channels;
  for (let i = 0; i < M.height; i++) {
    for (let j = 0; j < M.width; j++) {
      const k = (i * M.width + j) * C;
      const [r, g, b] = C === 1 ? [seen(pix[k]), seen(pix[k]), seen(pix[k])]
        : [seen(pix[k]), seen(pix[k + 1]), seen(pix[k + 2])];
      ctx.fillStyle = `rgb(${r},${g},${b})`;
      ctx.fillRect(j * cell, i * cell, cell, cell);
      if (unknownAt(i, j)) {
        ctx.fillStyle = "rgba(235, 64, 52, 0.28)";
        ctx.fillRect(j * cell, i * cell, cell, cell);
      }
    }
  }
}

function brushColour() {
  if (M.channels === 1) return [255];
  const hex = $("colour").value;
  return [1, 3, 5].map((o) => parseInt(hex.slice(o, o + 2), 16));
}

function stamp(p) {
  const r = parseFloat($("brush").value), tool = document.querySelector("input[name=tool]:checked").value;
  const colour = brushColour(), C = M.channels;
  for (let i = Math.floor(p.y - r - 1); i <= Math.ceil(p.y + r + 1); i++) {
    for (let j = Math.floor(p.x - r - 1); j <= Math.ceil(p.x + r + 1); j++) {
      if (i < 0 || j < 0 || i >= M.height || j >= M.width) continue;
      const cover = Math.min(1, Math.max(0, r + 0.5 - Math.hypot(j + 0.5 - p.x, i + 0.5 - p.y)));
      if (cover <= 0) continue;
      if (tool === "region") {
        if (cover > 0.3) mask[i * M.width + j] = 1;
        continue;
      }
      for (let c = 0; c < C; c++) {
        const k = (i * M.width + j) * C + c;
        if (tool === "erase") pix[k] *= 1 - cover;
        else if (C === 1) pix[k] = Math.max(pix[k], 255 * cover);
        else pix[k] += (colour[c] - pix[k]) * cover;
      }
    }
  }
}

function pointerAt(e) {
  const rect = $("canvas").getBoundingClientRect();
  return {x: (e.clientX - rect.left) / rect.width * M.width, y: (e.clientY - rect.top) / rect.height * M.height};
}

function drawTo(p) {
  const last = stroke.last, steps = Math.max(1, Math.ceil(Math.hypot(p.x - last.x, p.y - last.y) / 0.25));
  for (let s = 1; s <= steps; s++) {
    stamp({x: last.x + (p.x - last.x) * s / steps, y: last.y + (p.y - last.y) * s / steps});
  }
  stroke.last = p;
  render();
}

function setupCanvas() {
  const canvas = $("canvas");
  cell = Math.max(2, Math.floor(308 / Math.max(M.height, M.width)));
  canvas.width = M.width * cell;
  canvas.height = M.height * cell;
  canvas.style.width = `${canvas.width}px`;
  canvas.style.height = `${canvas.height}px`;
  canvas.addEventListener("pointerdown", (e) => {
    e.preventDefault();
    canvas.setPointerCapture(e.pointerId);
    const p = pointerAt(e);
    stroke = {last: p};
    stamp(p);
    render();
  });
  canvas.addEventListener("pointermove", (e) => { if (stroke) drawTo(pointerAt(e)); });
  const end = () => {
    if (!stroke) return;
    stroke = null;
    if (document.querySelector("input[name=tool]:checked").value !== "region") scheduleInspect();
  };
  canvas.addEventListener("pointerup", end);
  canvas.addEventListener("pointercancel", end);
}

function setPixels(values) {
  pix = Float32Array.from(values);
  render();
  scheduleInspect();
}

function drawingValues() {
  return Array.from(pix, (v) => Math.max(0, Math.min(255, Math.round(v))));
}

// -- inspect ---------------------------------------------------------------------------------
function scheduleInspect() {
  clearTimeout(inspectTimer);
  inspectTimer = setTimeout(inspect, 250);
}

async function inspect() {
  const ticket = ++inspectTicket;
  try {
    const result = await runJob("/api/inspect", {pixels: drawingValues()}, progressShower("inspect", false));
    if (result && ticket === inspectTicket) showInspection(result);
  } catch (e) {
    showMessage(`Inspect: ${e.message}`);
  }
}

function showInspection(r) {
  const bits = $("bits");
  bits.textContent = `${r.bits_per_dim.toFixed(3)} bits/dim `;
  const small = document.createElement("small");
  small.textContent = `NLL ${r.nll_nats.toFixed(1)} nats`;
  bits.appendChild(small);
  $("heatmap").src = r.heatmap;
  $("heatmap-caption").textContent =
    `drawing · surprise −log p per pixel (0 to ${r.heatmap_max_nats.toFixed(2)} nats, inferno)`;
  const raw = M.height * M.width * M.channels * Math.log2(M.levels) / 8;
  const rows = [["PNG", r.png_bytes, "optimized, 8 bits per value"],
                ["this model", r.model_bytes, r.model_bytes === null ? "range coder not installed"
                  : `${r.model_payload_bytes} B code + .prnn header`],
                ["no model", Math.ceil(raw), `${+Math.log2(M.levels).toFixed(2)} bit${M.levels > 2 ? "s" : ""} per value`]];
  const table = $("sizes");
  table.replaceChildren(...rows.map(([what, bytes, note]) => {
    const tr = document.createElement("tr");
    for (const text of [what, bytes === null ? "–" : `${bytes} B`, note]) {
      const td = document.createElement("td");
      td.textContent = text;
      tr.appendChild(td);
    }
    return tr;
  }));
  if (r.classes) showClasses(r.classes);
}

function showClasses(classes) {
  const best = Math.max(...classes.map((c) => c.p));
  const box = $("classes");
  box.replaceChildren();
  for (const c of classes) {
    const name = document.createElement("span");
    name.textContent = c.name;
    const bar = document.createElement("div");
    bar.className = c.p === best ? "bar top" : "bar";
    const fill = document.createElement("div");
    fill.style.width = `${(100 * c.p).toFixed(1)}%`;
    bar.appendChild(fill);
    const p = document.createElement("span");
    p.className = "p";
    p.textContent = `${(100 * c.p).toFixed(1)} %`;
    box.append(name, bar, p);
  }
}

// -- complete and sample ---------------------------------------------------------------------
function showImages(box, images) {
  box.replaceChildren(...images.map((im, k) => {
    const img = document.createElement("img");
    img.src = im.png;
    img.alt = `image ${k + 1}`;
    img.title = "click to draw on this image";
    img.addEventListener("click", () => setPixels(im.pixels));
    return img;
  }));
}

function numberOf(id) {
  return parseFloat($(id).value);
}

function labelOf(id) {
  const v = $(id).value;
  return v === "" ? null : parseInt(v, 10);
}

async function generate(name, path, body, box) {
  const button = $(name);
  button.disabled = true;
  showMessage("");
  try {
    const result = await runJob(path, body, progressShower(name));
    if (result) showImages($(box), result.images);
    if (result && result.particles !== undefined) {
      $(`${name}-status`).textContent += ` · ${result.particles} particle${result.particles > 1 ? "s" : ""}` +
        (result.particles === 1 && numberOf("particles") > 1 ? " (exact: nothing known follows the gap)" : "");
    }
  } catch (e) {
    showMessage(`${name[0].toUpperCase()}${name.slice(1)}: ${e.message}`);
    progressShower(name)({status: "error"});
  } finally {
    button.disabled = false;
  }
}

function complete() {
  const body = {pixels: drawingValues(), region: $("region").value, n: numberOf("n-complete"),
                particles: numberOf("particles"), temperature: numberOf("t-complete"),
                label: labelOf("label-complete")};
  if (body.region === "painted") body.mask = Array.from(mask);
  return generate("complete", "/api/complete", body, "completions");
}

function sample() {
  return generate("sample", "/api/sample", {n: numberOf("n-sample"), temperature: numberOf("t-sample"),
                                            label: labelOf("label-sample")}, "samples");
}

// -- uploads and buttons ---------------------------------------------------------------------
function upload(file) {
  if (!file) return;
  const reader = new FileReader();
  reader.onload = async () => {
    try {
      const result = await api("/api/decode", {data_url: reader.result});
      showMessage("");
      setPixels(result.pixels);
    } catch (e) {
      showMessage(`Upload of ${file.name}: ${e.message}`);
    }
  };
  reader.onerror = () => showMessage(`Upload of ${file.name}: the file cannot be read`);
  reader.readAsDataURL(file);
  $("upload").value = "";
}

function fillLabels(id, none) {
  const select = $(id);
  select.replaceChildren(new Option(none, ""), ...M.class_names.map((n, k) => new Option(n, String(k))));
}

function describeModel() {
  $("model-name").textContent = M.name;
  const facts = [M.title, M.architecture, `${M.height}×${M.width}${M.channels === 3 ? " RGB" : ""}, ${M.levels} levels`];
  if (M.classes) facts.push(`${M.classes} classes`);
  if (M.test) facts.push(`test NLL ${M.test.bits_per_dim.toFixed(4)} bits/dim (${M.test.nll_nats.toFixed(1)} nats)`);
  $("model-facts").textContent = facts.filter(Boolean).join(" · ");
  document.title = `pixelrnn · ${M.name}`;
  if (M.classes) {
    fillLabels("label-complete", "infer from the drawing");
    fillLabels("label-sample", "any (from the prior)");
    for (const el of document.querySelectorAll(".conditional")) el.hidden = false;
    $("classes-box").hidden = false;
  }
  $("colour").hidden = M.channels !== 3;
}

async function start() {
  try {
    M = await api("/api/model");
  } catch (e) {
    showMessage(`Cannot load the model: ${e.message}`);
    return;
  }
  pix = new Float32Array(M.height * M.width * M.channels);
  mask = new Uint8Array(M.height * M.width);
  describeModel();
  setupCanvas();
  render();
  $("clear").addEventListener("click", () => setPixels(new Float32Array(pix.length)));
  $("invert").addEventListener("click", () => setPixels(pix.map((v) => 255 - v)));
  $("clear-region").addEventListener("click", () => { mask.fill(0); render(); });
  $("region").addEventListener("change", render);
  for (const radio of document.querySelectorAll("input[name=tool]")) {
    radio.addEventListener("change", () => {
      if (radio.checked && radio.value === "region") { $("region").value = "painted"; render(); }
    });
  }
  $("upload").addEventListener("change", (e) => upload(e.target.files[0]));
  $("complete").addEventListener("click", complete);
  $("sample").addEventListener("click", sample);
  inspect();
}

start();
