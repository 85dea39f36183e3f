import { readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { execa } from 'execa';
import { afterAll, describe, expect, it } from 'vitest';
import { formatGuestArgs, parseGuestArgs, parseReadyLine } from '../../src/guest-args.js';
import { cleanUpSandboxes, createGuestNetwork, runInit, sandboxSkipReason } from './guest-sandbox.js';

/** The generated /init under the real busybox, in throwaway namespaces with a veth as eth0. */
const reason = await sandboxSkipReason();
if (reason) console.warn(`skipped: guest init tests because ${reason}`);

afterAll(cleanUpSandboxes);

const guestLines = (stdout: string) => stdout.split('\n').filter((l) => l.startsWith('myhv-guest:'));

async function eth0(netns: string) {
  const [link] = JSON.parse(
    (await execa('ip', ['-n', netns, '-json', 'addr', 'show', 'dev', 'eth0'])).stdout,
  ) as {
    mtu: number;
    flags: string[];
    addr_info: { local: string; prefixlen: number; scope: string }[];
  }[];
  return {
    mtu: link?.mtu,
    up: link?.flags.includes('UP'),
    addresses: link?.addr_info.filter((a) => a.scope === 'global').map((a) => `${a.local}/${a.prefixlen}`),
  };
}

async function defaultRoutes(netns: string, family: '-4' | '-6') {
  const routes = JSON.parse(
    (await execa('ip', ['-n', netns, family, '-json', 'route', 'show', 'default'])).stdout,
  ) as { gateway: string; dev: string }[];
  return routes.map((r) => `${r.gateway} ${r.dev}`);
}

describe.skipIf(reason !== undefined)('the guest init under busybox sh', () => {
  it('configures eth0, DNS, hostname and shares, prints the ready line, runs the command, then powers off', async () => {
    const { guest } = await createGuestNetwork();
    const command = [
      'cd "$MYHV_ROOT" && echo command-ran >>calls.log',
      'hostname >hostname.out',
      'ping -c 1 -W 5 10.62.0.1 >ping.out 2>&1; echo "ping=$?" >>calls.log',
      `printf '%s\\n' "héllo 'q' \\"dq\\" \\$HOME" >echo.out`,
    ].join('\n');
    const cmdline = `console=ttyS0 quiet ${formatGuestArgs({
      ip: { address: '10.62.0.5', prefixLength: 24 },
      gateway: '10.62.0.1',
      dns: ['10.62.0.1', '1.1.1.1'],
      mtu: 1400,
      hostname: 'vm1',
      ip6: { address: 'fd00:62::5', prefixLength: 64 },
      gateway6: 'fd00:62::1',
      shares: [
        { tag: 'data', path: '/mnt/data' },
        { tag: 'logs', path: '/var/log/app' },
      ],
      command,
    })} myhv.future=1 panic=1`;
    const modules = '/lib/modules/6.1/virtio_ring.ko\n# comment\n\n/lib/modules/6.1/virtio_net.ko';
    const run = await runInit(guest, cmdline, { modules });
    const { root, calls } = run;
    const file = (path: string) => readFile(join(root, path), 'utf8');

    expect(run.exitCode).toBe(0);
    expect(guestLines(run.stdout)).toEqual(['myhv-guest: ready ip=10.62.0.5 shares=data,logs']);
    expect(parseReadyLine(guestLines(run.stdout)[0] ?? '')).toEqual({
      ip: '10.62.0.5',
      shares: ['data', 'logs'],
    });

    expect(await eth0(guest)).toEqual({ mtu: 1400, up: true, addresses: ['10.62.0.5/24', 'fd00:62::5/64'] });
    expect(await defaultRoutes(guest, '-4')).toEqual(['10.62.0.1 eth0']);
    expect(await defaultRoutes(guest, '-6')).toEqual(['fd00:62::1 eth0']);
    expect(await file('etc/resolv.conf')).toBe('nameserver 10.62.0.1\nnameserver 1.1.1.1\n');
    expect(await file('etc/hostname')).toBe('vm1\n');
    expect(await file('etc/hosts')).toContain('127.0.1.1\tvm1\n');
    expect(await file('hostname.out')).toBe('vm1\n');
    expect(await file('ping.out')).toContain('1 packets received');
    expect(await file('echo.out')).toBe(`héllo 'q' "dq" $HOME\n`);

    expect(calls.filter((c) => c.startsWith('insmod'))).toEqual([
      `insmod ${root}/lib/modules/6.1/virtio_ring.ko`,
      `insmod ${root}/lib/modules/6.1/virtio_net.ko`,
    ]);
    expect(calls.filter((c) => c.includes('virtiofs'))).toEqual([
      `mount -t virtiofs data ${root}/mnt/data`,
      `mount -t virtiofs logs ${root}/var/log/app`,
    ]);
    expect((await stat(join(root, 'var/log/app'))).isDirectory()).toBe(true);
    expect(calls).toContain(`acpid -c ${root}/etc/acpi -l /dev/null`);
    expect((await stat(join(root, 'etc/acpi/PWRF/00000080'))).mode & 0o777).toBe(0o700);
    // The command ran to its end, and only then did the init sync and power off.
    expect(calls.slice(-4)).toEqual(['command-ran', 'ping=0', 'sync', 'poweroff -f']);
  });

  it('refuses bad values with an error line and still does the rest; without a command it runs a shell', async () => {
    const { guest } = await createGuestNetwork();
    const cmdline = [
      'console=ttyS0',
      'myhv.mtu=9x',
      'myhv.ip=10.62.0.5/24',
      'myhv.ip=10.62.0.9/24',
      'myhv.hostname=bad_host',
      'myhv.share=x:relative',
      'myhv.share=ok:/mnt/ok',
      'myhv.share=ok:/mnt/other',
      'myhv.gw=10.62.0.1',
      'myhv.cmd=not*base64',
    ].join(' ');
    const run = await runInit(guest, cmdline, { stdin: 'echo shell-ran >>"$MYHV_ROOT/calls.log"\nexit 0\n' });

    expect(run.exitCode).toBe(0);
    expect(guestLines(run.stdout)).toEqual([
      'myhv-guest: error invalid myhv.mtu, ignored',
      'myhv-guest: error myhv.ip given twice, the first one counts',
      'myhv-guest: error invalid myhv.hostname, ignored',
      'myhv-guest: error invalid myhv.share, ignored',
      'myhv-guest: error invalid myhv.share, ignored',
      'myhv-guest: error invalid myhv.cmd, ignored',
      'myhv-guest: ready ip=10.62.0.5 shares=ok',
    ]);
    expect(await eth0(guest)).toEqual({ mtu: 1500, up: true, addresses: ['10.62.0.5/24'] });
    expect(await defaultRoutes(guest, '-4')).toEqual(['10.62.0.1 eth0']);
    await expect(stat(join(run.root, 'etc/hostname'))).rejects.toMatchObject({ code: 'ENOENT' });
    expect(run.calls.filter((c) => c.includes('virtiofs'))).toEqual([
      `mount -t virtiofs ok ${run.root}/mnt/ok`,
    ]);
    expect(run.calls.slice(-3)).toEqual(['shell-ran', 'sync', 'poweroff -f']);
  });

  it('the power-button handler ends the running command, and the init powers off', async () => {
    const command =
      '"$MYHV_ROOT/etc/acpi/PWRF/00000080" & sleep 20; echo not-stopped >>"$MYHV_ROOT/calls.log"';
    const started = Date.now();
    const run = await runInit(undefined, formatGuestArgs({ command }));

    expect(Date.now() - started).toBeLessThan(10_000);
    expect(run.calls).toContain(`sh ${run.root}/etc/acpi/PWRF/00000080`);
    expect(run.calls).not.toContain('not-stopped');
    // The handler's own sleep may interleave; the init's sync and poweroff follow the button either way.
    const pressed = run.calls.indexOf(`sh ${run.root}/etc/acpi/PWRF/00000080`);
    expect(run.calls.indexOf('sync', pressed)).toBeGreaterThan(pressed);
    expect(run.calls.at(-1)).toBe('poweroff -f');
  });

  // What the TypeScript parser refuses, the init refuses too (each in its own run: one key per line).
  it.each([
    ['myhv.mtu=9x', 'myhv.mtu'],
    ['myhv.mtu=67', 'myhv.mtu'],
    ['myhv.mtu=65536', 'myhv.mtu'],
    ['myhv.mtu=01500', 'myhv.mtu'],
    ['myhv.ip=10.0.0.5', 'myhv.ip'],
    ['myhv.ip=10.0.0.256/24', 'myhv.ip'],
    ['myhv.ip=10.0.0.05/24', 'myhv.ip'],
    ['myhv.ip=10.0.0.5/33', 'myhv.ip'],
    ['myhv.ip=10.0.0.5/24;reboot', 'myhv.ip'],
    ['myhv.ip6=fd00::5/129', 'myhv.ip6'],
    ['myhv.ip6=fd00:::5/64', 'myhv.ip6'],
    ['myhv.ip6=::ffff:1.2.3.4/64', 'myhv.ip6'],
    ['myhv.gw=10.0.0.1;reboot', 'myhv.gw'],
    ['myhv.gw6=fd00::1$x', 'myhv.gw6'],
    ['myhv.dns=1.1.1.1,', 'myhv.dns'],
    ['myhv.dns=1.1.1.1,1.0.0.1,8.8.8.8,8.8.4.4', 'myhv.dns'],
    ['myhv.dns=dns.google', 'myhv.dns'],
    ['myhv.hostname=my_vm', 'myhv.hostname'],
    ["myhv.hostname='vm1'", 'myhv.hostname'],
    ['myhv.hostname=-vm', 'myhv.hostname'],
    [`myhv.hostname=${'a'.repeat(32)}.${'b'.repeat(32)}`, 'myhv.hostname'],
    ['myhv.share=data', 'myhv.share'],
    ['myhv.share=data:mnt/a', 'myhv.share'],
    ['myhv.share=data:/mnt/../etc', 'myhv.share'],
    ['myhv.share=data:/mnt/a/', 'myhv.share'],
    ['myhv.share=data:/', 'myhv.share'],
    ['myhv.share=$(reboot):/mnt', 'myhv.share'],
    ['myhv.share=a:/mnt/`reboot`', 'myhv.share'],
    ['myhv.cmd=ZWNobw==', 'myhv.cmd'],
    ['myhv.cmd=ZWNob', 'myhv.cmd'],
    ['myhv.cmd=a$b', 'myhv.cmd'],
    ['myhv.cmd=', 'myhv.cmd'],
    ['myhv.ip', 'myhv.ip'],
  ])('refuses %s like parseGuestArgs', async (token, key) => {
    expect(() => parseGuestArgs(token)).toThrow();
    const run = await runInit(undefined, `console=ttyS0 ${token}`);
    const lines = guestLines(run.stdout);
    expect(lines.filter((l) => l.includes('error'))).toEqual([`myhv-guest: error invalid ${key}, ignored`]);
    expect(lines.at(-1)).toBe('myhv-guest: ready ip=none shares=none');
  });
});
