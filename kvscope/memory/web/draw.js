// Canvas drawing of one state: GPU die with its HBM stacks (or GDDR chips), per-GPU memory gauge
// with the prefill spike, the batch lanes (one row per slot) and the context diagonal.
// drawScene returns hover regions [{x, y, w, h, tip}] for the tooltips.

import {GIB, kvShare, slotBytes} from "./formulas.js";

const C = {weights: "#8b5cf6", grey: "#4b5563", free: "#1f2a44", red: "#ef4444", green: "#22c55e",
  die: "#1e293b", text: "#e5e9f5", muted: "#8d99b8", line: "#26324f"};
const HUES = [199, 142, 38, 330, 262, 12, 170, 55, 290, 90, 220, 0];
const patterns = new Map();

export function seqColor(k, alpha = 1) {
  return `hsla(${HUES[k % HUES.length]}, 80%, ${58 - 8 * (Math.floor(k / HUES.length) % 3)}%, ${alpha})`;
}

function stripes(ctx, color) {
  if (patterns.has(color)) return patterns.get(color);
  const c = document.createElement("canvas");
  c.width = c.height = 8;
  const g = c.getContext("2d");
  g.strokeStyle = color; g.lineWidth = 2;
  g.beginPath(); g.moveTo(0, 8); g.lineTo(8, 0); g.moveTo(-2, 2); g.lineTo(2, -2); g.moveTo(6, 10); g.lineTo(10, 6);
  g.stroke();
  const p = ctx.createPattern(c, "repeat");
  patterns.set(color, p);
  return p;
}

const gibShort = (b) => `${(b / GIB).toFixed(b >= 100 * GIB ? 0 : 1)} GiB`;

// Per-GPU memory as ordered segments [{kind, bytes, seq}] : weights, then per slot real + reserved-unused.
export function segments(scene) {
  const {model, r, opts} = scene;
  const share = kvShare(model, opts.tp);
  const segs = [{kind: "weights", bytes: r.per_gpu.weights_bytes}];
  r.slots.forEach((st) => {
    const [real, reserved] = slotBytes(model, opts, st.tokens);
    segs.push({kind: "kv", bytes: real * share, seq: st.request});
    if (reserved > real) segs.push({kind: "unused", bytes: (reserved - real) * share, seq: st.request});
  });
  return segs;
}

// The segment under the middle of each of n equal cells of the GPU's memory: one sweep, O(n + segments).
function cellSegments(segs, cap, n) {
  const out = new Array(n);
  let i = 0, end = segs.length ? segs[0].bytes : 0;
  for (let c = 0; c < n; c++) {
    const pos = ((c + 0.5) / n) * cap;
    while (i < segs.length && end <= pos) { i++; end += i < segs.length ? segs[i].bytes : 0; }
    out[c] = i < segs.length ? segs[i] : null;
  }
  return out;
}

function cellColor(seg, scene) {
  if (seg.kind === "weights") return C.weights;
  if (seg.kind === "unused") return C.grey;
  return scene.flags.cb ? seqColor(seg.seq) : "#38bdf8";
}

function drawModule(ctx, x, y, w, h, scene, segs, active, label) {
  ctx.fillStyle = active ? "#101a33" : "#161b26";
  ctx.fillRect(x, y, w, h);
  ctx.strokeStyle = active ? "#3b4a70" : "#2a2f3a";
  ctx.strokeRect(x + 0.5, y + 0.5, w - 1, h - 1);
  ctx.fillStyle = active ? C.muted : "#4b5262";
  ctx.font = "10px system-ui";
  ctx.fillText(label, x + 3, y - 3);
  if (!active) {
    ctx.fillStyle = stripes(ctx, "#262b36"); ctx.fillRect(x + 1, y + 1, w - 2, h - 2);
    return;
  }
  const pitch = 7, cols = Math.max(1, Math.floor((w - 4) / pitch)), rows = Math.max(1, Math.floor((h - 4) / pitch));
  const n = cols * rows, cells = cellSegments(segs, scene.r.per_gpu.usable_bytes, n);
  ctx.strokeStyle = C.free;
  for (let i = 0; i < n; i++) {
    const seg = cells[i], cx = x + 2 + (i % cols) * pitch, cy = y + 2 + Math.floor(i / cols) * pitch;
    if (!seg) { ctx.strokeRect(cx + 0.5, cy + 0.5, 5, 5); continue; }
    ctx.fillStyle = cellColor(seg, scene);
    ctx.fillRect(cx, cy, 6, 6);
    if (scene.flags.paged && seg.kind === "kv") {
      ctx.fillStyle = "#0b1020"; ctx.fillRect(cx + 3, cy, 0.8, 6); ctx.fillRect(cx, cy + 3, 6, 0.8);
    }
  }
}

function ghost(ctx, x, y, w, h, frac) {
  const gh = Math.max(4, Math.min(1, frac) * h);
  ctx.fillStyle = "rgba(239,68,68,0.16)"; ctx.fillRect(x, y + h - gh, w, gh);
  ctx.fillStyle = stripes(ctx, "rgba(239,68,68,0.55)"); ctx.fillRect(x, y + h - gh, w, gh);
  ctx.setLineDash([4, 3]); ctx.strokeStyle = C.red; ctx.strokeRect(x + 0.5, y + h - gh + 0.5, w - 1, gh - 1);
  ctx.setLineDash([]);
}

function drawDie(ctx, x, y, s, scene, time) {
  ctx.fillStyle = C.die; ctx.fillRect(x, y, s, s);
  ctx.strokeStyle = "#64748b"; ctx.strokeRect(x + 0.5, y + 0.5, s - 1, s - 1);
  ctx.fillStyle = C.text; ctx.font = "bold 12px system-ui"; ctx.textAlign = "center";
  ctx.fillText("GPU DIE", x + s / 2, y + 16);
  const n = 8, pad = 14, cell = (s - 2 * pad) / n, top = y + 26;
  for (let i = 0; i < n * n; i++) {
    const r = Math.floor(i / n), c = i % n;
    if (c > r) continue; // causal: a query row attends to keys up to itself
    let fill = "#334155";
    if (scene.flags.flash) {
      const wave = Math.sin(time / 250 - (r + c) * 0.6);
      fill = wave > 0.3 ? C.green : "rgba(34,197,94,0.25)";
    } else {
      fill = "rgba(239,68,68,0.35)";
    }
    ctx.fillStyle = fill;
    ctx.fillRect(x + pad + c * cell + 1, top + r * cell * 0.86 + 1, cell - 2, cell * 0.86 - 2);
  }
  ctx.font = "10px system-ui"; ctx.fillStyle = scene.flags.flash ? C.green : C.red;
  ctx.fillText(scene.flags.flash ? "tiles in SRAM: O(N) to HBM" : "N x N scores written to HBM", x + s / 2, y + s - 6);
  ctx.textAlign = "left";
}

function layoutSites(gpu) {
  if (gpu.hbm) return {sites: gpu.hbm.sites, active: gpu.hbm.active, kind: "HBM"};
  return {sites: gpu.gddr_chips || 8, active: gpu.gddr_chips || 8, kind: "GDDR"};
}

function drawChip(ctx, box, scene, time, regions) {
  const {gpu, r} = scene;
  const L = layoutSites(gpu), perSide = Math.ceil(L.sites / 2);
  const die = Math.min(box.h * 0.78, box.w * 0.34);
  const dx = box.x + (box.w - die) / 2, dy = box.y + (box.h - die) / 2;
  const mw = Math.min(die * 0.5, (box.w - die) / 2 - 46), gap = 12;
  const mh = (die * 1.1 - gap * (perSide - 1)) / perSide;
  const segs = segments(scene);
  const wsFrac = r.flash.without_flash / r.per_gpu.usable_bytes;
  for (let i = 0; i < L.sites; i++) {
    const left = i < perSide, j = left ? i : i - perSide;
    const mx = left ? dx - gap - mw : dx + die + gap, my = dy - die * 0.05 + j * (mh + gap);
    const active = i < L.active; // the last sites are the inactive ones (e.g. the sixth of an H100 SXM)
    drawModule(ctx, mx, my, mw, mh, scene, segs, active, active ? `${gpu.memory_type} ${i + 1}` : "inactive site");
    if (active && scene.flags.flash) ghost(ctx, left ? mx - 12 : mx + mw + 4, my, 8, mh, wsFrac);
    regions.push({x: mx, y: my, w: mw, h: mh, tip: active
      ? `${gpu.memory_type} ${L.kind === "HBM" ? "stack" : "chip"} ${i + 1} of ${L.active} active. Addresses interleave over all ${L.kind === "HBM" ? "stacks" : "chips"}, so each holds the same mix: purple weights ${gibShort(r.per_gpu.weights_bytes)}, coloured KV ${gibShort(r.per_gpu.kv_bytes)}, grey reserved-but-empty, outlined free.`
      : `Physical HBM site without an active stack: ${gpu.name} uses ${L.active} of ${L.sites}.`});
  }
  drawDie(ctx, dx, dy, die, scene, time);
  if (r.per_gpu.occupancy > 1) {
    ctx.fillStyle = C.red; ctx.font = "bold 13px system-ui"; ctx.textAlign = "center";
    ctx.fillText(`DOES NOT FIT: ${r.per_gpu.occupancy.toFixed(1)}x this GPU's memory per rank`, dx + die / 2, dy + die + 22);
    ctx.textAlign = "left";
  }
  regions.push({x: dx, y: dy, w: die, h: die, tip: scene.flags.flash
    ? "FlashAttention computes attention tile by tile in on-chip SRAM (green wave) and keeps only O(N) row statistics in HBM."
    : "Without FlashAttention prefill writes one layer's B x heads x N x N score matrix to HBM (red), then frees it."});
  particles(ctx, dx, dy, die, mw, gap, time, scene);
  return {dx, dy, die};
}

function particles(ctx, dx, dy, die, mw, gap, time, scene) {
  const rate = Math.min(24, 4 + Math.log2(1 + scene.r.decode.bytes_per_step / GIB) * 4);
  ctx.fillStyle = "rgba(56,189,248,0.85)";
  for (let i = 0; i < rate; i++) {
    const f = ((time / 900 + i / rate) % 1), left = i % 2 === 0;
    const y = dy + ((i * 37) % 100) / 100 * die;
    const x = left ? dx - gap - 4 + f * (gap + 6) : dx + die + gap + 4 - f * (gap + 6);
    ctx.fillRect(x, y, 3, 3);
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
  seg(real, "#38bdf8");
  seg(pg.kv_bytes - real, stripes(ctx, "#9ca3af"));
  const spike = scene.r.flash.without_flash, sTop = px(used + spike), sBot = px(used);
  ctx.fillStyle = scene.flags.flash ? "rgba(239,68,68,0.12)" : "rgba(239,68,68,0.5)";
  ctx.fillRect(x + w * 0.25, top + hh - sTop, w * 0.5, sTop - sBot);
  if (scene.flags.flash) { ctx.fillStyle = stripes(ctx, "rgba(239,68,68,0.6)"); ctx.fillRect(x + w * 0.25, top + hh - sTop, w * 0.5, sTop - sBot); }
  ctx.fillStyle = pg.peak_without_flash > cap ? C.red : C.muted;
  ctx.fillText(`${(100 * pg.occupancy).toFixed(0)}%`, x + w / 2, top + hh + 12);
  ctx.textAlign = "left";
  regions.push({x, y: top, w, h: hh, tip: `One GPU: ${gibShort(pg.resident_bytes)} resident of ${gibShort(cap)} (weights ${gibShort(pg.weights_bytes)}, KV ${gibShort(pg.kv_bytes)}). Red spike: the transient prefill score matrix without FlashAttention, ${gibShort(scene.r.flash.without_flash)} for one layer${scene.flags.flash ? " (saved: drawn as a ghost)" : ""}.`});
}

function drawLanes(ctx, box, scene, regions) {
  const {r, opts} = scene, T = opts.context, rows = Math.min(r.slots.length, 32);
  const rh = Math.max(3, Math.min(14, (box.h - 18) / rows)), wpx = box.w;
  ctx.fillStyle = C.muted; ctx.font = "11px system-ui";
  const pagePx = (opts.page / T) * wpx, group = Math.max(1, Math.ceil(3 / pagePx));
  const label = opts.mode === "paged" ? `pages of ${opts.page} tokens${group > 1 ? `, one tick per ${group} pages` : ""}`
    : "max context reserved per slot";
  ctx.fillText(`Slots over token positions 0-${T.toLocaleString()} (${label})${r.slots.length > rows ? `, first ${rows} of ${r.slots.length}` : ""}`, box.x, box.y + 10);
  for (let i = 0; i < rows; i++) {
    const st = r.slots[i], y = box.y + 16 + i * rh, real = (st.tokens / T) * wpx;
    const reserved = opts.mode === "paged" ? (Math.ceil(st.tokens / opts.page) * opts.page / T) * wpx : wpx;
    ctx.fillStyle = stripes(ctx, "#6b7280"); ctx.fillRect(box.x, y, reserved, rh - 1);
    ctx.fillStyle = scene.flags.cb ? seqColor(st.request) : "#38bdf8";
    ctx.fillRect(box.x, y, real, rh - 1);
    if (opts.mode === "paged") {
      ctx.fillStyle = "#0b1020";
      for (let p = pagePx * group; p < reserved; p += pagePx * group) ctx.fillRect(box.x + p, y, 1, rh - 1);
    }
  }
  regions.push({x: box.x, y: box.y, w: box.w, h: box.h, tip: opts.mode === "static"
    ? "Static batching: each slot reserves the maximum context (grey) and keeps a finished request until the whole batch ends."
    : opts.mode === "cb" ? "Continuous batching: a new request (new colour) enters a slot the step after the previous one finishes; each still reserves the maximum context."
      : `Paged: each request holds ceil(tokens / ${opts.page}) pages; only its last page is partly empty (grey).`});
}

function drawBanner(ctx, W, scene, time) {
  if (!scene.flags.flash) return;
  const pulse = 0.55 + 0.45 * Math.sin(time / 300), w = Math.min(420, W * 0.5), x = (W - w) / 2, y = 8;
  ctx.shadowColor = `rgba(239,68,68,${pulse})`; ctx.shadowBlur = 18;
  ctx.fillStyle = "#b91c1c"; ctx.fillRect(x, y, w, 44); ctx.shadowBlur = 0;
  ctx.fillStyle = "#fff"; ctx.textAlign = "center"; ctx.font = "bold 17px system-ui";
  ctx.fillText(`⚡ ${gibShort(scene.r.flash.saved)} MEMORY SAVED`, W / 2, y + 21);
  ctx.font = "11px system-ui";
  ctx.fillText("FlashAttention: transient prefill scores, one layer at a time", W / 2, y + 37);
  ctx.textAlign = "left";
}

function drawDiagonal(ctx, W, H, frac) {
  ctx.strokeStyle = "rgba(34,197,94,0.45)"; ctx.lineWidth = 1.5;
  ctx.beginPath(); ctx.moveTo(10, H - 10); ctx.lineTo(W - 10, 10); ctx.stroke(); ctx.lineWidth = 1;
  const x = 10 + frac * (W - 20), y = H - 10 - frac * (H - 20);
  ctx.fillStyle = "#a3e635"; ctx.beginPath(); ctx.arc(x, y, 5, 0, 2 * Math.PI); ctx.fill();
}

export function drawScene(ctx, W, H, scene, time) {
  const regions = [];
  ctx.clearRect(0, 0, W, H);
  drawDiagonal(ctx, W, H, scene.opts.context ? scene.opts.tokens / scene.opts.context : 0);
  regions.push({x: W - 60, y: 0, w: 60, h: 40, tip: "The diagonal is the context: token i attends to tokens 1..i (a triangle). The dot marks the current step over the maximum context."});
  drawBanner(ctx, W, scene, time);
  const chipBox = {x: 20, y: 60, w: W - 120, h: H * 0.58};
  drawChip(ctx, chipBox, scene, time, regions);
  drawGauge(ctx, W - 80, 60, 50, H * 0.58, scene, regions);
  drawLanes(ctx, {x: 20, y: 70 + H * 0.58, w: W - 40, h: H * 0.42 - 80}, scene, regions);
  return regions;
}
