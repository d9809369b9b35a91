// The canvas kit of the memory page: colours, stripe and tick patterns, byte and parameter formats, and
// label(), which fits a text to its box and records the box it drew (recordInto) for the layout tests.

import {GIB} from "./formulas.js";

export const C = {weights: "#8b5cf6", grey: "#4b5563", free: "#1f2a44", red: "#ef4444", green: "#22c55e",
  die: "#1e293b", text: "#e5e9f5", muted: "#8d99b8", line: "#26324f", dot: "#d9f99d", kv: "#38bdf8"};
const HUES = [199, 142, 38, 330, 262, 12, 170, 55, 290, 90, 220, 0];
const patterns = new Map();
let sink = null; // where label() and note() record the boxes drawn (null: not recording)

// Record the boxes of the texts drawn from now on into `list` (null: stop recording).
export function recordInto(list) {
  sink = list;
}

// Record one box drawn without label() (rotated or hand-placed text).
export function note(box) {
  if (sink) sink.push(box);
}

// Draw the first of `variants` that fits `maxW` at a font size from `size` down to `min` px, with the
// baseline at y; `bg` fills the text's box first. Returns the box, or null when no variant fits.
export function label(ctx, variants, x, y, maxW, {size = 11, min = 8, bold = false, align = "left", color = null, bg = null} = {}) {
  for (const t of [].concat(variants)) {
    for (let px = size; px >= min; px -= 1) {
      ctx.font = `${bold ? "bold " : ""}${px}px system-ui`;
      const m = ctx.measureText(t);
      if (m.width > maxW) continue;
      const left = align === "center" ? x - m.width / 2 : align === "right" ? x - m.width : x;
      const box = {text: t, x: left, y: y - m.fontBoundingBoxAscent, w: m.width, h: m.fontBoundingBoxAscent + m.fontBoundingBoxDescent};
      if (bg) { ctx.fillStyle = bg; ctx.fillRect(box.x - 4, box.y - 1, box.w + 8, box.h + 2); }
      if (color) ctx.fillStyle = color;
      ctx.textAlign = align; ctx.fillText(t, x, y); ctx.textAlign = "left";
      if (sink) sink.push(box);
      return box;
    }
  }
  return null;
}

export function seqColor(k, alpha = 1) {
  return `hsla(${HUES[k % HUES.length]}, 80%, ${58 - 8 * (Math.floor(k / HUES.length) % 3)}%, ${alpha})`;
}

export function stripes(ctx, color, size = 8) {
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
export function ticks(ctx, period) {
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
  const hit = units.find(([, size]) => Math.abs(b) >= size);
  if (!hit) return `${Math.round(b).toLocaleString("en-US")} B`;
  return `${(b / hit[1]).toLocaleString("en-US", {minimumFractionDigits: 2, maximumFractionDigits: 2})} ${hit[0]}`;
}

// A parameter count with a unit that keeps a digit (api.fmt_params): "8.03 B", "135 M", "20.6 K", "512".
export function fmtParams(n) {
  for (const [u, size] of [["B", 1e9], ["M", 1e6], ["K", 1e3]]) {
    if (n >= size) {
      const d = n < 10 * size ? 2 : n < 100 * size ? 1 : 0;
      return `${(n / size).toLocaleString("en-US", {minimumFractionDigits: d, maximumFractionDigits: d})} ${u}`;
    }
  }
  return Math.round(n).toLocaleString("en-US");
}
