import type { Knex } from 'knex'

/**
 * Round two's built-in role sizes, from the fit estimates of real models (see the README's roles section):
 * guest 1024 → 2048 MiB (the smallest chat models, e.g. smollm2:360m at about 1.1 GiB, llama3.2:1b or
 * qwen2.5:1.5b at about 1.5 GiB, with room for the guest's 8192-token context), user 4096 → 8192 MiB (a 7–8B
 * model at Q4_K_M: weights about 4.7 GiB plus 512 MiB of KV cache at 4096 tokens and the compute graph, about
 * 5.5 GiB; more context up to 16k). Admin stays 16384 MiB. Only rows that still hold the old size are
 * changed: a size the owner set is theirs.
 */
const CHANGES = [
  { id: 'role-guest', from: 1024, to: 2048 },
  { id: 'role-user', from: 4096, to: 8192 },
] as const

export async function up(knex: Knex): Promise<void> {
  const now = Date.now()
  for (const c of CHANGES) {
    await knex('roles')
      .where({ id: c.id, builtin: 1, max_memory_mb: c.from })
      .update({ max_memory_mb: c.to, updated_at: now })
  }
}

export async function down(knex: Knex): Promise<void> {
  for (const c of CHANGES) {
    await knex('roles').where({ id: c.id, builtin: 1, max_memory_mb: c.to }).update({ max_memory_mb: c.from })
  }
}
