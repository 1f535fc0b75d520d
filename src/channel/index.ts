/**
 * The record channel: how worker threads send records (decisions, outcomes, events, state changes, ends)
 * to the main thread — msgpack frames on one shared-memory ring per thread. Knows nothing of what the
 * records mean; `outcomes/` and `runtime/` consume them.
 *
 * @module
 */
export { FrameSource, type RecordBytes } from './frame-source.js'
export type { RecordChannelHandles } from './layout.js'
export { encodedBytes } from './msgpack.js'
export { assertPackable } from './packable.js'
export { RecordChannel, type RecordChannelOptions } from './record-channel.js'
export { RecordWriter } from './record-writer.js'
export { RetainedFrame } from './retained-frame.js'
