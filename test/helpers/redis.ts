/**
 * The cluster tests' redis-server (see `bench/workloads/redis-server.ts`). Without a redis-server binary
 * the cluster suites are skipped with a message — except in CI (`CI` set), where `.ci/run` installs
 * Debian's redis-server and a missing binary fails the run loudly.
 */
import { redisServerPath } from '../../bench/workloads/redis-server.js'

export { freePort, startRedis, type TestRedis } from '../../bench/workloads/redis-server.js'

/**
 * Whether the cluster suites can run here: true with a binary; false (after saying why) without one
 * outside CI; throws in CI.
 */
export function redisAvailable(): boolean {
  if (redisServerPath() !== undefined) return true
  const why = 'redis-server is not installed (apt-get install redis-server)'
  if (process.env.CI) throw new Error(`cluster tests need a redis-server binary in CI: ${why}`)
  console.warn(`skipping the cluster tests: ${why}`)
  return false
}
