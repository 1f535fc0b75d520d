/**
 * The zod schema of a {@link RuntimeConfig}: the shape and the range of every single field. Checks that
 * look across fields (duplicate ids, handler files, cron syntax, event sources) live in `checks.ts`.
 * The schema mirrors `RuntimeConfig` in `types.ts`. Every object is strict, so a misspelt key anywhere is refused and named.
 *
 * @module
 */
import { z } from 'zod'
import type { ConfigIssue } from '../errors.js'

/** The largest delay a Node timer honours (2^31 - 1 ms, about 24.8 days). */
const MAX_TIMER_MS = 2_147_483_647

/** HTTP methods a webhook trigger may accept. */
const WEBHOOK_METHODS = ['GET', 'POST', 'PUT', 'PATCH', 'DELETE'] as const

const ID_PATTERN = /^[A-Za-z0-9][\w.:-]{0,127}$/
const TARGET_PATTERN = /^(\d+(?:\.\d+)?)%$/

/** A zod error option: "is required" when the field is absent, else `text`. */
function says(text: string) {
  return { error: (iss: { input?: unknown }) => (iss.input === undefined ? 'is required' : text) }
}

function int(min: number, max: number = Number.MAX_SAFE_INTEGER) {
  const text =
    max === Number.MAX_SAFE_INTEGER
      ? `must be an integer >= ${min}`
      : `must be an integer from ${min} to ${max}`
  return z.number(says(text)).int(says(text)).min(min, says(text)).max(max, says(text))
}

const id = z.string(says('must be a string')).regex(ID_PATTERN, {
  error: "must be 1-128 characters of letters, digits, '_', '-', '.', ':' starting with a letter or digit",
})
const text = z.string(says('must be a string'))
const nonEmptyText = text.min(1, { error: 'must not be empty' })
const level = z.enum(
  ['isolated', 'shared', 'synchronized', 'serializable'],
  says("must be 'isolated', 'shared', 'synchronized' or 'serializable'"),
)
const scopeIsolation = z.strictObject(
  { stream: level.optional(), global: level.optional() },
  says('must be an object'),
)

/**
 * Parses a goal target — a fraction in [0, 1] or a percentage string such as `'90%'` — to a fraction.
 * Returns `undefined` when the value is neither.
 */
export function parseTarget(target: unknown): number | undefined {
  if (typeof target === 'number')
    return Number.isFinite(target) && target >= 0 && target <= 1 ? target : undefined
  if (typeof target !== 'string') return undefined
  const m = TARGET_PATTERN.exec(target.trim())
  if (!m) return undefined
  const pct = Number(m[1])
  return pct <= 100 ? pct / 100 : undefined
}

// The schema checks a goal's shape only; its rules (targets, weights, ids, at least one criterion) are
// `normalizeGoal`'s, which the resolver runs too.
const target = z.union(
  [z.number(), z.string()],
  says("must be a number in [0, 1] or a percentage such as '90%'"),
)

const goal = z.strictObject(
  {
    id,
    description: text,
    successCriteria: z.array(
      z.strictObject(
        {
          id,
          description: text,
          metric: z.literal('success_rate', says("must be 'success_rate'")).optional(),
          target,
          weight: z.number(says('must be a number >= 0')).optional(),
        },
        says('must be an object'),
      ),
      says('must be an array'),
    ),
    constraints: z
      .array(
        z.strictObject(
          { id, description: text, kind: z.enum(['hard', 'soft'], says("must be 'hard' or 'soft'")) },
          says('must be an object'),
        ),
        says('must be an array'),
      )
      .optional(),
  },
  says('must be an object'),
)

const webhookPath = z.string(says('must be a string')).regex(/^\/[A-Za-z0-9._~%/-]*$/, {
  error: "must start with '/' and use only letters, digits and - . _ ~ % /",
})

const method = z
  .string(says('must be a string'))
  .refine((m) => (WEBHOOK_METHODS as readonly string[]).includes(m.toUpperCase()), {
    error: `must be one of ${WEBHOOK_METHODS.join(', ')}`,
  })

const trigger = z.discriminatedUnion(
  'type',
  [
    z.strictObject({ type: z.literal('api') }),
    z.strictObject({ type: z.literal('manual') }),
    z.strictObject({
      type: z.literal('webhook'),
      path: webhookPath,
      methods: z
        .array(method, says('must be an array'))
        .min(1, { error: 'must name at least one method' })
        .optional(),
      secretEnv: z
        .string(says('must be a string'))
        .regex(/^[A-Za-z_][A-Za-z0-9_]*$/, { error: 'must be an environment variable name' })
        .optional(),
    }),
    z.strictObject({
      type: z.literal('timer'),
      intervalMs: int(1, MAX_TIMER_MS).optional(),
      cron: nonEmptyText.optional(),
      timezone: nonEmptyText.optional(),
      runImmediately: z.boolean(says('must be true or false')).optional(),
    }),
    z.strictObject({
      type: z.literal('event'),
      eventTypes: z
        .array(nonEmptyText, says('must be an array of event type names'))
        .min(1, { error: 'must name at least one event type' }),
      streamId: id.optional(),
      excludeOwn: z.boolean(says('must be true or false')).optional(),
    }),
  ],
  says("must be an object with type 'api', 'manual', 'webhook', 'timer' or 'event'"),
)

const entryPoint = z.strictObject(
  {
    id,
    name: text.optional(),
    handler: nonEmptyText,
    trigger,
    isolation: z
      .union(
        [level, scopeIsolation],
        says("must be 'isolated', 'shared', 'synchronized', 'serializable' or { stream?, global? }"),
      )
      .optional(),
    priority: z
      .number(says('must be a finite number'))
      .refine(Number.isFinite, { error: 'must be a finite number' })
      .optional(),
    maxConcurrent: int(1).optional(),
    maxQueue: int(0).optional(),
    timeoutMs: int(0, MAX_TIMER_MS).optional(),
    maxRetries: int(0, 100).optional(),
    maxConflictRetries: int(0, 1000).optional(),
    cluster: z.strictObject({ maxConcurrent: int(1).optional() }, says('must be an object')).optional(),
  },
  says('must be an object'),
)

const redisUrl = z.string(says('must be a redis:// or rediss:// URL')).refine(
  (u) => {
    try {
      const url = new URL(u)
      return url.protocol === 'redis:' || url.protocol === 'rediss:'
    } catch {
      return false
    }
  },
  { error: 'must be a redis:// or rediss:// URL' },
)

const redisParts = z.strictObject(
  {
    host: nonEmptyText.optional(),
    port: int(1, 65535).optional(),
    username: text.optional(),
    password: text.optional(),
    db: int(0, 1_000_000).optional(),
    tls: z.boolean(says('must be true or false')).optional(),
  },
  says('must be an object'),
)

const cluster = z.strictObject(
  {
    redis: z
      .union([redisUrl, redisParts], says('must be a redis:// URL or { host, port, password, tls }'))
      .optional(),
    prefix: id.optional(),
    name: id.optional(),
    stalledMs: int(100, MAX_TIMER_MS).optional(),
    keepResults: int(0).optional(),
  },
  says('must be an object'),
)

/** The schema of the whole config (also the config file's shape). */
export const runtimeConfigSchema = z.strictObject(
  {
    goal: goal.optional(),
    pool: z
      .strictObject(
        {
          threads: int(1, 1024).optional(),
          tasksPerThread: int(1, 1024).optional(),
          idleTimeoutMs: int(0, MAX_TIMER_MS).optional(),
          maxHeapMb: int(0).optional(),
          youngGenerationMb: int(0, 4096).optional(),
        },
        says('must be an object'),
      )
      .optional(),
    state: z
      .strictObject(
        {
          isolation: scopeIsolation.optional(),
          maxBytes: int(4096).optional(),
          maxKeys: int(1).optional(),
          historySize: int(0).optional(),
          lockBudgetMs: int(10).optional(),
        },
        says('must be an object'),
      )
      .optional(),
    outcomes: z
      .strictObject(
        {
          maxDecisions: int(0).optional(),
          minOutcomes: int(1).optional(),
          adjustAfterDecisions: int(1).optional(),
          lowProgress: z
            .number(says('must be a number in [0, 1]'))
            .min(0, says('must be a number in [0, 1]'))
            .max(1, says('must be a number in [0, 1]'))
            .optional(),
        },
        says('must be an object'),
      )
      .optional(),
    events: z.strictObject({ historySize: int(0).optional() }, says('must be an object')).optional(),
    idempotency: z
      .strictObject({ ttlMs: int(1).optional(), maxKeys: int(1).optional() }, says('must be an object'))
      .optional(),
    webhook: z
      .strictObject(
        { host: nonEmptyText.optional(), port: int(0, 65535).optional(), bodyLimitBytes: int(1).optional() },
        says('must be an object'),
      )
      .optional(),
    metrics: z
      .strictObject({ host: nonEmptyText.optional(), port: int(0, 65535) }, says('must be an object'))
      .optional(),
    durability: z
      .strictObject(
        {
          path: nonEmptyText,
          syncMs: int(0, 1000).optional(),
          retainRunsMs: int(0).optional(),
          snapshotRecords: int(1).optional(),
          synchronous: z.enum(['normal', 'full'], says("must be 'normal' or 'full'")).optional(),
        },
        says('must be an object'),
      )
      .optional(),
    cluster: cluster.optional(),
    entryPoints: z.array(entryPoint, says('must be an array of entry points')),
    baseDir: nonEmptyText.optional(),
  },
  says('must be an object'),
)

const IDENTIFIER = /^[A-Za-z_$][\w$]*$/

/** Renders a path as `entryPoints[1].trigger.type`; a key that is no identifier becomes `["a key"]`. */
function formatPath(path: readonly PropertyKey[]): string {
  let out = ''
  for (const seg of path) {
    if (typeof seg === 'number') out += `[${seg}]`
    else if (typeof seg === 'string' && IDENTIFIER.test(seg)) out += out === '' ? seg : `.${seg}`
    else out += `[${JSON.stringify(String(seg))}]`
  }
  return out
}

/** The inverse of {@link formatPath}. */
export function parsePath(path: string): Array<string | number> {
  const segs: Array<string | number> = []
  for (const m of path.matchAll(/\.?([A-Za-z_$][\w$]*)|\[(\d+)\]|\[("(?:[^"\\]|\\.)*")\]/g)) {
    segs.push(m[1] ?? (m[2] !== undefined ? Number(m[2]) : JSON.parse(m[3]!)))
  }
  return segs
}

/** Keys a strict object at `path` accepts, for the "unknown key" message. */
function allowedKeys(path: readonly PropertyKey[]): string[] | undefined {
  let schema: z.ZodType = runtimeConfigSchema
  for (const seg of path) {
    let def = schema as unknown as {
      shape?: Record<string, z.ZodType>
      element?: z.ZodType
      unwrap?: () => z.ZodType
    }
    while (def.unwrap && !def.shape && !def.element) def = def.unwrap() as never
    if (typeof seg === 'number' && def.element) schema = def.element
    else if (typeof seg === 'string' && def.shape?.[seg]) schema = def.shape[seg]
    else return undefined
  }
  let def = schema as unknown as { shape?: Record<string, unknown>; unwrap?: () => unknown }
  while (def.unwrap && !def.shape) def = def.unwrap() as never
  return def.shape ? Object.keys(def.shape) : undefined
}

/** Turns zod's issues into {@link ConfigIssue}s: dotted path, a plain message, and the bad value. */
export function toConfigIssues(error: z.ZodError, input: unknown): ConfigIssue[] {
  const out: ConfigIssue[] = []
  for (const iss of error.issues) {
    const path = formatPath(iss.path)
    if (iss.code === 'unrecognized_keys') {
      const allowed = allowedKeys(iss.path)
      for (const key of iss.keys) {
        out.push({
          path: formatPath([...iss.path, key]),
          message: `unknown key${allowed ? `; allowed keys here: ${allowed.join(', ')}` : ''}`,
        })
      }
    } else if (iss.code === 'invalid_union' && 'discriminator' in iss) {
      const value = (iss.input as Record<string, unknown> | undefined)?.type
      out.push({
        path,
        message: "must be 'api', 'manual', 'webhook', 'timer' or 'event'",
        ...(value === undefined ? {} : { value }),
      })
    } else {
      const value = 'input' in iss ? iss.input : valueAt(input, iss.path)
      out.push({ path, message: iss.message, ...(value === undefined ? {} : { value }) })
    }
  }
  return out
}

function valueAt(root: unknown, path: readonly PropertyKey[]): unknown {
  let v: unknown = root
  for (const seg of path) {
    if (v === null || typeof v !== 'object') return undefined
    v = (v as Record<PropertyKey, unknown>)[seg]
  }
  return v
}

/** The config as the schema accepted it, before defaults are filled. */
export type ParsedConfig = z.infer<typeof runtimeConfigSchema>
