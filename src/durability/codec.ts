/**
 * How the run log stores values and how a batch of operations travels to the writer thread.
 *
 * Values (inputs, meta, outputs, errors, state values, records) are msgpack with structured clone
 * semantics, so a `Map`, `Set`, `Date`, `bigint` or `Uint8Array` comes back as what it was.
 *
 * A batch is encoded once, on the main thread, into one buffer that is transferred (not cloned) to the
 * writer: a msgpack array of rows, each row the tag of its statement followed by that statement's
 * parameters in order, with every value already packed into the bytes its column stores. The writer binds
 * the rows as they come; it packs nothing and walks no object graph.
 *
 * @module
 */
import { Packr } from 'msgpackr'
import type { AdmitOp, EndOp, LogOp, StateOp } from '../protocol.js'

const packr = new Packr({ structuredClone: true, useRecords: false })
/** Frames rows: plain msgpack, so a packed value is a `bin` and decodes as a `Buffer` slice, not a copy. */
const framer = new Packr({ useRecords: false })

export function pack(value: unknown): Buffer {
  return packr.pack(value)
}

export function unpack(bytes: Buffer | null | undefined): unknown {
  return bytes === null || bytes === undefined ? undefined : packr.unpack(bytes)
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

function packed(value: unknown): Blob {
  return value === undefined ? null : pack(value)
}

function runRow(o: AdmitOp): LogRow {
  const end = o.end
  const started = o.start?.startedAt ?? end?.startedAt ?? null
  return [
    Row.RUN,
    o.id,
    o.entryPointId,
    end?.status ?? (o.start === undefined ? 'queued' : 'running'),
    end?.attempts ?? o.start?.attempt ?? 0,
    o.priority,
    o.correlationId,
    o.timeoutMs,
    o.depth,
    pack(o.input),
    pack(o.meta),
    packed(end?.output),
    packed(end?.error),
    o.admittedAt,
    started,
    end?.completedAt ?? null,
    end?.conflicts ?? 0,
    o.idempotency?.key ?? null,
    o.idempotency?.expiresAt ?? null,
  ]
}

function endRow(o: EndOp): LogRow {
  const { status, attempts, output, error, startedAt, completedAt } = o
  return [
    Row.END,
    status,
    attempts,
    packed(output),
    packed(error),
    startedAt,
    completedAt,
    o.conflicts ?? 0,
    o.id,
  ]
}

function stateRow(o: StateOp): LogRow {
  return [
    Row.STATE,
    o.scope,
    o.streamId,
    o.key,
    o.deleted ? null : pack(o.value),
    o.deleted ? 1 : 0,
    o.version,
  ]
}

function toRow(o: LogOp): LogRow {
  switch (o.op) {
    case 'admit':
      return runRow(o)
    case 'start':
      return [Row.START, o.attempt, o.startedAt, o.id]
    case 'end':
      return endRow(o)
    case 'state':
      return stateRow(o)
    case 'record':
      return [Row.RECORD, o.executionId, (o.record as { k: string }).k, pack(o.record)]
    case 'timer':
      return [Row.TIMER, o.entryPointId, o.firedAt]
  }
}

/**
 * Encodes a batch, in order, into a buffer of its own (safe to transfer). Main thread.
 * @throws when a value cannot be packed (msgpackr's error).
 */
export function encodeBatch(ops: Iterable<LogOp>): Uint8Array<ArrayBuffer> {
  const rows: LogRow[] = []
  for (const o of ops) rows.push(toRow(o))
  // msgpackr packs into a buffer it reuses; the copy owns its memory, so transferring it detaches nothing else.
  return new Uint8Array(framer.pack(rows))
}

/** Decodes a batch. Writer thread. */
export function decodeBatch(bytes: Uint8Array): LogRow[] {
  return framer.unpack(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength)) as LogRow[]
}
