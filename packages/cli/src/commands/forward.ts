import { parseForwardSpec } from '@my-hypervisor/vm-manager';
import { CliError } from '../errors.js';
import { ExitCode } from '../exit-codes.js';
import { formatForward } from '../format.js';
import { parseForwardArg, parseHostPortArg } from '../forward-arg.js';
import { interruptible } from '../interruptible.js';
import type { CommandHandler } from '../run.js';
import { parseVmName } from '../vm-name.js';
import { forwardJson } from '../vm-view.js';

/** `myhv forward add VM [hostIp:]hostPort:guestPort[/proto]`. */
export const forwardAdd: CommandHandler = async (ctx, [rawVm, rawForward]) => {
  const name = parseVmName(rawVm, 'vm');
  const forward = parseForwardArg(String(rawForward), 'forward');
  try {
    parseForwardSpec(forward);
  } catch (error) {
    throw hinted(error);
  }
  const parts = await ctx.manager({ kind: 'full', vmm: await ctx.configuredVmm() });
  ctx.defer(parts.close);
  await parts.manager.get(name);
  const info = await interruptible(ctx, (signal) => parts.manager.addForward(name, forward, { signal }));
  const protocol = forward.protocol ?? 'tcp';
  const rule = info.forwards.find((f) => f.protocol === protocol && f.hostPort === forward.hostPort)!;
  ctx.out.result({ vm: name, forward: forwardJson(rule) }, () =>
    ctx.out.print(ctx.out.ok(`${name}: forwarding ${formatForward(rule)}`)),
  );
  return ExitCode.OK;
};

function hinted(error: unknown): unknown {
  const e = error as { code?: unknown; details?: { field?: unknown } };
  if (e?.code !== 'INVALID_ARGUMENT' || typeof e.details?.field !== 'string') return error;
  return new CliError('INVALID_ARGUMENT', `forward.${(error as Error).message}`, {
    cause: error,
    details: {
      field: `forward.${e.details.field}`,
      hint: 'write [hostIp:]hostPort:guestPort[/tcp|udp] with ports from 1 to 65535 and an IPv4 host address',
    },
  });
}

/** `myhv forward rm VM hostPort[/proto]`: idempotent; says when there was nothing to remove. */
export const forwardRm: CommandHandler = async (ctx, [rawVm, rawPort]) => {
  const name = parseVmName(rawVm, 'vm');
  const { protocol, hostPort } = parseHostPortArg(String(rawPort));
  const parts = await ctx.manager({ kind: 'full', vmm: await ctx.configuredVmm() });
  ctx.defer(parts.close);
  await parts.manager.get(name);
  const result = await interruptible(ctx, (signal) =>
    parts.manager.removeForward(name, { protocol, hostPort }, { signal }),
  );
  ctx.out.result({ vm: name, protocol, hostPort, removed: result.removed }, () =>
    ctx.out.print(
      result.removed
        ? ctx.out.ok(`${name}: removed the forward of ${protocol}/${hostPort}`)
        : `${name} has no forward on ${protocol}/${hostPort}: nothing to do`,
    ),
  );
  return ExitCode.OK;
};

/** `myhv forward ls [VM]`: the forwards the VM records hold (reads state only). */
export const forwardLs: CommandHandler = async (ctx, [rawVm]) => {
  const only = rawVm === undefined ? undefined : parseVmName(rawVm, 'vm');
  const { manager } = await ctx.manager({ kind: 'read' });
  const vms = only === undefined ? await manager.list() : [await manager.get(only)];
  const forwards = vms.flatMap((vm) => vm.forwards.map((f) => ({ vm: vm.name, ...forwardJson(f) })));
  ctx.out.result({ forwards }, () =>
    ctx.out.table(
      ['vm', 'proto', 'host', 'guest'],
      forwards.map((f) => [
        f.vm,
        f.protocol,
        f.hostIp ? `${f.hostIp}:${f.hostPort}` : `*:${f.hostPort}`,
        `${f.guestIp}:${f.guestPort}`,
      ]),
    ),
  );
  return ExitCode.OK;
};
