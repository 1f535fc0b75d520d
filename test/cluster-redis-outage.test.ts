import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import type { ExecutionResult } from '../src/index.js'
import { Host, WORK, writeClusterConfig } from './helpers/cluster.js'
import { redisAvailable, startRedis, type TestRedis } from './helpers/redis.js'

const cleanups: (() => Promise<void> | void)[] = []
afterAll(async () => {
  for (const c of cleanups.splice(0).reverse()) await c()
})

describe.runIf(redisAvailable())('cluster mode while Redis is down', () => {
  it('refuses fast with 503 and AGENTPOOL_CLUSTER_UNAVAILABLE while Redis is down, then every acknowledged execution ends', {
    timeout: 90_000,
  }, async () => {
    const redis: TestRedis = await startRedis({ durable: true })
    cleanups.push(() => redis.dispose())
    const dir = mkdtempSync(join(tmpdir(), 'agentpool-outage-'))
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }))
    const marker = join(dir, 'done.txt')
    writeFileSync(marker, '')
    const config = writeClusterConfig(dir, redis.url, [
      `{ id: api, handler: ${JSON.stringify(WORK)}, trigger: { type: api }, maxConcurrent: 4 }`,
      `{ id: hook, handler: ${JSON.stringify(WORK)}, trigger: { type: webhook, path: /work }, maxConcurrent: 4 }`,
    ])
    const a = new Host(config)
    const b = new Host(config)
    cleanups.push(
      () => a.kill(),
      () => b.kill(),
    )
    const { url } = await a.ready
    await b.ready

    const acked = new Map<string, string>()
    const refused: { status: number; retryAfter: string | null; code: string; ms: number }[] = []
    let n = 0
    const send = async (): Promise<void> => {
      const tag = `w${n++}`
      const t0 = performance.now()
      const res = await fetch(`${url}/work`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ tag, marker, ms: 20 }),
      })
      const body = (await res.json()) as { executionId?: string; error?: { code: string } }
      if (res.status === 202) acked.set(tag, body.executionId!)
      else
        refused.push({
          status: res.status,
          retryAfter: res.headers.get('retry-after'),
          code: body.error!.code,
          ms: performance.now() - t0,
        })
    }
    const trigger = async (): Promise<void> => {
      const tag = `a${n++}`
      try {
        acked.set(tag, await b.call<string>('trigger', 'api', { tag, marker, ms: 20 }))
      } catch (err) {
        refused.push({ status: 0, retryAfter: null, code: (err as { code: string }).code, ms: 0 })
      }
    }
    const burst = (count: number) =>
      Promise.all(Array.from({ length: count }, (_, i) => (i % 2 === 0 ? send() : trigger())))

    await burst(60)
    const before = acked.size
    expect(before).toBe(60)
    // Executions are running on both hosts when Redis dies.
    await redis.stop('SIGKILL')
    await burst(20)
    expect(acked.size).toBe(before)
    expect(refused).toHaveLength(20)
    for (const r of refused) {
      expect(r.code).toBe('AGENTPOOL_CLUSTER_UNAVAILABLE')
      if (r.status !== 0) {
        expect(r.status).toBe(503)
        expect(Number(r.retryAfter)).toBeGreaterThanOrEqual(1)
        expect(r.ms).toBeLessThan(1000)
      }
    }

    await redis.restart()
    // Hosts reconnect by themselves: admissions succeed again once they have.
    await expect
      .poll(
        () =>
          b.call('trigger', 'api', { tag: `probe${n++}`, marker }).then(
            () => true,
            () => false,
          ),
        {
          timeout: 15_000,
          interval: 100,
        },
      )
      .toBe(true)
    await burst(40)

    const results = await Promise.all(
      [...acked.values()].map((id) => a.call<ExecutionResult>('waitForExecution', id)),
    )
    expect(results.map((r) => r.status)).toEqual(Array(acked.size).fill('completed'))
    const done = new Set(
      readFileSync(marker, 'utf8')
        .split('\n')
        .filter(Boolean)
        .map((l) => l.split(' ')[0]),
    )
    for (const tag of acked.keys()) expect(done.has(tag)).toBe(true)
  })
})
