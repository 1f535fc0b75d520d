import { describe, expect, it } from 'vitest'
import {
  analyzeSweep,
  combinePasses,
  escapeXml,
  findKnee,
  formatTick,
  niceAxis,
  offeredLoad,
  pickWithinBudget,
  planMaxConcurrentSeries,
  planTasksPerThreadSeries,
  planThreadSeries,
  renderSweepSvg,
  renderTerminalChart,
  type SweepPoint,
  type SweepResults,
  sweepSummary,
} from '../bench/harness/index.js'
import type { IsolationLevel } from '../src/config/types.js'

function point(over: Partial<SweepPoint>): SweepPoint {
  return {
    series: 'threads',
    threads: 1,
    tasksPerThread: 4,
    maxConcurrent: 8,
    isolation: 'shared',
    offered: 8,
    throughput: 1000,
    p50Ms: 2,
    p99Ms: 5,
    completed: 1000,
    failed: 0,
    conflictRate: 0,
    rssMb: 100,
    heapUsedMb: 20,
    ...over,
  }
}

const threadsSeries = (isolation: IsolationLevel, rates: number[], p99: number[]) =>
  rates.map((throughput, i) => point({ threads: i + 1, isolation, throughput, p99Ms: p99[i]! }))

/** A minimal XML well-formedness check: tags balance, attributes are quoted, `&` starts an entity. */
function checkXml(xml: string): string[] {
  const problems: string[] = []
  const stack: string[] = []
  const body = xml.replace(/^<\?xml[^>]*\?>/, '')
  const tag = /<(\/?)([A-Za-z][\w:-]*)((?:\s+[\w:-]+="[^"<]*")*)\s*(\/?)>/g
  let last = 0
  for (let m = tag.exec(body); m !== null; m = tag.exec(body)) {
    const text = body.slice(last, m.index)
    if (text.includes('<') || text.includes('>'))
      problems.push(`stray angle bracket before offset ${m.index}`)
    last = tag.lastIndex
    const [, close, name, , selfClose] = m
    if (close) {
      if (stack.pop() !== name) problems.push(`</${name}> closes the wrong element`)
    } else if (!selfClose) stack.push(name!)
    if (stack.length === 0 && body.slice(last).trim() !== '') problems.push('content after the root element')
  }
  if (/[<>]/.test(body.slice(last))) problems.push('unparsed markup at the end')
  if (/&(?!(lt|gt|amp|quot|apos);)/.test(body)) problems.push('bare & outside an entity')
  if (stack.length > 0) problems.push(`unclosed: ${stack.join(', ')}`)
  return problems
}

describe('sweep knee', () => {
  it('picks the smallest setting within 5 % of the best throughput', () => {
    const pts = threadsSeries('shared', [1000, 1900, 1960, 2000], [5, 6, 9, 15])
    expect(findKnee(pts)?.threads).toBe(2)
  })

  it('picks the best setting itself when nothing smaller comes within 5 %', () => {
    const pts = threadsSeries('shared', [1000, 1800, 1899, 2000], [5, 6, 9, 15])
    expect(findKnee(pts)?.threads).toBe(4)
  })

  it('orders settings by threads, then tasksPerThread, then maxConcurrent, whatever the input order', () => {
    const pts = [
      point({ series: 'maxConcurrent', maxConcurrent: 16, throughput: 1000 }),
      point({ series: 'maxConcurrent', maxConcurrent: 4, throughput: 960 }),
      point({ series: 'maxConcurrent', maxConcurrent: 1, throughput: 400 }),
      point({ series: 'maxConcurrent', maxConcurrent: 8, throughput: 990 }),
    ]
    expect(findKnee(pts)?.maxConcurrent).toBe(4)
  })

  it('ignores points that measured nothing and has no knee without points', () => {
    expect(findKnee([])).toBeUndefined()
    expect(findKnee([point({ throughput: 0 }), point({ throughput: Number.NaN })])).toBeUndefined()
  })

  it('names one knee per isolation level for threads and one per other series', () => {
    const pts = [
      ...threadsSeries('isolated', [1000, 2000], [5, 6]),
      ...threadsSeries('synchronized', [900, 910], [5, 6]),
      point({ series: 'tasksPerThread', tasksPerThread: 1, throughput: 500 }),
      point({ series: 'tasksPerThread', tasksPerThread: 4, throughput: 600 }),
    ]
    const { knees } = analyzeSweep(pts, 100)
    expect(knees.map((k) => [k.label, k.point.threads, k.point.tasksPerThread])).toEqual([
      ['knee of threads (isolated)', 2, 4],
      ['knee of threads (synchronized)', 1, 4],
      ['knee of tasksPerThread', 1, 4],
    ])
  })
})

describe('sweep passes', () => {
  it('combines repeated passes of a setting into medians and summed counts', () => {
    const passes = [
      point({ throughput: 900, p50Ms: 3, p99Ms: 30, completed: 900, failed: 0, rssMb: 300, conflictRate: 0 }),
      point({
        throughput: 1500,
        p50Ms: 1,
        p99Ms: 10,
        completed: 1500,
        failed: 1,
        rssMb: 320,
        conflictRate: 0.02,
      }),
      point({
        throughput: 1100,
        p50Ms: 2,
        p99Ms: 90,
        completed: 1100,
        failed: 0,
        rssMb: 310,
        conflictRate: 0.01,
      }),
    ]
    expect(combinePasses(passes)).toEqual({
      ...passes[0],
      throughput: 1100,
      p50Ms: 2,
      p99Ms: 30,
      conflictRate: 0.01,
      rssMb: 310,
      heapUsedMb: 20,
      completed: 3500,
      failed: 1,
    })
    expect(combinePasses([passes[1]!])).toEqual(passes[1])
  })
})

describe('sweep latency budget', () => {
  const pts = [
    ...threadsSeries('shared', [1000, 2000, 2100, 2050], [5, 8, 30, 60]),
    point({ threads: 3, isolation: 'isolated', throughput: 2100, p99Ms: 20 }),
  ]

  it('picks the highest throughput whose p99 is within the budget, smaller setting on a tie', () => {
    expect(pickWithinBudget(pts, 25)).toMatchObject({ threads: 3, isolation: 'isolated' })
    expect(pickWithinBudget(pts, 10)).toMatchObject({ threads: 2, throughput: 2000 })
    expect(pickWithinBudget(pts, 8)).toMatchObject({ threads: 2 })
    expect(
      pickWithinBudget([point({ threads: 3, throughput: 500 }), point({ threads: 2, throughput: 500 })], 100)
        ?.threads,
    ).toBe(2)
  })

  it('finds nothing when every p99 is over the budget, and skips points with failed executions', () => {
    expect(pickWithinBudget(pts, 4)).toBeUndefined()
    expect(analyzeSweep(pts, 4).withinBudget).toBeUndefined()
    expect(pickWithinBudget([point({ failed: 1 })], 100)).toBeUndefined()
  })

  it('labels the pick with the budget', () => {
    expect(analyzeSweep(pts, 10).withinBudget?.label).toBe('best throughput with p99 ≤ 10 ms')
  })
})

describe('sweep charts', () => {
  const points = [
    ...threadsSeries('isolated', [1000, 1900, 1950, 1900], [4, 6, 12, 20]),
    ...threadsSeries('shared', [1100, 2000, 2050, 1980], [4, 5, 11, 19]),
    ...threadsSeries('synchronized', [800, 1500, 1520, 1490], [6, 9, 16, 30]),
    point({ series: 'tasksPerThread', tasksPerThread: 8, throughput: 99_999 }),
  ]
  const results: SweepResults = {
    machine: { cpus: 2, node: 'v20.20.2', os: 'linux <&"test">' },
    quick: true,
    startedAt: new Date(0).toISOString(),
    budgetMs: 10,
    points,
    ...analyzeSweep(points, 10),
  }

  it('draws a well-formed SVG with one line per isolation level in each panel', () => {
    const svg = renderSweepSvg(results)
    expect(svg.startsWith('<svg xmlns="http://www.w3.org/2000/svg"')).toBe(true)
    expect(checkXml(svg)).toEqual([])
    expect(svg.match(/<polyline /g)).toHaveLength(6)
    expect(svg.match(/<circle /g)).toHaveLength(24)
    for (const level of ['isolated', 'shared', 'synchronized']) expect(svg).toContain(`>${level}</text>`)
    expect(svg).toContain('linux &lt;&amp;&quot;test&quot;&gt;')
    expect(svg).toMatch(/^<svg [^>]*>\n<title>agentpool ticket workload: concurrency sweep \(2 cpus, /)
    expect(svg).toContain('throughput (executions/s)')
    expect(svg).toContain('p99 latency (ms)')
    expect(svg).toContain('>budget 10 ms</text>')
    expect(svg.match(/stroke-dasharray/g)).toHaveLength(1)
  })

  it('draws an empty but well-formed SVG when the sweep has no thread series', () => {
    const svg = renderSweepSvg({ ...results, points: [], knees: [], withinBudget: undefined })
    expect(checkXml(svg)).toEqual([])
    expect(svg).not.toContain('<polyline')
  })

  it('the XML check itself catches unbalanced tags and bare ampersands', () => {
    expect(checkXml('<svg><g></svg>')).not.toEqual([])
    expect(checkXml('<svg><text>a & b</text></svg>')).toEqual(['bare & outside an entity'])
    expect(checkXml('<svg><text>a</text></svg>')).toEqual([])
  })

  it('labels axis ticks compactly', () => {
    expect([0, 0.25, 12.5, 500, 1000, 2500, 1_250_000].map(formatTick)).toEqual([
      '0',
      '0.25',
      '12.5',
      '500',
      '1k',
      '2.5k',
      '1250k',
    ])
  })

  it('escapes XML special characters', () => {
    expect(escapeXml(`a<b>&"c'`)).toBe('a&lt;b&gt;&amp;&quot;c&apos;')
  })

  it('picks axis steps of 1, 2, 2.5 or 5 times a power of ten, at most four intervals, covering the maximum', () => {
    expect(niceAxis(2400)).toEqual({ top: 3000, step: 1000 })
    expect(niceAxis(220.9)).toEqual({ top: 300, step: 100 })
    expect(niceAxis(10)).toEqual({ top: 10, step: 2.5 })
    expect(niceAxis(7)).toEqual({ top: 8, step: 2 })
    expect(niceAxis(0.3)).toEqual({ top: 0.3, step: 0.1 })
    expect(niceAxis(0)).toEqual({ top: 1, step: 0.25 })
    for (const max of [1, 3.7, 99, 1234, 5e6]) {
      const { top, step } = niceAxis(max)
      expect(top).toBeGreaterThanOrEqual(max)
      expect(top / step).toBeLessThanOrEqual(4 + 1e-9)
    }
  })

  it('renders a terminal bar chart scaled to the best throughput, thread series only', () => {
    const chart = renderTerminalChart(points, 20)
    const lines = chart.split('\n')
    expect(lines).toHaveLength(1 + 12)
    expect(lines[1]).toBe(`isolated       1 │${'█'.repeat(10)}${' '.repeat(10)}    1.0k/s  p99 4.0 ms`)
    expect(lines[6]).toMatch(/^ {12} {3}2 │█{20} {4}2.0k\/s {2}p99 5\.0 ms$/)
    expect(lines[9]).toMatch(/^synchronized {3}1 │█{8} /)
    expect(chart).not.toContain('100.0k')
  })
})

describe('sweep plan', () => {
  it('runs threads 1 … 2 × cores at each of the three isolation levels, alternating the levels', () => {
    const plan = planThreadSeries(2)
    expect(plan).toHaveLength(12)
    expect(plan.map((p) => `${p.isolation}:${p.threads}`)).toEqual(
      [1, 2, 3, 4].flatMap((t) => ['isolated', 'shared', 'synchronized'].map((l) => `${l}:${t}`)),
    )
    expect(
      plan.every((p) => p.series === 'threads' && p.maxConcurrent === p.threads * p.tasksPerThread),
    ).toBe(true)
  })

  it('varies tasksPerThread, then maxConcurrent up to 4 × what the pool runs at once', () => {
    expect(planTasksPerThreadSeries(2, true).map((p) => p.tasksPerThread)).toEqual([1, 2, 4, 8])
    expect(planTasksPerThreadSeries(2, false).map((p) => p.tasksPerThread)).toEqual([1, 2, 4, 8, 16])
    expect(planMaxConcurrentSeries(2, 4, true).map((p) => p.maxConcurrent)).toEqual([1, 4, 16, 32])
    expect(planMaxConcurrentSeries(2, 4, false).map((p) => p.maxConcurrent)).toEqual([1, 2, 4, 8, 16, 32])
    expect(planMaxConcurrentSeries(3, 1, false).map((p) => p.maxConcurrent)).toEqual([1, 2, 4, 8, 12])
    const all = [...planTasksPerThreadSeries(2, true), ...planMaxConcurrentSeries(2, 4, true)]
    expect(all.every((p) => p.isolation === 'synchronized' && p.threads === 2)).toBe(true)
  })

  it('offers twice what the pool runs at once, or maxConcurrent if larger', () => {
    const s = { threads: 2, tasksPerThread: 4, isolation: 'shared' as const }
    expect(offeredLoad({ ...s, maxConcurrent: 8 })).toBe(16)
    expect(offeredLoad({ ...s, maxConcurrent: 32 })).toBe(32)
  })
})

describe('sweep summary', () => {
  const base: SweepResults = {
    machine: { cpus: 2, node: 'v20.20.2', os: 'linux' },
    quick: true,
    startedAt: new Date(0).toISOString(),
    budgetMs: 10,
    points: [],
    knees: [],
    withinBudget: undefined,
  }

  it('names each knee and the budget pick with their settings', () => {
    const points = threadsSeries('shared', [1000, 1990], [4, 8])
    const lines = sweepSummary({ ...base, points, ...analyzeSweep(points, 10) })
    expect(lines).toEqual([
      'knee of threads (shared): threads=2 tasksPerThread=4 maxConcurrent=8 isolation=shared (2.0k/s)',
      'best throughput with p99 ≤ 10 ms: threads=2 tasksPerThread=4 maxConcurrent=8 isolation=shared (2.0k/s, p99 8.0 ms)',
    ])
  })

  it('says so when no setting fits the budget', () => {
    expect(sweepSummary(base)).toEqual(['no setting kept p99 ≤ 10 ms; raise --budget-ms or lower the load'])
  })
})
