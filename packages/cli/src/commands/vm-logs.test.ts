import { appendFileSync, readFileSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseVmSpec, type VmRecord } from '@my-hypervisor/vm-manager';
import { StateStore } from '@my-hypervisor/vm-manager/testing';
import { beforeAll, describe, expect, it } from 'vitest';
import { tempDir } from '../../test/temp-dir.js';
import type { CliIo } from '../cli-io.js';
import { ExitCode } from '../exit-codes.js';
import { run } from '../run.js';

const CHUNK = 64 * 1024;
const MiB = 1024 * 1024;

/** Bytes this process has read through read(2) so far (all threads), or undefined where /proc does not say. */
function bytesReadByProcess(): number | undefined {
  try {
    const match = /^rchar: (\d+)$/m.exec(readFileSync('/proc/self/io', 'utf8'));
    return match ? Number(match[1]) : undefined;
  } catch {
    return undefined;
  }
}
const noReadCounter =
  bytesReadByProcess() === undefined ? '/proc/self/io has no rchar (not Linux?)' : undefined;
if (noReadCounter) console.warn(`skipped: bounded-read checks of vm logs, because ${noReadCounter}`);

interface Sandbox {
  readonly env: Record<string, string>;
  readonly store: StateStore;
}

async function sandbox(): Promise<Sandbox> {
  const dir = await tempDir('myhv-cli-logs-');
  const store = new StateStore(join(dir, 'state'));
  await store.init();
  return {
    env: { PATH: '/nonexistent', MYHV_STATE_DIR: join(dir, 'state'), MYHV_RUN_DIR: join(dir, 'run') },
    store,
  };
}

/** A stopped VM record, as `vm create` + `vm stop` leave it; returns its serial log path. */
async function addVm(box: Sandbox, name: string, id = 'a1b2c3d4e5f6'): Promise<string> {
  const now = new Date().toISOString();
  const spec = parseVmSpec({
    name,
    kernel: '/var/lib/myhv/vmlinux',
    memory: '512M',
    network: { enabled: false },
  });
  const record: VmRecord = {
    schema: 1,
    id,
    name,
    spec,
    status: 'stopped',
    createdAt: now,
    updatedAt: now,
    resources: { forwards: [], shares: [] },
  };
  await box.store.claim(name);
  await box.store.write(record);
  return join(box.store.vmDir(name), 'serial.log');
}

interface Result {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
  /** The most the command had read (bytes, process-wide) beyond what it had printed, at any write. */
  readonly maxAhead: number;
  /** Bytes the process read during the whole command. */
  readonly bytesRead: number;
}

/** Runs the CLI in-process; `onOutput` sees stdout as it grows. Ends (as Ctrl-C would) on `stop` or after `limitMs`. */
async function myhv(
  box: Sandbox,
  argv: string[],
  {
    onOutput,
    stop,
    limitMs = 15_000,
  }: { onOutput?: (stdout: string) => void; stop?: AbortSignal; limitMs?: number } = {},
): Promise<Result> {
  const out: Buffer[] = [];
  const err: Buffer[] = [];
  const before = bytesReadByProcess() ?? 0;
  let written = 0;
  let maxAhead = 0;
  const stdout = new Writable({
    write(chunk: Buffer, _encoding, callback) {
      maxAhead = Math.max(maxAhead, (bytesReadByProcess() ?? 0) - before - written);
      written += chunk.length;
      out.push(chunk);
      if (onOutput) onOutput(Buffer.concat(out).toString('utf8'));
      callback();
    },
  });
  const stderr = new Writable({
    write(chunk: Buffer, _encoding, callback) {
      err.push(chunk);
      callback();
    },
  });
  const io: CliIo = {
    stdout,
    stderr,
    env: box.env,
    isTTY: false,
    signal: AbortSignal.any([AbortSignal.timeout(limitMs), ...(stop ? [stop] : [])]),
  };
  const code = await run(argv, io);
  return {
    code,
    stdout: Buffer.concat(out).toString('utf8'),
    stderr: Buffer.concat(err).toString('utf8'),
    maxAhead,
    bytesRead: (bytesReadByProcess() ?? 0) - before,
  };
}

/** Waits for stdout (as `myhv`'s onOutput reports it) to satisfy a test; fails once the command has ended. */
function outputWatch() {
  let text = '';
  let ended = false;
  const waiters: { test: (s: string) => boolean; resolve: () => void; reject: (e: Error) => void }[] = [];
  return {
    onOutput(stdout: string) {
      text = stdout;
      for (const w of waiters.filter((w) => w.test(text))) {
        waiters.splice(waiters.indexOf(w), 1);
        w.resolve();
      }
    },
    /** Call with the command's result promise. */
    watch(result: Promise<Result>): Promise<Result> {
      const end = () => {
        ended = true;
        for (const w of waiters.splice(0))
          w.reject(new Error(`the command ended; stdout: ${JSON.stringify(text)}`));
      };
      result.then(end, end);
      return result;
    },
    until(test: (s: string) => boolean): Promise<void> {
      if (test(text)) return Promise.resolve();
      if (ended) return Promise.reject(new Error(`the command ended; stdout: ${JSON.stringify(text)}`));
      return new Promise((resolve, reject) => waiters.push({ test, resolve, reject }));
    },
  };
}

/** A 16 MiB log of 64-byte numbered lines (made once). */
const bigLog = (() => {
  let made: Buffer | undefined;
  return () => {
    if (made) return made;
    const line = Buffer.from(`line 00000000 ${'x'.repeat(49)}\n`);
    made = Buffer.alloc(16 * MiB);
    for (let i = 0; i < made.length / line.length; i++) {
      line.write(String(i).padStart(8, '0'), 5);
      line.copy(made, i * line.length);
    }
    return made;
  };
})();

describe('myhv vm logs', () => {
  let box: Sandbox;
  beforeAll(async () => {
    box = await sandbox();
    // Loads the command's modules, so that the read counts below are the command's own reads.
    const warm = await addVm(box, 'warm');
    await writeFile(warm, 'boot\n');
    expect((await myhv(box, ['vm', 'logs', 'warm'])).code).toBe(0);
    expect((await myhv(box, ['--json', 'vm', 'logs', 'warm', '-n', '1'])).code).toBe(0);
  });

  it.skipIf(noReadCounter !== undefined)(
    '-n 3 of a 16 MiB log prints its last 3 lines, reading only its end',
    async () => {
      const log = await addVm(box, 'big');
      const content = bigLog();
      await writeFile(log, content);
      const last3 = content.toString('utf8').split('\n').slice(-4, -1);

      const human = await myhv(box, ['vm', 'logs', 'big', '-n', '3']);
      expect(human.code, human.stderr).toBe(0);
      expect(human.stdout).toBe(`${last3.join('\n')}\n`);
      expect(human.bytesRead).toBeLessThan(MiB);

      const json = await myhv(box, ['--json', 'vm', 'logs', 'big', '-n', '3']);
      expect(JSON.parse(json.stdout).lines).toEqual(last3);
      expect(json.bytesRead).toBeLessThan(MiB);
    },
  );

  it.skipIf(noReadCounter !== undefined)(
    'without -n streams the whole log: printing keeps up with reading',
    async () => {
      const log = await addVm(box, 'stream');
      const content = bigLog();
      await writeFile(log, content);
      const result = await myhv(box, ['vm', 'logs', 'stream']);
      expect(result.code, result.stderr).toBe(0);
      expect(result.stdout).toBe(content.toString('utf8'));
      // Never more than a few chunks read and not yet printed (the old code read all 16 MiB before printing).
      expect(result.maxAhead).toBeLessThan(MiB);
    },
  );

  it('-n counts lines like tail -n, in human and JSON output', async () => {
    const log = await addVm(box, 'small');
    for (const text of ['', '\n', 'a', 'a\n', 'a\n\n', 'a\nb', 'a\nb\n', '\n\nb\n']) {
      await writeFile(log, text);
      const all = text === '' ? [] : text.replace(/\n$/, '').split('\n');
      for (const n of [0, 1, 2, 5]) {
        const expected = n === 0 ? [] : all.slice(-n);
        const json = await myhv(box, ['--json', 'vm', 'logs', 'small', '-n', String(n)]);
        expect(JSON.parse(json.stdout).lines, `${JSON.stringify(text)} -n ${n}`).toEqual(expected);
        const human = await myhv(box, ['vm', 'logs', 'small', '-n', String(n)]);
        expect(human.stdout, `${JSON.stringify(text)} -n ${n}`).toBe(expected.map((l) => `${l}\n`).join(''));
      }
    }
  });

  it('prints UTF-8 characters split across read chunks intact, also in a tail spanning several chunks', async () => {
    const log = await addVm(box, 'utf8');
    // '€' is 3 bytes; the first one straddles the first chunk boundary, the long last line spans two more.
    const text = `${'x'.repeat(CHUNK - 1)}€\n${'€'.repeat(CHUNK)}\n`;
    await writeFile(log, text);
    const all = await myhv(box, ['vm', 'logs', 'utf8']);
    expect(all.stdout).toBe(text);
    const tail = await myhv(box, ['vm', 'logs', 'utf8', '-n', '1']);
    expect(tail.stdout).toBe(`${'€'.repeat(CHUNK)}\n`);
    expect(tail.stdout).not.toContain('\uFFFD');
  });

  it('--follow prints a character split between the first read and a later one, and one split while following', async () => {
    const log = await addVm(box, 'follow-utf8');
    const euro = Buffer.from('€');
    // The log ends inside a character: the guest has written only part of it.
    await writeFile(log, Buffer.concat([Buffer.from('boot\nprice: '), euro.subarray(0, 2)]));
    const watch = outputWatch();
    const stop = new AbortController();
    const following = watch.watch(
      myhv(box, ['vm', 'logs', 'follow-utf8', '-f'], { onOutput: watch.onOutput, stop: stop.signal }),
    );
    await watch.until((s) => s.includes('boot\n'));
    appendFileSync(log, Buffer.concat([euro.subarray(2), Buffer.from('\nnext: '), euro.subarray(0, 1)]));
    await watch.until((s) => s.includes('next: '));
    await sleep(300); // a poll or two with the character still incomplete
    appendFileSync(log, Buffer.concat([euro.subarray(1), Buffer.from('\n')]));
    await watch.until((s) => s.endsWith('next: €\n'));
    stop.abort();
    const result = await following;
    expect(result.code).toBe(ExitCode.INTERRUPTED);
    expect(result.stdout).toBe('boot\nprice: €\nnext: €\n');
  });

  it('--follow ends with exit 0 once the VM is removed, after printing what was written before', async () => {
    const log = await addVm(box, 'doomed');
    await writeFile(log, 'boot\n');
    const watch = outputWatch();
    const started = Date.now();
    const following = watch.watch(
      myhv(box, ['vm', 'logs', 'doomed', '--follow'], { onOutput: watch.onOutput }),
    );
    await watch.until((s) => s === 'boot\n');
    appendFileSync(log, 'power down\n');
    await box.store.remove('doomed');
    const result = await following;
    expect(result.code, result.stderr).toBe(ExitCode.OK);
    expect(result.stdout).toBe('boot\npower down\n');
    expect(result.stderr).toMatch(/removed/);
    expect(Date.now() - started).toBeLessThan(10_000);
  });

  it('--follow ends once the VM is replaced by a new one of the same name', async () => {
    const log = await addVm(box, 'reborn', '111111111111');
    await writeFile(log, 'old\n');
    const watch = outputWatch();
    const following = watch.watch(myhv(box, ['vm', 'logs', 'reborn', '-f'], { onOutput: watch.onOutput }));
    await watch.until((s) => s === 'old\n');
    // Replaced in place (as rm + create would leave it, minus the gap): only the new id tells.
    const record = (await box.store.read('reborn'))!;
    await box.store.write({ ...record, id: '222222222222' });
    expect((await following).code).toBe(ExitCode.OK);
  });

  it('-f follows, and -F still does', async () => {
    await addVm(box, 'flags');
    for (const flag of ['-f', '-F', '--follow']) {
      // Interrupted at once: 130 shows the command went into following.
      const result = await myhv(box, ['vm', 'logs', 'flags', flag], { limitMs: 0 });
      expect(result.code, `${flag}: ${result.stderr}`).toBe(ExitCode.INTERRUPTED);
    }
    expect((await myhv(box, ['vm', 'logs', 'flags'], { limitMs: 0 })).code).toBe(ExitCode.OK);
  });
});
