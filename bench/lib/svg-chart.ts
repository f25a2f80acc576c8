/**
 * Hand-written SVG line charts: side-by-side panels sharing one legend, each with a title,
 * labelled axes, tick marks, grid lines, markers with their values, and optional dashed
 * horizontal reference lines. No dependencies; the output is a standalone SVG 1.1 document.
 */

export interface Point {
  x: number;
  y: number;
}

export interface Series {
  name: string;
  color: string;
  points: Point[];
}

export interface ReferenceLine {
  y: number;
  color: string;
  /** Drawn at the line's right end; leave out and explain the line in legendNotes when space is short. */
  label?: string;
}

export interface Panel {
  title: string;
  xLabel: string;
  yLabel: string;
  /** log2 spaces 1, 2, 4, 8 evenly. */
  xScale: 'linear' | 'log2';
  /** Tick positions; defaults to every x that occurs. */
  xTicks?: number[];
  series: Series[];
  references?: ReferenceLine[];
  /** Digits after the decimal point in point labels. */
  valueDigits?: number;
}

export interface ChartSpec {
  title: string;
  subtitle?: string;
  panels: Panel[];
  /** Extra legend entries drawn as dashed lines (what the reference lines mean). */
  legendNotes?: { label: string; color: string; dashed: boolean }[];
  /** Lines of small print under the panels. */
  footnotes?: string[];
  panelWidth?: number;
  panelHeight?: number;
}

export const PALETTE = ['#1f77b4', '#d62728', '#2ca02c', '#9467bd', '#ff7f0e', '#8c564b'];

export function escapeXml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&apos;' })[c] as string);
}

/** 0 = first tick; steps of 1, 2, 2.5 or 5 times a power of ten; the last tick >= max. */
export function niceTicks(max: number, target = 5): number[] {
  if (!(max > 0) || !Number.isFinite(max)) return [0, 1];
  const raw = max / target;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * mag).find((s) => s >= raw * 0.999) ?? 10 * mag;
  const count = Math.ceil(max / step - 1e-9);
  const ticks: number[] = [];
  for (let i = 0; i <= count; i++) ticks.push(Number((i * step).toPrecision(12)));
  return ticks;
}

/** A short label for a tick or value: no trailing zeros, thousands as "1.5k". */
export function formatNumber(v: number, digits = 2): string {
  if (!Number.isFinite(v)) return 'n/a';
  const a = Math.abs(v);
  if (a >= 10_000) return `${Number((v / 1000).toFixed(1))}k`;
  if (a >= 100) return String(Math.round(v));
  return String(Number(v.toFixed(a >= 10 ? Math.min(digits, 1) : digits)));
}

/** A white outline behind small labels keeps them legible over lines and grid. */
const HALO = 'stroke="#ffffff" stroke-width="3" stroke-linejoin="round" paint-order="stroke"';

/** Greedy word wrap to at most `maxChars` per line. */
export function wrapText(s: string, maxChars: number): string[] {
  const lines: string[] = [];
  let line = '';
  for (const word of s.split(/\s+/).filter((w) => w.length > 0)) {
    if (line.length > 0 && line.length + 1 + word.length > maxChars) {
      lines.push(line);
      line = word;
    } else line = line.length > 0 ? `${line} ${word}` : word;
  }
  if (line.length > 0) lines.push(line);
  return lines;
}

const f = (n: number): string => String(Math.round(n * 10) / 10);

function text(x: number, y: number, s: string, attrs = ''): string {
  return `<text x="${f(x)}" y="${f(y)}"${attrs ? ` ${attrs}` : ''}>${escapeXml(s)}</text>`;
}

function renderPanel(p: Panel, ox: number, oy: number, w: number, h: number): string {
  const m = { left: 74, right: 24, top: 34, bottom: 58 };
  const pw = w - m.left - m.right;
  const ph = h - m.top - m.bottom;
  const x0 = ox + m.left;
  const y0 = oy + m.top;
  const out: string[] = [];
  out.push(text(x0 + pw / 2, oy + 20, p.title, 'text-anchor="middle" font-size="14" font-weight="bold"'));

  const allPoints = p.series.flatMap((s) => s.points).filter((pt) => Number.isFinite(pt.x) && Number.isFinite(pt.y));
  const xs = p.xTicks ?? [...new Set(allPoints.map((pt) => pt.x))].sort((a, b) => a - b);
  const tx = (v: number): number => (p.xScale === 'log2' ? Math.log2(v) : v);
  let xmin = Math.min(...xs.map(tx));
  let xmax = Math.max(...xs.map(tx));
  if (!Number.isFinite(xmin) || !Number.isFinite(xmax)) [xmin, xmax] = [0, 1];
  const pad = xmax > xmin ? (xmax - xmin) * 0.08 : 1;
  xmin -= pad;
  xmax += pad;
  const sx = (v: number): number => x0 + ((tx(v) - xmin) / (xmax - xmin)) * pw;

  const ymaxData = Math.max(0, ...allPoints.map((pt) => pt.y), ...(p.references ?? []).map((r) => r.y));
  const yTicks = niceTicks(ymaxData * 1.12);
  const ymax = yTicks[yTicks.length - 1];
  const sy = (v: number): number => y0 + ph - (v / ymax) * ph;
  const tickDigits = ymax <= 1 ? 3 : ymax <= 10 ? 2 : 1;

  // grid + y ticks
  for (const t of yTicks) {
    const y = sy(t);
    out.push(`<line x1="${f(x0)}" y1="${f(y)}" x2="${f(x0 + pw)}" y2="${f(y)}" stroke="#e3e3e3" stroke-width="1"/>`);
    out.push(`<line x1="${f(x0 - 5)}" y1="${f(y)}" x2="${f(x0)}" y2="${f(y)}" stroke="#333" stroke-width="1"/>`);
    out.push(text(x0 - 8, y + 4, formatNumber(t, tickDigits), 'text-anchor="end" font-size="11"'));
  }
  // x ticks
  for (const t of xs) {
    const x = sx(t);
    out.push(`<line x1="${f(x)}" y1="${f(y0 + ph)}" x2="${f(x)}" y2="${f(y0 + ph + 5)}" stroke="#333" stroke-width="1"/>`);
    out.push(text(x, y0 + ph + 19, formatNumber(t), 'text-anchor="middle" font-size="11"'));
  }
  // axes
  out.push(`<line x1="${f(x0)}" y1="${f(y0)}" x2="${f(x0)}" y2="${f(y0 + ph)}" stroke="#333" stroke-width="1"/>`);
  out.push(`<line x1="${f(x0)}" y1="${f(y0 + ph)}" x2="${f(x0 + pw)}" y2="${f(y0 + ph)}" stroke="#333" stroke-width="1"/>`);
  out.push(text(x0 + pw / 2, y0 + ph + 44, p.xLabel, 'text-anchor="middle" font-size="12"'));
  const ylx = ox + 18;
  const yly = y0 + ph / 2;
  out.push(text(ylx, yly, p.yLabel, `text-anchor="middle" font-size="12" transform="rotate(-90 ${f(ylx)} ${f(yly)})"`));

  // reference lines
  for (const r of p.references ?? []) {
    if (!Number.isFinite(r.y)) continue;
    const y = sy(r.y);
    out.push(`<line x1="${f(x0)}" y1="${f(y)}" x2="${f(x0 + pw)}" y2="${f(y)}" stroke="${r.color}" stroke-width="1.5" stroke-dasharray="6 4"/>`);
    if (r.label) out.push(text(x0 + pw - 4, y - 5, r.label, `text-anchor="end" font-size="10" fill="${r.color}" ${HALO}`));
  }
  // series
  const digits = p.valueDigits ?? 1;
  for (const [si, s] of p.series.entries()) {
    const pts = s.points.filter((pt) => Number.isFinite(pt.x) && Number.isFinite(pt.y)).sort((a, b) => a.x - b.x);
    if (pts.length === 0) continue;
    if (pts.length > 1) {
      const d = pts.map((pt) => `${f(sx(pt.x))},${f(sy(pt.y))}`).join(' ');
      out.push(`<polyline points="${d}" fill="none" stroke="${s.color}" stroke-width="2.2" stroke-linejoin="round"/>`);
    }
    for (const pt of pts) {
      const x = sx(pt.x);
      const y = sy(pt.y);
      out.push(`<circle cx="${f(x)}" cy="${f(y)}" r="4" fill="${s.color}" stroke="#fff" stroke-width="1"/>`);
      // Alternate label sides so two series at similar heights stay legible.
      const dy = si % 2 === 0 ? -9 : 16;
      out.push(text(x + 6, y + dy, formatNumber(pt.y, digits), `font-size="10" fill="${s.color}" ${HALO}`));
    }
  }
  return `<g>\n${out.join('\n')}\n</g>`;
}

export function renderChart(spec: ChartSpec): string {
  const pw = spec.panelWidth ?? 480;
  const ph = spec.panelHeight ?? 340;
  const width = pw * Math.max(1, spec.panels.length) + 20;
  const parts: string[] = [];
  parts.push(text(width / 2, 28, spec.title, 'text-anchor="middle" font-size="17" font-weight="bold"'));
  if (spec.subtitle) parts.push(text(width / 2, 50, spec.subtitle, 'text-anchor="middle" font-size="12" fill="#555"'));

  // Legend: every series name once, then the notes; rows wrap to the width, each row centred.
  const seen = new Map<string, { color: string; dashed: boolean }>();
  for (const p of spec.panels) for (const s of p.series) if (!seen.has(s.name)) seen.set(s.name, { color: s.color, dashed: false });
  for (const n of spec.legendNotes ?? []) seen.set(n.label, { color: n.color, dashed: n.dashed });
  const entryWidth = (label: string): number => 32 + label.length * 6.6 + 20;
  const rows: [string, { color: string; dashed: boolean }][][] = [[]];
  let rowWidth = 0;
  for (const entry of seen.entries()) {
    const w = entryWidth(entry[0]);
    if (rowWidth > 0 && rowWidth + w > width - 20) {
      rows.push([]);
      rowWidth = 0;
    }
    rows[rows.length - 1].push(entry);
    rowWidth += w;
  }
  let legendY = spec.subtitle ? 74 : 56;
  for (const row of rows) {
    const total = row.reduce((a, [label]) => a + entryWidth(label), 0);
    let lx = Math.max(10, (width - total) / 2);
    for (const [label, e] of row) {
      const dash = e.dashed ? ' stroke-dasharray="6 4"' : '';
      parts.push(`<line x1="${f(lx)}" y1="${f(legendY - 4)}" x2="${f(lx + 26)}" y2="${f(legendY - 4)}" stroke="${e.color}" stroke-width="2.2"${dash}/>`);
      if (!e.dashed) parts.push(`<circle cx="${f(lx + 13)}" cy="${f(legendY - 4)}" r="4" fill="${e.color}" stroke="#fff" stroke-width="1"/>`);
      parts.push(text(lx + 32, legendY, label, 'font-size="12"'));
      lx += entryWidth(label);
    }
    legendY += 18;
  }
  const top = legendY;

  for (const [i, p] of spec.panels.entries()) parts.push(renderPanel(p, 10 + i * pw, top, pw, ph));
  const foot = (spec.footnotes ?? []).flatMap((line) => wrapText(line, Math.floor((width - 28) / 6.2)));
  for (const [i, line] of foot.entries()) parts.push(text(14, top + ph + 18 + i * 15, line, 'font-size="11" fill="#555"'));
  const height = top + ph + 10 + foot.length * 15 + 8;

  return [
    '<?xml version="1.0" encoding="UTF-8"?>',
    `<svg xmlns="http://www.w3.org/2000/svg" version="1.1" width="${width}" height="${f(height)}" viewBox="0 0 ${width} ${f(height)}" font-family="DejaVu Sans, Helvetica, Arial, sans-serif">`,
    `<rect x="0" y="0" width="${width}" height="${f(height)}" fill="#ffffff"/>`,
    ...parts,
    '</svg>',
    '',
  ].join('\n');
}
