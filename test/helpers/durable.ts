import { fileURLToPath } from 'node:url'
import type { RuntimeConfig } from '../../src/index.js'
import type { AdmitOp, EndOp } from '../../src/protocol.js'

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

/** An admission as the runtime journals it, for tests that write a run log directly. */
export function admitOp(id: string, admittedAt: number, extra: Partial<AdmitOp> = {}): AdmitOp {
  return {
    op: 'admit',
    id,
    entryPointId: 'api',
    input: { id },
    priority: 0,
    correlationId: id,
    meta: {},
    timeoutMs: 0,
    depth: 0,
    admittedAt,
    ...extra,
  }
}

/** A completed execution's end, for tests that write a run log directly. */
export function endOp(id: string, startedAt: number, completedAt: number): EndOp {
  return { op: 'end', id, status: 'completed', attempts: 1, output: id, startedAt, completedAt }
}
