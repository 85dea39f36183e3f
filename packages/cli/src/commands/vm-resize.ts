import type { VmInfo } from '@my-hypervisor/vm-manager';
import { CliError, invalidValue, usageError } from '../errors.js';
import { ExitCode } from '../exit-codes.js';
import { formatMemory } from '../format.js';
import { interruptible } from '../interruptible.js';
import type { CommandHandler } from '../run.js';
import { parseVmName } from '../vm-name.js';

function parseCpus(value: unknown): number {
  const text = String(value);
  if (!/^\d{1,3}$/.test(text) || Number(text) < 1) {
    throw invalidValue('--cpus', `${JSON.stringify(text)} is not a number of vCPUs`, 'e.g. --cpus 2');
  }
  return Number(text);
}

/** The manager names the spec field (`cpus`, `memory`); people typed the flag. */
function asFlagError(error: unknown): unknown {
  const e = error as { code?: unknown; details?: { field?: unknown }; message?: unknown };
  const field = e?.details?.field;
  if (e?.code !== 'INVALID_ARGUMENT' || (field !== 'cpus' && field !== 'memory')) return error;
  const message = String(e.message).replace(/^(cpus|memory): /, '');
  return new CliError('INVALID_ARGUMENT', `--${field}: ${message}`, {
    cause: error,
    details: {
      field: `--${field}`,
      hint: 'the spec fields cpusMax and memoryHotplug set the limits; `myhv vm inspect NAME` shows them',
    },
  });
}

function sizeText(info: VmInfo): string {
  const { cpus, cpusMax, memory, memoryHotplug } = info.spec;
  const cpuText = `${cpus} vCPU${cpus === 1 ? '' : 's'} (max ${cpusMax ?? cpus})`;
  const memoryText = memoryHotplug
    ? `${formatMemory(memory)} memory (up to ${formatMemory(memory + memoryHotplug)})`
    : `${formatMemory(memory)} memory`;
  return `${cpuText}, ${memoryText}`;
}

/**
 * `myhv vm resize NAME [--cpus N] [--memory SIZE]`: hot-plugs vCPUs and memory into a running or paused VM, up to
 * the spec's cpusMax and memory + memoryHotplug. The new sizes are kept: the VM boots with them after a stop.
 */
export const vmResize: CommandHandler = async (ctx, [rawName]) => {
  const name = parseVmName(rawName);
  const { options } = ctx;
  if (options.cpus === undefined && options.memory === undefined) {
    throw usageError('give --cpus, --memory or both', 'e.g. myhv vm resize web --cpus 2 --memory 1G');
  }
  const request = {
    ...(options.cpus !== undefined ? { cpus: parseCpus(options.cpus) } : {}),
    ...(options.memory !== undefined ? { memory: String(options.memory) } : {}),
  };
  // Resizing talks to the VM's own VMM socket: no network or storage backend is needed.
  const { manager } = await ctx.manager({ kind: 'read' });
  const before = await manager.get(name);
  const info = await interruptible(ctx, (signal) =>
    manager.resize(name, request, { signal }).catch((error: unknown) => {
      throw asFlagError(error);
    }),
  );
  ctx.out.result({ vm: info }, () => {
    ctx.out.print(ctx.out.ok(`resized ${name}: ${sizeText(info)}`));
    if (info.spec.cpus < before.spec.cpus) {
      ctx.out.note('fewer vCPUs take effect once the guest ejects them (ACPI); guests without it keep them');
    }
  });
  return ExitCode.OK;
};
