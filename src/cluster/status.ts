/**
 * The cluster's status read from Redis without joining as a host (what `agentpool cluster status`
 * prints): it opens the queues to count their jobs and reads the cluster counters, then disconnects.
 *
 * @module
 */
import { Queue } from 'bullmq'
import type { ResolvedRuntimeConfig } from '../config/index.js'
import { InvalidArgumentError } from '../errors.js'
import type { GoalProgress } from '../outcomes/index.js'
import { type ClusterStats, clusterGoalProgress, clusterStatsOf, queueCounts } from './cluster-stats.js'
import { connectAdmission, redisOptionsOf } from './connection.js'
import { ClusterCounters } from './counters.js'
import { keyPrefix } from './job.js'

/**
 * Hosts alive, per entry point queue counts and ends, and goal progress, of the cluster `config` names.
 * @throws InvalidArgumentError without a cluster section; ClusterUnavailableError when Redis cannot be reached.
 */
export async function readClusterStatus(
  config: ResolvedRuntimeConfig,
): Promise<{ stats: ClusterStats; goal: GoalProgress }> {
  const options = config.cluster
  if (options === undefined) {
    throw new InvalidArgumentError(`${config.source ?? 'the config'} has no cluster section`)
  }
  const client = await connectAdmission(redisOptionsOf(options))
  const prefix = keyPrefix(options)
  const queues = new Map(
    config.entryPoints.map((ep) => [ep.id, new Queue(ep.id, { connection: client, prefix })] as const),
  )
  try {
    const counters = new ClusterCounters(client, prefix, 'status')
    const [read, counts] = await Promise.all([counters.read(), queueCounts(queues)])
    return { stats: clusterStatsOf(read, counts), goal: clusterGoalProgress(config, read.counters) }
  } finally {
    await Promise.all([...queues.values()].map((q) => q.close()))
    client.disconnect()
  }
}
