/**
 * Timers once per cluster: each interval or cron entry point is a BullMQ job scheduler on its queue, so
 * every tick is one job, run by one host however many there are. Pausing removes the scheduler and
 * marks the timer paused in Redis (a host that starts later leaves it paused); resuming puts it back.
 * Each host upserts its config's schedulers when it starts, so a changed schedule takes effect then.
 * Main thread only.
 *
 * A tick's execution gets `{ scheduledAt }` as input and `{ trigger: 'timer', scheduledAt }` as
 * `ctx.meta`, as in one process. Unlike one process, a tick that finds the entry point busy is not
 * skipped: it waits in the queue like any job.
 *
 * @module
 */
import type { Queue } from 'bullmq'
import type { Redis } from 'ioredis'
import type { ResolvedEntryPoint } from '../config/index.js'
import { noTimerError } from '../triggers/index.js'
import { bullPriority, type JobData, type JobResult } from './job.js'

type TimerTrigger = Extract<ResolvedEntryPoint['trigger'], { type: 'timer' }>

/** A timer's cluster-wide figures. */
export interface ClusterTimerStats {
  /** Epoch ms of the next tick; null while paused. */
  nextFireAt: number | null
  paused: boolean
}

/** How long a host may hold the lock under which it puts a scheduler in place. */
const UPSERT_LOCK_MS = 10_000

export class ClusterTimers {
  private readonly timers = new Map<string, TimerTrigger>()

  constructor(
    entryPoints: readonly ResolvedEntryPoint[],
    private readonly queues: ReadonlyMap<string, Queue<JobData, JobResult>>,
    private readonly client: Redis,
    /** The Redis set of paused timers' entry point ids. */
    private readonly pausedKey: string,
  ) {
    for (const ep of entryPoints) if (ep.trigger.type === 'timer') this.timers.set(ep.id, ep.trigger)
  }

  /**
   * Puts every timer's scheduler in place, except those paused cluster-wide. One host at a time does it
   * (a short Redis lock), and only when the stored schedule differs from the config's: re-creating an
   * unchanged scheduler while another host runs its tick could run that slot twice.
   */
  async start(): Promise<void> {
    for (const [id, t] of this.timers) {
      if ((await this.client.sismember(this.pausedKey, id)) === 1) continue
      const lock = `${this.pausedKey}:lock:${id}`
      if ((await this.client.set(lock, '1', 'PX', UPSERT_LOCK_MS, 'NX')) === null) continue
      try {
        const stored = await this.queue(id).getJobScheduler(id)
        const same =
          stored !== undefined &&
          (t.cron === undefined
            ? Number(stored.every) === t.intervalMs
            : stored.pattern === t.cron && (stored.tz ?? undefined) === t.timezone)
        if (!same) await this.upsert(id)
      } finally {
        await this.client.del(lock)
      }
    }
  }

  /** Stops `id`'s ticks on every host until {@link resume}. */
  async pause(id: string): Promise<void> {
    this.get(id)
    await this.client.sadd(this.pausedKey, id)
    await this.queue(id).removeJobScheduler(id)
  }

  /** Restarts `id`'s ticks on every host; a no-op when it is not paused. */
  async resume(id: string): Promise<void> {
    this.get(id)
    if ((await this.client.srem(this.pausedKey, id)) === 1) await this.upsert(id)
  }

  async stats(): Promise<Record<string, ClusterTimerStats>> {
    const out: Record<string, ClusterTimerStats> = {}
    for (const id of this.timers.keys()) {
      const scheduler = await this.queue(id).getJobScheduler(id)
      const next = scheduler?.next
      out[id] = { nextFireAt: next === undefined ? null : Number(next), paused: scheduler === undefined }
    }
    return out
  }

  private async upsert(id: string): Promise<void> {
    const t = this.get(id)
    const repeat =
      t.cron !== undefined
        ? {
            pattern: t.cron,
            ...(t.timezone === undefined ? {} : { tz: t.timezone }),
            immediately: t.runImmediately,
          }
        : { every: t.intervalMs as number }
    const data: JobData = { input: null, meta: { trigger: 'timer' } }
    await this.queue(id).upsertJobScheduler(id, repeat, {
      name: id,
      data,
      opts: { priority: bullPriority(0) },
    })
  }

  private queue(id: string): Queue<JobData, JobResult> {
    return this.queues.get(id)!
  }

  private get(id: string): TimerTrigger {
    const t = this.timers.get(id)
    if (t === undefined) throw noTimerError(id, this.timers.keys())
    return t
  }
}
