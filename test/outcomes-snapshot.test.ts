import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import type { Goal } from '../src/config/index.js'
import { decodeRecord, packRecord, packSnapshot, unpack } from '../src/durability/codec.js'
import { EventBus } from '../src/events/index.js'
import { type AggregatedRecord, type AggregatorSnapshot, OutcomeAggregator } from '../src/outcomes/index.js'
import { type DecisionRecord, decisionId } from '../src/protocol.js'
import { feedThroughChannel } from './helpers/records.js'

const goal: Goal = {
  id: 'g',
  description: '',
  successCriteria: [
    { id: 'a', description: '', target: 0.5 },
    { id: 'b', description: '', target: 0.9, weight: 2 },
  ],
  constraints: [{ id: 'hard-1', description: 'never', kind: 'hard' }],
}

// Few execution ids and streams, attempt 0 (the embedding service's own) among them: ids recur across
// streams and attempts, and the ring wraps many times.
const EXECUTIONS = ['e1', 'e2', 'x:1', 'main-3', 'main-12']
const STREAMS = ['webhook', 'api', 'desk']
const CRITERIA = [[], ['a'], ['b'], ['a', 'b'], ['gone']]

type Step =
  | { op: 'decide'; exec: number; stream: number; attempt: number; criteria: number; context: boolean }
  | { op: 'outcome'; pick: number; stream: number; success: boolean; own: boolean; result: boolean }
  | { op: 'problem'; stream: number; severity: 'low' | 'medium' | 'high' | 'critical' }
  | { op: 'violation'; stream: number; constraint: string }

const step: fc.Arbitrary<Step> = fc.oneof(
  {
    weight: 4,
    arbitrary: fc.record({
      op: fc.constant('decide' as const),
      exec: fc.nat(EXECUTIONS.length - 1),
      stream: fc.nat(STREAMS.length - 1),
      attempt: fc.integer({ min: 0, max: 2 }),
      criteria: fc.nat(CRITERIA.length - 1),
      context: fc.boolean(),
    }),
  },
  {
    weight: 4,
    arbitrary: fc.record({
      op: fc.constant('outcome' as const),
      pick: fc.nat(),
      stream: fc.nat(STREAMS.length - 1),
      success: fc.boolean(),
      own: fc.boolean(),
      result: fc.boolean(),
    }),
  },
  fc.record({
    op: fc.constant('problem' as const),
    stream: fc.nat(STREAMS.length - 1),
    severity: fc.constantFrom('low' as const, 'medium' as const, 'high' as const, 'critical' as const),
  }),
  fc.record({
    op: fc.constant('violation' as const),
    stream: fc.nat(STREAMS.length - 1),
    constraint: fc.constantFrom('hard-1', 'unknown'),
  }),
)

/** The records a sequence of steps makes, as handlers and the embedding service would make them. */
function recordsOf(steps: Step[]): AggregatedRecord[] {
  const seqs = new Map<string, number>()
  const decisions: DecisionRecord[] = []
  const out: AggregatedRecord[] = []
  steps.forEach((s, t) => {
    if (s.op === 'decide') {
      const executionId = EXECUTIONS[s.exec]!
      const key = `${executionId}:${s.attempt}`
      const seq = seqs.get(key) ?? 0
      seqs.set(key, seq + 1)
      const d: DecisionRecord = {
        k: 'decision',
        executionId,
        streamId: STREAMS[s.stream]!,
        attempt: s.attempt,
        seq,
        correlationId: `c-${executionId}`,
        intent: `intent ${t}`,
        options: [{ id: 'o', label: 'O' }],
        chosen: 'o',
        reasoning: 'r',
        criteria: CRITERIA[s.criteria]!,
        timestamp: t,
      }
      if (s.context) d.context = { t, tags: ['x', t] }
      decisions.push(d)
      out.push(d)
      return
    }
    const streamId = STREAMS[s.stream]!
    if (s.op === 'problem') {
      out.push({
        k: 'problem',
        executionId: 'e1',
        streamId,
        attempt: 1,
        severity: s.severity,
        description: 'p',
        timestamp: t,
      })
      return
    }
    if (s.op === 'violation') {
      out.push({
        k: 'violation',
        executionId: 'e2',
        streamId,
        attempt: 1,
        constraintId: s.constraint,
        details: { t },
        timestamp: t,
      })
      return
    }
    const d = decisions.length === 0 ? undefined : decisions[s.pick % decisions.length]!
    const base = {
      k: 'outcome' as const,
      success: s.success,
      timestamp: t,
      ...(s.result ? { result: { t } } : {}),
    }
    if (d !== undefined && s.own) {
      // An outcome of the recording attempt's own decision: by number, with its criteria.
      out.push({
        ...base,
        executionId: d.executionId,
        streamId: d.streamId,
        attempt: d.attempt,
        decisionSeq: d.seq,
        criteria: d.criteria,
      })
    } else {
      const id = d === undefined ? 'none:1:0' : decisionId(d.executionId, d.attempt, d.seq)
      out.push({ ...base, executionId: 'e2', streamId, attempt: 1, decisionId: id })
    }
  })
  return out
}

/** A snapshot as the run log stores and returns it. */
function throughLog(snapshot: AggregatorSnapshot): AggregatorSnapshot {
  return unpack(packSnapshot(snapshot)) as AggregatorSnapshot
}

/** Everything the aggregator shows. */
function view(a: OutcomeAggregator) {
  return {
    stats: a.stats(),
    progress: a.evaluateGoalProgress(),
    recent: a.recentDecisions(10_000),
    byStream: STREAMS.map((s) => a.decisionsByStream(s)),
    byExecution: STREAMS.flatMap((s) => EXECUTIONS.map((e) => a.decisionsByExecution(s, e))),
  }
}

describe('aggregator snapshots', () => {
  it('restoring a snapshot then ingesting the rest equals ingesting everything (fast-check)', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 12 }),
        fc.array(step, { minLength: 1, maxLength: 120, size: 'max' }),
        fc.double({ min: 0, max: 1, noNaN: true }),
        (max, steps, at) => {
          const records = recordsOf(steps)
          const cut = Math.floor(at * records.length)
          const whole = new OutcomeAggregator(goal, { maxDecisions: max })
          feedThroughChannel(whole, records, 5)

          const before = new OutcomeAggregator(goal, { maxDecisions: max })
          feedThroughChannel(before, records.slice(0, cut), 5)
          const snapshot = throughLog(before.snapshot())
          const after = new OutcomeAggregator(goal, { maxDecisions: max })
          after.restore(snapshot)
          expect(view(after)).toEqual(view(before))
          after.batch(() => {
            for (const r of records.slice(cut)) after.ingest(r)
          })
          expect(view(after)).toEqual(view(whole))
          // A decision the restored aggregator hands out next has an id the first one did not hand out.
          const fresh = after.recordDecision(
            { intent: 'i', options: [{ id: 'o' }], chosen: 'o', reasoning: '', criteria: [] },
            { streamId: 'desk' },
          )
          expect(fresh).toBe(
            whole.recordDecision(
              { intent: 'i', options: [{ id: 'o' }], chosen: 'o', reasoning: '', criteria: [] },
              { streamId: 'desk' },
            ),
          )
        },
      ),
      { numRuns: 300 },
    )
  })

  it('publishes the restored standing like a replay does, and no old constraint violations', () => {
    const records = recordsOf(
      Array.from(
        { length: 30 },
        (_, i): Step =>
          i % 10 === 9
            ? { op: 'violation', stream: 0, constraint: 'hard-1' }
            : i % 2 === 0
              ? { op: 'decide', exec: i % 3, stream: 0, attempt: 1, criteria: 3, context: false }
              : { op: 'outcome', pick: i - 1, stream: 0, success: true, own: true, result: false },
      ),
    )
    const first = new OutcomeAggregator(goal)
    first.batch(() => {
      for (const r of records) first.ingest(r)
    })
    const replayBus = new EventBus()
    const replayed = new OutcomeAggregator(goal, { bus: replayBus })
    replayed.batch(() => {
      for (const r of records) replayed.ingest(r)
    })
    const bus = new EventBus()
    const restored = new OutcomeAggregator(goal, { bus })
    restored.batch(() => restored.restore(throughLog(first.snapshot())))
    const progress = (b: EventBus) => b.history({ types: ['goal_progress'] }).map((e) => e.data)
    expect(progress(bus)).toEqual(progress(replayBus))
    expect(progress(bus)).toHaveLength(1)
    expect(bus.history({ types: ['constraint_violation'] })).toEqual([])
    expect(restored.evaluateGoalProgress()).toEqual(first.evaluateGoalProgress())
  })

  it('drops the oldest retained decisions into a smaller maxDecisions, counted as dropped', () => {
    const records = recordsOf(
      Array.from(
        { length: 20 },
        (_, i): Step => ({
          op: 'decide',
          exec: i % 2,
          stream: 1,
          attempt: 1,
          criteria: 1,
          context: false,
        }),
      ),
    )
    const wide = new OutcomeAggregator(goal, { maxDecisions: 16 })
    for (const r of records) wide.ingest(r)
    const narrow = new OutcomeAggregator(goal, { maxDecisions: 5 })
    narrow.restore(throughLog(wide.snapshot()))
    const replayed = new OutcomeAggregator(goal, { maxDecisions: 5 })
    for (const r of records) replayed.ingest(r)
    expect(view(narrow)).toEqual(view(replayed))
    expect(narrow.stats()).toMatchObject({ retainedDecisions: 5, droppedDecisions: 15, totalDecisions: 20 })
  })

  it('refuses a snapshot it cannot read, naming the version', () => {
    const a = new OutcomeAggregator(goal)
    expect(() => a.restore({ v: 2 } as unknown as AggregatorSnapshot)).toThrow(/v 2/)
    // Retained records kept as bytes need a decoder.
    const kept = new OutcomeAggregator(goal)
    kept.ingest(
      recordsOf([{ op: 'decide', exec: 0, stream: 0, attempt: 1, criteria: 1, context: false }])[0]!,
    )
    const asBytes = kept.snapshot()
    asBytes.retained[0]![0] = packRecord(asBytes.retained[0]![0])
    expect(() => a.restore(asBytes)).toThrow(/as bytes and no decode/)
    a.restore(asBytes, decodeRecord)
    expect(a.recentDecisions()).toEqual(kept.recentDecisions())
  })
})
