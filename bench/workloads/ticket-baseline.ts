/**
 * The single-thread baseline of the ticket workload: the identical parse and classification code as
 * `ticket-handler.ts`, with the counter, the tally, the decision and the outcome kept in plain Maps and
 * arrays on the calling thread.
 */

import { CATEGORIES, type Category, classifyTicket, parseTicket } from './ticket-core.js'
import { COUNTER_KEY, GOAL_CRITERION, tallyKey } from './ticket-keys.js'

/** How many decisions and outcomes the baseline keeps, like the aggregator's bounded retention. */
const RETAIN = 1000

/** In-memory stand-ins for the stream scope, the global scope and the outcome aggregator. */
export interface PlainTicketStore {
  stream: Map<string, number>
  global: Map<string, number>
  decisions: {
    intent: string
    options: { id: Category }[]
    chosen: Category
    reasoning: string
    criteria: string[]
  }[]
  outcomes: { decision: number; success: boolean; result: { category: Category; urgent: boolean } }[]
  decisionsTotal: number
}

/** An empty store. */
export function createPlainStore(): PlainTicketStore {
  return { stream: new Map(), global: new Map(), decisions: [], outcomes: [], decisionsTotal: 0 }
}

function bump(map: Map<string, number>, key: string): number {
  const n = (map.get(key) ?? 0) + 1
  map.set(key, n)
  return n
}

function retain<T>(list: T[], item: T): void {
  list.push(item)
  if (list.length > RETAIN) list.splice(0, list.length - RETAIN)
}

/** Processes one ticket exactly as the handler does, on this thread. */
export function processTicketPlain(json: string, store: PlainTicketStore) {
  const ticket = parseTicket(json)
  const c = classifyTicket(ticket)
  const seen = bump(store.stream, COUNTER_KEY)
  bump(store.global, tallyKey(c.category))
  const decision = store.decisionsTotal++
  retain(store.decisions, {
    intent: 'classify ticket',
    options: CATEGORIES.map((id) => ({ id })),
    chosen: c.category,
    reasoning: `highest feature score (confidence ${c.confidence.toFixed(2)})`,
    criteria: [GOAL_CRITERION],
  })
  retain(store.outcomes, { decision, success: true, result: { category: c.category, urgent: c.urgent } })
  return { ticketId: ticket.ticketId, category: c.category, urgent: c.urgent, seen }
}
