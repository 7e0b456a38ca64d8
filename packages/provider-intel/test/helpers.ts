import { readFileSync } from 'node:fs'

/** A real captured output from test/fixtures (see its .source.md). */
export function fixture(name: string): string {
  return readFileSync(new URL(`./fixtures/${name}`, import.meta.url), 'utf8')
}
