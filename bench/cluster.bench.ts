/**
 * What cluster mode adds to the queue it rides on, measured in the same run on the same redis-server
 * (started by the bench on a free port, non-persistent):
 *
 * - `cluster_vs_bullmq`: batches of `BATCH` no-op jobs added to the queue with one `addBulk`, until
 *   BullMQ reports every one completed — one agentpool cluster host (its worker takes the jobs into its
 *   engine and runs each on a pool thread, writes the cluster counters, returns the `ExecutionResult`) ÷
 *   a plain BullMQ worker whose processor returns the job's data, with the same concurrency. Target 0.8.
 *
 * Without a redis-server binary the suite says so and reports nothing.
 */
import { availableParallelism } from 'node:os'
import { type Job, Queue, QueueEvents, Worker } from 'bullmq'
import { jobDataOf, jobOptionsOf } from '../src/cluster/index.js'
import { AgentRuntime, resolveConfig } from '../src/index.js'
import { BATCH_QUICK_BUDGET, type BenchSuite, compareSideBySide, runFor } from './harness/index.js'
import { noopRuntimeConfig } from './workloads/noop-runtime.js'
import { redisServerPath, startRedis } from './workloads/redis-server.js'

/** Jobs each worker runs at once. */
const CONCURRENCY = 64
/** Jobs per iteration. */
const BATCH = 512

/** Resolves when `count` more jobs of `events`' queue have completed. */
function completions(events: QueueEvents, count: number): Promise<void> {
  return new Promise((resolve) => {
    let left = count
    const onCompleted = () => {
      if (--left === 0) {
        events.off('completed', onCompleted)
        resolve()
      }
    }
    events.on('completed', onCompleted)
  })
}

const suite: BenchSuite = {
  name: 'cluster',
  async run({ quick, log }) {
    if (redisServerPath() === undefined) {
      log('cluster_vs_bullmq: skipped, no redis-server binary (apt-get install redis-server)')
      return []
    }
    const redis = await startRedis()
    const connection = { host: '127.0.0.1', port: redis.port }
    const closers: (() => Promise<unknown>)[] = []
    try {
      log(`redis-server on port ${redis.port}; ${CONCURRENCY} jobs at once, batches of ${BATCH}`)
      const plain = new Queue('plain', { connection, prefix: 'bench' })
      const plainEvents = new QueueEvents('plain', { connection, prefix: 'bench' })
      const worker = new Worker('plain', async (job: Job) => job.data, {
        connection,
        prefix: 'bench',
        concurrency: CONCURRENCY,
        removeOnComplete: { count: 10_000 },
      })
      closers.push(
        () => worker.close(),
        () => plainEvents.close(),
        () => plain.close(),
      )
      await Promise.all([plainEvents.waitUntilReady(), worker.waitUntilReady()])

      const base = noopRuntimeConfig(availableParallelism(), CONCURRENCY)
      const config = {
        ...base,
        cluster: { redis: redis.url, prefix: 'bench', name: 'agent' },
      }
      const runtime = new AgentRuntime(config)
      await runtime.start()
      closers.unshift(() => runtime.stop())
      const resolved = resolveConfig(config)
      const ep = resolved.entryPoints[0]!
      const hostQueue = new Queue('noop', { connection, prefix: 'bench:agent' })
      const hostEvents = new QueueEvents('noop', { connection, prefix: 'bench:agent' })
      closers.push(
        () => hostEvents.close(),
        () => hostQueue.close(),
      )
      await hostEvents.waitUntilReady()

      let seq = 0
      const plainBatch = async () => {
        const done = completions(plainEvents, BATCH)
        await plain.addBulk(Array.from({ length: BATCH }, (_, i) => ({ name: 'plain', data: { i } })))
        await done
      }
      const hostBatch = async () => {
        const done = completions(hostEvents, BATCH)
        await hostQueue.addBulk(
          Array.from({ length: BATCH }, (_, i) => {
            const request = { input: { i }, opts: {}, depth: 0, delegated: false }
            const opts = jobOptionsOf(`bench-${seq++}`, request, ep, resolved.cluster!, 60_000)
            return { name: 'noop', data: jobDataOf(request), opts }
          }),
        )
        await done
      }
      // Both sides run warm before the first measured round (see `runFor`).
      for (const side of [plainBatch, hostBatch]) await runFor(quick ? 1500 : 3000, side)
      // redis-server's CPU per job, per side: read around each batch (both sides use the one server).
      const serverUs = { baseline: 0, contender: 0 }
      const jobs = { baseline: 0, contender: 0 }
      const counted = (side: keyof typeof serverUs, batch: () => Promise<void>) => async () => {
        const before = redis.cpuUs()
        await batch()
        const after = redis.cpuUs()
        if (before === undefined || after === undefined) return
        serverUs[side] += after - before
        jobs[side] += BATCH
      }
      const entry = await compareSideBySide({
        name: 'cluster_vs_bullmq',
        unit: 'jobs/s',
        target: 0.8,
        quick,
        log,
        // One iteration is a whole batch: on a shared machine three short rounds swung the ratio from ×0.4 to ×1.3.
        ...(quick ? { budget: BATCH_QUICK_BUDGET } : {}),
        baseline: {
          name: 'plain BullMQ worker, no-op processor',
          opsPerIteration: BATCH,
          fn: counted('baseline', plainBatch),
        },
        contender: {
          name: 'agentpool cluster host, no-op handler',
          opsPerIteration: BATCH,
          fn: counted('contender', hostBatch),
        },
      })
      if (jobs.baseline > 0 && jobs.contender > 0) {
        const perJob = (side: keyof typeof serverUs) => (serverUs[side] / jobs[side]).toFixed(0)
        log(
          `cluster_vs_bullmq: redis-server CPU µs per job: baseline ${perJob('baseline')}; contender ${perJob('contender')}`,
        )
      }
      return [entry]
    } finally {
      for (const close of closers) await close().catch(() => {})
      await redis.dispose()
    }
  },
}

export default suite
