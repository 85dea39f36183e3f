import { readFile, writeFile } from 'node:fs/promises';
import http from 'node:http';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { unloadableProbeGuestImage } from '../../src/testing/probe-guest.js';

/**
 * The matrix of exchanges held against real Cloud Hypervisor answers, shared by the recorder
 * (scripts/record-real-answers.ts, on a host with /dev/kvm) and the replay test (test/real-answers.test.ts).
 *
 * Placeholders, so that answers from two runs compare:
 * - in requests, `{{dir}}` is the run's directory and `{{kernel}}` the bootable guest (the probe guest for the
 *   real VMM, any file for the simulator); answers have both replaced back;
 * - `"<mac>"` a MAC the VMM generated (any `mac` value the exchange did not send), `"<int>"` any integer (pids,
 *   traffic counters), `"<string>"` any string (build strings, serde's detail text), `"<string[]>"` any array of
 *   strings (build features), `"<any>"` any value (the device tree); a last array element `"<...>"` stands for
 *   any rest of the array (an error chain whose innermost messages come from a crate, not from CH).
 */
export interface Step {
  readonly method: 'GET' | 'PUT';
  readonly path: string;
  readonly body?: unknown;
  /** Compare only this dot path of the JSON answer (e.g. `state`, `config.net`). */
  readonly select?: string;
}

export interface Answer {
  readonly status: number;
  /** Parsed JSON, text, or null for an empty body. */
  readonly body: unknown;
}

export interface Exchange {
  readonly name: string;
  readonly steps: readonly (Step & { readonly answer: Answer })[];
  /** Expected `source event` lines of the event monitor over the whole VMM process, when checked. */
  readonly events?: readonly string[];
  /** `observed`: seen from the real binary (quoted in `note`); `upstream-source`: derived from v53.0 source. */
  readonly source: 'observed' | 'upstream-source' | 'recorded';
  readonly note: string;
  /**
   * Files the exchange needs in `{{dir}}`: name → size in bytes (zero-filled), or `"unloadable-guest"` for the
   * probe guest built to fail loading (`unloadableProbeGuestImage`).
   */
  readonly files?: Readonly<Record<string, number | 'unloadable-guest'>>;
}

export interface Fixture {
  readonly version: string;
  readonly placeholders: string;
  readonly exchanges: readonly Exchange[];
}

export const fixturePath = join(dirname(fileURLToPath(import.meta.url)), 'v53.0.0.json');

export async function loadFixture(): Promise<Fixture> {
  return JSON.parse(await readFile(fixturePath, 'utf8')) as Fixture;
}

export interface RunContext {
  readonly socketPath: string;
  readonly dir: string;
  readonly kernel: string;
}

/** Sends one exchange's requests in order and returns its answers, normalised. */
export async function runSteps(exchange: Exchange, ctx: RunContext): Promise<Answer[]> {
  const sentMacs = new Set<string>();
  const answers: Answer[] = [];
  for (const step of exchange.steps) {
    const body = step.body === undefined ? undefined : substitute(step.body, ctx);
    collectMacs(body, sentMacs);
    const raw = await request(ctx.socketPath, step.method, `/api/v1/${step.path}`, body);
    let parsed: unknown = raw.body === '' ? null : raw.body;
    try {
      if (raw.body !== '') parsed = JSON.parse(raw.body);
    } catch {
      // Plain text stays text.
    }
    if (step.select && parsed !== null && typeof parsed === 'object') parsed = pick(parsed, step.select);
    answers.push({ status: raw.status, body: normalise(parsed, ctx, sentMacs, step.path) });
  }
  return answers;
}

/** `source event` lines from an event-monitor file (pretty-printed objects separated by blank lines). */
export function eventLines(text: string): string[] {
  return text
    .split(/\n\s*\n/)
    .map((chunk) => chunk.trim())
    .filter((chunk) => chunk !== '')
    .map((chunk) => {
      const event = JSON.parse(chunk) as { source: string; event: string };
      return `${event.source} ${event.event}`;
    });
}

/** Whether `actual` matches `expected`, where `expected` may hold placeholders. */
export function matches(expected: unknown, actual: unknown): boolean {
  // Both sides normalised to the same placeholder (a recording compared with a recording) are equal.
  if (expected === actual) return true;
  if (typeof expected === 'string') {
    switch (expected) {
      case '<any>':
        return true;
      case '<string>':
        return typeof actual === 'string';
      case '<int>':
        return Number.isInteger(actual);
      case '<mac>':
        return typeof actual === 'string' && /^([0-9a-f]{2}:){5}[0-9a-f]{2}$/.test(actual);
      case '<string[]>':
        return Array.isArray(actual) && actual.every((v) => typeof v === 'string');
      default:
        return expected === actual;
    }
  }
  if (Array.isArray(expected)) {
    if (!Array.isArray(actual)) return false;
    if (expected.at(-1) === '<...>') {
      const head = expected.slice(0, -1);
      return actual.length >= head.length && head.every((e, i) => matches(e, actual[i]));
    }
    return expected.length === actual.length && expected.every((e, i) => matches(e, actual[i]));
  }
  if (expected !== null && typeof expected === 'object') {
    if (actual === null || typeof actual !== 'object' || Array.isArray(actual)) return false;
    const e = expected as Record<string, unknown>;
    const a = actual as Record<string, unknown>;
    const keys = new Set([...Object.keys(e), ...Object.keys(a)]);
    return [...keys].every((k) => k in e && k in a && matches(e[k], a[k]));
  }
  return expected === actual;
}

function substitute(value: unknown, ctx: RunContext): unknown {
  if (typeof value === 'string')
    return value.replaceAll('{{dir}}', ctx.dir).replaceAll('{{kernel}}', ctx.kernel);
  if (Array.isArray(value)) return value.map((v) => substitute(v, ctx));
  if (value !== null && typeof value === 'object') {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, substitute(v, ctx)]));
  }
  return value;
}

function collectMacs(value: unknown, into: Set<string>) {
  if (Array.isArray(value)) for (const v of value) collectMacs(v, into);
  else if (value !== null && typeof value === 'object') {
    for (const [k, v] of Object.entries(value)) {
      if (k === 'mac' && typeof v === 'string') into.add(v);
      else collectMacs(v, into);
    }
  }
}

function normalise(
  value: unknown,
  ctx: RunContext,
  sentMacs: Set<string>,
  path: string,
  key?: string,
): unknown {
  if (key === 'device_tree' && value !== undefined) return '<any>';
  if (path === 'vmm.ping' && key === 'pid') return '<int>';
  if (path === 'vmm.ping' && key === 'build_version') return '<string>';
  if (path === 'vmm.ping' && key === 'features') return '<string[]>';
  if (path === 'vm.counters' && typeof value === 'number') return '<int>';
  if (key === 'mac' && typeof value === 'string' && !sentMacs.has(value)) return '<mac>';
  // The TAP's own MAC, which the kernel picks when the VMM opens it (v53 reports it once booted).
  if (key === 'host_mac' && typeof value === 'string') return '<mac>';
  if (typeof value === 'string') {
    // The kernel first: it may live inside the run directory.
    return value.replaceAll(ctx.kernel, '{{kernel}}').replaceAll(ctx.dir, '{{dir}}');
  }
  if (Array.isArray(value)) return value.map((v) => normalise(v, ctx, sentMacs, path));
  if (value !== null && typeof value === 'object') {
    return Object.fromEntries(
      Object.entries(value).map(([k, v]) => [k, normalise(v, ctx, sentMacs, path, k)]),
    );
  }
  return value;
}

function pick(value: object, select: string): unknown {
  let at: unknown = value;
  for (const part of select.split('.')) at = (at as Record<string, unknown> | undefined)?.[part];
  return at ?? null;
}

function request(
  socketPath: string,
  method: string,
  path: string,
  body: unknown,
): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const payload = body === undefined ? undefined : JSON.stringify(body);
    const req = http.request(
      {
        socketPath,
        method,
        path,
        headers: {
          Accept: 'application/json',
          ...(payload === undefined
            ? {}
            : { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(payload) }),
        },
        // Long enough for a vhost-user connect that retries for a minute (vu_common_ctrl.rs:408).
        timeout: 90_000,
      },
      (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => {
          text += chunk;
        });
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text }));
        res.on('error', reject);
      },
    );
    req.on('timeout', () => req.destroy(new Error(`${method} ${path}: no answer in 90 s`)));
    req.on('error', reject);
    req.end(payload);
  });
}

/** Writes the files an exchange needs into its run directory. */
export async function writeExchangeFiles(exchange: Exchange, dir: string): Promise<void> {
  for (const [name, content] of Object.entries(exchange.files ?? {})) {
    await writeFile(
      join(dir, name),
      content === 'unloadable-guest' ? unloadableProbeGuestImage() : Buffer.alloc(content),
    );
  }
}
