/** The heap limits pool threads start with: `pool.youngGenerationMb` and `pool.maxHeapMb`. */
import { Worker } from 'node:worker_threads'
import { afterEach, describe, expect, it } from 'vitest'
import { api, startRuntime } from './helpers/runtime.js'

const cleanups: (() => Promise<void>)[] = []
afterEach(async () => {
  for (const c of cleanups.splice(0)) await c()
})
const onCleanup = (fn: () => Promise<void>) => cleanups.push(fn)

/** The limits a plain worker thread gets from Node, for comparison. */
async function nodeDefaults(): Promise<Record<string, number>> {
  const w = new Worker(
    "require('node:worker_threads').parentPort.postMessage(require('node:worker_threads').resourceLimits)",
    { eval: true },
  )
  try {
    return await new Promise((resolve) => w.once('message', resolve))
  } finally {
    await w.terminate()
  }
}

async function limitsOfPoolThread(pool: Record<string, number>): Promise<Record<string, number>> {
  const rt = await startRuntime(
    { pool: { threads: 1, ...pool }, entryPoints: [api('limits', 'resource-limits')] },
    onCleanup,
  )
  const r = await rt.triggerAndWait('limits', {})
  expect(r.status).toBe('completed')
  return r.output as Record<string, number>
}

describe('pool threads: heap limits', () => {
  it('get a young generation of 96 MiB by default, and Node’s old generation', async () => {
    const node = await nodeDefaults()
    const limits = await limitsOfPoolThread({})
    expect(limits.maxYoungGenerationSizeMb).toBe(96)
    expect(limits.maxOldGenerationSizeMb).toBe(node.maxOldGenerationSizeMb)
  })

  it('take pool.youngGenerationMb and pool.maxHeapMb as given, and Node’s young generation for 0', async () => {
    const node = await nodeDefaults()
    expect(await limitsOfPoolThread({ youngGenerationMb: 32, maxHeapMb: 256 })).toMatchObject({
      maxYoungGenerationSizeMb: 32,
      maxOldGenerationSizeMb: 256,
    })
    expect((await limitsOfPoolThread({ youngGenerationMb: 0 })).maxYoungGenerationSizeMb).toBe(
      node.maxYoungGenerationSizeMb,
    )
  })
})
