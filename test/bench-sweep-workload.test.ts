import { spawn } from 'node:child_process'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { loadConfigFile } from '../src/index.js'
import { measureWorkloadPoint, pointConfig, readInputs, type Workload } from '../src/sweep/index.js'

const bin = fileURLToPath(new URL('../bin/agentpool.js', import.meta.url))
let dir: string
let workload: Workload

const point = {
  series: 'threads' as const,
  threads: 2,
  tasksPerThread: 3,
  maxConcurrent: 5,
  isolation: 'synchronized' as const,
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'agentpool-sweep-'))
  writeFileSync(
    join(dir, 'agent.yaml'),
    [
      'pool: { threads: 1 }',
      'entryPoints:',
      '  - { id: score, handler: ./score.mjs, trigger: { type: timer, intervalMs: 60000 }, maxQueue: 1 }',
      '  - { id: broken, handler: ./broken.mjs, trigger: { type: webhook, path: /broken } }',
    ].join('\n'),
  )
  writeFileSync(join(dir, 'score.mjs'), 'export default async (input) => ({ doubled: input.n * 2 })\n')
  writeFileSync(join(dir, 'broken.mjs'), "export default async () => { throw new Error('no luck') }\n")
  writeFileSync(join(dir, 'inputs.jsonl'), '{"n":1}\n\n{"n":2}\n')
  writeFileSync(join(dir, 'bad.jsonl'), '{"n":1}\n{n:2}\n')
  const config = await loadConfigFile(join(dir, 'agent.yaml'))
  workload = { config, entry: 'score', inputs: await readInputs(join(dir, 'inputs.jsonl')) }
})

afterAll(() => rmSync(dir, { recursive: true, force: true }))

function agentpool(...args: string[]): Promise<{ code: number | null; stderr: string }> {
  const child = spawn(process.execPath, [bin, ...args], { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] })
  let stderr = ''
  child.stderr.on('data', (d) => {
    stderr += d
  })
  return new Promise((resolve) => child.once('close', (code) => resolve({ code, stderr })))
}

describe('sweeping your own workload', () => {
  it("runs a point with the point's pool, tasksPerThread, maxConcurrent and isolation on the chosen entry point, every trigger off", () => {
    const c = pointConfig(workload, point)
    expect(c.pool).toMatchObject({ threads: 2, tasksPerThread: 3 })
    expect(c.entryPoints.map((ep) => ep.trigger.type)).toEqual(['manual', 'manual'])
    expect(c.entryPoints[0]).toMatchObject({
      maxConcurrent: 5,
      isolation: { stream: 'synchronized', global: 'synchronized' },
    })
    expect(c.entryPoints[0]!.maxQueue).toBeGreaterThanOrEqual(12)
    expect(c.entryPoints[1]).toMatchObject({ maxConcurrent: 10 })
  })

  it("measures the user's handler over their inputs at one setting", async () => {
    const p = await measureWorkloadPoint(workload, point, { warmupMs: 50, durationMs: 300 })
    expect(p.completed).toBeGreaterThan(0)
    expect(p.failed).toBe(0)
    expect(p.p99Ms).toBeGreaterThan(0)
    expect(p).toMatchObject(point)
  })

  it('says why a point failed when no execution completes, instead of reporting zero throughput', async () => {
    const failing = { ...workload, entry: 'broken' }
    await expect(measureWorkloadPoint(failing, point, { warmupMs: 0, durationMs: 100 })).rejects.toThrow(
      /no execution of broken completed \(AGENTPOOL_HANDLER_FAILED: .*no luck/,
    )
  })

  it('refuses a sweep it could not run with exit 2 and a bad command line with 64, naming what was wrong', async () => {
    const missing = await agentpool('bench', '--sweep', 'agent.yaml', '--entry', 'score')
    expect(missing.code).toBe(64)
    expect(missing.stderr).toContain('needs --entry <id> and --inputs <file.jsonl>')
    const bad = await agentpool('bench', '--sweep', 'agent.yaml', '--entry', 'score', '--inputs', 'bad.jsonl')
    expect(bad.code).toBe(2)
    expect(bad.stderr).toContain(`inputs file ${join(dir, 'bad.jsonl')}, line 2: not JSON`)
  })
})
