/**
 * The cost of durable runs, each side measured in the same run against the same work without a run log:
 *
 * - `durable_vs_memory`: `triggerAndWait` on a no-op handler, `IN_FLIGHT` outstanding per iteration, with
 *   `durability` (SQLite in WAL mode, group commit) ÷ without. Target 0.5: the log writes one or two rows
 *   per execution (its admission, with its end folded in when both are in one batch) where the handler does
 *   nothing at all.
 * - `durable_tickets_vs_memory`: the ticket workload (`workloads/ticket-runtime.ts`, batches of
 *   `threads × 128` tickets) with durability ÷ without, where each ticket also logs its state changes,
 *   decision and outcome. Target 0.9.
 *
 * Also logged (not a target): how long `start()` takes on the ticket run's log once it is stopped, restoring
 * the snapshot its writer compacted the records into, against the same log with the snapshot deleted (every
 * record replayed, as before logs were compacted); and what compacting that log's records costs.
 *
 * The log lives in a fresh temporary folder, removed afterwards.
 */
import { cpSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs'
import { availableParallelism, tmpdir } from 'node:os'
import { join } from 'node:path'
import Database from 'better-sqlite3'
import { Compactor } from '../src/durability/compaction.js'
import { LogStore } from '../src/durability/index.js'
import { AgentRuntime, type RuntimeConfig } from '../src/index.js'
import { BATCH_QUICK_BUDGET, type BenchSuite, compareSideBySide, runFor } from './harness/index.js'
import { noopRuntimeConfig } from './workloads/noop-runtime.js'
import { processBatch, TicketSource, ticketRuntimeConfig } from './workloads/ticket-runtime.js'

const IN_FLIGHT = 256
const SEED = 20261204
const TICKETS_PER_THREAD = 128

/** Starts a runtime, with its run log in `dir` when given. */
async function started(config: RuntimeConfig, dir?: string): Promise<AgentRuntime> {
  const runtime = new AgentRuntime(
    dir === undefined ? config : { ...config, durability: { path: join(dir, 'runs.db') } },
  )
  await runtime.start()
  return runtime
}

const suite: BenchSuite = {
  name: 'durable',
  async run({ quick, log }) {
    const threads = availableParallelism()
    const dir = mkdtempSync(join(tmpdir(), 'agentpool-bench-durable-'))
    const noop = noopRuntimeConfig(threads, IN_FLIGHT)
    const batch = threads * TICKETS_PER_THREAD
    const tickets = ticketRuntimeConfig({
      threads,
      tasksPerThread: 4,
      maxConcurrent: batch,
      isolation: { stream: 'synchronized', global: 'shared' },
    })
    const runtimes: AgentRuntime[] = []
    try {
      log(`no-op dispatch, ${threads} threads, ${IN_FLIGHT} in flight; run log in ${dir}`)
      const [memory, durable] = [await started(noop), await started(noop, join(dir, 'noop'))]
      runtimes.push(memory, durable)
      const many = (rt: AgentRuntime) => async () =>
        Promise.all(Array.from({ length: IN_FLIGHT }, (_, i) => rt.triggerAndWait('noop', i)))
      // Both sides run warm before the first measured round (see `runFor`): the run log's own paths on the
      // main thread and on its writer thread are compiled by the optimizing JIT only after some thousands
      // of executions, like the runtime's.
      for (const rt of [memory, durable]) await runFor(quick ? 1000 : 2000, many(rt))
      const noopEntry = await compareSideBySide({
        name: 'durable_vs_memory',
        unit: 'executions/s',
        target: 0.5,
        quick,
        log,
        ...(quick ? { budget: BATCH_QUICK_BUDGET } : {}),
        baseline: { name: 'triggerAndWait, no run log', opsPerIteration: IN_FLIGHT, fn: many(memory) },
        contender: { name: 'triggerAndWait, durable', opsPerIteration: IN_FLIGHT, fn: many(durable) },
      })
      await Promise.all(runtimes.splice(0).map((rt) => rt.stop()))

      log(`ticket workload, ${threads} threads, batches of ${batch} tickets`)
      const [plainTickets, durableTickets] = [
        await started(tickets),
        await started(tickets, join(dir, 'tickets')),
      ]
      runtimes.push(plainTickets, durableTickets)
      const memorySource = new TicketSource(SEED)
      const durableSource = new TicketSource(SEED)
      await runFor(quick ? 2500 : 4000, () => processBatch(plainTickets, memorySource.take(batch)))
      await runFor(quick ? 2500 : 4000, () => processBatch(durableTickets, durableSource.take(batch)))
      const ticketEntry = await compareSideBySide({
        name: 'durable_tickets_vs_memory',
        unit: 'tickets/s',
        target: 0.9,
        quick,
        log,
        ...(quick ? { budget: BATCH_QUICK_BUDGET } : {}),
        baseline: {
          name: 'tickets, no run log',
          opsPerIteration: batch,
          fn: async () => processBatch(plainTickets, memorySource.take(batch)),
        },
        contender: {
          name: 'tickets, durable',
          opsPerIteration: batch,
          fn: async () => processBatch(durableTickets, durableSource.take(batch)),
        },
      })
      await Promise.all(runtimes.splice(0).map((rt) => rt.stop()))
      await restartProbe(tickets, dir, log)
      return [noopEntry, ticketEntry]
    } finally {
      await Promise.all(runtimes.map((rt) => rt.stop()))
      rmSync(dir, { recursive: true, force: true })
    }
  },
}

/** Deletes the log's snapshot: its next start replays every record. Returns the rows of records it holds. */
function dropSnapshot(file: string): number {
  const db = new Database(file)
  try {
    db.exec('DELETE FROM snapshot')
    return (db.prepare('SELECT count(*) AS n FROM records').get() as { n: number }).n
  } finally {
    db.close()
  }
}

/**
 * Starts a runtime on the stopped ticket log (its snapshot restored), on a copy without the snapshot
 * (every record replayed) and on an empty log, in turn, and logs each start's time. Then compacts the copy's
 * records here, with the writer thread's code, and logs what that costs per record.
 */
async function restartProbe(config: RuntimeConfig, dir: string, log: (line: string) => void): Promise<void> {
  const replay = join(dir, 'replay')
  const copy = join(replay, 'runs.db')
  mkdirSync(replay)
  cpSync(join(dir, 'tickets', 'runs.db'), copy)
  const records = dropSnapshot(copy)
  const times: Record<'snapshot' | 'replay' | 'empty', number[]> = { snapshot: [], replay: [], empty: [] }
  const decisions = new Set<number>()
  for (let round = 0; round < 2; round++) {
    for (const [side, folder] of [
      ['snapshot', join(dir, 'tickets')],
      ['replay', replay],
      ['empty', join(dir, `empty-${round}`)],
    ] as const) {
      const t0 = performance.now()
      const rt = await started(config, folder)
      times[side].push(performance.now() - t0)
      if (side !== 'empty') decisions.add(rt.outcomes.evaluateGoalProgress().metrics.totalDecisions)
      await rt.stop({ drain: false })
      // The stop compacted the copy: without its snapshot again, the next round replays it again.
      if (side === 'replay') dropSnapshot(copy)
    }
  }
  if (decisions.size !== 1) throw new Error(`restart: the two logs restored different goal counters`)
  const ms = (xs: number[]) => xs.map((x) => x.toFixed(0)).join(', ')
  log(
    `restart: start() on the ticket log (${records} rows of records, ${[...decisions][0]} decisions): ` +
      `${ms(times.snapshot)} ms from its snapshot, ${ms(times.replay)} ms replaying every record, ` +
      `${ms(times.empty)} ms on an empty log`,
  )
  compactionProbe(config, copy, log)
}

/**
 * Compacts every record of `file` (which has no snapshot) step by step, as the writer thread does, twice
 * (the first pass also compiles the code), and logs each pass.
 */
function compactionProbe(config: RuntimeConfig, file: string, log: (line: string) => void): void {
  for (let pass = 1; pass <= 2; pass++) {
    if (pass > 1) dropSnapshot(file)
    const store = LogStore.open(file, 'normal')
    try {
      const compactor = new Compactor(store, { goal: config.goal, outcomes: {}, every: 1 })
      const rows = store.lastRecord
      const cpu0 = process.cpuUsage()
      const t0 = performance.now()
      let longest = 0
      for (let more = true; more; ) {
        const s0 = performance.now()
        more = compactor.step()
        longest = Math.max(longest, performance.now() - s0)
      }
      const wall = performance.now() - t0
      const cpu = process.cpuUsage(cpu0)
      log(
        `compaction, pass ${pass}: ${rows} rows of records (a ticket's decision and outcome each) in ` +
          `${wall.toFixed(0)} ms: ${((wall * 1000) / rows).toFixed(1)} µs per row, ` +
          `${((cpu.user + cpu.system) / rows).toFixed(1)} µs of CPU per row (this process), longest step ${longest.toFixed(1)} ms`,
      )
    } finally {
      store.close()
    }
  }
}

export default suite
