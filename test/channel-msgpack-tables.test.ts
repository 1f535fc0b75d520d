import { describe, expect, it } from 'vitest'
import { FrameSource, RecordChannel, RecordWriter, type RetainedFrame } from '../src/channel/index.js'
import type { WireRecord } from '../src/protocol.js'

function event(executionId: string, data: Record<string, unknown>): WireRecord {
  return {
    k: 'event',
    executionId,
    streamId: 's',
    attempt: 1,
    type: 'e',
    data,
    timestamp: 1,
  } as WireRecord
}

describe('records kept as bytes across msgpackr structure changes', () => {
  it('decodes a kept record again after later frames defined new record shapes', () => {
    const channel = RecordChannel.create({ slots: 1, ringBytes: 1 << 16 })
    const writer = RecordWriter.attach(channel.handles, 0)
    const kept: { frame: RetainedFrame; start: number; end: number; id: string }[] = []
    channel.onRecords((records, source) => {
      expect(source).toBeInstanceOf(FrameSource)
      for (let i = 0; i < records.length; i++) {
        const bytes = source.keep(i)
        if (bytes !== undefined) kept.push({ ...bytes, id: records[i]!.executionId })
      }
    })
    // Frame 1 defines the shapes; frame 2 only reuses them (so it can be kept); frames 3.. add new shapes.
    writer.push(event('define', { a: 1 }))
    writer.flush()
    channel.drain()
    writer.push(event('keep-me', { a: 2 }))
    writer.flush()
    channel.drain()
    for (let i = 0; i < 80; i++) {
      writer.push(event(`shape-${i}`, { [`field${i}`]: i }))
      writer.flush()
      channel.drain()
    }
    const mine = kept.find((k) => k.id === 'keep-me')
    // If msgpackr stops exposing its live structure table (or edits structures in place), keeping records
    // as bytes breaks: this is where it shows, in `src/channel/msgpack.ts`.
    expect(mine, 'a frame that defines no new shape is kept as bytes').toBeDefined()
    expect(mine!.frame.decode(mine!.start, mine!.end)).toMatchObject({
      k: 'event',
      executionId: 'keep-me',
      data: { a: 2 },
    })
  })
})
