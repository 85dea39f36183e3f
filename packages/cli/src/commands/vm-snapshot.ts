import type { VmSnapshot } from '@my-hypervisor/vm-manager';
import { ExitCode } from '../exit-codes.js';
import { formatMemory } from '../format.js';
import { interruptible } from '../interruptible.js';
import type { CommandHandler } from '../run.js';
import { parseVmName } from '../vm-name.js';
import { recordSteps, statusText, totalMs } from '../vm-view.js';
import { describeVmm, vmmJson, withVmmHint } from '../vmm-choice.js';

/** `myhv vm snapshot NAME [--to DIR] [--leave-paused]`. */
export const vmSnapshot: CommandHandler = async (ctx, [rawName]) => {
  const name = parseVmName(rawName);
  const to = ctx.options.to === undefined ? undefined : String(ctx.options.to);
  const leavePaused = ctx.options.leavePaused === true;
  const parts = await ctx.manager({ kind: 'full', vmm: await ctx.configuredVmm() });
  ctx.defer(parts.close);
  // NOT_FOUND before any lock file is made: a typo changes nothing on disk.
  await parts.manager.get(name);
  const snapshot = await interruptible(ctx, (signal) =>
    parts.manager.snapshot(name, { signal, leavePaused, ...(to === undefined ? {} : { to }) }),
  );
  const vm = await parts.manager.get(name);
  ctx.out.result({ vm: name, status: vm.status, snapshot }, () =>
    ctx.out.print(
      ctx.out.ok(
        `${name}: snapshot ${snapshot.id} (${formatBytes(snapshot.sizeBytes)}) in ${snapshot.path}; ${statusText(vm)}`,
      ),
    ),
  );
  return ExitCode.OK;
};

/** `myhv vm snapshot ls NAME`: reads state only. */
export const vmSnapshotLs: CommandHandler = async (ctx, [rawName]) => {
  const name = parseVmName(rawName);
  const { manager } = await ctx.manager({ kind: 'read' });
  const snapshots = await manager.listSnapshots(name);
  ctx.out.result({ vm: name, snapshots }, () =>
    ctx.out.table(['id', 'created', 'size', 'cpus', 'memory', 'path'], snapshots.map(snapshotRow)),
  );
  return ExitCode.OK;
};

/** `myhv vm snapshot rm NAME SNAPSHOT`. */
export const vmSnapshotRm: CommandHandler = async (ctx, [rawName, rawId]) => {
  const name = parseVmName(rawName);
  const id = String(rawId);
  const parts = await ctx.manager({ kind: 'full', vmm: await ctx.configuredVmm() });
  ctx.defer(parts.close);
  await parts.manager.get(name);
  const removed = await interruptible(ctx, (signal) => parts.manager.removeSnapshot(name, id, { signal }));
  ctx.out.result({ vm: name, removed }, () =>
    ctx.out.print(ctx.out.ok(`${name}: removed snapshot ${removed.id} (${removed.path})`)),
  );
  return ExitCode.OK;
};

/** `myhv vm restore NAME [--from SNAPSHOT]`: spawns a VMM, so the VMM is chosen as for start. */
export const vmRestore: CommandHandler = async (ctx, [rawName]) => {
  const name = parseVmName(rawName);
  const from = ctx.options.from === undefined ? undefined : String(ctx.options.from);
  const vmm = await ctx.vmm();
  ctx.out.print(describeVmm(vmm));
  const parts = await ctx.manager({ kind: 'full', vmm });
  ctx.defer(parts.close);
  await parts.manager.get(name);
  const snapshots = await parts.manager.listSnapshots(name);
  const recorder = recordSteps(ctx.out.progress());
  const info = await interruptible(ctx, (signal) =>
    parts.manager
      .restore(name, { signal, onProgress: recorder.onProgress, ...(from === undefined ? {} : { from }) })
      .catch((error: unknown) => {
        throw withVmmHint(error, vmm);
      }),
  );
  const snapshot = from === undefined ? snapshots.at(-1) : snapshots.find((s) => s.id === from);
  ctx.out.result({ vmm: vmmJson(vmm), vm: info, snapshot: snapshot ?? null, steps: recorder.steps }, () => {
    const time = recorder.steps.length > 0 ? ` (${totalMs(recorder.steps)})` : '';
    ctx.out.print(
      ctx.out.ok(`restored ${info.name} from ${snapshot?.id ?? 'its snapshot'}: ${statusText(info)}${time}`),
    );
  });
  return ExitCode.OK;
};

function snapshotRow(s: VmSnapshot): string[] {
  return [
    s.id,
    s.createdAt,
    formatBytes(s.sizeBytes),
    String(s.spec.cpus),
    formatMemory(s.spec.memory),
    s.path,
  ];
}

/** A snapshot's size on disk: `412 B`, `3.1 KiB`, `64.0 MiB`. */
function formatBytes(bytes: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return unit === 0 ? `${value} B` : `${value.toFixed(1)} ${units[unit]}`;
}
