/**
 * `npm start`: runs the Tier-1 support agent end to end and prints what it did.
 *
 * It starts the runtime from agent.yaml, delivers a burst of signed webhooks for new tickets to its own
 * HTTP server (a few are retried deliveries, deduplicated by Idempotency-Key), sends follow-ups through
 * the API, lets the escalation timer sweep, then drains and prints per-stream figures and goal progress.
 */
import { createHmac, randomBytes } from 'node:crypto'
import { fileURLToPath } from 'node:url'
import { AgentRuntime, type ExecutionResult } from '../../src/index.js'
import { syntheticTickets } from './tickets.js'

const TICKETS = 300
const FOLLOW_UPS = 120
const CONCURRENT_DELIVERIES = 24

process.env.SUPPORT_WEBHOOK_SECRET ??= randomBytes(16).toString('hex')
const secret = process.env.SUPPORT_WEBHOOK_SECRET

const runtime = await AgentRuntime.fromConfigFile(fileURLToPath(new URL('./agent.yaml', import.meta.url)))
const events: Record<string, number> = {}
runtime.events.subscribe({
  handler: (e) => {
    events[e.type] = (events[e.type] ?? 0) + 1
  },
})

const t0 = performance.now()
await runtime.start()
console.log(`agentpool support agent: webhook server at ${runtime.webhookUrl}`)
console.log(
  `durable runs in ${runtime.config.durability?.path} (list them: agentpool runs examples/support/agent.yaml)`,
)

async function deliver(ticket: object, deliveryId: string): Promise<string> {
  const body = JSON.stringify(ticket)
  const signature = `sha256=${createHmac('sha256', secret).update(body).digest('hex')}`
  const res = await fetch(`${runtime.webhookUrl}/hooks/zendesk`, {
    method: 'POST',
    headers: {
      'content-type': 'application/json',
      'x-agentpool-signature': signature,
      'idempotency-key': deliveryId,
    },
    body,
  })
  if (res.status !== 202) throw new Error(`webhook answered ${res.status}: ${await res.text()}`)
  return ((await res.json()) as { executionId: string }).executionId
}

// New tickets: signed webhook deliveries, a few at a time; every tenth one is delivered twice.
const tickets = syntheticTickets(TICKETS)
const ticketRuns: Promise<ExecutionResult>[] = []
let redeliveries = 0
let deduplicated = 0
for (let i = 0; i < tickets.length; i += CONCURRENT_DELIVERIES) {
  const slice = tickets.slice(i, i + CONCURRENT_DELIVERIES)
  const ids = await Promise.all(slice.map((t) => deliver(t, `delivery-${t.ticketId}`)))
  for (const [j, t] of slice.entries()) {
    if ((i + j) % 10 === 0) {
      redeliveries++
      if ((await deliver(t, `delivery-${t.ticketId}`)) === ids[j]) deduplicated++
    }
  }
  ticketRuns.push(...ids.map((id) => runtime.waitForExecution(id)))
}
const ticketResults = await Promise.all(ticketRuns)

// Follow-ups through the API for some of those tickets.
const followUps = await Promise.all(
  tickets.slice(0, FOLLOW_UPS).map((t, i) =>
    runtime.triggerAndWait(
      'follow_ups',
      {
        ticketId: t.ticketId,
        message: i % 4 === 0 ? 'still not working' : 'thanks, that fixed it',
        waitedMinutes: (i * 7) % 90,
      },
      { correlationId: t.ticketId },
    ),
  ),
)

// Let the escalation sweep run at least twice more.
await runtime.events.waitFor({
  types: ['execution_completed'],
  streamId: 'escalation_check',
  timeoutMs: 5_000,
})
await runtime.events.waitFor({
  types: ['execution_completed'],
  streamId: 'escalation_check',
  timeoutMs: 5_000,
})

await runtime.stop({ drain: true })
const seconds = (performance.now() - t0) / 1000

const failed = [...ticketResults, ...followUps].filter((r) => r.status !== 'completed')
console.log(`\n${TICKETS} tickets by webhook, ${FOLLOW_UPS} follow-ups by API in ${seconds.toFixed(2)} s`)
console.log(`redelivered webhooks: ${redeliveries}, answered with the first execution id: ${deduplicated}`)
console.log(
  '\nper stream (failed and timed out count executions that did not complete; p50/p99 are end-to-end latency)',
)
console.log('stream              admitted  completed  failed  timed out  p50 ms  p99 ms')
for (const s of Object.values(runtime.stats().streams)) {
  console.log(
    `${s.streamId.padEnd(18)} ${String(s.admitted).padStart(9)} ${String(s.completed).padStart(10)} ${String(s.failed).padStart(7)} ${String(s.timedOut).padStart(10)} ${s.latencyMs.p50.toFixed(1).padStart(7)} ${s.latencyMs.p99.toFixed(1).padStart(7)}`,
  )
}
const progress = runtime.outcomes.evaluateGoalProgress()
console.log(
  `\ngoal: overall progress ${(progress.overallProgress * 100).toFixed(1)} %, recommendation: ${progress.recommendation}`,
)
for (const [id, c] of Object.entries(progress.criteria)) {
  console.log(
    `  ${id.padEnd(26)} ${c.met ? 'met    ' : 'not met'} progress ${(c.progress * 100).toFixed(1)} %`,
  )
}
const m = progress.metrics
const violations = progress.constraintViolations.reduce((n, v) => n + v.count, 0)
console.log(
  `  decisions ${m.totalDecisions}: outcomes successful ${m.successfulOutcomes}, unsuccessful ${m.failedOutcomes}`,
)
console.log(
  '  (an unsuccessful outcome is a decision that did not work out — a ticket the agent could not resolve —\n' +
    "   not a failed execution; progress is each criterion's success rate against its target, capped at\n" +
    '   100 %, so unsuccessful outcomes and 100 % progress stand together once the rate passes the target)',
)
console.log(
  `  constraints violated: ${progress.constraintViolations.length} distinct, ${violations} violation(s) in all${progress.constraintViolations.map((v) => `; ${v.constraintId} (${v.kind}) ×${v.count}`).join('')}`,
)
// The main thread reads shared state through a StreamBuffer of its own, like a handler would.
const inspector = runtime.state.createBuffer('main-inspector', 'escalate', 'shared')
const escalated = inspector.read('escalated_total', { scope: 'global' })
runtime.state.cleanupExecution('main-inspector')
console.log(`\nshared state: ${JSON.stringify(runtime.state.stats())}`)
console.log(`escalated to humans: ${String(escalated)}; events seen: ${JSON.stringify(events)}`)
if (failed.length > 0) {
  console.error(`\n${failed.length} executions did not complete:`, failed.slice(0, 3))
  process.exitCode = 1
}
