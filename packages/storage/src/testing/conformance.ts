import { mkdtemp, realpath, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { StorageError, type StorageErrorCode } from '../errors.js';
import type { PreparedShare, ShareRecord, ShareSpec, StorageBackend } from '../storage-backend.js';

/** How `runStorageConformance` gets a backend for each test, cleans up after it, and whether it runs at all. */
export interface StorageConformanceOptions<B extends StorageBackend = StorageBackend> {
  /** A fresh backend for each test. */
  readonly factory: () => B | Promise<B>;
  /** Runs after each test, once the kit has released every share it prepared (close it, remove its runDir). */
  readonly cleanup?: (backend: B) => void | Promise<void>;
  /** Skips the whole suite; a string is the reason, printed. */
  readonly skip?: boolean | string;
  /** Per-test timeout in ms. Default 30000. */
  readonly timeout?: number;
}

async function rejection(promise: Promise<unknown>): Promise<unknown> {
  return promise.then(
    (value) => {
      throw new Error(`expected a rejection, got ${JSON.stringify(value)}`);
    },
    (error: unknown) => error,
  );
}

async function expectCode(promise: Promise<unknown>, code: StorageErrorCode): Promise<StorageError> {
  const error = await rejection(promise);
  expect(StorageError.isInstance(error), `expected a StorageError, got ${String(error)}`).toBe(true);
  expect((error as StorageError).code).toBe(code);
  return error as StorageError;
}

const roundTrip = <T>(value: T): T => JSON.parse(JSON.stringify(value)) as T;

/**
 * The StorageBackend v1 contract as a vitest suite: prepare/release/adopt/list semantics, idempotent release,
 * stable error codes for bad input, aborted signals that leave nothing behind. Every backend runs it:
 *
 * ```ts
 * runStorageConformance('my backend', { factory: () => new MyStorage(), cleanup: (s) => s.close() });
 * ```
 */
export function runStorageConformance<B extends StorageBackend>(
  name: string,
  options: StorageConformanceOptions<B>,
): void {
  const { factory, cleanup, skip, timeout = 30_000 } = options;
  const title = `StorageBackend conformance: ${name}`;
  if (skip) {
    const reason = typeof skip === 'string' ? skip : 'skip was set';
    console.warn(`skipped: ${title} because ${reason}`);
    describe.skip(`${title} (skipped: ${reason})`, () => {
      it('is skipped', () => {});
    });
    return;
  }

  describe(title, () => {
    let backend: B;
    let hostDir: string;
    let counter = 0;
    const prepared: PreparedShare[] = [];

    const nextId = () => `conf-${++counter}`;
    const spec = (overrides: Partial<Record<keyof ShareSpec, unknown>> = {}): ShareSpec =>
      ({ id: nextId(), hostPath: hostDir, tag: 'share', ...overrides }) as ShareSpec;
    const prepare = async (share: ShareSpec, signal?: AbortSignal): Promise<PreparedShare> => {
      const result = await backend.prepare(share, signal ? { signal } : {});
      prepared.push(result);
      return result;
    };
    const listedIds = async () => (await backend.list()).map((record) => record.id);

    beforeEach(async () => {
      counter = 0;
      prepared.length = 0;
      hostDir = await mkdtemp(join(tmpdir(), 'myhv-storage-conf-'));
      backend = await factory();
    });

    afterEach(async () => {
      for (const share of prepared) await backend.release(share).catch(() => {});
      for (const record of await backend.list().catch(() => [] as ShareRecord[])) {
        await backend.release(record).catch(() => {});
      }
      await cleanup?.(backend);
      await rm(hostDir, { recursive: true, force: true });
    });

    it(
      'declares specification version v1',
      () => {
        expect(backend.specificationVersion).toBe('v1');
      },
      timeout,
    );

    it(
      'prepare returns what the VMM needs and a JSON-serialisable record',
      async () => {
        const share = await prepare(spec({ tag: 'home' }));
        expect(share.id).toBe('conf-1');
        expect(share.tag).toBe('home');
        expect(typeof share.socketPath).toBe('string');
        expect(share.socketPath.length).toBeGreaterThan(0);
        expect(share.requiresSharedMemory).toBe(true);
        expect(share.record.id).toBe(share.id);
        expect(share.record.tag).toBe('home');
        expect(share.record.socketPath).toBe(share.socketPath);
        expect(share.record.backend.length).toBeGreaterThan(0);
        expect(share.record.cache).toBe('never');
        expect(share.record.readOnly).toBe(false);
        expect(roundTrip(share.record)).toEqual(share.record);
      },
      timeout,
    );

    it(
      'records the cache mode it was given',
      async () => {
        const share = await prepare(spec({ cache: 'always' }));
        expect(share.record.cache).toBe('always');
      },
      timeout,
    );

    it(
      'resolves symlinks in hostPath and records the real path',
      async () => {
        const link = join(await mkdtemp(join(tmpdir(), 'myhv-storage-link-')), 'link');
        await symlink(hostDir, link);
        try {
          const share = await prepare(spec({ hostPath: link }));
          expect(share.record.hostPath).toBe(await realpath(hostDir));
        } finally {
          await rm(join(link, '..'), { recursive: true, force: true });
        }
      },
      timeout,
    );

    it(
      'adopt() takes over a stored record',
      async () => {
        const share = await prepare(spec());
        const adopted = await backend.adopt(roundTrip(share.record));
        expect(adopted.id).toBe(share.id);
        expect(adopted.tag).toBe(share.tag);
        expect(adopted.socketPath).toBe(share.socketPath);
        expect(adopted.requiresSharedMemory).toBe(true);
        expect(adopted.record.id).toBe(share.id);
      },
      timeout,
    );

    it(
      'list() shows prepared shares until they are released',
      async () => {
        const a = await prepare(spec());
        const b = await prepare(spec());
        expect(await listedIds()).toEqual(expect.arrayContaining([a.id, b.id]));
        await backend.release(a);
        const ids = await listedIds();
        expect(ids).not.toContain(a.id);
        expect(ids).toContain(b.id);
      },
      timeout,
    );

    it(
      'release stops the share once; releasing again cleans nothing and does not throw',
      async () => {
        const share = await prepare(spec());
        const first = await backend.release(share);
        expect(first.stopped).toBe(true);
        const second = await backend.release(share);
        expect(second).toEqual({
          stopped: false,
          killed: false,
          socketRemoved: false,
          pidFileRemoved: false,
          logRemoved: false,
        });
        expect(await listedIds()).not.toContain(share.id);
        await expectCode(backend.adopt(share.record), 'NOT_FOUND');
      },
      timeout,
    );

    it(
      'release accepts the stored record as well as the prepared share',
      async () => {
        const share = await prepare(spec());
        const result = await backend.release(roundTrip(share.record));
        expect(result.stopped).toBe(true);
        expect(await listedIds()).not.toContain(share.id);
      },
      timeout,
    );

    it(
      'a live id cannot be prepared twice; after release it can',
      async () => {
        const share = await prepare(spec());
        await expectCode(backend.prepare(spec({ id: share.id })), 'ALREADY_EXISTS');
        await backend.release(share);
        const again = await prepare(spec({ id: share.id }));
        expect(again.id).toBe(share.id);
      },
      timeout,
    );

    it(
      'two concurrent prepares of one id: exactly one wins',
      async () => {
        const id = nextId();
        const results = await Promise.allSettled([prepare(spec({ id })), prepare(spec({ id }))]);
        expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(1);
        const reason: unknown = results.find((r) => r.status === 'rejected')?.reason;
        expect(StorageError.isInstance(reason) && reason.code).toBe('ALREADY_EXISTS');
      },
      timeout,
    );

    it(
      'several shares at once get distinct sockets, and all are released',
      async () => {
        const shares = await Promise.all([1, 2, 3, 4, 5].map(() => prepare(spec())));
        expect(new Set(shares.map((s) => s.socketPath)).size).toBe(5);
        expect(await listedIds()).toEqual(expect.arrayContaining(shares.map((s) => s.id)));
        const results = await Promise.all(shares.map((s) => backend.release(s)));
        expect(results.every((r) => r.stopped)).toBe(true);
        const ids = await listedIds();
        for (const share of shares) expect(ids).not.toContain(share.id);
      },
      timeout,
    );

    it(
      'readOnly is either honoured or rejected with UNSUPPORTED',
      async () => {
        const outcome = await prepare(spec({ readOnly: true })).then(
          (share) => share,
          (error: unknown) => error,
        );
        if (StorageError.isInstance(outcome)) {
          expect(outcome.code).toBe('UNSUPPORTED');
          expect(await listedIds()).toEqual([]);
        } else {
          expect((outcome as PreparedShare).record.readOnly).toBe(true);
        }
      },
      timeout,
    );

    describe('bad input is INVALID_ARGUMENT and starts nothing', () => {
      const cases: [string, (dir: string) => Promise<Record<string, unknown>>][] = [
        ['an empty tag', async () => ({ tag: '' })],
        ['a 37-byte tag', async () => ({ tag: 'a'.repeat(37) })],
        ['a tag with a space', async () => ({ tag: 'a b' })],
        ['a tag with a slash', async () => ({ tag: 'a/b' })],
        ['a non-ASCII tag', async () => ({ tag: 'é' })],
        ['a tag with a newline', async () => ({ tag: 'a\n' })],
        ['an empty id', async () => ({ id: '' })],
        ['an id with a slash', async () => ({ id: 'a/b' })],
        ['a 65-byte id', async () => ({ id: 'a'.repeat(65) })],
        ['the id ".."', async () => ({ id: '..' })],
        ['a relative hostPath', async () => ({ hostPath: 'relative/dir' })],
        ['a missing hostPath', async (dir) => ({ hostPath: join(dir, 'missing') })],
        [
          'a hostPath that is a file',
          async (dir) => {
            await writeFile(join(dir, 'file'), 'x');
            return { hostPath: join(dir, 'file') };
          },
        ],
        [
          'a hostPath that links to a file',
          async (dir) => {
            await writeFile(join(dir, 'target'), 'x');
            await symlink(join(dir, 'target'), join(dir, 'link'));
            return { hostPath: join(dir, 'link') };
          },
        ],
        ['an unknown cache mode', async () => ({ cache: 'sometimes' })],
        ['a non-boolean readOnly', async () => ({ readOnly: 'yes' })],
      ];
      for (const [label, overrides] of cases) {
        it(
          label,
          async () => {
            await expectCode(backend.prepare(spec(await overrides(hostDir))), 'INVALID_ARGUMENT');
            expect(await listedIds()).toEqual([]);
          },
          timeout,
        );
      }

      it(
        'a share that is not an object is a TypeError',
        async () => {
          const error = await rejection(backend.prepare(null as unknown as ShareSpec));
          expect(error).toBeInstanceOf(TypeError);
        },
        timeout,
      );

      it(
        'adopt and release reject something that is not a record',
        async () => {
          await expectCode(backend.adopt({ id: 'x' } as unknown as ShareRecord), 'INVALID_ARGUMENT');
          await expectCode(backend.release({ id: 'x' } as unknown as ShareRecord), 'INVALID_ARGUMENT');
          expect(await rejection(backend.adopt(null as unknown as ShareRecord))).toBeInstanceOf(TypeError);
        },
        timeout,
      );
    });

    describe('signals', () => {
      it(
        'an aborted signal rejects prepare with ABORTED and starts nothing',
        async () => {
          const controller = new AbortController();
          controller.abort();
          const error = await expectCode(backend.prepare(spec(), { signal: controller.signal }), 'ABORTED');
          expect(error.cause).toBe(controller.signal.reason);
          expect(await listedIds()).toEqual([]);
        },
        timeout,
      );

      it(
        'a fired AbortSignal.timeout() rejects with TIMEOUT',
        async () => {
          const signal = AbortSignal.timeout(1);
          await sleep(20);
          await expectCode(backend.prepare(spec(), { signal }), 'TIMEOUT');
          expect(await listedIds()).toEqual([]);
        },
        timeout,
      );

      for (const delay of [0, 1, 3, 10]) {
        it(
          `an abort ${delay} ms into prepare either completes it or leaves nothing behind`,
          async () => {
            const controller = new AbortController();
            const share = spec();
            const pending = prepare(share, controller.signal);
            setTimeout(() => controller.abort(), delay);
            const outcome = await pending.then(
              () => 'prepared',
              (error: unknown) => error,
            );
            if (outcome !== 'prepared') {
              expect(StorageError.isInstance(outcome)).toBe(true);
              expect((outcome as StorageError).code).toBe('ABORTED');
              expect(await listedIds()).toEqual([]);
              // Nothing blocks the id afterwards.
              await prepare(spec({ id: share.id }));
            }
          },
          timeout,
        );
      }

      it(
        'release and adopt with an aborted signal reject with ABORTED and leave the share alone',
        async () => {
          const share = await prepare(spec());
          const controller = new AbortController();
          controller.abort();
          await expectCode(backend.release(share, { signal: controller.signal }), 'ABORTED');
          await expectCode(backend.adopt(share.record, { signal: controller.signal }), 'ABORTED');
          expect((await backend.adopt(share.record)).id).toBe(share.id);
        },
        timeout,
      );
    });
  });
}
