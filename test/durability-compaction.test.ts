import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import type { Goal } from '../src/config/index.js'
import { decodeBatch, decodeRecord, encodeBatch, unpack } from '../src/durability/codec.js'
import { Compactor, ROWS_PER_STEP } from '../src/durability/compaction.js'
import { LogStore } from '../src/durability/index.js'
import { type AggregatedRecord, type AggregatorSnapshot, OutcomeAggregator } from '../src/outcomes/index.js'
import type { LogOp } from '../src/protocol.js'

const cleanups: (() => void)[] = []
afterEach(() => {
  for (const c of cleanups.splice(0).reverse()) c()
})

const goal: Goal = {
  id: 'g',
  description: '',
  successCriteria: [{ id: 'resolved', description: '', target: 0.8 }],
  constraints: [{ id: 'no-refund', description: '', kind: 'hard' }],
}
const options = { maxDecisions: 7 }

function openStore(): LogStore {
  const dir = mkdtempSync(join(tmpdir(), 'agentpool-compaction-'))
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }))
  const store = LogStore.open(join(dir, 'runs.db'), 'normal')
  cleanups.push(() => store.close())
  return store
}

/**
 * The records of execution `i` as the runtime journals them: a decision, its outcome (every third fails),
 * now and then a problem, a violation, or an outcome for an earlier execution's decision.
 */
function execution(i: number): AggregatedRecord[] {
  const executionId = `e${i}`
  const streamId = i % 2 === 0 ? 'webhook' : 'api'
  const base = { executionId, streamId, attempt: 1 }
  const out: AggregatedRecord[] = [
    {
      ...base,
      k: 'decision',
      seq: 0,
      correlationId: executionId,
      intent: 'route',
      options: [{ id: 'a' }, { id: 'b' }],
      chosen: 'a',
      reasoning: `ticket ${i}`,
      criteria: ['resolved'],
      timestamp: i,
    },
    { ...base, k: 'outcome', decisionSeq: 0, criteria: ['resolved'], success: i % 3 !== 0, timestamp: i },
  ]
  if (i % 5 === 0) out.push({ ...base, k: 'problem', severity: 'medium', description: 'slow', timestamp: i })
  if (i % 11 === 0)
    out.push({ ...base, k: 'violation', constraintId: 'no-refund', details: { i }, timestamp: i })
  if (i % 4 === 0 && i >= 8)
    out.push({ ...base, k: 'outcome', decisionId: `e${i - 8}:1:0`, success: true, timestamp: i })
  return out
}

/** Writes executions `[from, to)`, one batch, as the writer would. */
function write(store: LogStore, from: number, to: number): AggregatedRecord[] {
  const records = Array.from({ length: to - from }, (_, k) => execution(from + k)).flat()
  const ops: LogOp[] = records.map((record) => ({ op: 'record', executionId: record.executionId, record }))
  store.apply(decodeBatch(encodeBatch(ops)))
  return records
}

/** The aggregator a restart builds from the log: its snapshot, then the records after it. */
function restarted(store: LogStore): OutcomeAggregator {
  const a = new OutcomeAggregator(goal, options)
  const { snapshot, records } = store.recover()
  a.batch(() => {
    if (snapshot !== undefined) a.restore(snapshot as AggregatorSnapshot, decodeRecord)
    for (const r of records) a.ingest(r as AggregatedRecord)
  })
  return a
}

function replayed(records: AggregatedRecord[]): OutcomeAggregator {
  const a = new OutcomeAggregator(goal, options)
  a.batch(() => {
    for (const r of records) a.ingest(r)
  })
  return a
}

const view = (a: OutcomeAggregator) => ({
  stats: a.stats(),
  progress: a.evaluateGoalProgress(),
  decisions: a.recentDecisions(100),
})

describe('durable runs: compaction', () => {
  it('starts once `every` records were written, and leaves the log restoring what replaying every record gives', () => {
    const store = openStore()
    const compactor = new Compactor(store, { goal, outcomes: options, every: 40 })
    const written = write(store, 0, 30)
    // One row per execution: 30 rows, fewer than 40.
    expect(compactor.due).toBe(false)
    expect(compactor.step()).toBe(false)
    expect(store.snapshot()).toBeUndefined()
    written.push(...write(store, 30, 45))
    expect(compactor.due).toBe(true)
    // One step reads the rows and packs the snapshot; the next writes it, covering what the first read.
    expect(compactor.step()).toBe(true)
    expect(store.snapshot()).toBeUndefined()
    written.push(...write(store, 45, 47))
    expect(compactor.step()).toBe(false)
    expect(store.snapshotThrough()).toBe(45)
    expect(store.recover().records).toHaveLength(countOf(45, 47))
    expect(view(restarted(store))).toEqual(view(replayed(written)))
    compactor.finish()
    expect(store.snapshotThrough()).toBe(47)
    expect(store.recover().records).toEqual([])
    expect(view(restarted(store))).toEqual(view(replayed(written)))
    // More records after it: the snapshot plus those.
    written.push(...write(store, 47, 52))
    expect(compactor.due).toBe(false)
    expect(store.recover().records).toHaveLength(countOf(47, 52))
    expect(view(restarted(store))).toEqual(view(replayed(written)))
  })

  it('runs in steps between commits, taking in what is written meanwhile', () => {
    const store = openStore()
    const compactor = new Compactor(store, { goal, outcomes: options, every: 100 })
    const written = write(store, 0, ROWS_PER_STEP + 200)
    let steps = 0
    let more = true
    for (let next = ROWS_PER_STEP + 200; more; next += ROWS_PER_STEP) {
      more = compactor.step()
      steps++
      // A commit between steps (the writer's next batch), until the compaction has caught up.
      if (more && steps < 4) written.push(...write(store, next, next + ROWS_PER_STEP))
    }
    expect(steps).toBeGreaterThan(2)
    expect(store.snapshotThrough()).toBe(store.lastRecord)
    expect(view(restarted(store))).toEqual(view(replayed(written)))
    // Counters are exact over every record, not only the retained ones.
    expect(restarted(store).stats().totalDecisions).toBe(written.filter((r) => r.k === 'decision').length)
  })

  it('restores decisions of rows large and small alike, and records written as values', () => {
    const store = openStore()
    const compactor = new Compactor(store, { goal, outcomes: options, every: 1_000_000 })
    const written = write(store, 0, 3)
    // A row of 40 KB: its decision is kept as a copy of its own bytes, not the whole row.
    const big = execution(3)
    ;(big[0] as { context?: unknown }).context = { notes: 'x'.repeat(40_000) }
    // A record holding a cycle is written as a value (structured clone), not as plain msgpack.
    const cyclic: Record<string, unknown> = { note: 'self' }
    cyclic.self = cyclic
    const odd = execution(4)
    ;(odd[0] as { context?: unknown }).context = cyclic
    for (const records of [big, odd]) {
      store.apply(
        decodeBatch(
          encodeBatch(records.map((record) => ({ op: 'record', executionId: record.executionId, record }))),
        ),
      )
      written.push(...records)
    }
    written.push(...write(store, 5, 9))
    compactor.finish()
    expect(store.recover().records).toEqual([])
    const restored = restarted(store)
    expect(view(restored)).toEqual(view(replayed(written)))
    const context = (id: string) => restored.recentDecisions(100).find((d) => d.executionId === id)?.context
    expect(context('e3')).toEqual({ notes: 'x'.repeat(40_000) })
    expect((context('e4') as { self: unknown }).self).toBe(context('e4'))
  })

  it('finish() compacts however few records are left, from the last snapshot on', () => {
    const store = openStore()
    const compactor = new Compactor(store, { goal, outcomes: options, every: 1_000_000 })
    const written = write(store, 0, 12)
    compactor.finish()
    expect(store.snapshotThrough()).toBe(12)
    written.push(...write(store, 12, 15))
    compactor.finish()
    expect(store.snapshotThrough()).toBe(15)
    const body = unpack(store.snapshot()!.body) as AggregatorSnapshot
    expect(body.totalDecisions).toBe(15)
    expect(view(restarted(store))).toEqual(view(replayed(written)))
    // Nothing new: nothing written.
    const before = store.snapshot()!.body
    compactor.finish()
    expect(store.snapshot()!.body.equals(before)).toBe(true)
  })
})

/** Records of executions `[from, to)`. */
function countOf(from: number, to: number): number {
  let n = 0
  for (let i = from; i < to; i++) n += execution(i).length
  return n
}
