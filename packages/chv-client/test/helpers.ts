import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect } from 'vitest';
import { ChvApiError, type ChvErrorCode, ChvProcess } from '../src/index.js';
import { type SimulatorVersion, simulatorVersions, startSimulator } from '../src/testing/index.js';

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

/** The real binary to test against, from MYHV_CLOUD_HYPERVISOR; a kernel to boot from MYHV_CHV_KERNEL. */
export const realBinary = process.env.MYHV_CLOUD_HYPERVISOR || undefined;
export const realKernel = process.env.MYHV_CHV_KERNEL || undefined;

export const isRoot = process.getuid?.() === 0;

/** One VMM the client and supervisor suites run against. */
export interface Backend {
  readonly name: string;
  /** The simulator version, or undefined for the real binary. */
  readonly simulator: SimulatorVersion | undefined;
  /** Starts a VMM listening on `socketPath`. */
  start(socketPath: string): Promise<{ stop(): Promise<void> }>;
  /** A kernel path `vm.boot` accepts, or undefined when this backend cannot boot (real binary, no kernel). */
  kernel(dir: string): Promise<string | undefined>;
}

const simulatorBackends: Backend[] = simulatorVersions.map((version) => ({
  name: `simulator ${version}`,
  simulator: version,
  async start(socketPath) {
    const simulator = await startSimulator({ socketPath, version });
    return { stop: () => simulator.close() };
  },
  async kernel(dir) {
    // The simulator only checks that the kernel file exists.
    const path = join(dir, 'vmlinux');
    await writeFile(path, 'not a kernel');
    return path;
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
      async kernel() {
        return realKernel;
      },
    }
  : undefined;

/** The simulator in every version mode, plus the real binary when MYHV_CLOUD_HYPERVISOR is set. */
export const backends: readonly Backend[] = [...simulatorBackends, ...(realBackend ? [realBackend] : [])];

if (!realBackend) {
  console.warn('skipped: real cloud-hypervisor suites, because MYHV_CLOUD_HYPERVISOR is not set');
}
