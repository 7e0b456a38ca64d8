import { afterEach, describe, expect, it } from 'vitest'
import { streamChat } from '../src/api/chat'
import { suggestedSliceMb, modelsFitting } from '../src/lib/allocation'
import { renderMarkdown } from '../src/lib/markdown'

const realFetch = globalThis.fetch
afterEach(() => {
  globalThis.fetch = realFetch
})

describe('renderMarkdown', () => {
  it('renders markdown, highlights a known language and gives code blocks a copy button', () => {
    const html = renderMarkdown(
      '**bold** and `x`\n\n```js\nconst a = 1\n```\n\n| a | b |\n|---|---|\n| 1 | 2 |',
    )
    expect(html).toContain('<strong>bold</strong>')
    expect(html).toContain('<code>x</code>')
    expect(html).toMatch(/<span class="hljs-keyword">const<\/span>/)
    expect(html).toContain('data-copy-code')
    expect(html).toContain('<table>')
  })
  it('never passes markup or script URLs through', () => {
    const html = renderMarkdown(
      '<img src=x onerror=alert(1)> <script>alert(2)</script> [x](javascript:alert(3))',
    )
    expect(html).not.toMatch(/<img|<script|href="javascript:/i)
    const doc = new DOMParser().parseFromString(html, 'text/html')
    expect(doc.querySelector('img, script, [onerror]')).toBeNull()
  })
  // Links (target=_blank, rel=noopener) are checked in real Chromium by the e2e suite: happy-dom's DOM
  // makes DOMPurify drop <a> altogether.
})

function ndjson(lines: object[]): Response {
  return new Response(lines.map((l) => `${JSON.stringify(l)}\n`).join(''), { status: 200 })
}

describe('streamChat', () => {
  it('collects message.thinking apart from the answer and sends the temperature as an option', async () => {
    let sent: Record<string, unknown> | null = null
    globalThis.fetch = (async (_url: string, init: RequestInit) => {
      sent = JSON.parse(String(init.body))
      return ndjson([
        { message: { role: 'assistant', content: '', thinking: 'Let me ' } },
        { message: { role: 'assistant', content: '', thinking: 'think.' } },
        { message: { role: 'assistant', content: 'Hi' } },
        { message: { role: 'assistant', content: '' }, done: true, eval_count: 3, prompt_eval_count: 2 },
      ])
    }) as typeof fetch
    const thinking: string[] = []
    const res = await streamChat({
      model: 'qwen3:1.7b',
      messages: [{ role: 'user', content: 'hello' }],
      signal: new AbortController().signal,
      temperature: 0.3,
      onDelta: () => {},
      onThinking: (t) => thinking.push(t),
    })
    expect(res).toMatchObject({
      content: 'Hi',
      thinking: 'Let me think.',
      completion_tokens: 3,
      stopped: false,
    })
    expect(thinking).toEqual(['Let me ', 'think.'])
    expect(sent).toMatchObject({ model: 'qwen3:1.7b', stream: true, options: { temperature: 0.3 } })
  })
  it('sends no options when the temperature is the model default', async () => {
    let sent: Record<string, unknown> | null = null
    globalThis.fetch = (async (_url: string, init: RequestInit) => {
      sent = JSON.parse(String(init.body))
      return ndjson([{ done: true }])
    }) as typeof fetch
    await streamChat({ model: 'm', messages: [], signal: new AbortController().signal, onDelta: () => {} })
    expect(sent).not.toHaveProperty('options')
  })
  it('names the request with X-Request-Id, so the queue_position events can be matched to it', async () => {
    let headers: Headers | null = null
    globalThis.fetch = (async (_url: string, init: RequestInit) => {
      headers = new Headers(init.headers)
      return ndjson([{ done: true }])
    }) as typeof fetch
    await streamChat({
      model: 'm',
      messages: [],
      signal: new AbortController().signal,
      onDelta: () => {},
      requestId: 'chat-0123456789abcdef',
    })
    expect(headers!.get('x-request-id')).toBe('chat-0123456789abcdef')
  })
})

describe('approval suggestion', () => {
  it('is the role maximum bounded by free capacity, and lists the models that fit it', () => {
    expect(suggestedSliceMb({ max_memory_mb: 2048 }, 10_000)).toBe(2048)
    expect(suggestedSliceMb({ max_memory_mb: 8192 }, 3000)).toBe(3000)
    expect(suggestedSliceMb({ max_memory_mb: 8192 }, 3000, true)).toBe(8192)
    const m = (name: string, required_mb: number | null, verdict = 'fits') =>
      ({ name, fits: [{ role_id: 'role-guest', verdict, required_mb }] }) as never
    expect(
      modelsFitting(
        [m('small', 1500), m('big', 5000, 'exceeds_allocation'), m('no', 10, 'not_allowed'), m('?', null)],
        'role-guest',
        2048,
      ),
    ).toEqual(['small'])
  })
})
