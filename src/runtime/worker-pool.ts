/**
 * The Piscina pool that runs every execution, and what each of its threads is handed at start-up.
 * Main thread only.
 *
 * Threads start through `workers/bootstrap.mjs`, which loads the worker entry and imports handler
 * modules (TypeScript ones through tsx); see `worker-files.ts`.
 *
 * @module
 */
import { availableParallelism } from 'node:os'
import { Piscina, queueOptionsSymbol } from 'piscina'
import type { ResolvedRuntimeConfig } from '../config/index.js'
import type { BatchResult, BatchTask, PoolEntryPoint } from '../protocol.js'
import { DELEGATION_HEADROOM } from './limits.js'
import { poolBootstrap } from './worker-files.js'

/** What every pool thread receives as `workerData`. */
export interface WorkerSetup {
  runtimeId: string
  channel: unknown
  state: unknown
  /** The entry points, in config order; tasks name them by index. */
  entryPoints?: PoolEntryPoint[]
  /** Int32 per in-flight pool message slot: the id + 1 of the thread that took it (see {@link WorkerPool.threadOf}). */
  messageThreads?: SharedArrayBuffer
}

export interface WorkerPoolEvents {
  /** A thread is gone (crashed, terminated, or idle-stopped); its id. */
  onThreadExit(threadId: number): void
}

/** What the balancer sees of a Piscina worker (its task-facing interface). */
interface BalancedWorker {
  readonly id: number
  readonly currentUsage: number
  readonly terminating: boolean
  readonly destroyed: boolean
}

/**
 * What rides along with each message to the balancer, under Piscina's documented queue-options symbol
 * (`Piscina.queueOptionsSymbol`, typed on the `PiscinaTask` the public `loadBalancer` option receives;
 * never cloned to the thread). `test/runtime-piscina-contract.test.ts` fails if Piscina stops passing it.
 */
interface MessageOptions {
  /** The engine's message slot, or -1. */
  slot: number
  /** Runs with no other message on its thread (a suspect after a thread death). */
  alone: boolean
}

/** What the balancer sees of a task. */
interface BalancedTask {
  readonly [queueOptionsSymbol]?: MessageOptions | null
}

export class WorkerPool {
  private readonly piscina: Piscina
  /** `messageThreads[slot]` = thread id + 1 of the thread running the message in `slot`; 0 = not started. */
  private readonly messageThreads: Int32Array
  private readonly freeSlots: number[]
  /**
   * Messages each thread holds in the engine's sense (not every end consumed yet), by thread id; and the
   * thread each slot's message was given to. See {@link balance}.
   */
  private readonly busyOn = new Map<number, number>()
  private readonly slotThread: Int32Array
  /** Threads (Piscina worker ids) given a message that runs alone; each takes nothing else until idle. */
  private readonly runningAlone = new Set<number>()
  threadsReplaced = 0
  private readonly live = new Set<number>()
  private closing = false

  constructor(config: ResolvedRuntimeConfig, setup: WorkerSetup, events: WorkerPoolEvents) {
    const { threads, tasksPerThread, idleTimeoutMs, maxHeapMb, youngGenerationMb } = config.pool
    const slots = 2 * threads * (tasksPerThread + DELEGATION_HEADROOM) + 64
    this.messageThreads = new Int32Array(new SharedArrayBuffer(4 * slots))
    this.freeSlots = Array.from({ length: slots }, (_, i) => slots - 1 - i)
    this.slotThread = new Int32Array(slots).fill(-1)
    const maximumUsage = tasksPerThread + DELEGATION_HEADROOM
    const entryPoints = config.entryPoints.map(({ id, handler, isolation, maxConflictRetries }) => ({
      id,
      handler,
      isolation,
      maxConflictRetries,
    }))
    this.piscina = new Piscina({
      ...poolBootstrap('execution-worker', {
        ...setup,
        entryPoints,
        messageThreads: this.messageThreads.buffer as SharedArrayBuffer,
      }),
      minThreads: threads,
      maxThreads: threads,
      // The engine caps ordinary messages at threads × tasksPerThread; the headroom is for delegated ones.
      concurrentTasksPerWorker: maximumUsage,
      loadBalancer: (task, workers) =>
        this.balance(
          task as unknown as BalancedTask,
          workers as unknown as BalancedWorker[],
          maximumUsage,
        ) as never,
      idleTimeout: idleTimeoutMs,
      // Handlers are async and use their thread's event loop (timers, abort messages). With 'sync' an idle
      // thread parks in a blocking Atomics.wait between tasks, so a timer or promise a handler left behind
      // would not run until the next task arrived; 'async' waits with Atomics.waitAsync, and the loop runs.
      atomics: 'async',
      // The engine bounds what it sends (its message slots plus delegated messages), so Piscina's own queue
      // must never refuse one: the engine would take a refused message for a lost thread, re-run its
      // executions alone, and each of those waits in that queue for an idle thread — refused again, for
      // ever (seen in the full sweep: the main thread spinning on refusals while the pool idled).
      maxQueue: Number.POSITIVE_INFINITY,
      resourceLimits: {
        ...(maxHeapMb > 0 ? { maxOldGenerationSizeMb: maxHeapMb } : {}),
        ...(youngGenerationMb > 0 ? { maxYoungGenerationSizeMb: youngGenerationMb } : {}),
      },
    })
    this.piscina.on('workerCreate', (w: { id: number }) => {
      this.live.add(w.id)
    })
    this.piscina.on('workerDestroy', (w: { id: number }) => {
      // A thread that ended on its own (process.exit, heap limit) reports id −1 by now: the dead one is
      // then whichever thread we saw start that no longer runs.
      for (const id of w.id >= 0 ? [w.id] : this.stoppedThreads()) {
        this.runningAlone.delete(id)
        if (!this.live.delete(id)) continue
        if (!this.closing) this.threadsReplaced++
        events.onThreadExit(id)
      }
    })
    // A thread that dies with no task of ours is replaced by Piscina; the error itself has no one to go to.
    this.piscina.on('error', () => {})
  }

  /**
   * Runs one pool message; rejects if its thread dies. With `alone`, no other message shares its thread
   * while it runs (see {@link balance}). A message is stopped by terminating its thread
   * ({@link terminateThread}).
   */
  run(task: BatchTask, alone = false): Promise<BatchResult> {
    const options: MessageOptions = { slot: task.slot ?? -1, alone }
    return this.piscina.run({ ...task, [queueOptionsSymbol]: options })
  }

  /**
   * Picks the thread for a message. Piscina's own choice goes by the tasks it has not yet heard back
   * about, but the engine knows sooner: a message whose ends were all consumed frees its thread before
   * Piscina's reply arrives. Balancing on that stale count piles consecutive messages onto one thread
   * while another idles (with synchronous handlers a thread runs its messages one after another), so the
   * thread holding the fewest of the engine's busy messages wins, Piscina's count breaking ties. A thread
   * still starting takes nothing (it would hold the message for its whole start-up). No thread
   * takes more than `maximumUsage` messages; a message that runs alone only goes to an idle thread, and a
   * thread running one takes nothing else until it is idle again. Returns null when no thread can take it
   * now (Piscina asks again when a thread frees up).
   */
  private balance(
    task: BalancedTask,
    workers: BalancedWorker[],
    maximumUsage: number,
  ): BalancedWorker | null {
    const options = task[queueOptionsSymbol]
    const alone = options?.alone === true
    let best: BalancedWorker | null = null
    let bestBusy = Number.POSITIVE_INFINITY
    for (const w of workers) {
      // Piscina also offers threads still starting (a replacement for one that died): a message sent there
      // waits for the start-up, seconds on a loaded machine, while a ready thread may idle. `live` holds
      // only threads that have started (Piscina reports a replacement once it is ready).
      if (w.terminating || w.destroyed || !this.live.has(w.id)) continue
      const usage = w.currentUsage
      if (this.runningAlone.has(w.id)) {
        if (usage > 0) continue
        // Idle again: its lone message is done.
        this.runningAlone.delete(w.id)
      }
      if (usage >= maximumUsage || (alone && usage > 0)) continue
      const busy = this.busyOn.get(w.id) ?? 0
      if (busy < bestBusy || (busy === bestBusy && usage < best!.currentUsage)) {
        best = w
        bestBusy = busy
      }
    }
    if (best === null) return null
    if (alone) this.runningAlone.add(best.id)
    const slot = options?.slot ?? -1
    if (slot >= 0) {
      this.slotThread[slot] = best.id
      this.busyOn.set(best.id, bestBusy + 1)
    }
    return best
  }

  /** Takes a message slot for a new pool message; -1 when none is free (its thread cannot be known). */
  takeSlot(): number {
    const slot = this.freeSlots.pop()
    if (slot === undefined) return -1
    // Cleared before the message is sent; the worker that takes it stores its thread id.
    Atomics.store(this.messageThreads, slot, 0)
    return slot
  }

  /**
   * The message in `slot` no longer keeps its thread busy (every end consumed, or it settled). Call once
   * per message, before {@link releaseSlot}.
   */
  releaseBusy(slot: number): void {
    if (slot < 0) return
    const thread = this.slotThread[slot]!
    this.slotThread[slot] = -1
    if (thread < 0) return
    const busy = (this.busyOn.get(thread) ?? 1) - 1
    if (busy > 0) this.busyOn.set(thread, busy)
    else this.busyOn.delete(thread)
  }

  releaseSlot(slot: number): void {
    if (slot >= 0) this.freeSlots.push(slot)
  }

  /** The thread running the message in `slot`, or -1 if no thread has taken it yet. */
  threadOf(slot: number): number {
    // Acquire: pairs with the worker's store when it starts the message.
    return slot < 0 ? -1 : Atomics.load(this.messageThreads, slot) - 1
  }

  /** Terminates one pool thread (Piscina replaces it and rejects the messages it was running). */
  terminateThread(threadId: number): boolean {
    const worker = this.piscina.threads.find((w) => w.threadId === threadId)
    if (worker === undefined) return false
    void worker.terminate()
    return true
  }

  /**
   * Resolves once every thread has started and loaded `handlers`, so the first executions do not pay for
   * thread start-up inside their timeout, with each handler module that did not load and why.
   */
  async warmUp(handlers: string[], messagesPerThread: number): Promise<Record<string, string>> {
    const count = this.piscina.options.maxThreads * messagesPerThread
    const answers = await Promise.all(
      Array.from({ length: count }, () => this.run({ executions: [], warmup: handlers })),
    )
    return Object.assign({}, ...answers.map((a) => a.handlerFailures ?? {}))
  }

  /** Threads seen starting whose thread has ended (a Worker's threadId is −1 once its thread is gone). */
  private stoppedThreads(): number[] {
    const running = new Set(this.piscina.threads.map((t) => t.threadId))
    return [...this.live].filter((id) => !running.has(id))
  }

  get utilization(): number {
    return this.piscina.utilization
  }

  get threads(): number {
    return this.piscina.threads.length
  }

  /**
   * Terminates every thread at once. The engine calls it once nothing it sent is left running (or after
   * cancelling what was): Piscina's own `close` would wait for its queue, then leave a timer of
   * `closeTimeout` (30 s) pending that keeps the pool — and through `workerData` every SharedArrayBuffer of
   * the runtime — alive that long after the stop.
   */
  async close(): Promise<void> {
    this.closing = true
    await this.piscina.destroy()
  }

  static defaultThreads(): number {
    return availableParallelism()
  }
}
