/** Cluster hosts as child processes (test/fixtures/cluster/host.ts), driven over IPC. */
import { type ChildProcess, fork } from 'node:child_process'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'

const HOST = fileURLToPath(new URL('../fixtures/cluster/host.ts', import.meta.url))
const ROOT = fileURLToPath(new URL('../..', import.meta.url))
export const WORK = fileURLToPath(new URL('../fixtures/cluster/work.ts', import.meta.url))

export interface CallError {
  code?: string
  message: string
}

export class Host {
  readonly child: ChildProcess
  readonly ready: Promise<{ url?: string; pid: number }>
  readonly exited: Promise<void>
  private ref = 0
  private readonly pending = new Map<
    number,
    { resolve: (v: unknown) => void; reject: (e: unknown) => void }
  >()

  constructor(config: string, env: NodeJS.ProcessEnv = {}) {
    this.child = fork(HOST, [config], {
      execArgv: ['--import', 'tsx'],
      cwd: ROOT,
      env: { ...process.env, ...env },
      stdio: ['ignore', 'ignore', 'inherit', 'ipc'],
    })
    this.exited = new Promise((resolve) => this.child.once('exit', () => resolve()))
    this.ready = new Promise((resolve, reject) => {
      this.child.on('message', (m: Record<string, unknown>) => {
        if (m.kind === 'ready') resolve(m as never)
        else if (m.kind === 'start_failed')
          reject(Object.assign(new Error(String(m.message)), { code: m.code }))
        else if (m.kind === 'reply') {
          const p = this.pending.get(m.ref as number)
          this.pending.delete(m.ref as number)
          if (m.error !== undefined)
            p?.reject(Object.assign(new Error((m.error as CallError).message), m.error))
          else p?.resolve(m.value)
        }
      })
      void this.exited.then(() => {
        reject(new Error('the host exited before it was ready'))
        for (const p of this.pending.values()) p.reject(new Error('the host exited'))
        this.pending.clear()
      })
    })
  }

  /** Calls `runtime[method](...args)` in the host (`cluster.x` for `runtime.cluster.x`). */
  call<T = unknown>(method: string, ...args: unknown[]): Promise<T> {
    const ref = this.ref++
    return new Promise<T>((resolve, reject) => {
      this.pending.set(ref, { resolve: resolve as (v: unknown) => void, reject })
      this.child.send({ kind: 'call', ref, method, args })
    })
  }

  /** Stops the runtime (with drain unless told otherwise) and waits for the process to exit. */
  async stop(drain = true): Promise<void> {
    if (this.child.exitCode === null && this.child.signalCode === null)
      this.child.send({ kind: 'stop', drain })
    await this.exited
  }

  kill(): Promise<void> {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill('SIGKILL')
    return this.exited
  }
}

/** Writes a cluster config into `dir`: `entryPoints` are its entry points (YAML lines). */
export function writeClusterConfig(
  dir: string,
  redisUrl: string,
  entryPoints: string[],
  stalledMs = 1500,
): string {
  const path = join(dir, 'agent.yaml')
  writeFileSync(
    path,
    [
      'pool: { threads: 1, tasksPerThread: 8 }',
      'goal: { id: work, description: do the work, successCriteria: [{ id: done, description: done, target: 0.9 }] }',
      `cluster: { redis: ${JSON.stringify(redisUrl)}, stalledMs: ${stalledMs} }`,
      'entryPoints:',
      ...entryPoints.map((e) => `  - ${e}`),
      '',
    ].join('\n'),
  )
  return path
}
