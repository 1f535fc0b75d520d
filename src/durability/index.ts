/**
 * Durability: the SQLite run log that makes a runtime's admissions, results, state and goal counters
 * survive a process kill, and what `start()` restores from it (see `docs/reliability.md`). The only door
 * into this folder.
 *
 * @module
 */

export { decodeRecord } from './codec.js'
export { type LoggedRecord, LogStore, type RunFilter } from './log-store.js'
export { RunLog, type RunLogOptions } from './run-log.js'
