/**
 * A pool thread entry that only loads handler modules: `agentpool validate` (and
 * `checkHandlerModules`) run it on one thread to prove every handler loads and exports a handler the way
 * an execution would load it.
 *
 * @module
 */
import { loadHandlerModule } from './handler-module.js'

export { setModuleImporter } from './handler-module.js'

/** Loads each module; the answer is, per module in order, `null` or why it failed. */
export default async function check(task: { handlers: string[] }): Promise<(string | null)[]> {
  return Promise.all(
    task.handlers.map((path) =>
      loadHandlerModule(path).then(
        () => null,
        (err: unknown) => (err instanceof Error ? err.message : String(err)),
      ),
    ),
  )
}
