import { defineHandler } from 'agentpool/handler'
import { CATEGORIES, classify, type Ticket } from './classify.js'

/** A new ticket from the Zendesk webhook: classify it, count it, escalate it if urgent. */
export default defineHandler(async (ticket: Ticket & { label?: string }, ctx) => {
  const { category, confidence } = classify(ticket)
  const decision = ctx.decide({
    intent: 'classify ticket',
    options: CATEGORIES.map((id) => ({ id })),
    chosen: category,
    reasoning:
      confidence > 0 ? `keyword match (confidence ${confidence.toFixed(2)})` : 'no keyword matched; default',
    criteria: ['classification_accuracy'],
    context: { ticketId: ticket.ticketId },
  })
  // The demo's synthetic tickets carry their true label, so the outcome can be judged here.
  ctx.recordOutcome(decision, {
    success: ticket.label === undefined || ticket.label === category,
    result: { category },
  })

  const received = ctx.state.update('tickets_received', (n: number = 0) => n + 1, { scope: 'stream' })
  ctx.state.update(`category:${category}`, (n: number = 0) => n + 1, { scope: 'global' })
  ctx.state.write(
    `ticket:${ticket.ticketId}`,
    { category, priority: ticket.priority, status: 'open' },
    { scope: 'global' },
  )

  if (category === 'billing')
    ctx.emit('billing_question', { ticketId: ticket.ticketId, customerId: ticket.customerId })
  let escalation: unknown
  if (ticket.priority === 'urgent') {
    const result = await ctx.trigger('escalate', {
      ticketId: ticket.ticketId,
      reason: `urgent ${category} ticket`,
    })
    escalation = result.status
    if (result.status !== 'completed')
      ctx.violateConstraint('urgent_escalated', { ticketId: ticket.ticketId })
  }
  return { category, received, escalation }
})
