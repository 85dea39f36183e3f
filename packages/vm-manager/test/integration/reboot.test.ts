import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { rm } from 'node:fs/promises';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';
import { isRoot, makeHarness, tapsInNetns } from '../harness.js';

const exec = promisify(execFile);
const skip = isRoot ? undefined : 'needs root (network namespaces, bridges, TAPs, nftables)';
if (skip) console.warn(`reboot tests skipped: ${skip}`);

/*
 * A host reboot, simulated inside a throwaway namespace: the VMM dies and the TAPs, the bridge, the nft table and
 * the run dir vanish, while the state dir stays. A "guest" namespace stands in for the guest's network stack
 * (a TAP carries nothing without a guest that runs Linux): a veth with the VM's address on the bridge, serving
 * TCP; a client namespace reaches the host over another veth and has no route to the VM subnet, so only the
 * restored forward can answer it.
 */

const serverScript = `
const net = require('node:net');
net.createServer((c) => c.end('guest saw ' + c.remoteAddress + '\\n'))
  .listen(8080, '0.0.0.0', () => console.log('listening'));`;
const clientScript = `
const c = require('node:net').connect({ host: process.argv[1], port: Number(process.argv[2]), timeout: 1500 });
let data = '';
c.on('data', (d) => { data += d; });
c.on('end', () => { process.stdout.write(data); process.exit(0); });
c.on('timeout', () => { console.error('timeout'); process.exit(2); });
c.on('error', (e) => { console.error(e.code); process.exit(1); });`;

const namespaces: string[] = [];
const servers: ChildProcess[] = [];
let counter = 0;

async function netns(): Promise<string> {
  const name = `myhv-rb-${process.pid}-${counter++}`;
  await exec('ip', ['netns', 'add', name]);
  namespaces.push(name);
  await exec('ip', ['-n', name, 'link', 'set', 'lo', 'up']);
  return name;
}

afterAll(async () => {
  for (const server of servers) server.kill();
  for (const name of namespaces) await exec('ip', ['netns', 'del', name]).catch(() => undefined);
});

async function connect(from: string, host: string, port: number): Promise<string> {
  try {
    const { stdout } = await exec('ip', [
      'netns',
      'exec',
      from,
      process.execPath,
      '-e',
      clientScript,
      host,
      String(port),
    ]);
    return stdout.trim();
  } catch (error) {
    return `failed: ${String((error as { stderr?: string }).stderr ?? error).trim()}`;
  }
}

/** The stand-in guest (veth `gw0` on the bridge, the VM's address, a TCP server) and a client on `c0`. */
async function plugGuestAndClient(host: string, guestIp: string): Promise<{ client: string }> {
  const guest = await netns();
  const client = await netns();
  await exec('ip', [
    '-n',
    host,
    'link',
    'add',
    'gw0',
    'type',
    'veth',
    'peer',
    'name',
    'eth0',
    'netns',
    guest,
  ]);
  await exec('ip', ['-n', guest, 'addr', 'add', `${guestIp}/24`, 'dev', 'eth0']);
  await exec('ip', ['-n', guest, 'link', 'set', 'eth0', 'up']);
  await exec('ip', ['-n', guest, 'route', 'add', 'default', 'via', '10.62.0.1']);
  await exec('ip', [
    '-n',
    host,
    'link',
    'add',
    'c0',
    'type',
    'veth',
    'peer',
    'name',
    'eth0',
    'netns',
    client,
  ]);
  await exec('ip', ['-n', client, 'addr', 'add', '192.168.77.2/24', 'dev', 'eth0']);
  await exec('ip', ['-n', client, 'link', 'set', 'eth0', 'up']);
  await exec('ip', ['-n', host, 'addr', 'add', '192.168.77.1/24', 'dev', 'c0']);
  await exec('ip', ['-n', host, 'link', 'set', 'c0', 'up']);
  const server = spawn('ip', ['netns', 'exec', guest, process.execPath, '-e', serverScript]);
  servers.push(server);
  await new Promise<void>((resolve, reject) => {
    server.stdout.on('data', (chunk: Buffer) => chunk.toString().includes('listening') && resolve());
    server.once('exit', (code) => reject(new Error(`guest server exited ${code}`)));
  });
  return { client };
}

/** Puts the stand-in guest's veth on the bridge (what the guest's TAP is for a real VM). */
async function joinBridge(host: string): Promise<void> {
  await exec('ip', ['-n', host, 'link', 'set', 'gw0', 'master', 'myhvbr0']);
  await exec('ip', ['-n', host, 'link', 'set', 'gw0', 'up']);
}

/** What a reboot takes: every VMM, the TAPs and the bridge, the nft tables, the run dir. */
async function reboot(host: string, runDir: string, vmmPid: number | undefined): Promise<void> {
  if (vmmPid) process.kill(vmmPid, 'SIGKILL');
  for (const tap of await tapsInNetns(host)) await exec('ip', ['-n', host, 'link', 'del', tap]);
  await exec('ip', ['-n', host, 'link', 'del', 'myhvbr0']);
  const { stdout } = await exec('ip', ['netns', 'exec', host, 'nft', 'list', 'tables']);
  for (const line of stdout.split('\n').filter(Boolean)) {
    const [, family, name] = line.split(' ');
    await exec('ip', ['netns', 'exec', host, 'nft', 'delete', 'table', family!, name!]);
  }
  await rm(runDir, { recursive: true, force: true });
}

describe.skipIf(skip)('VmManager after a host reboot (simulated in a netns)', () => {
  it('start re-asserts the bridge, the TAP and the forwards; traffic flows through the restored forward', async () => {
    await using h = await makeHarness({ backend: 'local' });
    const vm = await h.manager.create({
      name: 'web',
      kernel: h.kernel,
      network: { forwards: [{ hostPort: 18080, guestPort: 8080 }] },
    });
    const { client } = await plugGuestAndClient(h.netns!, vm.ip!);
    await joinBridge(h.netns!);
    expect(await connect(client, '192.168.77.1', 18080)).toBe('guest saw 192.168.77.2');

    await reboot(h.netns!, h.runDir, vm.pid);
    expect(await connect(client, '192.168.77.1', 18080)).toMatch(/^failed/);
    const drift = await h.manager.drift();
    expect(drift.map((d) => `${d.kind} ${d.target}`).sort()).toEqual(
      ['bridge myhvbr0', `tap ${vm.tap}`, 'forward tcp/18080'].sort(),
    );

    const started = await h.manager.start('web');
    expect(started.status).toBe('running');
    expect(await tapsInNetns(h.netns!)).toEqual([vm.tap]);
    expect(await h.ops.listPortForwards()).toEqual([
      expect.objectContaining({ protocol: 'tcp', hostPort: 18080, guestIp: vm.ip, guestPort: 8080 }),
    ]);
    expect(await h.manager.drift()).toEqual([]);
    await joinBridge(h.netns!);
    expect(await connect(client, '192.168.77.1', 18080)).toBe('guest saw 192.168.77.2');
  });

  it('reconcile (gc) finds the lost network of running and stopped VMs and restores it', async () => {
    await using h = await makeHarness({ backend: 'local' });
    const up = await h.manager.create({
      name: 'up',
      kernel: h.kernel,
      network: { forwards: [{ hostPort: 18081, guestPort: 80 }] },
    });
    const down = await h.manager.create({
      name: 'down',
      kernel: h.kernel,
      network: { forwards: [{ protocol: 'udp', hostPort: 18082, guestPort: 53 }] },
    });
    await h.manager.stop('down');
    await reboot(h.netns!, h.runDir, up.pid);

    const report = await h.manager.reconcile();
    expect(report.errors).toEqual([]);
    const restored = report.changes
      .filter((c) => c.action.startsWith('restored'))
      .map((c) => `${c.vm} ${c.kind} ${c.target}`)
      .sort();
    expect(restored).toEqual(
      [
        'undefined bridge myhvbr0',
        `down tap ${down.tap}`,
        'down forward udp/18082',
        `up tap ${up.tap}`,
        'up forward tcp/18081',
      ].sort(),
    );
    expect((await h.manager.get('up')).status).toBe('stopped'); // its VMM died with the "reboot"
    expect((await tapsInNetns(h.netns!)).sort()).toEqual([up.tap, down.tap].sort());
    expect((await h.ops.listPortForwards()).map((f) => f.hostPort).sort()).toEqual([18081, 18082]);
    expect(await h.manager.drift()).toEqual([]);
    // A second pass has nothing left to do.
    expect((await h.manager.reconcile()).changes).toEqual([]);
  });
});
