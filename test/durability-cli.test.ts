import { spawn } from 'node:child_process'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { afterEach, describe, expect, it } from 'vitest'
import { AgentRuntime } from '../src/index.js'
import { durableConfig } from './helpers/durable.js'

const BIN = fileURLToPath(new URL('../bin/agentpool.js', import.meta.url))

const cleanups: (() => void)[] = []
afterEach(() => {
  for (const c of cleanups.splice(0)) c()
})

function agentpool(...args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const child = spawn(process.execPath, [BIN, ...args], { stdio: 'pipe' })
  let stdout = ''
  let stderr = ''
  child.stdout.on('data', (d) => {
    stdout += d
  })
  child.stderr.on('data', (d) => {
    stderr += d
  })
  return new Promise((resolve) => child.once('close', (code) => resolve({ code, stdout, stderr })))
}

describe('agentpool runs', () => {
  it('lists runs from the log with filters, and shows one run with its decisions', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'agentpool-runs-'))
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }))
    const marker = join(dir, 'done.txt')
    const config = join(dir, 'agent.json')
    writeFileSync(config, JSON.stringify({ ...durableConfig(dir), baseDir: undefined }))
    const rt = await AgentRuntime.fromConfigFile(config)
    await rt.start()
    const ids: string[] = []
    for (let i = 0; i < 4; i++)
      ids.push(await rt.trigger(i < 3 ? 'api' : 'other', { delivery: `d${i}`, marker }))
    await rt.stop({ drain: true })

    const list = await agentpool('runs', config, '--entry', 'api', '--status', 'completed', '--limit', '2')
    expect(list.code).toBe(0)
    const rows = list.stdout.split('\n').filter((l) => /^[0-9a-f-]{36} /.test(l))
    expect(rows.map((l) => l.slice(0, 36))).toEqual([ids[2], ids[1]])
    expect(rows.every((l) => /\bapi\s+completed\s+1\b/.test(l))).toBe(true)

    const one = await agentpool('runs', config, ids[3]!)
    expect(one.code).toBe(0)
    const run = JSON.parse(one.stdout)
    expect(run).toMatchObject({
      id: ids[3],
      entryPointId: 'other',
      status: 'completed',
      attempts: 1,
      input: { delivery: 'd3', marker },
      output: { delivery: 'd3', recovered: false },
    })
    expect(run.records.map((r: { k: string }) => r.k)).toEqual(['decision', 'outcome'])

    const missing = await agentpool('runs', config, 'no-such-run')
    expect(missing.code).toBe(1)
    expect(missing.stderr).toContain('no run "no-such-run"')
  })
})
