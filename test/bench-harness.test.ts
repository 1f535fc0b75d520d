import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import {
  BENCH_DIR,
  type BenchEntry,
  type BenchResults,
  compareSideBySide,
  discoverSuites,
  EXIT,
  exitCodeFor,
  formatTable,
  loadSuite,
  makeEntry,
  median,
  parseRunArgs,
  parseSweepArgs,
  passes,
  percentile,
  runSuites,
  suiteStem,
  writeResults,
} from '../bench/harness/index.js'

const entry = (name: string, ratio: number, target: number): BenchEntry =>
  makeEntry(
    { name, unit: 'ops/s', target },
    { name: 'base', hz: 1000, p99Ms: 1 },
    { name: 'cont', hz: 1000 * ratio, p99Ms: 2 },
  )

describe('bench command line', () => {
  it('defaults to full budgets, every suite and bench/results/latest.json', () => {
    expect(parseRunArgs([])).toEqual({
      quick: false,
      filter: undefined,
      out: 'bench/results/latest.json',
      help: false,
    })
  })

  it('reads --quick, --filter and --out', () => {
    expect(parseRunArgs(['--quick', '--filter', 'tickets', '--out', '/tmp/x.json'])).toEqual({
      quick: true,
      filter: 'tickets',
      out: '/tmp/x.json',
      help: false,
    })
    expect(parseRunArgs(['--filter=state']).filter).toBe('state')
  })

  it('refuses an unknown flag, a missing value and an empty filter with AGENTPOOL_INVALID_ARGUMENT', () => {
    expect(() => parseRunArgs(['--fast'])).toThrow(
      expect.objectContaining({ code: 'AGENTPOOL_INVALID_ARGUMENT' }),
    )
    expect(() => parseRunArgs(['--filter'])).toThrow(/--filter/)
    expect(() => parseRunArgs(['--filter', ' '])).toThrow(/--filter needs a suite name/)
    expect(() => parseRunArgs(['tickets'])).toThrow(
      expect.objectContaining({ code: 'AGENTPOOL_INVALID_ARGUMENT' }),
    )
  })

  it('reads the sweep flags and names a bad --budget-ms or --repeat value', () => {
    expect(parseSweepArgs([])).toEqual({
      quick: false,
      budgetMs: 100,
      outDir: 'bench/results',
      repeat: 1,
      help: false,
    })
    expect(parseSweepArgs(['--quick', '--budget-ms', '25.5', '--out-dir', 'x', '--repeat', '3'])).toEqual({
      quick: true,
      budgetMs: 25.5,
      outDir: 'x',
      repeat: 3,
      help: false,
    })
    for (const bad of ['0', '-3', 'abc', '', 'Infinity']) {
      expect(() => parseSweepArgs([`--budget-ms=${bad}`])).toThrow(
        expect.objectContaining({
          code: 'AGENTPOOL_INVALID_ARGUMENT',
          message: expect.stringContaining('--budget-ms must be a positive number of milliseconds'),
        }),
      )
    }
    for (const bad of ['0', '1.5', 'two', '']) {
      expect(() => parseSweepArgs([`--repeat=${bad}`])).toThrow(
        expect.objectContaining({
          code: 'AGENTPOOL_INVALID_ARGUMENT',
          message: `--repeat must be a whole number of passes, 1 or more, got ${JSON.stringify(bad)}`,
        }),
      )
    }
  })
})

describe('bench statistics', () => {
  it('takes the median of odd and even counts without reordering the input', () => {
    const input = [5, 1, 3]
    expect(median(input)).toBe(3)
    expect(input).toEqual([5, 1, 3])
    expect(median([4, 1, 3, 2])).toBe(2.5)
    expect(median([])).toBeNaN()
  })

  it('takes nearest-rank percentiles', () => {
    const values = Array.from({ length: 100 }, (_, i) => 100 - i)
    expect(percentile(values, 99)).toBe(99)
    expect(percentile(values, 50)).toBe(50)
    expect(percentile(values, 100)).toBe(100)
    expect(percentile([7], 99)).toBe(7)
    expect(percentile([], 99)).toBeNaN()
  })

  it('computes the ratio as contender over baseline and passes at or above the target', () => {
    const e = entry('x', 1.5, 1.5)
    expect(e.ratio).toBeCloseTo(1.5, 12)
    expect(passes(e)).toBe(true)
    expect(passes(entry('y', 1.49, 1.5))).toBe(false)
    expect(
      makeEntry(
        { name: 'z', unit: 'u', target: 1 },
        { name: 'b', hz: 0, p99Ms: 0 },
        { name: 'c', hz: 5, p99Ms: 0 },
      ).ratio,
    ).toBe(0)
  })
})

describe('side-by-side comparison', () => {
  it('returns one entry naming both sides, with the ratio of their measured rates', async () => {
    const logs: string[] = []
    let baselineCalls = 0
    let contenderCalls = 0
    const e = await compareSideBySide({
      name: 'demo_vs_loop',
      unit: 'ops/s',
      target: 1,
      quick: true,
      log: (m) => logs.push(m),
      budget: { rounds: 2, timeMs: 20, warmupMs: 5 },
      baseline: { name: 'loop', fn: () => void baselineCalls++ },
      contender: {
        name: 'four at once',
        fn: async () => {
          contenderCalls++
          await Promise.all([1, 2, 3, 4].map(async (x) => x))
        },
        opsPerIteration: 4,
      },
    })
    expect(e.name).toBe('demo_vs_loop')
    expect(e.baseline.name).toBe('loop')
    expect(e.contender.name).toBe('four at once')
    expect(e.target).toBe(1)
    expect(e.ratio).toBeCloseTo(e.contender.hz / e.baseline.hz, 9)
    for (const side of [e.baseline, e.contender]) {
      expect(side.hz).toBeGreaterThan(0)
      expect(Number.isFinite(side.p99Ms)).toBe(true)
    }
    expect(baselineCalls).toBeGreaterThan(0)
    expect(contenderCalls).toBeGreaterThan(0)
    expect(logs).toHaveLength(3)
    expect(logs[1]).toMatch(
      /^demo_vs_loop: round 2\/2 baseline .* ops\/s \(×\d+\.\d\d; cores used \d+\.\d\d \/ \d+\.\d\d\)$/,
    )
  })

  it("accounts each side's CPU per operation on the main thread and elsewhere, and per record when counted", async () => {
    let records = 0
    const logs: string[] = []
    const e = await compareSideBySide({
      name: 'cpu_demo',
      unit: 'executions/s',
      target: 1,
      quick: true,
      log: (m) => logs.push(m),
      budget: { rounds: 1, timeMs: 20, warmupMs: 5 },
      baseline: { name: 'idle', fn: async () => new Promise((resolve) => setImmediate(resolve)) },
      contender: {
        name: 'busy main thread, 3 records per call',
        opsPerIteration: 2,
        records: () => records,
        fn: () => {
          records += 3
          const end = performance.now() + 0.2
          while (performance.now() < end);
        },
        async: false,
      },
    })
    const c = e.contender.cpu!
    // 0.2 ms of main-thread spinning per call of 2 operations: at least ~100 µs per operation.
    expect(c.mainUsPerOp).toBeGreaterThan(50)
    expect(c.otherUsPerOp).toBeGreaterThanOrEqual(0)
    expect(c.mainUsPerRecord).toBeCloseTo((c.mainUsPerOp * 2) / 3, 6)
    expect(e.baseline.cpu!.mainUsPerRecord).toBeUndefined()
    expect(logs.at(-1)).toMatch(
      /^cpu_demo: CPU µs per execution: baseline [\d.]+ main \+ [\d.]+ other threads; contender [\d.]+ main \+ [\d.]+ other threads, [\d.]+ main per record; the contender's main thread is saturated at ≈[\d.]+ busy threads$/,
    )
  })

  it('never calls a side outside its measured iterations to find out whether it is async', async () => {
    let inFlight = 0
    let overlapped = false
    const side = (name: string, declared?: boolean) => ({
      name,
      ...(declared === undefined ? {} : { async: declared }),
      fn: () => {
        if (inFlight > 0) overlapped = true
        inFlight++
        return new Promise<void>((resolve) =>
          setImmediate(() => {
            inFlight--
            resolve()
          }),
        )
      },
    })
    await compareSideBySide({
      name: 'promise_sides',
      unit: 'ops/s',
      target: 1,
      quick: true,
      budget: { rounds: 2, timeMs: 10, warmupMs: 2 },
      baseline: side('declared async', true),
      contender: { name: 'async function', fn: async () => side('inner', true).fn() },
    })
    expect(overlapped).toBe(false)
  })

  it('fails when a side throws', async () => {
    await expect(
      compareSideBySide({
        name: 'broken',
        unit: 'ops/s',
        target: 1,
        quick: true,
        budget: { rounds: 1, timeMs: 5, warmupMs: 1 },
        baseline: { name: 'ok', fn: () => 1 },
        contender: {
          name: 'throws',
          fn: () => {
            throw new Error('boom')
          },
        },
      }),
    ).rejects.toThrow(/boom/)
  })
})

describe('bench runner', () => {
  let dir: string
  const suite = (name: string, body: string) =>
    `export default { name: ${JSON.stringify(name)}, async run(opts) { ${body} } }\n`
  const result = (name: string, ratio: number, target: number) =>
    JSON.stringify({
      name,
      unit: 'ops/s',
      baseline: { name: 'b', hz: 100, p99Ms: 1 },
      contender: { name: 'c', hz: 100 * ratio, p99Ms: 1 },
      ratio,
      target,
    })

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'agentpool-bench-'))
    await writeFile(
      join(dir, 'alpha.bench.ts'),
      suite('alpha', `opts.log('working'); return [${result('alpha_ratio', 2, 1)}]`),
    )
    await writeFile(
      join(dir, 'beta.bench.ts'),
      suite('beta', `throw Object.assign(new Error('beta broke'), { code: 'X_BETA' })`),
    )
    await writeFile(join(dir, 'gamma.bench.ts'), suite('gamma', `return [${result('gamma_ratio', 0.5, 1)}]`))
    await writeFile(
      join(dir, 'delta.bench.ts'),
      suite('delta', 'return [{ name: "delta_ratio", unit: "ops/s" }]'),
    )
    await writeFile(join(dir, 'notes.ts'), 'export const x = 1\n')
  })
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true })
  })

  it('finds the repository suites, each exporting a named suite with a run function', async () => {
    const files = await discoverSuites(BENCH_DIR)
    expect(files.map(suiteStem)).toContain('tickets')
    for (const file of files) {
      const suite = await loadSuite(file)
      expect(suite.name).toMatch(/\S/)
      expect(typeof suite.run).toBe('function')
    }
  })

  it('finds only *.bench.ts files, sorted', async () => {
    const files = await discoverSuites(dir)
    expect(files.map(suiteStem)).toEqual(['alpha', 'beta', 'delta', 'gamma'])
  })

  it('keeps running after a suite throws and records each failure with its code', async () => {
    const lines: string[] = []
    const results = await runSuites({
      files: await discoverSuites(dir),
      quick: true,
      log: (m) => lines.push(m),
    })
    expect(results.results.map((r) => r.name)).toEqual(['alpha_ratio', 'gamma_ratio'])
    expect(results.failures).toEqual([
      { suite: 'beta', error: { code: 'X_BETA', message: 'beta broke' } },
      {
        suite: 'delta',
        error: { code: 'AGENTPOOL_INVALID_ARGUMENT', message: expect.stringContaining('baseline.name') },
      },
    ])
    expect(lines.some((l) => /^\[1\/4 alpha \+\d+\.\ds\] working$/.test(l))).toBe(true)
    expect(lines.some((l) => l.includes('beta') && l.includes('FAILED: beta broke'))).toBe(true)
    expect(exitCodeFor(results)).toBe(EXIT.SUITE_FAILED)
    const table = formatTable(results)
    expect(table).toMatch(/alpha_ratio\s+ops\/s\s+100\.0\s+200\.0\s+×2\.00\s+≥ 1\s+pass/)
    expect(table).toMatch(/gamma_ratio .* FAIL/)
    expect(table).toMatch(/beta .*FAILED \(suite\): beta broke/)
  })

  it('runs one suite by name with --filter and reports an unknown name as a failure', async () => {
    const files = await discoverSuites(dir)
    const one = await runSuites({ files, quick: false, filter: 'gamma', log: () => {} })
    expect(one.results.map((r) => r.name)).toEqual(['gamma_ratio'])
    expect(one.failures).toBeUndefined()
    expect(exitCodeFor(one)).toBe(EXIT.BELOW_TARGET)
    const none = await runSuites({ files, quick: false, filter: 'nope', log: () => {} })
    expect(none.results).toEqual([])
    expect(none.failures?.[0]?.error.message).toMatch(
      /no suite matches "nope"; suites: alpha, beta, delta, gamma/,
    )
  })

  it('exits 0 when every entry meets its target', () => {
    const ok: BenchResults = {
      machine: { cpus: 2, node: 'v20.0.0', os: 'linux' },
      quick: true,
      startedAt: new Date(0).toISOString(),
      results: [entry('a', 1, 1), entry('b', 3, 2)],
    }
    expect(exitCodeFor(ok)).toBe(EXIT.OK)
  })

  it('writes latest.json in the documented results shape', async () => {
    const files = await discoverSuites(dir)
    const results = await runSuites({ files, quick: true, filter: 'alpha', log: () => {} })
    const path = join(dir, 'results', 'latest.json')
    await writeResults(path, results)
    const json = JSON.parse(await readFile(path, 'utf8'))
    expect(Object.keys(json)).toEqual(['machine', 'quick', 'startedAt', 'results'])
    expect(json.machine).toEqual({ cpus: expect.any(Number), node: process.version, os: process.platform })
    expect(json.machine.cpus).toBeGreaterThanOrEqual(1)
    expect(json.quick).toBe(true)
    expect(new Date(json.startedAt).toISOString()).toBe(json.startedAt)
    expect(json.results).toEqual([
      {
        name: 'alpha_ratio',
        unit: 'ops/s',
        baseline: { name: 'b', hz: 100, p99Ms: 1 },
        contender: { name: 'c', hz: 200, p99Ms: 1 },
        ratio: 2,
        target: 1,
      },
    ])
  })
})
