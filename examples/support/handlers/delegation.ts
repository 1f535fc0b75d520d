import { defineHandler } from 'agentpool/handler'

/** Billing questions delegated through the event bus (by this agent or others) get a billing note. */
export default defineHandler(async (event: { data: { ticketId: string } }, ctx) => {
  ctx.state.update('billing_notes', (n: number = 0) => n + 1, { scope: 'stream' })
  return { noted: event.data.ticketId }
})
