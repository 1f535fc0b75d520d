import { spawn } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { afterEach, describe, expect, it } from 'vitest'
import { AgentRuntime, NotRunningError } from '../src/index.js'
import { reliabilityFixture } from './fixtures/reliability/paths.js'

const BIN = fileURLToPath(new URL('../bin/agentpool.js', import.meta.url))
const ROOT = fileURLToPath(new URL('..', import.meta.url))

const cleanups: (() => void | Promise<void>)[] = []
afterEach(async () => {
  for (const c of cleanups.splice(0)) await c()
})

describe('shutdown', () => {
  it('stop({ drain: true }) under load finishes every admitted execution and delivers all its records', async () => {
    const API = 3000
    const HOOKS = 100
    const rt = new AgentRuntime({
      pool: { threads: 2, tasksPerThread: 4 },
      entryPoints: [
        {
          id: 'work',
          handler: reliabilityFixture('work'),
          trigger: { type: 'api' },
          maxConcurrent: 16,
          maxQueue: 10_000,
        },
        {
          id: 'hook',
          handler: reliabilityFixture('work'),
          trigger: { type: 'webhook', path: '/work' },
          maxConcurrent: 4,
          maxQueue: 10_000,
        },
      ],
    })
    await rt.start()
    cleanups.push(() => rt.stop({ drain: false }))
    let emitted = 0
    rt.events.subscribe({ types: ['work_done'], handler: () => void emitted++ })
    const results = Array.from({ length: API }, (_, n) => rt.triggerAndWait('work', { n, ms: n % 7 }))
    const hookIds: string[] = []
    for (let n = 0; n < HOOKS; n++) {
      const res = await fetch(`${rt.webhookUrl}/work`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ n, ms: 20 }),
      })
      expect(res.status).toBe(202)
      hookIds.push(((await res.json()) as { executionId: string }).executionId)
    }
    const before = rt.stats().streams
    // Stopping while most executions are still queued or running.
    expect(before.work!.completed + before.hook!.completed).toBeLessThan(API + HOOKS)
    await rt.stop({ drain: true })

    const api = await Promise.all(results)
    expect(api.map((r) => r.status)).toEqual(Array(API).fill('completed'))
    expect(api.map((r) => r.output)).toEqual(Array.from({ length: API }, (_, n) => n))
    const hooks = await Promise.all(hookIds.map((id) => rt.waitForExecution(id)))
    expect(hooks.map((r) => r.status)).toEqual(Array(HOOKS).fill('completed'))
    // Every record of every admitted execution was consumed before stop() resolved.
    const metrics = rt.outcomes.evaluateGoalProgress().metrics
    expect(metrics.totalDecisions).toBe(API + HOOKS)
    expect(metrics.successfulOutcomes).toBe(API + HOOKS)
    expect(emitted).toBe(API + HOOKS)
    expect(rt.stats().streams.work).toMatchObject({ admitted: API, completed: API, running: 0, queued: 0 })
    expect(rt.stats().streams.hook).toMatchObject({
      admitted: HOOKS,
      completed: HOOKS,
      running: 0,
      queued: 0,
    })
    await expect(rt.trigger('work', { n: -1 })).rejects.toBeInstanceOf(NotRunningError)
  })

  it('SIGTERM to `agentpool run <config>` drains every admitted webhook execution and exits 0', {
    timeout: 120_000,
  }, async () => {
    const dir = mkdtempSync(join(tmpdir(), 'agentpool-shutdown-'))
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }))
    const marker = join(dir, 'done.txt')
    writeFileSync(marker, '')
    const config = join(dir, 'agent.yaml')
    writeFileSync(
      config,
      [
        'pool: { threads: 2 }',
        'entryPoints:',
        '  - id: work',
        `    handler: ${JSON.stringify(reliabilityFixture('work'))}`,
        '    trigger: { type: webhook, path: /work }',
        '    maxConcurrent: 4',
        '',
      ].join('\n'),
    )
    const child = spawn(process.execPath, [BIN, 'run', config], {
      cwd: ROOT,
      stdio: ['ignore', 'pipe', 'pipe'],
    })
    cleanups.push(() => {
      if (child.exitCode === null) child.kill('SIGKILL')
    })
    let stdout = ''
    let stderr = ''
    child.stderr.on('data', (d: Buffer) => {
      stderr += d.toString()
    })
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)))
    const url = await new Promise<string>((resolve, reject) => {
      child.stdout.on('data', (d: Buffer) => {
        stdout += d.toString()
        const m = /webhook URL: (http:\/\/127\.0\.0\.1:\d+)/.exec(stdout)
        if (m) resolve(m[1]!)
      })
      void exited.then((code) => reject(new Error(`agentpool run exited ${code} early: ${stdout}${stderr}`)))
    })
    const DELIVERIES = 40
    const ids: string[] = []
    for (let n = 0; n < DELIVERIES; n++) {
      const res = await fetch(`${url}/work`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ n, ms: 200, marker }),
      })
      expect(res.status).toBe(202)
      ids.push(((await res.json()) as { executionId: string }).executionId)
    }
    child.kill('SIGTERM')
    expect(await exited, stderr).toBe(0)
    const done = readFileSync(marker, 'utf8').split('\n').filter(Boolean)
    expect(done.sort()).toEqual([...ids].sort())
    const draining = /SIGTERM: stopping, draining (\d+) admitted execution/.exec(stdout)
    expect(Number(draining?.[1])).toBeGreaterThan(0)
    expect(stdout).toMatch(new RegExp(`^work\\s+${DELIVERIES}\\s+0\\s+0\\s+0\\s+0\\s`, 'm'))
  })
})
