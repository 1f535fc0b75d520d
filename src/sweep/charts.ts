/**
 * Pictures of the sweep: an SVG file (throughput and p99 against threads, one line per isolation level)
 * and a small bar chart for the terminal. Hand-written, no chart dependency.
 */

import type { IsolationLevel } from '../config/index.js'
import type { SweepPoint, SweepResults } from './analysis.js'
import { formatHz } from './machine.js'

const LEVELS: readonly IsolationLevel[] = ['isolated', 'shared', 'synchronized', 'serializable']
const COLORS: Record<IsolationLevel, string> = {
  isolated: '#1b9e77',
  shared: '#d95f02',
  synchronized: '#7570b3',
  serializable: '#e7298a',
}

/** Escapes text for XML content and attribute values. */
export function escapeXml(text: string): string {
  return text.replace(
    /[<>&"']/g,
    (c) => `&${{ '<': 'lt', '>': 'gt', '&': 'amp', '"': 'quot', "'": 'apos' }[c]};`,
  )
}

/** The `threads` series of `points`, per isolation level, ordered by threads. */
export function threadSeries(points: readonly SweepPoint[]): Map<IsolationLevel, SweepPoint[]> {
  const out = new Map<IsolationLevel, SweepPoint[]>()
  for (const level of LEVELS) {
    const series = points
      .filter((p) => p.series === 'threads' && p.isolation === level)
      .sort((a, b) => a.threads - b.threads)
    if (series.length > 0) out.set(level, series)
  }
  return out
}

/**
 * A "nice" axis for values up to `max`: a tick step of 1, 2, 2.5 or 5 times a power of ten giving at most
 * {@link MAX_TICKS} intervals, and the top of the axis (a whole number of steps, at least `max`).
 */
export function niceAxis(max: number): { top: number; step: number } {
  if (!(max > 0) || !Number.isFinite(max)) return { top: 1, step: 0.25 }
  const raw = max / MAX_TICKS
  const power = 10 ** Math.floor(Math.log10(raw))
  const step = [1, 2, 2.5, 5, 10].map((m) => m * power).find((s) => s >= raw)!
  return { top: Number((step * Math.ceil(max / step - 1e-9)).toPrecision(12)), step }
}

const MAX_TICKS = 4

/** An axis label: `2500` → `'2.5k'`, `12.5` → `'12.5'`, `0` → `'0'`. */
export function formatTick(v: number): string {
  return v >= 1000 ? `${Number((v / 1000).toFixed(2))}k` : String(Number(v.toFixed(2)))
}

interface Panel {
  title: string
  value: (p: SweepPoint) => number
  format: (v: number) => string
  x: number
  /** A dashed horizontal line with its label (the p99 budget). */
  guide?: { value: number; label: string }
}

const W = 900
const H = 420
const PANEL_W = 360
const PANEL_H = 260
const TOP = 70

/** The sweep chart as a standalone SVG document. */
export function renderSweepSvg(results: SweepResults): string {
  const series = threadSeries(results.points)
  const all = [...series.values()].flat()
  const maxThreads = Math.max(1, ...all.map((p) => p.threads))
  const panels: Panel[] = [
    { title: 'throughput (executions/s)', value: (p) => p.throughput, format: formatTick, x: 70 },
    {
      title: 'p99 latency (ms)',
      value: (p) => p.p99Ms,
      format: formatTick,
      x: 510,
      guide: { value: results.budgetMs, label: `budget ${results.budgetMs} ms` },
    },
  ]
  const m = results.machine
  const title = `agentpool ticket workload: concurrency sweep (${m.cpus} cpus, node ${m.node}, ${m.os}${results.quick ? ', quick' : ''})`
  const parts: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="12">`,
    `<title>${escapeXml(title)}</title>`,
    `<rect width="${W}" height="${H}" fill="#ffffff"/>`,
    `<text x="${W / 2}" y="24" text-anchor="middle" font-size="16">${escapeXml(title)}</text>`,
  ]
  for (const panel of panels) parts.push(renderPanel(panel, series, maxThreads))
  LEVELS.filter((l) => series.has(l)).forEach((level, i) => {
    const x = 70 + i * 160
    const y = H - 24
    parts.push(
      `<line x1="${x}" y1="${y}" x2="${x + 24}" y2="${y}" stroke="${COLORS[level]}" stroke-width="3"/>`,
      `<text x="${x + 30}" y="${y + 4}">${escapeXml(level)}</text>`,
    )
  })
  parts.push('</svg>')
  return `${parts.join('\n')}\n`
}

function renderPanel(panel: Panel, series: Map<IsolationLevel, SweepPoint[]>, maxThreads: number): string {
  const values = [...series.values()].flat().map(panel.value)
  const axis = niceAxis(Math.max(0, panel.guide?.value ?? 0, ...values.filter(Number.isFinite)))
  const px = (threads: number) =>
    panel.x + (maxThreads === 1 ? PANEL_W / 2 : ((threads - 1) / (maxThreads - 1)) * PANEL_W)
  const py = (v: number) => TOP + PANEL_H - (Math.min(v, axis.top) / axis.top) * PANEL_H
  const out: string[] = [
    `<g>`,
    `<text x="${panel.x + PANEL_W / 2}" y="${TOP - 14}" text-anchor="middle" font-size="13">${escapeXml(panel.title)}</text>`,
    `<line x1="${panel.x}" y1="${TOP + PANEL_H}" x2="${panel.x + PANEL_W}" y2="${TOP + PANEL_H}" stroke="#333"/>`,
    `<line x1="${panel.x}" y1="${TOP}" x2="${panel.x}" y2="${TOP + PANEL_H}" stroke="#333"/>`,
  ]
  for (let v = axis.step; v <= axis.top + 1e-9; v += axis.step) {
    const y = py(v)
    out.push(`<line x1="${panel.x}" y1="${y}" x2="${panel.x + PANEL_W}" y2="${y}" stroke="#ddd"/>`)
  }
  for (let v = 0; v <= axis.top + 1e-9; v += axis.step) {
    out.push(
      `<text x="${panel.x - 6}" y="${py(v) + 4}" text-anchor="end">${escapeXml(panel.format(v))}</text>`,
    )
  }
  if (panel.guide !== undefined) {
    const y = py(panel.guide.value)
    out.push(
      `<line x1="${panel.x}" y1="${y}" x2="${panel.x + PANEL_W}" y2="${y}" stroke="#c00" stroke-dasharray="6 4"/>`,
      `<text x="${panel.x + 4}" y="${y - 4}" fill="#c00">${escapeXml(panel.guide.label)}</text>`,
    )
  }
  for (let t = 1; t <= maxThreads; t++) {
    out.push(`<text x="${px(t)}" y="${TOP + PANEL_H + 16}" text-anchor="middle">${t}</text>`)
  }
  out.push(`<text x="${panel.x + PANEL_W / 2}" y="${TOP + PANEL_H + 34}" text-anchor="middle">threads</text>`)
  for (const [level, points] of series) {
    const coords = points.map((p) => `${px(p.threads).toFixed(1)},${py(panel.value(p)).toFixed(1)}`)
    out.push(
      `<polyline fill="none" stroke="${COLORS[level]}" stroke-width="2" points="${coords.join(' ')}"/>`,
    )
    for (const c of coords) {
      const [x, y] = c.split(',')
      out.push(`<circle cx="${x}" cy="${y}" r="3" fill="${COLORS[level]}"/>`)
    }
  }
  out.push('</g>')
  return out.join('\n')
}

/** A bar chart of throughput per threads and isolation level, with p99 beside each bar. */
export function renderTerminalChart(points: readonly SweepPoint[], width = 40): string {
  const series = threadSeries(points)
  const max = Math.max(0, ...[...series.values()].flat().map((p) => p.throughput))
  const lines = ['throughput vs threads (bar), p99 latency at the end of each bar']
  for (const [level, pts] of series) {
    for (const [i, p] of pts.entries()) {
      const bar = max > 0 ? '█'.repeat(Math.round((p.throughput / max) * width)) : ''
      lines.push(
        `${(i === 0 ? level : '').padEnd(12)} ${String(p.threads).padStart(3)} │${bar.padEnd(width)} ${formatHz(p.throughput).padStart(7)}/s  p99 ${p.p99Ms.toFixed(1)} ms`,
      )
    }
  }
  return lines.join('\n')
}
