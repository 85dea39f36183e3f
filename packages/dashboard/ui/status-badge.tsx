import type { VmStatus } from './types';

/** The status in words; the colour only repeats it. */
export function StatusBadge({ status, text }: { status: VmStatus; text?: string }) {
  return <span class={`badge status-${status}`}>{text ?? status}</span>;
}
