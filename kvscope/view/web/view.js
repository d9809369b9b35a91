// kvscope view: a captured cache and what each eviction strategy keeps, or a bench run's answers.
// Data: the JSON element #kv-data written by kvscope/view/export.py (encodings in its module doc).
// Every text from the data reaches the DOM through textContent or new Option(): never parsed as HTML.

const DATA = JSON.parse(document.getElementById("kv-data").textContent);
const $ = (id) => document.getElementById(id);
const int = (x) => Math.round(x).toLocaleString("en-US");
window.kvFrames = 0;

function bytesOf(b64) {
  const raw = atob(b64), out = new Uint8Array(raw.length);
  for (let i = 0; i < raw.length; i++) out[i] = raw.charCodeAt(i);
  return out;
}
function fmtBytes(b) {
  const units = ["B", "KiB", "MiB", "GiB"];
  let i = 0;
  while (b >= 1024 && i < units.length - 1) { b /= 1024; i++; }
  return `${b.toLocaleString("en-US", {maximumFractionDigits: i ? 2 : 0})} ${units[i]}`;
}
const shownText = new Map();
// Set an element's text only when it changes (an unchanged write still costs a layout).
function put(id, text) {
  if (shownText.get(id) === text) return;
  shownText.set(id, text);
  $(id).textContent = text;
}
function fill(select, items) { // items: [value, text]
  select.replaceChildren(...items.map(([v, t]) => new Option(t, String(v))));
}
function tipOn(el, textOf) {
  const tip = $("tip");
  el.addEventListener("mousemove", (e) => {
    const text = textOf(e.target, e);
    if (text === null) { tip.hidden = true; return; }
    tip.textContent = text;
    tip.hidden = false;
    tip.style.left = `${Math.min(e.clientX + 14, innerWidth - 370)}px`;
    tip.style.top = `${e.clientY + 14}px`;
  });
  el.addEventListener("mouseleave", () => { tip.hidden = true; });
}

// ----------------------------------------------------------------------------- snapshot: data
const N = DATA.n || 0, L = DATA.model ? DATA.model.layers : 0, H = DATA.model ? DATA.model.kv_heads : 0;
const ROWS = L * H;
const STRATS = (DATA.strategies || []).map((s) => ({...s,
  untilBytes: s.until ? bytesOf(s.until) : null,
  flipCells: (s.flips || []).map((f) => (f ? new Uint32Array(bytesOf(f).buffer) : new Uint32Array(0)))}));
const QUANT = {};
for (const [name, q] of Object.entries(DATA.quantities || {})) QUANT[name] = {...q, codes: bytesOf(q.codes)};

// Kept state of every cell (row-major [layer, kv_head, position]) at slider stop g: 1 = kept.
function keptCells(s, g) {
  const out = new Uint8Array(ROWS * N), until = s.untilBytes;
  for (let r = 0; r < ROWS; r++) {
    const src = s.rowOf[r] * N, dst = r * N;
    for (let p = 0; p < N; p++) out[dst + p] = until[src + p] > g ? 1 : 0;
  }
  for (const c of s.flipCells[g]) out[c] ^= 1;
  return out;
}
const keptCache = new Map();
function kept(s, g) {
  const key = `${s.name}/${g}`;
  if (!keptCache.has(key)) {
    if (keptCache.size > 64) keptCache.clear();
    keptCache.set(key, keptCells(s, g));
  }
  return keptCache.get(key);
}
// One quantity per position over the selected rows (exact row means when every row is selected).
function quantityOver(name, rows) {
  if (name === "magnitude") {
    const k = quantityOver("knorm", rows), v = quantityOver("vnorm", rows);
    return k.map((x, i) => (x + v[i]) / 2);
  }
  const q = QUANT[name];
  if (rows.length === ROWS) return Float64Array.from(q.mean);
  const out = new Float64Array(N);
  for (const r of rows) {
    const step = (q.hi[r] - q.lo[r]) / 255;
    for (let p = 0; p < N; p++) out[p] += q.lo[r] + q.codes[r * N + p] * step;
  }
  return out.map((x) => x / rows.length);
}

// ----------------------------------------------------------------------------- snapshot: page
const S = {quantity: "attention", layer: "all", head: "all", a: 0, b: 0, marks: "a", g: 0};
const overlay = document.createElement("canvas");
overlay.className = "marks";
let spans = [], rects = [], drawn = [], values = null, shares = {a: null, b: null};

function selectedRows() {
  const rows = [];
  for (let l = 0; l < L; l++) for (let h = 0; h < H; h++)
    if ((S.layer === "all" || +S.layer === l) && (S.head === "all" || +S.head === h)) rows.push(l * H + h);
  return rows;
}
function setupSnapshot() {
  $("snapshot-view").hidden = false;
  $("source").textContent = `${DATA.source || "snapshot"}: ${DATA.model.name}, ${int(N)} tokens, ` +
    `${L} layers x ${H} kv_heads, head_dim ${DATA.head_dim}, ${DATA.dtype}`;
  const step = DATA.ratios.length > 1 ? DATA.ratios[1] : 0;
  $("stops-note").textContent = `Kept sets are the Python engine's own (Strategy.keep at default settings), ` +
    `computed by kvscope at each ratio from 0 to ${DATA.ratios[DATA.ratios.length - 1]} in steps of ${step}; ` +
    `the slider moves between those ratios only (no interpolation). Bytes count K and V at ${DATA.dtype}.`;
  put("map-note", `Maps: one row per (layer, kv_head), layer 0 at the top (${L} layers x ${H} kv_heads), one ` +
    `column per position (0 to ${N - 1}); colour = kept, dark = evicted. Hover a map for its cell.`);
  fill($("quantity"), [...Object.entries(QUANT).map(([k, q]) => [k, q.label]),
    ["magnitude", "magnitude (||k|| + ||v||) / 2"]]);
  fill($("layer"), [["all", "all (average)"], ...Array.from({length: L}, (_, i) => [i, `layer ${i}`])]);
  fill($("head"), [["all", "all (average)"], ...Array.from({length: H}, (_, i) => [i, `kv_head ${i}`])]);
  const names = STRATS.map((s, i) => [i, s.unavailable ? `${s.label} (unavailable)` : s.label]);
  fill($("strategy-a"), names);
  fill($("strategy-b"), names);
  S.b = Math.min(1, STRATS.length - 1);
  $("strategy-b").value = String(S.b);
  $("ratio").max = String(DATA.ratios.length - 1);
  buildStrip();
  const on = (id, key, fn) => $(id).addEventListener("input", () => { S[key] = $(id).value; fn(); });
  on("quantity", "quantity", shade);
  on("layer", "layer", () => { shade(); repaint(); });
  on("head", "head", () => { shade(); repaint(); });
  on("strategy-a", "a", repaint);
  on("strategy-b", "b", repaint);
  on("marks", "marks", repaint);
  on("ratio", "g", repaint);
  for (const side of ["a", "b"]) tipOn($(`map-${side}`), (c, e) => mapTip(c, e, side));
  shade();
  repaint();
}
function buildStrip() {
  const strip = $("strip"), sinks = new Set(DATA.sinks);
  spans = DATA.tokens.map((t, p) => {
    const el = document.createElement("span");
    el.textContent = t;
    el.dataset.p = String(p);
    if (sinks.has(p)) el.classList.add("sink");
    return el;
  });
  strip.replaceChildren(...spans);
  strip.parentNode.append(overlay);
  new ResizeObserver(() => { measureStrip(); markStrip(shares[S.marks]); }).observe(strip);
  let pending = false;
  strip.addEventListener("scroll", () => {
    if (!pending) requestAnimationFrame(() => { pending = false; markStrip(shares[S.marks]); });
    pending = true;
  }, {passive: true});
  tipOn(strip, (el) => (el.dataset && el.dataset.p !== undefined ? tokenTip(+el.dataset.p) : null));
}
function tokenTip(p) {
  const rows = selectedRows(), where = S.layer === "all" && S.head === "all" ? "mean over all rows" :
    `${S.layer === "all" ? "all layers" : `layer ${S.layer}`}, ${S.head === "all" ? "all kv_heads" : `kv_head ${S.head}`}`;
  const lines = [`position ${p}: ${JSON.stringify(DATA.tokens[p])}${DATA.sinks.includes(p) ? " (attention sink)" : ""}`,
    `${where}:`];
  for (const name of [...Object.keys(QUANT), "magnitude"]) {
    const v = quantityOver(name, rows)[p];
    lines.push(`  ${name} ${v.toPrecision(4)}${rows.length === ROWS ? "" : " (8-bit per row)"}`);
  }
  for (const side of ["a", "b"]) {
    const s = STRATS[+S[side]];
    if (!s.unavailable) lines.push(`  ${s.label}: kept in ${Math.round(100 * shares[side][p])} % of the rows`);
  }
  return lines.join("\n");
}
function shade() {
  values = quantityOver(S.quantity, selectedRows());
  let hi = 0;
  for (const v of values) if (v > hi) hi = v;
  spans.forEach((el, p) => {
    el.style.backgroundColor = `rgba(56, 189, 248, ${hi > 0 ? (0.75 * Math.sqrt(values[p] / hi)).toFixed(3) : 0})`;
  });
}
function mapTip(canvas, e, side) {
  const box = canvas.getBoundingClientRect(), s = STRATS[+S[side]];
  if (s.unavailable) return null;
  const p = Math.floor((e.clientX - box.left) / box.width * N), r = Math.floor((e.clientY - box.top) / box.height * ROWS);
  if (p < 0 || p >= N || r < 0 || r >= ROWS) return null;
  const state = kept(s, S.g)[r * N + p] ? "kept" : "evicted";
  return `layer ${Math.floor(r / H)}, kv_head ${r % H}, position ${p} ${JSON.stringify(DATA.tokens[p])}: ${state}`;
}
// Share of the selected rows that keep each position.
function shareOver(cells, rows) {
  const out = new Float64Array(N);
  for (const r of rows) for (let p = 0; p < N; p++) out[p] += cells[r * N + p];
  return out.map((x) => x / rows.length);
}
// The map's pixels for strategy s at stop g (cached): one pixel per cell, kept in `rgb`, evicted dark.
const images = new Map();
function mapImage(s, g, rgb) {
  const key = `${s.name}/${g}/${rgb}`;
  if (images.has(key)) return images.get(key);
  if (images.size > 80) images.clear();
  const cells = kept(s, g), img = new ImageData(N, ROWS), px = new Uint32Array(img.data.buffer);
  const on = (255 << 24) | (rgb[2] << 16) | (rgb[1] << 8) | rgb[0], off = (255 << 24) | (0x28 << 16) | (0x14 << 8) | 0x0d;
  for (let i = 0; i < cells.length; i++) px[i] = cells[i] ? on : off;
  images.set(key, img);
  return img;
}
// The canvas holds one pixel per cell; CSS stretches it (image-rendering: pixelated).
function drawMap(canvas, s, rgb) {
  if (canvas.width !== N) canvas.width = N;
  if (canvas.height !== ROWS) canvas.height = ROWS;
  canvas.getContext("2d").putImageData(mapImage(s, S.g, rgb), 0, 0);
}
function paintSide(side, rgb) {
  const s = STRATS[+S[side]];
  put(`name-${side}`, `${side.toUpperCase()}: ${s.label}`);
  const settings = Object.entries(s.settings || {}).map(([k, v]) => `${k}=${v}`).join(", ");
  put(`summary-${side}`, `${s.summary}; settings: ${settings || "none"}`);
  const canvas = $(`map-${side}`);
  if (s.unavailable) {
    put(`bytes-${side}`, "");
    put(`warn-${side}`, `unavailable: ${s.unavailable}`);
    shares[side] = new Float64Array(N).fill(1);
    canvas.getContext("2d").clearRect(0, 0, canvas.width, canvas.height);
    return null;
  }
  const cells = kept(s, S.g), ratio = DATA.ratios[S.g], count = s.kept[S.g]; // the engine's count
  const total = ROWS * N * DATA.bytes_per_entry;
  put(`bytes-${side}`, `kept ${fmtBytes(count * DATA.bytes_per_entry)} of ${fmtBytes(total)} ` +
    `(${(100 * count / (ROWS * N)).toFixed(1)} %, ${int(count)} of ${int(ROWS * N)} entries)`);
  put(`warn-${side}`, ((s.warnings || {})[String(ratio)] || []).join(" "));
  shares[side] = shareOver(cells, selectedRows());
  drawMap(canvas, s, rgb);
  return cells;
}
// Evicted and partly kept tokens are drawn on a canvas laid over the strip's visible box (the text itself
// never changes, so a slider move repaints one small canvas, not 2,000 inline boxes). Token boxes are
// measured once per layout of the strip (ResizeObserver), in the strip's content coordinates.
function measureStrip() {
  const strip = $("strip"), box = strip.getBoundingClientRect();
  const dx = strip.scrollLeft - box.left, dy = strip.scrollTop - box.top;
  rects = spans.map((el) => Array.from(el.getClientRects(), (r) => [r.left + dx, r.top + dy, r.width, r.height]));
  overlay.width = strip.clientWidth;
  overlay.height = strip.clientHeight;
}
function markStrip(share) {
  if (!share || !rects.length) return;
  const ctx = overlay.getContext("2d"), top = $("strip").scrollTop, left = $("strip").scrollLeft;
  ctx.clearRect(0, 0, overlay.width, overlay.height);
  drawn = new Array(N).fill("");
  for (let p = 0; p < N; p++) {
    const mark = share[p] === 0 ? "ev" : share[p] < 1 ? "part" : "";
    drawn[p] = mark;
    for (const [rx, ry, w, h] of mark ? rects[p] : []) {
      const x = rx - left, y = ry - top;
      if (y + h < 0 || y > overlay.height) continue;
      if (mark === "ev") {
        ctx.fillStyle = "rgba(11, 16, 32, 0.62)";
        ctx.fillRect(x, y, w, h);
        ctx.fillStyle = "#9aa4bd";
        ctx.fillRect(x, y + Math.round(h / 2), w, 1);
      } else {
        ctx.fillStyle = "#cbd5f5";
        for (let i = x; i < x + w; i += 3) ctx.fillRect(i, y + h - 2, 1, 1);
      }
    }
  }
}
function repaint() {
  put("ratio-out", String(DATA.ratios[S.g]));
  paintSide("a", [56, 189, 248]);
  paintSide("b", [245, 158, 11]);
  markStrip(shares[S.marks]);
  window.kvFrames++;
}

// ----------------------------------------------------------------------------- bench
const B = {task: "", config: "", verdict: ""};
function setupBench() {
  $("bench-view").hidden = false;
  $("source").textContent = `${DATA.source || "bench output"}: ${DATA.model || ""}, ` +
    `${int(DATA.outcomes.length)} answers (sample x configuration)`;
  const uniq = (key) => [...new Set(DATA.outcomes.map((o) => o[key]))];
  fill($("f-task"), [["", "every task"], ...uniq("task").map((t) => [t, t])]);
  fill($("f-config"), [["", "every configuration"], ...uniq("config").map((c) => [c, c])]);
  for (const [id, key] of [["f-task", "task"], ["f-config", "config"], ["f-verdict", "verdict"]])
    $(id).addEventListener("input", () => { B[key] = $(id).value; listOutcomes(); });
  listOutcomes();
}
const verdictOf = (o) => (o.correct === true ? "right" : o.correct === false ? "wrong" : "none");
function mapOf(o) {
  return (DATA.maps || []).find((m) => m.task === o.task && m.sample === o.sample) || null;
}
function cell(text, cls) {
  const td = document.createElement("td");
  td.textContent = text;
  if (cls) td.className = cls;
  return td;
}
function listOutcomes() {
  const shown = DATA.outcomes.filter((o) => (!B.task || o.task === B.task) && (!B.config || o.config === B.config) &&
    (!B.verdict || verdictOf(o) === B.verdict));
  const limit = 2000, more = shown.length > limit ? ` (the first ${int(limit)} listed: filter to see the rest)` : "";
  $("f-count").textContent = `${int(shown.length)} of ${int(DATA.outcomes.length)} answers${more}`;
  const rows = shown.slice(0, limit).map((o) => {
    const tr = document.createElement("tr"), v = verdictOf(o), m = mapOf(o), td = document.createElement("td");
    tr.append(cell(o.task), cell(String(o.sample)), cell(o.config), cell(o.gold, "t"), cell(o.answer, "t"),
      cell(v === "none" ? "-" : v, v), td);
    if (m) {
      const b = document.createElement("button");
      b.textContent = "map";
      b.addEventListener("click", () => showMap(m, o));
      td.append(b);
    }
    return tr;
  });
  $("outcomes").tBodies[0].replaceChildren(...rows);
}
function showMap(m, o) {
  const [method, at] = o.config.split("@"), shares = m.shares[method];
  const other = at !== undefined && Number(at) !== m.ratio ? ` (this configuration ran at ratio ${at}; ` +
    `bench maps one ratio per sample)` : "";
  $("map-card").hidden = false;
  $("map-title").textContent = shares ? `${m.task} sample ${m.sample}: tokens ${method} kept at ratio ${m.ratio} ` +
    `(share of layer x kv_head rows)${other}` : `${m.task} sample ${m.sample}: no map for ${o.config} (maps hold ` +
    `${Object.keys(m.shares).join(", ")} at ratio ${m.ratio})`;
  const [a, b] = m.needle || [-1, -1];
  $("bench-map").replaceChildren(...m.tokens.map((t, i) => {
    const el = document.createElement("span");
    el.textContent = t;
    if (shares) el.style.backgroundColor = `rgba(56, 189, 248, ${(0.75 * shares[i]).toFixed(3)})`;
    if (i >= a && i < b) el.classList.add("needle");
    el.dataset.s = shares ? `${Math.round(100 * shares[i])} % kept` : "";
    return el;
  }));
  $("map-card").scrollIntoView();
}
tipOn($("bench-map"), (el) => (el.dataset && el.dataset.s ? el.dataset.s : null));

// ----------------------------------------------------------------------------- start
window.kvscope = {
  data: DATA,
  // For tests: the kept cells of strategy `name` at slider stop g, as a plain array of 0/1.
  // For tests: the strip's marks per token as last drawn ("ev" evicted, "part" kept by some rows, "" kept).
  marks: () => drawn.slice(),
  keptAt: (name, g) => Array.from(kept(STRATS.find((s) => s.name === name), g)),
};
if (DATA.kind === "bench") setupBench(); else setupSnapshot();
