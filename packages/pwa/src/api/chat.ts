import { rawRequest, readNdjson } from './http'

export interface ChatMessage {
  role: 'system' | 'user' | 'assistant'
  content: string
}

/** One line of Ollama's streamed `/api/chat` answer (only the fields the app reads; api/types.go ChatResponse). */
interface ChatLine {
  message?: { content?: string; thinking?: string }
  done?: boolean
  error?: string
  prompt_eval_count?: number
  eval_count?: number
}

export interface ChatResult {
  content: string
  thinking: string
  prompt_tokens: number | null
  completion_tokens: number | null
  /** True when the user pressed stop before the model finished. */
  stopped: boolean
}

/** Streams a chat answer through the gateway; `onDelta` gets each piece of text as it arrives. */
export async function streamChat(opts: {
  model: string
  messages: ChatMessage[]
  signal: AbortSignal
  onDelta: (text: string) => void
  /** Pieces of `message.thinking` from a thinking model. */
  onThinking?: (text: string) => void
  /** Sent as `X-Request-Id`: the gateway names this request so in its `queue_position` events. */
  requestId?: string
  /** Ollama's `options.temperature`; omitted when null. */
  temperature?: number | null
}): Promise<ChatResult> {
  const result: ChatResult = {
    content: '',
    thinking: '',
    prompt_tokens: null,
    completion_tokens: null,
    stopped: false,
  }
  try {
    const res = await rawRequest('/ollama/api/chat', {
      method: 'POST',
      body: {
        model: opts.model,
        messages: opts.messages,
        stream: true,
        ...(opts.temperature != null ? { options: { temperature: opts.temperature } } : {}),
      },
      signal: opts.signal,
      ...(opts.requestId ? { headers: { 'x-request-id': opts.requestId } } : {}),
    })
    for await (const line of readNdjson<ChatLine>(res)) {
      if (line.error) throw new Error(line.error)
      const thought = line.message?.thinking ?? ''
      if (thought) {
        result.thinking += thought
        opts.onThinking?.(thought)
      }
      const text = line.message?.content ?? ''
      if (text) {
        result.content += text
        opts.onDelta(text)
      }
      if (line.done) {
        result.prompt_tokens = line.prompt_eval_count ?? null
        result.completion_tokens = line.eval_count ?? null
      }
    }
  } catch (err) {
    if (opts.signal.aborted) {
      result.stopped = true
      return result
    }
    throw err
  }
  return result
}
