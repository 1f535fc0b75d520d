/**
 * Dispatch limits shared by the engine and the pool wrapper (kept apart so neither imports the other).
 *
 * @module
 */

/** Most executions carried by one pool message. */
export const MAX_BATCH = 64
/**
 * Work a pool message should carry at least, in microseconds of its thread's time, when enough executions
 * are startable: a message costs tens of microseconds to send, wake a thread for and settle, so messages
 * of short executions are made big enough to pay for that (see `Dispatcher`).
 */
export const MESSAGE_WORK_US = 200
/** Pool messages per thread beyond `tasksPerThread`, kept for delegated executions. */
export const DELEGATION_HEADROOM = 16
/** How long a timed-out or cancelled handler may keep its thread before the thread is replaced. */
export const ABORT_GRACE_MS = 1000
