import { SharedLLMError } from '../errors'

/** Longest single NDJSON line accepted from Ollama; a longer one means a broken or hostile upstream. */
export const MAX_NDJSON_LINE = 4 * 1024 * 1024

/**
 * Parses an NDJSON body (Ollama's streaming format) into objects, one per non-empty line. The last line
 * may lack its newline (Ollama's `/api/version` body has none). Stream errors propagate to the caller.
 */
export async function* readNdjson(body: ReadableStream<Uint8Array>): AsyncGenerator<unknown> {
  const decoder = new TextDecoder()
  let buffered = ''
  const parse = (line: string): unknown => {
    try {
      return JSON.parse(line)
    } catch (err) {
      throw new SharedLLMError(
        'UPSTREAM_ERROR',
        `Ollama sent a line that is not JSON: ${line.slice(0, 200)}`,
        {
          cause: err,
        },
      )
    }
  }
  const reader = body.getReader()
  try {
    for (;;) {
      const { done, value } = await reader.read()
      if (done) break
      buffered += decoder.decode(value, { stream: true })
      let nl = buffered.indexOf('\n')
      while (nl !== -1) {
        const line = buffered.slice(0, nl).trim()
        buffered = buffered.slice(nl + 1)
        if (line !== '') yield parse(line)
        nl = buffered.indexOf('\n')
      }
      if (buffered.length > MAX_NDJSON_LINE) {
        throw new SharedLLMError('UPSTREAM_ERROR', `Ollama sent a line longer than ${MAX_NDJSON_LINE} bytes`)
      }
    }
    buffered += decoder.decode()
    if (buffered.trim() !== '') yield parse(buffered.trim())
  } finally {
    // Stops the download when the consumer breaks out early (cancel) instead of reading to the end.
    await reader.cancel().catch(() => {})
    reader.releaseLock()
  }
}
