import { vmSpecSchema } from '@my-hypervisor/vm-manager';
import { invalidValue } from './errors.js';

/**
 * Validates a VM name argument with the spec's own rule before it is used as a path component anywhere
 * (`vm start ../../etc` must never reach the state store).
 */
export function parseVmName(value: unknown, field = 'name'): string {
  const result = vmSpecSchema.shape.name.safeParse(value);
  if (result.success) return result.data;
  const shown = typeof value === 'string' ? JSON.stringify(value) : String(value);
  throw invalidValue(
    field,
    `${shown} ${result.error.issues[0]?.message ?? 'is not a VM name'}`,
    "VM names are 1–63 letters, digits, '_', '.', '-', starting with a letter or digit",
  );
}
