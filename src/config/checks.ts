/**
 * Checks that look across fields or outside the config: duplicate ids, handler module files, webhook
 * routes, timer schedules, event sources. They read the raw input defensively (any field may still have
 * the wrong type), so they run even when the schema refused something and every problem is reported at
 * once.
 *
 * @module
 */
import { statSync } from 'node:fs'
import { createRequire } from 'node:module'
import { extname, isAbsolute, resolve } from 'node:path'
import { Cron } from 'croner'
import type { ConfigIssue } from '../errors.js'
import { goalIssues } from './goal.js'
import type { Goal, ResolvedRuntimeConfig } from './types.js'

/** Paths the webhook server answers itself. */
export const RESERVED_WEBHOOK_PATHS = ['/healthz', '/metrics'] as const

/** Handler module extensions accepted, in the order a path without extension is tried. */
const HANDLER_EXTENSIONS = ['.ts', '.mts', '.cts', '.js', '.mjs', '.cjs'] as const

/** The TypeScript source a compiled-extension import path stands for (`./x.js` for `./x.ts`). */
const SOURCE_OF: Record<string, string> = { '.js': '.ts', '.mjs': '.mts', '.cjs': '.cts' }

/** Whether a module path is TypeScript, which needs tsx on the pool threads. */
export function isTypeScriptModule(path: string): boolean {
  return /\.[cm]?ts$/.test(path)
}

let tsxFound: boolean | undefined
/** Whether tsx (an optional peer dependency) can be loaded from where agentpool is installed. */
function tsxInstalled(): boolean {
  if (tsxFound === undefined) {
    try {
      createRequire(import.meta.url).resolve('tsx/esm/api')
      tsxFound = true
    } catch {
      tsxFound = false
    }
  }
  return tsxFound
}

type Obj = Record<string, unknown>

const isObj = (v: unknown): v is Obj => v !== null && typeof v === 'object' && !Array.isArray(v)
const asArray = (v: unknown): unknown[] => (Array.isArray(v) ? v : [])

function isFile(path: string): boolean {
  try {
    return statSync(path).isFile()
  } catch {
    return false
  }
}

/**
 * Finds a handler module: the path as given, else — for a `.js`, `.mjs` or `.cjs` path — its `.ts`,
 * `.mts` or `.cts` source (the TypeScript convention of importing `./x.js` for `./x.ts`), else — without
 * an extension — each of {@link HANDLER_EXTENSIONS}. Returns the absolute path found, or the candidates
 * tried.
 */
function findHandlerModule(baseDir: string, handler: string): { path: string } | { tried: string[] } {
  const abs = isAbsolute(handler) ? handler : resolve(baseDir, handler)
  const ext = extname(abs)
  const source = SOURCE_OF[ext]
  const candidates =
    ext === ''
      ? HANDLER_EXTENSIONS.map((e) => abs + e)
      : source !== undefined
        ? [abs, abs.slice(0, -ext.length) + source]
        : [abs]
  const found = candidates.find(isFile)
  return found === undefined ? { tried: candidates } : { path: found }
}

/** Cross-field problems, and the absolute handler path of each entry point whose module was found. */
export function crossFieldChecks(
  input: unknown,
  baseDir: string,
): { issues: ConfigIssue[]; handlers: Map<number, string> } {
  const issues: ConfigIssue[] = []
  const handlers = new Map<number, string>()
  if (!isObj(input)) return { issues, handlers }
  const entries = asArray(input.entryPoints)
  checkDuplicates(
    entries,
    (e) => e.id,
    (i) => `entryPoints[${i}].id`,
    'entry point id',
    issues,
  )
  const ids = new Set(entries.flatMap((e) => (isObj(e) && typeof e.id === 'string' ? [e.id] : [])))
  const routes = new Map<string, string>()
  entries.forEach((e, i) => {
    if (!isObj(e)) return
    const at = `entryPoints[${i}]`
    if (typeof e.handler === 'string' && e.handler !== '') {
      const ext = extname(e.handler)
      if (ext !== '' && !(HANDLER_EXTENSIONS as readonly string[]).includes(ext)) {
        issues.push({
          path: `${at}.handler`,
          message: `must be a ${HANDLER_EXTENSIONS.join(', ')} module`,
          value: e.handler,
        })
      } else {
        const found = findHandlerModule(baseDir, e.handler)
        if ('path' in found) {
          handlers.set(i, found.path)
          if (isTypeScriptModule(found.path) && !tsxInstalled()) {
            issues.push({
              path: `${at}.handler`,
              message: `${found.path} is TypeScript, which needs tsx (an optional peer dependency of agentpool) and it is not installed. Fix: npm install tsx, or point the handler at compiled JavaScript`,
              value: e.handler,
            })
          }
        } else {
          issues.push({
            path: `${at}.handler`,
            message: `handler module not found (looked for ${found.tried.join(', ')})`,
            value: e.handler,
          })
        }
      }
    }
    const t = e.trigger
    if (!isObj(t)) return
    if (t.type === 'webhook') checkWebhook(t, `${at}.trigger`, routes, issues)
    else if (t.type === 'timer') checkTimer(t, `${at}.trigger`, issues)
    else if (t.type === 'event' && typeof t.streamId === 'string' && !ids.has(t.streamId)) {
      issues.push({
        path: `${at}.trigger.streamId`,
        message: `names no entry point; known entry points: ${[...ids].join(', ') || '(none)'}`,
        value: t.streamId,
      })
    }
  })
  if (isObj(input.goal)) issues.push(...goalIssues(input.goal as unknown as Goal))
  checkCluster(input, entries, issues)
  return { issues, handlers }
}

/** Cluster mode and the run log do not mix; an entry point's `cluster` options need cluster mode. */
function checkCluster(input: Obj, entries: unknown[], issues: ConfigIssue[]): void {
  if (input.cluster !== undefined && input.durability !== undefined) {
    issues.push({
      path: 'durability',
      message:
        'cannot be used with cluster: in cluster mode admissions and results are kept in Redis (make Redis durable with appendonly); remove one of the two',
      value: input.durability,
    })
  }
  if (input.cluster !== undefined) return
  entries.forEach((e, i) => {
    if (isObj(e) && e.cluster !== undefined) {
      issues.push({
        path: `entryPoints[${i}].cluster`,
        message: 'needs a top-level cluster section',
        value: e.cluster,
      })
    }
  })
}

function checkDuplicates(
  items: unknown[],
  key: (item: Obj) => unknown,
  pathOf: (i: number) => string,
  what: string,
  issues: ConfigIssue[],
): void {
  const first = new Map<string, number>()
  items.forEach((item, i) => {
    if (!isObj(item)) return
    const k = key(item)
    if (typeof k !== 'string') return
    const prev = first.get(k)
    if (prev === undefined) first.set(k, i)
    else
      issues.push({
        path: pathOf(i),
        message: `duplicate ${what}; ${pathOf(prev)} already uses it`,
        value: k,
      })
  })
}

function checkWebhook(t: Obj, at: string, routes: Map<string, string>, issues: ConfigIssue[]): void {
  if (typeof t.path !== 'string') return
  if ((RESERVED_WEBHOOK_PATHS as readonly string[]).includes(t.path)) {
    issues.push({
      path: `${at}.path`,
      message: `is reserved for the server's own ${RESERVED_WEBHOOK_PATHS.join(' and ')} endpoints`,
      value: t.path,
    })
    return
  }
  const methods = t.methods === undefined ? ['POST'] : asArray(t.methods)
  const seen = new Set<string>()
  methods.forEach((m, j) => {
    if (typeof m !== 'string') return
    const upper = m.toUpperCase()
    const route = `${upper} ${t.path}`
    if (seen.has(upper)) {
      issues.push({ path: `${at}.methods[${j}]`, message: 'duplicate method', value: m })
      return
    }
    seen.add(upper)
    const owner = routes.get(route)
    if (owner === undefined) routes.set(route, at)
    else
      issues.push({
        path: `${at}.path`,
        message: `duplicate webhook route ${route}; ${owner} already serves it`,
        value: t.path,
      })
  })
}

function checkTimer(t: Obj, at: string, issues: ConfigIssue[]): void {
  const hasInterval = t.intervalMs !== undefined
  const hasCron = t.cron !== undefined
  if (hasInterval === hasCron) {
    issues.push({
      path: at,
      message: hasInterval ? 'set intervalMs or cron, not both' : 'a timer needs intervalMs or cron',
    })
  }
  if (t.timezone !== undefined && !hasCron) {
    issues.push({ path: `${at}.timezone`, message: 'applies to cron timers only', value: t.timezone })
  }
  if (typeof t.cron === 'string' && t.cron !== '') {
    const error = cronError(t.cron, typeof t.timezone === 'string' ? t.timezone : undefined)
    if (error)
      issues.push({
        path: error.field === 'timezone' ? `${at}.timezone` : `${at}.cron`,
        message: error.message,
        value: error.field === 'timezone' ? t.timezone : t.cron,
      })
  }
}

/** Why a cron expression (5 or 6 fields, or a nickname such as `@hourly`) or its time zone is refused. */
function cronError(
  cron: string,
  timezone: string | undefined,
): { field: 'cron' | 'timezone'; message: string } | undefined {
  if (timezone !== undefined) {
    try {
      new Intl.DateTimeFormat('en-US', { timeZone: timezone })
    } catch {
      return { field: 'timezone', message: "is not an IANA time zone (e.g. 'Europe/Berlin')" }
    }
  }
  const fields = cron.trim().split(/\s+/).length
  if (!cron.trim().startsWith('@') && fields !== 5 && fields !== 6) {
    return { field: 'cron', message: `must have 5 or 6 fields (got ${fields})` }
  }
  try {
    const job = new Cron(cron, { timezone, paused: true })
    if (job.nextRun() === null) return { field: 'cron', message: 'never fires' }
  } catch (err) {
    return { field: 'cron', message: `is not a valid cron expression: ${(err as Error).message}` }
  }
  return undefined
}

/**
 * What only the environment can make wrong: each webhook `secretEnv` variable that is unset or empty (a
 * signed webhook never runs unsigned by accident).
 */
export function environmentIssues(
  config: ResolvedRuntimeConfig,
  env: NodeJS.ProcessEnv = process.env,
): ConfigIssue[] {
  const cluster = config.cluster
  const redisMissing =
    cluster !== undefined && cluster.redis === undefined && (env.REDIS_URL ?? '') === ''
      ? [
          {
            path: 'cluster.redis',
            message: 'is not set and neither is the REDIS_URL environment variable; set one of them',
          },
        ]
      : []
  return redisMissing.concat(
    config.entryPoints.flatMap((ep, i) => {
      const t = ep.trigger
      if (t.type !== 'webhook' || t.secretEnv === undefined) return []
      const value = env[t.secretEnv]
      if (value !== undefined && value !== '') return []
      return [
        {
          path: `entryPoints[${i}].trigger.secretEnv`,
          message: `environment variable ${t.secretEnv} is not set (or empty); set it to the webhook's signing secret`,
          value: t.secretEnv,
        },
      ]
    }),
  )
}
