import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { Queue } from 'bullmq'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { ClusterStats, ExecutionResult } from '../src/index.js'
import { Host, WORK, writeClusterConfig } from './helpers/cluster.js'
import { redisAvailable, startRedis, type TestRedis } from './helpers/redis.js'

const ON_EVENT = fileURLToPath(new URL('./fixtures/cluster/on-event.ts', import.meta.url))
const MESSAGE = fileURLToPath(new URL('./fixtures/cluster/message.ts', import.meta.url))

type Output = { tag: string; pid: number; attempt: number; delegated?: ExecutionResult<Output> }

const lines = (file: string) => readFileSync(file, 'utf8').split('\n').filter(Boolean)

describe.runIf(redisAvailable())('cluster admission across two host processes', () => {
  let redis: TestRedis
  let dir: string
  let a: Host
  let b: Host
  let pids: number[]

  beforeAll(async () => {
    redis = await startRedis()
    dir = mkdtempSync(join(tmpdir(), 'agentpool-cluster-'))
    const config = writeClusterConfig(dir, redis.url, [
      `{ id: api, handler: ${JSON.stringify(WORK)}, trigger: { type: api }, maxConcurrent: 4, maxRetries: 2 }`,
      `{ id: helper, handler: ${JSON.stringify(WORK)}, trigger: { type: api }, maxConcurrent: 4 }`,
      `{ id: on-done, handler: ${JSON.stringify(ON_EVENT)}, trigger: { type: event, eventTypes: [work_done] } }`,
      `{ id: small, handler: ${JSON.stringify(WORK)}, trigger: { type: api }, maxConcurrent: 1, maxQueue: 3, cluster: { maxConcurrent: 1 } }`,
      `{ id: batched, handler: ${JSON.stringify(MESSAGE)}, trigger: { type: api }, maxConcurrent: 8, cluster: { maxConcurrent: 8 } }`,
    ])
    a = new Host(config)
    b = new Host(config)
    pids = [(await a.ready).pid, (await b.ready).pid]
  })

  afterAll(async () => {
    await Promise.all([a?.kill(), b?.kill()])
    await redis?.dispose()
    rmSync(dir, { recursive: true, force: true })
  })

  it('triggerAndWait on host A resolves with results of executions that ran on host B', async () => {
    const results = await Promise.all(
      Array.from({ length: 24 }, (_, i) =>
        a.call<ExecutionResult<Output>>('triggerAndWait', 'api', { tag: `t${i}`, ms: 30 }),
      ),
    )
    expect(results.map((r) => r.status)).toEqual(Array(24).fill('completed'))
    expect(results.map((r) => r.output!.tag)).toEqual(Array.from({ length: 24 }, (_, i) => `t${i}`))
    // Both hosts took jobs from the one queue; A got B's results as well as its own.
    expect(new Set(results.map((r) => r.output!.pid))).toEqual(new Set(pids))
  })

  it('waitForExecution on one host resolves with an execution triggered on the other', async () => {
    const id = await b.call<string>('trigger', 'api', { tag: 'later', ms: 50 })
    // A job's id is its execution's id: a UUID of version 7, as in one process.
    expect(id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/)
    const result = await a.call<ExecutionResult<Output>>('waitForExecution', id)
    expect(result).toMatchObject({
      executionId: id,
      streamId: 'api',
      correlationId: id,
      status: 'completed',
      output: { tag: 'later' },
      attempts: 1,
      conflicts: 0,
    })
    expect(result.durationMs).toBe(result.completedAt - result.startedAt)
    expect(result.startedAt).toBeGreaterThan(0)
    await expect(a.call('waitForExecution', 'no-such-execution')).rejects.toMatchObject({
      code: 'AGENTPOOL_INVALID_ARGUMENT',
    })
  })

  it('a redelivered idempotency key sent to another host gets the first id and runs once', async () => {
    const marker = join(dir, 'dedup.txt')
    writeFileSync(marker, '')
    const first = await a.call<string>(
      'trigger',
      'api',
      { tag: 'once', marker },
      { idempotencyKey: 'delivery-1' },
    )
    const again = await b.call<string>(
      'trigger',
      'api',
      { tag: 'twice', marker },
      { idempotencyKey: 'delivery-1' },
    )
    expect(again).toBe(first)
    const result = await b.call<ExecutionResult<Output>>('waitForExecution', first)
    expect(result.output!.tag).toBe('once')
    expect(lines(marker).map((l) => l.split(' ')[0])).toEqual(['once'])
  })

  it('a failed attempt is retried by the queue, on any host, up to maxRetries', async () => {
    const r = await a.call<ExecutionResult<Output>>('triggerAndWait', 'api', { tag: 'flaky', failUntil: 3 })
    expect(r).toMatchObject({ status: 'completed', attempts: 3, output: { attempt: 3 } })
    const dead = await a.call<ExecutionResult<Output>>('triggerAndWait', 'api', { tag: 'dead', failUntil: 9 })
    expect(dead).toMatchObject({ status: 'failed', attempts: 3, error: { code: 'AGENTPOOL_HANDLER_FAILED' } })
  })

  it('a delegation started on one host can run on the other and its result comes back', async () => {
    const results = await Promise.all(
      Array.from({ length: 12 }, (_, i) =>
        a.call<ExecutionResult<Output>>('triggerAndWait', 'api', {
          tag: `d${i}`,
          delegate: 'helper',
          ms: 20,
        }),
      ),
    )
    for (const r of results) {
      expect(r.status).toBe('completed')
      expect(r.output!.delegated).toMatchObject({
        status: 'completed',
        output: { tag: `${r.output!.tag}.child` },
      })
      expect(r.output!.delegated!.correlationId).toBe(r.correlationId)
    }
    const pairs = results.map((r) => [r.output!.pid, r.output!.delegated!.output!.pid])
    expect(pairs.some(([parent, child]) => parent !== child)).toBe(true)
  })

  it('an event that matches an event entry point starts one job for the cluster, not one per host', async () => {
    const marker = join(dir, 'events.txt')
    writeFileSync(marker, '')
    await Promise.all(
      Array.from({ length: 10 }, (_, i) =>
        a.call('triggerAndWait', 'api', { tag: `e${i}`, emit: 'work_done', eventMarker: marker }),
      ),
    )
    // Wait on the cluster's own figures: ten event-triggered jobs completed.
    await expect
      .poll(async () => (await b.call<ClusterStats>('cluster.stats')).entryPoints['on-done']!.completed, {
        timeout: 30_000,
      })
      .toBe(10)
    const tags = lines(marker).map((l) => l.split(' ')[0])
    expect(tags.sort()).toEqual(Array.from({ length: 10 }, (_, i) => `e${i}`).sort())
  })

  /** Holds the cluster's one `small` slot (cluster.maxConcurrent 1) until the returned release is called. */
  async function holdSmall(name: string): Promise<{ release: () => Promise<unknown> }> {
    const flag = join(dir, name)
    const blockers = [a.call('triggerAndWait', 'small', { tag: name, holdUntil: flag })]
    await expect
      .poll(async () => (await a.call<ClusterStats>('cluster.stats')).entryPoints.small!.active, {
        timeout: 30_000,
      })
      .toBe(1)
    return {
      release: () => {
        writeFileSync(flag, '')
        return Promise.all(blockers)
      },
    }
  }

  it('higher priority jobs start first, one at a time over both hosts under cluster.maxConcurrent 1', async () => {
    const marker = join(dir, 'priority.txt')
    writeFileSync(marker, '')
    const hold = await holdSmall('priority-hold')
    const low = await a.call<string>('trigger', 'small', { tag: 'low', marker }, { priority: -5 })
    const high = await b.call<string>('trigger', 'small', { tag: 'high', marker }, { priority: 5 })
    await hold.release()
    await Promise.all([b.call('waitForExecution', high), a.call('waitForExecution', low)])
    expect(lines(marker).map((l) => l.split(' ')[0])).toEqual(['high', 'low'])
  })

  it('a wait on a job that is removed from Redis before it ran ends with AGENTPOOL_INVALID_ARGUMENT', async () => {
    const queue = new Queue('small', { connection: { port: redis.port }, prefix: 'agentpool:work' })
    try {
      // Starts every event reader on B, so its waits below register without waiting for one.
      await expect(b.call('waitForExecution', 'warm-up')).rejects.toMatchObject({
        code: 'AGENTPOOL_INVALID_ARGUMENT',
      })
      const hold = await holdSmall('removed-hold')
      const waiting = b.call('triggerAndWait', 'small', { tag: 'removed' })
      waiting.catch(() => {})
      const queued = async () =>
        (await queue.getJobs(['waiting', 'prioritized'])).find((j) => j.data.input.tag === 'removed')
      await expect.poll(queued, { timeout: 30_000 }).toBeDefined()
      // B looked the job up right after adding it, ahead of these queries on its Redis connection: once
      // they are answered, B waits on a job it found.
      await b.call('cluster.stats')
      await queue.remove((await queued())!.id!)
      await expect(waiting).rejects.toMatchObject({ code: 'AGENTPOOL_INVALID_ARGUMENT' })
      await hold.release()
    } finally {
      await queue.close()
    }
  })

  it('jobs a host takes from Redis together share a pool message', async () => {
    const flag = join(dir, 'batched-hold')
    // Eight jobs fill the queue's eight slots and are held; sixteen more wait in Redis behind them.
    const held = Array.from({ length: 8 }, () => a.call('triggerAndWait', 'batched', { holdUntil: flag }))
    await expect
      .poll(async () => (await a.call<ClusterStats>('cluster.stats')).entryPoints.batched!.active, {
        timeout: 30_000,
      })
      .toBe(8)
    const queued = Array.from({ length: 16 }, () =>
      b.call<ExecutionResult<{ message: string }>>('triggerAndWait', 'batched', {}),
    )
    // Released together, the held jobs end in one turn of their host; the next jobs come back from Redis
    // with their completions, several in one reply, and go to the pool together.
    writeFileSync(flag, '')
    await Promise.all(held)
    const messages = new Set((await Promise.all(queued)).map((r) => r.output!.message))
    expect(messages.size).toBeLessThan(16)
  })

  it('refuses with QueueFullError once maxQueue jobs wait, and admits again when they ran', async () => {
    const hold = await holdSmall('full-hold')
    const queued = await Promise.all(
      [0, 1, 2].map((i) => a.call<string>('trigger', 'small', { tag: `q${i}` })),
    )
    await expect(b.call('trigger', 'small', { tag: 'over' })).rejects.toMatchObject({
      code: 'AGENTPOOL_QUEUE_FULL',
    })
    await hold.release()
    await Promise.all(queued.map((id) => a.call('waitForExecution', id)))
    await expect(b.call('trigger', 'small', { tag: 'after' })).resolves.toEqual(expect.any(String))
  })
})
