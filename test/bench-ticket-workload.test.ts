import { describe, expect, it } from 'vitest'
import {
  CATEGORIES,
  classifyTicket,
  makeTicketBatch,
  makeTicketJson,
  parseTicket,
} from '../bench/workloads/ticket-core.js'

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
