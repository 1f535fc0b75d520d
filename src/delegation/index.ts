/**
 * Delegation: the worker → main call behind `ctx.trigger` (comlink over a BroadcastChannel). The main
 * thread exposes the runtime's admission; a worker connects and awaits the delegated execution's result.
 * Its own folder, so a worker reaches it without loading the runtime. The only door into this folder.
 *
 * @module
 */
export {
  connectDelegation,
  type Delegate,
  type DelegationHandler,
  type DelegationParent,
  exposeDelegation,
} from './delegation.js'
