/**
 * Cost estimates before a request runs: characters / 4 for text (a common rule of thumb for BPE
 * tokenizers on English) plus a fixed cost per image. The queue corrects them with Ollama's exact
 * prompt_eval_count at the end, so they only need to be the right size.
 */

/** Tokens charged per image before Ollama reports the real count (CLIP-style projectors use 256–1600). */
export const IMAGE_TOKENS = 768

export function estimateTextTokens(text: string): number {
  return Math.ceil(text.length / 4)
}

/**
 * Prompt tokens of an Ollama-native (`/api/chat`, `/api/generate`, `/api/embed`) or OpenAI-style body:
 * `prompt`, `system`, `suffix`, `input`, `messages[].content` (a string or OpenAI content parts),
 * `images` and `messages[].images`. Anything else counts nothing; the input is never trusted to be shaped.
 */
export function estimatePromptTokens(body: unknown): number {
  if (!body || typeof body !== 'object') return 0
  const b = body as Record<string, unknown>
  let chars = 0
  let images = 0
  const text = (v: unknown) => {
    if (typeof v === 'string') chars += v.length
    else if (Array.isArray(v)) for (const x of v) if (typeof x === 'string') chars += x.length
  }
  text(b.prompt)
  text(b.system)
  text(b.suffix)
  text(b.input)
  if (Array.isArray(b.images)) images += b.images.length
  if (Array.isArray(b.messages)) {
    for (const m of b.messages) {
      if (!m || typeof m !== 'object') continue
      const msg = m as Record<string, unknown>
      if (typeof msg.content === 'string') chars += msg.content.length
      else if (Array.isArray(msg.content)) {
        for (const part of msg.content) {
          if (!part || typeof part !== 'object') continue
          const p = part as Record<string, unknown>
          if (p.type === 'text' && typeof p.text === 'string') chars += p.text.length
          else if (p.type === 'image_url') images++
        }
      }
      if (Array.isArray(msg.images)) images += msg.images.length
    }
  }
  return Math.ceil(chars / 4) + images * IMAGE_TOKENS
}
