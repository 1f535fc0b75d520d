import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { afterAll, describe, expect, it } from 'vitest'
import { main } from '../src/cli.js'
import type { AgentEvent, ClusterStats, ExecutionResult, GoalProgress } from '../src/index.js'
import { Host, WORK, writeClusterConfig } from './helpers/cluster.js'
import { redisAvailable, startRedis } from './helpers/redis.js'

const TICK = fileURLToPath(new URL('./fixtures/cluster/tick.ts', import.meta.url))
const WEBHOOKS = 2500
const API_TRIGGERS = 2500
/** A host's hold on a running job; a killed host's jobs run elsewhere after about this long. */
const STALLED_MS = 5000
/** Webhook deliveries in flight at once. */
const IN_FLIGHT = 32

const cleanups: (() => unknown)[] = []
afterAll(async () => {
  for (const c of cleanups.splice(0).reverse()) await c()
})

/** `first second` lines of a marker file. */
const rows = (file: string) =>
  readFileSync(file, 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((l) => l.split(' ') as [string, string])

describe.runIf(redisAvailable())('three hosts, one agent', () => {
  it(`runs ${WEBHOOKS + API_TRIGGERS} executions and a 100 ms timer across three hosts, one of them killed mid-run, losing nothing`, {
    timeout: 240_000,
  }, async () => {
    const redis = await startRedis()
    cleanups.push(() => redis.dispose())
    const dir = mkdtempSync(join(tmpdir(), 'agentpool-three-'))
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }))
    const marker = join(dir, 'done.txt')
    const ticks = join(dir, 'ticks.txt')
    writeFileSync(marker, '')
    writeFileSync(ticks, '')
    const config = writeClusterConfig(
      dir,
      redis.url,
      [
        `{ id: hook, handler: ${JSON.stringify(WORK)}, trigger: { type: webhook, path: /work }, maxConcurrent: 16 }`,
        `{ id: api, handler: ${JSON.stringify(WORK)}, trigger: { type: api }, maxConcurrent: 16 }`,
        `{ id: tick, handler: ${JSON.stringify(TICK)}, trigger: { type: timer, intervalMs: 100 } }`,
      ],
      STALLED_MS,
    )
    const env = { AGENTPOOL_TICK_MARKER: ticks }
    const [a, b, c] = [new Host(config, env), new Host(config, env), new Host(config, env)]
    cleanups.push(
      () => a.kill(),
      () => b.kill(),
      () => c.kill(),
    )
    const [readyA, readyB, readyC] = await Promise.all([a.ready, b.ready, c.ready])

    const acked = new Map<string, string>()
    const post = async (url: string, tag: string, key?: string): Promise<string> => {
      const res = await fetch(`${url}/work`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', ...(key ? { 'idempotency-key': key } : {}) },
        body: JSON.stringify({ tag, marker }),
      })
      expect(res.status).toBe(202)
      return ((await res.json()) as { executionId: string }).executionId
    }
    let killed = false
    const killC = async () => {
      if (killed) return
      killed = true
      await c.kill()
    }
    const sendWebhooks = async (lane: number): Promise<void> => {
      for (let i = lane; i < WEBHOOKS; i += IN_FLIGHT) {
        acked.set(`h${i}`, await post(readyA.url!, `h${i}`))
        if (i === Math.floor(WEBHOOKS / 2)) await killC()
      }
    }
    const sendTriggers = async (): Promise<void> => {
      for (let i = 0; i < API_TRIGGERS; i += 50) {
        const ids = await Promise.all(
          Array.from({ length: 50 }, (_, k) =>
            b.call<string>('trigger', 'api', { tag: `a${i + k}`, marker }),
          ),
        )
        for (const [k, id] of ids.entries()) acked.set(`a${i + k}`, id)
      }
    }
    const first = await post(readyA.url!, 'dup', 'delivery-dup')
    await Promise.all([...Array.from({ length: IN_FLIGHT }, (_, lane) => sendWebhooks(lane)), sendTriggers()])
    // The same delivery again, to another host's webhook server: the first execution's id, nothing new.
    expect(await post(readyB.url!, 'dup-again', 'delivery-dup')).toBe(first)
    acked.set('dup', first)
    expect(killed).toBe(true)

    // Every acknowledged execution ends, wherever it ran (C's unfinished jobs stalled and ran elsewhere).
    const results = await Promise.all(
      [...acked.values()].map((id) => a.call<ExecutionResult>('waitForExecution', id)),
    )
    expect(results.filter((r) => r.status !== 'completed')).toEqual([])
    const done = new Set(rows(marker).map(([tag]) => tag))
    for (const tag of acked.keys()) expect(done.has(tag), tag).toBe(true)
    expect(done.has('dup-again')).toBe(false)

    // A tick is reported as fired by the host that runs it (no host admitted it: the queue's scheduler did).
    const fired = await Promise.race(
      [a, b].map((h) =>
        h.call<AgentEvent<'trigger_fired'>>('events.waitFor', { types: ['trigger_fired'], streamId: 'tick' }),
      ),
    )
    expect(fired).toMatchObject({ data: { entryPointId: 'tick', triggerType: 'timer' } })
    expect(fired.correlationId).toBe(fired.executionId)

    await a.call('cluster.pauseTimer', 'tick')
    const idle = (s: ClusterStats) =>
      Object.values(s.entryPoints).every((e) => e.waiting + e.active + e.delayed === 0)
    await expect
      .poll(async () => idle(await b.call<ClusterStats>('cluster.stats')), { timeout: 30_000 })
      .toBe(true)

    // Each tick ran once: a slot appears twice only when host C ran it before it was killed.
    const bySlot = new Map<string, string[]>()
    for (const [slot, pid] of rows(ticks)) bySlot.set(slot, [...(bySlot.get(slot) ?? []), pid])
    expect(bySlot.size).toBeGreaterThan(5)
    for (const [slot, pids] of bySlot) {
      if (pids.length > 1)
        expect({ slot, pids }).toEqual({ slot, pids: expect.arrayContaining([String(readyC.pid)]) })
      expect(pids.filter((p) => p !== String(readyC.pid)).length, slot).toBeLessThanOrEqual(1)
    }

    // The cluster's counters: one per finished job, whichever host finished it.
    const stats = await a.call<ClusterStats>('cluster.stats')
    const progress = await a.call<GoalProgress>('cluster.goalProgress')
    const executions = acked.size + bySlot.size
    expect(stats.entryPoints.hook!.completed + stats.entryPoints.api!.completed).toBe(acked.size)
    expect(stats.entryPoints.tick!.completed).toBe(bySlot.size)
    expect(progress.metrics).toMatchObject({
      executionsTotal: executions,
      totalDecisions: executions,
      successfulOutcomes: executions,
      failedOutcomes: 0,
    })
    expect(progress.criteria.done).toMatchObject({ met: true, evidence: { decisions: executions } })
    await expect
      .poll(async () => (await a.call<ClusterStats>('cluster.stats')).hosts, { timeout: 10_000 })
      .toBe(2)

    // The same view from the command line, and the queue depths in /metrics.
    let out = ''
    const write = (t: string): void => {
      out += t
    }
    const io = { out: write, err: write, isTTY: false }
    expect(await main(['node', 'agentpool', 'cluster', 'status', config], io)).toBe(0)
    expect(out).toContain('2 host(s) alive')
    expect(out).toMatch(new RegExp(`api\\s+0\\s+0\\s+0\\s+${stats.entryPoints.api!.completed}\\s+0`))
    expect(out).toContain(`over ${executions} execution(s)`)
    const metrics = await a.call<string>('metrics')
    expect(metrics).toContain('agentpool_cluster_queue_jobs{stream="hook",state="waiting"} 0')
  })
})
