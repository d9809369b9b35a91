// Canvas drawing of one state: the GPU package (die, HBM stacks or GDDR chips, bandwidth indicator,
// data-flow particles), FlashAttention's ghost overlays, every GPU when several are needed, the per-GPU
// gauge, the batch lanes and, on top of everything, the context diagonal with its moving dot.
// drawScene returns hover regions [{x, y, w, h, tip}] for the tooltips, the dot's position and the box of
// every text it drew (labels) and of the particle lanes, so tests can check that nothing overlaps.
// Cells are redrawn only when the state changes (one cached layer); each frame adds the moving parts.

import {kvShare, slotBytes} from "./formulas.js";
import {C, fmtBytes, label, note, recordInto, seqColor, stripes, ticks} from "./canvas.js";

const layer = {canvas: null, key: null, labels: []};
const LANE = 18; // px between a stack and the die: the particles' lane

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

// Module rectangles around a die of side s at (dx, dy): half the sites left, half right, a particle lane
// (LANE px) between them and the die and room for a 10-px label above each.
function modules(gpu, dx, dy, s, mw) {
  const L = siteLayout(gpu), perSide = Math.ceil(L.sites / 2), vgap = Math.max(14, s * 0.04);
  const mh = (s * 1.1 - vgap * (perSide - 1)) / perSide, out = [];
  for (let i = 0; i < L.sites; i++) {
    const left = i < perSide, j = left ? i : i - perSide;
    out.push({x: left ? dx - LANE - mw : dx + s + LANE, y: dy - s * 0.05 + j * (mh + vgap), w: mw, h: mh,
      active: i < L.active, left, i});
  }
  return {mods: out, gap: LANE, L};
}

function stackTip(gpu, L, m, r, flash) {
  if (!m.active) return `Physical site without an active stack: ${gpu.name} uses ${L.active} of ${L.sites}.`;
  const what = L.kind === "HBM" ? "stack" : "chip";
  const sides = L.kind === "HBM" ? " Real H100, H200 and B200 packages carry their HBM stacks left and right of the die, as drawn." : "";
  const ghosted = flash ? " Red stripes: the prefill score matrix FlashAttention keeps out of HBM, as a share of this GPU (hover SAVED)." : "";
  return `${gpu.memory_type} ${what} ${m.i + 1} of ${L.active} active. Addresses interleave over all ${what}s, so each holds the same mix: purple weights ${fmtBytes(r.per_gpu.weights_bytes)}, coloured KV ${fmtBytes(r.per_gpu.kv_bytes)}, grey reserved-but-empty, outlined free.${sides}${ghosted}`;
}

function ghost(ctx, m, frac, saved, regions) {
  const gh = Math.max(14, Math.min(1, frac) * (m.h - 2));
  const y = m.y + 1;
  ctx.fillStyle = "rgba(239,68,68,0.18)"; ctx.fillRect(m.x + 1, y, m.w - 2, gh);
  ctx.fillStyle = stripes(ctx, "rgba(239,68,68,0.75)", 10); ctx.fillRect(m.x + 1, y, m.w - 2, gh);
  ctx.setLineDash([5, 3]); ctx.strokeStyle = C.red; ctx.lineWidth = 1.5;
  ctx.strokeRect(m.x + 1.5, y + 0.5, m.w - 3, gh - 1); ctx.setLineDash([]); ctx.lineWidth = 1;
  const times = `×${frac.toLocaleString("en-US", {maximumFractionDigits: 1})}`;
  const ty = y + Math.min(gh / 2, m.h / 2) + 4;
  const box = label(ctx, frac > 1 ? [`SAVED ${times}`, "SAVED", times] : ["SAVED"], m.x + m.w / 2, ty, m.w - 12,
    {size: 12, min: 8, bold: true, align: "center", color: "#fff", bg: "rgba(127,29,29,0.92)"});
  // the hover region is the label (the stack under the stripes keeps its own tooltip)
  const hit = box ? {x: box.x - 4, y: box.y - 1, w: box.w + 8, h: box.h + 2} : {x: m.x, y, w: m.w, h: Math.min(gh, 14)};
  regions.push({...hit, tip: `SAVED by FlashAttention: without it, prefill would write ${fmtBytes(saved)} of attention scores (one layer, batch × heads × N² × 2 B) to HBM, ${frac.toLocaleString("en-US", {maximumFractionDigits: 2})}× this GPU's memory; the striped ghost shows that share of each stack. Transient: the KV cache itself is unchanged.`});
}

// The die's rows, as fractions of its side: title, tiles, the HBM note, the bandwidth bar, two text lines.
function dieRows(s) {
  const line = Math.min(11, Math.floor(s * 0.085));
  return {title: 4 + Math.min(12, Math.max(8, s * 0.07)), tiles: [0.16, 0.56], note: 0.64, bar: 0.68, barH: Math.max(6, Math.min(14, s * 0.06)),
    lines: s >= 120 ? [0.84, 0.95] : [], line};
}

function drawDieStatic(ctx, x, y, s, scene) {
  ctx.fillStyle = C.die; ctx.fillRect(x, y, s, s);
  ctx.strokeStyle = "#64748b"; ctx.strokeRect(x + 0.5, y + 0.5, s - 1, s - 1);
  const rows = dieRows(s), flash = scene.flags.flash;
  label(ctx, flash ? ["GPU DIE · TILES IN SRAM", "GPU DIE", "DIE"] : ["GPU DIE", "DIE"], x + s / 2, y + rows.title, s - 8,
    {size: 12, min: 7, bold: true, align: "center", color: C.text});
  label(ctx, flash ? ["O(N) statistics to HBM", "O(N) to HBM"] : ["N × N scores written to HBM", "N² to HBM"], x + s / 2,
    y + s * rows.note, s - 8, {size: Math.min(10, rows.line), min: 6, align: "center", color: flash ? C.green : C.red});
}

// Per frame: the tile wave and the bandwidth indicator (a bar whose chevrons move with the step rate).
function drawDieLive(ctx, x, y, s, scene, time) {
  const rows = dieRows(s), n = 6, pad = s * 0.12, cell = (s - 2 * pad) / n, top = y + s * rows.tiles[0];
  const ch = (s * (rows.tiles[1] - rows.tiles[0])) / n;
  for (let r = 0; r < n; r++) {
    for (let c = 0; c <= r; c++) {
      const on = scene.flags.flash && Math.sin(time / 250 - (r + c) * 0.6) > 0.3;
      ctx.fillStyle = scene.flags.flash ? (on ? C.green : "rgba(34,197,94,0.25)") : "rgba(239,68,68,0.4)";
      ctx.fillRect(x + pad + c * cell + 1, top + r * ch + 1, cell - 2, ch - 2);
    }
  }
  const d = scene.r.decode, bw = scene.gpu.bandwidth_gbps, by = y + s * rows.bar, bx = x + s * 0.1, bwid = s * 0.8, bh = rows.barH;
  ctx.fillStyle = "#0b1222"; ctx.fillRect(bx, by, bwid, bh);
  ctx.strokeStyle = C.kv; ctx.strokeRect(bx + 0.5, by + 0.5, bwid - 1, bh - 1);
  const speed = Math.min(4, 0.2 + 1 / Math.max(0.25, d.step_seconds * 1000)), off = ((time / 1000) * speed * 40) % 14;
  ctx.fillStyle = "rgba(56,189,248,0.75)";
  for (let px = bx + 2 + off; px < bx + bwid - 8; px += 14) ctx.fillRect(px, by + 3, 6, bh - 6);
  const gbs = `${Math.round(bw).toLocaleString("en-US")} GB/s`, tps = `≤ ${Math.round(d.tokens_per_s).toLocaleString("en-US")} tok/s`;
  const texts = [[`${gbs} · ${(d.bytes_per_step / 1e9).toLocaleString("en-US", {maximumFractionDigits: 1})} GB per step`, gbs],
    [`${(d.step_seconds * 1000).toLocaleString("en-US", {maximumFractionDigits: 2})} ms/step · ${tps}`, tps]];
  rows.lines.forEach((f, i) => label(ctx, texts[i], x + s / 2, y + s * f, s - 8, {size: rows.line, min: 7, align: "center", color: C.text}));
}

// Particles between stacks and die; their number follows the bytes read per decode step.
export function particleCount(scene) {
  const frac = scene.r.decode.bytes_per_step / scene.r.per_gpu.usable_bytes;
  return Math.max(8, Math.min(96, Math.round(8 + 88 * Math.min(1, frac))));
}

// The two lanes between the stacks and the die that the particles stay in (nothing else is drawn there).
function particleLanes(geo) {
  return [{x: geo.dx - LANE, y: geo.dy, w: LANE, h: geo.die}, {x: geo.dx + geo.die, y: geo.dy, w: LANE, h: geo.die}];
}

// Draws the particles; returns the boxes they covered, left and right (for the tests).
function particles(ctx, geo, time, scene) {
  const n = particleCount(scene), {dx, dy, die} = geo;
  const ext = [0, 1].map(() => ({x0: Infinity, y0: Infinity, x1: -Infinity, y1: -Infinity}));
  for (let i = 0; i < n; i++) {
    const f = (time / 1100 + i / n) % 1, left = i % 2 === 0, lane = ((i * 0.618) % 1);
    const y = dy + 2 + lane * (die - 10);
    const x = left ? dx - LANE + 2 + f * (LANE - 10) : dx + die + LANE - 8 - f * (LANE - 10);
    ctx.fillStyle = "rgba(56,189,248,0.35)"; ctx.fillRect(x - 2, y - 2, 10, 10);
    ctx.fillStyle = "#bae6fd"; ctx.fillRect(x, y, 6, 6);
    const e = ext[left ? 0 : 1];
    e.x0 = Math.min(e.x0, x - 2); e.y0 = Math.min(e.y0, y - 2); e.x1 = Math.max(e.x1, x + 8); e.y1 = Math.max(e.y1, y + 8);
  }
  return ext.map((e) => ({x: e.x0, y: e.y0, w: e.x1 - e.x0, h: e.y1 - e.y0}));
}

function chipGeometry(box, gpu) {
  const die = Math.min(box.h * 0.72, box.w * (box.w < 400 ? 0.4 : 0.3));
  const dx = box.x + (box.w - die) / 2, dy = box.y + (box.h - die) / 2;
  const mw = Math.max(30, Math.min(die * 0.55, (box.w - die) / 2 - LANE - 4));
  return {dx, dy, die, mw, box, ...modules(gpu, dx, dy, die, mw)};
}

function drawChipLayer(ctx, geo, scene, regions) {
  const {gpu, r} = scene, segs = segments(scene);
  for (const m of geo.mods) {
    ctx.fillStyle = m.active ? "#101a33" : "#161b26"; ctx.fillRect(m.x, m.y, m.w, m.h);
    ctx.strokeStyle = m.active ? "#3b4a70" : "#2a2f3a"; ctx.strokeRect(m.x + 0.5, m.y + 0.5, m.w - 1, m.h - 1);
    label(ctx, m.active ? [`${gpu.memory_type} ${m.i + 1}`, `${m.i + 1}`] : ["inactive site", "inactive", "off"], m.x + 2, m.y - 3,
      m.w - 2, {size: 10, min: 8, color: m.active ? C.muted : "#4b5262"});
    if (m.active) drawCells(ctx, m.x, m.y, m.w, m.h, scene, segs);
    else { ctx.fillStyle = stripes(ctx, "#262b36"); ctx.fillRect(m.x + 1, m.y + 1, m.w - 2, m.h - 2); }
    regions.push({x: m.x, y: m.y, w: m.w, h: m.h, tip: stackTip(gpu, geo.L, m, r, scene.flags.flash && m.active)});
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
    const x = occ.toLocaleString("en-US", {maximumFractionDigits: 1});
    label(ctx, [`AT THE PEAK: ${x}× this GPU's memory per rank`, `PEAK: ${x}× one GPU's memory`, `PEAK ${x}× GPU`],
      geo.dx + geo.die / 2, geo.dy + geo.die * 1.05 + 16, geo.box.w, {size: 13, min: 9, bold: true, align: "center", color: C.red});
  }
}

// One small package per GPU (up to 16 drawn), each with its stacks filled to its rank's share at the peak
// when the run is split over n = max(tp, GPUs required) ranks.
function drawMultiGPU(ctx, box, scene, n, regions) {
  const {gpu, r, model} = scene, cap = r.per_gpu.usable_bytes;
  const shown = Math.max(1, Math.min(n, 16, Math.floor((box.w + 8) / 30))); // packages at least 22 px wide
  const w = Math.min(92, (box.w + 8) / shown - 8), h = box.h - 18;
  const weights = r.weights_bytes / n, kv = r.capacity.kv_peak_bytes * kvShare(model, n);
  const wFrac = Math.min(1, weights / cap), kvFrac = Math.min(1 - wFrac, kv / cap);
  const some = n > shown ? `; ${shown} of ${n} drawn` : "";
  label(ctx, [`${n} × ${gpu.name} (tensor parallel): each holds 1/${n} of the weights and ${model.mla ? "a copy of the MLA latent" : "its share of kv_heads"}, at the workload peak${some}`,
    `${n} × ${gpu.name}, tensor parallel, at the workload peak${some}`, `${n} GPUs, tensor parallel, at the peak${some}`, `${n} GPUs at the peak${some}`],
  box.x, box.y + 10, box.w, {size: 11, min: 9, color: C.muted});
  ctx.font = "10px system-ui";
  const named = ctx.measureText(`GPU ${shown - 1}`).width <= w - 2; // one style for the whole row
  for (let g = 0; g < shown; g++) {
    const x = box.x + g * (w + 8), y = box.y + 16, die = Math.min(h, w * 0.45), sw = (w - die) / 2 - 3;
    ctx.fillStyle = C.die; ctx.fillRect(x + sw + 3, y + (h - die) / 2, die, die);
    for (const side of [x, x + sw + die + 6]) {
      ctx.fillStyle = "#101a33"; ctx.fillRect(side, y, sw, h);
      ctx.fillStyle = C.weights; ctx.fillRect(side, y + h * (1 - wFrac), sw, h * wFrac);
      ctx.fillStyle = scene.flags.cb ? seqColor(g) : C.kv; ctx.fillRect(side, y + h * (1 - wFrac - kvFrac), sw, h * kvFrac);
    }
    label(ctx, named ? `GPU ${g}` : `${g}`, x + w / 2, y + h / 2 + 3, w - 2, {size: 10, min: 8, align: "center", color: C.text});
    regions.push({x, y, w, h, tip: `GPU ${g} of ${n}: weights ${fmtBytes(weights)} and KV ${fmtBytes(kv)} at the workload peak, of ${fmtBytes(cap)}.`});
  }
}

// One GPU at the drawn step (the panel's capacity rows are at the peak: the yellow line).
function drawGauge(ctx, x, y, w, h, scene, regions) {
  const pg = scene.r.per_gpu, cap = pg.usable_bytes, top = y + 26, hh = h - 40;
  const px = (b) => Math.min(hh, (b / cap) * hh);
  const col = w + 40; // the gauge's column: 20 px either side
  label(ctx, "per GPU", x + w / 2, y + 8, col, {size: 10, min: 8, align: "center", color: C.muted});
  label(ctx, [`step ${Math.round(scene.opts.tokens).toLocaleString("en-US")}`, "now"], x + w / 2, y + 20, col,
    {size: 10, min: 8, align: "center", color: C.muted});
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
  label(ctx, "peak", x + w + 3, Math.max(top + 8, peakY + 3), 22, {size: 9, min: 7, color: "#fbbf24"});
  const spike = scene.r.flash.without_flash, sTop = px(used + spike), sBot = px(used);
  ctx.fillStyle = scene.flags.flash ? stripes(ctx, "rgba(239,68,68,0.6)") : "rgba(239,68,68,0.5)";
  ctx.fillRect(x + w * 0.25, top + hh - sTop, w * 0.5, sTop - sBot);
  const e = scene.r.engine;
  if (e) { // vLLM's budget: the KV pool between its non-KV memory and total x utilization
    const lo = px(e.requested_bytes - Math.max(0, e.available_kv_bytes)), hi = px(e.requested_bytes);
    ctx.fillStyle = stripes(ctx, "rgba(45,212,191,0.9)", 6); ctx.fillRect(x - 14, top + hh - hi, 10, hi - lo);
    ctx.fillStyle = "#2dd4bf"; ctx.fillRect(x - 16, top + hh - hi - 1, w + 20, 2);
    ctx.save(); ctx.translate(x - 18, top + hh - (hi + lo) / 2); ctx.rotate(-Math.PI / 2);
    ctx.font = "10px system-ui"; ctx.textAlign = "center"; ctx.fillStyle = "#2dd4bf";
    const tw = ctx.measureText("vLLM KV pool").width;
    if (tw < hi - lo) ctx.fillText("vLLM KV pool", 0, 0);
    ctx.restore(); ctx.textAlign = "left";
    if (tw < hi - lo) note({text: "vLLM KV pool", x: x - 28, y: top + hh - (hi + lo) / 2 - tw / 2, w: 10, h: tw});
    regions.push({x: x - 16, y: top + hh - hi, w: 14, h: hi - lo, tip: `vLLM's KV pool on this GPU: ${fmtBytes(Math.max(0, e.available_kv_bytes))} = CUDA total × ${e.gpu_memory_utilization} − weights − activation − non-torch, communication and CUDA-graph memory; ${e.kv_tokens.toLocaleString("en-US")} tokens.`});
  }
  label(ctx, `${(100 * pg.occupancy).toFixed(0)}%`, x + w / 2, top + hh + 12, col,
    {size: 10, min: 8, align: "center", color: pg.peak_without_flash > cap ? C.red : C.muted});
  regions.push({x: x - 4, y: top, w: w + 8, h: hh, tip: `One GPU at step ${Math.round(scene.opts.tokens).toLocaleString("en-US")} (the drawing's step; the panel's capacity rows are at the peak): ${fmtBytes(pg.resident_bytes)} resident of ${fmtBytes(cap)} (weights ${fmtBytes(pg.weights_bytes)}, KV ${fmtBytes(pg.kv_bytes)}). Yellow line: the workload peak, ${fmtBytes(scene.r.capacity.per_gpu_peak_bytes)}. Red spike: the transient prefill score matrix without FlashAttention, ${fmtBytes(scene.r.flash.without_flash)} for one layer${scene.flags.flash ? " (saved)" : ""}.`});
}

function drawLanes(ctx, box, scene, regions) {
  const {r, opts} = scene, T = opts.context, rows = Math.min(r.slots.length, 32);
  const rh = Math.max(3, Math.min(14, (box.h - 18) / rows)), wpx = box.w;
  const pagePx = (opts.page / T) * wpx, group = Math.max(1, Math.ceil(3 / pagePx));
  const unit = opts.mode === "paged" ? `pages of ${opts.page} tokens${group > 1 ? `, one tick per ${group} pages` : ""}`
    : "max context reserved per slot";
  const first = r.slots.length > rows ? `, first ${rows} of ${r.slots.length.toLocaleString("en-US")}` : "";
  label(ctx, [`Slots over token positions 0–${T.toLocaleString("en-US")} (${unit})${first}`, `Slots over positions 0–${T.toLocaleString("en-US")}${first}`,
    `Slots, 0–${T.toLocaleString("en-US")}`], box.x, box.y + 10, box.w, {size: 11, min: 9, color: C.muted});
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

// The banner sits at the top left and leaves the top right to the context dot's label (where the dot
// ends: top right); the label is shortened on narrow canvases.
const narrow = (W) => W < 600;
const dotText = (W, tokens, context) => `${narrow(W) ? "" : "context "}${Math.round(tokens).toLocaleString("en-US")} / ${context.toLocaleString("en-US")}`;
const bannerWidth = (W, context) => Math.min(460, W - 40 - 8 * dotText(W, context, context).length);

function drawBanner(ctx, W, scene, time) {
  if (!scene.flags.flash) return;
  const pulse = 0.5 + 0.5 * Math.sin(time / 300), w = bannerWidth(W, scene.opts.context), x = 14, y = 8;
  ctx.fillStyle = `rgba(239,68,68,${0.25 + 0.3 * pulse})`; ctx.fillRect(x - 4, y - 4, w + 8, 52);
  ctx.fillStyle = "#b91c1c"; ctx.fillRect(x, y, w, 44);
  const saved = fmtBytes(scene.r.flash.saved);
  label(ctx, [`⚡ ${saved} MEMORY SAVED`, `⚡ ${saved} SAVED`, saved], x + w / 2, y + 21, w - 12, {size: 17, min: 10, bold: true, align: "center", color: "#fff"});
  label(ctx, ["FlashAttention: transient prefill scores, one layer at a time", "FlashAttention: transient prefill scores", "by FlashAttention"],
    x + w / 2, y + 37, w - 12, {size: 11, min: 8, align: "center", color: "#fff"});
}

// The context diagonal and its dot, drawn last so nothing hides them.
function diagonalGeometry(W, H, opts) {
  const frac = opts.context ? opts.tokens / opts.context : 0, x0 = 14, y0 = H - 14, x1 = W - 14, y1 = 14;
  const x = x0 + frac * (x1 - x0), y = y0 - frac * (y0 - y1);
  const label = dotText(W, opts.tokens, opts.context);
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
  note({text: d.label, x: d.lx - 4, y: d.ly - 13, w: tw + 8, h: 18, dot: true});
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
    layer.regions = []; layer.labels = []; recordInto(layer.labels);
    if (n > 1) drawMultiGPU(g, {x: 20, y: 58, w: W - 140, h: multi}, scene, n, layer.regions);
    drawChipLayer(g, geo, scene, layer.regions);
    drawGauge(g, W - 80, 60, 50, H * 0.58, scene, layer.regions);
    drawLanes(g, {x: 20, y: 70 + H * 0.58, w: W - 40, h: H * 0.42 - 80}, scene, layer.regions);
    recordInto(null); layer.key = key; full = true;
  }
  const d = diagonalGeometry(W, H, {...scene.opts, tokens: scene.live ?? scene.opts.tokens}); // the dot moves every frame
  const bw = bannerWidth(W, scene.opts.context) + 10, lanes = particleLanes(geo);
  const dirty = full ? [{x: 0, y: 0, w: W, h: H}] : [
    {x: 8, y: 2, w: bw, h: 58}, {x: geo.dx, y: geo.dy, w: geo.die, h: geo.die}, ...lanes,
    d.box, ...(frameState.dot ? [frameState.dot] : [])];
  const live = [];
  let drawn = [];
  dirty.forEach((r, i) => {
    const x = Math.max(0, Math.floor(r.x)), y = Math.max(0, Math.floor(r.y));
    const w = Math.min(W, Math.ceil(r.x + r.w)) - x, h = Math.min(H, Math.ceil(r.y + r.h)) - y;
    if (w <= 0 || h <= 0) return;
    recordInto(i === 0 ? live : null); // the moving parts' labels, recorded once a frame
    ctx.save();
    if (!full) { ctx.beginPath(); ctx.rect(x, y, w, h); ctx.clip(); }
    ctx.clearRect(x, y, w, h);
    ctx.drawImage(layer.canvas, x * dpr, y * dpr, w * dpr, h * dpr, x, y, w, h);
    drawBanner(ctx, W, scene, time);
    drawDieLive(ctx, geo.dx, geo.dy, geo.die, scene, time);
    const covered = particles(ctx, geo, time, scene);
    if (i === 0) drawn = covered;
    drawDiagonal(ctx, d);
    ctx.restore();
  });
  recordInto(null);
  frameState.dot = d.box;
  const regions = [...layer.regions, {x: d.x - 12, y: d.y - 12, w: 24, h: 24, tip: "The diagonal is the context: token i attends to tokens 1..i (a triangle). The dot marks the current step over the maximum context."}];
  return {regions, dot: {x: d.x, y: d.y, r: 7}, labels: [...layer.labels, ...live], lanes: drawn};
}
