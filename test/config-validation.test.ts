import { availableParallelism } from 'node:os'
import { fileURLToPath } from 'node:url'
import { describe, expect, it } from 'vitest'
import { parseTarget, resolveConfig } from '../src/config/index.js'
import { ConfigError, type ConfigIssue, ErrorCode } from '../src/errors.js'

const baseDir = fileURLToPath(new URL('./fixtures/config/', import.meta.url))
const handler = './noop-handler.ts'
const api = { type: 'api' }

function issuesOf(input: unknown): ConfigIssue[] {
  try {
    resolveConfig(input, { baseDir })
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError)
    expect((err as ConfigError).code).toBe(ErrorCode.CONFIG)
    return (err as ConfigError).issues
  }
  throw new Error('the config was accepted')
}

const ep = (over: Record<string, unknown> = {}) => ({ id: 'a', handler, trigger: api, ...over })

/** [what, config, expected issue path, expected message fragment, expected value (omitted: none)] */
const badConfigs: Array<[string, unknown, string, string, unknown?]> = [
  ['not an object', 42, '', 'must be an object', 42],
  ['no entryPoints', {}, 'entryPoints', 'is required'],
  [
    'unknown top-level key',
    { entryPoints: [ep()], colour: 'blue' },
    'colour',
    'unknown key; allowed keys here: goal, pool',
  ],
  ['unknown nested key', { entryPoints: [ep({ maxQueu: 3 })] }, 'entryPoints[0].maxQueu', 'unknown key'],
  ['missing id', { entryPoints: [{ handler, trigger: api }] }, 'entryPoints[0].id', 'is required'],
  ['bad id characters', { entryPoints: [ep({ id: 'a b' })] }, 'entryPoints[0].id', 'letters, digits', 'a b'],
  [
    'duplicate id',
    { entryPoints: [ep(), ep()] },
    'entryPoints[1].id',
    'duplicate entry point id; entryPoints[0].id',
    'a',
  ],
  [
    'missing handler module',
    { entryPoints: [ep({ handler: './nope.ts' })] },
    'entryPoints[0].handler',
    'handler module not found',
    './nope.ts',
  ],
  [
    'handler of another kind',
    { entryPoints: [ep({ handler: './noop.py' })] },
    'entryPoints[0].handler',
    'must be a .ts, .mts, .cts, .js, .mjs, .cjs module',
    './noop.py',
  ],
  [
    'lock budget below 10 ms',
    { entryPoints: [ep()], state: { lockBudgetMs: 5 } },
    'state.lockBudgetMs',
    'must be an integer >= 10',
    5,
  ],
  [
    'negative maxQueue',
    { entryPoints: [ep(), ep({ id: 'b', maxQueue: -1 })] },
    'entryPoints[1].maxQueue',
    'must be an integer >= 0',
    -1,
  ],
  [
    'zero maxConcurrent',
    { entryPoints: [ep({ maxConcurrent: 0 })] },
    'entryPoints[0].maxConcurrent',
    'must be an integer >= 1',
    0,
  ],
  [
    'fractional maxConcurrent',
    { entryPoints: [ep({ maxConcurrent: 1.5 })] },
    'entryPoints[0].maxConcurrent',
    'must be an integer',
    1.5,
  ],
  [
    'negative timeoutMs',
    { entryPoints: [ep({ timeoutMs: -5 })] },
    'entryPoints[0].timeoutMs',
    'must be an integer from 0',
    -5,
  ],
  [
    'negative maxRetries',
    { entryPoints: [ep({ maxRetries: -1 })] },
    'entryPoints[0].maxRetries',
    'must be an integer from 0 to 100',
    -1,
  ],
  [
    'infinite priority',
    { entryPoints: [ep({ priority: Infinity })] },
    'entryPoints[0].priority',
    'must be a finite number',
    Infinity,
  ],
  [
    'zero threads',
    { pool: { threads: 0 }, entryPoints: [ep()] },
    'pool.threads',
    'must be an integer from 1 to 1024',
    0,
  ],
  [
    'zero tasksPerThread',
    { pool: { tasksPerThread: 0 }, entryPoints: [ep()] },
    'pool.tasksPerThread',
    'must be an integer from 1',
    0,
  ],
  [
    'a negative young generation',
    { pool: { youngGenerationMb: -1 }, entryPoints: [ep()] },
    'pool.youngGenerationMb',
    'must be an integer from 0 to 4096',
    -1,
  ],
  [
    'zero durability.snapshotRecords',
    { durability: { path: './runs.db', snapshotRecords: 0 }, entryPoints: [ep()] },
    'durability.snapshotRecords',
    'must be an integer >= 1',
    0,
  ],
  [
    'tiny state.maxBytes',
    { state: { maxBytes: 10 }, entryPoints: [ep()] },
    'state.maxBytes',
    'must be an integer >= 4096',
    10,
  ],
  [
    'zero idempotency.ttlMs',
    { idempotency: { ttlMs: 0 }, entryPoints: [ep()] },
    'idempotency.ttlMs',
    'must be an integer >= 1',
    0,
  ],
  [
    'port out of range',
    { webhook: { port: 70000 }, entryPoints: [ep()] },
    'webhook.port',
    'must be an integer from 0 to 65535',
    70000,
  ],
  [
    'bad isolation level',
    { entryPoints: [ep({ isolation: 'weird' })] },
    'entryPoints[0].isolation',
    "must be 'isolated', 'shared', 'synchronized'",
    'weird',
  ],
  [
    'bad default isolation',
    { state: { isolation: { stream: 'locked' } }, entryPoints: [ep()] },
    'state.isolation.stream',
    "must be 'isolated', 'shared', 'synchronized' or 'serializable'",
    'locked',
  ],
  [
    'unknown trigger type',
    { entryPoints: [ep({ trigger: { type: 'email' } })] },
    'entryPoints[0].trigger.type',
    "must be 'api', 'manual', 'webhook', 'timer' or 'event'",
    'email',
  ],
  ['missing trigger', { entryPoints: [{ id: 'a', handler }] }, 'entryPoints[0].trigger', 'is required'],
  [
    'webhook path without slash',
    { entryPoints: [ep({ trigger: { type: 'webhook', path: 'hook' } })] },
    'entryPoints[0].trigger.path',
    "must start with '/'",
    'hook',
  ],
  [
    'webhook path with a route parameter',
    { entryPoints: [ep({ trigger: { type: 'webhook', path: '/hooks/:id' } })] },
    'entryPoints[0].trigger.path',
    'use only letters, digits',
    '/hooks/:id',
  ],
  [
    'webhook on a reserved path',
    { entryPoints: [ep({ trigger: { type: 'webhook', path: '/metrics' } })] },
    'entryPoints[0].trigger.path',
    'is reserved',
    '/metrics',
  ],
  [
    'webhook with a bad method',
    { entryPoints: [ep({ trigger: { type: 'webhook', path: '/h', methods: ['FETCH'] } })] },
    'entryPoints[0].trigger.methods[0]',
    'must be one of GET, POST',
    'FETCH',
  ],
  [
    'webhook with a bad secretEnv',
    { entryPoints: [ep({ trigger: { type: 'webhook', path: '/h', secretEnv: 'my secret' } })] },
    'entryPoints[0].trigger.secretEnv',
    'must be an environment variable name',
    'my secret',
  ],
  [
    'duplicate webhook route',
    {
      entryPoints: [
        ep({ trigger: { type: 'webhook', path: '/h' } }),
        ep({ id: 'b', trigger: { type: 'webhook', path: '/h', methods: ['put', 'post'] } }),
      ],
    },
    'entryPoints[1].trigger.path',
    'duplicate webhook route POST /h; entryPoints[0].trigger already serves it',
    '/h',
  ],
  [
    'timer without a schedule',
    { entryPoints: [ep({ trigger: { type: 'timer' } })] },
    'entryPoints[0].trigger',
    'a timer needs intervalMs or cron',
  ],
  [
    'timer with both schedules',
    { entryPoints: [ep({ trigger: { type: 'timer', intervalMs: 5, cron: '* * * * *' } })] },
    'entryPoints[0].trigger',
    'set intervalMs or cron, not both',
  ],
  [
    'zero intervalMs',
    { entryPoints: [ep({ trigger: { type: 'timer', intervalMs: 0 } })] },
    'entryPoints[0].trigger.intervalMs',
    'must be an integer from 1',
    0,
  ],
  [
    'cron out of range',
    { entryPoints: [ep({ trigger: { type: 'timer', cron: '61 * * * *' } })] },
    'entryPoints[0].trigger.cron',
    'is not a valid cron expression',
    '61 * * * *',
  ],
  [
    'cron with 7 fields',
    { entryPoints: [ep({ trigger: { type: 'timer', cron: '* * * * * * *' } })] },
    'entryPoints[0].trigger.cron',
    'must have 5 or 6 fields (got 7)',
    '* * * * * * *',
  ],
  [
    'cron with an unknown zone',
    { entryPoints: [ep({ trigger: { type: 'timer', cron: '* * * * *', timezone: 'Mars/Olympus' } })] },
    'entryPoints[0].trigger.timezone',
    'is not an IANA time zone',
    'Mars/Olympus',
  ],
  [
    'timezone on an interval',
    { entryPoints: [ep({ trigger: { type: 'timer', intervalMs: 10, timezone: 'UTC' } })] },
    'entryPoints[0].trigger.timezone',
    'applies to cron timers only',
    'UTC',
  ],
  [
    'event trigger without types',
    { entryPoints: [ep({ trigger: { type: 'event', eventTypes: [] } })] },
    'entryPoints[0].trigger.eventTypes',
    'must name at least one event type',
    [],
  ],
  [
    'event source unknown',
    { entryPoints: [ep({ trigger: { type: 'event', eventTypes: ['x'], streamId: 'ghost' } })] },
    'entryPoints[0].trigger.streamId',
    'names no entry point; known entry points: a',
    'ghost',
  ],
  [
    'goal target over 100%',
    { goal: goal({ target: '120%' }), entryPoints: [ep()] },
    'goal.successCriteria[0].target',
    "or a percentage such as '90%'",
    '120%',
  ],
  [
    'goal target over 1',
    { goal: goal({ target: 1.5 }), entryPoints: [ep()] },
    'goal.successCriteria[0].target',
    'must be a number in [0, 1]',
    1.5,
  ],
  [
    'goal without criteria',
    { goal: { id: 'g', description: 'd', successCriteria: [] }, entryPoints: [ep()] },
    'goal.successCriteria',
    'must name at least one criterion',
    [],
  ],
  [
    'bad constraint kind',
    {
      goal: { ...goal({}), constraints: [{ id: 'c', description: 'd', kind: 'firm' }] },
      entryPoints: [ep()],
    },
    'goal.constraints[0].kind',
    "must be 'hard' or 'soft'",
    'firm',
  ],
]

function goal(criterion: Record<string, unknown>) {
  return {
    id: 'g',
    description: 'd',
    successCriteria: [{ id: 'c', description: 'd', target: 0.9, ...criterion }],
  }
}

describe('config validation', () => {
  it.each(badConfigs)(
    'refuses %s, naming the field and the value',
    (_what, input, path, fragment, ...value) => {
      const issues = issuesOf(input)
      const issue = issues.find((i) => i.path === path)
      expect(issue, `issues were ${JSON.stringify(issues)}`).toBeDefined()
      expect(issue!.message).toContain(fragment)
      if (value.length > 0) expect(issue!.value).toEqual(value[0])
      else expect('value' in issue!).toBe(false)
    },
  )

  it('reports every problem at once, in one error whose message lists each path', () => {
    const input = {
      pool: { threads: -2 },
      colour: 'blue',
      entryPoints: [ep({ maxQueue: -1 }), ep({ handler: './missing.ts' })],
    }
    let err: ConfigError | undefined
    try {
      resolveConfig(input, { baseDir, source: 'agent.yaml' })
    } catch (e) {
      err = e as ConfigError
    }
    expect(err?.issues.map((i) => i.path).sort()).toEqual(
      [
        'colour',
        'entryPoints[0].maxQueue',
        'entryPoints[1].handler',
        'entryPoints[1].id',
        'pool.threads',
      ].sort(),
    )
    expect(err?.message).toContain('invalid agentpool config in agent.yaml')
    expect(err?.message).toContain('entryPoints[0].maxQueue: must be an integer >= 0 (got -1)')
  })

  it('fills every default of a minimal config', () => {
    const r = resolveConfig({ entryPoints: [ep()] }, { baseDir })
    expect(r.pool).toEqual({
      threads: availableParallelism(),
      tasksPerThread: 4,
      idleTimeoutMs: 30_000,
      maxHeapMb: 0,
      youngGenerationMb: 96,
    })
    expect(r.state).toEqual({
      isolation: { stream: 'shared', global: 'shared' },
      maxBytes: 256 * 1024 * 1024,
      maxKeys: 1_048_576,
      historySize: 1000,
      lockBudgetMs: 250,
    })
    expect(r.idempotency).toEqual({ ttlMs: 300_000, maxKeys: 10_000 })
    expect(r.webhook).toEqual({ host: '127.0.0.1', port: 0, bodyLimitBytes: 1_048_576 })
    expect(r.goal).toBeUndefined()
    expect(r.baseDir).toBe(baseDir.replace(/\/$/, ''))
    expect(r.entryPoints).toEqual([
      {
        id: 'a',
        name: 'a',
        handler: `${baseDir}noop-handler.ts`,
        trigger: { type: 'api' },
        isolation: { stream: 'shared', global: 'shared' },
        priority: 0,
        maxConcurrent: 10,
        maxQueue: 1000,
        timeoutMs: 30_000,
        maxRetries: 0,
        maxConflictRetries: 10,
      },
    ])
    expect(r.outcomes).toEqual({
      maxDecisions: 10_000,
      minOutcomes: 1,
      adjustAfterDecisions: 20,
      lowProgress: 0.5,
    })
    expect(r.events).toEqual({ historySize: 1000 })
  })

  it('fills trigger defaults and resolves isolation per scope over the state defaults', () => {
    const r = resolveConfig(
      {
        state: { isolation: { global: 'synchronized' } },
        entryPoints: [
          ep({
            trigger: { type: 'webhook', path: '/h', methods: ['put'] },
            isolation: { stream: 'isolated' },
          }),
          ep({ id: 'b', trigger: { type: 'webhook', path: '/h' }, isolation: 'isolated' }),
          ep({ id: 'c', trigger: { type: 'timer', intervalMs: 50 } }),
          ep({ id: 'd', trigger: { type: 'event', eventTypes: ['x'] } }),
        ],
      },
      { baseDir },
    )
    expect(r.entryPoints.map((e) => e.trigger)).toEqual([
      { type: 'webhook', path: '/h', methods: ['PUT'], secretEnv: undefined },
      { type: 'webhook', path: '/h', methods: ['POST'], secretEnv: undefined },
      { type: 'timer', intervalMs: 50, cron: undefined, timezone: undefined, runImmediately: false },
      { type: 'event', eventTypes: ['x'], streamId: undefined, excludeOwn: true },
    ])
    expect(r.entryPoints[0]!.isolation).toEqual({ stream: 'isolated', global: 'synchronized' })
    expect(r.entryPoints[1]!.isolation).toEqual({ stream: 'isolated', global: 'isolated' })
    expect(r.entryPoints[2]!.isolation).toEqual({ stream: 'shared', global: 'synchronized' })
  })

  it('finds handler modules by the .js-for-.ts convention and without an extension', () => {
    const r = resolveConfig(
      { entryPoints: [ep({ handler: './noop-handler.js' }), ep({ id: 'b', handler: 'noop-handler' })] },
      { baseDir },
    )
    expect(r.entryPoints.map((e) => e.handler)).toEqual([
      `${baseDir}noop-handler.ts`,
      `${baseDir}noop-handler.ts`,
    ])
  })

  it('resolves a relative baseDir in the config against the outer base folder', () => {
    const r = resolveConfig(
      { baseDir: 'config', entryPoints: [ep()] },
      { baseDir: fileURLToPath(new URL('./fixtures/', import.meta.url)) },
    )
    expect(r.entryPoints[0]!.handler).toBe(`${baseDir}noop-handler.ts`)
  })

  it('turns goal targets into fractions and fills criterion defaults', () => {
    const r = resolveConfig({ goal: { ...goal({ target: '90%' }) }, entryPoints: [ep()] }, { baseDir })
    expect(r.goal?.successCriteria[0]).toEqual({
      id: 'c',
      description: 'd',
      target: 0.9,
      metric: 'success_rate',
      weight: 1,
    })
    expect(r.goal?.constraints).toEqual([])
  })

  it('parses targets as fractions or percentages and refuses anything else', () => {
    expect(parseTarget('90%')).toBe(0.9)
    expect(parseTarget('12.5%')).toBe(0.125)
    expect(parseTarget(0)).toBe(0)
    expect(parseTarget(1)).toBe(1)
    for (const bad of ['90', '101%', '-5%', -0.1, 1.01, Number.NaN, null, '%'])
      expect(parseTarget(bad)).toBeUndefined()
  })
})
