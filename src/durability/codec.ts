/**
 * How the run log stores values and how a batch of operations travels to the writer thread.
 *
 * Values (inputs, meta, outputs, errors, state values) are msgpack as the state regions keep them
 * (msgpackr records, so a plain object and a `Map` are told apart) with structured clone on top (cycles
 * and shared objects): a `Map`, `Set`, `Date`, `bigint` or typed array comes back as what it was. Their
 * bytes start with 0xC1, a byte msgpack never uses, which tells them from values of logs written before,
 * read as they were written (a `Map` among those comes back as an object). Decision, outcome, problem and
 * violation records are plain msgpack without structured clone, the cheapest: they arrive through the
 * record channel, which carries no cycles, and read back like the values of earlier logs (one that holds a
 * cycle after all is written as a value).
 *
 * A batch is encoded once, on the main thread, into one buffer that is transferred (not cloned) to the
 * writer: a msgpack array of rows, each row the tag of its statement followed by that statement's
 * parameters in order, with every value already packed into the bytes its column stores. The writer binds
 * the rows as they come; it packs nothing and walks no object graph.
 *
 * @module
 */
import { Packr, Unpackr } from 'msgpackr'
import type { AdmitOp, EndOp, LogOp, RecordOp, StateOp } from '../protocol.js'
import { MsgpackWriter } from './msgpack-writer.js'

const packr = new Packr({ structuredClone: true, useRecords: true, moreTypes: true, mapsAsObjects: false })
/** Reads records, and every value of logs written before values were marked. */
const plain = new Packr({ structuredClone: true, useRecords: false })
/** Writes records (acyclic: the record channel they came through has no structured clone). */
const recordPackr = new Packr({ useRecords: false, moreTypes: true })
/** The first byte of a value packed by `packr` (it tells a row of records written as a value from a plain one). */
export const MARK = 0xc1
/** Reads records one by one, as {@link recordPackr} writes them: plain msgpack, maps as objects. */
export const recordUnpackr = new Unpackr({ useRecords: false, moreTypes: true })

/** One record's bytes, as a row of records holds it. */
export function packRecord(record: unknown): Uint8Array {
  return recordPackr.pack(record)
}

/** One record from its bytes in a row of records (see `compaction.ts`). */
export function decodeRecord(bytes: Uint8Array): unknown {
  return recordUnpackr.unpack(bytes)
}

/** Reads frames (`msgpack-writer.ts`): plain msgpack, so a packed value's `bin` is a `Buffer` slice, not a copy. */
const framer = new Packr({ useRecords: false })

export function unpack(bytes: Buffer | null | undefined): unknown {
  if (bytes === null || bytes === undefined) return undefined
  return bytes[0] === MARK ? packr.unpack(bytes.subarray(1)) : plain.unpack(bytes)
}

/** The statement a row binds to, its first element. */
export const Row = { RUN: 0, START: 1, END: 2, STATE: 3, RECORD: 4, TIMER: 5 } as const

type Blob = Buffer | null
type Num = number | null

/**
 * One row of a batch. `RUN` inserts a run (with its final status when it ended within the batch) and its
 * idempotency key; the others are `UPDATE`s or upserts of one row each.
 */
export type LogRow =
  | [
      typeof Row.RUN,
      id: string,
      entryPoint: string,
      status: string,
      attempts: number,
      priority: number,
      correlationId: string,
      timeoutMs: number,
      depth: number,
      input: Blob,
      meta: Blob,
      output: Blob,
      error: Blob,
      admittedAt: number,
      startedAt: Num,
      completedAt: Num,
      conflicts: number,
      idempotencyKey: string | null,
      expiresAt: Num,
    ]
  | [typeof Row.START, attempt: number, startedAt: number, id: string]
  | [
      typeof Row.END,
      status: string,
      attempts: number,
      output: Blob,
      error: Blob,
      startedAt: number,
      completedAt: number,
      conflicts: number,
      id: string,
    ]
  | [
      typeof Row.STATE,
      scope: string,
      streamId: string,
      key: string,
      value: Blob,
      deleted: 0 | 1,
      version: number,
    ]
  | [typeof Row.RECORD, executionId: string, kind: string, body: Buffer]
  | [typeof Row.TIMER, entryPointId: string, firedAt: number]

/**
 * The last frozen plain object of primitives packed, and its bytes. Every api admission of a runtime
 * shares one frozen `ctx.meta` (`{ trigger: 'api' }`): it is packed once, not once per admission. Such an
 * object cannot change, so its bytes stay right for as long as it is the one seen.
 */
let frozen: object | undefined
let frozenBytes: Uint8Array = new Uint8Array(0)

/** Whether every own value of `o` is a primitive (freezing is shallow: an object inside could still change). */
function primitivesOnly(o: object): boolean {
  for (const k of Object.keys(o)) {
    const x = (o as Record<string, unknown>)[k]
    if (typeof x === 'object' ? x !== null : typeof x === 'function') return false
  }
  return true
}

/**
 * A value packed by `packr`, after the mark. A number, a short ASCII string and the frozen object of last
 * time are written without a trip through msgpackr.
 */
function packed(w: MsgpackWriter, v: unknown): void {
  const type = typeof v
  if ((type === 'number' || type === 'string') && w.scalar(v as number | string, MARK)) return
  if (type === 'object' && v !== null && v !== frozen && Object.isFrozen(v)) {
    if (Object.getPrototypeOf(v) === Object.prototype && primitivesOnly(v as object)) {
      frozenBytes = Uint8Array.from(packr.pack(v))
      frozen = v as object
    }
  }
  if (type === 'object' && v === frozen) w.bin(frozenBytes, 0, frozenBytes.length, MARK)
  else w.value(packr, v, MARK)
}

/** A value column: nil for undefined (a run without output or error), else the value packed. */
function value(w: MsgpackWriter, v: unknown): void {
  if (v === undefined) w.nil()
  else packed(w, v)
}

function runRow(w: MsgpackWriter, o: AdmitOp): void {
  const end = o.end
  w.array(19)
  w.num(Row.RUN)
  w.str(o.id)
  w.str(o.entryPointId)
  w.str(end?.status ?? (o.start === undefined ? 'queued' : 'running'))
  w.num(end?.attempts ?? o.start?.attempt ?? 0)
  w.num(o.priority)
  w.str(o.correlationId)
  w.num(o.timeoutMs)
  w.num(o.depth)
  packed(w, o.input)
  packed(w, o.meta)
  value(w, end?.output)
  value(w, end?.error)
  w.num(o.admittedAt)
  w.numOrNil(o.start?.startedAt ?? end?.startedAt)
  w.numOrNil(end?.completedAt)
  w.num(end?.conflicts ?? 0)
  w.strOrNil(o.idempotency?.key)
  w.numOrNil(o.idempotency?.expiresAt)
}

function endRow(w: MsgpackWriter, o: EndOp): void {
  w.array(9)
  w.num(Row.END)
  w.str(o.status)
  w.num(o.attempts)
  value(w, o.output)
  value(w, o.error)
  w.num(o.startedAt)
  w.num(o.completedAt)
  w.num(o.conflicts ?? 0)
  w.str(o.id)
}

function stateRow(w: MsgpackWriter, o: StateOp): void {
  w.array(7)
  w.num(Row.STATE)
  w.str(o.scope)
  w.str(o.streamId)
  w.str(o.key)
  if (o.deleted) w.nil()
  else packed(w, o.value)
  w.num(o.deleted ? 1 : 0)
  w.num(o.version)
}

/**
 * One row of records: a single record (its kind in the row), or, for consecutive records of one execution,
 * all of them as one array (kind `''`), which costs the writer one row instead of one each.
 */
function recordRow(w: MsgpackWriter, executionId: string, records: unknown[]): void {
  w.array(4)
  w.num(Row.RECORD)
  w.str(executionId)
  const one = records.length === 1
  w.str(one ? (records[0] as { k: string }).k : '')
  recordBody(w, one ? records[0] : records)
}

/** Records: plain msgpack, the cheapest to write and read. */
function recordBody(w: MsgpackWriter, body: unknown): void {
  try {
    w.value(recordPackr, body)
  } catch {
    // A record holding a cycle after all (msgpackr fails before writing anything): as a value.
    w.value(packr, body, MARK)
  }
}

/** A snapshot of the aggregator, as records are stored (it holds records), read back by {@link unpack}. */
export function packSnapshot(snapshot: unknown): Buffer {
  try {
    return recordPackr.pack(snapshot)
  } catch {
    return Buffer.concat([Buffer.of(MARK), packr.pack(snapshot)])
  }
}

/** The records a record row holds, in order. */
export function unpackRecords(body: Buffer): unknown[] {
  const value = unpack(body)
  return Array.isArray(value) ? value : [value]
}

function writeRow(w: MsgpackWriter, o: LogOp): void {
  switch (o.op) {
    case 'admit':
      runRow(w, o)
      return
    case 'start':
      w.array(4)
      w.num(Row.START)
      w.num(o.attempt)
      w.num(o.startedAt)
      w.str(o.id)
      return
    case 'end':
      endRow(w, o)
      return
    case 'state':
      stateRow(w, o)
      return
    case 'record':
      recordRow(w, o.executionId, [o.record])
      return
    case 'timer':
      w.array(3)
      w.num(Row.TIMER)
      w.str(o.entryPointId)
      w.num(o.firedAt)
      return
  }
}

/** The size of the last batch: where the next one's buffer starts, so it rarely grows. */
let lastBatchBytes = 4096

/**
 * Encodes a batch, in order, into a buffer of its own (safe to transfer): each row written as msgpack
 * directly, each value packed by msgpackr and copied in once. Main thread.
 * @throws when a value cannot be packed (msgpackr's error).
 */
export function encodeBatch(ops: Iterable<LogOp>, reuse?: ArrayBuffer): Uint8Array<ArrayBuffer> {
  const w = new MsgpackWriter(lastBatchBytes + (lastBatchBytes >> 2), reuse)
  const header = w.openArray()
  let rows = 0
  let run: RecordOp[] = []
  const endRun = () => {
    if (run.length === 0) return
    recordRow(
      w,
      run[0]!.executionId,
      run.map((r) => r.record),
    )
    rows++
    run = []
  }
  for (const o of ops) {
    if (o.op === 'record') {
      if (run.length > 0 && run[0]!.executionId !== o.executionId) endRun()
      run.push(o)
      continue
    }
    endRun()
    writeRow(w, o)
    rows++
  }
  endRun()
  w.setArrayLength(header, rows)
  lastBatchBytes = w.length
  return w.finish()
}

/** Decodes a batch. Writer thread. */
export function decodeBatch(bytes: Uint8Array): LogRow[] {
  return framer.unpack(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength)) as LogRow[]
}
