import { ExitCode } from '../exit-codes.js';
import type { CommandHandler } from '../run.js';
import { VERSION } from '../version.js';

/** `myhv version`: `{ name, version, node }`. Loads nothing else. */
export const version: CommandHandler = async (ctx) => {
  ctx.out.result({ name: 'myhv', version: VERSION, node: process.versions.node }, () =>
    ctx.out.print(`myhv ${VERSION}`),
  );
  return ExitCode.OK;
};
