/**
 * Cluster mode: admission and results through BullMQ queues on Redis, so several processes started with
 * one config run one agent. The only door into this folder.
 *
 * @module
 */

export type { RuntimeCluster } from './api.js'
export { ClusterHost } from './cluster-host.js'
export type { ClusterEntryPointStats, ClusterStats } from './cluster-stats.js'
export { redisOptionsOf } from './connection.js'
export { jobDataOf, jobOptionsOf } from './job.js'
export { readClusterStatus } from './status.js'
export type { ClusterTimerStats } from './timers.js'
