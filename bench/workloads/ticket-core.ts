/**
 * The CPU part of the support-ticket workload: generating deterministic tickets, parsing one from JSON
 * and classifying it. Pure and synchronous, so the agentpool handler (`ticket-handler.ts`) and the
 * single-thread baseline (`tickets.bench.ts`) run exactly the same code.
 *
 * Classification is a small linear model over hashed unigram and bigram features, evaluated in
 * {@link CLASSIFY_PASSES} salted passes: a fixed amount of work (a few hundred microseconds per ticket),
 * the same for a given ticket on every run and every thread.
 */

/** The categories a ticket is classified into. */
export const CATEGORIES = ['howto', 'bug', 'billing', 'account', 'outage', 'feature'] as const

/** One ticket category. */
export type Category = (typeof CATEGORIES)[number]

/** A support ticket as a Zendesk-style webhook delivers it. */
export interface Ticket {
  ticketId: string
  subject: string
  body: string
  customer: { id: string; tier: 'free' | 'pro' | 'enterprise' }
  tags: string[]
  createdAt: string
}

/** What {@link classifyTicket} concludes. */
export interface Classification {
  category: Category
  /** Share of the winning score in the sum of positive scores, in [0, 1]. */
  confidence: number
  /** Escalate: an enterprise customer or an outage. */
  urgent: boolean
}

/** Salted feature-hashing passes per ticket; sets the CPU cost of one classification. */
export const CLASSIFY_PASSES = 24

const FEATURE_BITS = 9
const FEATURES = 1 << FEATURE_BITS
const TIERS = ['free', 'pro', 'enterprise'] as const

const KEYWORDS: Record<Category, readonly string[]> = {
  howto: ['how', 'configure', 'setup', 'guide', 'documentation', 'example', 'possible', 'steps'],
  bug: ['error', 'crash', 'broken', 'exception', 'fails', 'stack', 'regression', 'unexpected'],
  billing: ['invoice', 'charge', 'refund', 'payment', 'card', 'plan', 'price', 'billing'],
  account: ['login', 'password', 'reset', 'locked', 'sso', 'email', 'account', 'access'],
  outage: ['down', 'unavailable', 'timeout', 'outage', 'latency', 'unreachable', '503', 'incident'],
  feature: ['request', 'would', 'feature', 'suggest', 'add', 'support', 'roadmap', 'wish'],
}

const FILLER = [
  'the',
  'our',
  'team',
  'since',
  'yesterday',
  'when',
  'we',
  'try',
  'to',
  'use',
  'dashboard',
  'api',
  'with',
  'project',
  'after',
  'update',
  'please',
  'help',
  'thanks',
  'again',
  'customers',
  'report',
  'that',
  'it',
  'is',
  'not',
  'working',
  'for',
  'some',
  'users',
  'in',
  'production',
  'environment',
  'and',
  'staging',
]

/** mulberry32: a small, fast, seeded PRNG; the same seed gives the same tickets everywhere. */
function prng(seed: number): () => number {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

function pick<T>(rand: () => number, items: readonly T[]): T {
  return items[Math.floor(rand() * items.length)]!
}

function sentence(rand: () => number, category: Category, words: number): string {
  const out: string[] = []
  for (let i = 0; i < words; i++)
    out.push(rand() < 0.25 ? pick(rand, KEYWORDS[category]) : pick(rand, FILLER))
  return out.join(' ')
}

/** The JSON text of ticket number `index` of the stream seeded by `seed`. */
export function makeTicketJson(seed: number, index: number): string {
  const rand = prng((seed * 2654435761 + index) >>> 0)
  const category = pick(rand, CATEGORIES)
  const ticket: Ticket = {
    ticketId: `T-${seed}-${index}`,
    subject: sentence(rand, category, 8),
    body: [sentence(rand, category, 30), sentence(rand, category, 30), sentence(rand, category, 20)].join(
      '. ',
    ),
    customer: { id: `C-${Math.floor(rand() * 5000)}`, tier: pick(rand, TIERS) },
    tags: [pick(rand, FILLER), pick(rand, KEYWORDS[category])],
    createdAt: new Date(Date.UTC(2026, 10, 1) + index * 60_000).toISOString(),
  }
  return JSON.stringify(ticket)
}

/** `count` tickets (JSON text) of the stream seeded by `seed`, numbered from 0. */
export function makeTicketBatch(seed: number, count: number): string[] {
  return Array.from({ length: count }, (_, i) => makeTicketJson(seed, i))
}

/** Parses a ticket's JSON text; a missing or mistyped field is an `Error` naming the field. */
export function parseTicket(json: string): Ticket {
  const raw = JSON.parse(json) as Record<string, unknown>
  for (const field of ['ticketId', 'subject', 'body', 'createdAt'] as const) {
    if (typeof raw[field] !== 'string')
      throw new Error(`ticket field ${field} must be a string, got ${typeof raw[field]}`)
  }
  const customer = raw.customer as Ticket['customer'] | undefined
  if (typeof customer?.id !== 'string' || !TIERS.includes(customer.tier)) {
    throw new Error(`ticket field customer must be { id: string, tier: ${TIERS.join(' | ')} }`)
  }
  if (!Array.isArray(raw.tags)) throw new Error('ticket field tags must be an array')
  return raw as unknown as Ticket
}

/** FNV-1a over a string, salted. */
function hash(text: string, salt: number): number {
  let h = (0x811c9dc5 ^ salt) >>> 0
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i)
    h = Math.imul(h, 0x01000193)
  }
  return h >>> 0
}

/** Per pass and category, a weight per feature bucket: keywords weigh 1, everything else a little noise. */
const WEIGHTS: Float64Array[][] = Array.from({ length: CLASSIFY_PASSES }, (_, pass) => {
  const rand = prng(0x5eed + pass)
  return CATEGORIES.map((category) => {
    const w = new Float64Array(FEATURES)
    for (let i = 0; i < FEATURES; i++) w[i] = (rand() - 0.5) * 0.02
    for (const word of KEYWORDS[category]) w[hash(word, pass) & (FEATURES - 1)]! += 1
    return w
  })
})

/** Classifies a parsed ticket. Deterministic: the same ticket gets the same answer on every thread. */
export function classifyTicket(ticket: Ticket): Classification {
  const tokens = `${ticket.subject} ${ticket.body} ${ticket.tags.join(' ')}`.toLowerCase().split(/[^a-z0-9]+/)
  const scores = new Float64Array(CATEGORIES.length)
  const features = new Float64Array(FEATURES)
  for (let pass = 0; pass < CLASSIFY_PASSES; pass++) {
    features.fill(0)
    let previous = ''
    for (const token of tokens) {
      if (token === '') continue
      features[hash(token, pass) & (FEATURES - 1)]! += 1
      if (previous !== '') features[hash(`${previous} ${token}`, pass) & (FEATURES - 1)]! += 0.5
      previous = token
    }
    const weights = WEIGHTS[pass]!
    for (let c = 0; c < CATEGORIES.length; c++) {
      const w = weights[c]!
      let dot = 0
      for (let i = 0; i < FEATURES; i++) dot += features[i]! * w[i]!
      scores[c]! += dot
    }
  }
  let best = 0
  let positive = 0
  for (let c = 0; c < scores.length; c++) {
    if (scores[c]! > scores[best]!) best = c
    if (scores[c]! > 0) positive += scores[c]!
  }
  const category = CATEGORIES[best]!
  return {
    category,
    confidence: positive > 0 ? Math.max(0, scores[best]!) / positive : 0,
    urgent: category === 'outage' || ticket.customer.tier === 'enterprise',
  }
}
