/**
 * better-sqlite3, loaded only when `durability` is configured: it is an optional dependency (a native
 * addon), so installs that do not use the run log never build or ship it.
 *
 * @module
 */
import { createRequire } from 'node:module'
import type BetterSqlite3 from 'better-sqlite3'
import { DurabilityError } from '../errors.js'

export type Database = BetterSqlite3.Database
export type Statement = BetterSqlite3.Statement

let loaded: typeof BetterSqlite3 | undefined

/**
 * The better-sqlite3 constructor.
 * @throws DurabilityError naming `path` when the package is not installed or its addon does not load.
 */
export function sqlite(path: string): typeof BetterSqlite3 {
  if (loaded !== undefined) return loaded
  try {
    loaded = createRequire(import.meta.url)('better-sqlite3') as typeof BetterSqlite3
    return loaded
  } catch (err) {
    const missing = (err as { code?: string }).code === 'MODULE_NOT_FOUND'
    throw new DurabilityError(
      path,
      missing
        ? 'the run log needs better-sqlite3, an optional dependency that is not installed: run `npm install better-sqlite3@12`'
        : `better-sqlite3 is installed but does not load (${(err as Error).message}); reinstall it with \`npm rebuild better-sqlite3\``,
      err,
    )
  }
}
