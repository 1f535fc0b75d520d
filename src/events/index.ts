/**
 * Events: the {@link EventBus} and the typed event vocabulary.
 *
 * @module
 */

export type { EventBusOptions, HistoryQuery, SubscribeOptions, WaitForOptions } from './event-bus.js'
export { EventBus } from './event-bus.js'
export type {
  AgentEvent,
  AgentEventOf,
  BuiltInEvents,
  BuiltInEventType,
  CriterionProgressSummary,
  ErrorSummary,
  EventData,
  EventFilter,
  EventHandler,
  EventInput,
} from './event-types.js'
export { BUILT_IN_EVENT_TYPES, EventType } from './event-types.js'
