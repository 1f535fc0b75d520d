import { defineHandler } from 'agentpool/handler'

interface FollowUp {
  ticketId: string
  message: string
  /** Minutes the customer waited for this reply (synthetic). */
  waitedMinutes: number
}

/** A customer's follow-up through the API: answer it and say whether the problem is resolved. */
export default defineHandler(async (input: FollowUp, ctx) => {
  const ticket = ctx.state.read(`ticket:${input.ticketId}`, { scope: 'global' }) as
    | { category: string; status: string }
    | undefined
  const resolved = ticket !== undefined && !/still|again|not working/i.test(input.message)
  const decision = ctx.decide({
    intent: 'answer follow-up',
    options: [{ id: 'resolve' }, { id: 'keep_open' }],
    chosen: resolved ? 'resolve' : 'keep_open',
    reasoning:
      ticket === undefined
        ? 'unknown ticket'
        : resolved
          ? 'customer confirms the fix'
          : 'customer still affected',
    criteria: ['resolve_rate'],
  })
  ctx.recordOutcome(decision, { success: resolved })
  if (input.waitedMinutes > 60)
    ctx.violateConstraint('reply_within_sla', { ticketId: input.ticketId, waited: input.waitedMinutes })
  if (resolved) {
    ctx.state.update(
      `ticket:${input.ticketId}`,
      (t: Record<string, unknown> | undefined) => ({ ...t, status: 'resolved' }),
      {
        scope: 'global',
      },
    )
  }
  ctx.state.update('follow_ups_answered', (n: number = 0) => n + 1, { scope: 'stream' })
  return { resolved }
})
