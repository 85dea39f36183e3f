import type { Forward, JournalEvent, VmInfo } from './types';

const BINARY_UNITS = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];

/** 536870912 → "512 MiB", 1610612736 → "1.5 GiB". */
export function formatBytes(bytes: number): string {
  if (!Number.isFinite(bytes) || bytes < 0) return '—';
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < BINARY_UNITS.length - 1) {
    value /= 1024;
    unit++;
  }
  const digits = unit === 0 || value >= 100 || Number.isInteger(value) ? 0 : 1;
  return `${value.toFixed(digits).replace(/\.0$/, '')} ${BINARY_UNITS[unit]}`;
}

/** Bytes per second: "1.2 KiB/s". */
export function formatRate(bytesPerSecond: number): string {
  return `${formatBytes(bytesPerSecond)}/s`;
}

/** "8080→80/tcp"; with a host address "127.0.0.1:8080→80/tcp". */
export function formatForward(forward: Forward): string {
  const host = forward.hostIp ? `${forward.hostIp}:${forward.hostPort}` : String(forward.hostPort);
  return `${host}→${forward.guestPort}/${forward.protocol}`;
}

/** The forwards in force (while it runs), else the ones its spec asks for. */
export function vmForwards(vm: VmInfo): readonly Forward[] {
  return vm.forwards.length > 0 ? vm.forwards : (vm.spec.network?.forwards ?? []);
}

const pad = (n: number) => String(n).padStart(2, '0');

/** Local time as "2026-12-07 14:03" (seconds with `seconds`), the same in every locale. */
export function formatTime(iso: string, seconds = false): string {
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) return iso;
  const day = `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())}`;
  const time = `${pad(date.getHours())}:${pad(date.getMinutes())}${seconds ? `:${pad(date.getSeconds())}` : ''}`;
  return `${day} ${time}`;
}

/** Since when it has been up: its last change while running or paused; undefined otherwise. */
export function upSince(vm: VmInfo): string | undefined {
  return vm.status === 'running' || vm.status === 'paused' ? vm.updatedAt : undefined;
}

/** The status as text, with what colour alone would otherwise say. */
export function statusText(vm: VmInfo): string {
  if ((vm.status === 'running' || vm.status === 'paused') && !vm.vmmAlive) return `${vm.status} (VMM gone)`;
  return vm.status;
}

/** One line for a journal event. */
export function describeEvent(event: JournalEvent): string {
  switch (event.type) {
    case 'status':
      return `status → ${event.status}`;
    case 'step': {
      const ms = event.ms !== undefined ? ` (${event.ms} ms)` : '';
      const error = event.error ? `: ${event.error}` : '';
      return `${event.op} · ${event.step} ${event.phase}${ms}${error}`;
    }
    case 'vmm': {
      const props = event.properties
        ? ` ${Object.entries(event.properties)
            .map(([k, v]) => `${k}=${v}`)
            .join(' ')}`
        : '';
      return `${event.source} ${event.event}${props}`;
    }
    default:
      return JSON.stringify(event);
  }
}

/** The key naming one journal event: its writing process and that process's sequence number. */
export function eventKey(event: JournalEvent): string {
  return `${event.pid}:${event.seq}`;
}
