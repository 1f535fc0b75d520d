import { threadId } from 'node:worker_threads'
import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { RecordChannel, RecordWriter } from '../src/channel/index.js'
import type { Goal } from '../src/config/index.js'
import { EventBus } from '../src/events/index.js'
import { OutcomeAggregator, routeRecords } from '../src/outcomes/index.js'
import { type DecisionRecord, decisionId, type OutcomeRecord } from '../src/protocol.js'
import { feedThroughChannel } from './helpers/records.js'

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
 * with that id in the outcome's stream, else the newest anywhere), with the outcome attached and a
 * replaced outcome counted once.
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
    const newest = retained.findLast((d) => d.id === id)
    const recorder =
      s.op === 'outcome' && s.own && newest !== undefined
        ? { executionId: newest.executionId, streamId: newest.streamId }
        : {
            executionId: EXECUTIONS[s.op === 'outcome' ? s.exec : 0]!,
            streamId: STREAMS[s.op === 'outcome' ? s.stream : 0]!,
          }
    // A recurring id: the newest decision with it in the outcome's own stream, else the newest anywhere.
    const target = retained.findLast((d) => d.id === id && d.streamId === recorder.streamId) ?? newest
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

/**
 * Feeds records to an aggregator: as objects (`ingest`), or through a real record channel, where retained
 * decisions and outcomes are kept as bytes of the frames they came in (a few records per frame, so
 * retained records span many frames and the decoder's structure table).
 */
function feed(
  aggregator: OutcomeAggregator,
  records: (DecisionRecord | OutcomeRecord)[],
  via: 'objects' | 'channel',
) {
  if (via === 'objects') {
    for (const r of records) aggregator.ingest(r)
    return
  }
  feedThroughChannel(aggregator, records, 3)
}

describe.each(['objects', 'channel'] as const)(
  'outcome retention against a model, records fed as %s',
  (via) => {
    it('finds, attaches and drops decisions exactly as the plain model does (fast-check)', () => {
      fc.assert(
        fc.property(
          fc.integer({ min: 0, max: 24 }),
          fc.array(step, { minLength: 20, maxLength: 160, size: 'max' }),
          (max, steps) => {
            const model = runModel(max, steps)
            const aggregator = new OutcomeAggregator(goal, { maxDecisions: max })
            feed(aggregator, model.records, via)
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
          },
        ),
        { seed: 20261125, numRuns: 400 },
      )
    })
  },
)

/** Decision 0 of execution `e${i}` (attempt 1) in stream `api`, with intent `intent ${i}`. */
function apiDecision(i: number): DecisionRecord {
  const executionId = `e${i}`
  return {
    k: 'decision',
    executionId,
    streamId: 'api',
    attempt: 1,
    seq: 0,
    correlationId: executionId,
    intent: `intent ${i}`,
    options: [{ id: 'a' }],
    chosen: 'a',
    reasoning: '',
    criteria: ['a'],
    timestamp: i,
  }
}

describe('decisions kept as bytes', () => {
  it('decode as they were sent while msgpack defines new shapes and recycles its structure ids', () => {
    // In every 50 decisions, the first 5 (a frame of their own) each bring a context of a new shape: far
    // more shapes than the 64 record structures the encoder keeps, so ids are redefined while decisions
    // decoded under their earlier meaning are still retained. The other frames hold known shapes only.
    const aggregator = new OutcomeAggregator(goal, { maxDecisions: 600 })
    const channel = RecordChannel.create({ slots: 1, ringBytes: 1 << 20 })
    channel.onRecords((batch, source) => {
      routeRecords(batch, { aggregator, bus: new EventBus() }, source)
    })
    const writer = RecordWriter.attach(channel.handles, threadId)
    const sent: { id: string; context: Record<string, number>; intent: string }[] = []
    for (let i = 0; i < 1500; i++) {
      const context = i % 50 < 5 ? { [`field${i}`]: i } : { steady: i }
      const executionId = `e${i}`
      const intent = `intent ${i}`
      writer.push({ ...apiDecision(i), context })
      sent.push({ id: `${executionId}:1:0`, context, intent })
      if (i % 5 === 4) {
        writer.flush()
        channel.drain()
      }
    }
    channel.close()
    const kept = aggregator.recentDecisions(1000)
    expect(kept.map((d) => [d.id, d.context, d.intent])).toEqual(
      sent.slice(900).map((s) => [s.id, s.context, s.intent]),
    )
  })
})

describe('decisions kept as bytes, next to large records', () => {
  it('do not keep the large records of their frame alive', () => {
    // What a kept decision holds is measured directly (bytes of its kept frame), not through the process's
    // memory, which other test files running alongside move too.
    const aggregator = new OutcomeAggregator(goal, { maxDecisions: 1000 })
    const channel = RecordChannel.create({ slots: 1, ringBytes: 1 << 20 })
    const held: ({ kept: number; eventKept: number; sameForBoth: boolean } | undefined)[] = []
    channel.onRecords((batch, source) => {
      routeRecords(batch, { aggregator, bus: new EventBus({ historySize: 0 }) }, source)
      const decision = source.keep(0)
      const other = source.keep(1)
      if (decision === undefined || other === undefined) {
        held.push(undefined)
        return
      }
      held.push({
        kept: decision.frame.byteLength,
        eventKept: other.frame.byteLength,
        sameForBoth: decision.frame === other.frame,
      })
    })
    const writer = RecordWriter.attach(channel.handles, threadId)
    for (const size of [100, 100_000]) {
      for (let i = 0; i < 3; i++) {
        const executionId = `e${size}-${i}`
        writer.push(apiDecision(i))
        writer.push({
          k: 'event',
          executionId,
          streamId: 'api',
          attempt: 1,
          correlationId: executionId,
          type: 'bulky',
          data: { big: 'x'.repeat(size) },
          timestamp: i,
        })
        writer.flush()
        channel.drain()
      }
    }
    channel.close()
    // The first frame defines the record shapes, so its records are kept as objects; the rest as bytes.
    expect(held).toHaveLength(6)
    expect(held[0]).toBeUndefined()
    const small = held.slice(1, 3).map((h) => h!)
    const large = held.slice(3).map((h) => h!)
    // A small frame is kept once, whole, for all its records.
    for (const h of small) {
      expect(h.sameForBoth).toBe(true)
      expect(h.kept).toBeLessThan(1000)
    }
    // From a frame of some 100 kB, a decision keeps only its own bytes.
    for (const h of large) {
      expect(h.eventKept).toBeGreaterThan(100_000)
      expect(h.kept).toBeLessThan(300)
      expect(h.sameForBoth).toBe(false)
    }
    expect(aggregator.recentDecisions(2).map((d) => d.intent)).toEqual(['intent 1', 'intent 2'])
  })
})
