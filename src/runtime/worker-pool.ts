/**
 * The Piscina pool that runs every execution, and what each of its threads is handed at start-up.
 * Main thread only.
 *
 * TypeScript handlers and running agentpool from its sources both need a TypeScript loader in the
 * threads: when the worker entry or any handler module is a `.ts` file, threads start with
 * `--import tsx` (resolved from this package, so it works whatever the caller's working directory).
 *
 * @module
 */
import { availableParallelism } from 'node:os'
import { fileURLToPath } from 'node:url'
import { Piscina } from 'piscina'
import type { ResolvedRuntimeConfig } from '../config/index.js'
import type { BatchResult, BatchTask } from '../protocol.js'

/** What every pool thread receives as `workerData`. */
export interface WorkerSetup {
  runtimeId: string
  channel: unknown
  state: unknown
}

const fromSource = import.meta.url.endsWith('.ts')
const workerFile = fileURLToPath(new URL(`../../workers/execution-worker.${fromSource ? 'ts' : 'js'}`, import.meta.url))

export interface WorkerPoolEvents {
  /** A thread is gone (crashed, terminated, or idle-stopped); its id. */
  onThreadExit(threadId: number): void
}

export class WorkerPool {
  private readonly piscina: Piscina
  threadsReplaced = 0
  private readonly live = new Set<number>()
  private closing = false

  constructor(config: ResolvedRuntimeConfig, setup: WorkerSetup, events: WorkerPoolEvents) {
    const needsTsx = fromSource || config.entryPoints.some((ep) => /\.[cm]?tsx?$/.test(ep.handler))
    const { threads, tasksPerThread, idleTimeoutMs, maxHeapMb } = config.pool
    this.piscina = new Piscina({
      filename: workerFile,
      minThreads: threads,
      maxThreads: threads,
      concurrentTasksPerWorker: tasksPerThread,
      idleTimeout: idleTimeoutMs,
      // Handlers are async and use their thread's event loop (timers, abort messages): never park the
      // loop in a blocking Atomics.wait between tasks.
      atomics: 'async',
      maxQueue: 'auto',
      workerData: setup,
      execArgv: needsTsx ? ['--import', import.meta.resolve('tsx')] : [],
      ...(maxHeapMb > 0 ? { resourceLimits: { maxOldGenerationSizeMb: maxHeapMb } } : {}),
    })
    this.piscina.on('workerCreate', (w: { id: number }) => {
      this.live.add(w.id)
    })
    this.piscina.on('workerDestroy', (w: { id: number }) => {
      this.live.delete(w.id)
      if (!this.closing) this.threadsReplaced++
      events.onThreadExit(w.id)
    })
    // A thread that dies with no task of ours is replaced by Piscina; the error itself has no one to go to.
    this.piscina.on('error', () => {})
  }

  /** Runs one pool message. Rejects if its thread dies or `signal` aborts it (which terminates the thread). */
  run(task: BatchTask, signal: AbortSignal): Promise<BatchResult> {
    return this.piscina.run(task, { signal })
  }

  get utilization(): number {
    return this.piscina.utilization
  }

  get threads(): number {
    return this.piscina.threads.length
  }

  async close(): Promise<void> {
    this.closing = true
    await this.piscina.close({ force: true })
  }

  static defaultThreads(): number {
    return availableParallelism()
  }
}
