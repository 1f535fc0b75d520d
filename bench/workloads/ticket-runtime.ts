/**
 * Drives the ticket workload through agentpool: the runtime config for one setting, a cycling source of
 * pre-generated tickets, a batch runner (for tinybench iterations); the sweep's closed-loop load
 * generator is `driveClosedLoop` in `src/sweep`. Main thread only.
 */

import { fileURLToPath } from 'node:url'
import type { IsolationLevel, RuntimeConfig } from '../../src/config/types.js'
import { AgentRuntime } from '../../src/index.js'
import { makeTicketBatch } from './ticket-core.js'
import { GOAL_CRITERION } from './ticket-keys.js'

/** The entry point (and stream) the tickets arrive on. */
export const TICKET_ENTRY = 'tickets'

/** Absolute path of the ticket handler module. */
export const TICKET_HANDLER = fileURLToPath(new URL('./ticket-handler.ts', import.meta.url))

/** The knobs of one ticket runtime. */
export interface TicketSetting {
  threads: number
  tasksPerThread: number
  maxConcurrent: number
  isolation: { stream: IsolationLevel; global: IsolationLevel }
}

/** The runtime config for one setting: one api entry point running the ticket handler. */
export function ticketRuntimeConfig(s: TicketSetting): RuntimeConfig {
  return {
    goal: {
      id: 'triage',
      description: 'classify every incoming support ticket',
      successCriteria: [{ id: GOAL_CRITERION, description: 'tickets classified', target: 0.9 }],
    },
    pool: { threads: s.threads, tasksPerThread: s.tasksPerThread },
    state: { isolation: s.isolation },
    entryPoints: [
      {
        id: TICKET_ENTRY,
        handler: TICKET_HANDLER,
        trigger: { type: 'api' },
        maxConcurrent: s.maxConcurrent,
        maxQueue: 100_000,
      },
    ],
  }
}

/** Creates and starts a runtime for one setting. The caller stops it. */
export async function startTicketRuntime(s: TicketSetting): Promise<AgentRuntime> {
  const runtime = new AgentRuntime(ticketRuntimeConfig(s))
  await runtime.start()
  return runtime
}

/** A fixed, seeded set of ticket JSON texts handed out round-robin, so every run sees the same tickets. */
export class TicketSource {
  private readonly tickets: string[]
  private cursor = 0

  constructor(seed: number, size = 1024) {
    this.tickets = makeTicketBatch(seed, size)
  }

  /** The next ticket. */
  next(): string {
    const t = this.tickets[this.cursor]!
    this.cursor = (this.cursor + 1) % this.tickets.length
    return t
  }

  /** The next `n` tickets. */
  take(n: number): string[] {
    return Array.from({ length: n }, () => this.next())
  }
}

/** Runs every ticket of `batch` through the runtime at once; throws the first execution that did not complete. */
export async function processBatch(runtime: AgentRuntime, batch: readonly string[]): Promise<void> {
  const results = await Promise.all(batch.map((t) => runtime.triggerAndWait(TICKET_ENTRY, t)))
  const bad = results.find((r) => r.status !== 'completed')
  if (bad)
    throw new Error(
      `ticket execution ${bad.executionId} ${bad.status}: ${bad.error?.code} ${bad.error?.message}`,
    )
}
