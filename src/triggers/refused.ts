/**
 * The `trigger_refused` event: a timer tick or a matching event that started no execution, and why.
 * Published on the stream of the entry point that would have run, so `history({ streamId })` shows it.
 *
 * @module
 */
import { serializeError } from '../errors.js'
import type { TriggerHost } from './host.js'

/** The event type published when a timer or event trigger started nothing. */
export const TRIGGER_REFUSED = 'trigger_refused'

/** Payload of a {@link TRIGGER_REFUSED} event. */
export interface TriggerRefusedData {
  entryPointId: string
  triggerType: 'timer' | 'event'
  /**
   * `at_capacity`: a timer tick found the stream at `maxConcurrent`. `cascade_depth`: the event cascade
   * is deeper than `MAX_EVENT_DEPTH`. `refused`: the runtime refused the trigger (full queue, stopping).
   */
  reason: 'at_capacity' | 'cascade_depth' | 'refused'
  /** The error behind `cascade_depth` and `refused`. */
  error?: { code: string; message: string }
  /** Timers: the slot that was skipped (epoch ms). */
  scheduledAt?: number
  /** Event triggers: the event that would have started the execution, and the depth it would have had. */
  cause?: { id: string; type: string; streamId: string; executionId?: string }
  depth?: number
}

/** Publishes a {@link TRIGGER_REFUSED} event; `err` (any thrown value) becomes `data.error`. */
export function publishRefused(
  host: TriggerHost,
  data: Omit<TriggerRefusedData, 'error'>,
  err?: unknown,
  correlationId?: string,
): void {
  const full: TriggerRefusedData = { ...data }
  if (err !== undefined) {
    const { code, name, message } = serializeError(err)
    full.error = { code: code ?? name, message }
  }
  host.events.publish({ type: TRIGGER_REFUSED, streamId: data.entryPointId, correlationId, data: full })
}
