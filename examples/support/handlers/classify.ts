/** The ticket model and a deterministic keyword classifier shared by the handlers. */
export interface Ticket {
  ticketId: string
  customerId: string
  subject: string
  body: string
  priority: 'low' | 'normal' | 'urgent'
}

export const CATEGORIES = ['howto', 'bug', 'billing', 'account'] as const
export type Category = (typeof CATEGORIES)[number]

const KEYWORDS: Record<Category, string[]> = {
  howto: ['how do i', 'how to', 'where can i', 'setup'],
  bug: ['error', 'crash', 'broken', 'fails'],
  billing: ['invoice', 'refund', 'charge', 'payment'],
  account: ['password', 'login', 'locked', 'email change'],
}

/** Scores each category by keyword hits; the best score wins, ties go to the first category. */
export function classify(ticket: Ticket): { category: Category; confidence: number } {
  const text = `${ticket.subject} ${ticket.body}`.toLowerCase()
  let best: Category = 'howto'
  let bestScore = -1
  let total = 0
  for (const c of CATEGORIES) {
    const score = KEYWORDS[c].reduce((n, k) => n + (text.includes(k) ? 1 : 0), 0)
    total += score
    if (score > bestScore) {
      best = c
      bestScore = score
    }
  }
  return { category: best, confidence: total === 0 ? 0 : bestScore / total }
}
