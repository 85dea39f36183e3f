import { openManager } from '../backends.js';
import { abandonedDemos, type SweepChange, sweepDemo } from '../demo-leftovers.js';
import { ExitCode } from '../exit-codes.js';
import { interruptible } from '../interruptible.js';
import type { CommandHandler } from '../run.js';

/**
 * `myhv gc`: VmManager.reconcile (finish or roll back interrupted work, mark dead VMs stopped, remove what no VM
 * owns), then whatever abandoned `myhv demo` runs left. Exit 1 when a repair failed.
 */
export const gc: CommandHandler = async (ctx) => {
  const config = await ctx.config();
  const parts = await openManager(config, { kind: 'full', vmm: await ctx.vmm() });
  ctx.defer(parts.close);
  const report = await interruptible(ctx, (signal) => parts.manager.reconcile({ signal }));
  const demoChanges: SweepChange[] = [];
  for (const places of abandonedDemos()) demoChanges.push(...(await sweepDemo(places)));
  const changes = [...report.changes, ...demoChanges];
  const json = { changes, skipped: report.skipped, errors: report.errors };
  ctx.out.result(json, () => {
    const { out } = ctx;
    if (changes.length === 0) out.print(out.ok('nothing to repair'));
    else
      out.table(
        ['kind', 'target', 'action'],
        changes.map((c) => [c.kind, c.target, c.action]),
      );
    for (const s of report.skipped) out.print(`skipped ${s.target}: ${s.reason}`);
    for (const e of report.errors) out.print(out.bad(`${e.target}: ${e.message}`));
  });
  if (report.errors.length > 0) {
    ctx.out.note(
      `myhv: ${report.errors.length} repair(s) failed; fix the cause and run \`myhv gc\` again (--debug for details)`,
    );
    return ExitCode.FAILED;
  }
  return ExitCode.OK;
};
