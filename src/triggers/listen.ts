/**
 * Listening on a configured address, with a coded error when the port is taken instead of a raw
 * `EADDRINUSE` stack.
 *
 * @module
 */
import type { Server } from 'node:http'
import { PortInUseError } from '../errors.js'

/**
 * Starts `server` listening on `host:port` and resolves with its `http://host:port` URL.
 * @throws {PortInUseError} when another process (or runtime) holds the port; `config` names the option.
 */
export async function listenOn(
  server: Server,
  config: 'webhook' | 'metrics',
  host: string,
  port: number,
): Promise<string> {
  await new Promise<void>((resolve, reject) => {
    const onError = (err: NodeJS.ErrnoException) => {
      reject(err.code === 'EADDRINUSE' ? new PortInUseError(`${config}.port`, host, port) : err)
    }
    server.once('error', onError)
    server.listen({ host, port }, () => {
      server.off('error', onError)
      resolve()
    })
  })
  return urlOf(server, host, port)
}

/** The `http://host:port` of a listening server. */
export function urlOf(server: Server, host: string, port: number): string {
  const address = server.address()
  const actual = typeof address === 'object' && address !== null ? address.port : port
  return `http://${host.includes(':') ? `[${host}]` : host}:${actual}`
}

/** `err` as a {@link PortInUseError} when it is an `EADDRINUSE` for `config`'s port; else unchanged. */
export function explainListenError(
  err: unknown,
  config: 'webhook' | 'metrics',
  host: string,
  port: number,
): unknown {
  return (err as NodeJS.ErrnoException | null)?.code === 'EADDRINUSE'
    ? new PortInUseError(`${config}.port`, host, port)
    : err
}
