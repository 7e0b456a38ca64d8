/**
 * sysfs trees for the tests. No capture of an Intel card's sysfs exists in the shared fixtures, so these
 * follow the kernel's file formats: `vendor` as the AMD capture prints it (`0x1002\n`), `uevent` as
 * `KEY=value` lines (DRIVER, PCI_ID, PCI_SLOT_NAME), byte counts as decimal lines. The PCI ids are real
 * ones: 8086:46A6 (Alder Lake-P iGPU), 8086:56A0 (Arc A770), 8086:E20B (Arc B580).
 */
const uevent = (driver: string, pciId: string, slot: string) =>
  `DRIVER=${driver}\nPCI_CLASS=30000\nPCI_ID=${pciId}\nPCI_SUBSYS_ID=8086:3025\nPCI_SLOT_NAME=${slot}\nMODALIAS=pci:v00008086\n`

export const alderLakeIgpu: Record<string, string> = {
  '/sys/class/drm/card0/device/vendor': '0x8086\n',
  '/sys/class/drm/card0/device/uevent': uevent('i915', '8086:46A6', '0000:00:02.0'),
  '/sys/class/drm/renderD128/dev': '226:128\n',
  '/sys/class/drm/card0-eDP-1/status': 'connected\n',
}

export const arcB580OnXe: Record<string, string> = {
  '/sys/class/drm/card1/device/vendor': '0x8086\n',
  '/sys/class/drm/card1/device/uevent': uevent('xe', '8086:E20B', '0000:03:00.0'),
  '/sys/class/drm/card1/device/tile0/physical_vram_size_bytes': '12884901888\n',
}

export const arcA770OnDkmsI915: Record<string, string> = {
  '/sys/class/drm/card2/device/vendor': '0x8086\n',
  '/sys/class/drm/card2/device/uevent': uevent('i915', '8086:56A0', '0000:04:00.0'),
  '/sys/class/drm/card2/lmem_total_bytes': '17179869184\n',
  '/sys/class/drm/card2/lmem_avail_bytes': '15032385536\n',
}
