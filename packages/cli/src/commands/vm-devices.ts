import type { VmDevices } from '@my-hypervisor/vm-manager';
import type { CommandContext } from '../context.js';
import { invalidValue } from '../errors.js';
import { ExitCode } from '../exit-codes.js';
import { interruptible } from '../interruptible.js';
import type { CommandHandler } from '../run.js';
import { shareArg } from '../spec-input.js';
import { parseVmName } from '../vm-name.js';

/** `PATH[:ro]` (`:rw` too): the suffix is split off the end, so a path may hold other colons. */
export function parseDiskArg(text: string): { path: string; readOnly: boolean } {
  const match = /^(.*?)(?::(ro|rw))?$/s.exec(text)!;
  const path = match[1]!;
  if (path === '') throw invalidValue('disk', 'give a path', 'e.g. /var/lib/images/data.img:ro');
  return { path, readOnly: match[2] === 'ro' };
}

/** `DIR:TAG[:ro]`: the tag is what the guest mounts (`mount -t virtiofs TAG /mnt`). */
export function parseShareArg(text: string): ReturnType<typeof shareArg> {
  // The syntax of `vm create --share`: DIR:TAG[:ro|rw][:/guest/path] (the guest path: where our init mounts it).
  return shareArg(text, 'share');
}

async function manager(ctx: CommandContext) {
  const parts = await ctx.manager({ kind: 'full', vmm: await ctx.configuredVmm() });
  ctx.defer(parts.close);
  return parts.manager;
}

function live(status: string): string {
  return status === 'stopped' ? ' (at its next start)' : '';
}

/** `myhv vm disk add NAME PATH[:ro]`: hot-plugs into a running VM; kept in the spec, so every boot has it. */
export const vmDiskAdd: CommandHandler = async (ctx, [rawName, rawDisk]) => {
  const name = parseVmName(rawName);
  const request = parseDiskArg(String(rawDisk));
  const m = await manager(ctx);
  const { status } = await m.get(name);
  const devices = await interruptible(ctx, (signal) => m.addDisk(name, request, { signal }));
  const disk = devices.disks.at(-1)!;
  ctx.out.result({ vm: name, disk, devices }, () =>
    ctx.out.print(ctx.out.ok(`${name}: added disk ${disk.id} (${disk.path})${live(status)}`)),
  );
  return ExitCode.OK;
};

/** `myhv vm disk rm NAME ID`: ID is the disk's id (`vm disk ls`) or its path. */
export const vmDiskRm: CommandHandler = async (ctx, [rawName, rawId]) => {
  const name = parseVmName(rawName);
  const m = await manager(ctx);
  const before = await m.get(name);
  const devices = await interruptible(ctx, (signal) => m.removeDisk(name, String(rawId), { signal }));
  const gone = before.spec.disks.find((d) => !devices.disks.some((k) => k.path === d.path));
  ctx.out.result({ vm: name, removed: String(rawId), devices }, () =>
    ctx.out.print(ctx.out.ok(`${name}: removed disk ${rawId}${gone ? ` (${gone.path})` : ''}`)),
  );
  return ExitCode.OK;
};

/** `myhv vm share add NAME DIR:TAG[:ro]`: starts a virtiofsd and hot-plugs it; kept in the spec. */
export const vmShareAdd: CommandHandler = async (ctx, [rawName, rawShare]) => {
  const name = parseVmName(rawName);
  const request = parseShareArg(String(rawShare));
  const m = await manager(ctx);
  const { status } = await m.get(name);
  const devices = await interruptible(ctx, (signal) => m.addShare(name, request, { signal }));
  const share = devices.shares.find((s) => s.tag === request.tag)!;
  ctx.out.result({ vm: name, share, devices }, () =>
    ctx.out.print(ctx.out.ok(`${name}: sharing ${share.hostPath} as ${share.tag}${live(status)}`)),
  );
  return ExitCode.OK;
};

/** `myhv vm share rm NAME TAG`: detaches the share and stops its virtiofsd. */
export const vmShareRm: CommandHandler = async (ctx, [rawName, rawTag]) => {
  const name = parseVmName(rawName);
  const m = await manager(ctx);
  await m.get(name);
  const devices = await interruptible(ctx, (signal) => m.removeShare(name, String(rawTag), { signal }));
  ctx.out.result({ vm: name, removed: String(rawTag), devices }, () =>
    ctx.out.print(ctx.out.ok(`${name}: removed share ${rawTag}`)),
  );
  return ExitCode.OK;
};

async function devicesOf(ctx: CommandContext, rawName: unknown): Promise<[string, VmDevices]> {
  const name = parseVmName(rawName);
  const { manager: m } = await ctx.manager({ kind: 'read' });
  return [name, await m.devices(name)];
}

/** `myhv vm disk ls NAME` (reads state only). */
export const vmDiskLs: CommandHandler = async (ctx, [rawName]) => {
  const [name, { disks }] = await devicesOf(ctx, rawName);
  ctx.out.result({ vm: name, disks }, () =>
    ctx.out.table(
      ['id', 'path', 'mode'],
      disks.map((d) => [d.id, d.path, d.readOnly ? 'ro' : 'rw']),
    ),
  );
  return ExitCode.OK;
};

/** `myhv vm share ls NAME` (reads state only). */
export const vmShareLs: CommandHandler = async (ctx, [rawName]) => {
  const [name, { shares }] = await devicesOf(ctx, rawName);
  ctx.out.result({ vm: name, shares }, () =>
    ctx.out.table(
      ['tag', 'id', 'path', 'mode'],
      shares.map((s) => [s.tag, s.id, s.hostPath, s.readOnly ? 'ro' : 'rw']),
    ),
  );
  return ExitCode.OK;
};

/** `myhv vm nic add NAME [--mac MAC]`: a NIC on the VM's network, hot-plugged when it runs; kept in the spec. */
export const vmNicAdd: CommandHandler = async (ctx, [rawName]) => {
  const name = parseVmName(rawName);
  const mac = ctx.options.mac === undefined ? undefined : String(ctx.options.mac);
  const m = await manager(ctx);
  const { status } = await m.get(name);
  const devices = await interruptible(ctx, (signal) =>
    m.addNic(name, mac === undefined ? {} : { mac }, { signal }),
  );
  const nic = devices.nics.at(-1)!;
  ctx.out.result({ vm: name, nic, devices }, () =>
    ctx.out.print(
      ctx.out.ok(
        `${name}: added ${nic.id} (TAP ${nic.tap}, ${nic.mac ?? 'MAC at boot'}, ${nic.ip ?? 'no address'})${live(status)}`,
      ),
    ),
  );
  return ExitCode.OK;
};

/** `myhv vm nic rm NAME ID`: detaches the NIC, then removes its TAP and frees its address. */
export const vmNicRm: CommandHandler = async (ctx, [rawName, rawId]) => {
  const name = parseVmName(rawName);
  const m = await manager(ctx);
  await m.get(name);
  const devices = await interruptible(ctx, (signal) => m.removeNic(name, String(rawId), { signal }));
  ctx.out.result({ vm: name, removed: String(rawId), devices }, () =>
    ctx.out.print(ctx.out.ok(`${name}: removed ${rawId}`)),
  );
  return ExitCode.OK;
};

/** `myhv vm nic ls NAME` (reads state only). */
export const vmNicLs: CommandHandler = async (ctx, [rawName]) => {
  const [name, { nics }] = await devicesOf(ctx, rawName);
  ctx.out.result({ vm: name, nics }, () =>
    ctx.out.table(
      ['id', 'tap', 'mac', 'ip'],
      nics.map((n) => [n.id, n.tap, n.mac ?? '-', n.ip ?? '-']),
    ),
  );
  return ExitCode.OK;
};
