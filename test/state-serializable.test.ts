import { afterEach, describe, expect, it } from 'vitest'
import type { Goal } from '../src/config/index.js'
import type { AgentRuntime, ExecutionResult } from '../src/index.js'
import type { SerialBankInput } from './fixtures/handlers/serial-bank.js'
import type { SerialFaultInput } from './fixtures/handlers/serial-fault.js'
import { prng } from './helpers/prng.js'
import { api, startRuntime } from './helpers/runtime.js'

const cleanups: (() => Promise<void>)[] = []
afterEach(async () => {
  for (const c of cleanups.splice(0)) await c()
})

const GOAL: Goal = {
  id: 'count',
  description: 'count every ticket',
  successCriteria: [{ id: 'counted', description: 'counted', target: 1 }],
}

/** Reads one scope from the main thread, as committed. */
function committed(rt: AgentRuntime, streamId: string, scope: 'stream' | 'global'): Record<string, unknown> {
  const id = `check-${Math.random()}`
  try {
    return rt.state.createBuffer(id, streamId, 'shared').readAll({ scope })
  } finally {
    rt.state.cleanupExecution(id)
  }
}

/** Counts the `state_conflict` and `state_changed` events of one stream from now on. */
function watch(rt: AgentRuntime, streamId: string) {
  const seen = { conflicts: 0, changes: new Map<string, number>(), custom: 0 }
  rt.events.subscribe({
    streamId,
    handler: (e) => {
      if (e.type === 'state_conflict') seen.conflicts++
      else if (e.type === 'state_changed') {
        const key = (e.data as { key: string }).key
        seen.changes.set(key, (seen.changes.get(key) ?? 0) + 1)
      } else if (e.type === 'ticket_counted') seen.custom++
    },
  })
  return seen
}

function sum(results: ExecutionResult[], f: (r: ExecutionResult) => number): number {
  return results.reduce((n, r) => n + f(r), 0)
}

describe('serializable executions', () => {
  it("the design note's counter (read, await, write + 1) counts every one of 400 executions over 2 threads × 4 tasks", async () => {
    const rt = await startRuntime(
      { goal: GOAL, entryPoints: [api('counter', 'serial-counter', { isolation: 'serializable' })] },
      (fn) => cleanups.push(fn),
    )
    const seen = watch(rt, 'counter')
    const results = await Promise.all(
      Array.from({ length: 400 }, () => rt.triggerAndWait('counter', { mode: 'read-write' })),
    )
    expect(results.filter((r) => r.status !== 'completed')).toEqual([])
    expect(committed(rt, 'counter', 'stream').processing_count).toBe(400)
    // Every completed execution returned a distinct count: each saw the one before it.
    expect(new Set(results.map((r) => r.output)).size).toBe(400)
    const conflicts = sum(results, (r) => r.conflicts)
    expect(conflicts).toBeGreaterThan(0)
    expect(rt.stats().streams.counter!.conflicts).toBe(conflicts)
    expect(seen.conflicts).toBe(conflicts)
    // Records of conflicting attempts never reached the aggregator or the bus.
    const progress = rt.outcomes.evaluateGoalProgress()
    expect(progress.metrics.totalDecisions).toBe(400)
    expect(progress.metrics.successfulOutcomes).toBe(400)
    expect(progress.metrics.executionsTotal).toBe(400)
    expect(seen.custom).toBe(400)
    expect(seen.changes.get('processing_count')).toBe(400)
  }, 120_000)

  it('increment from many executions on one key is exact and never conflicts', async () => {
    const rt = await startRuntime(
      { goal: GOAL, entryPoints: [api('hits', 'serial-counter', { isolation: 'serializable' })] },
      (fn) => cleanups.push(fn),
    )
    const results = await Promise.all(
      Array.from({ length: 300 }, () => rt.triggerAndWait('hits', { mode: 'increment', key: 'hits' })),
    )
    expect(results.filter((r) => r.status !== 'completed')).toEqual([])
    expect(committed(rt, 'hits', 'stream').hits).toBe(300)
    expect(sum(results, (r) => r.conflicts)).toBe(0)
    expect(rt.stats().streams.hits!.conflicts).toBe(0)
  }, 60_000)

  it('a bank transfer written as plain reads and writes is conserved, and every audit reads one snapshot', async () => {
    const ACCOUNTS = 6
    const OPENING = 1000
    const rt = await startRuntime(
      {
        entryPoints: [
          api('bank', 'serial-bank', { isolation: { stream: 'shared', global: 'serializable' } }),
        ],
      },
      (fn) => cleanups.push(fn),
    )
    const opening = rt.state.createBuffer('opening', 'bank', 'shared')
    for (let a = 0; a < ACCOUNTS; a++) opening.write(`acct:${a}`, OPENING, { scope: 'global' })
    const rand = prng(1515)
    const inputs: SerialBankInput[] = []
    for (let i = 0; i < 240; i++) {
      if (i % 6 === 5) {
        inputs.push({ kind: 'audit', accounts: ACCOUNTS })
        continue
      }
      const from = Math.floor(rand() * ACCOUNTS)
      const to = (from + 1 + Math.floor(rand() * (ACCOUNTS - 1))) % ACCOUNTS
      inputs.push({ kind: 'transfer', from, to, amount: 1 + Math.floor(rand() * 50) })
    }
    const results = await Promise.all(inputs.map((input) => rt.triggerAndWait('bank', input)))
    expect(results.filter((r) => r.status !== 'completed')).toEqual([])
    const balances = committed(rt, 'bank', 'global')
    const total = Object.values(balances).reduce((n: number, v) => n + (v as number), 0)
    expect(total).toBe(ACCOUNTS * OPENING)
    const audits = results.filter((_, i) => inputs[i]!.kind === 'audit')
    expect(audits.map((r) => r.output)).toEqual(audits.map(() => ACCOUNTS * OPENING))
    // Each transfer moved its amount once: replaying them from the opening balances gives the result.
    const expected = Array.from({ length: ACCOUNTS }, () => OPENING)
    for (const input of inputs) {
      if (input.kind !== 'transfer') continue
      expected[input.from]! -= input.amount
      expected[input.to]! += input.amount
    }
    expect(expected.map((_, a) => balances[`acct:${a}`])).toEqual(expected)
  }, 120_000)

  it("a thread killed mid-execution leaves no effect of the killed attempt, and the re-run's effects appear exactly once", async () => {
    const rt = await startRuntime(
      {
        goal: GOAL,
        entryPoints: [
          api('faulty', 'serial-fault', { isolation: 'serializable', maxRetries: 2, timeoutMs: 0 }),
        ],
      },
      (fn) => cleanups.push(fn),
    )
    const seen = watch(rt, 'faulty')
    const rand = prng(4242)
    const kinds: SerialFaultInput['kind'][] = ['exit', 'uncaught', 'exit-in-update']
    const inputs: SerialFaultInput[] = []
    let id = 0
    for (const kind of kinds) {
      for (const moment of [0, 1, 2] as const) {
        inputs.push({ kind, moment, id: id++ })
      }
    }
    // Seeded order, each faulty execution among healthy ones that share its thread and die with it.
    for (let i = inputs.length - 1; i > 0; i--) {
      const j = Math.floor(rand() * (i + 1))
      ;[inputs[i], inputs[j]] = [inputs[j]!, inputs[i]!]
    }
    const healthy = 8
    const results = await Promise.all([
      ...inputs.map((input) => rt.triggerAndWait('faulty', input)),
      ...Array.from({ length: healthy }, () =>
        rt.triggerAndWait('faulty', { kind: 'exit', moment: 0, id: id++, healthy: true }),
      ),
    ])
    expect(results.filter((r) => r.status !== 'completed')).toEqual([])
    const n = inputs.length + healthy
    const stream = committed(rt, 'faulty', 'stream')
    expect(stream.count).toBe(n)
    for (let i = 0; i < n; i++) expect(stream[`done:${i}`]).toBeGreaterThanOrEqual(1)
    expect(committed(rt, 'faulty', 'global').increments).toBe(n)
    // The faulty executions completed on a later attempt; nothing of their first one is left.
    for (const r of results.slice(0, inputs.length)) expect(r.attempts).toBeGreaterThan(1)
    expect(seen.changes.get('count')).toBe(n)
    const progress = rt.outcomes.evaluateGoalProgress()
    expect(progress.metrics.totalDecisions).toBe(n)
    expect(progress.metrics.successfulOutcomes).toBe(n)
    expect(rt.state.engine.audit()).toEqual([])
  }, 120_000)
})
