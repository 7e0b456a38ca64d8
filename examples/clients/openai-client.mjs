// The official `openai` npm client, pointed at a sharedLLM host's OpenAI-compatible gateway.
//   SHAREDLLM_URL=http://gpu-box.local:8080 SHAREDLLM_KEY=sllm_… MODEL=qwen3:1.7b node openai-client.mjs
// Over HTTPS with the host's certificate authority: NODE_EXTRA_CA_CERTS=ca.crt node openai-client.mjs
import OpenAI from 'openai'

const url = process.env.SHAREDLLM_URL ?? 'http://localhost:8080'
const key = process.env.SHAREDLLM_KEY
if (!key) throw new Error('set SHAREDLLM_KEY to your device key')

const openai = new OpenAI({ baseURL: `${url}/v1`, apiKey: key })

const models = await openai.models.list()
console.log(`models: ${models.data.map((m) => m.id).join(', ')}`)

const model = process.env.MODEL ?? models.data[0]?.id
const stream = await openai.chat.completions.create({
  model,
  messages: [{ role: 'user', content: 'Say hello' }],
  stream: true,
  stream_options: { include_usage: true },
})
let chunks = 0
process.stdout.write('answer: ')
for await (const chunk of stream) {
  const delta = chunk.choices[0]?.delta?.content
  if (delta) {
    chunks++
    process.stdout.write(delta)
  }
  if (chunk.usage)
    console.log(
      `\ntokens: ${chunk.usage.prompt_tokens} in, ${chunk.usage.completion_tokens} out (${chunks} chunks)`,
    )
}
