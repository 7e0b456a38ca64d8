import { execFileSync, spawnSync } from 'node:child_process'

/**
 * Linux network namespaces joined by one veth pair with a multicast route: the only way mDNS works in a
 * test (binding to loopback never does). Everything is created with names that include the pid, and
 * removed again by `destroy()`, also after a failure.
 */
export interface NetnsPair {
  a: { ns: string; address: string; dev: string }
  b: { ns: string; address: string; dev: string }
  destroy(): void
}

/** Why the namespace tests cannot run here, or null when they can. */
export function netnsUnavailable(): string | null {
  if (process.platform !== 'linux') return 'network namespaces need Linux'
  if (typeof process.getuid === 'function' && process.getuid() !== 0)
    return 'creating network namespaces needs root'
  if (spawnSync('ip', ['-V']).error) return "the 'ip' command (iproute2) is missing"
  return null
}

const ip = (...args: string[]) => execFileSync('ip', args, { stdio: ['ignore', 'ignore', 'pipe'] })

/** Two namespaces `<tag>a<pid>` / `<tag>b<pid>` on 10.<x>.<y>.1 and .2, with 224.0.0.0/4 routed over the link. */
export function createNetnsPair(
  tag: string,
  subnet = `10.${200 + (process.pid % 50)}.${process.pid % 250}`,
): NetnsPair {
  const id = `${tag}${process.pid}`.slice(0, 10)
  const a = { ns: `${id}a`, address: `${subnet}.1`, dev: `${id}va` }
  const b = { ns: `${id}b`, address: `${subnet}.2`, dev: `${id}vb` }
  const destroy = () => {
    for (const ns of [a.ns, b.ns]) {
      // A process left inside keeps a deleted namespace alive, unseen: end every one first.
      const pids = spawnSync('ip', ['netns', 'pids', ns], { encoding: 'utf8' }).stdout ?? ''
      for (const pid of pids.split(/\s+/).filter(Boolean)) {
        try {
          process.kill(Number(pid), 'SIGKILL')
        } catch {}
      }
      spawnSync('ip', ['netns', 'del', ns], { stdio: 'ignore' })
    }
    // Deleting a namespace deletes the veth end inside it; this catches a pair that never moved.
    spawnSync('ip', ['link', 'del', a.dev], { stdio: 'ignore' })
  }
  try {
    destroy()
    ip('netns', 'add', a.ns)
    ip('netns', 'add', b.ns)
    ip('link', 'add', a.dev, 'type', 'veth', 'peer', 'name', b.dev)
    for (const side of [a, b]) {
      ip('link', 'set', side.dev, 'netns', side.ns)
      ip('-n', side.ns, 'addr', 'add', `${side.address}/24`, 'dev', side.dev)
      ip('-n', side.ns, 'link', 'set', side.dev, 'up')
      ip('-n', side.ns, 'link', 'set', 'lo', 'up')
      ip('-n', side.ns, 'route', 'add', '224.0.0.0/4', 'dev', side.dev)
    }
  } catch (err) {
    destroy()
    throw err
  }
  return { a, b, destroy }
}

export interface NetnsHost {
  ns: string
  address: string
  dev: string
}

/** A LAN of `n` namespaces on one bridge (in its own namespace), like hosts on one switch. */
export interface NetnsLan {
  hosts: NetnsHost[]
  destroy(): void
}

/**
 * `n` host namespaces `<tag><pid>h<i>` on 10.<x>.<y>.<i+1>/24, each with a veth to a bridge inside a switch
 * namespace, and 224.0.0.0/4 routed over it (mDNS reaches every host). All created here, removed by
 * `destroy()` (also after a failure); traffic only on these private links.
 */
export function createNetnsLan(
  tag: string,
  n: number,
  subnet = `10.${150 + (process.pid % 50)}.${process.pid % 250}`,
): NetnsLan {
  const id = `${tag}${process.pid}`.slice(0, 9)
  const sw = `${id}sw`
  const hosts: NetnsHost[] = Array.from({ length: n }, (_, i) => ({
    ns: `${id}h${i}`,
    address: `${subnet}.${i + 1}`,
    dev: `${id}e${i}`,
  }))
  const destroy = () => {
    for (const ns of [...hosts.map((h) => h.ns), sw]) {
      const pids = spawnSync('ip', ['netns', 'pids', ns], { encoding: 'utf8' }).stdout ?? ''
      for (const pid of pids.split(/\s+/).filter(Boolean)) {
        try {
          process.kill(Number(pid), 'SIGKILL')
        } catch {}
      }
      spawnSync('ip', ['netns', 'del', ns], { stdio: 'ignore' })
    }
    for (const h of hosts) spawnSync('ip', ['link', 'del', h.dev], { stdio: 'ignore' })
  }
  try {
    destroy()
    ip('netns', 'add', sw)
    ip('-n', sw, 'link', 'add', 'br0', 'type', 'bridge')
    ip('-n', sw, 'link', 'set', 'br0', 'up')
    hosts.forEach((h, i) => {
      const port = `${id}p${i}`
      ip('netns', 'add', h.ns)
      ip('link', 'add', h.dev, 'type', 'veth', 'peer', 'name', port)
      ip('link', 'set', h.dev, 'netns', h.ns)
      ip('link', 'set', port, 'netns', sw)
      ip('-n', sw, 'link', 'set', port, 'master', 'br0')
      ip('-n', sw, 'link', 'set', port, 'up')
      ip('-n', h.ns, 'addr', 'add', `${h.address}/24`, 'dev', h.dev)
      ip('-n', h.ns, 'link', 'set', h.dev, 'up')
      ip('-n', h.ns, 'link', 'set', 'lo', 'up')
      ip('-n', h.ns, 'route', 'add', '224.0.0.0/4', 'dev', h.dev)
    })
  } catch (err) {
    destroy()
    throw err
  }
  return { hosts, destroy }
}
