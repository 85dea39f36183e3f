import { parseVmSpec } from '@my-hypervisor/vm-manager';
import { usageError } from '../errors.js';
import { ExitCode } from '../exit-codes.js';
import { applyImage, DEFAULT_IMAGE, findImage, imageStore } from '../images.js';
import { interruptible } from '../interruptible.js';
import type { CommandHandler } from '../run.js';
import { withSpecHint } from '../spec-hints.js';
import { type CreateFlags, createSpecInput } from '../spec-input.js';
import { parseVmName } from '../vm-name.js';
import { recordSteps, totalMs } from '../vm-view.js';
import { describeVmm, vmmJson, withVmmHint } from '../vmm-choice.js';
import { readyWait, waitForReadyResult } from '../wait-ready.js';

/** `myhv vm create`: flags or a spec file → parseVmSpec → VmManager.create, with progress. */
export const vmCreate: CommandHandler = async (ctx, [rawName]) => {
  const name = rawName === undefined ? undefined : parseVmName(rawName);
  for (const [key, flag] of [
    ['placement', '--placement'],
    ['onHost', '--on-host'],
    ['stopped', '--stopped'],
  ] as const) {
    if (ctx.options[key] !== undefined) {
      throw usageError(
        `${flag} places a VM in a cluster: it needs --cluster`,
        'add --cluster etcd=URL, or drop it',
      );
    }
  }
  const wait = readyWait(ctx.options);
  let flags = ctx.options as CreateFlags;
  const config = await ctx.config();
  const store = imageStore(config);
  // Neither --kernel nor --image: the default image, once built, is what a VM boots.
  let usingDefault = false;
  if (
    flags.file === undefined &&
    name !== undefined &&
    flags.kernel === undefined &&
    flags.image === undefined &&
    (await findImage(store, DEFAULT_IMAGE)) !== undefined
  ) {
    flags = { ...flags, image: DEFAULT_IMAGE };
    usingDefault = true;
  }
  const { input, source } = await createSpecInput(name, flags, ctx.io.stdin);
  const image = await applyImage(input, store, source.kind === 'file' ? 'image' : '--image');
  try {
    // Checked here for a hint that names the flag or file; the manager parses again and checks the host.
    parseVmSpec(input);
  } catch (error) {
    throw withSpecHint(error, source);
  }
  const vmm = await ctx.vmm();
  const { out } = ctx;
  out.print(describeVmm(vmm));
  if (usingDefault && image)
    out.print(`using image ${image.name} (${image.dir}): no --kernel or --image given`);
  // The first VM records the default network (bridge, subnet, backend) from the settings.
  const parts = await ctx.manager({ kind: 'full', vmm, recordNetwork: true });
  ctx.defer(parts.close);
  const recorder = recordSteps(out.progress());
  const info = await interruptible(ctx, (signal) =>
    parts.manager.create(input, { signal, onProgress: recorder.onProgress }).catch(async (error: unknown) => {
      await parts.forgetUnusedNetwork?.().catch(() => undefined);
      throw withSpecHint(withVmmHint(error, vmm), source);
    }),
  );
  const json = { vmm: vmmJson(vmm), vm: info, steps: recorder.steps };
  if (!wait) {
    out.result(json, () => {
      const where = info.ip ? ` at ${info.ip}` : '';
      out.print(out.ok(`created ${info.name}${where}, ${info.status} (${totalMs(recorder.steps)})`));
    });
    return ExitCode.OK;
  }
  const where = info.ip ? ` at ${info.ip}` : '';
  out.print(out.ok(`created ${info.name}${where}, ${info.status} (${totalMs(recorder.steps)})`));
  const ready = await waitForReadyResult(ctx, info, wait);
  out.emitJson({ ...json, ready });
  return ExitCode.OK;
};
