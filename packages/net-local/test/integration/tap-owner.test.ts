import { chmod, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { deriveTapName, TapNetwork } from '@my-hypervisor/net-ops';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LocalOps, NamespaceNetwork } from '../../src/index.js';
import { createNetns, deleteAllNetns, inNetns, kernelSkipReason } from './netns.js';

/*
 * TAPs for an unprivileged VMM: owned by its uid/gid, so a process with that uid and no capabilities can attach
 * (TUNSETIFF) to it. The "VMM" is perl under setpriv, with its own /dev/net/tun node in a private mount namespace
 * (the host's is root's, mode 0600); the host's node and interfaces are never touched.
 */

const reason = await kernelSkipReason(['nft', 'perl', 'setpriv', 'unshare']);
if (reason) console.warn(`skipped: TAP owner tests because ${reason}`);

const vmm = { uid: 64_201, gid: 64_202 };
const other = { uid: 64_203, gid: 64_204 };
const prefix = `myhv-to${process.pid}-`;
let scriptDir: string;

// IFF_TAP | IFF_NO_PI | IFF_VNET_HDR, as Cloud Hypervisor opens a TAP; IFF_MULTI_QUEUE for a multi-queue one.
const attachScript = `
my ($name, $flags) = @ARGV;
open(my $fh, "+<", "/dev/net/tun") or die "open: $!\\n";
my $ifr = pack("Z16 s", $name, $flags);
ioctl($fh, 0x400454ca, $ifr) or die "TUNSETIFF: $!\\n";
print "attached\\n";
`;

/** Runs TUNSETIFF on `tap` in `netns` as `who`, with no capabilities; what it printed. */
async function attachAs(
  netns: string,
  tap: string,
  who: { uid: number; gid: number },
  multiQueue = false,
): Promise<string> {
  const flags = 0x0002 | 0x1000 | 0x4000 | (multiQueue ? 0x0100 : 0);
  const shell = [
    'mount -t tmpfs -o mode=0755,size=16k myhv-dev /dev/net',
    'mknod -m 600 /dev/net/tun c 10 200',
    `chown ${who.uid}:${who.gid} /dev/net/tun`,
    `exec setpriv --reuid ${who.uid} --regid ${who.gid} --clear-groups --no-new-privs --bounding-set -all --inh-caps -all perl "$0" "$1" "$2"`,
  ].join(' && ');
  const result = await execa(
    'ip',
    [
      'netns',
      'exec',
      netns,
      'unshare',
      '--mount',
      '--propagation',
      'private',
      'sh',
      '-c',
      shell,
      join(scriptDir, 't.pl'),
      tap,
      String(flags),
    ],
    { reject: false },
  );
  return `${result.stdout}${result.stderr}`.trim();
}

/** The TAP's owner and group as the kernel has them (sysfs of `netns`). */
async function ownerOf(netns: string, tap: string): Promise<{ uid: number; gid: number }> {
  const { stdout } = await inNetns(netns, 'cat', [
    `/sys/class/net/${tap}/owner`,
    `/sys/class/net/${tap}/group`,
  ]);
  const [uid, gid] = stdout.split('\n').map(Number);
  return { uid: uid!, gid: gid! };
}

async function link(netns: string, name: string) {
  return JSON.parse(
    (await execa('ip', ['-n', netns, '-json', '-details', 'link', 'show', 'dev', name])).stdout,
  )[0];
}

beforeAll(async () => {
  scriptDir = await mkdtemp(join(tmpdir(), 'myhv-tap-owner-'));
  await chmod(scriptDir, 0o755);
  await writeFile(join(scriptDir, 't.pl'), attachScript, { mode: 0o644 });
});

afterAll(async () => {
  const { stdout } = await execa('ip', ['netns', 'list']);
  for (const name of stdout.split('\n').map((line) => line.split(' ')[0]!)) {
    if (name.startsWith(prefix)) await execa('ip', ['netns', 'del', name], { reject: false });
  }
  await deleteAllNetns();
  if (scriptDir) await rm(scriptDir, { recursive: true, force: true });
});

describe.skipIf(reason !== undefined)('TapNetwork over LocalOps with tapOwner', () => {
  let netns: string;
  let ops: LocalOps;
  let network: TapNetwork;

  beforeAll(async () => {
    netns = await createNetns();
    ops = new LocalOps({ netns });
    network = new TapNetwork({ bridge: ops, tap: ops, nat: ops, bridgeName: 'br0', subnet: '10.87.0.0/24' });
  });

  afterAll(() => ops?.close());

  it('makes the TAP owned by the VMM, which attaches without capabilities; another uid is refused', async () => {
    expect(network.setsTapOwner).toBe(true);
    const { tap, created } = await network.attach({ vmId: 'own-a', ipv4: '10.87.0.2', tapOwner: vmm });
    expect(created).toBe(true);
    expect(await ownerOf(netns, tap)).toEqual(vmm);
    expect(await attachAs(netns, tap, vmm)).toBe('attached');
    expect(await attachAs(netns, tap, other)).toMatch(/TUNSETIFF: Operation not permitted/);
  }, 30_000);

  it('gives a TAP of another owner to the requested one on a repeated attach, on the bridge and up', async () => {
    const vm = { vmId: 'own-b', ipv4: '10.87.0.3', multiQueue: true };
    const { tap } = await network.attach({ ...vm, tapOwner: other });
    expect(await attachAs(netns, tap, vmm, true)).toMatch(/Operation not permitted/);
    const again = await network.attach({ ...vm, tapOwner: vmm });
    expect(again.created).toBe(false);
    expect(await ownerOf(netns, tap)).toEqual(vmm);
    expect(await link(netns, tap)).toMatchObject({
      master: 'br0',
      flags: expect.arrayContaining(['UP']),
      linkinfo: { info_data: { multi_queue: true } },
    });
    expect(await attachAs(netns, tap, vmm, true)).toBe('attached');
    // The same owner again: kept as it is.
    const ifindex = (await link(netns, tap)).ifindex;
    await network.attach({ ...vm, tapOwner: vmm });
    expect((await link(netns, tap)).ifindex).toBe(ifindex);
  }, 30_000);

  it('without tapOwner, makes TAPs without an owner and keeps an owned one as it is', async () => {
    const { tap } = await network.attach({ vmId: 'own-c', ipv4: '10.87.0.4' });
    expect(await ownerOf(netns, tap)).toEqual({ uid: -1, gid: -1 });
    await execa('ip', ['-n', netns, 'link', 'del', 'dev', tap]);
    await network.attach({ vmId: 'own-c', ipv4: '10.87.0.4', tapOwner: other });
    expect(await ownerOf(netns, tap)).toEqual(other);
    expect((await network.attach({ vmId: 'own-c', ipv4: '10.87.0.4' })).created).toBe(false);
    expect(await ownerOf(netns, tap)).toEqual(other);
  }, 30_000);
});

describe.skipIf(reason !== undefined)('NamespaceNetwork with tapOwner', () => {
  let host: string;
  let ops: LocalOps;
  let network: NamespaceNetwork;

  beforeAll(async () => {
    host = await createNetns();
    ops = new LocalOps({ netns: host });
    network = new NamespaceNetwork({
      bridge: ops,
      nat: ops,
      bridgeName: 'br0',
      subnet: '10.86.0.0/24',
      netns: host,
      namespacePrefix: prefix,
      tableName: `myhv_to${process.pid}`,
    });
  });

  afterAll(() => ops?.close());

  it('makes the TAP in the VM namespace owned by the VMM, which attaches without capabilities', async () => {
    expect(network.setsTapOwner).toBe(true);
    const { tap, netns } = await network.attach({ vmId: 'a', ipv4: '10.86.0.2', tapOwner: vmm });
    expect(netns).toBe(`${prefix}a`);
    expect(await ownerOf(`${prefix}a`, tap)).toEqual(vmm);
    expect(await attachAs(`${prefix}a`, tap, vmm)).toBe('attached');
    expect(await attachAs(`${prefix}a`, tap, other)).toMatch(/TUNSETIFF: Operation not permitted/);
  }, 30_000);

  it('gives a TAP of another owner to the requested one on a repeated attach, on the namespace bridge', async () => {
    const vm = { vmId: 'b', ipv4: '10.86.0.3' };
    const tap = deriveTapName('b');
    await network.attach({ ...vm, tapOwner: other });
    expect(await attachAs(`${prefix}b`, tap, vmm)).toMatch(/Operation not permitted/);
    const again = await network.attach({ ...vm, tapOwner: vmm });
    expect(again).toMatchObject({ created: false, tap });
    expect(await ownerOf(`${prefix}b`, tap)).toEqual(vmm);
    expect(await link(`${prefix}b`, tap)).toMatchObject({
      master: 'br0',
      flags: expect.arrayContaining(['UP']),
    });
    expect(await attachAs(`${prefix}b`, tap, vmm)).toBe('attached');
    // Without tapOwner the TAP is left as it is.
    await network.attach(vm);
    expect(await ownerOf(`${prefix}b`, tap)).toEqual(vmm);
  }, 30_000);
});
