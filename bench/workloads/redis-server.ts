/**
 * A redis-server of the caller's own (tests and benchmarks): started on a free port of 127.0.0.1 with
 * its files in a temporary folder, stopped (or killed and restarted on the same port and folder) by the
 * caller. Never touches 127.0.0.1:6379.
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

/** The redis-server binary, or undefined when none is installed. */
export function redisServerPath(): string | undefined {
  try {
    return execFileSync('sh', ['-c', 'command -v redis-server'], { encoding: 'utf8' }).trim() || undefined
  } catch {
    return undefined
  }
}

/** A free TCP port on 127.0.0.1. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer()
    server.once('error', reject)
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number }
      server.close(() => resolve(port))
    })
  })
}

export interface TestRedis {
  readonly port: number
  readonly url: string
  /** Stops the server: SIGKILL (a crash) or SIGTERM (a clean shutdown). */
  stop(signal?: 'SIGKILL' | 'SIGTERM'): Promise<void>
  /** Starts it again on the same port and folder (with `durable`, it reloads its append-only file). */
  restart(): Promise<void>
  /** Stops the server and removes its folder. */
  dispose(): Promise<void>
  /**
   * CPU time the running server has used so far, in microseconds (user + system, in clock ticks of
   * usually 10 ms); undefined where `/proc` does not tell (not Linux).
   */
  cpuUs(): number | undefined
}

/**
 * Starts a redis-server. `durable`: append-only file fsynced on every write, so a SIGKILL loses nothing
 * it acknowledged; otherwise nothing is written to disk.
 */
export async function startRedis(opts: { durable?: boolean } = {}): Promise<TestRedis> {
  const bin = redisServerPath()
  if (bin === undefined) throw new Error('redis-server is not installed')
  const port = await freePort()
  const dir = mkdtempSync(join(tmpdir(), 'agentpool-redis-'))
  const args = ['--port', String(port), '--bind', '127.0.0.1', '--dir', dir, '--save', '']
  args.push(...(opts.durable ? ['--appendonly', 'yes', '--appendfsync', 'always'] : ['--appendonly', 'no']))
  let child: ChildProcess | undefined
  const launch = async (): Promise<void> => {
    const c = spawn(bin, args, { stdio: ['ignore', 'pipe', 'inherit'] })
    child = c
    await new Promise<void>((resolve, reject) => {
      let out = ''
      c.stdout!.on('data', (chunk: Buffer) => {
        out += chunk.toString()
        if (out.includes('Ready to accept connections')) resolve()
      })
      c.once('exit', (code) =>
        reject(new Error(`redis-server exited (${code}) before it was ready:\n${out}`)),
      )
    })
    c.stdout!.resume()
  }
  const stop = async (signal: 'SIGKILL' | 'SIGTERM' = 'SIGTERM'): Promise<void> => {
    const c = child
    child = undefined
    if (c === undefined || c.exitCode !== null || c.signalCode !== null) return
    const exited = new Promise((resolve) => c.once('exit', resolve))
    c.kill(signal)
    await exited
  }
  await launch()
  return {
    port,
    url: `redis://127.0.0.1:${port}`,
    stop,
    restart: launch,
    cpuUs: () => (child?.pid === undefined ? undefined : processCpuUs(child.pid)),
    async dispose() {
      await stop('SIGKILL')
      rmSync(dir, { recursive: true, force: true })
    },
  }
}

/** Clock ticks per second of `/proc/<pid>/stat` (`getconf CLK_TCK`; 100 on Linux everywhere in practice). */
const CLOCK_TICKS = 100

/** User + system CPU time of process `pid` in microseconds, from `/proc`; undefined when it cannot be read. */
function processCpuUs(pid: number): number | undefined {
  try {
    // Fields after the command name (which may hold spaces): state is the 3rd field, utime the 14th.
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
    return ((Number(fields[11]) + Number(fields[12])) * 1e6) / CLOCK_TICKS
  } catch {
    return undefined
  }
}
