import { parseVmSpec } from '@my-hypervisor/vm-manager';
import { openManager } from '../backends.js';
import { ExitCode } from '../exit-codes.js';
import { interruptible } from '../interruptible.js';
import type { CommandHandler } from '../run.js';
import { withSpecHint } from '../spec-hints.js';
import { type CreateFlags, createSpecInput } from '../spec-input.js';
import { parseVmName } from '../vm-name.js';
import { recordSteps, totalMs } from '../vm-view.js';
import { describeVmm, vmmJson, withVmmHint } from '../vmm-choice.js';

/** `myhv vm create`: flags or a spec file → parseVmSpec → VmManager.create, with progress. */
export const vmCreate: CommandHandler = async (ctx, [rawName]) => {
  const name = rawName === undefined ? undefined : parseVmName(rawName);
  const { input, source } = await createSpecInput(name, ctx.options as CreateFlags, ctx.io.stdin);
  try {
    // Checked here for a hint that names the flag or file; the manager parses again and checks the host.
    parseVmSpec(input);
  } catch (error) {
    throw withSpecHint(error, source);
  }
  const config = await ctx.config();
  const vmm = await ctx.vmm();
  const { out } = ctx;
  out.print(describeVmm(vmm));
  // The first VM records the default network (bridge, subnet, backend) from the settings.
  const parts = await openManager(config, { kind: 'full', vmm, recordNetwork: true });
  ctx.defer(parts.close);
  const recorder = recordSteps(out.progress());
  const info = await interruptible(ctx, (signal) =>
    parts.manager.create(input, { signal, onProgress: recorder.onProgress }).catch(async (error: unknown) => {
      await parts.forgetUnusedNetwork?.().catch(() => undefined);
      throw withSpecHint(withVmmHint(error, vmm), source);
    }),
  );
  out.result({ vmm: vmmJson(vmm), vm: info, steps: recorder.steps }, () => {
    const where = info.ip ? ` at ${info.ip}` : '';
    out.print(out.ok(`created ${info.name}${where}, ${info.status} (${totalMs(recorder.steps)})`));
  });
  return ExitCode.OK;
};
