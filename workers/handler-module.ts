/**
 * Loading a handler module on a pool thread, and saying exactly why one does not load.
 *
 * Modules are imported through the importer `workers/bootstrap.mjs` hands over: a TypeScript module
 * (`.ts`, `.mts`, `.cts`) through tsx, scoped to that one import (so it loads in an ESM and in a CommonJS
 * project alike), any other with plain `import()`. A module's handler is its default export, its
 * `handler` export, or — for CommonJS — `module.exports` itself or its `default`/`handler` property.
 *
 * Every failure is a {@link HandlerModuleError} whose message names the file, the cause and the fix.
 *
 * @module
 */
import { pathToFileURL } from 'node:url'
import { HandlerModuleError } from '../src/errors.js'
import type { Handler } from '../src/handler.js'

/** Imports the module at an absolute path. */
export type ModuleImporter = (path: string) => Promise<Record<string, unknown>>

let importer: ModuleImporter = (path) => import(pathToFileURL(path).href)

/** Called once by the bootstrap, before any task, with the importer that knows about TypeScript. */
export function setModuleImporter(fn: ModuleImporter): void {
  importer = fn
}

const EXPORT_FIX =
  'export one: `export default defineHandler(async (input, ctx) => …)` (ESM) or `module.exports = async (input, ctx) => …` (CommonJS)'

/** The handler a module exports, if any. */
export function findHandler(mod: Record<string, unknown>): Handler | undefined {
  const candidates: unknown[] = [mod.default, mod.handler]
  const inner = mod.default
  if (inner !== null && (typeof inner === 'object' || typeof inner === 'function')) {
    const obj = inner as Record<string, unknown>
    candidates.push(obj.default, obj.handler)
  }
  return candidates.find((c) => typeof c === 'function') as Handler | undefined
}

/**
 * Imports `path` and returns its handler.
 * @throws {HandlerModuleError} naming the file, why it did not load or has no handler, and the fix.
 */
export async function loadHandlerModule(path: string): Promise<Handler> {
  let mod: Record<string, unknown>
  try {
    mod = await importer(path)
  } catch (err) {
    throw new HandlerModuleError(`handler module ${path} could not be loaded: ${explainLoadFailure(err)}`, {
      handler: path,
    })
  }
  const handler = findHandler(mod)
  if (handler === undefined) {
    const names = Object.keys(mod)
    throw new HandlerModuleError(
      `handler module ${path} does not export a handler (its exports: ${names.length > 0 ? names.join(', ') : 'none'}); ${EXPORT_FIX}`,
      { handler: path },
    )
  }
  return handler
}

/** The cause of an import failure, and the fix where a common one applies. */
export function explainLoadFailure(err: unknown): string {
  const message = err instanceof Error ? err.message : String(err)
  const code = (err as { code?: unknown } | null)?.code
  if (code === 'AGENTPOOL_HANDLER_MODULE') return message
  if (/Unexpected token 'export'|Cannot use import statement outside a module/.test(message)) {
    return `${message} — the file uses ESM syntax (import/export) but Node loads it as CommonJS, because the nearest package.json has no "type": "module". Fix: rename it to .mjs (or .mts), or add "type": "module" to that package.json`
  }
  if (/(module|require|exports) is not defined in ES module scope/.test(message)) {
    return `${message} — the file uses CommonJS (require/module.exports) but Node loads it as ESM, because the nearest package.json has "type": "module". Fix: rename it to .cjs (or .cts), or use import/export`
  }
  if (code === 'ERR_REQUIRE_CYCLE_MODULE' || code === 'ERR_REQUIRE_ESM') {
    return `${message} — a CommonJS module require()s an ES module. Fix: make the handler an ES module (.mjs/.mts, or "type": "module")`
  }
  if (code === 'ERR_MODULE_NOT_FOUND' || code === 'MODULE_NOT_FOUND') {
    return `${message} — install the missing package in the project, or fix the import path`
  }
  return message
}
