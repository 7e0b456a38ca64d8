// An HTTP client inside a network namespace, for tests that run in the root namespace:
// `ip netns exec <ns> node ns-http.mjs`; JSON lines {id, method, url, headers, body} in, {id, status, body} out.
import { createInterface } from 'node:readline'

createInterface({ input: process.stdin }).on('line', async (line) => {
  const { id, method = 'GET', url, headers = {}, body } = JSON.parse(line)
  try {
    const res = await fetch(url, {
      method,
      headers: body === undefined ? headers : { 'content-type': 'application/json', ...headers },
      body: body === undefined ? undefined : JSON.stringify(body),
      signal: AbortSignal.timeout(5000),
    })
    const text = await res.text()
    let json = null
    try {
      json = JSON.parse(text)
    } catch {}
    process.stdout.write(`${JSON.stringify({ id, status: res.status, body: json ?? text })}\n`)
  } catch (err) {
    process.stdout.write(`${JSON.stringify({ id, status: 0, body: String(err?.cause?.code ?? err) })}\n`)
  }
})
