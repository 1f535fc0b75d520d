/**
 * What a sweep leaves behind: `sweep.json` (every point, the knees, the pick), `sweep.svg` (throughput and
 * p99 against threads) and the terminal chart and summary.
 *
 * @module
 */
import { mkdir, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { type SweepResults, sweepSummary } from './analysis.js'
import { renderSweepSvg, renderTerminalChart } from './charts.js'

/** Writes `sweep.json` and `sweep.svg` into `outDir` and returns the report to print. */
export async function writeSweepReport(results: SweepResults, outDir: string): Promise<string> {
  await mkdir(outDir, { recursive: true })
  const json = join(outDir, 'sweep.json')
  const svg = join(outDir, 'sweep.svg')
  await writeFile(json, `${JSON.stringify(results, null, 2)}\n`)
  await writeFile(svg, renderSweepSvg(results))
  const m = results.machine
  return (
    `\n${m.cpus} cpus, node ${m.node}, ${m.os}${results.quick ? ', quick' : ''}\n${renderTerminalChart(results.points)}\n\n` +
    `${sweepSummary(results).join('\n')}\nwritten: ${json}, ${svg}\n`
  )
}
