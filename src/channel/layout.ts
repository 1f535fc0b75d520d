/**
 * The record channel's shared memory: a doorbell, then one {@link FrameRing} per thread. Both sides
 * ({@link RecordWriter} on a worker, {@link RecordChannel} on the main thread) locate rings here.
 *
 * Memory layout of the channel's SharedArrayBuffer:
 *
 * | offset | size | field   | meaning |
 * |-------:|-----:|---------|---------|
 * | 0      | 4    | SEQ     | doorbell sequence; bumped and notified by a producer that finds WAITING = 1 |
 * | 4      | 4    | WAITING | 1 while the consumer sleeps (or is about to) on SEQ |
 * | 8      | 56   | —       | reserved |
 * | 64     | n×R  | rings   | `slots` {@link FrameRing}s of R = `FrameRing.byteLength(ringBytes)` bytes each |
 *
 * @module
 */
import { FrameRing } from '../shm/index.js'

/** Doorbell word indexes (Int32) and the doorbell's size in bytes. */
export const SEQ = 0
export const WAITING = 1
export const BELL_BYTES = 64

/** What a worker needs to attach; structured-clonable. */
export interface RecordChannelHandles {
  sab: SharedArrayBuffer
  slots: number
  ringBytes: number
}

/** Ring `i` of the channel. */
export function ringAt(h: RecordChannelHandles, i: number): FrameRing {
  return new FrameRing(h.sab, BELL_BYTES + i * FrameRing.byteLength(h.ringBytes), h.ringBytes)
}

/** The doorbell words of the channel. */
export function bellOf(h: RecordChannelHandles): Int32Array {
  return new Int32Array(h.sab, 0, BELL_BYTES / 4)
}
