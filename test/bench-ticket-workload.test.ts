import { availableParallelism } from 'node:os'
import { afterEach, describe, expect, it } from 'vitest'
import ticketsSuite from '../bench/tickets.bench.js'
import { startPlainTicketThreads } from '../bench/workloads/plain-threads.js'
import { createPlainStore, processTicketPlain } from '../bench/workloads/ticket-baseline.js'
import {
  CATEGORIES,
  classifyTicket,
  makeTicketBatch,
  makeTicketJson,
  parseTicket,
} from '../bench/workloads/ticket-core.js'
import { COUNTER_KEY, tallyKey } from '../bench/workloads/ticket-keys.js'
import { startTicketRuntime, TICKET_ENTRY, TicketSource } from '../bench/workloads/ticket-runtime.js'
import type { AgentRuntime } from '../src/index.js'
import { driveClosedLoop } from '../src/sweep/index.js'

describe('ticket workload data', () => {
  it('generates the same tickets for the same seed and different ones for another seed', () => {
    expect(makeTicketBatch(7, 20)).toEqual(makeTicketBatch(7, 20))
    expect(makeTicketJson(7, 3)).not.toBe(makeTicketJson(8, 3))
    expect(new Set(makeTicketBatch(7, 50)).size).toBe(50)
  })

  it('parses what it generates', () => {
    const t = parseTicket(makeTicketJson(1, 0))
    expect(t.ticketId).toBe('T-1-0')
    expect(t.createdAt).toBe('2026-11-01T00:00:00.000Z')
    expect(['free', 'pro', 'enterprise']).toContain(t.customer.tier)
  })

  it('refuses a ticket with a missing or mistyped field, naming the field', () => {
    const good = JSON.parse(makeTicketJson(1, 0))
    expect(() => parseTicket(JSON.stringify({ ...good, subject: 3 }))).toThrow(/subject must be a string/)
    expect(() => parseTicket(JSON.stringify({ ...good, customer: { id: 'c', tier: 'gold' } }))).toThrow(
      /customer/,
    )
    expect(() => parseTicket(JSON.stringify({ ...good, tags: 'x' }))).toThrow(/tags must be an array/)
    expect(() => parseTicket('{not json')).toThrow(SyntaxError)
  })
})

describe('ticket classification', () => {
  const tickets = makeTicketBatch(42, 600).map(parseTicket)

  it('is deterministic: the same ticket always gets the same classification', () => {
    const first = tickets.map(classifyTicket)
    const again = tickets.map(classifyTicket)
    expect(again).toEqual(first)
  })

  it('spreads a seeded stream over every category with confidences in [0, 1]', () => {
    const counts = new Map<string, number>()
    for (const t of tickets) {
      const c = classifyTicket(t)
      counts.set(c.category, (counts.get(c.category) ?? 0) + 1)
      expect(c.confidence).toBeGreaterThanOrEqual(0)
      expect(c.confidence).toBeLessThanOrEqual(1)
      expect(c.urgent).toBe(c.category === 'outage' || t.customer.tier === 'enterprise')
    }
    expect([...counts.keys()].sort()).toEqual([...CATEGORIES].sort())
    expect([...counts.values()].reduce((a, b) => a + b, 0)).toBe(600)
  })

  it('follows the ticket text: a ticket made of one category’s keywords lands in that category', () => {
    const base = parseTicket(makeTicketJson(1, 0))
    const text = {
      billing: 'invoice refund charge payment card billing price plan',
      outage: 'down outage unavailable timeout incident unreachable latency 503',
      account: 'login password reset locked sso account access email',
    }
    for (const [category, words] of Object.entries(text)) {
      expect(classifyTicket({ ...base, subject: words, body: `${words} ${words}`, tags: [] }).category).toBe(
        category,
      )
    }
  })
})

describe('ticket workload through agentpool', () => {
  let runtime: AgentRuntime | undefined
  afterEach(async () => {
    await runtime?.stop({ drain: false })
    runtime = undefined
  })

  it('classifies like the single-thread baseline and keeps exact counter and tally totals', async () => {
    runtime = await startTicketRuntime({
      threads: 2,
      tasksPerThread: 4,
      maxConcurrent: 16,
      isolation: { stream: 'synchronized', global: 'shared' },
    })
    const tickets = makeTicketBatch(9, 120)
    const store = createPlainStore()
    const expected = tickets.map((t) => processTicketPlain(t, store))
    const results = await Promise.all(tickets.map((t) => runtime!.triggerAndWait(TICKET_ENTRY, t)))
    expect(results.map((r) => r.status)).toEqual(tickets.map(() => 'completed'))
    const outputs = results.map(
      (r) => r.output as { ticketId: string; category: string; urgent: boolean; seen: number },
    )
    expect(outputs.map(({ ticketId, category, urgent }) => ({ ticketId, category, urgent }))).toEqual(
      expected.map(({ ticketId, category, urgent }) => ({ ticketId, category, urgent })),
    )
    expect(outputs.map((o) => o.seen).sort((a, b) => a - b)).toEqual(tickets.map((_, i) => i + 1))
    const shared = runtime.state.createBuffer('bench-test-reader', TICKET_ENTRY, {
      stream: 'shared',
      global: 'shared',
    })
    expect(shared.read(COUNTER_KEY, { scope: 'stream' })).toBe(120)
    for (const category of CATEGORIES) {
      expect(shared.read(tallyKey(category), { scope: 'global' }) ?? 0).toBe(
        store.global.get(tallyKey(category)) ?? 0,
      )
    }
    expect(runtime.outcomes.evaluateGoalProgress().metrics.totalDecisions).toBe(120)
  })

  it('the closed-loop driver counts only what completes in its window and never loses an execution', async () => {
    runtime = await startTicketRuntime({
      threads: 2,
      tasksPerThread: 2,
      maxConcurrent: 4,
      isolation: { stream: 'shared', global: 'shared' },
    })
    const source = new TicketSource(3, 16)
    const load = await driveClosedLoop(runtime, {
      entry: TICKET_ENTRY,
      inflight: 4,
      warmupMs: 50,
      durationMs: 200,
      next: () => source.next(),
    })
    expect(load.failed).toBe(0)
    expect(load.latenciesMs).toHaveLength(load.completed)
    expect(load.totalCompleted).toBeGreaterThanOrEqual(load.completed)
    expect(runtime.stats().streams[TICKET_ENTRY]!.completed).toBe(load.totalCompleted)
  })
})

describe('plain ticket threads', () => {
  it('processes exactly the tickets asked for, split over real worker threads', async () => {
    const threads = await startPlainTicketThreads(2, 1)
    try {
      await threads.process(7)
      await threads.process(1)
      expect(threads.processed).toBe(8)
    } finally {
      await threads.close()
    }
  })
})

describe('tickets suite', () => {
  it('returns tickets_vs_threads (target 0.85) and tickets_vs_single_thread (target 0.75 × cores), each measured side by side', async () => {
    const lines: string[] = []
    const entries = await ticketsSuite.run({ quick: true, log: (m) => lines.push(m) })
    const cores = availableParallelism()
    expect(entries).toMatchObject([
      {
        name: 'tickets_vs_threads',
        unit: 'tickets/s',
        baseline: { name: `plain loop on ${cores} worker threads` },
        target: 0.85,
      },
      {
        name: 'tickets_vs_single_thread',
        unit: 'tickets/s',
        baseline: { name: 'plain loop, one thread' },
        target: 0.75 * cores,
      },
    ])
    for (const e of entries) {
      expect(e.contender.name).toMatch(/^agentpool triggerAndWait, \d+ threads$/)
      expect(e.ratio).toBeCloseTo(e.contender.hz / e.baseline.hz, 9)
      expect(lines.filter((l) => l.startsWith(`${e.name}: round `))).toHaveLength(3)
      // Ticket executions send records (decision, outcome, state changes, end): a cost per record is accounted.
      expect(e.contender.cpu!.mainUsPerRecord).toBeGreaterThan(0)
    }
    expect(lines.at(-1)).toMatch(/plain loop on \d+ threads ran ×\d+\.\d\d of one thread/)
  })
})
