// The page: state in the URL, controls, info panel, formula box, papers, factoids, tooltips, animation.

import {configure, compute, GIB, layerBytesPerToken} from "./formulas.js";
import {drawScene} from "./draw.js";

const DATA = JSON.parse(document.getElementById("kv-data").textContent);
configure(DATA);
const MODELS = Object.fromEntries(DATA.models.map((m) => [m.id, m]));
const GPUS = Object.fromEntries(DATA.gpus.map((g) => [g.id, g]));
const LISTS = {
  batch: [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024],
  context: [1024, 2048, 4096, 8192, 16384, 32768, 65536, 131072, 262144, 1048576],
  tp: [1, 2, 4, 8, 16, 32, 64], kv: Object.keys(DATA.kv_dtypes), w: Object.keys(DATA.weight_dtypes),
  model: Object.keys(MODELS), gpu: Object.keys(GPUS),
};
const DEFAULT = {model: "llama-3.1-8b", gpu: "h100-sxm", batch: 8, context: 8192, tokens: 8192, kv: "bf16",
  w: "bf16", tp: 1, cb: 1, paged: 1, flash: 1, engine: 0};
const $ = (id) => document.getElementById(id);
const shown = new Map();
// Write an element's text or HTML only when it changes (no relayout while playing otherwise).
function put(id, value, html = false) {
  if (shown.get(id) === value) return;
  shown.set(id, value);
  if (html) $(id).innerHTML = value; else $(id).textContent = value;
}
const S = {...DEFAULT};
let result = null, playing = false, speed = 1, regions = [], lastFrame = performance.now();
window.kvFrames = 0; // frame counter, read by the benchmark

function readURL() {
  const q = new URLSearchParams(location.search);
  for (const key of Object.keys(DEFAULT)) {
    if (!q.has(key)) continue;
    const raw = q.get(key), num = Number(raw);
    if (["model", "gpu", "kv", "w"].includes(key)) { if (LISTS[key].includes(raw)) S[key] = raw; }
    else if (["cb", "paged", "flash", "engine"].includes(key)) S[key] = raw === "1" ? 1 : 0;
    else if (Number.isInteger(num) && num >= 0) S[key] = num;
  }
  if (!LISTS.batch.includes(S.batch)) LISTS.batch = [...new Set([...LISTS.batch, S.batch])].sort((a, b) => a - b);
  if (!LISTS.context.includes(S.context)) LISTS.context = [...new Set([...LISTS.context, S.context])].sort((a, b) => a - b);
  S.batch = Math.min(Math.max(S.batch, 1), DATA.limits.batch);
  S.context = Math.min(Math.max(S.context, 1), DATA.limits.context);
  S.tokens = q.has("tokens") ? Math.min(S.tokens, S.context) : S.context;
  if (S.paged) S.cb = 1;
}

function writeURL() {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(S)) q.set(k, String(k === "tokens" ? Math.round(v) : v));
  history.replaceState(null, "", `?${q}`);
}

function options() {
  return {batch: S.batch, context: S.context, tokens: Math.round(S.tokens), kv_dtype: S.kv, weight_dtype: S.w,
    mode: S.paged ? "paged" : S.cb ? "cb" : "static", flash: !!S.flash, tp: S.tp, page: 16,
    free_sliding: true, engine: S.engine ? "vllm" : null, activation_gib: null};
}

const gib = (b) => `${(b / GIB).toLocaleString(undefined, {maximumFractionDigits: b < 10 * GIB ? 2 : 1})} GiB`;
const pct = (x) => `${(100 * x).toFixed(1)} %`;
const int = (x) => Math.round(x).toLocaleString("en-US");

function fillSelect(id, values, label) {
  $(id).innerHTML = values.map((v) => `<option value="${v}">${label(v)}</option>`).join("");
}

function tokensLabel(n) {
  return n >= 1048576 ? `${n / 1048576}M` : n >= 1024 ? `${n / 1024}K` : String(n);
}

function setupControls() {
  fillSelect("batch", LISTS.batch, String);
  fillSelect("context", LISTS.context, tokensLabel);
  fillSelect("tp", LISTS.tp, String);
  fillSelect("kv", LISTS.kv, (k) => DATA.kv_dtypes[k].label);
  fillSelect("w", LISTS.w, (k) => DATA.weight_dtypes[k].label);
  fillSelect("model", LISTS.model, (k) => MODELS[k].name);
  fillSelect("gpu", LISTS.gpu, (k) => GPUS[k].name);
  for (const id of ["batch", "context", "tp"]) $(id).addEventListener("change", (e) => set(id, Number(e.target.value)));
  for (const id of ["kv", "w", "model", "gpu"]) $(id).addEventListener("change", (e) => set(id, e.target.value));
  $("tokens").addEventListener("input", (e) => set("tokens", Number(e.target.value)));
  $("speed").addEventListener("change", (e) => { speed = Number(e.target.value); });
  $("play").addEventListener("click", () => setPlaying(!playing));
  for (const id of ["cb", "paged", "flash", "engine"]) $(id).addEventListener("click", () => toggle(id));
}

function toggle(id) {
  S[id] = S[id] ? 0 : 1;
  if (id === "paged" && S.paged) S.cb = 1;   // paging runs on continuous batching (vLLM)
  if (id === "cb" && !S.cb) S.paged = 0;
  update();
}

function set(key, value) {
  S[key] = value;
  if (key === "context") S.tokens = value;
  update();
}

function setPlaying(on) {
  playing = on;
  $("play").textContent = on ? "Pause" : "Play";
  $("play").setAttribute("aria-pressed", String(on));
  if (on && S.tokens >= S.context) S.tokens = 0;
  if (!on) { S.tokens = Math.round(S.tokens); update(); }
}

function syncControls() {
  const setValue = (el, v) => { if (el.value !== v) el.value = v; };
  for (const id of ["batch", "context", "tp", "kv", "w", "model", "gpu"]) setValue($(id), String(S[id]));
  for (const id of ["cb", "paged", "flash", "engine"]) {
    if ($(id).getAttribute("aria-pressed") !== String(!!S[id])) $(id).setAttribute("aria-pressed", String(!!S[id]));
  }
  const slider = $("tokens");
  setValue(slider, String(Math.round(S.tokens)));
  if (slider.max !== String(S.context)) { slider.max = String(S.context); slider.value = String(Math.round(S.tokens)); }
}

function update() {
  const model = MODELS[S.model], gpu = GPUS[S.gpu];
  result = compute(model, gpu, options());
  syncControls();
  renderInfo(model, gpu, result);
  renderFormula(model, gpu, result);
  renderPapers();
  if (!playing) writeURL();
}

function effClass(x) { return x > 0.8 ? "good" : x >= 0.5 ? "mid" : "bad"; }

function renderInfo(model, gpu, r) {
  const o = r.options, pg = r.per_gpu, fa = r.flash;
  put("v-model", `${model.name} · ${(model.params_total / 1e9).toFixed(model.params_total < 1e10 ? 2 : 1)} B params`);
  const warn = model.native_context && o.context > model.native_context ? ` (above native ${int(model.native_context)})` : "";
  put("v-context", `${int(o.tokens)} / ${int(o.context)} tokens${warn}`);
  put("v-unit", {static: `${int(o.context)} tokens per slot`, cb: `${int(o.context)} tokens per request`,
    paged: `${o.page}-token pages`}[o.mode] + (S.flash ? " + SRAM tiles" : ""));
  put("v-total", `${gib(r.total_bytes)}`);
  const saved = pg.peak_without_flash - pg.peak_with_flash;
  put("v-peak", S.flash
    ? `${gib(pg.peak_with_flash)}<s>${gib(pg.peak_without_flash)}</s><span class="save">-${gib(saved)} (${(100 * saved / pg.peak_without_flash).toFixed(0)} %) with Flash</span>`
    : `${gib(pg.peak_without_flash)}<span class="save">Flash would save ${gib(saved)}</span>`, true);
  put("v-weights", `${gib(r.weights_bytes)} (${DATA.weight_dtypes[o.weight_dtype].label})`);
  put("v-kv", `${gib(r.kv_reserved_bytes)} <span class="band">${gib(r.kv_real_bytes)} hold tokens · ${int(r.kv_bytes_per_token)} B/token</span>`, true);
  put("v-gpus", r.gpus_required ? `${r.gpus_required}${r.gpus_required > 1 ? " (tensor parallel)" : ""}` : "none: no power-of-two TP fits");
  put("v-eff", `<span class="${effClass(r.efficiency)}">${pct(r.efficiency)}</span> now · ${pct(r.run_efficiency)} run<span class="band">paper: 20.4-38.2 % before paging, &gt;96 % paged</span>`, true);
  put("v-occ", `<span class="${pg.occupancy > 1 ? "bad" : ""}">${pct(pg.occupancy)}</span> of ${gib(pg.usable_bytes)} (tp ${o.tp})`, true);
  put("v-done", int(r.requests_done));
  const e = r.engine, box = $("v-engine");
  box.hidden = !e;
  if (e) {
    put("v-engine", [["vLLM available KV", gib(Math.max(0, e.available_kv_bytes))],
      ["KV cache size", `${int(e.kv_tokens)} tokens`], ["blocks", int(e.kv_blocks)],
      ["max concurrency", `${e.max_concurrency.toFixed(2)}x @ ${int(o.context)}`],
      ["activation (estimate)", gib(e.activation_bytes)]].map(([k, v]) => `<div><span>${k}</span><span>${v}</span></div>`).join(""), true);
  }
}

function renderFormula(model, gpu, r) {
  const o = r.options, b = DATA.kv_dtypes[o.kv_dtype], lt = model.layer_types;
  const layers = lt.full + lt.sliding, lb = layerBytesPerToken(model, o.kv_dtype);
  const per = model.mla
    ? `KV/token = layers · (rank + rope) · bytes\n         = ${layers} · (${model.mla.rank} + ${model.mla.rope}) · ${b.bits / 8}`
    : `KV/token = 2 · layers · kv_heads · head_dim · bytes\n         = 2 · ${layers} · ${model.kv_heads} · ${model.head_dim} · ${b.bits / 8}`;
  const scale = b.per === "tensor" ? "" : " (+ scales)";
  const slide = lt.sliding ? `\n${lt.sliding} sliding layers hold min(N, ${int(model.sliding_window)})` : "";
  const fa = r.flash;
  put("v-formula", `${per}${scale}\n         = ${int(layers * lb)} B${slide}
weights  = ${(model.params_total / 1e9).toFixed(2)}e9 · ${DATA.weight_dtypes[o.weight_dtype].bits / 8} B = ${gib(r.weights_bytes)}
η = real / reserved = ${gib(r.kv_real_bytes)} / ${gib(r.kv_reserved_bytes)} = ${pct(r.efficiency)}
scores (no Flash) = B·H·N²·${fa.score_bytes} = ${o.batch}·${Math.ceil(model.q_heads / o.tp)}·${int(o.tokens)}²·${fa.score_bytes} = ${gib(fa.without_flash)}
tok/s ≤ BW / bytes per step = ${int(gpu.bandwidth_gbps)} GB/s / ${(r.decode.bytes_per_step / 1e9).toFixed(2)} GB × ${o.batch} = ${int(r.decode.tokens_per_s)}`);
}

const PAPERS = [
  ["cb", "Orca: continuous batching (Yu et al., OSDI'22)", "https://www.usenix.org/conference/osdi22/presentation/yu"],
  ["paged", "vLLM PagedAttention (Kwon et al., SOSP'23)", "https://arxiv.org/abs/2309.06180"],
  ["flash", "FlashAttention (Dao et al., 2022)", "https://arxiv.org/abs/2205.14135"],
  ["flash", "FlashAttention-2 (Dao, 2023)", "https://arxiv.org/abs/2307.08691"],
];

function renderPapers() {
  const hide = !(S.cb || S.paged || S.flash);
  if ($("papers").hidden !== hide) $("papers").hidden = hide;
  put("v-papers", PAPERS.filter(([k]) => S[k]).map(([, t, u]) => `<li><a href="${u}" target="_blank" rel="noopener noreferrer">${t}</a></li>`).join(""), true);
}

let factIndex = 0;
function factoids() {
  const m = MODELS[S.model], g = GPUS[S.gpu], r = result;
  const f = [`Decode is memory-bound: at most ${int(r.decode.tokens_per_s)} tokens/s for the batch (${r.decode.tokens_per_s_per_seq.toFixed(1)} per sequence) = ${int(g.bandwidth_gbps)} GB/s ÷ bytes read per step.`,
    `One token adds ${int(r.kv_bytes_per_token)} B of KV; one ${int(S.context)}-token sequence holds ${gib(r.kv_bytes_per_token * S.context)} before any window cap.`,
    `${g.name} is sold as ${g.memory_gb} GB; it exposes ${gib(r.per_gpu.usable_bytes)}${g.visible_mib ? ` (${int(g.visible_mib)} MiB in nvidia-smi)` : " (marketed value, not verified)"}.`];
  if (!m.mla && m.kv_heads < m.q_heads) f.push(`GQA: ${m.q_heads} query heads share ${m.kv_heads} kv_heads, a ${m.q_heads / m.kv_heads}x smaller KV cache than multi-head attention.`);
  if (m.params_active < m.params_total) f.push(`MoE: all ${(m.params_total / 1e9).toFixed(0)} B parameters stay resident; only ${(m.params_active / 1e9).toFixed(1)} B are read per token.`);
  return f;
}

function rotateFactoid() {
  const list = factoids();
  put("v-factoid", list[factIndex++ % list.length]);
  const left = $("left"), card = $("factoid");
  card.hidden = false;
  card.hidden = left.scrollHeight > left.clientHeight + 1;
}

function setupTooltips(canvas) {
  const tip = $("tip");
  const show = (text, x, y) => {
    tip.textContent = text; tip.hidden = false;
    tip.style.left = `${Math.min(x + 14, innerWidth - 330)}px`; tip.style.top = `${Math.min(y + 14, innerHeight - 90)}px`;
  };
  document.addEventListener("mousemove", (e) => {
    const el = e.target.closest ? e.target.closest("[data-tip]") : null;
    if (e.target === canvas) {
      const rect = canvas.getBoundingClientRect(), x = e.clientX - rect.left, y = e.clientY - rect.top;
      const hit = regions.filter((r) => x >= r.x && x <= r.x + r.w && y >= r.y && y <= r.y + r.h).pop();
      if (hit) return show(hit.tip, e.clientX, e.clientY);
    } else if (el) return show(el.dataset.tip, e.clientX, e.clientY);
    tip.hidden = true;
  });
}

function paint(now) {
  const canvas = $("view"), dpr = window.devicePixelRatio || 1;
  const w = canvas.clientWidth, h = canvas.clientHeight;
  if (canvas.width !== Math.round(w * dpr) || canvas.height !== Math.round(h * dpr)) {
    canvas.width = Math.round(w * dpr); canvas.height = Math.round(h * dpr);
  }
  const ctx = canvas.getContext("2d");
  ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
  regions = drawScene(ctx, w, h, {model: MODELS[S.model], gpu: GPUS[S.gpu], r: result, opts: result.options,
    flags: {cb: !!S.cb, paged: !!S.paged, flash: !!S.flash}}, now);
  return canvas;
}

function frame(now) {
  const dt = Math.min(0.1, (now - lastFrame) / 1000);
  lastFrame = now;
  if (playing) {
    const before = Math.round(S.tokens);
    S.tokens = Math.min(S.context, S.tokens + dt * speed * S.context / 20);
    if (Math.round(S.tokens) !== before) update();
    if (S.tokens >= S.context) setPlaying(false);
  }
  paint(now);
  window.kvFrames += 1;
  requestAnimationFrame(frame);
}

readURL();
setupControls();
update();
rotateFactoid();
setInterval(rotateFactoid, 6000);
window.addEventListener("resize", rotateFactoid);
setupTooltips($("view"));
// For tests: draw at a fixed animation time and return the pixels as a data URL.
window.kvscope = {state: S, result: () => result, setPlaying, snapshot: (t) => paint(t).toDataURL()};
requestAnimationFrame(frame);
