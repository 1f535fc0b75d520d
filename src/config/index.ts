/**
 * Configuration: the public option types, validation and defaults (`resolveConfig`), and config files
 * (`loadConfigFile`). The only door into this folder.
 *
 * @module
 */
export { cronError, findHandlerModule, RESERVED_WEBHOOK_PATHS } from './checks.js'
export { loadConfigFile } from './load.js'
export { type ResolveOptions, resolveConfig } from './resolve.js'
export { MAX_TIMER_MS, parseTarget, WEBHOOK_METHODS } from './schema.js'
export type * from './types.js'
