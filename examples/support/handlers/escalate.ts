import { defineHandler } from 'agentpool/handler'

/** Hands a ticket to a human; other entry points delegate here with ctx.trigger. */
export default defineHandler(async (input: { ticketId: string; reason: string }, ctx) => {
  const total = ctx.state.update('escalated_total', (n: number = 0) => n + 1, { scope: 'global' })
  ctx.emit('ticket_escalated', { ticketId: input.ticketId, reason: input.reason })
  return { queuedForHuman: true, position: total }
})
