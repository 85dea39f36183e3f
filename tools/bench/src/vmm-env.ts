import { existsSync } from 'node:fs';

/** The cloud-hypervisor the workspace provides beside the checkout (`../shared`), where it does. */
export const workspaceVmmBinary = new URL(
  '../../../../shared/cloud-hypervisor/bin/cloud-hypervisor',
  import.meta.url,
).pathname;

/**
 * This process's environment for a benchmark's real-VMM runs: `MYHV_CLOUD_HYPERVISOR` as set, else the
 * workspace's binary where it exists (so `pnpm bench` measures the real VMM without being told).
 */
export function benchVmmEnv(env: NodeJS.ProcessEnv = process.env): NodeJS.ProcessEnv {
  const out = { ...env };
  if (!out.MYHV_CLOUD_HYPERVISOR && existsSync(workspaceVmmBinary))
    out.MYHV_CLOUD_HYPERVISOR = workspaceVmmBinary;
  return out;
}
