import { describe, expect, it } from 'vitest'
import { RecordChannel, RecordWriter } from '../src/channel/index.js'
import type { WireRecord } from '../src/protocol.js'

function end(executionId: string): WireRecord {
  return { k: 'end', executionId, streamId: 's', attempt: 1, ok: true, startedAt: 0, completedAt: 0 }
}

describe('record channel resilience', () => {
  it('keeps delivering the frames after one whose consumer threw, and reports the error as a warning', async () => {
    const channel = RecordChannel.create({ slots: 1, ringBytes: 4096 })
    const writer = RecordWriter.attach(channel.handles, 0)
    const seen: string[] = []
    channel.onRecords((records) => {
      for (const r of records) {
        if (r.executionId === 'poison') throw new Error('consumer bug')
        seen.push(r.executionId)
      }
    })
    const warnings: string[] = []
    const onWarning = (w: Error) => warnings.push(w.message)
    process.on('warning', onWarning)
    try {
      writer.push(end('a'))
      writer.flush()
      writer.push(end('poison'))
      writer.flush()
      writer.push(end('b'))
      writer.flush()
      channel.drain()
      expect(seen).toEqual(['a', 'b'])
      // Warnings are emitted on a later tick.
      await new Promise((resolve) => setImmediate(resolve))
      expect(warnings).toContain('consumer bug')
    } finally {
      process.off('warning', onWarning)
    }
  })
})
