import { ExitCode } from '../exit-codes.js';
import type { CommandHandler } from '../run.js';
import { parseVmName } from '../vm-name.js';
import { inspectFields } from '../vm-view.js';

/** `myhv vm inspect NAME`: the whole VmInfo (JSON), or its fields for people. Reads state only. */
export const vmInspect: CommandHandler = async (ctx, [rawName]) => {
  const name = parseVmName(rawName);
  const { manager } = await ctx.manager({ kind: 'read' });
  const info = await manager.get(name);
  ctx.out.result({ vm: info }, () => ctx.out.fields(inspectFields(info)));
  return ExitCode.OK;
};
