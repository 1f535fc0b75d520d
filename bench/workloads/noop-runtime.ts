/** The no-op dispatch workload: one api entry point whose handler returns its input, `inFlight` deep. */
import { fileURLToPath } from 'node:url'
import type { RuntimeConfig } from '../../src/index.js'

export function noopRuntimeConfig(threads: number, inFlight: number): RuntimeConfig {
  return {
    pool: { threads },
    entryPoints: [
      {
        id: 'noop',
        handler: fileURLToPath(new URL('./noop-handler.mjs', import.meta.url)),
        trigger: { type: 'api' },
        maxConcurrent: inFlight,
        maxQueue: inFlight,
        timeoutMs: 0,
      },
    ],
  }
}
