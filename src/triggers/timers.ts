/**
 * Timer triggers: fixed-rate intervals (`intervalMs`, scheduled against the clock so they do not drift)
 * and cron expressions (croner: 5 or 6 fields, optional time zone). A tick that finds its stream at
 * `maxConcurrent` (or its queue full) starts nothing and is counted as skipped, so a slow stream never
 * piles up timer executions; each skip is also published as a `trigger_refused` event.
 *
 * An execution's input is `{ scheduledAt }` (epoch ms of its slot) and `ctx.meta` is
 * `{ trigger: 'timer', scheduledAt }`.
 *
 * @module
 */
import { Cron } from 'croner'
import type { ResolvedEntryPoint } from '../config/index.js'
import { InvalidArgumentError, NotRunningError } from '../errors.js'
import type { TriggerHost } from './host.js'
import { publishRefused } from './refused.js'

/** One timer's figures, as `Triggers.timerStats()` reports them. */
export interface TimerStats {
  /** Epoch ms of the next tick; `null` while paused or when the schedule has no further run. */
  nextFireAt: number | null
  /** Ticks that started an execution. */
  fired: number
  /** Ticks that found the stream at `maxConcurrent`, or were refused by the runtime, and started nothing. */
  skipped: number
  paused: boolean
}

type TimerTrigger = Extract<ResolvedEntryPoint['trigger'], { type: 'timer' }>

/** The schedule behind one timer: an interval or a cron job. */
interface Schedule {
  /**
   * Arms the schedule; `fire(scheduledAt)` is called on each tick. With `last`, the slot of the last fire
   * before a restart, it carries on from that slot instead of from now, and returns the latest slot that
   * passed while the process was down (to fire once, at once), if any.
   */
  start(last?: number): number | undefined
  stop(): void
  nextFireAt(): number | null
}

class IntervalSchedule implements Schedule {
  private handle: NodeJS.Timeout | undefined
  private next = 0

  constructor(
    private readonly intervalMs: number,
    private readonly fire: (scheduledAt: number) => void,
  ) {}

  start(last?: number): number | undefined {
    const now = Date.now()
    const due = last === undefined ? now + this.intervalMs : last + this.intervalMs
    if (due > now) {
      this.next = due
      this.arm()
      return undefined
    }
    // Slots passed while down: the latest one fires now, the earlier ones are dropped (as after a stall).
    const missed = due + Math.floor((now - due) / this.intervalMs) * this.intervalMs
    this.next = missed + this.intervalMs
    this.arm()
    return missed
  }

  stop(): void {
    clearTimeout(this.handle)
    this.handle = undefined
  }

  nextFireAt(): number | null {
    return this.handle === undefined ? null : this.next
  }

  private arm(): void {
    this.handle = setTimeout(
      () => {
        const scheduledAt = this.next
        // Fixed rate: the next slot follows the scheduled one, not the (possibly late) wake-up. After a stall
        // longer than a period the missed slots are dropped rather than fired in a burst.
        this.next = Math.max(scheduledAt + this.intervalMs, Date.now() + 1)
        this.arm()
        this.fire(scheduledAt)
      },
      Math.max(0, this.next - Date.now()),
    )
  }
}

class CronSchedule implements Schedule {
  private job: Cron | undefined
  /** The slot the job will fire for next (croner reports only the wall-clock start of a run). */
  private slot: Date | null = null

  constructor(
    private readonly pattern: string,
    private readonly timezone: string | undefined,
    private readonly fire: (scheduledAt: number) => void,
  ) {}

  start(last?: number): number | undefined {
    this.job = new Cron(this.pattern, { timezone: this.timezone }, (self: Cron) => {
      const scheduledAt = this.slot?.getTime() ?? Date.now()
      this.slot = self.nextRun()
      this.fire(scheduledAt)
    })
    this.slot = this.job.nextRun()
    if (last === undefined) return undefined
    const now = Date.now()
    let missed: number | undefined
    // Bounded: a schedule that ran every second through a day-long outage still needs only its latest slot.
    for (
      let s = this.job.nextRun(new Date(last)), i = 0;
      s !== null && s.getTime() <= now && i < 100_000;
      i++
    ) {
      missed = s.getTime()
      s = this.job.nextRun(s)
    }
    return missed
  }

  stop(): void {
    this.job?.stop()
    this.job = undefined
    this.slot = null
  }

  nextFireAt(): number | null {
    return this.slot?.getTime() ?? null
  }
}

/** One timer trigger of one entry point. */
class Timer {
  readonly stats = { fired: 0, skipped: 0 }
  private paused = false
  private readonly schedule: Schedule

  constructor(
    private readonly entryPoint: ResolvedEntryPoint,
    trigger: TimerTrigger,
    private readonly host: TriggerHost,
  ) {
    const fire = (scheduledAt: number) => this.tick(scheduledAt)
    this.schedule =
      trigger.cron !== undefined
        ? new CronSchedule(trigger.cron, trigger.timezone, fire)
        : new IntervalSchedule(trigger.intervalMs as number, fire)
  }

  /**
   * Arms the timer. With `last` (its last fire before a restart, from the run log) it keeps that schedule:
   * no second `runImmediately` tick, and one tick now for the latest slot that passed while down.
   */
  start(runImmediately: boolean, last?: number): void {
    const missed = this.schedule.start(last)
    if (missed !== undefined) this.tick(missed)
    else if (runImmediately && last === undefined) this.tick(Date.now())
  }

  pause(): void {
    this.paused = true
    this.schedule.stop()
  }

  /** Resumes the schedule from now (an interval's next tick is one period away). */
  resume(): void {
    if (!this.paused) return
    this.paused = false
    this.schedule.start()
  }

  stop(): void {
    this.schedule.stop()
  }

  snapshot(): TimerStats {
    return { nextFireAt: this.paused ? null : this.schedule.nextFireAt(), paused: this.paused, ...this.stats }
  }

  private tick(scheduledAt: number): void {
    const id = this.entryPoint.id
    const stream = this.host.stats().streams[id]
    if (stream !== undefined && stream.running >= stream.maxConcurrent) {
      this.stats.skipped++
      publishRefused(this.host, {
        entryPointId: id,
        triggerType: 'timer',
        reason: 'at_capacity',
        scheduledAt,
      })
      return
    }
    const onAdmitted = (executionId: string): void => {
      this.stats.fired++
      this.host.events.publish({
        type: 'trigger_fired',
        streamId: id,
        executionId,
        // A timer's execution starts its own chain: its correlation id is its execution id.
        correlationId: executionId,
        data: { entryPointId: id, triggerType: 'timer' },
      })
    }
    this.host
      .trigger(id, { scheduledAt }, { meta: { trigger: 'timer', scheduledAt }, onAdmitted })
      .then(undefined, (err: unknown) => {
        this.stats.skipped++
        publishRefused(
          this.host,
          { entryPointId: id, triggerType: 'timer', reason: 'refused', scheduledAt },
          err,
        )
      })
  }
}

/** Every timer trigger of a runtime. */
export class Timers {
  private readonly timers = new Map<string, Timer>()
  private stopped = false

  /** @param lastFires each timer's last fire (its slot, epoch ms) before a restart, from the run log. */
  constructor(
    host: TriggerHost,
    entryPoints: readonly ResolvedEntryPoint[],
    lastFires: Readonly<Record<string, number>> = {},
  ) {
    for (const ep of entryPoints) {
      if (ep.trigger.type !== 'timer') continue
      const timer = new Timer(ep, ep.trigger, host)
      this.timers.set(ep.id, timer)
      timer.start(ep.trigger.runImmediately, lastFires[ep.id])
    }
  }

  /**
   * Stops `id`'s ticks until {@link resume}.
   * @throws InvalidArgumentError for an entry point without a timer; NotRunningError after {@link stop}.
   */
  pause(id: string): void {
    this.get(id).pause()
  }

  /** Restarts `id`'s ticks; a no-op when it is not paused. */
  resume(id: string): void {
    this.get(id).resume()
  }

  stats(): Record<string, TimerStats> {
    const out: Record<string, TimerStats> = {}
    for (const [id, t] of this.timers) out[id] = t.snapshot()
    return out
  }

  /** Ends every timer for good; pause and resume are refused afterwards. */
  stop(): void {
    this.stopped = true
    for (const t of this.timers.values()) t.stop()
  }

  private get(id: string): Timer {
    // A resumed timer after stop would tick into a stopped runtime and keep the process alive.
    if (this.stopped) throw new NotRunningError('pauseTimer/resumeTimer')
    const t = this.timers.get(id)
    if (t === undefined) throw noTimerError(id, this.timers.keys())
    return t
  }
}

/** The error for a timer control called with an entry point that has no timer trigger. */
export function noTimerError(id: string, timers: Iterable<string>): InvalidArgumentError {
  return new InvalidArgumentError(
    `no timer trigger for entry point ${JSON.stringify(id)}; timers: ${[...timers].map((k) => JSON.stringify(k)).join(', ') || '(none)'}`,
    { entryPointId: id },
  )
}
