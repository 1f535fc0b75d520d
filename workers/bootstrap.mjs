/**
 * Pool thread bootstrap (plain JavaScript, so it loads without any TypeScript tooling).
 *
 * It loads the worker entry named in `workerData.bootstrap` and hands every task to it. It also gives the
 * entry the importer for handler modules: a TypeScript module (`.ts`, `.mts`, `.cts`) is loaded through
 * tsx, scoped to that one import, so it works in an ESM and in a CommonJS project alike and leaves every
 * other module to Node; any other module is a plain `import()` from here, outside any loader.
 *
 * tsx is an optional peer dependency: only TypeScript handler modules (or agentpool running from its own
 * sources) need it. When agentpool runs from its sources, the entry itself is loaded through tsx in a
 * namespace of its own (Node 20 does not pass loader flags on to a worker's dynamic imports; hooks
 * registered in the thread do work).
 */
import { pathToFileURL } from 'node:url'
import { workerData } from 'node:worker_threads'

const TYPESCRIPT = /\.[cm]?tsx?$/

let tsx
function loadTsx() {
  tsx ??= import('tsx/esm/api').catch((err) => {
    tsx = undefined
    throw Object.assign(
      new Error(
        `TypeScript handler modules need tsx, an optional peer dependency of agentpool, and it could not be loaded (${err.message}). Fix: npm install tsx`,
      ),
      { code: 'AGENTPOOL_HANDLER_MODULE' },
    )
  })
  return tsx
}

/** Imports the module at an absolute path. */
async function importModule(path) {
  const url = pathToFileURL(path).href
  if (!TYPESCRIPT.test(path)) return import(url)
  const { tsImport } = await loadTsx()
  return tsImport(url, import.meta.url)
}

const { entry } = workerData.bootstrap
const worker = TYPESCRIPT.test(entry)
  ? await (await loadTsx()).register({ namespace: 'agentpool' }).import(entry, import.meta.url)
  : await import(entry)
worker.setModuleImporter?.(importModule)

export default function run(task) {
  return worker.default(task)
}
