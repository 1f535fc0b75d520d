import { fileURLToPath } from 'node:url'
import type { EntryPointConfig, RuntimeConfig } from '../../src/config/index.js'
import { AgentRuntime } from '../../src/index.js'

/** Absolute path of a handler in test/fixtures/handlers. */
export function fixture(name: string): string {
  return fileURLToPath(new URL(`../fixtures/handlers/${name}.ts`, import.meta.url))
}

/** An api entry point running a fixture handler. */
export function api(id: string, handler: string, extra: Partial<EntryPointConfig> = {}): EntryPointConfig {
  return { id, handler: fixture(handler), trigger: { type: 'api' }, ...extra }
}

/** Starts a runtime with two threads (unless told otherwise) and stops it when the test ends. */
export async function startRuntime(
  config: Partial<RuntimeConfig> & Pick<RuntimeConfig, 'entryPoints'>,
  onCleanup: (fn: () => Promise<void>) => void,
): Promise<AgentRuntime> {
  const runtime = new AgentRuntime({ pool: { threads: 2, tasksPerThread: 4 }, ...config })
  await runtime.start()
  onCleanup(() => runtime.stop({ drain: false }))
  return runtime
}
