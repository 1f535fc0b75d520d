/**
 * The run log's SQLite file: its schema and every statement that reads or writes it. The writer thread
 * owns the one writing connection ({@link LogStore.open}); `agentpool runs` reads through a read-only one
 * ({@link LogStore.openReadOnly}). Never used on the runtime's main thread.
 *
 * One process at a time: the writer also holds `<file>-lock`, an SQLite file in exclusive locking mode,
 * for as long as it runs; a second process's writer cannot take it and is refused. The operating system
 * releases it when the process dies, however it dies.
 *
 * @module
 */
import { mkdirSync } from 'node:fs'
import { dirname } from 'node:path'
import { DurabilityError } from '../errors.js'
import type { Recovery, RunRow, UnfinishedRun } from '../protocol.js'
import { type LogRow, Row, unpack, unpackRecords } from './codec.js'
import { type Database, type Statement, sqlite } from './sqlite.js'

const SCHEMA_VERSION = 1

/**
 * The page size of a new log file, twice SQLite's default. A run's row with a ticket-sized input (a KiB
 * or so) plus its records fills a 4 KiB page every few runs; with 8 KiB pages the B-trees split half as
 * often, each commit writes fewer, fuller pages to the WAL and each checkpoint copies fewer. The writer
 * spends noticeably less CPU per run on such rows, a little less on small ones (docs/benchmarks.md).
 */
export const PAGE_SIZE = 8192

const SCHEMA = `
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS runs (
  seq INTEGER PRIMARY KEY,
  id TEXT NOT NULL UNIQUE,
  entry_point TEXT NOT NULL,
  status TEXT NOT NULL,
  attempts INTEGER NOT NULL DEFAULT 0,
  priority REAL NOT NULL,
  correlation_id TEXT NOT NULL,
  timeout_ms INTEGER NOT NULL,
  depth INTEGER NOT NULL,
  input BLOB,
  meta BLOB,
  output BLOB,
  error BLOB,
  admitted_at INTEGER NOT NULL,
  started_at INTEGER,
  completed_at INTEGER
);
CREATE INDEX IF NOT EXISTS runs_open ON runs (status) WHERE status IN ('queued', 'running');
DROP INDEX IF EXISTS runs_completed;
CREATE TABLE IF NOT EXISTS idempotency (key TEXT PRIMARY KEY, execution_id TEXT NOT NULL, expires_at INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS state (
  scope TEXT NOT NULL, stream_id TEXT NOT NULL, key TEXT NOT NULL,
  value BLOB, deleted INTEGER NOT NULL, boot INTEGER NOT NULL, version INTEGER NOT NULL,
  PRIMARY KEY (scope, stream_id, key)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS records (seq INTEGER PRIMARY KEY, execution_id TEXT NOT NULL, kind TEXT NOT NULL, body BLOB NOT NULL);
CREATE INDEX IF NOT EXISTS records_execution ON records (execution_id);
CREATE TABLE IF NOT EXISTS timers (entry_point TEXT PRIMARY KEY, fired_at INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS snapshot (id INTEGER PRIMARY KEY CHECK (id = 1), through INTEGER NOT NULL, body BLOB NOT NULL);
`

const OPEN_STATUSES = "('queued', 'running')"
/** The `seq` of the first run admitted since `@cutoff` (every run to prune comes before it). */
const FIRST_RETAINED =
  'coalesce((SELECT seq FROM runs WHERE admitted_at >= @cutoff ORDER BY seq LIMIT 1), 1 << 62)'

/** Filters of {@link LogStore.list}. */
export interface RunFilter {
  status?: string
  entryPointId?: string
  limit?: number
}

/** One decision of a run, with its outcome (`agentpool runs <config> <id>`). */
export interface LoggedRecord {
  kind: string
  record: unknown
}

interface RunColumns {
  id: string
  entry_point: string
  status: RunRow['status']
  attempts: number
  priority: number
  correlation_id: string
  timeout_ms: number
  depth: number
  input: Buffer | null
  meta: Buffer | null
  output: Buffer | null
  error: Buffer | null
  admitted_at: number
  started_at: number | null
  completed_at: number | null
  conflicts: number
}

/**
 * The `records` table and the aggregator's snapshot. Every record the aggregator consumed is written, in the
 * order it was consumed, with a sequence number. The `snapshot` row holds the aggregator as it stood after the
 * records up to its `through` (written by `compaction.ts`); a restart restores it and replays only the
 * records after it. So the records a snapshot covers are needed only to show their runs
 * (`agentpool runs <config> <id>`): {@link LogStore.prune} deletes them once their run is pruned, or at once
 * when no run of that id is in the log (a decision the embedding service made). Sequence numbers are handed
 * out here, never reused, so a record written after a snapshot always sorts after it even when every record
 * before it was deleted.
 */
export class LogStore {
  private readonly s: Record<string, Statement>
  private readonly tx: (rows: readonly LogRow[]) => void
  /** The next record's sequence number (writing connection only). */
  private nextRecord = 1
  /** This process's boot number: with a commit's version it orders changes of one key across restarts. */
  readonly boot: number

  private constructor(
    readonly path: string,
    private readonly db: Database,
    private readonly lock: Database | undefined,
    boot: number,
  ) {
    this.boot = boot
    this.tx = db.transaction((rows: readonly LogRow[]) => this.write(rows))
    const p = (sql: string) => db.prepare(sql)
    this.s = lock === undefined ? {} : writeStatements(p)
    if (lock !== undefined) {
      const { last } = p(
        'SELECT max(coalesce((SELECT max(seq) FROM records), 0), coalesce((SELECT through FROM snapshot), 0)) AS last',
      ).get() as { last: number }
      this.nextRecord = last + 1
    }
    // A log written before snapshots existed, opened read-only, has no snapshot table: it has no snapshot.
    const snapshots =
      db.prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'snapshot'").get() !== undefined
    if (snapshots)
      Object.assign(this.s, {
        snapshotRow: p('SELECT through, body FROM snapshot'),
        snapshotThrough: p('SELECT through FROM snapshot'),
      })
    Object.assign(this.s, {
      recordRows: p('SELECT seq, body FROM records WHERE seq > ? ORDER BY seq LIMIT ?'),
      run: p('SELECT * FROM runs WHERE id = ?'),
      records: p('SELECT kind, body FROM records WHERE execution_id = ? ORDER BY seq'),
    })
  }

  /**
   * Opens (creating if missing) the log for writing, takes the process lock and counts a boot.
   * @throws DurabilityError naming the file: cannot be created or written, not a database, damaged, or in
   * use by another process.
   */
  static open(path: string, synchronous: 'normal' | 'full'): LogStore {
    const Sqlite = sqlite(path)
    let lock: Database | undefined
    let db: Database | undefined
    try {
      mkdirSync(dirname(path), { recursive: true })
    } catch (err) {
      throw new DurabilityError(path, `its folder cannot be created (${(err as Error).message})`, err)
    }
    try {
      lock = new Sqlite(`${path}-lock`, { timeout: 0 })
      lock.pragma('locking_mode = EXCLUSIVE')
      lock.exec('CREATE TABLE IF NOT EXISTS holder (pid INTEGER); DELETE FROM holder')
      lock.prepare('INSERT INTO holder VALUES (?)').run(process.pid)
    } catch (err) {
      lock?.close()
      throw new DurabilityError(path, describe(err, 'its lock file'), err)
    }
    try {
      db = new Sqlite(path, { timeout: 5000 })
      // Takes effect only while the file is still empty: a log created with another page size keeps it.
      db.pragma(`page_size = ${PAGE_SIZE}`)
      db.pragma('journal_mode = WAL')
      db.pragma(`synchronous = ${synchronous === 'full' ? 'FULL' : 'NORMAL'}`)
      db.exec(SCHEMA)
      addMissingColumns(db)
      const found = db.prepare("SELECT value FROM meta WHERE key = 'schema'").get() as
        | { value: number }
        | undefined
      if (found !== undefined && found.value !== SCHEMA_VERSION) {
        throw new DurabilityError(path, `was written by a newer agentpool (log schema ${found.value})`)
      }
      const boot = db.transaction(() => {
        db!.prepare("INSERT OR REPLACE INTO meta VALUES ('schema', ?)").run(SCHEMA_VERSION)
        db!
          .prepare("INSERT INTO meta VALUES ('boot', 1) ON CONFLICT(key) DO UPDATE SET value = value + 1")
          .run()
        return (db!.prepare("SELECT value FROM meta WHERE key = 'boot'").get() as { value: number }).value
      })()
      return new LogStore(path, db, lock, boot)
    } catch (err) {
      db?.close()
      lock.close()
      if (err instanceof DurabilityError) throw err
      throw new DurabilityError(path, describe(err, 'the file'), err)
    }
  }

  /** Opens an existing log for reading only (while a runtime may be writing it). */
  static openReadOnly(path: string): LogStore {
    const Sqlite = sqlite(path)
    try {
      const db = new Sqlite(path, { readonly: true, fileMustExist: true, timeout: 5000 })
      db.prepare('SELECT count(*) FROM runs').get()
      return new LogStore(path, db, undefined, 0)
    } catch (err) {
      throw new DurabilityError(path, describe(err, 'the file'), err)
    }
  }

  /** Writes a batch's rows (see `codec.ts`) in one transaction, in order. */
  apply(rows: readonly LogRow[]): void {
    this.tx(rows)
  }

  private write(rows: readonly LogRow[]): void {
    const s = this.s
    for (const r of rows) {
      switch (r[0]) {
        case Row.RUN:
          // The row holds the statement's parameters in order (codec.ts), then the idempotency key's.
          s.admit!.run(r.slice(1, 17))
          if (r[17] !== null) s.idempotency!.run(r[17], r[1], r[18])
          break
        case Row.START:
          s.start!.run(r[1], r[2], r[3])
          break
        case Row.END:
          s.end!.run(r[1], r[2], r[3], r[4], r[5], r[6], r[7], r[8])
          break
        case Row.STATE:
          s.state!.run(r[1], r[2], r[3], r[4], r[5], this.boot, r[6])
          break
        case Row.RECORD:
          s.record!.run(this.nextRecord++, r[1], r[2], r[3])
          break
        case Row.TIMER:
          s.timer!.run(r[1], r[2])
          break
      }
    }
  }

  /** Everything `start()` restores. */
  recover(now = Date.now()): Recovery {
    const state = (
      this.db.prepare('SELECT scope, stream_id, key, value FROM state WHERE deleted = 0').all() as {
        scope: 'stream' | 'global'
        stream_id: string
        key: string
        value: Buffer
      }[]
    ).map((r) => ({ scope: r.scope, streamId: r.stream_id, key: r.key, value: unpack(r.value) }))
    const idempotency = (
      this.db
        .prepare('SELECT key, execution_id, expires_at FROM idempotency WHERE expires_at > ?')
        .all(now) as { key: string; execution_id: string; expires_at: number }[]
    ).map((r) => ({ key: r.key, executionId: r.execution_id, expiresAt: r.expires_at }))
    const unfinished = (
      this.db
        .prepare(`SELECT * FROM runs WHERE status IN ${OPEN_STATUSES} ORDER BY seq`)
        .all() as RunColumns[]
    ).map(toUnfinished)
    const snapshot = this.snapshot()
    const records = (
      this.db.prepare('SELECT body FROM records WHERE seq > ? ORDER BY seq').all(snapshot?.through ?? 0) as {
        body: Buffer
      }[]
    ).flatMap((r) => unpackRecords(r.body))
    const timers: Record<string, number> = {}
    for (const r of this.db.prepare('SELECT entry_point, fired_at FROM timers').all() as {
      entry_point: string
      fired_at: number
    }[])
      timers[r.entry_point] = r.fired_at
    const recovery: Recovery = { state, idempotency, unfinished, records, timers }
    if (snapshot !== undefined) recovery.snapshot = unpack(snapshot.body)
    return recovery
  }

  /** The sequence number of the last record written (0: none yet). */
  get lastRecord(): number {
    return this.nextRecord - 1
  }

  /** The aggregator's snapshot and the last record it covers, if the log has one. */
  snapshot(): { through: number; body: Buffer } | undefined {
    return this.s.snapshotRow?.get() as { through: number; body: Buffer } | undefined
  }

  /** The last record the snapshot covers (0: no snapshot). */
  snapshotThrough(): number {
    return (this.s.snapshotThrough?.get() as { through: number } | undefined)?.through ?? 0
  }

  /** Up to `limit` rows of records after sequence number `after`, oldest first. */
  recordRows(after: number, limit: number): { seq: number; body: Buffer }[] {
    return this.s.recordRows!.all(after, limit) as { seq: number; body: Buffer }[]
  }

  /** Replaces the snapshot with `body`, which covers every record up to `through`. */
  saveSnapshot(through: number, body: Buffer): void {
    this.s.snapshot!.run(through, body)
  }

  /** One run, or undefined when the log does not have it (never admitted, or pruned). */
  lookup(executionId: string): RunRow | undefined {
    const row = this.s.run!.get(executionId) as RunColumns | undefined
    return row === undefined ? undefined : toRunRow(row)
  }

  /** Runs, newest first. */
  list(filter: RunFilter = {}): RunRow[] {
    const where: string[] = []
    const args: unknown[] = []
    if (filter.status !== undefined) {
      where.push('status = ?')
      args.push(filter.status)
    }
    if (filter.entryPointId !== undefined) {
      where.push('entry_point = ?')
      args.push(filter.entryPointId)
    }
    const sql = `SELECT * FROM runs ${where.length > 0 ? `WHERE ${where.join(' AND ')}` : ''} ORDER BY seq DESC LIMIT ?`
    return (this.db.prepare(sql).all(...args, filter.limit ?? 50) as RunColumns[]).map(toRunRow)
  }

  /** The decision, outcome, problem and violation records of one run, in the order they were made. */
  recordsOf(executionId: string): LoggedRecord[] {
    return (this.s.records!.all(executionId) as { kind: string; body: Buffer }[]).flatMap((r) =>
      r.kind === ''
        ? unpackRecords(r.body).map((record) => ({ kind: (record as { k: string }).k, record }))
        : [{ kind: r.kind, record: unpack(r.body) }],
    )
  }

  /**
   * Deletes runs finished before `now − retainMs`, expired idempotency keys, and the records the snapshot
   * covers that no run in the log needs any more (see the class's doc). One transaction.
   */
  prune(retainMs: number, now = Date.now()): void {
    const s = this.s
    const cutoff = now - retainMs
    this.db.transaction(() => {
      const through = this.snapshotThrough()
      s.pruneRunRecords!.run({ cutoff, through })
      s.pruneRuns!.run({ cutoff })
      const checked = (s.recordsChecked!.get() as { value: number } | undefined)?.value ?? 0
      if (through > checked) {
        s.pruneOrphanRecords!.run({ checked, through })
        s.setRecordsChecked!.run(through)
      }
      s.pruneKeys!.run(now)
    })()
  }

  /** `PRAGMA integrity_check`: 'ok', or what is wrong. */
  integrityCheck(): string {
    return (this.db.pragma('integrity_check') as { integrity_check: string }[])
      .map((r) => r.integrity_check)
      .join('; ')
  }

  close(): void {
    this.db.close()
    this.lock?.close()
  }
}

/** Columns added to a table after files of its first shape were written; each file gains them once. */
const ADDED_COLUMNS = [{ table: 'runs', column: 'conflicts', type: 'INTEGER NOT NULL DEFAULT 0' }]

function addMissingColumns(db: Database): void {
  for (const { table, column, type } of ADDED_COLUMNS) {
    const columns = db.pragma(`table_info(${table})`) as { name: string }[]
    if (!columns.some((c) => c.name === column)) db.exec(`ALTER TABLE ${table} ADD COLUMN ${column} ${type}`)
  }
}

function writeStatements(p: (sql: string) => Statement): Record<string, Statement> {
  return {
    admit:
      p(`INSERT OR IGNORE INTO runs (id, entry_point, status, attempts, priority, correlation_id, timeout_ms,
                depth, input, meta, output, error, admitted_at, started_at, completed_at, conflicts)
              VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`),
    idempotency: p('INSERT OR REPLACE INTO idempotency VALUES (?, ?, ?)'),
    start: p(`UPDATE runs SET status = 'running', attempts = ?, started_at = coalesce(started_at, ?)
              WHERE id = ? AND status IN ${OPEN_STATUSES}`),
    end: p(`UPDATE runs SET status = ?, attempts = ?, output = ?, error = ?, started_at = coalesce(started_at, ?),
              completed_at = ?, conflicts = ? WHERE id = ?`),
    state: p(`INSERT INTO state VALUES (?, ?, ?, ?, ?, ?, ?)
              ON CONFLICT (scope, stream_id, key) DO UPDATE SET value = excluded.value, deleted = excluded.deleted,
                boot = excluded.boot, version = excluded.version
              WHERE excluded.boot > state.boot OR (excluded.boot = state.boot AND excluded.version >= state.version)`),
    record: p('INSERT INTO records (seq, execution_id, kind, body) VALUES (?, ?, ?, ?)'),
    snapshot: p('INSERT OR REPLACE INTO snapshot VALUES (1, ?, ?)'),
    recordsChecked: p("SELECT value FROM meta WHERE key = 'records_checked'"),
    setRecordsChecked: p("INSERT OR REPLACE INTO meta VALUES ('records_checked', ?)"),
    // Records of the runs about to be pruned, when the snapshot covers them (else once it does, below).
    pruneRunRecords: p(`DELETE FROM records WHERE seq <= @through AND execution_id IN (SELECT id FROM runs
              WHERE completed_at < @cutoff AND status NOT IN ${OPEN_STATUSES} AND seq < ${FIRST_RETAINED})`),
    // Records the snapshot covers, not looked at before, of no run in the log: a main-thread decision's,
    // or a run's pruned before the snapshot covered its records.
    pruneOrphanRecords: p(`DELETE FROM records WHERE seq > @checked AND seq <= @through
              AND NOT EXISTS (SELECT 1 FROM runs WHERE runs.id = records.execution_id)`),
    timer: p('INSERT OR REPLACE INTO timers VALUES (?, ?)'),
    // Runs are in admission order and finish after they are admitted, so the runs to delete are among
    // those before the first admitted since the cutoff: a scan of them, without an index of completion times.
    pruneRuns: p(`DELETE FROM runs WHERE completed_at < @cutoff AND status NOT IN ${OPEN_STATUSES}
              AND seq < ${FIRST_RETAINED}`),
    pruneKeys: p('DELETE FROM idempotency WHERE expires_at <= ?'),
  }
}

function toUnfinished(r: RunColumns): UnfinishedRun {
  return {
    id: r.id,
    entryPointId: r.entry_point,
    input: unpack(r.input),
    priority: r.priority,
    correlationId: r.correlation_id,
    meta: (unpack(r.meta) ?? {}) as Record<string, unknown>,
    timeoutMs: r.timeout_ms,
    depth: r.depth,
    admittedAt: r.admitted_at,
    attempts: r.attempts,
    startedAt: r.started_at ?? 0,
  }
}

function toRunRow(r: RunColumns): RunRow {
  const row: RunRow = {
    id: r.id,
    entryPointId: r.entry_point,
    status: r.status,
    attempts: r.attempts,
    // A file written before the column existed, read without writing (agentpool runs), has none.
    conflicts: r.conflicts ?? 0,
    correlationId: r.correlation_id,
    input: unpack(r.input),
    meta: (unpack(r.meta) ?? {}) as Record<string, unknown>,
    admittedAt: r.admitted_at,
    startedAt: r.started_at,
    completedAt: r.completed_at,
  }
  if (r.output !== null) row.output = unpack(r.output)
  if (r.error !== null) row.error = unpack(r.error) as RunRow['error']
  return row
}

/** What went wrong with `what`, in words a user can act on. */
export function describe(err: unknown, what: string): string {
  const code = (err as { code?: string }).code ?? ''
  const message = (err as Error).message
  if (code === 'SQLITE_BUSY' || code.startsWith('SQLITE_BUSY') || /database is locked/.test(message))
    return 'is in use by another agentpool process (only one process may write a run log)'
  if (code === 'SQLITE_NOTADB')
    return `is not an SQLite database (${message}); move it away or point durability.path elsewhere`
  if (code.startsWith('SQLITE_CORRUPT'))
    return `is damaged (${message}); restore it from a backup or move it away`
  if (code.startsWith('SQLITE_FULL')) return `cannot be written: the disk is full (${message})`
  if (
    code.startsWith('SQLITE_CANTOPEN') ||
    code.startsWith('SQLITE_READONLY') ||
    code.startsWith('SQLITE_IOERR') ||
    code.startsWith('SQLITE_PERM')
  )
    return `${what} cannot be opened for writing (${message}); check the folder exists and is writable`
  return `${what} cannot be used (${code === '' ? '' : `${code}: `}${message})`
}
