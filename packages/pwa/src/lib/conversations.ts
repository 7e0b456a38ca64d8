import { createStore, del, entries, set, type UseStore } from 'idb-keyval'

export interface StoredMessage {
  role: 'user' | 'assistant'
  content: string
  /** A thinking model's reasoning (Ollama's `message.thinking`), shown folded. */
  thinking?: string
  /** The user pressed stop: what arrived is kept. */
  stopped?: boolean
  tokens?: number | null
  /** Why this answer failed, shown in place of it. */
  error?: string
  /** A budget or hours refusal, in plain words (shown in place of the answer; not sent back as history). */
  refusal?: string
}

export interface Conversation {
  id: string
  title: string
  model: string | null
  /** System prompt, sent first when not empty. */
  system: string
  /** null: the model's own default. */
  temperature: number | null
  messages: StoredMessage[]
  created_at: number
  updated_at: number
}

/**
 * Conversations stay on this device, in IndexedDB, one entry per conversation. `scope` keeps the owner's
 * and each device key's conversations apart when they share a browser.
 */
export class ConversationStore {
  private readonly db: UseStore
  constructor(private readonly scope: string) {
    this.db = createStore('sharedllm-chat', 'conversations')
  }

  private key(id: string) {
    return `${this.scope}:${id}`
  }

  async list(): Promise<Conversation[]> {
    const all = await entries<string, Conversation>(this.db)
    return all
      .filter(([k]) => typeof k === 'string' && k.startsWith(`${this.scope}:`))
      .map(([, v]) => v)
      .sort((a, b) => b.updated_at - a.updated_at)
  }

  save(c: Conversation): Promise<void> {
    // A plain copy: IndexedDB's structured clone refuses Vue's reactive proxies.
    return set(this.key(c.id), JSON.parse(JSON.stringify(c)) as Conversation, this.db)
  }

  remove(id: string): Promise<void> {
    return del(this.key(id), this.db)
  }
}

export function newConversation(model: string | null): Conversation {
  const now = Date.now()
  return {
    id: globalThis.crypto?.randomUUID?.() ?? `${now}-${Math.random().toString(36).slice(2)}`,
    title: 'New chat',
    model,
    system: '',
    temperature: null,
    messages: [],
    created_at: now,
    updated_at: now,
  }
}

/** A title from the first question: its first line, shortened. */
export function titleFrom(text: string): string {
  const line = text.trim().split('\n')[0] ?? ''
  return line.length > 48 ? `${line.slice(0, 47)}…` : line || 'New chat'
}
