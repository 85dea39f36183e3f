import { ExitCode } from '../exit-codes.js';
import { interruptible } from '../interruptible.js';
import type { CommandHandler } from '../run.js';
import { parseVmName } from '../vm-name.js';
import { recordSteps } from '../vm-view.js';

/** `myhv vm rm NAME…`: every name is checked first; then the VMs are deleted in order, stopping at the first failure. */
export const vmRm: CommandHandler = async (ctx, [rawNames]) => {
  const names = (rawNames as string[]).map((n) => parseVmName(n));
  const parts = await ctx.manager({ kind: 'full', vmm: await ctx.configuredVmm() });
  ctx.defer(parts.close);
  for (const name of names) await parts.manager.get(name);
  const recorder = recordSteps(ctx.out.progress());
  const removed: { name: string; id: string }[] = [];
  for (const name of names) {
    const result = await interruptible(ctx, (signal) =>
      parts.manager.delete(name, {
        signal,
        force: ctx.options.force === true,
        onProgress: recorder.onProgress,
      }),
    );
    removed.push(result);
    ctx.out.print(ctx.out.ok(`removed ${name}`));
  }
  ctx.out.emitJson({ removed, steps: recorder.steps });
  return ExitCode.OK;
};
