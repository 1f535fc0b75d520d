/**
 * Configuration: the public option types, validation and defaults (`resolveConfig`), and config files
 * (`loadConfigFile`). The only door into this folder.
 *
 * @module
 */
export { environmentIssues, RESERVED_WEBHOOK_PATHS } from './checks.js'
export { goalIssues, type NormalizedCriterion, type NormalizedGoal, normalizeGoal } from './goal.js'
export { loadConfigFile } from './load.js'
export { type ResolveOptions, resolveConfig } from './resolve.js'
export { parseTarget } from './schema.js'
export type * from './types.js'
export { IsolationLevel } from './types.js'
