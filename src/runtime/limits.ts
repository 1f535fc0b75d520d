/**
 * Dispatch limits shared by the engine and the pool wrapper (kept apart so neither imports the other).
 *
 * @module
 */

/** Most executions carried by one pool message. */
export const MAX_BATCH = 64
/** Pool messages per thread beyond `tasksPerThread`, kept for delegated executions. */
export const DELEGATION_HEADROOM = 16
/** How long a timed-out or cancelled handler may keep its thread before the thread is replaced. */
export const ABORT_GRACE_MS = 1000
