/**
 * The support-ticket execution the benchmarks run through agentpool: parse the ticket, classify it
 * (the CPU part, shared with the single-thread baseline), bump the stream's ticket counter, tally the
 * category in the global scope, and record one decision with its outcome.
 *
 * The entry point's isolation decides how the two `update`s behave (`synchronized` for the stream
 * counter in `tickets.bench.ts`; every level in the sweep).
 */

import { defineHandler } from '../../src/handler.js'
import { CATEGORIES, classifyTicket, parseTicket } from './ticket-core.js'
import { COUNTER_KEY, GOAL_CRITERION, tallyKey } from './ticket-keys.js'

/** Input: the ticket's JSON text, as a webhook body arrives. */
export default defineHandler((input: string, ctx) => {
  const ticket = parseTicket(input)
  const c = classifyTicket(ticket)
  const seen = ctx.state.update(COUNTER_KEY, (n: number | undefined) => (n ?? 0) + 1, { scope: 'stream' })
  ctx.state.update(tallyKey(c.category), (n: number | undefined) => (n ?? 0) + 1, { scope: 'global' })
  const decision = ctx.decide({
    intent: 'classify ticket',
    options: CATEGORIES.map((id) => ({ id })),
    chosen: c.category,
    reasoning: `highest feature score (confidence ${c.confidence.toFixed(2)})`,
    criteria: [GOAL_CRITERION],
  })
  ctx.recordOutcome(decision, { success: true, result: { category: c.category, urgent: c.urgent } })
  return { ticketId: ticket.ticketId, category: c.category, urgent: c.urgent, seen }
})
