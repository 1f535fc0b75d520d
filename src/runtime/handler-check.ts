/**
 * `checkHandlerModules`: loads every handler module of a config on one pool thread — the way an
 * execution loads it — and reports each one that does not load or exports no handler. Main thread only.
 *
 * @module
 */
import { Piscina } from 'piscina'
import type { ResolvedRuntimeConfig } from '../config/index.js'
import type { ConfigIssue } from '../errors.js'
import { poolBootstrap } from './worker-files.js'

/**
 * One issue per entry point whose handler module does not load or exports no handler, at
 * `entryPoints[i].handler`, with the file, the cause and the fix in its message.
 */
export async function checkHandlerModules(config: ResolvedRuntimeConfig): Promise<ConfigIssue[]> {
  const handlers = [...new Set(config.entryPoints.map((ep) => ep.handler))]
  const pool = new Piscina({
    ...poolBootstrap('check-handlers'),
    minThreads: 1,
    maxThreads: 1,
  })
  try {
    const failures = (await pool.run({ handlers })) as (string | null)[]
    const byPath = new Map(handlers.map((h, i) => [h, failures[i] ?? null]))
    return config.entryPoints.flatMap((ep, i) => {
      const failure = byPath.get(ep.handler)
      return failure ? [{ path: `entryPoints[${i}].handler`, message: failure }] : []
    })
  } finally {
    await pool.destroy()
  }
}
