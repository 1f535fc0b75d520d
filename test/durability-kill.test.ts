import { type ChildProcess, fork } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { setTimeout as delay } from 'node:timers/promises'
import { fileURLToPath } from 'node:url'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { LogStore } from '../src/durability/index.js'
import type { GoalProgress } from '../src/index.js'
import { SIGNATURE_HEADER, signWebhookBody } from '../src/triggers/index.js'
import { prng } from './helpers/prng.js'
import { transpiledPackage } from './helpers/transpiled.js'

const FIXTURES = ['test/fixtures/durability/host.ts', 'test/fixtures/durability/ticket.ts']
const ROOT = fileURLToPath(new URL('..', import.meta.url))
const SECRET_ENV = 'AGENTPOOL_DURABLE_TEST_SECRET'
const SECRET = 'durable-secret-for-tests'
const KILLS = 20
const SEED = 0x5eed14

const cleanups: (() => void)[] = []
afterEach(() => {
  for (const c of cleanups.splice(0)) c()
})

/**
 * The service runs from the current sources transpiled once (as the built package runs), not through
 * tsx: each of the test's 21 processes then starts in a fraction of the CPU time.
 */
let pkg: string
beforeAll(() => {
  pkg = transpiledPackage(mkdtempSync(join(tmpdir(), 'agentpool-durable-pkg-')), FIXTURES)
})
afterAll(() => rmSync(pkg, { recursive: true, force: true }))
const built = (fixture: string) => join(pkg, 'dist', fixture.replace(/\.ts$/, '.js'))

/** Writes the test agent's config (signed webhook + api entry point, durable) into `dir`. */
function writeDurableConfig(dir: string): string {
  const config = join(dir, 'agent.yaml')
  writeFileSync(
    config,
    [
      'pool: { threads: 1, tasksPerThread: 4 }',
      'goal: { id: tickets, description: resolve tickets, successCriteria: [{ id: resolved, description: resolved, target: 0.9 }] }',
      // The default group-commit window (syncMs 0); a snapshot of the goal's counters every 7 records, so
      // kills land between snapshots and restarts restore one and replay the records after it.
      'durability: { path: ./data/runs.db, snapshotRecords: 7 }',
      'entryPoints:',
      `  - { id: api, handler: ${JSON.stringify(built(FIXTURES[1]!))}, trigger: { type: api } }`,
      `  - { id: hook, handler: ${JSON.stringify(built(FIXTURES[1]!))}, trigger: { type: webhook, path: /tickets, secretEnv: ${SECRET_ENV} } }`,
      '',
    ].join('\n'),
  )
  return config
}

interface Drained {
  handled: number
  progress: GoalProgress
  recovered: string[]
}

/** One life of the embedding service: its IPC messages and exit. */
class Service {
  readonly child: ChildProcess
  readonly ready: Promise<{ url: string; recovered: string[] }>
  readonly exited: Promise<void>
  readonly acked = new Map<string, string>()
  drained: Promise<Drained> | undefined
  private onDrained: ((d: Drained) => void) | undefined

  constructor(config: string) {
    this.child = fork(built(FIXTURES[0]!), [config], {
      execArgv: [],
      cwd: ROOT,
      env: { ...process.env, [SECRET_ENV]: SECRET },
      stdio: ['ignore', 'ignore', 'inherit', 'ipc'],
    })
    cleanups.push(() => {
      if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill('SIGKILL')
    })
    this.exited = new Promise((resolve) => this.child.once('exit', () => resolve()))
    this.ready = new Promise((resolve, reject) => {
      this.child.on('message', (m: Record<string, unknown>) => {
        if (m.kind === 'ready') resolve(m as never)
        else if (m.kind === 'start_failed') reject(new Error(String(m.message)))
        else if (m.kind === 'acked') this.acked.set(m.delivery as string, m.executionId as string)
        else if (m.kind === 'drained') this.onDrained?.(m as never)
      })
      void this.exited.then(() => reject(new Error('the service exited before it was ready')))
    })
  }

  drain(): Promise<Drained> {
    this.drained = new Promise((resolve) => {
      this.onDrained = resolve
    })
    this.child.send({ kind: 'drain' })
    return this.drained
  }
}

describe('durable runs under SIGKILL', () => {
  it(`loses nothing acknowledged over ${KILLS} kills at seeded random moments, and the log stays whole`, {
    timeout: 600_000,
  }, async () => {
    const dir = mkdtempSync(join(tmpdir(), 'agentpool-durable-'))
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }))
    const config = writeDurableConfig(dir)
    const marker = join(dir, 'done.txt')
    writeFileSync(marker, '')
    const random = prng(SEED)
    const acked = new Map<string, string>()
    let sent = 0
    let recoveredTotal = 0

    for (let life = 0; life <= KILLS; life++) {
      const service = new Service(config)
      const { url, recovered } = await service.ready
      recoveredTotal += recovered.length
      let stopped = false
      const webhookSender = async (): Promise<void> => {
        while (!stopped) {
          const delivery = `w${sent++}`
          const body = JSON.stringify({ delivery, marker, ms: 1 + Math.floor(random() * 20) })
          try {
            const res = await fetch(`${url}/tickets`, {
              method: 'POST',
              headers: {
                'content-type': 'application/json',
                [SIGNATURE_HEADER]: signWebhookBody({ body, secret: SECRET }),
              },
              body,
            })
            if (res.status === 202)
              acked.set(delivery, ((await res.json()) as { executionId: string }).executionId)
          } catch {
            // The service was killed while this delivery was in flight: it was never acknowledged.
          }
        }
      }
      const apiSender = (): void => {
        for (let i = 0; i < 4 && service.child.connected; i++) {
          const delivery = `a${sent++}`
          service.child.send(
            {
              kind: 'trigger',
              delivery,
              input: { delivery, marker, ms: 1 + Math.floor(random() * 20) },
            },
            () => {
              // A trigger sent as the service died was never acknowledged.
            },
          )
        }
      }
      const apiTimer = setInterval(apiSender, 5)
      const senders = Promise.all([webhookSender(), webhookSender(), webhookSender()])
      if (life < KILLS) {
        // The kill moment: a seeded random point while deliveries and triggers are in flight.
        await delay(30 + Math.floor(random() * 400))
        service.child.kill('SIGKILL')
        await service.exited
        stopped = true
        clearInterval(apiTimer)
        await senders
      } else {
        await delay(200)
        stopped = true
        clearInterval(apiTimer)
        await senders
        const drained = await service.drain()
        await service.exited
        for (const [d, id] of service.acked) acked.set(d, id)
        checkFinal(dir, marker, acked, drained)
      }
      for (const [d, id] of service.acked) acked.set(d, id)
    }
    expect(acked.size).toBeGreaterThan(KILLS)
    expect(recoveredTotal).toBeGreaterThan(0)
    console.log(
      `durable kill test: ${KILLS} kills, ${sent} sent, ${acked.size} acknowledged, ${recoveredTotal} recovered`,
    )
  })
})

function checkFinal(dir: string, marker: string, acked: Map<string, string>, drained: Drained): void {
  const done = new Set(readFileSync(marker, 'utf8').split('\n').filter(Boolean))
  const lost = [...acked.keys()].filter((d) => !done.has(d))
  expect(lost).toEqual([])
  const log = LogStore.openReadOnly(join(dir, 'data', 'runs.db'))
  try {
    expect(log.integrityCheck()).toBe('ok')
    // The writer compacted the records into snapshots (every 7) all along, and at the last, clean stop.
    expect(log.snapshotThrough()).toBeGreaterThan(0)
    const runs = log.list({ limit: 1_000_000 })
    const byId = new Map(runs.map((r) => [r.id, r]))
    for (const id of acked.values()) expect(byId.get(id)?.status).toBe('completed')
    expect(runs.filter((r) => r.status === 'queued' || r.status === 'running')).toEqual([])
    const completed = runs.filter((r) => r.status === 'completed').length
    const attempts = runs.reduce((n, r) => n + r.attempts, 0)
    expect(drained.handled).toBeGreaterThanOrEqual(completed)
    expect(drained.handled).toBeLessThanOrEqual(attempts)
    let decisions = 0
    let outcomes = 0
    for (const r of runs) {
      for (const rec of log.recordsOf(r.id)) {
        if (rec.kind === 'decision') decisions++
        if (rec.kind === 'outcome') outcomes++
      }
    }
    const { metrics } = drained.progress
    expect(metrics.totalDecisions).toBe(decisions)
    expect(metrics.successfulOutcomes).toBe(outcomes)
    expect(metrics.totalDecisions).toBeGreaterThanOrEqual(completed)
  } finally {
    log.close()
  }
}
