/**
 * Values and keys as the store keeps them. Integers that fit 32 bits and other numbers are stored inline
 * in their slot (no encoding, no block); everything else is msgpack (msgpackr records, so plain objects,
 * `Map`, `Set`, `Date`, `bigint` and typed arrays come back as what they were). Keys are
 * `group ‖ name`: the group is `scope code, id length (u16 LE), id UTF-8`; a group's head key adds 0xFF.
 *
 * Thread contract: a codec is per thread (it owns scratch buffers); nothing here blocks.
 *
 * @module
 */
import { Packr } from 'msgpackr'
import { describeValue, StateKeyError, StateValueError } from '../errors.js'
import { HEAD_MARK, HeadRef, hashBytes, type RawValue, ValueTag } from '../shm/index.js'
import type { StateScope } from './types.js'

/** Scope codes, the first byte of a group. */
export const ScopeCode: Record<StateScope, number> = { execution: 1, stream: 2, global: 3 }
export const scopeOfCode: Record<number, StateScope> = { 1: 'execution', 2: 'stream', 3: 'global' }

/** Longest execution or stream id, in UTF-8 bytes. */
export const MAX_ID_BYTES = 256
/** Bytes of a group prefix around an id. */
export const GROUP_OVERHEAD = 3
/** Bytes of commit meta around the two ids. */
export const META_OVERHEAD = 4

const MAX_DEPTH = 64
/** Encoded keys cached per key group. */
const KEY_CACHE_SIZE = 4096
const utf8 = new TextEncoder()
const utf8d = new TextDecoder()
const NONE: RawValue = Object.freeze({ tag: ValueTag.NONE, num: 0, bytes: undefined }) as RawValue

/** A key of one group, encoded once. */
export interface KeyRef {
  key: Uint8Array
  keyLen: number
  hash: number
  /** Where this thread last found the key in the index: a hint the store verifies before use (-1: none). */
  slot: number
  /** The slot's seq when this thread last committed the key there (an unchanged seq proves the hint). */
  seq: number
  /** `key` as whole words (its buffer is padded to them), for word-at-a-time copies; none for a one-off key. */
  words: Int32Array | undefined
}

function idTooLong(scope: StateScope, bytes: number): StateKeyError {
  return new StateKeyError(`${scope} id is ${bytes} bytes; at most ${MAX_ID_BYTES}`)
}

/**
 * Refuses an id a {@link KeyGroup} of `scope` would refuse, without making the group (for a group made
 * later, on first use).
 * @throws StateKeyError when `id` is longer than {@link MAX_ID_BYTES} bytes of UTF-8.
 */
export function checkGroupId(scope: StateScope, id: string): void {
  // A UTF-16 unit is at most 3 bytes of UTF-8: only a long id needs counting.
  if (id.length * 3 <= MAX_ID_BYTES) return
  const bytes = utf8.encode(id).length
  if (bytes > MAX_ID_BYTES) throw idTooLong(scope, bytes)
}

/** One scope of one id: its group bytes, head key and a bounded cache of encoded keys. */
export class KeyGroup {
  /** The group's head key (`group ‖ 0xFF`), with this thread's cache of its slot. */
  readonly head: HeadRef
  private readonly prefix: Uint8Array
  private readonly cache = new Map<string, KeyRef>()

  constructor(
    readonly scope: StateScope,
    readonly id: string,
    private readonly maxKeyBytes: number,
  ) {
    const idBytes = utf8.encode(id)
    if (idBytes.length > MAX_ID_BYTES) throw idTooLong(scope, idBytes.length)
    if (idBytes.length !== id.length && !id.isWellFormed()) throw notWellFormed(`${scope} id`, id)
    this.prefix = new Uint8Array(GROUP_OVERHEAD + idBytes.length)
    this.prefix[0] = ScopeCode[scope]
    this.prefix[1] = idBytes.length & 0xff
    this.prefix[2] = idBytes.length >> 8
    this.prefix.set(idBytes, GROUP_OVERHEAD)
    const headKey = new Uint8Array(this.prefix.length + 1)
    headKey.set(this.prefix)
    headKey[this.prefix.length] = HEAD_MARK
    this.head = new HeadRef(headKey, hashBytes(headKey, headKey.length))
  }

  /**
   * The encoded key for `name` (validated). `transient`: the caller uses the result before its next call
   * on this group and keeps nothing (a lock-free read) — then a key the full cache cannot hold is encoded
   * into a reused scratch buffer instead of a fresh one.
   */
  ref(name: string, transient = false): KeyRef {
    // The key asked for last, first: a hot key (a counter) skips the map lookup.
    if (name === this.lastName) return this.lastRef
    const cached = this.cache.get(name)
    if (cached !== undefined) {
      this.lastName = name
      this.lastRef = cached
      return cached
    }
    if (typeof name !== 'string') {
      throw new StateKeyError(`state key must be a string, got ${describeValue(name)}`, {
        key: describeValue(name),
      })
    }
    if (name.length === 0) throw new StateKeyError('state key must not be empty', { key: '' })
    if (name.length > this.maxKeyBytes) throw tooLong(name, this.maxKeyBytes, name.length)
    const keep = !transient || this.cache.size < KEY_CACHE_SIZE
    const p = this.prefix.length
    let key: Uint8Array
    if (keep) {
      key = new Uint8Array(align4(p + name.length * 3))
      key.set(this.prefix)
    } else {
      key = this.scratchKey(p + name.length * 3)
    }
    const written = encodeName(name, key, p)
    // Non-ASCII only: a lone surrogate would be encoded as U+FFFD, so '\uD800' and '\uDC00' would alias.
    if (written !== name.length && !name.isWellFormed()) throw notWellFormed('state key', name)
    if (written > this.maxKeyBytes) throw tooLong(name, this.maxKeyBytes, written)
    const keyLen = p + written
    const hash = hashBytes(key, keyLen)
    if (!keep) {
      const r = this.scratchRef
      r.key = key
      r.keyLen = keyLen
      r.hash = hash
      r.slot = -1
      r.seq = 0
      r.words = this.scratchWords
      return r
    }
    // Bounded: the first keys a group sees stay cached (hot keys come early and often); others are encoded
    // per call, which costs about what a miss in a bigger cache would.
    const cache = this.cache.size < KEY_CACHE_SIZE
    const r: KeyRef = { key, keyLen, hash, slot: -1, seq: 0, words: cache ? wordsOf(key) : undefined }
    if (cache) this.cache.set(name, r)
    return r
  }

  /** The last cached key {@link ref} returned (never the scratch one), and its name. */
  private lastName: string | undefined
  private lastRef: KeyRef = { key: new Uint8Array(0), keyLen: 0, hash: 0, slot: -1, seq: 0, words: undefined }
  private scratch: Uint8Array | undefined
  private scratchWords: Int32Array | undefined
  private readonly scratchRef: KeyRef = {
    key: new Uint8Array(0),
    keyLen: 0,
    hash: 0,
    slot: -1,
    seq: 0,
    words: undefined,
  }

  private scratchKey(bytes: number): Uint8Array {
    if (this.scratch === undefined || this.scratch.length < bytes) {
      this.scratch = new Uint8Array(Math.max(align4(bytes), 64))
      this.scratch.set(this.prefix)
      this.scratchWords = wordsOf(this.scratch)
    }
    return this.scratch
  }

  /** Group prefix length (the offset of the name in a key). */
  get groupLen(): number {
    return this.prefix.length
  }
}

/** `n` rounded up to a multiple of 4. */
function align4(n: number): number {
  return (n + 3) & ~3
}

/** An Int32 view of all of `bytes`, which starts its (word-padded) buffer. */
function wordsOf(bytes: Uint8Array): Int32Array {
  return new Int32Array(bytes.buffer, 0, bytes.length >> 2)
}

/** Writes `name` as UTF-8 into `out` from `at` (room for 3 bytes per UTF-16 unit); returns the byte count. */
function encodeName(name: string, out: Uint8Array, at: number): number {
  const n = name.length
  for (let i = 0; i < n; i++) {
    const c = name.charCodeAt(i)
    // ASCII, the common case, byte by byte; anything else through the encoder.
    if (c >= 0x80) return utf8.encodeInto(name, out.subarray(at)).written
    out[at + i] = c
  }
  return n
}

function notWellFormed(what: string, name: string): StateKeyError {
  return new StateKeyError(
    `${what} ${describeValue(name)} is not well-formed UTF-16 (it has a lone surrogate); keys are stored as UTF-8`,
    { key: name.slice(0, 80) },
  )
}

function tooLong(name: string, max: number, atLeast: number): StateKeyError {
  return new StateKeyError(
    `state key ${describeValue(name)} is at least ${atLeast} bytes; at most ${max} (maxKeyBytes)`,
    {
      key: name.slice(0, 80),
      bytes: atLeast,
    },
  )
}

/** This thread's scratch for commit meta (see {@link metaOf}), and one view of it per meta length. */
let metaScratch = new ArrayBuffer(256)
const metaViews = new Map<number, Uint8Array>()
let lastExecutionId: string | undefined
let lastStreamId: string | undefined
let lastMeta: Uint8Array = new Uint8Array(0)

/**
 * The commit meta of `executionId` in `streamId` (the two ids, for history entries), encoded into this
 * thread's scratch: valid until the next call with other ids. A commit copies it into its history entry
 * at once, and a thread's consecutive commits mostly come from one execution, so an execution that commits
 * allocates nothing for it. One view per length, so a history ring's cached word view of it stays right.
 */
export function metaOf(executionId: string, streamId: string): Uint8Array {
  if (executionId === lastExecutionId && streamId === lastStreamId) return lastMeta
  const e = idBytes(executionId)
  const s = idBytes(streamId)
  const len = META_OVERHEAD + e.length + s.length
  // Padded to whole words: history entries copy the meta a word at a time.
  if (align4(len) > metaScratch.byteLength) {
    metaScratch = new ArrayBuffer(2 * align4(len))
    metaViews.clear()
  }
  let out = metaViews.get(len)
  if (out === undefined) {
    out = new Uint8Array(metaScratch, 0, len)
    metaViews.set(len, out)
  }
  out[0] = e.length & 0xff
  out[1] = e.length >> 8
  putBytes(out, 2, e)
  out[2 + e.length] = s.length & 0xff
  out[3 + e.length] = s.length >> 8
  putBytes(out, META_OVERHEAD + e.length, s)
  lastExecutionId = executionId
  lastStreamId = streamId
  lastMeta = out
  return out
}

/**
 * An id's UTF-8 bytes, or the id itself when it is ASCII (execution ids are UUIDs): its char codes are then
 * its bytes, copied without an encoder call (which costs more than the commit the meta describes).
 */
function idBytes(id: string): string | Uint8Array {
  for (let i = 0; i < id.length; i++) if (id.charCodeAt(i) > 0x7f) return utf8.encode(id)
  return id
}

function putBytes(out: Uint8Array, at: number, bytes: string | Uint8Array): void {
  if (typeof bytes !== 'string') out.set(bytes, at)
  else for (let i = 0; i < bytes.length; i++) out[at + i] = bytes.charCodeAt(i)
}

/** Decodes {@link encodeMeta}. */
export function decodeMeta(meta: Uint8Array): { executionId: string; streamId: string } {
  const el = meta[0]! | (meta[1]! << 8)
  const sl = meta[2 + el]! | (meta[3 + el]! << 8)
  return {
    executionId: utf8d.decode(meta.subarray(2, 2 + el)),
    streamId: utf8d.decode(meta.subarray(META_OVERHEAD + el, META_OVERHEAD + el + sl)),
  }
}

/** Decodes a key's name (the bytes after its group). */
export function decodeName(key: Uint8Array, groupLen: number): string {
  return utf8d.decode(key.subarray(groupLen))
}

/** Value encoding for one thread. */
export class ValueCodec {
  private readonly packr = new Packr({ useRecords: true, moreTypes: true, mapsAsObjects: false })

  constructor(private readonly maxValueBytes: number) {}

  /** The stored form of `value`, or `StateValueError` naming what cannot be stored. `key` is for messages. */
  encode(key: string, value: unknown): RawValue {
    if (typeof value === 'number') return { tag: inlineTag(value), num: value, bytes: undefined }
    if (value === undefined) {
      throw new StateValueError(
        `cannot store undefined under key ${describeValue(key)}; use delete() to remove a key`,
        { key },
      )
    }
    checkStorable(key, value, 0, [])
    let bytes: Uint8Array
    try {
      bytes = this.packr.pack(value)
    } catch (err) {
      throw new StateValueError(
        `value for key ${describeValue(key)} cannot be encoded: ${(err as Error).message}`,
        { key },
      )
    }
    if (bytes.length > this.maxValueBytes) {
      throw new StateValueError(
        `value for key ${describeValue(key)} is ${bytes.length} bytes encoded; at most ${this.maxValueBytes} (maxValueBytes)`,
        { key, bytes: bytes.length, maxValueBytes: this.maxValueBytes },
      )
    }
    return { tag: ValueTag.BYTES, num: 0, bytes: Uint8Array.prototype.slice.call(bytes) }
  }

  /** The value a raw stored value stands for (`undefined` for NONE). A fresh object each call. */
  decode(raw: { tag: number; num: number; bytes: Uint8Array | undefined }): unknown {
    if (raw.tag === ValueTag.INT || raw.tag === ValueTag.F64) return raw.num
    if (raw.tag === ValueTag.BYTES && raw.bytes) return this.packr.unpack(raw.bytes)
    return undefined
  }
}

/** How a number is stored inline: INT when it is a 32-bit integer (and not -0), else F64. */
export function inlineTag(n: number): number {
  return (n | 0) === n && (n !== 0 || 1 / n > 0) ? ValueTag.INT : ValueTag.F64
}

/** The raw form of an absent value. */
export function noneValue(): RawValue {
  return NONE
}

function checkStorable(key: string, v: unknown, depth: number, path: unknown[]): void {
  const t = typeof v
  if (t === 'string') {
    if (!(v as string).isWellFormed()) throw loneSurrogate(key, v as string)
    return
  }
  if (t === 'function' || t === 'symbol') {
    throw new StateValueError(
      `value for key ${describeValue(key)} contains ${describeValue(v)}, which cannot be stored`,
      {
        key,
      },
    )
  }
  if (t !== 'object' || v === null) return
  if (depth > MAX_DEPTH) {
    throw new StateValueError(`value for key ${describeValue(key)} nests deeper than ${MAX_DEPTH} levels`, {
      key,
    })
  }
  if (path.includes(v)) {
    throw new StateValueError(`value for key ${describeValue(key)} is cyclic; state values must be trees`, {
      key,
    })
  }
  if (ArrayBuffer.isView(v) || v instanceof Date) return
  path.push(v)
  if (Array.isArray(v)) {
    for (let i = 0; i < v.length; i++) {
      if (!(i in v)) {
        throw new StateValueError(
          `value for key ${describeValue(key)} is an array with a hole at index ${i}, which msgpack cannot carry (it would come back undefined); fill it`,
          { key, index: i },
        )
      }
      checkStorable(key, v[i], depth + 1, path)
    }
  } else if (v instanceof Map) {
    for (const [k, x] of v) {
      checkStorable(key, k, depth + 1, path)
      checkStorable(key, x, depth + 1, path)
    }
  } else if (v instanceof Set) {
    for (const x of v) checkStorable(key, x, depth + 1, path)
  } else {
    const proto = Object.getPrototypeOf(v)
    if (proto === null) {
      throw new StateValueError(
        `value for key ${describeValue(key)} contains a null-prototype object, which would come back as a plain object; store a plain object ({ ...value })`,
        { key },
      )
    }
    if (proto !== Object.prototype) {
      throw new StateValueError(
        `value for key ${describeValue(key)} contains an instance of ${proto?.constructor?.name ?? 'a class'}; store plain objects, arrays, Map, Set, Date, bigint or typed arrays`,
        { key },
      )
    }
    for (const k of Object.keys(v as object)) {
      if (!k.isWellFormed()) throw loneSurrogate(key, k)
      if (k === '__proto__') {
        throw new StateValueError(
          `value for key ${describeValue(key)} has an own property "__proto__", which msgpack decoding renames`,
          {
            key,
          },
        )
      }
      checkStorable(key, (v as Record<string, unknown>)[k], depth + 1, path)
    }
    if (Object.getOwnPropertySymbols(v as object).length > 0) {
      throw new StateValueError(
        `value for key ${describeValue(key)} has symbol-keyed properties, which cannot be stored`,
        { key },
      )
    }
  }
  path.pop()
}

function loneSurrogate(key: string, s: string): StateValueError {
  return new StateValueError(
    `value for key ${describeValue(key)} contains the string ${describeValue(s.slice(0, 40))}, which is not well-formed UTF-16 (a lone surrogate would come back as U+FFFD)`,
    { key },
  )
}
