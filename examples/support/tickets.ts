/** Synthetic tickets for the demo: deterministic (seeded), with their true category as `label`. */
import type { Category, Ticket } from './handlers/classify.js'

const SUBJECTS: Record<Category, string[]> = {
  howto: ['How do I export a report?', 'Where can I find the API keys?', 'How to setup SSO'],
  bug: ['Dashboard crash on load', 'Export fails with error 500', 'Search is broken'],
  billing: ['Refund for a double charge', 'Invoice address is wrong', 'Payment declined'],
  account: ['Locked out after password reset', 'Login loops forever', 'Email change request'],
}

/** A small PRNG (mulberry32) so every run sends the same tickets. */
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

export function syntheticTickets(count: number, seed = 7): (Ticket & { label: Category })[] {
  const rand = prng(seed)
  const categories = Object.keys(SUBJECTS) as Category[]
  return Array.from({ length: count }, (_, i) => {
    const label = categories[Math.floor(rand() * categories.length)]!
    const subjects = SUBJECTS[label]
    // One ticket in ten has a subject from another category: the classifier gets it wrong on purpose.
    const misleading = rand() < 0.1 ? SUBJECTS[categories[(categories.indexOf(label) + 1) % 4]!] : subjects
    const subject = misleading[Math.floor(rand() * misleading.length)]!
    const r = rand()
    return {
      ticketId: `T-${1000 + i}`,
      customerId: `C-${Math.floor(rand() * 80)}`,
      subject,
      body: `${subject} — reported by a customer.`,
      priority: r < 0.05 ? 'urgent' : r < 0.6 ? 'normal' : 'low',
      label,
    }
  })
}
