import { openManager, vmNamespacePrefix } from '../backends.js';
import { abandonedDemos, type SweepChange, sweepDemo } from '../demo-leftovers.js';
import { ExitCode } from '../exit-codes.js';
import { interruptible } from '../interruptible.js';
import type { CommandHandler } from '../run.js';
import { changeTarget, unreadableJson, unreadableLine } from '../vm-view.js';

/**
 * `myhv gc`: VmManager.reconcile (finish or roll back interrupted work, mark dead VMs stopped, remove what no VM
 * owns), then whatever abandoned `myhv demo` runs left. Exit 1 when a repair failed, or when a VM's record
 * cannot be read (named in `unreadable`): what it owns cannot be told from leftovers, so nothing was swept.
 */
export const gc: CommandHandler = async (ctx) => {
  const config = await ctx.config();
  const parts = await openManager(config, { kind: 'full', vmm: await ctx.configuredVmm() });
  ctx.defer(parts.close);
  const report = await interruptible(ctx, (signal) => parts.manager.reconcile({ signal }));
  const demoChanges: SweepChange[] = [];
  for (const places of abandonedDemos()) demoChanges.push(...(await sweepDemo(places)));
  const changes = [...report.changes, ...demoChanges];
  // After the repairs: a create that died before its first record is gone by now, a corrupt record is not.
  const { unreadable } = await parts.manager.listAll();
  const unreadableNames = new Set(unreadable.map((u) => u.name));
  const json = {
    changes,
    skipped: report.skipped,
    errors: report.errors,
    unreadable: unreadable.map(unreadableJson),
  };
  ctx.out.result(json, () => {
    const { out } = ctx;
    if (changes.length === 0) out.print(out.ok('nothing to repair'));
    else
      out.table(
        ['kind', 'target', 'action'],
        changes.map((c) => [c.kind, changeTarget(c, vmNamespacePrefix(config.stateDir)), c.action]),
      );
    // Said once, below, with the path and the fix.
    for (const s of report.skipped)
      if (!unreadableNames.has(s.target)) out.print(`skipped ${s.target}: ${s.reason}`);
    for (const e of report.errors) out.print(out.bad(`${e.target}: ${e.message}`));
    for (const u of unreadable) out.print(out.bad(unreadableLine(u)));
  });
  if (report.errors.length > 0) {
    ctx.out.note(
      `myhv: ${report.errors.length} repair(s) failed; fix the cause and run \`myhv gc\` again (--debug for details)`,
    );
    return ExitCode.FAILED;
  }
  if (unreadable.length > 0) {
    ctx.out.note(
      `myhv: ${unreadable.length} VM record(s) cannot be read, so leftovers were not swept; fix or remove them and run \`myhv gc\` again`,
    );
    return ExitCode.FAILED;
  }
  return ExitCode.OK;
};
