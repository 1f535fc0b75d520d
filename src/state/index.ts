/**
 * Shared state: `SharedBufferManager` (regions, buffers, history, stats) and `StreamBuffer` (one
 * execution's view of the execution, stream and global scopes). Knows nothing about Piscina.
 *
 * @module
 */
export { type Lease, ownerThread } from '../shm/index.js'
export { ConflictTurns, TURN_AFTER } from './conflict-turns.js'
export { SharedBufferManager } from './shared-buffer-manager.js'
export { StreamBuffer } from './stream-buffer.js'
export { StateTransaction } from './transaction.js'
export type {
  BufferIsolation,
  ScopeOption,
  StateChange,
  StateConflictInfo,
  StateHandles,
  StateHooks,
  StateManagerOptions,
  StateStats,
} from './types.js'
export { StateScope } from './types.js'
