import type { CommandContext } from '../context.js';
import { invalidValue } from '../errors.js';
import { ExitCode } from '../exit-codes.js';
import { interruptible } from '../interruptible.js';
import type { CommandHandler } from '../run.js';
import { parseVmName } from '../vm-name.js';
import { recordSteps, statusText, totalMs } from '../vm-view.js';
import { describeVmm, type VmmChoice, vmmJson, withVmmHint } from '../vmm-choice.js';
import { readyWait, waitForReadyResult } from '../wait-ready.js';

type Operation = 'start' | 'stop' | 'restart' | 'pause' | 'resume';

const pastTense: Record<Operation, string> = {
  start: 'started',
  stop: 'stopped',
  restart: 'restarted',
  pause: 'paused',
  resume: 'resumed',
};

/** `-t, --timeout <seconds>` → milliseconds. */
function gracefulMs(value: unknown): number {
  const text = String(value);
  if (!/^\d{1,4}(\.\d{1,3})?$/.test(text) || Number(text) > 3600) {
    throw invalidValue(
      '--timeout',
      `${JSON.stringify(text)} is not a number of seconds from 0 to 3600`,
      'e.g. --timeout 10',
    );
  }
  return Math.round(Number(text) * 1000);
}

async function lifecycle(ctx: CommandContext, operation: Operation, rawName: unknown): Promise<number> {
  const name = parseVmName(rawName);
  const graceful =
    operation === 'stop' || operation === 'restart' ? gracefulMs(ctx.options.timeout ?? '5') : undefined;
  // Only `vm start` has --wait-ready.
  const wait = operation === 'start' ? readyWait(ctx.options) : undefined;
  // Only booting spawns a VMM, so only it needs one chosen; the others talk to the one the record names.
  let vmm: VmmChoice | undefined;
  if (operation === 'start' || operation === 'restart') {
    vmm = await ctx.vmm();
    ctx.out.print(describeVmm(vmm));
  }
  const parts = await ctx.manager({ kind: 'full', vmm: vmm ?? (await ctx.configuredVmm()) });
  ctx.defer(parts.close);
  // NOT_FOUND before any lock file is made: a typo changes nothing on disk.
  await parts.manager.get(name);
  const recorder = recordSteps(ctx.out.progress());
  const info = await interruptible(ctx, (signal) => {
    const options = { signal, onProgress: recorder.onProgress };
    switch (operation) {
      case 'start':
        return parts.manager.start(name, options).catch((error: unknown) => {
          throw withVmmHint(error, vmm!);
        });
      case 'stop':
        return parts.manager.stop(name, { ...options, gracefulMs: graceful! });
      case 'restart':
        return parts.manager.restart(name, { ...options, gracefulMs: graceful! }).catch((error: unknown) => {
          throw withVmmHint(error, vmm!);
        });
      case 'pause':
        return parts.manager.pause(name, options);
      case 'resume':
        return parts.manager.resume(name, options);
    }
  });
  const json = vmm
    ? { vmm: vmmJson(vmm), vm: info, steps: recorder.steps }
    : { vm: info, steps: recorder.steps };
  const time = recorder.steps.length > 0 ? ` (${totalMs(recorder.steps)})` : '';
  const done = () =>
    ctx.out.print(ctx.out.ok(`${pastTense[operation]} ${info.name}: ${statusText(info)}${time}`));
  if (!wait) {
    ctx.out.result(json, done);
    return ExitCode.OK;
  }
  done();
  const ready = await waitForReadyResult(ctx, info, wait);
  ctx.out.emitJson({ ...json, ready });
  return ExitCode.OK;
}

export const vmStart: CommandHandler = (ctx, [name]) => lifecycle(ctx, 'start', name);
export const vmStop: CommandHandler = (ctx, [name]) => lifecycle(ctx, 'stop', name);
export const vmRestart: CommandHandler = (ctx, [name]) => lifecycle(ctx, 'restart', name);
export const vmPause: CommandHandler = (ctx, [name]) => lifecycle(ctx, 'pause', name);
export const vmResume: CommandHandler = (ctx, [name]) => lifecycle(ctx, 'resume', name);
