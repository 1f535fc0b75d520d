/** State keys and goal ids of the ticket workload, shared by the handler, the baseline and the drivers. */

import type { Category } from './ticket-core.js'

/** Stream-scope counter of tickets seen. */
export const COUNTER_KEY = 'tickets_seen'

/** Global-scope tally key of one category. */
export function tallyKey(category: Category): string {
  return `tally.${category}`
}

/** The goal criterion every classification decision counts toward. */
export const GOAL_CRITERION = 'tickets_classified'
