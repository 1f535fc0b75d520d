import { fileURLToPath } from 'node:url'
import type { RuntimeConfig } from '../../src/index.js'

const HANDLER = fileURLToPath(new URL('../fixtures/durability/ticket.ts', import.meta.url))

/** A durable two-entry-point agent whose log lives in `dir`. */
export function durableConfig(dir: string, extra: Partial<RuntimeConfig> = {}): RuntimeConfig {
  return {
    baseDir: dir,
    pool: { threads: 1, tasksPerThread: 4 },
    goal: {
      id: 'tickets',
      description: 'resolve tickets',
      successCriteria: [{ id: 'resolved', description: 'resolved', target: 0.9 }],
      constraints: [],
    },
    durability: { path: './data/runs.db' },
    entryPoints: [
      { id: 'api', handler: HANDLER, trigger: { type: 'api' } },
      { id: 'other', handler: HANDLER, trigger: { type: 'api' } },
    ],
    ...extra,
  }
}
