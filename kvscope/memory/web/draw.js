// Canvas drawing of one state: the GPU package (die, HBM stacks or GDDR chips, bandwidth indicator,
// data-flow particles), FlashAttention's ghost overlays, every GPU when several are needed, the per-GPU
// gauge, the batch lanes and, on top of everything, the context diagonal with its moving dot.
// drawScene returns hover regions [{x, y, w, h, tip}] for the tooltips and the dot's position.
// Cells are redrawn only when the state changes (one cached layer); each frame adds the moving parts.

import {GIB, kvShare, slotBytes} from "./formulas.js";

const C = {weights: "#8b5cf6", grey: "#4b5563", free: "#1f2a44", red: "#ef4444", green: "#22c55e",
  die: "#1e293b", text: "#e5e9f5", muted: "#8d99b8", line: "#26324f", dot: "#d9f99d", kv: "#38bdf8"};
const HUES = [199, 142, 38, 330, 262, 12, 170, 55, 290, 90, 220, 0];
const patterns = new Map();
const layer = {canvas: null, key: null};

export function seqColor(k, alpha = 1) {
  return `hsla(${HUES[k % HUES.length]}, 80%, ${58 - 8 * (Math.floor(k / HUES.length) % 3)}%, ${alpha})`;
}

function stripes(ctx, color, size = 8) {
  const key = `${color}/${size}`;
  if (patterns.has(key)) return patterns.get(key);
  const c = document.createElement("canvas");
  c.width = c.height = size;
  const g = c.getContext("2d");
  g.strokeStyle = color; g.lineWidth = size / 4;
  g.beginPath(); g.moveTo(0, size); g.lineTo(size, 0); g.moveTo(-2, 2); g.lineTo(2, -2);
  g.moveTo(size - 2, size + 2); g.lineTo(size + 2, size - 2); g.stroke();
  const p = ctx.createPattern(c, "repeat");
  patterns.set(key, p);
  return p;
}

// A pattern of one dark 1-px tick every `period` px (page boundaries in the lanes).
function ticks(ctx, period) {
  const key = `ticks/${period}`;
  if (!patterns.has(key)) {
    const c = document.createElement("canvas");
    c.width = period; c.height = 1;
    const g = c.getContext("2d");
    g.fillStyle = "#0b1020"; g.fillRect(period - 1, 0, 1, 1);
    patterns.set(key, ctx.createPattern(c, "repeat"));
  }
  return patterns.get(key);
}

export function fmtBytes(b) {
  const units = [["TiB", 2 ** 40], ["GiB", GIB], ["MiB", 2 ** 20], ["KiB", 1024]];
  const [u, s] = units.find(([, size]) => Math.abs(b) >= size) || units[3];
  return `${(b / s).toLocaleString("en-US", {minimumFractionDigits: 2, maximumFractionDigits: 2})} ${u}`;
}

// Per-GPU memory as ordered segments [{kind, bytes, seq}]: weights, then per slot real, held-after-finish
// (static) and reserved-but-empty.
export function segments(scene) {
  const {model, r, opts} = scene;
  const share = kvShare(model, opts.tp);
  const segs = [{kind: "weights", bytes: r.per_gpu.weights_bytes}];
  r.slots.forEach((st) => {
    const [real, reserved] = slotBytes(model, opts, st.tokens, st.idle);
    const held = st.idle ? slotBytes(model, opts, st.tokens)[0] : real;
    segs.push({kind: st.idle ? "held" : "kv", bytes: held * share, seq: st.request});
    if (reserved > held) segs.push({kind: "unused", bytes: (reserved - held) * share, seq: st.request});
  });
  return segs;
}

function cellColor(seg, scene) {
  if (seg.kind === "weights") return C.weights;
  if (seg.kind === "unused") return C.grey;
  if (seg.kind === "held") return seqColor(seg.seq, 0.3);
  return scene.flags.cb ? seqColor(seg.seq) : C.kv;
}

// Cells of one module, drawn as runs of one colour (the segment under each cell's middle).
function drawCells(ctx, x, y, w, h, scene, segs) {
  const pitch = 8, size = 6, cols = Math.max(1, Math.floor((w - 4) / pitch)), rows = Math.max(1, Math.floor((h - 4) / pitch));
  const n = cols * rows, cap = scene.r.per_gpu.usable_bytes;
  let i = 0, end = segs.length ? segs[0].bytes : 0, color = null;
  ctx.strokeStyle = C.free;
  for (let c = 0; c < n; c++) {
    const pos = ((c + 0.5) / n) * cap, cx = x + 2 + (c % cols) * pitch, cy = y + 2 + Math.floor(c / cols) * pitch;
    while (i < segs.length && end <= pos) { i++; end += i < segs.length ? segs[i].bytes : 0; }
    if (i >= segs.length) { ctx.strokeRect(cx + 0.5, cy + 0.5, size - 1, size - 1); continue; }
    const fill = cellColor(segs[i], scene);
    if (fill !== color) { ctx.fillStyle = fill; color = fill; }
    ctx.fillRect(cx, cy, size, size);
    if (scene.flags.paged && segs[i].kind === "kv") {
      ctx.fillStyle = "#0b1020"; ctx.fillRect(cx + 3, cy, 1, size); ctx.fillRect(cx, cy + 3, size, 1); color = null;
    }
  }
}

function siteLayout(gpu) {
  if (gpu.hbm) return {sites: gpu.hbm.sites, active: gpu.hbm.active, kind: "HBM"};
  return {sites: gpu.gddr_chips || 8, active: gpu.gddr_chips || 8, kind: "GDDR"};
}

// Module rectangles around a die of side s at (dx, dy): half the sites left, half right.
function modules(gpu, dx, dy, s, mw) {
  const L = siteLayout(gpu), perSide = Math.ceil(L.sites / 2), gap = Math.max(4, s * 0.04);
  const mh = (s * 1.1 - gap * (perSide - 1)) / perSide, out = [];
  for (let i = 0; i < L.sites; i++) {
    const left = i < perSide, j = left ? i : i - perSide;
    out.push({x: left ? dx - gap - mw : dx + s + gap, y: dy - s * 0.05 + j * (mh + gap), w: mw, h: mh,
      active: i < L.active, left, i});
  }
  return {mods: out, gap, L};
}

function stackTip(gpu, L, m, r) {
  if (!m.active) return `Physical site without an active stack: ${gpu.name} uses ${L.active} of ${L.sites}.`;
  const what = L.kind === "HBM" ? "stack" : "chip";
  const sides = L.kind === "HBM" ? " Real H100, H200 and B200 packages carry their HBM stacks left and right of the die, as drawn." : "";
  return `${gpu.memory_type} ${what} ${m.i + 1} of ${L.active} active. Addresses interleave over all ${what}s, so each holds the same mix: purple weights ${fmtBytes(r.per_gpu.weights_bytes)}, coloured KV ${fmtBytes(r.per_gpu.kv_bytes)}, grey reserved-but-empty, outlined free.${sides}`;
}

function ghost(ctx, m, frac, saved, regions) {
  const gh = Math.max(14, Math.min(1, frac) * (m.h - 2));
  const y = m.y + 1;
  ctx.fillStyle = "rgba(239,68,68,0.18)"; ctx.fillRect(m.x + 1, y, m.w - 2, gh);
  ctx.fillStyle = stripes(ctx, "rgba(239,68,68,0.75)", 10); ctx.fillRect(m.x + 1, y, m.w - 2, gh);
  ctx.setLineDash([5, 3]); ctx.strokeStyle = C.red; ctx.lineWidth = 1.5;
  ctx.strokeRect(m.x + 1.5, y + 0.5, m.w - 3, gh - 1); ctx.setLineDash([]); ctx.lineWidth = 1;
  ctx.font = "bold 12px system-ui"; ctx.textAlign = "center";
  const label = frac > 1 ? `SAVED ×${frac.toLocaleString("en-US", {maximumFractionDigits: 1})}` : "SAVED";
  const tw = ctx.measureText(label).width + 8, ty = y + Math.min(gh / 2, m.h / 2);
  ctx.fillStyle = "rgba(127,29,29,0.92)"; ctx.fillRect(m.x + m.w / 2 - tw / 2, ty - 9, tw, 17);
  ctx.fillStyle = "#fff"; ctx.fillText(label, m.x + m.w / 2, ty + 4); ctx.textAlign = "left";
  regions.push({x: m.x, y, w: m.w, h: gh, tip: `SAVED by FlashAttention: without it, prefill would write ${fmtBytes(saved)} of attention scores (one layer, batch × heads × N² × 2 B) to HBM, ${frac.toLocaleString("en-US", {maximumFractionDigits: 2})}× this GPU's memory; the striped ghost shows that share of each stack. Transient: the KV cache itself is unchanged.`});
}

function drawDieStatic(ctx, x, y, s, scene) {
  ctx.fillStyle = C.die; ctx.fillRect(x, y, s, s);
  ctx.strokeStyle = "#64748b"; ctx.strokeRect(x + 0.5, y + 0.5, s - 1, s - 1);
  ctx.fillStyle = C.text; ctx.font = "bold 12px system-ui"; ctx.textAlign = "center";
  ctx.fillText(scene.flags.flash ? "GPU DIE · TILES IN SRAM" : "GPU DIE", x + s / 2, y + 16);
  ctx.font = "10px system-ui"; ctx.fillStyle = scene.flags.flash ? C.green : C.red;
  ctx.fillText(scene.flags.flash ? "O(N) statistics to HBM" : "N × N scores written to HBM", x + s / 2, y + s * 0.7);
  ctx.textAlign = "left";
}

// Per frame: the tile wave and the bandwidth indicator (a bar whose chevrons move with the step rate).
function drawDieLive(ctx, x, y, s, scene, time) {
  const n = 6, pad = s * 0.12, cell = (s - 2 * pad) / n, top = y + 24, ch = cell * 0.62;
  for (let r = 0; r < n; r++) {
    for (let c = 0; c <= r; c++) {
      const on = scene.flags.flash && Math.sin(time / 250 - (r + c) * 0.6) > 0.3;
      ctx.fillStyle = scene.flags.flash ? (on ? C.green : "rgba(34,197,94,0.25)") : "rgba(239,68,68,0.4)";
      ctx.fillRect(x + pad + c * cell + 1, top + r * ch + 1, cell - 2, ch - 2);
    }
  }
  const d = scene.r.decode, bw = scene.gpu.bandwidth_gbps, by = y + s * 0.76, bx = x + s * 0.1, bwid = s * 0.8;
  ctx.fillStyle = "#0b1222"; ctx.fillRect(bx, by, bwid, 14);
  ctx.strokeStyle = C.kv; ctx.strokeRect(bx + 0.5, by + 0.5, bwid - 1, 13);
  const speed = Math.min(4, 0.2 + 1 / Math.max(0.25, d.step_seconds * 1000)), off = ((time / 1000) * speed * 40) % 14;
  ctx.fillStyle = "rgba(56,189,248,0.75)";
  for (let px = bx + 2 + off; px < bx + bwid - 8; px += 14) ctx.fillRect(px, by + 3, 6, 8);
  ctx.fillStyle = C.text; ctx.font = "11px system-ui"; ctx.textAlign = "center";
  ctx.fillText(`${Math.round(bw).toLocaleString("en-US")} GB/s · ${(d.bytes_per_step / 1e9).toLocaleString("en-US", {maximumFractionDigits: 1})} GB per step`, x + s / 2, by + 28);
  ctx.fillText(`${(d.step_seconds * 1000).toLocaleString("en-US", {maximumFractionDigits: 2})} ms/step · ≤ ${Math.round(d.tokens_per_s).toLocaleString("en-US")} tok/s`, x + s / 2, by + 42);
  ctx.textAlign = "left";
}

// Particles between stacks and die; their number follows the bytes read per decode step.
export function particleCount(scene) {
  const frac = scene.r.decode.bytes_per_step / scene.r.per_gpu.usable_bytes;
  return Math.max(8, Math.min(96, Math.round(8 + 88 * Math.min(1, frac))));
}

function particles(ctx, geo, time, scene) {
  const n = particleCount(scene), {dx, dy, die, gap} = geo;
  for (let i = 0; i < n; i++) {
    const f = (time / 1100 + i / n) % 1, left = i % 2 === 0, lane = ((i * 0.618) % 1);
    const y = dy + 8 + lane * (die - 16);
    const x = left ? dx - gap - 6 + f * (gap + 10) : dx + die + gap + 4 - f * (gap + 10);
    ctx.fillStyle = "rgba(56,189,248,0.35)"; ctx.fillRect(x - 2, y - 2, 10, 10);
    ctx.fillStyle = "#bae6fd"; ctx.fillRect(x, y, 6, 6);
  }
}

function chipGeometry(box, gpu) {
  const die = Math.min(box.h * 0.8, box.w * 0.3);
  const dx = box.x + (box.w - die) / 2, dy = box.y + (box.h - die) / 2;
  const mw = Math.max(30, Math.min(die * 0.55, (box.w - die) / 2 - 30));
  return {dx, dy, die, mw, ...modules(gpu, dx, dy, die, mw)};
}

function drawChipLayer(ctx, geo, scene, regions) {
  const {gpu, r} = scene, segs = segments(scene);
  for (const m of geo.mods) {
    ctx.fillStyle = m.active ? "#101a33" : "#161b26"; ctx.fillRect(m.x, m.y, m.w, m.h);
    ctx.strokeStyle = m.active ? "#3b4a70" : "#2a2f3a"; ctx.strokeRect(m.x + 0.5, m.y + 0.5, m.w - 1, m.h - 1);
    ctx.fillStyle = m.active ? C.muted : "#4b5262"; ctx.font = "10px system-ui";
    ctx.fillText(m.active ? `${gpu.memory_type} ${m.i + 1}` : "inactive site", m.x + 2, m.y - 3);
    if (m.active) drawCells(ctx, m.x, m.y, m.w, m.h, scene, segs);
    else { ctx.fillStyle = stripes(ctx, "#262b36"); ctx.fillRect(m.x + 1, m.y + 1, m.w - 2, m.h - 2); }
    regions.push({x: m.x, y: m.y, w: m.w, h: m.h, tip: stackTip(gpu, geo.L, m, r)});
  }
  if (scene.flags.flash) {
    const frac = r.flash.without_flash / r.per_gpu.usable_bytes;
    for (const m of geo.mods) if (m.active) ghost(ctx, m, frac, r.flash.saved, regions);
  }
  drawDieStatic(ctx, geo.dx, geo.dy, geo.die, scene);
  regions.push({x: geo.dx, y: geo.dy, w: geo.die, h: geo.die, tip: `${scene.flags.flash
    ? "FlashAttention computes attention tile by tile in on-chip SRAM (green wave) and keeps only O(N) row statistics in HBM."
    : "Without FlashAttention prefill writes one layer's batch × heads × N × N score matrix to HBM (red), then frees it."} The bar is the memory bandwidth: each decode step reads the active weights and the live KV cache.`});
  const occ = r.capacity.occupancy_peak;
  if (occ > 1) {
    ctx.fillStyle = C.red; ctx.font = "bold 13px system-ui"; ctx.textAlign = "center";
    ctx.fillText(`AT THE PEAK: ${occ.toLocaleString("en-US", {maximumFractionDigits: 1})}× this GPU's memory per rank`, geo.dx + geo.die / 2, geo.dy + geo.die * 1.05 + 16);
    ctx.textAlign = "left";
  }
}

// One small package per GPU (up to 16 drawn), each with its stacks filled to its rank's share at the peak
// when the run is split over n = max(tp, GPUs required) ranks.
function drawMultiGPU(ctx, box, scene, n, regions) {
  const {gpu, r, model} = scene, shown = Math.min(n, 16), cap = r.per_gpu.usable_bytes;
  const w = Math.min(92, (box.w - 10) / shown - 8), h = box.h - 18;
  const weights = r.weights_bytes / n, kv = r.capacity.kv_peak_bytes * kvShare(model, n);
  const wFrac = Math.min(1, weights / cap), kvFrac = Math.min(1 - wFrac, kv / cap);
  ctx.fillStyle = C.muted; ctx.font = "11px system-ui";
  ctx.fillText(`${n} × ${gpu.name} (tensor parallel): each holds 1/${n} of the weights and ${model.mla ? "a copy of the MLA latent" : "its share of kv_heads"}, at the workload peak${n > shown ? `; ${shown} of ${n} drawn` : ""}`, box.x, box.y + 10);
  for (let g = 0; g < shown; g++) {
    const x = box.x + g * (w + 8), y = box.y + 16, die = Math.min(h, w * 0.45), sw = (w - die) / 2 - 3;
    ctx.fillStyle = C.die; ctx.fillRect(x + sw + 3, y + (h - die) / 2, die, die);
    for (const side of [x, x + sw + die + 6]) {
      ctx.fillStyle = "#101a33"; ctx.fillRect(side, y, sw, h);
      ctx.fillStyle = C.weights; ctx.fillRect(side, y + h * (1 - wFrac), sw, h * wFrac);
      ctx.fillStyle = scene.flags.cb ? seqColor(g) : C.kv; ctx.fillRect(side, y + h * (1 - wFrac - kvFrac), sw, h * kvFrac);
    }
    ctx.fillStyle = C.text; ctx.font = "10px system-ui"; ctx.textAlign = "center";
    ctx.fillText(`GPU ${g}`, x + w / 2, y + h / 2 + 3); ctx.textAlign = "left";
    regions.push({x, y, w, h, tip: `GPU ${g} of ${n}: weights ${fmtBytes(weights)} and KV ${fmtBytes(kv)} at the workload peak, of ${fmtBytes(cap)}.`});
  }
}

function drawGauge(ctx, x, y, w, h, scene, regions) {
  const pg = scene.r.per_gpu, cap = pg.usable_bytes, top = y + 14, hh = h - 28;
  const px = (b) => Math.min(hh, (b / cap) * hh);
  ctx.fillStyle = C.muted; ctx.font = "10px system-ui"; ctx.textAlign = "center";
  ctx.fillText("per GPU", x + w / 2, y + 8);
  ctx.strokeStyle = C.line; ctx.strokeRect(x + 0.5, top + 0.5, w - 1, hh - 1);
  let used = 0;
  const seg = (bytes, fill) => { const a = px(used), b = px(used + bytes); ctx.fillStyle = fill;
    ctx.fillRect(x + 1, top + hh - b, w - 2, b - a); used += bytes; };
  seg(pg.weights_bytes, C.weights);
  const real = scene.r.kv_real_bytes * pg.kv_share;
  seg(real, C.kv);
  seg(pg.kv_bytes - real, stripes(ctx, "#9ca3af"));
  const peakY = top + hh - px(scene.r.capacity.per_gpu_peak_bytes);
  ctx.fillStyle = "#fbbf24"; ctx.fillRect(x - 4, peakY - 1, w + 8, 2);
  const spike = scene.r.flash.without_flash, sTop = px(used + spike), sBot = px(used);
  ctx.fillStyle = scene.flags.flash ? stripes(ctx, "rgba(239,68,68,0.6)") : "rgba(239,68,68,0.5)";
  ctx.fillRect(x + w * 0.25, top + hh - sTop, w * 0.5, sTop - sBot);
  const e = scene.r.engine;
  if (e) { // vLLM's budget: the KV pool between its non-KV memory and total x utilization
    const lo = px(e.requested_bytes - Math.max(0, e.available_kv_bytes)), hi = px(e.requested_bytes);
    ctx.fillStyle = stripes(ctx, "rgba(45,212,191,0.9)", 6); ctx.fillRect(x - 14, top + hh - hi, 10, hi - lo);
    ctx.fillStyle = "#2dd4bf"; ctx.fillRect(x - 16, top + hh - hi - 1, w + 20, 2);
    ctx.save(); ctx.translate(x - 18, top + hh - (hi + lo) / 2); ctx.rotate(-Math.PI / 2);
    ctx.fillText("vLLM KV pool", 0, 0); ctx.restore();
    regions.push({x: x - 16, y: top + hh - hi, w: 14, h: hi - lo, tip: `vLLM's KV pool on this GPU: ${fmtBytes(Math.max(0, e.available_kv_bytes))} = CUDA total × ${e.gpu_memory_utilization} − weights − activation − non-torch, communication and CUDA-graph memory; ${e.kv_tokens.toLocaleString("en-US")} tokens.`});
  }
  ctx.fillStyle = pg.peak_without_flash > cap ? C.red : C.muted;
  ctx.fillText(`${(100 * pg.occupancy).toFixed(0)}%`, x + w / 2, top + hh + 12);
  ctx.textAlign = "left";
  regions.push({x: x - 4, y: top, w: w + 8, h: hh, tip: `One GPU at this step: ${fmtBytes(pg.resident_bytes)} resident of ${fmtBytes(cap)} (weights ${fmtBytes(pg.weights_bytes)}, KV ${fmtBytes(pg.kv_bytes)}). Yellow line: the workload peak, ${fmtBytes(scene.r.capacity.per_gpu_peak_bytes)}. Red spike: the transient prefill score matrix without FlashAttention, ${fmtBytes(scene.r.flash.without_flash)} for one layer${scene.flags.flash ? " (saved)" : ""}.`});
}

function drawLanes(ctx, box, scene, regions) {
  const {r, opts} = scene, T = opts.context, rows = Math.min(r.slots.length, 32);
  const rh = Math.max(3, Math.min(14, (box.h - 18) / rows)), wpx = box.w;
  ctx.fillStyle = C.muted; ctx.font = "11px system-ui";
  const pagePx = (opts.page / T) * wpx, group = Math.max(1, Math.ceil(3 / pagePx));
  const label = opts.mode === "paged" ? `pages of ${opts.page} tokens${group > 1 ? `, one tick per ${group} pages` : ""}`
    : "max context reserved per slot";
  ctx.fillText(`Slots over token positions 0–${T.toLocaleString("en-US")} (${label})${r.slots.length > rows ? `, first ${rows} of ${r.slots.length.toLocaleString("en-US")}` : ""}`, box.x, box.y + 10);
  for (let i = 0; i < rows; i++) {
    const st = r.slots[i], y = box.y + 16 + i * rh, real = (st.tokens / T) * wpx;
    const reserved = opts.mode === "paged" ? (Math.ceil(st.tokens / opts.page) * opts.page / T) * wpx : wpx;
    ctx.fillStyle = stripes(ctx, "#6b7280"); ctx.fillRect(box.x, y, reserved, rh - 1);
    ctx.fillStyle = st.idle ? seqColor(st.request, 0.3) : scene.flags.cb ? seqColor(st.request) : C.kv;
    ctx.fillRect(box.x, y, real, rh - 1);
    if (opts.mode === "paged") { ctx.fillStyle = ticks(ctx, Math.max(3, Math.round(pagePx * group))); ctx.fillRect(box.x, y, reserved, rh - 1); }
  }
  regions.push({x: box.x, y: box.y, w: box.w, h: box.h, tip: opts.mode === "static"
    ? "Static batching: each slot reserves the maximum context (grey stripes); a finished request (faded) keeps its tokens until the whole batch ends: that is waste too."
    : opts.mode === "cb" ? "Continuous batching: a new request (new colour) enters a slot the step after the previous one finishes; each still reserves the maximum context."
      : `Paged: each request holds ceil(tokens / ${opts.page}) × ${opts.page} token slots; only its last page is partly empty (grey).`});
}

function drawBanner(ctx, W, scene, time) {
  if (!scene.flags.flash) return;
  const pulse = 0.5 + 0.5 * Math.sin(time / 300), w = Math.min(460, W * 0.5), x = (W - w) / 2, y = 8;
  ctx.fillStyle = `rgba(239,68,68,${0.25 + 0.3 * pulse})`; ctx.fillRect(x - 4, y - 4, w + 8, 52);
  ctx.fillStyle = "#b91c1c"; ctx.fillRect(x, y, w, 44);
  ctx.fillStyle = "#fff"; ctx.textAlign = "center"; ctx.font = "bold 17px system-ui";
  ctx.fillText(`⚡ ${fmtBytes(scene.r.flash.saved)} MEMORY SAVED`, W / 2, y + 21);
  ctx.font = "11px system-ui";
  ctx.fillText("FlashAttention: transient prefill scores, one layer at a time", W / 2, y + 37);
  ctx.textAlign = "left";
}

// The context diagonal and its dot, drawn last so nothing hides them.
function diagonalGeometry(W, H, opts) {
  const frac = opts.context ? opts.tokens / opts.context : 0, x0 = 14, y0 = H - 14, x1 = W - 14, y1 = 14;
  const x = x0 + frac * (x1 - x0), y = y0 - frac * (y0 - y1);
  const label = `context ${Math.round(opts.tokens).toLocaleString("en-US")} / ${opts.context.toLocaleString("en-US")}`;
  const tw = 7.2 * label.length, lx = Math.min(x + 14, W - tw - 10), ly = Math.max(y - 10, 30);
  return {x0, y0, x1, y1, x, y, label, lx, ly, box: {x: Math.min(x - 10, lx - 6), y: Math.min(y - 10, ly - 15),
    w: Math.max(x + 10, lx + tw + 6) - Math.min(x - 10, lx - 6), h: Math.max(y + 10, ly + 6) - Math.min(y - 10, ly - 15)}};
}

function drawDiagonal(ctx, d) {
  ctx.strokeStyle = "rgba(163,230,53,0.55)"; ctx.lineWidth = 2;
  ctx.beginPath(); ctx.moveTo(d.x0, d.y0); ctx.lineTo(d.x1, d.y1); ctx.stroke(); ctx.lineWidth = 1;
  ctx.fillStyle = "#0b1020"; ctx.beginPath(); ctx.arc(d.x, d.y, 9, 0, 2 * Math.PI); ctx.fill();
  ctx.fillStyle = C.dot; ctx.beginPath(); ctx.arc(d.x, d.y, 7, 0, 2 * Math.PI); ctx.fill();
  ctx.font = "bold 12px system-ui";
  const tw = ctx.measureText(d.label).width;
  ctx.fillStyle = "rgba(11,16,32,0.85)"; ctx.fillRect(d.lx - 4, d.ly - 13, tw + 8, 18);
  ctx.fillStyle = C.dot; ctx.fillText(d.label, d.lx, d.ly);
}

const frameState = {dot: null};

// Each frame repaints only what moves (banner, die, particle lanes, the dot) from the cached layer, then
// the moving parts, then the diagonal and dot on top; a state change repaints the whole canvas.
export function drawScene(ctx, W, H, scene, time, full = false) {
  const n = Math.max(scene.opts.tp, scene.r.gpus_required || 1);
  const multi = n > 1 ? 72 : 0;
  const chipBox = {x: 20, y: 60 + multi, w: W - 120, h: H * 0.58 - multi};
  const geo = chipGeometry(chipBox, scene.gpu);
  const dpr = ctx.getTransform().a;
  const key = `${W}|${H}|${dpr}|${scene.stamp}`; // stamp: bumped by every state change
  if (layer.key !== key || !layer.canvas) {
    layer.canvas = layer.canvas || document.createElement("canvas");
    layer.canvas.width = Math.round(W * dpr); layer.canvas.height = Math.round(H * dpr);
    const g = layer.canvas.getContext("2d");
    g.setTransform(dpr, 0, 0, dpr, 0, 0);
    layer.regions = [];
    if (n > 1) drawMultiGPU(g, {x: 20, y: 58, w: W - 140, h: multi}, scene, n, layer.regions);
    drawChipLayer(g, geo, scene, layer.regions);
    drawGauge(g, W - 80, 60, 50, H * 0.58, scene, layer.regions);
    drawLanes(g, {x: 20, y: 70 + H * 0.58, w: W - 40, h: H * 0.42 - 80}, scene, layer.regions);
    layer.key = key; full = true;
  }
  const d = diagonalGeometry(W, H, {...scene.opts, tokens: scene.live ?? scene.opts.tokens}); // the dot moves every frame
  const bw = Math.min(460, W * 0.5) + 10, stripW = geo.gap + 22;
  const dirty = full ? [{x: 0, y: 0, w: W, h: H}] : [
    {x: (W - bw) / 2, y: 2, w: bw, h: 58}, {x: geo.dx, y: geo.dy, w: geo.die, h: geo.die},
    {x: geo.dx - stripW + 6, y: geo.dy, w: stripW, h: geo.die}, {x: geo.dx + geo.die - 6, y: geo.dy, w: stripW, h: geo.die},
    d.box, ...(frameState.dot ? [frameState.dot] : [])];
  for (const r of dirty) {
    const x = Math.max(0, Math.floor(r.x)), y = Math.max(0, Math.floor(r.y));
    const w = Math.min(W, Math.ceil(r.x + r.w)) - x, h = Math.min(H, Math.ceil(r.y + r.h)) - y;
    if (w <= 0 || h <= 0) continue;
    ctx.save();
    if (!full) { ctx.beginPath(); ctx.rect(x, y, w, h); ctx.clip(); }
    ctx.clearRect(x, y, w, h);
    ctx.drawImage(layer.canvas, x * dpr, y * dpr, w * dpr, h * dpr, x, y, w, h);
    drawBanner(ctx, W, scene, time);
    drawDieLive(ctx, geo.dx, geo.dy, geo.die, scene, time);
    particles(ctx, geo, time, scene);
    drawDiagonal(ctx, d);
    ctx.restore();
  }
  frameState.dot = d.box;
  const regions = [...layer.regions, {x: d.x - 12, y: d.y - 12, w: 24, h: 24, tip: "The diagonal is the context: token i attends to tokens 1..i (a triangle). The dot marks the current step over the maximum context."}];
  return {regions, dot: {x: d.x, y: d.y, r: 7}};
}
