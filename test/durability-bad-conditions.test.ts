import { execFileSync, fork } from 'node:child_process'
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { afterEach, describe, expect, it } from 'vitest'
import { packSnapshot } from '../src/durability/codec.js'
import { LogStore } from '../src/durability/index.js'
import { AgentRuntime, DurabilityError, ErrorCode, type RuntimeConfig } from '../src/index.js'
import { durableConfig } from './helpers/durable.js'

const HOST = fileURLToPath(new URL('./fixtures/durability/host.ts', import.meta.url))
const ROOT = fileURLToPath(new URL('..', import.meta.url))

const cleanups: (() => void | Promise<void>)[] = []
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c()
})

function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'agentpool-bad-log-'))
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }))
  return dir
}

/** start() must fail with AGENTPOOL_DURABILITY naming `file`; the runtime admits nothing. */
async function expectRefused(config: RuntimeConfig, file: string, problem: RegExp): Promise<void> {
  const rt = new AgentRuntime(config)
  const err = await rt.start().then(
    () => undefined,
    (e: unknown) => e,
  )
  cleanups.push(() => rt.stop({ drain: false }))
  expect(err).toBeInstanceOf(DurabilityError)
  expect((err as DurabilityError).code).toBe(ErrorCode.DURABILITY)
  expect((err as Error).message).toContain(file)
  expect((err as Error).message).toMatch(problem)
  await expect(rt.trigger('api', {})).rejects.toMatchObject({ code: ErrorCode.NOT_RUNNING })
}

/** Mounts a tmpfs of `kb` KiB (needs root); undefined where the machine does not allow it. */
function smallDisk(kb: number): string | undefined {
  const dir = tempDir()
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${kb}k`, 'tmpfs', dir], { stdio: 'ignore' })
  } catch {
    return undefined
  }
  cleanups.push(() => void execFileSync('umount', [dir]))
  return dir
}

/** Fills the file system holding `dir` until it has no space left. */
function fill(dir: string): void {
  try {
    for (let i = 0; ; i++) writeFileSync(join(dir, `filler-${i}`), Buffer.alloc(16 * 1024))
  } catch (err) {
    expect((err as { code?: string }).code).toBe('ENOSPC')
  }
}

describe('a run log that cannot be used', () => {
  it('refuses start() when the log folder cannot be created', async () => {
    const dir = tempDir()
    writeFileSync(join(dir, 'not-a-folder'), 'x')
    const file = join(dir, 'not-a-folder', 'runs.db')
    await expectRefused(durableConfig(dir, { durability: { path: file } }), file, /folder cannot be created/)
  })

  it('refuses start() when the file is not an SQLite database', async () => {
    const dir = tempDir()
    mkdirSync(join(dir, 'data'))
    const file = join(dir, 'data', 'runs.db')
    writeFileSync(file, Buffer.alloc(8192, 0x5a))
    await expectRefused(durableConfig(dir), file, /not an SQLite database/)
  })

  it('refuses start() when the log holds a snapshot of the goal this version cannot read', async () => {
    const dir = tempDir()
    mkdirSync(join(dir, 'data'))
    const file = join(dir, 'data', 'runs.db')
    const store = LogStore.open(file, 'normal')
    store.saveSnapshot(0, packSnapshot({ v: 2 }))
    store.close()
    await expectRefused(durableConfig(dir), file, /snapshot of the goal's counters this version cannot read/)
  })

  it('refuses start() when the disk is full', async (ctx) => {
    const disk = smallDisk(256)
    if (disk === undefined) return ctx.skip('mounting a small tmpfs needs root')
    fill(disk)
    const file = join(disk, 'runs.db')
    await expectRefused(durableConfig(disk, { durability: { path: file } }), file, /disk is full|cannot be/)
  })

  it('stops acknowledging once the disk fills up while running', async (ctx) => {
    const disk = smallDisk(512)
    if (disk === undefined) return ctx.skip('mounting a small tmpfs needs root')
    const file = join(disk, 'runs.db')
    const rt = new AgentRuntime(durableConfig(disk, { durability: { path: file, syncMs: 0 } }))
    await rt.start()
    cleanups.push(() => rt.stop({ drain: false }))
    fill(disk)
    const big = 'x'.repeat(64 * 1024)
    const err = await (async () => {
      for (let i = 0; i < 100; i++)
        await rt.trigger('api', { delivery: `d${i}`, marker: join(disk, 'm'), big })
    })().then(
      () => undefined,
      (e: unknown) => e,
    )
    expect(err).toBeInstanceOf(DurabilityError)
    expect((err as Error).message).toContain(file)
    expect((err as Error).message).toMatch(/disk is full/)
  })

  it('refuses a second process on the same log file', async () => {
    const dir = tempDir()
    const config = join(dir, 'agent.json')
    writeFileSync(config, JSON.stringify({ ...durableConfig(dir), baseDir: undefined }))
    const child = fork(HOST, [config], {
      execArgv: ['--import', 'tsx'],
      cwd: ROOT,
      stdio: ['ignore', 'ignore', 'inherit', 'ipc'],
    })
    cleanups.push(() => void child.kill('SIGKILL'))
    const ready = await new Promise<{ kind: string }>((resolve) => child.once('message', resolve as never))
    expect(ready.kind).toBe('ready')
    const file = join(dir, 'data', 'runs.db')
    await expectRefused(durableConfig(dir), file, /in use by another agentpool process/)
  })
})
