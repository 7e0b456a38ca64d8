import type { ModelView, Role } from '@sharedllm/core/protocol'

/**
 * The slice a device gets when approved with `role`: the role's maximum, bounded by what is still free
 * (core/src/domain/devices.ts approveIn does the same), unless oversubscription is allowed.
 */
export function suggestedSliceMb(
  role: Pick<Role, 'max_memory_mb'>,
  unallocatedMb: number | null,
  allowOversubscription = false,
): number {
  if (allowOversubscription || unallocatedMb === null) return role.max_memory_mb
  return Math.max(0, Math.min(role.max_memory_mb, Math.floor(unallocatedMb)))
}

/** Installed models a device with this role and slice may run: allowed by the role, estimate within the slice. */
export function modelsFitting(models: ModelView[], roleId: string, sliceMb: number): string[] {
  const names: string[] = []
  for (const m of models) {
    const fit = m.fits.find((f) => f.role_id === roleId)
    if (!fit || fit.verdict === 'not_allowed' || fit.required_mb == null) continue
    if (fit.required_mb <= sliceMb) names.push(m.name)
  }
  return names
}

/** "smollm2:360m, qwen2.5:1.5b and 2 more" */
export function listNames(names: string[], max = 3): string {
  if (names.length <= max) return names.join(', ')
  return `${names.slice(0, max).join(', ')} and ${names.length - max} more`
}
