import { fileURLToPath } from 'node:url'
import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { resolveConfig } from '../src/config/index.js'
import { parsePath } from '../src/config/schema.js'
import { ConfigError } from '../src/errors.js'

const baseDir = fileURLToPath(new URL('./fixtures/config/', import.meta.url))

/** A value that is sometimes right for its field and sometimes anything at all. */
const maybe = <T>(good: fc.Arbitrary<T>) =>
  fc.oneof({ weight: 30, arbitrary: good }, { weight: 1, arbitrary: fc.anything() })

const level = fc.constantFrom('isolated', 'shared', 'synchronized', 'synchronized', 'locked')
const trigger = fc.oneof(
  fc.constant({ type: 'api' }),
  fc.record(
    {
      type: fc.constant('webhook'),
      path: fc.constantFrom('/a', '/b', 'c', '/metrics'),
      methods: fc.option(fc.subarray(['POST', 'put', 'GET', 'FETCH']), { nil: undefined }),
    },
    { requiredKeys: ['type', 'path'] },
  ),
  fc.record(
    {
      type: fc.constant('timer'),
      intervalMs: fc.integer({ min: -5, max: 3e9 }),
      runImmediately: fc.boolean(),
    },
    { requiredKeys: ['type', 'intervalMs'] },
  ),
  fc.record(
    {
      type: fc.constant('timer'),
      cron: fc.constantFrom('* * * * *', '0 0 * * * *', '61 * * * *', 'x'),
      timezone: fc.constantFrom('UTC', 'Europe/Berlin', 'Nowhere/Else'),
      intervalMs: fc.constant(5),
    },
    { requiredKeys: ['type', 'cron'] },
  ),
  fc.record(
    {
      type: fc.constant('event'),
      eventTypes: fc.array(fc.constantFrom('a', 'b', ''), { maxLength: 3 }),
      streamId: fc.constantFrom('e0', 'e1', 'ghost'),
      excludeOwn: fc.boolean(),
    },
    { requiredKeys: ['type', 'eventTypes'] },
  ),
  fc.record({ type: fc.string() }),
)
const entryPoint = fc.record(
  {
    id: maybe(fc.constantFrom('e0', 'e1', 'e2', 'e3', 'e4', 'e5', 'bad id')),
    name: maybe(fc.string()),
    handler: maybe(
      fc.constantFrom('./noop-handler.ts', 'noop-handler', './noop-handler.js', './missing.js', './x.py'),
    ),
    trigger: maybe(trigger),
    isolation: maybe(fc.oneof(level, fc.record({ stream: level, global: level }, { requiredKeys: [] }))),
    priority: maybe(fc.double()),
    maxConcurrent: maybe(fc.integer({ min: -2, max: 50 })),
    maxQueue: maybe(fc.integer({ min: -2, max: 50 })),
    timeoutMs: maybe(fc.integer({ min: -2, max: 3e9 })),
    maxRetries: maybe(fc.integer({ min: -2, max: 200 })),
  },
  { requiredKeys: [] },
)
const config = fc.record(
  {
    pool: maybe(
      fc.record(
        { threads: fc.integer({ min: 0, max: 1100 }), tasksPerThread: fc.integer({ min: -1, max: 8 }) },
        { requiredKeys: [] },
      ),
    ),
    state: maybe(
      fc.record(
        {
          isolation: fc.record({ stream: level, global: level }, { requiredKeys: [] }),
          maxBytes: fc.integer(),
        },
        { requiredKeys: [] },
      ),
    ),
    goal: maybe(
      fc.record({
        id: fc.constant('g'),
        description: fc.string(),
        successCriteria: fc.array(
          fc.record({
            id: fc.constantFrom('c1', 'c2'),
            description: fc.string(),
            target: fc.oneof(fc.double({ min: -0.1, max: 1.1 }), fc.constantFrom('90%', '150%', 'lots')),
          }),
          { maxLength: 3 },
        ),
      }),
    ),
    webhook: maybe(
      fc.record({ port: fc.integer({ min: -1, max: 66000 }), host: fc.string() }, { requiredKeys: [] }),
    ),
    entryPoints: maybe(fc.array(entryPoint, { maxLength: 4 })),
  },
  { requiredKeys: ['entryPoints'] },
)
const configWithStrayKey = fc.tuple(config, fc.string(), fc.anything()).map(([c, k, v]) => ({ ...c, [k]: v }))

/** Every path a ConfigIssue names must lead somewhere into the input (its last segment may be absent). */
function pathReachesInput(input: unknown, path: string): boolean {
  const segs = parsePath(path)
  let v: unknown = input
  for (const [i, seg] of segs.entries()) {
    if (v === null || typeof v !== 'object') return false
    const next = (v as Record<string | number, unknown>)[seg]
    if (next === undefined && i < segs.length - 1) return false
    v = next
  }
  return true
}

describe('config resolver properties', () => {
  it('never crashes: a generated config is either resolved or refused with issues naming real paths', () => {
    let accepted = 0
    let refused = 0
    fc.assert(
      fc.property(
        fc.oneof(
          { weight: 1, arbitrary: fc.anything() },
          { weight: 1, arbitrary: configWithStrayKey },
          { weight: 8, arbitrary: config },
        ),
        (input) => {
          let resolved: ReturnType<typeof resolveConfig> | undefined
          try {
            resolved = resolveConfig(input, { baseDir })
          } catch (err) {
            expect(err).toBeInstanceOf(ConfigError)
            const issues = (err as ConfigError).issues
            expect(issues.length).toBeGreaterThan(0)
            for (const issue of issues) {
              expect(issue.message.length).toBeGreaterThan(0)
              expect(pathReachesInput(input, issue.path), `${issue.path} in ${JSON.stringify(input)}`).toBe(
                true,
              )
              expect((err as ConfigError).message).toContain(`${issue.path || '(root)'}: `)
            }
            refused++
            return
          }
          accepted++
          const entries = (input as { entryPoints: unknown[] }).entryPoints
          expect(resolved.entryPoints).toHaveLength(entries.length)
          expect(new Set(resolved.entryPoints.map((e) => e.id)).size).toBe(entries.length)
          for (const e of resolved.entryPoints) expect(e.handler).toBe(`${baseDir}noop-handler.ts`)
        },
      ),
      { seed: 20261125, numRuns: 1500 },
    )
    // Both outcomes must actually be exercised by the generator.
    expect(accepted).toBeGreaterThan(20)
    expect(refused).toBeGreaterThan(20)
  })
})
