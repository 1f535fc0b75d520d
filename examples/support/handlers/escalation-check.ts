import { defineHandler } from 'agentpool/handler'

/** The periodic sweep: counts the tickets handed to humans so far and reports a backlog if it grows. */
export default defineHandler(async (_input, ctx) => {
  const escalated = (ctx.state.read('escalated_total', { scope: 'global' }) as number | undefined) ?? 0
  const sweeps = ctx.state.update('sweeps', (n: number = 0) => n + 1, { scope: 'stream' })
  if (escalated > 50)
    ctx.reportProblem('medium', `${escalated} tickets wait for a human`, { suggestedFix: 'add staff' })
  return { sweeps, escalated }
})
