import { ExitCode } from '../exit-codes.js';
import type { CommandHandler } from '../run.js';
import {
  unreadableJson,
  unreadableLine,
  unreadableRow,
  vmSummary,
  vmTableHeaders,
  vmTableRow,
} from '../vm-view.js';

/**
 * `myhv vm ls`: reads the state directory only — no backend is built, nothing is spawned. A VM whose record cannot
 * be used is listed too (status `unreadable`; `unreadable` in JSON), with the path and why on stderr.
 */
export const vmLs: CommandHandler = async (ctx) => {
  const { manager } = await ctx.manager({ kind: 'read' });
  const { vms, unreadable } = await manager.listAll();
  const rows = [
    ...vms.map((vm) => ({ name: vm.name, row: vmTableRow(vm) })),
    ...unreadable.map((record) => ({ name: record.name, row: unreadableRow(record) })),
  ].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  ctx.out.result({ vms: vms.map(vmSummary), unreadable: unreadable.map(unreadableJson) }, () =>
    ctx.out.table(
      vmTableHeaders,
      rows.map((r) => r.row),
    ),
  );
  for (const record of unreadable) ctx.out.note(`myhv: ${unreadableLine(record)}`);
  return ExitCode.OK;
};
