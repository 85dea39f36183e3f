import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { e2eSkipReason, json, myhv, Sandbox, startMyhv } from './myhv.js';

const skip = e2eSkipReason();
if (skip) console.warn(`skipped: the vm resize / vm stats e2e tests, because ${skip}`);

const MiB = 1024 * 1024;

describe.skipIf(skip !== undefined)('myhv vm resize and vm stats (simulator VMM)', () => {
  const box = new Sandbox('resize');
  const run = (...args: string[]) => myhv(args, box.env);

  beforeAll(async () => {
    box.create();
    const spec = join(box.dir, 'grow.json');
    writeFileSync(
      spec,
      JSON.stringify({
        name: 'grow',
        kernel: box.kernel,
        cpus: 1,
        cpusMax: 2,
        memory: '256M',
        memoryHotplug: '256M',
      }),
    );
    const created = await run('vm', 'create', '-f', spec);
    expect(created.code, created.stderr).toBe(0);
  });
  afterAll(() => {
    box.destroy();
  });

  it('resizes within the maximums; beyond them is exit 2 naming the flag', async () => {
    const grown = await run('--json', 'vm', 'resize', 'grow', '--cpus', '2', '--memory', '384M');
    expect(grown.code, grown.stderr).toBe(0);
    expect(json<{ vm: { spec: Record<string, unknown> } }>(grown).vm.spec).toMatchObject({
      cpus: 2,
      memory: 384 * MiB,
      memoryHotplug: 128 * MiB,
    });
    const listed = json<{ vms: { name: string; cpus: number; memory: number }[] }>(
      await run('--json', 'vm', 'ls'),
    );
    expect(listed.vms.find((v) => v.name === 'grow')).toMatchObject({ cpus: 2, memory: 384 * MiB });

    const tooMany = await run('--json', 'vm', 'resize', 'grow', '--cpus', '3');
    expect(tooMany.code).toBe(2);
    expect(JSON.parse(tooMany.stderr).error).toMatchObject({ code: 'INVALID_ARGUMENT', field: '--cpus' });
    expect(JSON.parse(tooMany.stderr).error.message).toContain('at most cpusMax 2');

    const offStep = await run('--json', 'vm', 'resize', 'grow', '--memory', '448M');
    expect(offStep.code).toBe(2);
    expect(JSON.parse(offStep.stderr).error).toMatchObject({ code: 'INVALID_ARGUMENT', field: '--memory' });

    const nothing = await run('vm', 'resize', 'grow');
    expect(nothing.code).toBe(2);

    const human = await run('vm', 'resize', 'grow', '--cpus', '1');
    expect(human.code, human.stderr).toBe(0);
    expect(human.stdout).toContain('resized grow: 1 vCPU (max 2), 384M memory (up to 512M)');
  });

  it('prints one stats document with counters and process numbers', async () => {
    const result = await run('--json', 'vm', 'stats', 'grow');
    expect(result.code, result.stderr).toBe(0);
    const { stats, rates } = json<{
      stats: {
        vm: string;
        at: string;
        counters: Record<string, Record<string, number>>;
        vmm: { pid: number; rssBytes: number };
      };
      rates: unknown;
    }>(result);
    expect(rates).toBeNull();
    expect(stats.vm).toBe('grow');
    expect(stats.counters._net0).toHaveProperty('rx_bytes');
    expect(stats.vmm.pid).toBeGreaterThan(0);
    expect(stats.vmm.rssBytes).toBeGreaterThan(0);

    const human = await run('vm', 'stats', 'grow');
    expect(human.code, human.stderr).toBe(0);
    expect(human.stdout).toMatch(/^vmm\s/m);
    expect(human.stdout).toContain('rx_bytes');

    const badInterval = await run('vm', 'stats', 'grow', '--watch', '--interval', '0');
    expect(badInterval.code).toBe(2);
  });

  it('--watch --json prints NDJSON with rates until Ctrl-C (exit 130)', async () => {
    const watch = startMyhv(['--json', 'vm', 'stats', 'grow', '--watch', '--interval', '0.2'], box.env);
    await watch.waitForLines(3);
    watch.child.kill('SIGINT');
    expect(await watch.exited).toBe(130);
    const docs = watch.lines.filter(Boolean).map((l) => JSON.parse(l));
    expect(docs[0].rates).toBeNull();
    expect(docs[1].rates).toMatchObject({ vmm: { cpuPercent: expect.any(Number) } });
    expect(docs[1].rates.counters._net0).toHaveProperty('rx_bytes');
    expect(docs[1].rates.seconds).toBeGreaterThan(0);
  });

  it('--watch ends with exit 0 when the VM stops; resize and stats of a stopped VM fail', async () => {
    const watch = startMyhv(['vm', 'stats', 'grow', '--watch', '--interval', '0.2'], box.env);
    await watch.waitForLines(3);
    const stopped = await run('vm', 'stop', 'grow');
    expect(stopped.code, stopped.stderr).toBe(0);
    expect(await watch.exited).toBe(0);
    expect(watch.stderr()).toContain('grow stopped');

    const resize = await run('--json', 'vm', 'resize', 'grow', '--cpus', '2');
    expect(resize.code).toBe(1);
    expect(JSON.parse(resize.stderr).error.code).toBe('WRONG_STATE');
    const stats = await run('vm', 'stats', 'grow');
    expect(stats.code).toBe(1);
  });
});
