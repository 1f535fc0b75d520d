import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { afterEach, describe, expect, it } from 'vitest'
import { AgentRuntime, type RuntimeConfig } from '../src/index.js'

const ECHO = fileURLToPath(new URL('./fixtures/handlers/echo.ts', import.meta.url))
const PERIOD = 600

const cleanups: (() => void | Promise<void>)[] = []
afterEach(async () => {
  for (const c of cleanups.splice(0)) await c()
})

function config(dir: string): RuntimeConfig {
  return {
    baseDir: dir,
    pool: { threads: 1 },
    durability: { path: './runs.db' },
    entryPoints: [
      {
        id: 'tick',
        handler: ECHO,
        trigger: { type: 'timer', intervalMs: PERIOD, runImmediately: true },
      },
    ],
  }
}

/** One life of a durable runtime with an interval timer: the slots its timer fired for, in order. */
class Life {
  readonly runtime: AgentRuntime
  readonly slots: number[] = []
  startedAt = 0
  startedBy = 0
  private waiters: (() => void)[] = []

  constructor(dir: string) {
    this.runtime = new AgentRuntime(config(dir))
    cleanups.push(() => this.runtime.stop({ drain: false }))
    this.runtime.events.subscribe({
      types: ['trigger_fired'],
      handler: (e) => {
        void this.runtime.waitForExecution(e.executionId!).then((r) => {
          this.slots.push((r.output as { input: { scheduledAt: number } }).input.scheduledAt)
          for (const w of this.waiters.splice(0)) w()
        })
      },
    })
  }

  async start(): Promise<this> {
    this.startedAt = Date.now()
    await this.runtime.start()
    this.startedBy = Date.now()
    return this
  }

  async fires(n: number): Promise<number[]> {
    while (this.slots.length < n) await new Promise<void>((resolve) => this.waiters.push(resolve))
    return this.slots
  }
}

/** The first slot a restarted timer may fire for: the latest slot of `last`'s grid that passed by `at`, or the next one. */
function expectCarriesOn(first: number, last: number, life: Life): void {
  expect((first - last) % PERIOD).toBe(0)
  expect(first).toBeGreaterThan(last)
  // Not a slot that had passed before the one it fired: one tick for everything missed, not a burst.
  expect(first).toBeGreaterThan(life.startedAt - PERIOD)
  expect(first).toBeLessThanOrEqual(Math.max(life.startedBy, last + PERIOD))
}

describe('durable runs: timers across a restart', () => {
  it('an interval timer carries on from its logged last fire: no second immediate tick, no slot skipped', {
    timeout: 60_000,
  }, async () => {
    const dir = mkdtempSync(join(tmpdir(), 'agentpool-timers-'))
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }))

    const first = await new Life(dir).start()
    const [s0] = await first.fires(1)
    await first.runtime.stop({ drain: true })

    // Restarted within the period: the next fire is the slot after the last one, not an immediate tick.
    const second = await new Life(dir).start()
    const [s1] = await second.fires(1)
    expectCarriesOn(s1!, s0!, second)
    await second.runtime.stop({ drain: true })
    expect(second.slots).toEqual(second.slots.map((_, i) => s1! + i * PERIOD))
    const last = second.slots.at(-1)!

    // Down for more than two periods: the latest passed slot fires once at start, then the grid goes on.
    while (Date.now() < last + 2.5 * PERIOD) await new Promise((resolve) => setTimeout(resolve, 50))
    const third = await new Life(dir).start()
    const [s2, s3] = await third.fires(2)
    expectCarriesOn(s2!, last, third)
    expect(s2! - last).toBeGreaterThanOrEqual(2 * PERIOD)
    expect(s3! - s2!).toBe(PERIOD)
  })
})
