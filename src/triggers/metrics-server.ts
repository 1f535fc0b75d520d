/**
 * The metrics server of its own (`metrics: { host, port }`): `GET /metrics` (Prometheus text) and
 * `GET /healthz`, for a runtime with or without webhook entry points. Plain `node:http`: two fixed routes
 * and no request bodies need nothing more.
 *
 * @module
 */
import { createServer, type Server } from 'node:http'
import { listenOn } from './listen.js'
import type { TriggerMetrics } from './metrics.js'

export class MetricsServer {
  private constructor(
    private readonly server: Server,
    /** `http://host:port` of the server. */
    readonly url: string,
  ) {}

  /**
   * Listens on `host:port` (0 picks a free port).
   * @throws {PortInUseError} when the port is taken.
   */
  static async start(metrics: TriggerMetrics, host: string, port: number): Promise<MetricsServer> {
    const server = createServer((req, res) => {
      const path = (req.url ?? '/').split('?')[0]
      if (req.method === 'GET' && path === '/metrics') {
        metrics.render().then(
          (text) => {
            res.writeHead(200, { 'content-type': metrics.contentType })
            res.end(text)
          },
          () => answer(res, 500, 'AGENTPOOL_INTERNAL', 'metrics could not be collected'),
        )
      } else if (req.method === 'GET' && path === '/healthz') {
        res.writeHead(200, { 'content-type': 'application/json' })
        res.end('{"status":"ok"}')
      } else {
        answer(
          res,
          404,
          'AGENTPOOL_WEBHOOK_NOT_FOUND',
          'the metrics server answers GET /metrics and GET /healthz',
        )
      }
    })
    const url = await listenOn(server, 'metrics', host, port)
    return new MetricsServer(server, url)
  }

  /** Stops accepting connections and closes idle ones. */
  async close(): Promise<void> {
    await new Promise<void>((resolve) => {
      this.server.close(() => resolve())
      this.server.closeIdleConnections()
    })
  }
}

function answer(
  res: import('node:http').ServerResponse,
  status: number,
  code: string,
  message: string,
): void {
  res.writeHead(status, { 'content-type': 'application/json' })
  res.end(JSON.stringify({ error: { code, message } }))
}
