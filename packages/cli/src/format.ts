/** `12 ms`, `1.25 s`, `2 min 5 s`: the timings in progress lines and summaries. */
export function formatDuration(ms: number): string {
  if (!Number.isFinite(ms) || ms < 0) return '?';
  if (ms < 1_000) return `${ms < 10 ? ms.toFixed(1) : Math.round(ms)} ms`;
  if (ms < 60_000) return `${(ms / 1_000).toFixed(2)} s`;
  const minutes = Math.floor(ms / 60_000);
  return `${minutes} min ${Math.round((ms - minutes * 60_000) / 1_000)} s`;
}

const MiB = 1024 * 1024;

/** Bytes as a guest memory size: `512M`, `2G`, `1536M`. */
export function formatMemory(bytes: number): string {
  const mib = bytes / MiB;
  if (mib >= 1024 && mib % 1024 === 0) return `${mib / 1024}G`;
  return Number.isInteger(mib) ? `${mib}M` : `${bytes}B`;
}

/** `tcp/8080→10.62.0.2:80`, with the host address when the forward has one. */
export function formatForward(rule: {
  protocol: string;
  hostPort: number;
  guestPort: number;
  guestIp?: string;
  hostIp?: string | null;
}): string {
  const host = rule.hostIp ? `${rule.hostIp}:${rule.hostPort}` : String(rule.hostPort);
  const guest = rule.guestIp ? `${rule.guestIp}:${rule.guestPort}` : String(rule.guestPort);
  return `${rule.protocol}/${host}→${guest}`;
}
