/**
 * `outcomes_vs_postmessage`: records per second delivered from worker threads to the aggregator and the
 * event bus through agentpool's record channel (msgpack frames in a SharedArrayBuffer ring per thread),
 * against one structured-clone `postMessage` per record — same records, same producer threads, same
 * main-side consumer (`routeRecord` into an `OutcomeAggregator` and an `EventBus`), same run.
 *
 * Also logged: main-thread CPU time per million records (both transports) and
 * heap growth over many records through the channel with the default retention.
 */
import { readFileSync } from 'node:fs'
import { performance } from 'node:perf_hooks'
import v8 from 'node:v8'
import vm from 'node:vm'
import { Worker } from 'node:worker_threads'
import { RecordChannel } from '../src/channel/index.js'
import type { Goal } from '../src/config/index.js'
import { EventBus } from '../src/events/index.js'
import { OutcomeAggregator, routeRecord, routeRecords } from '../src/outcomes/index.js'
import type { WireRecord } from '../src/protocol.js'
import { compareSideBySide } from './harness/index.js'
import type { BenchSuite } from './harness/types.js'

const PRODUCERS = 2
/** Records per execution: decision, outcome, custom event. */
const RECORDS_PER_EXECUTION = 3
const EXECUTIONS_PER_ITERATION = 2000
/** Records per frame on the channel side (a pool thread flushes once per event-loop turn). */
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
    arrived(records.length)
  })
  channel.listen()
  const workers = Array.from({ length: PRODUCERS }, (_, i) => {
    const w = new Worker(new URL('./workloads/outcomes-producer.mjs', import.meta.url), {
      workerData: { handles: channel.handles, tag: `stream-${i}` },
    })
    w.on('message', (record: WireRecord) => {
      routeRecord(record, targets)
      arrived(1)
    })
    return w
  })
  return {
    aggregator,
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

/**
 * CPU time of the main thread alone, in ms: from `/proc/self/task/<pid>/stat` (utime + stime) on Linux,
 * else the event loop's active time (which also counts time the thread was runnable but descheduled).
 */
function mainThreadCpuMs(): { ms: number; source: 'thread CPU' | 'event-loop active' } {
  try {
    const stat = readFileSync(`/proc/self/task/${process.pid}/stat`, 'utf8')
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
    // Fields 14 and 15 of stat(5) (utime, stime), counted from the state field (3) after the command name.
    const ticks = Number(fields[11]) + Number(fields[12])
    return { ms: (ticks * 1000) / CLOCK_TICKS_PER_SECOND, source: 'thread CPU' }
  } catch {
    return { ms: performance.eventLoopUtilization().active, source: 'event-loop active' }
  }
}

/** USER_HZ: the unit of utime/stime in /proc stat files (100 on Linux for every common architecture). */
const CLOCK_TICKS_PER_SECOND = 100

/** Main-thread CPU milliseconds per million records delivered in `mode`. */
async function cpuPerMillion(rig: ReturnType<typeof startRig>, mode: Mode, records: number) {
  const perThread = Math.ceil(records / (PRODUCERS * RECORDS_PER_EXECUTION) / 10)
  const before = mainThreadCpuMs()
  for (let i = 0; i < 10; i++) await rig.run(mode, perThread)
  const after = mainThreadCpuMs()
  return {
    msPerMillion: ((after.ms - before.ms) / (perThread * 10 * PRODUCERS * RECORDS_PER_EXECUTION)) * 1e6,
    source: after.source,
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
        target: 3.0,
        quick,
        log,
        baseline: {
          name: `structured-clone postMessage per record (${PRODUCERS} threads)`,
          opsPerIteration: PRODUCERS * EXECUTIONS_PER_ITERATION * RECORDS_PER_EXECUTION,
          fn: async () => rig.run('post', EXECUTIONS_PER_ITERATION),
        },
        contender: {
          name: `agentpool record channel, ${PER_FRAME} records/frame (${PRODUCERS} threads)`,
          opsPerIteration: PRODUCERS * EXECUTIONS_PER_ITERATION * RECORDS_PER_EXECUTION,
          fn: async () => rig.run('channel', EXECUTIONS_PER_ITERATION),
        },
      })

      const cpuRecords = quick ? 300_000 : 1_200_000
      const post = await cpuPerMillion(rig, 'post', cpuRecords)
      const channel = await cpuPerMillion(rig, 'channel', cpuRecords)
      log(
        `outcomes: main-thread ${channel.source} per million records: channel ${channel.msPerMillion.toFixed(0)} ms, ` +
          `postMessage ${post.msPerMillion.toFixed(0)} ms (×${(post.msPerMillion / channel.msPerMillion).toFixed(2)} less with the channel)`,
      )

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
