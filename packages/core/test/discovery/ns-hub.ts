import { type ChildProcess, spawn } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { createInterface } from 'node:readline'

const coreDir = new URL('../..', import.meta.url).pathname

export interface HubEvent {
  event: string
  payload: { device?: { instance_id: string | null; [k: string]: unknown }; [k: string]: unknown }
}

/** A hub-child.ts process inside a network namespace, driven over stdin/stdout. */
export class NsHub {
  readonly events: HubEvent[] = []
  instanceId = ''
  private readonly child: ChildProcess
  private readonly replies = new Map<number, (msg: { result?: unknown; error?: string }) => void>()
  private readonly waiters = new Set<() => void>()
  private nextId = 1
  private stderr = ''
  private readonly ready: Promise<void>

  constructor(ns: string, env: Record<string, string>) {
    this.child = spawn(
      'ip',
      ['netns', 'exec', ns, process.execPath, '--import', 'tsx', 'test/discovery/hub-child.ts'],
      {
        cwd: coreDir,
        env: { ...process.env, ...env },
        stdio: ['pipe', 'pipe', 'pipe'],
      },
    )
    this.child.stderr?.on('data', (d) => {
      this.stderr += d
    })
    this.ready = new Promise((resolve, reject) => {
      this.child.once('exit', (code) => reject(new Error(`hub in ${ns} exited (${code}): ${this.stderr}`)))
      createInterface({ input: this.child.stdout! }).on('line', (line) => {
        let msg: { type: string; id?: number; instance_id?: string } & Record<string, unknown>
        try {
          msg = JSON.parse(line)
        } catch {
          return
        }
        if (msg.type === 'ready') {
          this.instanceId = msg.instance_id ?? ''
          resolve()
        } else if (msg.type === 'reply')
          this.replies.get(msg.id!)?.(msg as { result?: unknown; error?: string })
        else if (msg.type === 'event') {
          this.events.push(msg as unknown as HubEvent)
          for (const w of this.waiters) w()
        }
      })
    })
  }

  start(): Promise<void> {
    return this.ready
  }

  call<T = unknown>(cmd: string, args: Record<string, unknown> = {}): Promise<T> {
    const id = this.nextId++
    return new Promise((resolve, reject) => {
      this.replies.set(id, (msg) => {
        this.replies.delete(id)
        if (msg.error) reject(new Error(msg.error))
        else resolve(msg.result as T)
      })
      this.child.stdin!.write(`${JSON.stringify({ id, cmd, args })}\n`)
    })
  }

  /** Resolves with the first event (already seen or coming) that matches. */
  waitEvent(match: (e: HubEvent) => boolean, timeoutMs = 5000, what = 'event'): Promise<HubEvent> {
    const found = this.events.find(match)
    if (found) return Promise.resolve(found)
    return new Promise((resolve, reject) => {
      const check = () => {
        const e = this.events.find(match)
        if (!e) return
        this.waiters.delete(check)
        clearTimeout(timer)
        resolve(e)
      }
      const timer = setTimeout(() => {
        this.waiters.delete(check)
        reject(
          new Error(
            `no ${what} within ${timeoutMs} ms; events: ${this.events.map((e) => e.event).join(', ')}`,
          ),
        )
      }, timeoutMs)
      this.waiters.add(check)
    })
  }

  /** Clean stop (goodbyes sent); SIGKILL if it does not exit in time. */
  async stop(): Promise<void> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return
    const exited = new Promise((r) => this.child.once('exit', r))
    this.call('stop').catch(() => {})
    const timer = setTimeout(() => this.kill(), 3000)
    await exited
    clearTimeout(timer)
  }

  kill(): void {
    if (this.child.pid && !isGone(this.child.pid)) this.child.kill('SIGKILL')
  }
}

/** PID 1 here does not reap orphans: a zombie counts as gone (STACK.md). */
function isGone(pid: number): boolean {
  try {
    return /State:\s+Z/.test(readFileSync(`/proc/${pid}/status`, 'utf8'))
  } catch {
    return true
  }
}
