#!/usr/bin/env node
// Draws the app icons (a chip with three linked devices) as real PNGs with zlib only, so no image tool is
// needed. Run `node scripts/make-icons.mjs` after changing the design; the PNGs are committed in public/.
import { writeFileSync } from 'node:fs'
import { deflateSync } from 'node:zlib'

const TEAL = [15, 118, 110]
const WHITE = [255, 255, 255]
const DARK = [16, 16, 20]

const crcTable = Array.from({ length: 256 }, (_, n) => {
  let c = n
  for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1
  return c >>> 0
})
const crc32 = (buf) => {
  let c = 0xffffffff
  for (const b of buf) c = crcTable[(c ^ b) & 0xff] ^ (c >>> 8)
  return (c ^ 0xffffffff) >>> 0
}
const chunk = (type, data) => {
  const len = Buffer.alloc(4)
  len.writeUInt32BE(data.length)
  const body = Buffer.concat([Buffer.from(type, 'ascii'), data])
  const crc = Buffer.alloc(4)
  crc.writeUInt32BE(crc32(body))
  return Buffer.concat([len, body, crc])
}
function png(size, rgbaAt) {
  const raw = Buffer.alloc(size * (size * 4 + 1))
  for (let y = 0; y < size; y++) {
    raw[y * (size * 4 + 1)] = 0 // filter: none
    for (let x = 0; x < size; x++) {
      const [r, g, b, a] = rgbaAt(x, y)
      const o = y * (size * 4 + 1) + 1 + x * 4
      raw[o] = r
      raw[o + 1] = g
      raw[o + 2] = b
      raw[o + 3] = a
    }
  }
  const ihdr = Buffer.alloc(13)
  ihdr.writeUInt32BE(size, 0)
  ihdr.writeUInt32BE(size, 4)
  ihdr[8] = 8 // bit depth
  ihdr[9] = 6 // RGBA
  const sig = Buffer.from([137, 80, 78, 71, 13, 10, 26, 10])
  return Buffer.concat([
    sig,
    chunk('IHDR', ihdr),
    chunk('IDAT', deflateSync(raw, { level: 9 })),
    chunk('IEND', Buffer.alloc(0)),
  ])
}

// Shapes in unit coordinates (0..1); `inset` shrinks the glyph into the maskable safe zone.
const segDist = (px, py, ax, ay, bx, by) => {
  const dx = bx - ax
  const dy = by - ay
  const t = Math.max(0, Math.min(1, ((px - ax) * dx + (py - ay) * dy) / (dx * dx + dy * dy)))
  return Math.hypot(px - ax - t * dx, py - ay - t * dy)
}
function glyph(u, v) {
  const hub = [0.5, 0.5]
  const nodes = [
    [0.5, 0.17],
    [0.2, 0.76],
    [0.8, 0.76],
  ]
  if (Math.hypot(u - hub[0], v - hub[1]) < 0.15) return 'hub'
  for (const [x, y] of nodes) if (Math.hypot(u - x, v - y) < 0.09) return 'node'
  for (const [x, y] of nodes) if (segDist(u, v, hub[0], hub[1], x, y) < 0.035) return 'node'
  return null
}
function icon(size, { maskable }) {
  const ss = 4 // supersampling for smooth edges
  const inset = maskable ? 0.22 : 0.16
  const radius = maskable ? 0 : 0.22
  return png(size, (x, y) => {
    let acc = [0, 0, 0, 0]
    for (let sy = 0; sy < ss; sy++)
      for (let sx = 0; sx < ss; sx++) {
        const u = (x + (sx + 0.5) / ss) / size
        const v = (y + (sy + 0.5) / ss) / size
        // rounded-square background (full bleed when maskable)
        const qx = Math.max(Math.abs(u - 0.5) - (0.5 - radius), 0)
        const qy = Math.max(Math.abs(v - 0.5) - (0.5 - radius), 0)
        if (radius > 0 && Math.hypot(qx, qy) > radius) continue
        const g = glyph((u - inset) / (1 - 2 * inset), (v - inset) / (1 - 2 * inset))
        const c = g === 'hub' ? DARK : g === 'node' ? WHITE : TEAL
        const inner =
          g === 'hub' && Math.hypot((u - 0.5) / (1 - 2 * inset), (v - 0.5) / (1 - 2 * inset)) < 0.085
        const col = inner ? WHITE : c
        acc = [acc[0] + col[0], acc[1] + col[1], acc[2] + col[2], acc[3] + 255]
      }
    const n = ss * ss
    const a = acc[3] / n
    if (a === 0) return [0, 0, 0, 0]
    const k = acc[3] / 255
    return [Math.round(acc[0] / k), Math.round(acc[1] / k), Math.round(acc[2] / k), Math.round(a)]
  })
}

const out = new URL('../public/', import.meta.url)
writeFileSync(new URL('icon-192.png', out), icon(192, { maskable: false }))
writeFileSync(new URL('icon-512.png', out), icon(512, { maskable: false }))
writeFileSync(new URL('icon-maskable-512.png', out), icon(512, { maskable: true }))
writeFileSync(new URL('apple-touch-icon.png', out), icon(180, { maskable: true }))
console.log('icons written to public/')
