import { fileURLToPath } from 'node:url'
import { describe, expect, it } from 'vitest'
import { redisOptionsOf } from '../src/cluster/index.js'
import { environmentIssues, resolveConfig } from '../src/config/index.js'
import { AgentRuntime, ConfigError, type ConfigIssue } from '../src/index.js'

const baseDir = fileURLToPath(new URL('./fixtures/config/', import.meta.url))
const ep = (over: Record<string, unknown> = {}) => ({
  id: 'a',
  handler: './noop-handler.ts',
  trigger: { type: 'api' as const },
  ...over,
})

function issuesOf(input: unknown): ConfigIssue[] {
  try {
    resolveConfig(input, { baseDir })
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError)
    return (err as ConfigError).issues
  }
  throw new Error('the config was accepted')
}

describe('cluster config', () => {
  it.each([
    ['a URL of another scheme', { redis: 'http://x' }, 'cluster.redis', 'redis://'],
    ['a port out of range', { redis: { port: 70000 } }, 'cluster.redis.port', 'from 1 to 65535'],
    ['an unknown key', { redis: 'redis://h', colour: 1 }, 'cluster.colour', 'unknown key'],
    ['a bad prefix', { redis: 'redis://h', prefix: 'a b' }, 'cluster.prefix', 'letters, digits'],
    ['a tiny stalledMs', { redis: 'redis://h', stalledMs: 5 }, 'cluster.stalledMs', 'from 100'],
  ])('refuses %s, naming the field', (_what, cluster, path, fragment) => {
    const issue = issuesOf({ cluster, entryPoints: [ep()] }).find((i) => i.path === path)
    expect(issue?.message).toContain(fragment)
  })

  it('refuses durability together with cluster, and entry-point cluster options without cluster', () => {
    expect(
      issuesOf({ cluster: { redis: 'redis://h' }, durability: { path: 'x.db' }, entryPoints: [ep()] }).map(
        (i) => i.path,
      ),
    ).toEqual(['durability'])
    const [issue] = issuesOf({ entryPoints: [ep({ cluster: { maxConcurrent: 2 } })] })
    expect(issue).toMatchObject({
      path: 'entryPoints[0].cluster',
      message: 'needs a top-level cluster section',
    })
  })

  it('fills defaults: prefix agentpool, the goal id as the name, 30 s stall detection', () => {
    const goal = {
      id: 'tickets',
      description: 'd',
      successCriteria: [{ id: 'c', description: 'd', target: 1 }],
    }
    const r = resolveConfig(
      { goal, cluster: {}, entryPoints: [ep({ cluster: { maxConcurrent: 3 } })] },
      { baseDir },
    )
    expect(r.cluster).toEqual({
      redis: undefined,
      prefix: 'agentpool',
      name: 'tickets',
      stalledMs: 30_000,
      keepResults: 10_000,
    })
    expect(r.entryPoints[0]!.clusterMaxConcurrent).toBe(3)
    expect(resolveConfig({ entryPoints: [ep()] }, { baseDir }).cluster).toBeUndefined()
  })

  it('takes REDIS_URL when cluster.redis is absent, and says so when neither is set', async () => {
    const r = resolveConfig({ cluster: {}, entryPoints: [ep()] }, { baseDir })
    expect(environmentIssues(r, {})).toEqual([
      expect.objectContaining({ path: 'cluster.redis', message: expect.stringContaining('REDIS_URL') }),
    ])
    expect(environmentIssues(r, { REDIS_URL: 'redis://h:1' })).toEqual([])
    expect(redisOptionsOf(r.cluster!, { REDIS_URL: 'rediss://u:p%40ss@db.example:6380/2' })).toMatchObject({
      host: 'db.example',
      port: 6380,
      db: 2,
      username: 'u',
      password: 'p@ss',
      tls: {},
    })
    expect(() => redisOptionsOf(r.cluster!, { REDIS_URL: 'http://u:secret@h' })).toThrow(
      /REDIS_URL: must be a redis:\/\/ or rediss:\/\/ URL \(got "http:\/\/u:\*\*\*@h"\)/,
    )
    const saved = process.env.REDIS_URL
    delete process.env.REDIS_URL
    try {
      await expect(new AgentRuntime({ cluster: {}, entryPoints: [ep()], baseDir }).start()).rejects.toThrow(
        /cluster\.redis: is not set and neither is the REDIS_URL/,
      )
    } finally {
      if (saved !== undefined) process.env.REDIS_URL = saved
    }
  })

  it('refuses opts.signal and the local timer controls in cluster mode, naming what to use instead', async () => {
    const runtime = new AgentRuntime({
      cluster: { redis: 'redis://127.0.0.1:1' },
      entryPoints: [ep()],
      baseDir,
    })
    await expect(runtime.trigger('a', {}, { signal: new AbortController().signal })).rejects.toMatchObject({
      code: 'AGENTPOOL_INVALID_ARGUMENT',
      message: expect.stringContaining('timeoutMs'),
    })
    expect(() => runtime.pauseTimer('a')).toThrow(/await runtime\.cluster\.pauseTimer\(id\)/)
    await expect(runtime.cluster.stats()).rejects.toMatchObject({ code: 'AGENTPOOL_NOT_RUNNING' })
    const local = new AgentRuntime({ entryPoints: [ep()], baseDir })
    await expect(local.cluster.goalProgress()).rejects.toMatchObject({ code: 'AGENTPOOL_INVALID_ARGUMENT' })
  })

  it('fails start() with AGENTPOOL_CLUSTER_UNAVAILABLE when Redis cannot be reached', async () => {
    const runtime = new AgentRuntime({
      pool: { threads: 1 },
      cluster: { redis: { host: '127.0.0.1', port: 1 } },
      entryPoints: [ep()],
      baseDir,
    })
    await expect(runtime.start()).rejects.toMatchObject({
      code: 'AGENTPOOL_CLUSTER_UNAVAILABLE',
      message: expect.stringContaining('cannot reach Redis at 127.0.0.1:1'),
    })
  })
})
