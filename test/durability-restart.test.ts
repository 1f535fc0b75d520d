import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { afterEach, describe, expect, it } from 'vitest'
import { LogStore } from '../src/durability/index.js'
import { AgentRuntime, type RuntimeConfig } from '../src/index.js'
import { durableConfig } from './helpers/durable.js'

const SERIAL_COUNTER = fileURLToPath(new URL('./fixtures/handlers/serial-counter.ts', import.meta.url))
const SLEEP = fileURLToPath(new URL('./fixtures/handlers/sleep.ts', import.meta.url))

const cleanups: (() => void | Promise<void>)[] = []
afterEach(async () => {
  for (const c of cleanups.splice(0)) await c()
})

async function started(config: RuntimeConfig): Promise<AgentRuntime> {
  const rt = new AgentRuntime(config)
  await rt.start()
  cleanups.push(() => rt.stop({ drain: false }))
  return rt
}

function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'agentpool-restart-'))
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }))
  return dir
}

/** A decision the embedding service records itself. */
const REFUND = {
  intent: 'refund',
  options: [{ id: 'yes' }, { id: 'no' }],
  chosen: 'yes',
  reasoning: 'policy',
  criteria: ['resolved'],
}

function snapshot(rt: AgentRuntime) {
  const reader = rt.state.createBuffer('reader', 'api', 'shared')
  const other = rt.state.createBuffer('reader', 'other', 'shared')
  return {
    handled: reader.read('handled', { scope: 'global' }),
    lastApi: reader.read('last:api', { scope: 'stream' }),
    lastOther: other.read('last:other', { scope: 'stream' }),
    progress: rt.outcomes.evaluateGoalProgress(),
    decisions: rt.outcomes.recentDecisions(1000).map((d) => [d.id, d.outcome?.success]),
  }
}

describe('durable runs across a clean restart', () => {
  it('restores state, idempotency keys and goal progress exactly after stop({ drain: true })', async () => {
    const dir = tempDir()
    const marker = join(dir, 'done.txt')
    writeFileSync(marker, '')
    const first = await started(durableConfig(dir))
    const ids: string[] = []
    for (let i = 0; i < 30; i++) {
      const entry = i % 3 === 0 ? 'other' : 'api'
      ids.push(await first.trigger(entry, { delivery: `d${i}`, marker }, { idempotencyKey: `key-${i}` }))
    }
    await Promise.all(ids.map((id) => first.waitForExecution(id)))
    await first.stop({ drain: true })
    const before = snapshot(first)
    expect(before.handled).toBe(30)

    const second = await started(durableConfig(dir))
    expect(snapshot(second)).toEqual(before)
    // A redelivery after the restart, within the key's TTL, gets the first execution's id and runs nothing.
    expect(await second.trigger('api', { delivery: 'again', marker }, { idempotencyKey: 'key-1' })).toBe(
      ids[1],
    )
    expect(second.stats().streams.api!.admitted).toBe(0)
    // A run of the earlier process is still answered from the log.
    const r = await second.waitForExecution(ids[4]!)
    expect(r).toMatchObject({ executionId: ids[4], status: 'completed', attempts: 1 })
    expect(r.output).toEqual({ delivery: 'd4', recovered: false })
    expect(readFileSync(marker, 'utf8').split('\n').filter(Boolean)).toHaveLength(30)
  })

  it("keeps the embedding service's own decisions and outcomes, and never reuses their ids", async () => {
    const dir = tempDir()
    const first = await started(durableConfig(dir))
    const made: string[] = []
    for (let i = 0; i < 6; i++) {
      // Fresh `main-<n>` executions, and three decisions of one execution id the service names.
      const id = first.outcomes.recordDecision(
        REFUND,
        i % 2 === 0 ? { streamId: 'desk' } : { streamId: 'desk', executionId: 'order-7' },
      )
      made.push(id)
      if (i < 4) first.outcomes.recordOutcome(id, { success: i !== 1 })
    }
    await first.stop({ drain: true })
    const before = snapshot(first)
    expect(before.decisions).toHaveLength(6)

    const second = await started(durableConfig(dir))
    expect(snapshot(second)).toEqual(before)
    // An outcome for a decision of the earlier process still lands on it.
    second.outcomes.recordOutcome(made[5]!, { success: true })
    expect(second.outcomes.decisionsByExecution('desk', 'order-7').map((d) => d.outcome?.success)).toEqual([
      false,
      true,
      true,
    ])
    // New decisions get ids no decision of the earlier process had, with or without a named execution.
    const fresh = [{ streamId: 'desk' }, { streamId: 'desk', executionId: 'order-7' }].map((opts) =>
      second.outcomes.recordDecision(REFUND, opts),
    )
    for (const id of fresh) expect(made).not.toContain(id)
    expect(second.outcomes.recentDecisions(1000)).toHaveLength(8)
  })

  it('restores goal progress from the snapshot once the records it covers are pruned, and replays nothing', async () => {
    const dir = tempDir()
    const marker = join(dir, 'done.txt')
    writeFileSync(marker, '')
    // Every finished run is past its retention at the next start; a snapshot every 5 records.
    const config = durableConfig(dir, {
      durability: { path: './data/runs.db', retainRunsMs: 0, snapshotRecords: 5 },
    })
    const first = await started(config)
    const ids: string[] = []
    for (let i = 0; i < 24; i++)
      ids.push(await first.trigger(i % 3 === 0 ? 'other' : 'api', { delivery: `d${i}`, marker }))
    const made = [0, 1, 2].map(() => first.outcomes.recordDecision(REFUND, { streamId: 'desk' }))
    first.outcomes.recordOutcome(made[1]!, { success: false })
    await Promise.all(ids.map((id) => first.waitForExecution(id)))
    await first.stop({ drain: true })
    const before = snapshot(first)
    expect(before.progress.metrics.totalDecisions).toBe(27)

    const file = join(dir, 'data', 'runs.db')
    const second = await started(config)
    expect(snapshot(second)).toEqual(before)
    await second.stop({ drain: true })
    // The runs were pruned at the second start, and with them every record: the snapshot holds it all.
    const log = LogStore.openReadOnly(file)
    try {
      expect(log.list()).toEqual([])
      const { records, snapshot: kept } = log.recover()
      expect(records).toEqual([])
      expect(kept).toMatchObject({ totalDecisions: 27 })
    } finally {
      log.close()
    }
    const third = await started(config)
    expect(snapshot(third)).toEqual(before)
    // An outcome for a decision of the first process still lands on it after both restarts.
    third.outcomes.recordOutcome(made[2]!, { success: true })
    expect(third.outcomes.evaluateGoalProgress().metrics.successfulOutcomes).toBe(
      before.progress.metrics.successfulOutcomes + 1,
    )
  })

  it('re-runs what a stop without drain left unfinished, ahead of new work, as a recovered attempt', async () => {
    const dir = tempDir()
    const marker = join(dir, 'done.txt')
    writeFileSync(marker, '')
    const first = await started(durableConfig(dir))
    const startedSlow = first.events.waitFor({ types: ['execution_started'], streamId: 'api' })
    const slow = await first.trigger('api', { delivery: 'slow', marker, ms: 20_000 })
    expect((await startedSlow).executionId).toBe(slow)
    await first.stop({ drain: false })

    const second = new AgentRuntime(durableConfig(dir))
    const recovered = second.events.waitFor({ types: ['execution_recovered'], executionId: slow })
    await second.start()
    cleanups.push(() => second.stop({ drain: false }))
    const fresh = await second.trigger('api', { delivery: 'fresh', marker })
    expect((await recovered).data).toEqual({ entryPointId: 'api', attempt: 2 })
    await second.waitForExecution(fresh)
    // The recovered run started before the new one; it is re-run as attempt 2 with ctx.meta.recovered.
    const starts = second.events.history({ types: ['execution_started'] }).map((e) => e.executionId)
    expect(starts.indexOf(slow)).toBeLessThan(starts.indexOf(fresh))
    expect(second.stats().streams.api!.running + second.stats().streams.api!.completed).toBeGreaterThan(0)
  })

  it('writes a triggerAndWait run once it has an effect, and at a stop without drain, and recovers it', async () => {
    const dir = tempDir()
    const marker = join(dir, 'done.txt')
    writeFileSync(marker, '')
    const base = durableConfig(dir)
    const config = {
      ...base,
      entryPoints: [...base.entryPoints, { id: 'sleep', handler: SLEEP, trigger: { type: 'api' as const } }],
    }
    const logged = (id: string) => {
      const store = LogStore.openReadOnly(join(dir, 'data', 'runs.db'))
      try {
        return store.lookup(id)?.status
      } finally {
        store.close()
      }
    }
    const first = await started(config)
    const startedQuiet = first.events.waitFor({ types: ['execution_started'], streamId: 'sleep' })
    const startedBusy = first.events.waitFor({ types: ['execution_started'], streamId: 'api' })
    // Nobody is acknowledged for either before its result: their admissions wait to be written with it.
    first.triggerAndWait('sleep', { ms: 20_000 }).catch(() => {})
    first.triggerAndWait('api', { delivery: 'busy', marker, ms: 20_000 }).catch(() => {})
    const quiet = (await startedQuiet).executionId!
    const busy = (await startedBusy).executionId!
    // The ticket handler changes state at once: its admission goes out with the change.
    const deadline = Date.now() + 5_000
    while (logged(busy) === undefined && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20))
    expect(logged(busy)).toBe('running')
    // The sleeper has no effect yet, and has run for far less than a second.
    expect(logged(quiet)).toBeUndefined()
    await first.stop({ drain: false })
    expect(logged(quiet)).toBe('running')

    const second = new AgentRuntime(config)
    const recovered = second.events.waitFor({ types: ['execution_recovered'], executionId: quiet })
    await second.start()
    cleanups.push(() => second.stop({ drain: false }))
    expect((await recovered).data).toEqual({ entryPointId: 'sleep', attempt: 2 })
  })

  it('answers a run of an earlier process with the state conflicts its attempts ran into', async () => {
    const dir = tempDir()
    const config: RuntimeConfig = {
      baseDir: dir,
      pool: { threads: 2, tasksPerThread: 4 },
      durability: { path: './runs.db' },
      entryPoints: [
        { id: 'counter', handler: SERIAL_COUNTER, trigger: { type: 'api' }, isolation: 'serializable' },
      ],
    }
    const first = await started(config)
    const results = await Promise.all(
      Array.from({ length: 40 }, () => first.triggerAndWait('counter', { mode: 'read-write' })),
    )
    await first.stop({ drain: true })
    expect(results.reduce((n, r) => n + r.conflicts, 0)).toBeGreaterThan(0)

    const second = await started(config)
    for (const r of results) {
      expect(await second.waitForExecution(r.executionId)).toMatchObject({
        executionId: r.executionId,
        attempts: r.attempts,
        conflicts: r.conflicts,
      })
    }
  })
})
