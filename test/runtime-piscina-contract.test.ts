import { fileURLToPath } from 'node:url'
import { Piscina, queueOptionsSymbol } from 'piscina'
import { describe, expect, it } from 'vitest'

const NOOP = fileURLToPath(new URL('../bench/workloads/noop-worker.mjs', import.meta.url))

/**
 * What the worker pool (`src/runtime/worker-pool.ts`) relies on in Piscina beyond its basic options: a
 * task's queue options (`Piscina.queueOptionsSymbol`) reach the `loadBalancer`, and stay on the main
 * thread. If a Piscina release changes that, these fail before the pool misbehaves.
 */
describe('what the pool relies on in Piscina', () => {
  it('hands each task’s queue options to the load balancer, and not to the thread', async () => {
    const seen: unknown[] = []
    const pool = new Piscina({
      filename: NOOP,
      minThreads: 1,
      maxThreads: 1,
      loadBalancer: (task, workers) => {
        seen.push((task as unknown as Record<symbol, unknown>)[queueOptionsSymbol])
        return workers.find((w) => w.currentUsage === 0) ?? null
      },
    })
    try {
      const answers = await Promise.all(
        [1, 2, 3].map((n) => pool.run({ n, [queueOptionsSymbol]: { slot: n, alone: n === 2 } })),
      )
      expect(answers).toEqual([{ n: 1 }, { n: 2 }, { n: 3 }])
      expect(seen).toEqual(
        expect.arrayContaining([
          { slot: 1, alone: false },
          { slot: 2, alone: true },
          { slot: 3, alone: false },
        ]),
      )
    } finally {
      await pool.close()
    }
  })
})
