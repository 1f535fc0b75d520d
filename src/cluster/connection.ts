/**
 * How a host reaches Redis: the config's `cluster.redis` (a URL or its parts) or `REDIS_URL`, turned into
 * ioredis options, and the one shared connection admissions go through (it fails fast while Redis is
 * down instead of queueing commands). Main thread only.
 *
 * @module
 */
import type { RedisOptions } from 'bullmq'
import { type RedisOptions as IoredisOptions, Redis } from 'ioredis'
import type { RedisConnectionOptions, ResolvedClusterOptions } from '../config/index.js'
import { ClusterUnavailableError, ConfigError } from '../errors.js'

/** How long `start()` waits for Redis before it gives up with `AGENTPOOL_CLUSTER_UNAVAILABLE`. */
export const CONNECT_LIMIT_MS = 10_000

/** Reconnection backoff of every connection: 50 ms more per attempt, at most 1 s, for ever. */
function retryStrategy(times: number): number {
  return Math.min(times * 50, 1000)
}

/** ioredis options of the config's `cluster.redis`, or of `REDIS_URL` when it has none. */
export function redisOptionsOf(
  cluster: ResolvedClusterOptions,
  env: NodeJS.ProcessEnv = process.env,
): RedisOptions {
  const redis = cluster.redis ?? env.REDIS_URL
  const path = cluster.redis === undefined ? 'REDIS_URL' : 'cluster.redis'
  if (redis === undefined || redis === '') {
    throw new ConfigError([{ path: 'cluster.redis', message: 'is not set and neither is REDIS_URL' }])
  }
  const parts = typeof redis === 'string' ? partsOfUrl(redis, path) : redis
  const options: RedisOptions = {
    host: parts.host ?? '127.0.0.1',
    port: parts.port ?? 6379,
    db: parts.db ?? 0,
    retryStrategy,
  }
  if (parts.username !== undefined) options.username = parts.username
  if (parts.password !== undefined) options.password = parts.password
  if (parts.tls === true) options.tls = {}
  return options
}

function partsOfUrl(text: string, path: string): RedisConnectionOptions {
  let url: URL
  try {
    url = new URL(text)
  } catch {
    url = new URL('invalid:')
  }
  if (url.protocol !== 'redis:' && url.protocol !== 'rediss:') {
    throw new ConfigError([{ path, message: 'must be a redis:// or rediss:// URL', value: redact(text) }])
  }
  const parts: RedisConnectionOptions = { tls: url.protocol === 'rediss:' }
  if (url.hostname !== '') parts.host = url.hostname.replace(/^\[|\]$/g, '')
  if (url.port !== '') parts.port = Number(url.port)
  if (url.username !== '') parts.username = decodeURIComponent(url.username)
  if (url.password !== '') parts.password = decodeURIComponent(url.password)
  const db = url.pathname.replace(/^\//, '')
  if (db !== '') {
    if (!/^\d+$/.test(db)) {
      throw new ConfigError([
        { path, message: 'has a database path that is not a number', value: redact(text) },
      ])
    }
    parts.db = Number(db)
  }
  return parts
}

/** A URL without its password, for error messages. */
function redact(text: string): string {
  return text.replace(/\/\/([^:@/]*):[^@/]*@/, '//$1:***@')
}

/**
 * The connection admissions and queries use: commands fail at once while it is not connected (no offline
 * queue), so a trigger during an outage is refused quickly instead of waiting for Redis to come back.
 */
export async function connectAdmission(options: RedisOptions): Promise<Redis> {
  const client = new Redis({
    ...(options as IoredisOptions),
    enableOfflineQueue: false,
    maxRetriesPerRequest: 1,
    lazyConnect: true,
  })
  // ioredis reports each failed reconnection as an error event; they are expected during an outage.
  client.on('error', () => {})
  let timer: NodeJS.Timeout | undefined
  try {
    await Promise.race([
      client.connect(),
      new Promise((_, reject) => {
        timer = setTimeout(
          () => reject(new Error(`no connection within ${CONNECT_LIMIT_MS / 1000} s`)),
          CONNECT_LIMIT_MS,
        )
      }),
    ])
  } catch (err) {
    client.disconnect()
    throw new ClusterUnavailableError(`start(): cannot reach Redis at ${options.host}:${options.port}`, err)
  } finally {
    clearTimeout(timer)
  }
  return client
}
