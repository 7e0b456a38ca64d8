/** Ready-to-paste client snippets for "My access". The key is inserted as is: the user asked to see it. */
export function clientSnippets(origin: string, key: string, model: string) {
  return {
    curl: [
      `curl ${origin}/ollama/api/chat \\`,
      `  -H 'Authorization: Bearer ${key}' \\`,
      `  -d '{"model":"${model}","messages":[{"role":"user","content":"Hello"}],"stream":false}'`,
    ].join('\n'),
    ollama: [
      `import { Ollama } from 'ollama'`,
      ``,
      `const ollama = new Ollama({`,
      `  host: '${origin}/ollama',`,
      `  headers: { Authorization: 'Bearer ${key}' },`,
      `})`,
      `const res = await ollama.chat({ model: '${model}', messages: [{ role: 'user', content: 'Hello' }] })`,
      `console.log(res.message.content)`,
    ].join('\n'),
    openai: [
      `import OpenAI from 'openai'`,
      ``,
      `const openai = new OpenAI({ baseURL: '${origin}/v1', apiKey: '${key}' })`,
      `const res = await openai.chat.completions.create({`,
      `  model: '${model}',`,
      `  messages: [{ role: 'user', content: 'Hello' }],`,
      `})`,
      `console.log(res.choices[0].message.content)`,
    ].join('\n'),
  }
}
