import { Redis } from 'ioredis'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { ClusterCounters } from '../src/cluster/counters.js'
import { redisAvailable, startRedis, type TestRedis } from './helpers/redis.js'

describe.runIf(redisAvailable())('cluster counters', () => {
  let redis: TestRedis
  let client: Redis
  beforeAll(async () => {
    redis = await startRedis()
    client = new Redis(redis.port, '127.0.0.1')
  })
  afterAll(async () => {
    client.disconnect()
    await redis.dispose()
  })

  const fields = (entries: [string, number][]) => new Map(entries)

  it('count each job once, whatever figures the jobs of one batch have and however often a job reports', async () => {
    const counters = new ClusterCounters(client, 'c1:agent', 'host-1')
    const job = (id: string) => `c1:agent:ep:${id}`
    for (const id of ['a', 'b', 'c', 'd', 'e']) await client.hset(job(id), 'data', '{}')
    const completed = fields([['ep:ep:completed', 1]])
    const decided = fields([
      ['ep:ep:completed', 1],
      ['goal:executions', 1],
      ['goal:decisions', 2],
    ])
    // One batch: interleaved figures, a job reported twice, and a job no longer in Redis.
    await Promise.all([
      counters.add(client, job('a'), completed),
      counters.add(client, job('b'), decided),
      counters.add(client, job('c'), completed),
      counters.add(client, job('a'), completed),
      counters.add(client, job('gone'), decided),
      counters.add(client, job('d'), fields([['ep:ep:failed', 1]])),
    ])
    // A later batch: a job counted before reports again (its attempt ran twice), a new one is counted.
    await Promise.all([counters.add(client, job('b'), decided), counters.add(client, job('e'), decided)])
    const { counters: read } = await counters.read()
    expect(Object.fromEntries(read)).toEqual({
      'ep:ep:completed': 4,
      'ep:ep:failed': 1,
      'goal:executions': 2,
      'goal:decisions': 4,
    })
    await counters.close()
  })
})
