// The official `ollama` npm client, pointed at a sharedLLM host's gateway with a device key.
//   SHAREDLLM_URL=http://gpu-box.local:8080 SHAREDLLM_KEY=sllm_… MODEL=qwen3:1.7b node ollama-client.mjs
// Over HTTPS with the host's certificate authority: NODE_EXTRA_CA_CERTS=ca.crt node ollama-client.mjs
import { Ollama } from 'ollama'

const url = process.env.SHAREDLLM_URL ?? 'http://localhost:8080'
const key = process.env.SHAREDLLM_KEY
if (!key) throw new Error('set SHAREDLLM_KEY to your device key')

const ollama = new Ollama({ host: `${url}/ollama`, headers: { Authorization: `Bearer ${key}` } })

const { models } = await ollama.list()
console.log(`models: ${models.map((m) => m.name).join(', ')}`)

const model = process.env.MODEL ?? models[0]?.name
const stream = await ollama.chat({ model, messages: [{ role: 'user', content: 'Say hello' }], stream: true })
let chunks = 0
process.stdout.write('answer: ')
for await (const part of stream) {
  chunks++
  process.stdout.write(part.message.content)
  if (part.done)
    console.log(`\ntokens: ${part.prompt_eval_count} in, ${part.eval_count} out (${chunks} chunks)`)
}
