/**
 * `outcomes_vs_postmessage`: records per second delivered from worker threads to the aggregator and the
 * event bus through agentpool's record channel (msgpack frames in a SharedArrayBuffer ring per thread),
 * against a structured-clone `postMessage` of each array of the same 32 records — same records, same
 * producer threads, same main-side consumer (`routeRecords` into an `OutcomeAggregator` and an
 * `EventBus`, once per batch), same run. Target 1.5.
 *
 * Also logged: heap growth over many records through the channel with the default retention.
 */
import v8 from 'node:v8'
import vm from 'node:vm'
import { Worker } from 'node:worker_threads'
import { RecordChannel } from '../src/channel/index.js'
import type { Goal } from '../src/config/index.js'
import { EventBus } from '../src/events/index.js'
import { OutcomeAggregator, routeRecords } from '../src/outcomes/index.js'
import type { WireRecord } from '../src/protocol.js'
import { compareSideBySide } from './harness/index.js'
import type { BenchSuite } from './harness/types.js'

const PRODUCERS = 2
/** Records per execution: decision, outcome, custom event. */
const RECORDS_PER_EXECUTION = 3
const EXECUTIONS_PER_ITERATION = 2000
/** Records per frame, or per posted array (a pool thread flushes once per event-loop turn). */
const PER_FRAME = 32

const goal: Goal = {
  id: 'tier1',
  description: 'resolve tier-1 tickets',
  successCriteria: [
    { id: 'resolve_rate', description: 'resolved', target: '80%', weight: 2 },
    { id: 'csat', description: 'satisfied', target: 0.9 },
  ],
  constraints: [{ id: 'no_pii_leak', description: 'no PII in replies', kind: 'hard' }],
}

type Mode = 'channel' | 'post'

/** Producer threads plus the main-side consumer; `run(mode, executionsPerThread)` resolves once all arrived. */
function startRig() {
  const bus = new EventBus()
  const aggregator = new OutcomeAggregator(goal, { bus })
  const targets = { aggregator, bus }
  const channel = RecordChannel.create({ slots: PRODUCERS })
  let delivered = 0
  /** Records delivered per transport, for the CPU accounting. */
  const perMode: Record<Mode, number> = { channel: 0, post: 0 }
  let waitingFor = 0
  let done: (() => void) | undefined
  const arrived = (n: number): void => {
    delivered += n
    if (done !== undefined && delivered >= waitingFor) {
      const resolve = done
      done = undefined
      resolve()
    }
  }
  channel.onRecords((records, source) => {
    routeRecords(records, targets, source)
    perMode.channel += records.length
    arrived(records.length)
  })
  channel.listen()
  const workers = Array.from({ length: PRODUCERS }, (_, i) => {
    const w = new Worker(new URL('./workloads/outcomes-producer.mjs', import.meta.url), {
      workerData: { handles: channel.handles, tag: `stream-${i}` },
    })
    w.on('message', (records: WireRecord[]) => {
      routeRecords(records, targets)
      perMode.post += records.length
      arrived(records.length)
    })
    return w
  })
  return {
    aggregator,
    records: (mode: Mode) => () => perMode[mode],
    run(mode: Mode, executionsPerThread: number): Promise<void> {
      return new Promise((resolve) => {
        waitingFor = delivered + PRODUCERS * executionsPerThread * RECORDS_PER_EXECUTION
        done = resolve
        for (const w of workers) w.postMessage({ mode, executions: executionsPerThread, perFrame: PER_FRAME })
      })
    },
    async close(): Promise<void> {
      channel.close()
      await Promise.all(workers.map((w) => w.terminate()))
    },
  }
}

function forceGc(): () => void {
  v8.setFlagsFromString('--expose-gc')
  return vm.runInNewContext('gc') as () => void
}

const MiB = 1024 * 1024

const suite: BenchSuite = {
  name: 'outcomes',
  async run({ quick, log }) {
    const rig = startRig()
    try {
      const entry = await compareSideBySide({
        name: 'outcomes_vs_postmessage',
        unit: 'records/s',
        target: 1.5,
        quick,
        log,
        baseline: {
          name: `structured-clone postMessage, ${PER_FRAME} records/array (${PRODUCERS} threads)`,
          opsPerIteration: PRODUCERS * EXECUTIONS_PER_ITERATION * RECORDS_PER_EXECUTION,
          records: rig.records('post'),
          fn: async () => rig.run('post', EXECUTIONS_PER_ITERATION),
        },
        contender: {
          name: `agentpool record channel, ${PER_FRAME} records/frame (${PRODUCERS} threads)`,
          opsPerIteration: PRODUCERS * EXECUTIONS_PER_ITERATION * RECORDS_PER_EXECUTION,
          records: rig.records('channel'),
          fn: async () => rig.run('channel', EXECUTIONS_PER_ITERATION),
        },
      })

      const gc = forceGc()
      const heapRecords = quick ? 1_200_000 : 10_200_000
      const steps = 10
      const perThread = Math.ceil(heapRecords / (PRODUCERS * RECORDS_PER_EXECUTION * steps))
      const samples: number[] = []
      for (let i = 0; i < steps; i++) {
        await rig.run('channel', perThread)
        gc()
        samples.push(process.memoryUsage().heapUsed / MiB)
      }
      const stats = rig.aggregator.stats()
      log(
        `outcomes: heap over ${((steps * perThread * PRODUCERS * RECORDS_PER_EXECUTION) / 1e6).toFixed(1)}M records (default retention ${stats.maxDecisions} decisions): ` +
          `${samples.map((s) => s.toFixed(1)).join(' → ')} MiB; growth after the first step ${(samples.at(-1)! - samples[0]!).toFixed(1)} MiB; ` +
          `retained ${stats.retainedDecisions}, counted ${stats.totalDecisions} decisions`,
      )
      return [entry]
    } finally {
      await rig.close()
    }
  },
}

export default suite
