import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import type { Goal } from '../src/config/index.js'
import { OutcomeAggregator } from '../src/outcomes/index.js'
import { type DecisionRecord, decisionId, type OutcomeRecord } from '../src/protocol.js'

const goal: Goal = {
  id: 'g',
  description: '',
  successCriteria: [{ id: 'a', description: '', target: 0.5 }],
  constraints: [],
}

// Few execution ids (some with ':' in them), several streams and attempts: the same execution id recurs
// across streams and attempts, so lookups walk chains and the retention ring wraps many times.
const EXECUTIONS = ['e1', 'e2', 'e3', 'x:1', 'x:1:0', 'long-execution-id-0123456789']
const STREAMS = ['webhook', 'api']

type Step =
  | { op: 'decide'; exec: number; stream: number; attempt: number }
  | { op: 'outcome'; pick: number; exec: number; stream: number; success: boolean; own: boolean }
  | { op: 'bogus'; id: string }

const step: fc.Arbitrary<Step> = fc.oneof(
  fc.record({
    op: fc.constant('decide' as const),
    exec: fc.nat(EXECUTIONS.length - 1),
    stream: fc.nat(STREAMS.length - 1),
    attempt: fc.integer({ min: 1, max: 3 }),
  }),
  fc.record({
    op: fc.constant('outcome' as const),
    pick: fc.nat(),
    exec: fc.nat(EXECUTIONS.length - 1),
    stream: fc.nat(STREAMS.length - 1),
    success: fc.boolean(),
    own: fc.boolean(),
  }),
  fc.record({
    op: fc.constant('bogus' as const),
    id: fc.constantFrom('', ':', 'e1', 'e1:1', 'e1::0', 'e1:a:0', ':1:0', 'e1:1:0:'),
  }),
)

interface ModelDecision {
  id: string
  executionId: string
  streamId: string
  attempt: number
  criteria: string[]
  outcome?: { success: boolean; executionId: string; streamId: string }
}

/**
 * The retention contract in its plainest form: the last `max` decisions in order, found by id (the newest
 * with that id), with the outcome attached and a replaced outcome counted once.
 */
function runModel(max: number, steps: Step[]) {
  const all: ModelDecision[] = []
  const seqs = new Map<string, number>()
  let successes = 0
  let failures = 0
  let replaced = 0
  let orphans = 0
  const records: (DecisionRecord | OutcomeRecord)[] = []
  for (const s of steps) {
    if (s.op === 'decide') {
      const executionId = EXECUTIONS[s.exec]!
      const streamId = STREAMS[s.stream]!
      const key = `${streamId}/${executionId}:${s.attempt}`
      const seq = seqs.get(key) ?? 0
      seqs.set(key, seq + 1)
      const criteria = seq % 2 === 0 ? ['a'] : []
      const id = decisionId(executionId, s.attempt, seq)
      all.push({ id, executionId, streamId, attempt: s.attempt, criteria })
      records.push({
        k: 'decision',
        executionId,
        streamId,
        attempt: s.attempt,
        seq,
        correlationId: `c-${executionId}`,
        intent: 'x',
        options: [],
        chosen: 'o',
        reasoning: '',
        criteria,
        timestamp: 0,
      })
      continue
    }
    const id = s.op === 'bogus' ? s.id : all.length === 0 ? 'none:1:0' : all[s.pick % all.length]!.id
    const retained = all.slice(Math.max(0, all.length - max))
    const target = retained.findLast((d) => d.id === id)
    const recorder =
      s.op === 'outcome' && s.own && target !== undefined
        ? { executionId: target.executionId, streamId: target.streamId }
        : {
            executionId: EXECUTIONS[s.op === 'outcome' ? s.exec : 0]!,
            streamId: STREAMS[s.op === 'outcome' ? s.stream : 0]!,
          }
    const success = s.op === 'outcome' ? s.success : false
    if (target?.outcome !== undefined) {
      replaced++
      if (target.outcome.success) successes--
      else failures--
    } else if (target === undefined) {
      orphans++
    }
    if (success) successes++
    else failures++
    if (target !== undefined) target.outcome = { success, ...recorder }
    records.push({ k: 'outcome', decisionId: id, ...recorder, attempt: 1, success, timestamp: 0 })
  }
  return {
    retained: all.slice(Math.max(0, all.length - max)),
    records,
    successes,
    failures,
    replaced,
    orphans,
  }
}

describe('outcome retention against a model', () => {
  it('finds, attaches and drops decisions exactly as the plain model does (fast-check)', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 8 }), fc.array(step, { maxLength: 120 }), (max, steps) => {
        const model = runModel(max, steps)
        const aggregator = new OutcomeAggregator(goal, { maxDecisions: max })
        for (const r of model.records) aggregator.ingest(r)
        const shape = (d: {
          id: string
          executionId: string
          streamId: string
          outcome?: { success: boolean; executionId: string; streamId: string }
        }) => ({
          id: d.id,
          streamId: d.streamId,
          outcome:
            d.outcome === undefined
              ? undefined
              : {
                  success: d.outcome.success,
                  executionId: d.outcome.executionId,
                  streamId: d.outcome.streamId,
                },
        })
        expect(aggregator.recentDecisions(1000).map(shape)).toEqual(model.retained.map(shape))
        for (const streamId of STREAMS) {
          expect(aggregator.decisionsByStream(streamId).map(shape)).toEqual(
            model.retained.filter((d) => d.streamId === streamId).map(shape),
          )
          for (const executionId of EXECUTIONS) {
            expect(aggregator.decisionsByExecution(streamId, executionId).map(shape)).toEqual(
              model.retained
                .filter((d) => d.streamId === streamId && d.executionId === executionId)
                .map(shape),
            )
          }
        }
        expect(aggregator.stats()).toMatchObject({
          retainedDecisions: model.retained.length,
          successfulOutcomes: model.successes,
          failedOutcomes: model.failures,
          replacedOutcomes: model.replaced,
          orphanOutcomes: model.orphans,
        })
      }),
      { seed: 20261125, numRuns: 400 },
    )
  })
})
