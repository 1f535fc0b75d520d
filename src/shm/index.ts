/**
 * SharedArrayBuffer structures: lock, journal, allocator, hash index, history ring, the store that
 * combines them, the frame ring and the lease table. Knows nothing about agents.
 *
 * @module
 */
export * from './frame-ring.js'
export type { HistoryEntry, RawValue } from './history-ring.js'
export { type Lease, LeaseEnd, LeaseTable, MAX_LEASES } from './lease-table.js'
export { AtomicsLock, DEAD_TABLE_WORDS, DeadThreadTable, LOCK_WORDS, ownerThread } from './lock.js'
export {
  CommitStatus,
  EXPECT_ABSENT,
  EXPECT_ANY,
  type GroupMember,
  HEAD_MARK,
  HeadRef,
  hashBytes,
  type ReadCheck,
  ReadOut,
  ShmStore,
  StoreBusy,
  type StoreHandles,
  type StoreOptions,
  type StoreStats,
  ValueTag,
  WriteOp,
} from './store.js'
