import { readFileSync } from 'node:fs'

/** A real captured output from test/fixtures (see its .source.md). */
export function fixture(name: string): string {
  return readFileSync(new URL(`./fixtures/${name}`, import.meta.url), 'utf8')
}

/** A sysfs fixture: a JSON map of absolute path to raw file content. */
export function sysfs(name: string): Record<string, string> {
  return JSON.parse(fixture(name))
}
