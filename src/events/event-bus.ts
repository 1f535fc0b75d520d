/**
 * The runtime's event bus (main thread only). Delivery is synchronous and in publication order: an event
 * published from inside a subscriber is queued and delivered after the current one has reached every
 * subscriber, so all subscribers see the same order, which is also the order of {@link EventBus.history}.
 *
 * @module
 */
import { AgentPoolError, describeValue, ErrorCode, InvalidArgumentError, serializeError } from '../errors.js'
import type { AgentEvent, EventFilter, EventHandler, EventInput, EventType } from './event-types.js'

/** Options of {@link EventBus}. */
export interface EventBusOptions {
  /** How many recent events {@link EventBus.history} keeps (a ring; the oldest is dropped first). @default 1000 */
  historySize?: number
}

/** What {@link EventBus.subscribe} takes: a filter and the handler. */
export interface SubscribeOptions<T extends string = EventType> extends EventFilter<T> {
  handler: EventHandler<T>
}

/** What {@link EventBus.history} takes. */
export interface HistoryQuery<T extends string = EventType> extends EventFilter<T> {
  /** At most this many events, the most recent ones. @default every retained match */
  limit?: number
}

/** What {@link EventBus.waitFor} takes. */
export interface WaitForOptions<T extends string = EventType> extends EventFilter<T> {
  types: readonly T[]
  /** Reject with code `AGENTPOOL_TIMEOUT` after this long; 0 waits without limit. @default 0 */
  timeoutMs?: number
}

interface Subscription {
  id: string
  types: ReadonlySet<string> | undefined
  streamId: string | undefined
  executionId: string | undefined
  correlationId: string | undefined
  handler: EventHandler
}

const DEFAULT_HISTORY_SIZE = 1000

/**
 * Publishes {@link AgentEvent}s to filtered subscribers and keeps a bounded history.
 * A subscriber that throws or rejects never stops delivery to the others: its error is published as a
 * `subscriber_error` event. Async subscribers are not awaited, so a slow one delays nobody.
 */
export class EventBus {
  private readonly subscriptions = new Map<string, Subscription>()
  /** The subscriptions as an array for delivery; replaced, never mutated, whenever they change. */
  private delivery: readonly Subscription[] = []
  private readonly ring: (AgentEvent | undefined)[]
  /** The id of a ring entry that {@link publishRecord} left without its id string. */
  private readonly pendingIds: Float64Array
  private ringNext = 0
  private ringCount = 0
  private nextEventId = 1
  private nextSubscriptionId = 1
  private readonly queue: AgentEvent[] = []
  private delivering = false

  constructor(options: EventBusOptions = {}) {
    const size = options.historySize ?? DEFAULT_HISTORY_SIZE
    if (!Number.isInteger(size) || size < 0) {
      throw new InvalidArgumentError(
        `EventBus historySize must be a non-negative integer (got ${describeValue(size)})`,
        { option: 'historySize', value: size },
      )
    }
    this.ring = new Array(size)
    this.pendingIds = new Float64Array(size)
  }

  /** Events retained for {@link history} at most. */
  get historySize(): number {
    return this.ring.length
  }

  /** Live subscriptions (including pending `waitFor`s). */
  get subscriberCount(): number {
    return this.subscriptions.size
  }

  /**
   * Calls `handler` for every later event that matches the filter.
   * @returns the subscription id for {@link unsubscribe}.
   */
  subscribe<T extends string = EventType>(options: SubscribeOptions<T>): string {
    if (typeof options?.handler !== 'function') {
      throw new InvalidArgumentError(
        `subscribe needs a handler function (got ${describeValue(options?.handler)})`,
      )
    }
    const sub = this.makeSubscription(options, options.handler as EventHandler)
    this.add(sub)
    return sub.id
  }

  /** Stops a subscription. @returns whether it existed. */
  unsubscribe(subscriptionId: string): boolean {
    return this.remove(subscriptionId)
  }

  /**
   * Stamps `input` with an id and timestamp, records it in the history and delivers it to every matching
   * subscriber.
   * @returns the published event.
   */
  publish<T extends string>(input: EventInput<T>): AgentEvent<T> {
    if (typeof input?.type !== 'string' || input.type === '') {
      throw new InvalidArgumentError(
        `an event needs a non-empty string type (got ${describeValue(input?.type)})`,
      )
    }
    if (typeof input.streamId !== 'string') {
      throw new InvalidArgumentError(
        `event ${JSON.stringify(input.type)} needs a string streamId (got ${describeValue(input.streamId)})`,
      )
    }
    const event = {
      id: String(this.nextEventId++),
      type: input.type,
      streamId: input.streamId,
    } as AgentEvent<T>
    if (input.executionId !== undefined) event.executionId = input.executionId
    if (input.correlationId !== undefined) event.correlationId = input.correlationId
    event.data = input.data
    event.timestamp = input.timestamp ?? Date.now()
    this.remember(event)
    // With nobody subscribed and no delivery running there is nobody to hand it to: skip the queue.
    if (this.delivery.length === 0 && !this.delivering) return event
    this.queue.push(event)
    if (!this.delivering) this.deliverQueued()
    return event
  }

  /**
   * @internal What the record router publishes a worker's event with, and the engine its lifecycle
   * events: like {@link publish}, but returns nothing, and skips making the id string while nobody is
   * subscribed (a history read gives it). The caller has checked what {@link publish} checks.
   */
  publishRecord(
    type: string,
    streamId: string,
    executionId: string,
    correlationId: string | undefined,
    data: unknown,
    timestamp: number,
  ): void {
    if (
      this.delivery.length > 0 ||
      this.delivering ||
      correlationId === undefined ||
      typeof type !== 'string' ||
      type === '' ||
      typeof streamId !== 'string' ||
      typeof timestamp !== 'number'
    ) {
      this.publish({ type, streamId, executionId, correlationId, data, timestamp })
      return
    }
    // The same shape as publish() makes, with the id left empty until history() hands the event out.
    const event = { id: '', type, streamId, executionId, correlationId, data, timestamp } as AgentEvent
    const at = this.ringNext
    this.remember(event)
    if (this.ring.length > 0) this.pendingIds[at] = this.nextEventId
    this.nextEventId++
  }

  /** Retained events matching `query`, oldest first. */
  history<T extends string = EventType>(query: HistoryQuery<T> = {}): AgentEvent<T>[] {
    const limit = query.limit ?? Number.POSITIVE_INFINITY
    if (!(limit >= 0)) {
      throw new InvalidArgumentError(`history limit must be >= 0 (got ${describeValue(query.limit)})`)
    }
    const filter = this.makeSubscription(query, () => {})
    const out: AgentEvent<T>[] = []
    const size = this.ring.length
    for (let i = 1; i <= this.ringCount && out.length < limit; i++) {
      const at = (this.ringNext - i + size) % size
      const event = this.ring[at]!
      if (!matches(filter, event)) continue
      if (event.id === '') event.id = String(this.pendingIds[at])
      out.push(event as AgentEvent<T>)
    }
    return out.reverse()
  }

  /**
   * Resolves with the next published event matching the filter.
   * @throws AgentPoolError with code `AGENTPOOL_TIMEOUT` when `timeoutMs` passes first.
   */
  waitFor<T extends string>(options: WaitForOptions<T>): Promise<AgentEvent<T>> {
    if (!Array.isArray(options?.types) || options.types.length === 0) {
      throw new InvalidArgumentError('waitFor needs a non-empty types array')
    }
    const timeoutMs = options.timeoutMs ?? 0
    if (!(timeoutMs >= 0) || !Number.isFinite(timeoutMs)) {
      throw new InvalidArgumentError(
        `waitFor timeoutMs must be a finite number >= 0 (got ${describeValue(timeoutMs)})`,
      )
    }
    return new Promise((resolve, reject) => {
      let timer: NodeJS.Timeout | undefined
      const sub = this.makeSubscription(options, (event) => {
        this.remove(sub.id)
        if (timer !== undefined) clearTimeout(timer)
        resolve(event as AgentEvent<T>)
      })
      this.add(sub)
      if (timeoutMs > 0) {
        timer = setTimeout(() => {
          this.remove(sub.id)
          reject(
            new AgentPoolError(
              ErrorCode.TIMEOUT,
              `waitFor(${options.types.join(', ')}) saw no matching event within ${timeoutMs} ms`,
              {
                details: {
                  types: [...options.types],
                  streamId: options.streamId,
                  executionId: options.executionId,
                  correlationId: options.correlationId,
                  timeoutMs,
                },
              },
            ),
          )
        }, timeoutMs)
      }
    })
  }

  private makeSubscription(filter: EventFilter<string>, handler: EventHandler): Subscription {
    if (filter.types !== undefined && !Array.isArray(filter.types)) {
      throw new InvalidArgumentError(
        `event filter types must be an array of strings (got ${describeValue(filter.types)})`,
      )
    }
    return {
      id: `sub-${this.nextSubscriptionId++}`,
      types: filter.types === undefined ? undefined : new Set(filter.types),
      streamId: filter.streamId,
      executionId: filter.executionId,
      correlationId: filter.correlationId,
      handler,
    }
  }

  private add(sub: Subscription): void {
    this.subscriptions.set(sub.id, sub)
    this.delivery = [...this.subscriptions.values()]
  }

  private remove(subscriptionId: string): boolean {
    if (!this.subscriptions.delete(subscriptionId)) return false
    this.delivery = [...this.subscriptions.values()]
    return true
  }

  private remember(event: AgentEvent): void {
    const size = this.ring.length
    if (size === 0) return
    this.ring[this.ringNext] = event
    this.ringNext = (this.ringNext + 1) % size
    if (this.ringCount < size) this.ringCount++
  }

  private deliverQueued(): void {
    this.delivering = true
    try {
      for (let event = this.queue.shift(); event !== undefined; event = this.queue.shift()) {
        // The array in hand stays as it is: a subscription added while delivering sees only later events.
        for (const sub of this.delivery) {
          if (this.subscriptions.has(sub.id) && matches(sub, event)) this.call(sub, event)
        }
      }
    } finally {
      this.delivering = false
    }
  }

  private call(sub: Subscription, event: AgentEvent): void {
    try {
      const ret = sub.handler(event) as { then?: unknown } | null | undefined
      if (typeof ret?.then === 'function') {
        ;(ret as Promise<unknown>).then(undefined, (err: unknown) =>
          this.reportSubscriberError(sub.id, event, err),
        )
      }
    } catch (err) {
      this.reportSubscriberError(sub.id, event, err)
    }
  }

  private reportSubscriberError(subscriptionId: string, event: AgentEvent, err: unknown): void {
    if (event.type === 'subscriber_error') {
      // Reporting this as another event could loop forever; a warning is the end of the line.
      process.emitWarning(
        `agentpool event subscriber ${subscriptionId} failed while handling a subscriber_error: ${err instanceof Error ? err.message : describeValue(err)}`,
        'AgentPoolEventBus',
      )
      return
    }
    this.publish({
      type: 'subscriber_error',
      streamId: event.streamId,
      executionId: event.executionId,
      correlationId: event.correlationId,
      data: { subscriptionId, event: { id: event.id, type: event.type }, error: serializeError(err) },
    })
  }
}

function matches(sub: Subscription, event: AgentEvent): boolean {
  return (
    (sub.types === undefined || sub.types.has(event.type)) &&
    (sub.streamId === undefined || sub.streamId === event.streamId) &&
    (sub.executionId === undefined || sub.executionId === event.executionId) &&
    (sub.correlationId === undefined || sub.correlationId === event.correlationId)
  )
}
