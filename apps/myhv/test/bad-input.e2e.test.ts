import { chmodSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { probeGuestImage } from '@my-hypervisor/chv-client/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { e2eSkipReason, myhv, Sandbox, virtiofsdMissing } from './myhv.js';

const skip =
  e2eSkipReason() ??
  (virtiofsdMissing() ? 'virtiofsd is missing (apt-get install qemu-system-common)' : undefined);
if (skip) console.warn(`skipped: the bad-input table, because ${skip}`);

const box = new Sandbox('bad');
const K = box.kernel;
const spec = (name: string) => join(box.dir, 'specs', name);

/** Spec files for the table, written before it runs. */
const specFiles: Record<string, string> = {
  'unknown-field.yaml': `name: s1\nkernel: ${K}\ncolour: blue\n`,
  'wrong-type.yaml': `name: s2\nkernel: ${K}\ncpus: two\n`,
  'memory-lots.json': `{"name": "s3", "kernel": "${K}", "memory": "lots"}`,
  'not-yaml.yaml': 'name: [unclosed\n',
  'a-list.yaml': `- name: s4\n  kernel: ${K}\n`,
  'port-zero.yaml': `name: s5\nkernel: ${K}\nnetwork:\n  forwards:\n    - { hostPort: 0, guestPort: 80 }\n`,
  'unknown-nested.yaml': `name: s6\nkernel: ${K}\nnetwork:\n  speed: 10G\n`,
  'duplicate-key.yaml': `name: s7\nname: s8\nkernel: ${K}\n`,
  'no-kernel.yaml': 'name: s9\n',
  'good.yaml': `name: s10\nkernel: ${K}\n`,
  'bad-config.yaml': 'stateDirectory: /tmp\n',
  'text-kernel': 'not a kernel\n',
  'empty-kernel': '',
  'queues-over-cpus.yaml': `name: s11\nkernel: ${K}\ncpus: 2\nnetwork:\n  queues: 4\n`,
  'other-vmm': '#!/bin/sh\necho "firecracker v1.9.0"\n',
};

/** The probe guest with its PVH note's type changed: an ELF kernel Cloud Hypervisor would refuse at boot. */
function kernelWithoutPvhNote(): Uint8Array {
  const image = probeGuestImage();
  image[176 + 8] = 17;
  return image;
}

/** [argv, what stderr must name]. Every row must exit 2 and change nothing. */
const table: [string[], RegExp][] = [
  // hostile and malformed names
  [['vm', 'create', '../etc', '--kernel', K], /name: "\.\.\/etc" must start with/],
  [['vm', 'create', 'a;rm -rf /', '--kernel', K], /name: .*contain only letters/],
  [['vm', 'create', '$(reboot)', '--kernel', K], /name: "\$\(reboot\)"/],
  [['vm', 'create', 'x'.repeat(64), '--kernel', K], /name: .*at most 63/],
  [['vm', 'create', '', '--kernel', K], /name: "" must not be empty/],
  [['vm', 'create', 'nämé', '--kernel', K], /name: "nämé"/],
  [['vm', 'start', '../../etc/passwd'], /name: "\.\.\/\.\.\/etc\/passwd"/],
  [['vm', 'rm', 'keep', 'keep/../x'], /name: "keep\/\.\.\/x"/],
  [['vm', 'inspect', '.hidden'], /name: "\.hidden" must start with a letter or digit/],
  [['forward', 'add', '../keep', '8080:80'], /vm: "\.\.\/keep"/],
  // ports
  [
    ['vm', 'create', 'a', '--kernel', K, '-p', '70000:80'],
    /network\.forwards\[0\]\.hostPort: must be 1–65535/,
  ],
  [['vm', 'create', 'a', '--kernel', K, '-p', '80:0'], /network\.forwards\[0\]\.guestPort: must be 1–65535/],
  [
    ['vm', 'create', 'a', '--kernel', K, '-p', '8080'],
    /--forward: "8080" is not \[hostIp:\]hostPort:guestPort/,
  ],
  [['vm', 'create', 'a', '--kernel', K, '-p', 'http:80'], /--forward: .*"http" is not a port number/],
  [['vm', 'create', 'a', '--kernel', K, '-p', '8080:80/sctp'], /--forward: .*protocol must be tcp or udp/],
  [
    ['vm', 'create', 'a', '--kernel', K, '-p', '999.1.1.1:8080:80'],
    /network\.forwards\[0\]\.hostIp: must be an IPv4 address/,
  ],
  [['vm', 'create', 'a', '--kernel', K, '-p', '8080:80', '-p', '8080:81'], /tcp\/8080 is already forwarded/],
  [['forward', 'add', 'keep', '65536:80'], /forward\.hostPort: must be 1–65535/],
  [['forward', 'rm', 'keep', '0'], /hostPort: "0" is not hostPort/],
  // CIDRs and other settings
  [['--subnet', '10.0.0.0/33', 'vm', 'ls'], /--subnet: /],
  [['--subnet', '10.62.0.0/31', 'vm', 'ls'], /--subnet: /],
  [['--subnet', '300.1.2.0/24', 'vm', 'ls'], /--subnet: /],
  [['vm', 'ls'], /MYHV_SUBNET: /, { MYHV_SUBNET: 'banana' }] as unknown as [string[], RegExp],
  [['--bridge', 'bridge-name-too-long', 'vm', 'ls'], /--bridge: /],
  [['--netns', '../x', 'vm', 'ls'], /--netns: "\.\.\/x" is not a namespace name/],
  [
    ['--net-backend', 'carrier-pigeon', 'vm', 'ls'],
    /--net-backend: "carrier-pigeon" is not one of local, mosnet/,
  ],
  [['--nat', 'pf', 'vm', 'ls'], /--nat: "pf" is not one of nft, iptables/],
  [['--state-dir', 'relative/state', 'vm', 'ls'], /--state-dir: "relative\/state" is not an absolute path/],
  [['--run-dir', `/run/${'r'.repeat(60)}`, 'vm', 'ls'], /--run-dir: .* is longer than 40 bytes/],
  [
    ['--vmm-binary', '/nonexistent/cloud-hypervisor', 'vm', 'start', 'keep'],
    /--vmm-binary: \/nonexistent\/cloud-hypervisor is not an executable file/,
  ],
  [
    ['--vmm-binary', '/bin/echo', 'vm', 'create', 'a', '--kernel', K],
    /--vmm-binary: \/bin\/echo is not cloud-hypervisor: `--version` printed .*\n.*hint: point --vmm-binary at a cloud-hypervisor binary/s,
  ],
  [
    ['vm', 'create', 'a', '--kernel', K],
    /MYHV_CLOUD_HYPERVISOR: .*other-vmm is not cloud-hypervisor: `--version` printed "firecracker v1\.9\.0"/,
    { MYHV_CLOUD_HYPERVISOR: spec('other-vmm') },
  ] as unknown as [string[], RegExp],
  [['--config', spec('bad-config.yaml'), 'vm', 'ls'], /bad-config\.yaml: stateDirectory: unknown setting/],
  [['--config', '/nonexistent/config.yaml', 'vm', 'ls'], /--config: cannot read \/nonexistent\/config\.yaml/],
  // memory, cpus, queues
  [
    ['vm', 'create', 'a', '--kernel', K, '--memory', 'lots'],
    /memory: "lots" is not a size such as 512M or 2G/,
  ],
  [
    ['vm', 'create', 'a', '--kernel', K, '--memory', '63M'],
    /memory: must be a whole number of MiB, at least 64M/,
  ],
  [['vm', 'create', 'a', '--kernel', K, '--memory', '0'], /memory: /],
  [['vm', 'create', 'a', '--kernel', K, '--cpus', '0'], /cpus: must be at least 1/],
  [['vm', 'create', 'a', '--kernel', K, '--cpus', '300'], /cpus: must be at most 254/],
  [['vm', 'create', 'a', '--kernel', K, '--cpus', 'two'], /--cpus: "two" is not a whole number/],
  [['vm', 'create', 'a', '--kernel', K, '--queues', '17'], /network\.queues: /],
  [
    ['vm', 'create', 'a', '--kernel', K, '--queues', '2'],
    /network\.queues: 2 queue pairs need at least as many vCPUs, but cpus is 1\n.*hint: .*at most --cpus/s,
  ],
  [['vm', 'create', '-f', spec('queues-over-cpus.yaml')], /network\.queues: 4 queue pairs .* cpus is 2/],
  // kernel, files, shares
  [
    ['vm', 'create', 'a', '--kernel', '/nonexistent/vmlinux'],
    /kernel: \/nonexistent\/vmlinux does not exist/,
  ],
  [['vm', 'create', 'a'], /--kernel: missing/],
  [['vm', 'create', 'a', '--kernel', 'relative/vmlinux'], /kernel: must be an absolute path/],
  [['vm', 'create', 'a', '--kernel', '/'], /kernel: \/ is not a file/],
  [
    ['vm', 'create', 'a', '--kernel', spec('text-kernel')],
    /kernel: .*text-kernel is not a kernel image Cloud Hypervisor can boot.*\n.*hint: .*CONFIG_PVH=y, or a bzImage/s,
  ],
  [['vm', 'create', 'a', '--kernel', spec('empty-kernel')], /kernel: .*empty-kernel is empty/],
  [
    ['vm', 'create', 'a', '--kernel', spec('no-pvh-kernel')],
    /kernel: .*no-pvh-kernel is an ELF kernel without a PVH entry note .*Kernel lacks PVH header/,
  ],
  [
    ['vm', 'create', 'a', '--kernel', K, '--initramfs', '/nonexistent/initrd'],
    /initramfs: \/nonexistent\/initrd does not exist/,
  ],
  [
    ['vm', 'create', 'a', '--kernel', K, '--disk', '/nonexistent/disk.raw'],
    /disks\[0\]\.path: .* does not exist/,
  ],
  [
    ['vm', 'create', 'a', '--kernel', K, '--share', '/nonexistent/dir:data'],
    /shares\[0\]\.hostPath: .* does not exist/,
  ],
  [
    ['vm', 'create', 'a', '--kernel', K, '--share', `${K}:data`],
    /shares\[0\]\.hostPath: .* is not a directory/,
  ],
  [['vm', 'create', 'a', '--kernel', K, '--share', '/tmp:bad/tag'], /shares\[0\]\.tag: /],
  [['vm', 'create', 'a', '--kernel', K, '--share', '/tmp'], /--share: "\/tmp" is not dir:tag/],
  [['vm', 'create', 'a', '--kernel', K, '--cmdline', 'a\nb'], /cmdline: must not contain NUL or newline/],
  // spec files
  [['vm', 'create', '-f', spec('unknown-field.yaml')], /unknown field colour/],
  [['vm', 'create', '-f', spec('wrong-type.yaml')], /cpus: /],
  [['vm', 'create', '-f', spec('memory-lots.json')], /memory: "lots" is not a size/],
  [['vm', 'create', '-f', spec('not-yaml.yaml')], /not valid YAML or JSON \(line \d+/],
  [['vm', 'create', '-f', spec('a-list.yaml')], /must hold one mapping/],
  [['vm', 'create', '-f', spec('port-zero.yaml')], /network\.forwards\[0\]\.hostPort: must be 1–65535/],
  [['vm', 'create', '-f', spec('unknown-nested.yaml')], /network: unknown field speed/],
  [
    ['vm', 'create', '-f', spec('duplicate-key.yaml')],
    /not valid YAML or JSON \(line 2, column 1\): Map keys must be unique$/m,
  ],
  [['vm', 'create', '-f', spec('no-kernel.yaml')], /kernel: /],
  [
    ['vm', 'create', '-f', '/nonexistent/spec.yaml'],
    /--file: cannot read \/nonexistent\/spec\.yaml \(ENOENT\)/,
  ],
  // conflicting flags
  [['vm', 'create', '-f', spec('good.yaml'), '--memory', '1G'], /--file cannot be combined with --memory/],
  [['vm', 'create', 'named', '-f', spec('good.yaml')], /--file cannot be combined with the NAME argument/],
  [
    ['vm', 'create', 'a', '--kernel', K, '--no-network', '-p', '8080:80'],
    /network\.enabled: forwards and mycelium need the network enabled/,
  ],
  [
    ['vm', 'create', 'a', '--kernel', K, '--no-network', '--queues', '2'],
    /--queues cannot be combined with --no-network/,
  ],
  [
    ['--net-backend', 'mosnet', '--nat', 'iptables', 'vm', 'ls'],
    /--nat applies to the local network backend only/,
  ],
  [['vm', 'logs', 'keep', '--follow', '--json'], /--follow cannot be combined with --json/],
  [['vm', 'stop', 'keep', '-t', 'forever'], /--timeout: "forever" is not a number of seconds/],
  // usage
  [['vm', 'explode'], /unknown command 'explode'/],
  [['vm', 'ls', '--all'], /unknown option '--all'/],
  [['vm', 'start'], /missing required argument 'name'/],
];

describe.skipIf(skip !== undefined)('bad input: exit 2, the problem named, nothing changed', () => {
  beforeAll(async () => {
    box.create();
    mkdirSync(join(box.dir, 'specs'));
    for (const [name, text] of Object.entries(specFiles)) writeFileSync(spec(name), text);
    chmodSync(spec('other-vmm'), 0o755);
    writeFileSync(spec('no-pvh-kernel'), kernelWithoutPvhNote());
    // A VM and a bridge exist, so "nothing changed" covers records, reservations, TAPs and forwards.
    const created = await myhv(
      ['vm', 'create', 'keep', '--kernel', K, '-p', '8080:80', '--share', `${box.share}:data`],
      box.env,
    );
    if (created.code !== 0) throw new Error(`setup failed: ${created.stderr}`);
  });
  afterAll(() => box.destroy());

  it('has at least 40 rows', () => {
    expect(table.length).toBeGreaterThanOrEqual(40);
  });

  it.each(table.map((row, i) => [i + 1, ...row] as const))(
    '#%i myhv %j',
    async (_i, args, message, extraEnv?: unknown) => {
      const before = box.snapshot();
      const result = await myhv(args, {
        ...box.env,
        ...((extraEnv as Record<string, string> | undefined) ?? {}),
      });
      expect(result.code, result.stderr).toBe(2);
      expect(result.stderr).toMatch(message);
      expect(result.stdout).not.toMatch(/created|removed/);
      expect(box.snapshot()).toBe(before);
    },
  );
});
