/**
 * Event triggers: an entry point with `{ type: 'event', eventTypes, streamId?, excludeOwn? }` starts one
 * execution per matching event on the runtime's bus. The execution's input is the event itself, its
 * correlation id is the event's, and `ctx.meta` is `{ trigger: 'event', eventType, eventId }`.
 *
 * Cascades: an execution started by an event has depth 1 + the depth of the execution that caused the
 * event (0 for outside triggers). Past {@link MAX_EVENT_DEPTH} nothing is started; a `trigger_refused`
 * event with code `AGENTPOOL_CASCADE_DEPTH` says what was cut and where, so a cycle of entry points feeding
 * each other ends instead of running forever. A trigger the runtime refuses (full queue, stopping) is
 * reported the same way. Entry points triggered by `trigger_refused` itself count on from the depth the
 * refusal reports, and the refusal that ends a cascade triggers nothing, so refusals cannot loop either.
 *
 * @module
 */
import type { ResolvedEntryPoint } from '../config/index.js'
import { CascadeDepthError } from '../errors.js'
import type { AgentEvent } from '../events/index.js'
import type { TriggerHost } from './host.js'
import { publishRefused, TRIGGER_REFUSED, type TriggerRefusedData } from './refused.js'

/** The deepest event cascade that still starts executions: depth 1 is an event from an outside-triggered execution. */
export const MAX_EVENT_DEPTH = 8

/** Subscribes every event-triggered entry point to the bus. */
export class EventTriggers {
  private readonly subscriptions: string[] = []

  constructor(
    private readonly host: TriggerHost,
    entryPoints: readonly ResolvedEntryPoint[],
  ) {
    for (const ep of entryPoints) {
      const t = ep.trigger
      if (t.type !== 'event') continue
      this.subscriptions.push(
        host.events.subscribe({
          types: t.eventTypes,
          streamId: t.streamId,
          handler: (event) => {
            if (t.excludeOwn && event.streamId === ep.id) return
            this.fire(ep.id, event)
          },
        }),
      )
    }
  }

  stop(): void {
    for (const id of this.subscriptions.splice(0)) this.host.events.unsubscribe(id)
  }

  private fire(entryPointId: string, event: AgentEvent): void {
    const depth = this.depthAfter(event)
    if (depth === undefined) return
    if (depth > MAX_EVENT_DEPTH) {
      this.refuse(
        entryPointId,
        event,
        depth,
        'cascade_depth',
        new CascadeDepthError(entryPointId, event.type, depth, MAX_EVENT_DEPTH),
      )
      return
    }
    this.host
      .trigger(entryPointId, event, {
        correlationId: event.correlationId,
        depth,
        meta: { trigger: 'event', eventType: event.type, eventId: event.id },
        onAdmitted: (executionId) =>
          this.host.events.publish({
            type: 'trigger_fired',
            streamId: entryPointId,
            executionId,
            correlationId: event.correlationId,
            data: { entryPointId, triggerType: 'event' },
          }),
      })
      .then(undefined, (err: unknown) => this.refuse(entryPointId, event, depth, 'refused', err))
  }

  /**
   * The depth of an execution `event` would start. A `trigger_refused` event continues the cascade it
   * reports (so triggers reacting to each other's refusals still end), and the refusal that ends a cascade
   * starts nothing at all (`undefined`).
   */
  private depthAfter(event: AgentEvent): number | undefined {
    if (event.type === TRIGGER_REFUSED) {
      const data = event.data as TriggerRefusedData
      if (data.reason === 'cascade_depth') return undefined
      if (data.depth !== undefined) return data.depth + 1
    }
    return (event.executionId === undefined ? 0 : this.host.depthOf(event.executionId)) + 1
  }

  private refuse(
    entryPointId: string,
    event: AgentEvent,
    depth: number,
    reason: 'cascade_depth' | 'refused',
    err: unknown,
  ): void {
    const cause = { id: event.id, type: event.type, streamId: event.streamId, executionId: event.executionId }
    publishRefused(
      this.host,
      { entryPointId, triggerType: 'event', reason, cause, depth },
      err,
      event.correlationId,
    )
  }
}
