import { randomUUID } from 'node:crypto'
import { BroadcastChannel } from 'node:worker_threads'

/**
 * A fresh BroadcastChannel a pool thread can post to: its name, and a promise of the first message posted
 * on it. `onCleanup` receives the closing of the channel (for a test's afterEach).
 */
export function listen(onCleanup: (fn: () => Promise<void>) => void): {
  name: string
  message: Promise<unknown>
} {
  const name = `listen-${randomUUID()}`
  const channel = new BroadcastChannel(name)
  const message = new Promise((resolve) => {
    channel.onmessage = (event) => {
      channel.close()
      resolve((event as { data: unknown }).data)
    }
  })
  onCleanup(async () => channel.close())
  return { name, message }
}
