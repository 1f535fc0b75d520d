import { Worker } from 'node:worker_threads'
import { describe, expect, it } from 'vitest'
import { RecordChannel } from '../src/channel/index.js'
import { EventBus } from '../src/events/index.js'
import { OutcomeAggregator, routeRecord } from '../src/outcomes/index.js'

const BOOTSTRAP = new URL('./fixtures/outcomes/ts-worker.mjs', import.meta.url)
const ENTRY = new URL('./fixtures/outcomes/record-worker.ts', import.meta.url).href

describe('outcomes from several threads', () => {
  it('delivers every decision, outcome and event of thousands of executions from three threads exactly once', async () => {
    const threads = ['webhook', 'api', 'timer']
    const executions = 3000
    const bus = new EventBus({ historySize: 0 })
    const aggregator = new OutcomeAggregator(
      { id: 'g', description: '', successCriteria: [{ id: 'resolve_rate', description: '', target: '70%' }] },
      { maxDecisions: threads.length * executions, bus },
    )
    const channel = RecordChannel.create({ slots: threads.length, ringBytes: 64 * 1024 })
    const eventsByStream = new Map<string, number>()
    bus.subscribe({
      types: ['ticket_classified'],
      handler: (e) => void eventsByStream.set(e.streamId, (eventsByStream.get(e.streamId) ?? 0) + 1),
    })
    let routed = 0
    channel.onRecords((records) => {
      for (const r of records) if (routeRecord(r, { aggregator, bus })) routed++
    })
    channel.listen()
    try {
      await Promise.all(
        threads.map(
          (tag) =>
            new Promise<void>((resolve, reject) => {
              const w = new Worker(BOOTSTRAP, {
                workerData: { entry: ENTRY, handles: channel.handles, tag, executions, perFrame: 37 },
              })
              w.once('error', reject)
              w.once('exit', (code) =>
                code === 0 ? resolve() : reject(new Error(`worker ${tag} exited with ${code}`)),
              )
            }),
        ),
      )
    } finally {
      channel.close()
    }
    channel.drain()

    const total = threads.length * executions
    const failuresPerThread = Math.ceil(executions / 4)
    expect(routed).toBe(total * 3)
    const stats = aggregator.stats()
    expect(stats).toMatchObject({
      totalDecisions: total,
      retainedDecisions: total,
      executionsTotal: total,
      successfulOutcomes: total - threads.length * failuresPerThread,
      failedOutcomes: threads.length * failuresPerThread,
      orphanOutcomes: 0,
      replacedOutcomes: 0,
    })
    for (const tag of threads) {
      expect(eventsByStream.get(tag)).toBe(executions)
      const decisions = aggregator.decisionsByStream(tag)
      // In order per thread, none missing, none twice, each with its outcome.
      expect(decisions.map((d) => d.executionId)).toEqual(
        Array.from({ length: executions }, (_, i) => `${tag}-${i}`),
      )
      expect(decisions.map((d) => d.outcome?.success)).toEqual(
        Array.from({ length: executions }, (_, i) => i % 4 !== 0),
      )
    }
    const rate = aggregator.evaluateGoalProgress().criteria.resolve_rate!
    expect(rate.evidence).toMatchObject({
      decisions: total,
      outcomes: total,
      failures: threads.length * failuresPerThread,
    })
    expect(rate.met).toBe(true)
  })
})
