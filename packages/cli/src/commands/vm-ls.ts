import { openManager } from '../backends.js';
import { ExitCode } from '../exit-codes.js';
import type { CommandHandler } from '../run.js';
import { vmSummary, vmTableHeaders, vmTableRow } from '../vm-view.js';

/** `myhv vm ls`: reads the state directory only — no backend is built, nothing is spawned. */
export const vmLs: CommandHandler = async (ctx) => {
  const config = await ctx.config();
  const { manager } = await openManager(config, { kind: 'read' });
  const vms = await manager.list();
  ctx.out.result({ vms: vms.map(vmSummary) }, () => ctx.out.table(vmTableHeaders, vms.map(vmTableRow)));
  return ExitCode.OK;
};
