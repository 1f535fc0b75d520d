/**
 * Pool thread bootstrap (plain JavaScript, so it loads without any TypeScript tooling).
 *
 * When the runtime runs from its TypeScript sources, or a handler module is TypeScript, the thread first
 * registers the tsx loader from inside itself (on Node 20, loader hooks given to a worker through
 * `--import` do not reach its dynamic `import()`s; hooks registered in the thread do). Then it loads the
 * real worker entry and hands every task to it.
 */
import { workerData } from 'node:worker_threads'

const { entry, typescript } = workerData.bootstrap
if (typescript) {
  const { register } = await import('tsx/esm/api')
  register()
}
const worker = await import(entry)

export default function run(task) {
  return worker.default(task)
}
