import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect } from 'vitest';
import { ChvApiError, type ChvErrorCode, ChvProcess } from '../src/index.js';
import {
  realVmmBinary,
  realVmmMissingReason,
  realVmmSkipReason,
  type SimulatorVersion,
  simulatorVersions,
  startSimulator,
  writeProbeGuest,
} from '../src/testing/index.js';

/** A fresh directory with a short path (socket paths are limited to 107 bytes). */
export async function tempDir(): Promise<{ path: string; [Symbol.asyncDispose](): Promise<void> }> {
  const path = await mkdtemp(join(tmpdir(), 'chv-'));
  return { path, [Symbol.asyncDispose]: () => rm(path, { recursive: true, force: true }) };
}

/** Asserts that `promise` rejects with a ChvApiError of `code`, and returns it. */
export async function expectChvError(promise: Promise<unknown>, code: ChvErrorCode): Promise<ChvApiError> {
  let caught: unknown;
  try {
    await promise;
  } catch (error) {
    caught = error;
  }
  expect(ChvApiError.isInstance(caught), `expected a ChvApiError ${code}, got ${String(caught)}`).toBe(true);
  expect((caught as ChvApiError).code, (caught as ChvApiError).longMessage).toBe(code);
  return caught as ChvApiError;
}

/** Why the real-binary suites skip here (no binary named, or no usable /dev/kvm), or undefined. */
export const realSkipReason = realVmmSkipReason();
/** The real binary to boot guests with: MYHV_CLOUD_HYPERVISOR, when this host can run guests. */
export const realBinary = realSkipReason ? undefined : realVmmBinary();
/** The real binary when it exists, even where it cannot run guests (for start-up failure tests). */
export const realBinaryOnDisk = realVmmMissingReason() ? undefined : realVmmBinary();
/** A kernel of the caller's from MYHV_CHV_KERNEL; otherwise the real suites boot the probe guest. */
export const realKernel = process.env.MYHV_CHV_KERNEL || undefined;

export const isRoot = process.getuid?.() === 0;

/** One VMM the client and supervisor suites run against. */
export interface Backend {
  readonly name: string;
  /** The simulator version, or undefined for the real binary. */
  readonly simulator: SimulatorVersion | undefined;
  /** Starts a VMM listening on `socketPath`. */
  start(socketPath: string): Promise<{ stop(): Promise<void> }>;
  /** A kernel path `vm.boot` accepts: MYHV_CHV_KERNEL on the real binary, else the probe guest written into `dir`. */
  kernel(dir: string): Promise<string>;
}

const simulatorBackends: Backend[] = simulatorVersions.map((version) => ({
  name: `simulator ${version}`,
  simulator: version,
  async start(socketPath) {
    const simulator = await startSimulator({ socketPath, version });
    return { stop: () => simulator.close() };
  },
  async kernel(dir) {
    return writeProbeGuest(join(dir, 'vmlinux'));
  },
}));

const realBackend: Backend | undefined = realBinary
  ? {
      name: `real ${realBinary}`,
      simulator: undefined,
      async start(socketPath) {
        const vmm = await ChvProcess.spawn({ command: realBinary, socketPath });
        return { stop: () => vmm.close() };
      },
      async kernel(dir) {
        return realKernel ?? writeProbeGuest(join(dir, 'vmlinux'));
      },
    }
  : undefined;

/** The simulator in every version mode, plus the real binary when MYHV_CLOUD_HYPERVISOR is set. */
export const backends: readonly Backend[] = [...simulatorBackends, ...(realBackend ? [realBackend] : [])];

if (!realBackend) console.warn(`skipped: real cloud-hypervisor suites, because ${realSkipReason}`);
