import { Bonjour } from 'bonjour-service'

/** A hand-made advert, as a hostile host on the LAN could send it. */
export interface SpoofedAdvert {
  label: string
  txt: string[]
  port: number
  address: string
}

/**
 * Sends the adverts as mDNS responses from a fresh socket (twice, as real responders repeat), then closes
 * it. Used by hub-child.ts's `spoof` command, so no extra process has to start.
 */
export async function sendSpoofedAdverts(adverts: SpoofedAdvert[]): Promise<void> {
  const bonjour = new Bonjour({}, () => {})
  type Mdns = { respond(p: unknown, cb: () => void): void }
  const mdns = (bonjour as unknown as { server: { mdns: Mdns } }).server.mdns
  const send = (a: SpoofedAdvert) =>
    new Promise<void>((resolve) => {
      const fqdn = `${a.label}._sharedllm._tcp.local`
      mdns.respond(
        {
          answers: [
            { name: '_sharedllm._tcp.local', type: 'PTR', ttl: 120, data: fqdn },
            { name: fqdn, type: 'SRV', ttl: 120, data: { port: a.port, target: 'spoof.local' } },
            { name: fqdn, type: 'TXT', ttl: 120, data: a.txt },
            { name: 'spoof.local', type: 'A', ttl: 120, data: a.address },
          ],
        },
        resolve,
      )
    })
  for (let round = 0; round < 2; round++) {
    for (const a of adverts) await send(a)
    await new Promise((r) => setTimeout(r, 100))
  }
  await new Promise<void>((resolve) => bonjour.destroy(() => resolve()))
}
