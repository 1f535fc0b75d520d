/**
 * Where the pool threads' code lives: `workers/bootstrap.mjs` (plain JavaScript) loads a worker entry —
 * the built one under `dist/workers/`, or the TypeScript source when agentpool runs from its sources.
 *
 * @module
 */
import { fileURLToPath } from 'node:url'

const fromSource = import.meta.url.endsWith('.ts')
// From src/runtime/ (sources) or dist/src/runtime/ (built), the package root is two or three folders up.
const packageRoot = new URL(fromSource ? '../../' : '../../../', import.meta.url)

/** The thread bootstrap every pool starts its threads with. */
const bootstrapFile = fileURLToPath(new URL('workers/bootstrap.mjs', packageRoot))

/** Piscina options that start threads through the bootstrap with the worker entry `name` (a file of `workers/`). */
export function poolBootstrap(
  name: string,
  workerData: object = {},
): { filename: string; workerData: Record<string, unknown> } {
  const entry = new URL(fromSource ? `workers/${name}.ts` : `dist/workers/${name}.js`, packageRoot).href
  return { filename: bootstrapFile, workerData: { ...workerData, bootstrap: { entry } } }
}
