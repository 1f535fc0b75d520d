/**
 * Shared state: `SharedBufferManager` (regions, buffers, history, stats) and `StreamBuffer` (one
 * execution's view of the execution, stream and global scopes). Knows nothing about Piscina.
 *
 * @module
 */
export { SharedBufferManager } from './shared-buffer-manager.js'
export { StateTransaction, StreamBuffer } from './stream-buffer.js'
export type {
  BufferIsolation,
  ScopeOption,
  StateChange,
  StateConflictInfo,
  StateHandles,
  StateHooks,
  StateManagerOptions,
  StateScope,
  StateStats,
} from './types.js'
