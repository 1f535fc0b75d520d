/**
 * Producer thread of `bench/outcomes.bench.ts`. For each command `{ mode, executions, perFrame }` it
 * records `executions` executions through `createExecutionRecorder` — one decision, its outcome and one
 * custom event each — and sends the records in batches of `perFrame`, either through this thread's record
 * ring (`mode: 'channel'`, one frame per batch) or as one structured-clone `postMessage` of an array per
 * batch (`mode: 'post'`).
 * Plain JavaScript: it registers tsx in the thread, then loads the sources.
 */
import { parentPort, threadId, workerData } from 'node:worker_threads'
import { register } from 'tsx/esm/api'

register()
const { RecordWriter } = await import('../../src/channel/index.js')
const { createExecutionRecorder } = await import('../../src/outcomes/index.js')

const writer = RecordWriter.attach(workerData.handles, threadId)
const tag = workerData.tag
let next = 0

parentPort.on('message', ({ mode, executions, perFrame }) => {
  let sinceFlush = 0
  const channel = {
    push(record) {
      writer.push(record)
      if (++sinceFlush === perFrame) {
        writer.flush()
        sinceFlush = 0
      }
    },
    flush: () => writer.flush(),
  }
  let batch = []
  const post = {
    push(record) {
      batch.push(record)
      if (batch.length === perFrame) post.flush()
    },
    flush() {
      if (batch.length > 0) parentPort.postMessage(batch)
      batch = []
    },
  }
  const sink = mode === 'channel' ? channel : post
  for (let i = 0; i < executions; i++) {
    const n = next++
    const ctx = createExecutionRecorder(sink, {
      executionId: `${tag}-${n}`,
      streamId: tag,
      entryPointId: tag,
      correlationId: `c-${tag}-${n}`,
      attempt: 1,
    })
    const d = ctx.decide({
      intent: 'classify ticket',
      options: [{ id: 'howto' }, { id: 'bug' }],
      chosen: n % 3 === 0 ? 'bug' : 'howto',
      reasoning: 'matches how-to pattern',
      criteria: ['resolve_rate'],
    })
    ctx.recordOutcome(d, { success: n % 5 !== 0, result: { category: 'howto' }, latencyMs: 3 })
    ctx.emit('ticket_classified', { ticket: n })
  }
  sink.flush()
})
