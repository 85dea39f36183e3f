import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { chmodSync, linkSync, mkdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { totalmem } from 'node:os';
import { join } from 'node:path';
import { probeGuestImage } from '@my-hypervisor/chv-client/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bin, e2eSkipReason, myhv, type Result, Sandbox, viaDaemon, virtiofsdMissing } from './myhv.js';

const skip =
  e2eSkipReason() ??
  (virtiofsdMissing() ? 'virtiofsd is missing (apt-get install qemu-system-common)' : undefined);
if (skip) console.warn(`skipped: the bad-input table, because ${skip}`);

const box = new Sandbox('bad');
const K = box.kernel;
const spec = (name: string) => join(box.dir, 'specs', name);
const disk = (name: string) => join(box.dir, 'disks', name);
/** One GiB more than this host has. */
const overRam = `${Math.ceil(totalmem() / 1024 ** 3) + 1}G`;

// What the setup leaves for the rows to collide with: VM `keep` (running, tcp/8080), VM `parked` (stopped,
// tcp/8090 and udp/5300), VM `nonet` (no network), and in the sandbox's namespace a socket listening on tcp/9090
// and one bound to udp/9053.
const json = (field: string) =>
  new RegExp(`^\\{"error":\\{.*"field":"${field.replace(/[.[\]]/g, '\\$&')}".*"exitCode":2\\}\\}$`, 'm');

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
  'foreign-ip.yaml': `name: s12\nkernel: ${K}\nnetwork:\n  forwards:\n    - { hostIp: 8.8.8.8, hostPort: 8081, guestPort: 80 }\n`,
  'collide-stopped.yaml': `name: s13\nkernel: ${K}\nnetwork:\n  forwards:\n    - { hostPort: 9100, guestPort: 80 }\n    - { hostPort: 8090, guestPort: 80 }\n`,
  'collide-listening.json': `{"name": "s14", "kernel": "${K}", "network": {"forwards": [{"hostPort": 9090, "guestPort": 80}]}}`,
  'collide-udp.yaml': `name: s15\nkernel: ${K}\nnetwork:\n  forwards:\n    - { protocol: udp, hostPort: 5300, guestPort: 53 }\n`,
  'memory-1e300.yaml': `name: s16\nkernel: ${K}\nmemory: 1e300\n`,
  'memory-huge.json': `{"name": "s17", "kernel": "${K}", "memory": "99999999T"}`,
  'memory-over-ram.yaml': `name: s18\nkernel: ${K}\nmemory: ${overRam}\n`,
  'same-disk.yaml': `name: s19\nkernel: ${K}\ndisks:\n  - path: ${disk('a.raw')}\n  - path: ${disk('a.raw')}\n    readOnly: true\n`,
  'same-disk-link.yaml': `name: s20\nkernel: ${K}\ndisks:\n  - path: ${disk('b.raw')}\n  - path: ${disk('a.raw')}\n  - path: ${disk('a-link.raw')}\n`,
  'api-socket.yaml': `name: s21\nkernel: ${K}\nvmm:\n  extraArgs: [--api-socket=/tmp/x.sock]\n`,
  'api-socket-split.json': `{"name": "s22", "kernel": "${K}", "vmm": {"extraArgs": ["-v", "--api-socket", "/tmp/x.sock"]}}`,
  'vmm-binary-missing.yaml': `name: s23\nkernel: ${K}\nvmm:\n  binary: /nonexistent/cloud-hypervisor\n`,
  'vmm-binary-relative.yaml': `name: s24\nkernel: ${K}\nvmm:\n  binary: cloud-hypervisor\n`,
  'share-readonly-yes.yaml': `name: s25\nkernel: ${K}\nshares:\n  - { hostPath: ${box.share}, tag: d, readOnly: yes }\n`,
  'mycelium.yaml': `name: s26\nkernel: ${K}\nnetwork:\n  mycelium: true\n`,
  'other-bridge.yaml': `name: s27\nkernel: ${K}\nnetwork:\n  bridge: otherbr0\n`,
  'sctp.yaml': `name: s28\nkernel: ${K}\nnetwork:\n  forwards:\n    - { protocol: sctp, hostPort: 9000, guestPort: 80 }\n`,
  'cpus-string.json': `{"name": "s29", "kernel": "${K}", "cpus": "2"}`,
  'no-name.yaml': `kernel: ${K}\n`,
  'empty.yaml': '',
};

/** Specs given on stdin (`-f -`). */
const stdinSpecs = {
  foreignIp: `name: i1\nkernel: ${K}\nnetwork:\n  forwards:\n    - { hostIp: 192.0.2.1, hostPort: 9000, guestPort: 80 }\n`,
  collideRunning: `{"name": "i2", "kernel": "${K}", "network": {"forwards": [{"hostPort": 8080, "guestPort": 80}]}}`,
  collideBound: `name: i3\nkernel: ${K}\nnetwork:\n  forwards:\n    - { protocol: udp, hostPort: 9053, guestPort: 53 }\n`,
  memory1e300: `{"name": "i4", "kernel": "${K}", "memory": 1e300}`,
  sameDisk: `name: i5\nkernel: ${K}\ndisks:\n  - path: ${disk('a.raw')}\n  - path: ${box.dir}/disks/./a.raw\n`,
  vmmArg: `name: i6\nkernel: ${K}\nvmm:\n  extraArgs: ['--kernel', /boot/other]\n`,
  aList: `- name: i7\n  kernel: ${K}\n`,
  notYaml: 'name: [unclosed\n',
  empty: '',
  unknownField: `name: i8\nkernel: ${K}\ncolour: blue\n`,
  queues: `name: i9\nkernel: ${K}\ncpus: 2\nnetwork:\n  queues: 3\n`,
  vmmBinary: `{"name": "i10", "kernel": "${K}", "vmm": {"binary": "/nonexistent/ch"}}`,
};

/** The probe guest with its PVH note's type changed: an ELF kernel Cloud Hypervisor would refuse at boot. */
function kernelWithoutPvhNote(): Uint8Array {
  const image = probeGuestImage();
  image[176 + 8] = 17;
  return image;
}

/** What a row needs besides argv: environment variables, or a spec on stdin. */
interface RowExtra {
  readonly env?: Record<string, string>;
  readonly stdin?: string;
  /**
   * What stderr names instead when the command goes through the sandbox's myhvd (MYHV_E2E_DAEMON): the row gives
   * a host setting the daemon runs otherwise, which is refused first, also with exit 2.
   */
  readonly viaDaemon?: RegExp;
}

const differsFromDaemon =
  /differs from what myhvd \(pid \d+, .*\) runs with: simulator\n {2}hint: run this command in-process with --no-daemon/;

/** [argv, what stderr must name, extra]. Every row must exit 2 and change nothing. */
type Row = readonly [string[], RegExp, RowExtra?];

const table: Row[] = [
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
  [['vm', 'ls'], /MYHV_SUBNET: /, { env: { MYHV_SUBNET: 'banana' } }],
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
    { viaDaemon: differsFromDaemon },
  ],
  [
    ['vm', 'create', 'a', '--kernel', K],
    /MYHV_CLOUD_HYPERVISOR: .*other-vmm is not cloud-hypervisor: `--version` printed "firecracker v1\.9\.0"/,
    { env: { MYHV_CLOUD_HYPERVISOR: spec('other-vmm') }, viaDaemon: differsFromDaemon },
  ],
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
    /--nat applies to the local and namespace network backends only/,
  ],
  [['vm', 'logs', 'keep', '--follow', '--json'], /--follow cannot be combined with --json/],
  [['vm', 'stop', 'keep', '-t', 'forever'], /--timeout: "forever" is not a number of seconds/],
  // usage
  [['vm', 'explode'], /unknown command 'explode'/],
  [['vm', 'ls', '--all'], /unknown option '--all'/],
  [['vm', 'start'], /missing required argument 'name'/],
  // forwards: a host IP that is not this host's (the namespace's), checked before any lock, address or TAP
  [
    ['vm', 'create', 'a', '--kernel', K, '-p', '8.8.8.8:8081:80'],
    /network\.forwards\[0\]\.hostIp: 8\.8\.8\.8 is not an address of network namespace /,
  ],
  [
    ['vm', 'create', 'a', '--kernel', K, '-p', '10.62.0.2:9000:80'],
    /network\.forwards\[0\]\.hostIp: 10\.62\.0\.2 is not an address/,
  ],
  [['vm', 'create', 'a', '--kernel', K, '-p', '255.255.255.255:9000:80'], /network\.forwards\[0\]\.hostIp: /],
  [
    ['vm', 'create', 'a', '--kernel', K, '-p', '1.1.1.1:5353:53/udp'],
    /network\.forwards\[0\]\.hostIp: 1\.1\.1\.1 /,
  ],
  [
    ['vm', 'create', 'a', '--kernel', K, '-p', '9001:80', '-p', '8.8.8.8:9002:80'],
    /network\.forwards\[1\]\.hostIp: 8\.8\.8\.8 is not an address/,
  ],
  [
    ['forward', 'add', 'keep', '8.8.8.8:9000:80'],
    /hostIp: 8\.8\.8\.8 is not an address of network namespace /,
  ],
  [['forward', 'add', 'keep', '192.0.2.1:9000:80/udp'], /hostIp: 192\.0\.2\.1 is not an address/],
  // forwards: host ports other VMs forward, running or stopped
  [
    ['vm', 'create', 'a', '--kernel', K, '-p', '8080:81'],
    /network\.forwards\[0\]\.hostPort: tcp\/8080 is already forwarded to VM keep/,
  ],
  [
    ['vm', 'create', 'a', '--kernel', K, '-p', '127.0.0.1:8080:80'],
    /network\.forwards\[0\]\.hostPort: tcp\/8080 .* VM keep/,
  ],
  [
    ['vm', 'create', 'a', '--kernel', K, '-p', '8090:80'],
    /network\.forwards\[0\]\.hostPort: tcp\/8090 is already forwarded to VM parked/,
  ],
  [
    ['vm', 'create', 'a', '--kernel', K, '-p', '0.0.0.0:8090:80'],
    /network\.forwards\[0\]\.hostPort: tcp\/8090 .* VM parked/,
  ],
  [
    ['vm', 'create', 'a', '--kernel', K, '-p', '5300:53/udp'],
    /network\.forwards\[0\]\.hostPort: udp\/5300 .* VM parked/,
  ],
  [
    ['vm', 'create', 'a', '--kernel', K, '-p', '9001:80', '-p', '8080:80'],
    /network\.forwards\[1\]\.hostPort: tcp\/8080 .* VM keep/,
  ],
  [
    ['forward', 'add', 'keep', '8090:80'],
    /^myhv: error: hostPort: tcp\/8090 is already forwarded to VM parked/m,
  ],
  [['forward', 'add', 'keep', '5300:53/udp'], /hostPort: udp\/5300 is already forwarded to VM parked/],
  [['forward', 'add', 'parked', '8080:80'], /hostPort: tcp\/8080 is already forwarded to VM keep/],
  [['forward', 'add', 'keep', '8080:81'], /hostPort: keep already forwards tcp\/8080 \(to port 80\)/],
  [['forward', 'add', 'keep', '127.0.0.1:8080:80'], /hostPort: keep already forwards tcp\/8080/],
  // forwards: host ports a socket in the namespace holds
  [
    ['vm', 'create', 'a', '--kernel', K, '-p', '9090:80'],
    /network\.forwards\[0\]\.hostPort: tcp\/9090 is in use: a socket in network namespace .* listens on it/,
  ],
  [
    ['vm', 'create', 'a', '--kernel', K, '-p', '127.0.0.1:9090:80'],
    /network\.forwards\[0\]\.hostPort: tcp\/9090 is in use/,
  ],
  [
    ['vm', 'create', 'a', '--kernel', K, '-p', '9053:53/udp'],
    /network\.forwards\[0\]\.hostPort: udp\/9053 is in use: .* is bound to it/,
  ],
  [
    ['vm', 'create', 'a', '--kernel', K, '-p', '9001:80', '-p', '9090:80'],
    /network\.forwards\[1\]\.hostPort: tcp\/9090 is in use/,
  ],
  [
    ['vm', 'create', 'a', '--kernel', K, '-p', '8080:80/udp', '-p', '9053:53/udp'],
    /network\.forwards\[1\]\.hostPort: udp\/9053 is in use/,
  ],
  [['forward', 'add', 'keep', '9090:80'], /hostPort: tcp\/9090 is in use/],
  [['forward', 'add', 'parked', '9053:53/udp'], /hostPort: udp\/9053 is in use/],
  // forwards: other bad input, missing VMs included (the input is refused before the VM is looked up)
  [['forward', 'add', 'nonet', '9000:80'], /network\.enabled: nonet has no network to forward to/],
  [['forward', 'add', 'keep', '0:80'], /forward\.hostPort: must be 1–65535/],
  [['forward', 'add', 'keep', '1.2.3:8080:80'], /forward\.hostIp: must be an IPv4 address/],
  [['forward', 'add', 'keep', '8080'], /forward: "8080" is not \[hostIp:\]hostPort:guestPort/],
  [['forward', 'add', 'keep', '8080:80/icmp'], /forward: .*protocol must be tcp or udp/],
  [['forward', 'add', 'nosuchvm', '70000:80'], /forward\.hostPort: must be 1–65535/],
  [['forward', 'add', 'nosuchvm', 'http:80'], /forward: .*"http" is not a port number/],
  [['forward', 'rm', 'nosuchvm', '0'], /hostPort: "0" is not hostPort/],
  [['forward', 'rm', 'keep', '8080/sctp'], /hostPort: "8080\/sctp" is not hostPort\[\/tcp\|udp\]/],
  [['forward', 'add', 'keep'], /missing required argument 'forward'/],
  [['forward', 'rm', 'keep'], /missing required argument 'hostPort'/],
  [['vm', 'stop', 'nosuchvm', '-t', 'forever'], /--timeout: "forever" is not a number of seconds/],
  [['vm', 'logs', 'nosuchvm', '-n', 'abc'], /--tail: "abc" is not a number of lines/],
  [['vm', 'restart', 'nosuchvm', '-t', '-1'], /--timeout: "-1" is not a number of seconds/],
  // shares: dir:tag[:ro|:rw], nothing else
  [
    ['vm', 'create', 'a', '--kernel', K, '--share', `${box.share}:data:yes`],
    /--share: .*: the mode "yes" is not ro or rw/,
  ],
  [
    ['vm', 'create', 'a', '--kernel', K, '--share', `${box.share}:data:RO`],
    /--share: .*: the mode "RO" is not ro or rw/,
  ],
  [
    ['vm', 'create', 'a', '--kernel', K, '--share', `${box.share}:data:readonly`],
    /--share: .*: the mode "readonly"/,
  ],
  [
    ['vm', 'create', 'a', '--kernel', K, '--share', `${box.share}:data:`],
    /--share: ".*:data:" is not dir:tag\[:ro\|:rw\]/,
  ],
  [['vm', 'create', 'a', '--kernel', K, '--share', `${box.share}::ro`], /--share: ".*::ro" is not dir:tag/],
  [['vm', 'create', 'a', '--kernel', K, '--share', ':data'], /--share: ":data" is not dir:tag/],
  [
    ['vm', 'create', 'a', '--kernel', K, '--share', `${box.share}/a:b:c`],
    /--share: .*: the mode "c" is not ro or rw.*\n.*hint: .*needs the mode/s,
  ],
  [
    ['vm', 'create', 'a', '--kernel', K, '--share', 'share:data'],
    /shares\[0\]\.hostPath: must be an absolute path/,
  ],
  [
    ['vm', 'create', 'a', '--kernel', K, '--share', `${box.share}:${'t'.repeat(37)}`],
    /shares\[0\]\.tag: must be at most 36 bytes/,
  ],
  [
    ['vm', 'create', 'a', '--kernel', K, '--share', `${box.share}:d`, '--share', `${box.share}:d:ro`],
    /shares\[1\]\.tag: d is already used by shares\[0\]/,
  ],
  // disks: one file once
  [
    ['vm', 'create', 'a', '--kernel', K, '--disk', disk('a.raw'), '--disk', disk('a.raw')],
    /disks\[1\]\.path: .*a\.raw is already disks\[0\]/,
  ],
  [
    ['vm', 'create', 'a', '--kernel', K, '--disk', disk('a.raw'), '--disk', `${disk('a.raw')}:ro`],
    /disks\[1\]\.path: .* is already disks\[0\]/,
  ],
  [
    [
      'vm',
      'create',
      'a',
      '--kernel',
      K,
      '--disk',
      `${disk('a.raw')}:rw`,
      '--disk',
      `${box.dir}/disks/./a.raw`,
    ],
    /disks\[1\]\.path: .* is already disks\[0\]/,
  ],
  [
    ['vm', 'create', 'a', '--kernel', K, '--disk', disk('a.raw'), '--disk', disk('a-link.raw')],
    /disks\[1\]\.path: .*a-link\.raw is the same file as disks\[0\]\.path/,
  ],
  [
    [
      'vm',
      'create',
      'a',
      '--kernel',
      K,
      '--disk',
      disk('b.raw'),
      '--disk',
      disk('a.raw'),
      '--disk',
      disk('a-hard.raw'),
    ],
    /disks\[2\]\.path: .*a-hard\.raw is the same file as disks\[1\]\.path/,
  ],
  [
    ['vm', 'create', 'a', '--kernel', K, '--disk', 'relative.raw'],
    /disks\[0\]\.path: must be an absolute path/,
  ],
  [['vm', 'create', 'a', '--kernel', K, '--disk', '/'], /disks\[0\]\.path: \/ is not a file/],
  [
    ['vm', 'create', 'a', '--kernel', K, '--disk', `${disk('a.raw')}:yes`],
    /disks\[0\]\.path: .*a\.raw:yes does not exist/,
  ],
  // memory: sizes, absurd ones, more than the host has
  [['vm', 'create', 'a', '--kernel', K, '--memory', '1e300'], /memory: "1e300" is not a size/],
  [
    ['vm', 'create', 'a', '--kernel', K, '--memory', '99999999T'],
    /memory: "99999999T" is more than any host has/,
  ],
  [
    ['vm', 'create', 'a', '--kernel', K, '--memory', '65T'],
    /memory: "65T" is more than any host has \(at most 64T\)/,
  ],
  [['vm', 'create', 'a', '--kernel', K, '--memory', '64T'], /memory: 65536G is more than this host's RAM/],
  [
    ['vm', 'create', 'a', '--kernel', K, '--memory', overRam],
    /memory: \d+G is more than this host's RAM \([\d.]+G\)/,
  ],
  [['vm', 'create', 'a', '--kernel', K, '--memory', '-1G'], /memory: "-1G" is not a size/],
  [['vm', 'create', 'a', '--kernel', K, '--memory', '1.5G'], /memory: "1\.5G" is not a size/],
  [
    ['vm', 'create', 'a', '--kernel', K, '--memory', '100K'],
    /memory: must be a whole number of MiB, at least 64M/,
  ],
  // cpus and queue pairs
  [['vm', 'create', 'a', '--kernel', K, '--cpus', '-1'], /--cpus: "-1" is not a whole number/],
  [['vm', 'create', 'a', '--kernel', K, '--cpus', '1.5'], /--cpus: "1\.5" is not a whole number/],
  [['vm', 'create', 'a', '--kernel', K, '--cpus', '0x10'], /--cpus: "0x10" is not a whole number/],
  [['vm', 'create', 'a', '--kernel', K, '--queues', 'two'], /--queues: "two" is not a whole number/],
  [
    ['vm', 'create', 'a', '--kernel', K, '--queues', '3', '--cpus', '2'],
    /network\.queues: 3 queue pairs need at least as many vCPUs, but cpus is 2/,
  ],
  // --vmm-arg: nothing the manager sets itself, in any spelling
  [
    ['vm', 'create', 'a', '--kernel', K, '--vmm-arg', '--api-socket=/tmp/x.sock'],
    /vmm\.extraArgs\[0\]: --api-socket is set by the manager/,
  ],
  [
    ['vm', 'create', 'a', '--kernel', K, '--vmm-arg', '--api-socket', '--vmm-arg', '/tmp/x.sock'],
    /vmm\.extraArgs\[0\]: --api-socket is set by the manager/,
  ],
  [
    ['vm', 'create', 'a', '--kernel', K, '--vmm-arg', '-v', '--vmm-arg', '--api-socket=path=/x'],
    /vmm\.extraArgs\[1\]: --api-socket /,
  ],
  [
    ['vm', 'create', 'a', '--kernel', K, '--vmm-arg', '--kernel=/boot/other'],
    /vmm\.extraArgs\[0\]: --kernel is set by the manager/,
  ],
  [
    ['vm', 'create', 'a', '--kernel', K, '--vmm-arg', '--firmware', '--vmm-arg', '/x.fd'],
    /vmm\.extraArgs\[0\]: --firmware /,
  ],
  [
    ['vm', 'create', 'a', '--kernel', K, '--vmm-arg', '--cmdline=init=/bin/sh'],
    /vmm\.extraArgs\[0\]: --cmdline /,
  ],
  [['vm', 'create', 'a', '--kernel', K, '--vmm-arg', '--net tap=x'], /vmm\.extraArgs\[0\]: --net /],
  [['vm', 'create', 'a', '--kernel', K, '--vmm-arg=--disk=path=/x'], /vmm\.extraArgs\[0\]: --disk /],
  [['vm', 'create', 'a', '--kernel', K, '--vmm-arg', '--serial=tty'], /vmm\.extraArgs\[0\]: --serial /],
  [['vm', 'create', 'a', '--kernel', K, '--vmm-arg', '--console=off'], /vmm\.extraArgs\[0\]: --console /],
  [
    ['vm', 'create', 'a', '--kernel', K, '--vmm-arg', '--event-monitor=path=/x'],
    /vmm\.extraArgs\[0\]: --event-monitor /,
  ],
  [
    ['vm', 'create', 'a', '--kernel', K, '--vmm-arg', '--log-file=/tmp/x.log'],
    /vmm\.extraArgs\[0\]: --log-file /,
  ],
  [['vm', 'create', 'a', '--kernel', K, '--vmm-arg', '--memory=size=1G'], /vmm\.extraArgs\[0\]: --memory /],
  [['vm', 'create', 'a', '--kernel', K, '--vmm-arg', '--cpus=boot=2'], /vmm\.extraArgs\[0\]: --cpus /],
  [
    ['vm', 'create', 'a', '--kernel', K, '--vmm-arg', '--restore=source_url=file:///x'],
    /vmm\.extraArgs\[0\]: --restore /,
  ],
  [
    ['vm', 'create', 'a', '--kernel', K, '--vmm-arg', '--fs', '--vmm-arg', 'tag=x,socket=/x'],
    /vmm\.extraArgs\[0\]: --fs /,
  ],
  [
    ['vm', 'create', 'a', '--kernel', K, ...Array<string[]>(33).fill(['--vmm-arg', '-v']).flat()],
    /vmm\.extraArgs: .*32/,
  ],
  // other flags
  [['vm', 'create', 'a', '--kernel', K, '--cmdline', 'x'.repeat(2049)], /cmdline: .*2048/],
  [['vm', 'create', 'a', '--kernel', '/a,b'], /kernel: must not contain NUL, newline or comma/],
  [['vm', 'create', 'a', '--kernel', ''], /kernel: must not be empty/],
  [['vm', 'create', 'a', '--kernel', K, '--initramfs', '/'], /initramfs: \/ is not a file/],
  [['vm', 'create'], /missing the VM name/],
  [['vm', 'create', 'a', '--kernel', K, '--cpus'], /option '--cpus <n>' argument missing/],
  [['vm', 'inspect', 'keep', 'extra'], /too many arguments for 'inspect'/],
  [['vm', 'rm'], /missing required argument 'names'/],
  [['--frobnicate', 'vm', 'ls'], /unknown option '--frobnicate'/],
  [['vm', 'logs', 'keep', '-n', '-5'], /--tail: "-5" is not a number of lines/],
  [['vm', 'stop', 'keep', '-t', '3601'], /--timeout: "3601" is not a number of seconds from 0 to 3600/],
  [['--netns', '-x', 'vm', 'ls'], /--netns: "-x" is not a namespace name/],
  [['vm', 'ls'], /MYHV_NETNS: "a b" is not a namespace name/, { env: { MYHV_NETNS: 'a b' } }],
  [
    ['vm', 'ls'],
    /MYHV_STATE_DIR: "relative" is not an absolute path/,
    { env: { MYHV_STATE_DIR: 'relative' } },
  ],
  [['--bridge', 'br 0', 'vm', 'ls'], /--bridge: "br 0" may only contain/],
  [['--run-dir', 'relative', 'vm', 'ls'], /--run-dir: "relative" is not an absolute path/],
  [['--subnet', '10.62.0.0', 'vm', 'ls'], /--subnet: "10\.62\.0\.0" is not an IPv4 CIDR/],
  // spec files
  [
    ['vm', 'create', '-f', spec('foreign-ip.yaml')],
    /network\.forwards\[0\]\.hostIp: 8\.8\.8\.8 is not an address.*\n.*hint: fix `network\.forwards\[0\]\.hostIp` in .*foreign-ip\.yaml/s,
  ],
  [
    ['vm', 'create', '-f', spec('collide-stopped.yaml')],
    /network\.forwards\[1\]\.hostPort: tcp\/8090 is already forwarded to VM parked/,
  ],
  [
    ['vm', 'create', '-f', spec('collide-listening.json')],
    /network\.forwards\[0\]\.hostPort: tcp\/9090 is in use/,
  ],
  [
    ['vm', 'create', '-f', spec('collide-udp.yaml')],
    /network\.forwards\[0\]\.hostPort: udp\/5300 .* VM parked/,
  ],
  [['vm', 'create', '-f', spec('memory-1e300.yaml')], /memory: 1e\+300 is more than any host has/],
  [['vm', 'create', '-f', spec('memory-huge.json')], /memory: "99999999T" is more than any host has/],
  [['vm', 'create', '-f', spec('memory-over-ram.yaml')], /memory: \d+G is more than this host's RAM/],
  [['vm', 'create', '-f', spec('same-disk.yaml')], /disks\[1\]\.path: .*a\.raw is already disks\[0\]/],
  [
    ['vm', 'create', '-f', spec('same-disk-link.yaml')],
    /disks\[2\]\.path: .*a-link\.raw is the same file as disks\[1\]\.path/,
  ],
  [
    ['vm', 'create', '-f', spec('api-socket.yaml')],
    /vmm\.extraArgs\[0\]: --api-socket is set by the manager/,
  ],
  [
    ['vm', 'create', '-f', spec('api-socket-split.json')],
    /vmm\.extraArgs\[1\]: --api-socket is set by the manager/,
  ],
  [['vm', 'create', '-f', spec('vmm-binary-missing.yaml')], /vmm\.binary: \/nonexistent\/cloud-hypervisor /],
  [['vm', 'create', '-f', spec('vmm-binary-relative.yaml')], /vmm\.binary: must be an absolute path/],
  [['vm', 'create', '-f', spec('share-readonly-yes.yaml')], /shares\[0\]\.readOnly: /],
  [['vm', 'create', '-f', spec('mycelium.yaml')], /network\.mycelium: .*mycelium/],
  [['vm', 'create', '-f', spec('other-bridge.yaml')], /network\.bridge: .*otherbr0/],
  [['vm', 'create', '-f', spec('sctp.yaml')], /network\.forwards\[0\]\.protocol: /],
  [['vm', 'create', '-f', spec('cpus-string.json')], /cpus: /],
  [['vm', 'create', '-f', spec('no-name.yaml')], /name: /],
  [['vm', 'create', '-f', spec('empty.yaml')], /must hold one mapping/],
  // spec on stdin
  [
    ['vm', 'create', '-f', '-'],
    /network\.forwards\[0\]\.hostIp: 192\.0\.2\.1 is not an address.*\n.*hint: fix `network\.forwards\[0\]\.hostIp` in -/s,
    { stdin: stdinSpecs.foreignIp },
  ],
  [
    ['vm', 'create', '-f', '-'],
    /network\.forwards\[0\]\.hostPort: tcp\/8080 is already forwarded to VM keep/,
    { stdin: stdinSpecs.collideRunning },
  ],
  [
    ['vm', 'create', '-f', '-'],
    /network\.forwards\[0\]\.hostPort: udp\/9053 is in use/,
    { stdin: stdinSpecs.collideBound },
  ],
  [
    ['vm', 'create', '-f', '-'],
    /memory: 1e\+300 is more than any host has/,
    { stdin: stdinSpecs.memory1e300 },
  ],
  [['vm', 'create', '-f', '-'], /disks\[1\]\.path: .* is already disks\[0\]/, { stdin: stdinSpecs.sameDisk }],
  [
    ['vm', 'create', '-f', '-'],
    /vmm\.extraArgs\[0\]: --kernel is set by the manager/,
    { stdin: stdinSpecs.vmmArg },
  ],
  [['vm', 'create', '-f', '-'], /--file -: must hold one mapping/, { stdin: stdinSpecs.aList }],
  [['vm', 'create', '-f', '-'], /not valid YAML or JSON/, { stdin: stdinSpecs.notYaml }],
  [['vm', 'create', '-f', '-'], /--file -: must hold one mapping/, { stdin: stdinSpecs.empty }],
  [['vm', 'create', '-f', '-'], /unknown field colour/, { stdin: stdinSpecs.unknownField }],
  [['vm', 'create', '-f', '-'], /network\.queues: 3 queue pairs .* cpus is 2/, { stdin: stdinSpecs.queues }],
  [['vm', 'create', '-f', '-'], /vmm\.binary: \/nonexistent\/ch /, { stdin: stdinSpecs.vmmBinary }],
  [
    ['vm', 'create', 'named', '-f', '-'],
    /--file cannot be combined with the NAME argument/,
    { stdin: stdinSpecs.foreignIp },
  ],
  // --json: the same refusals as one JSON error on stderr, naming the field
  [
    ['--json', 'vm', 'create', 'a', '--kernel', K, '-p', '8.8.8.8:8081:80'],
    json('network.forwards[0].hostIp'),
  ],
  [['--json', 'vm', 'create', 'a', '--kernel', K, '-p', '8090:80'], json('network.forwards[0].hostPort')],
  [
    ['--json', 'vm', 'create', 'a', '--kernel', K, '-p', '9001:80', '-p', '9090:80'],
    json('network.forwards[1].hostPort'),
  ],
  [['--json', 'vm', 'create', 'a', '--kernel', K, '--share', `${box.share}:data:yes`], json('--share')],
  [
    ['--json', 'vm', 'create', 'a', '--kernel', K, '--vmm-arg', '--api-socket=/tmp/x.sock'],
    json('vmm.extraArgs[0]'),
  ],
  [['--json', 'vm', 'create', 'a', '--kernel', K, '--memory', overRam], json('memory')],
  [
    ['--json', 'vm', 'create', 'a', '--kernel', K, '--disk', disk('a.raw'), '--disk', disk('a-link.raw')],
    json('disks[1].path'),
  ],
  [['--json', 'forward', 'add', 'keep', '8090:80'], json('hostPort')],
  [['--json', 'forward', 'add', 'keep', '8.8.8.8:9000:80'], json('hostIp')],
  [['--json', 'forward', 'add', 'nonet', '9000:80'], json('network.enabled')],
  [['--json', 'vm', 'create', '-f', spec('collide-stopped.yaml')], json('network.forwards[1].hostPort')],
  [
    ['--json', 'vm', 'create', '-f', '-'],
    json('network.forwards[0].hostPort'),
    { stdin: stdinSpecs.collideRunning },
  ],
  [['--json', 'vm', 'create', 'a'], json('--kernel')],
  // the daemon's own flags, refused before it listens
  [['daemon', 'run', '--watch-interval', 'soon'], /--watch-interval.*"soon" is not a number of milliseconds/],
  [['daemon', 'run', '--drift-interval', '1.5'], /--drift-interval.*"1\.5" is not a number of milliseconds/],
];

/** `myhv args` with `input` on its stdin (for `-f -`). */
function myhvWithStdin(args: readonly string[], env: Record<string, string>, input: string): Promise<Result> {
  return new Promise((resolve) => {
    const child = execFile(
      process.execPath,
      [bin, ...args],
      {
        cwd: '/',
        env: { PATH: process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin', ...env },
        timeout: 60_000,
      },
      (error, stdout, stderr) => {
        const code = error ? (typeof error.code === 'number' ? error.code : -1) : 0;
        resolve({ code, stdout: String(stdout), stderr: String(stderr) });
      },
    );
    child.stdin!.end(input);
  });
}

const listeners: ChildProcess[] = [];

/** Runs `script` with node inside the sandbox's namespace until the end; resolves once it printed "ready". */
function listenInSandbox(script: string): Promise<void> {
  const child = spawn('ip', ['netns', 'exec', box.name, process.execPath, '-e', script], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  listeners.push(child);
  return new Promise((resolve, reject) => {
    child.stdout!.on('data', (chunk: Buffer) => chunk.toString().includes('ready') && resolve());
    child.on('exit', (code) => reject(new Error(`listener in ${box.name} exited with ${code}`)));
  });
}

async function setUp(args: string[]): Promise<void> {
  const result = await myhv(args, box.env);
  if (result.code !== 0) throw new Error(`setup \`myhv ${args.join(' ')}\` failed: ${result.stderr}`);
}

describe.skipIf(skip !== undefined)('bad input: exit 2, the problem named, nothing changed', () => {
  beforeAll(async () => {
    box.create();
    mkdirSync(join(box.dir, 'specs'));
    for (const [name, text] of Object.entries(specFiles)) writeFileSync(spec(name), text);
    chmodSync(spec('other-vmm'), 0o755);
    writeFileSync(spec('no-pvh-kernel'), kernelWithoutPvhNote());
    mkdirSync(join(box.dir, 'disks'));
    writeFileSync(disk('a.raw'), Buffer.alloc(64 * 1024));
    writeFileSync(disk('b.raw'), Buffer.alloc(64 * 1024));
    symlinkSync(disk('a.raw'), disk('a-link.raw'));
    linkSync(disk('a.raw'), disk('a-hard.raw'));
    // VMs and a bridge exist, so "nothing changed" covers records, reservations, TAPs and forwards; their
    // forwards and the sockets below are what the collision rows collide with.
    await setUp(['vm', 'create', 'keep', '--kernel', K, '-p', '8080:80', '--share', `${box.share}:data`]);
    await setUp(['vm', 'create', 'parked', '--kernel', K, '-p', '8090:80', '-p', '5300:53/udp']);
    await setUp(['vm', 'stop', 'parked']);
    await setUp(['vm', 'create', 'nonet', '--kernel', K, '--no-network']);
    await listenInSandbox(
      "require('net').createServer().listen(9090, '127.0.0.1', () => console.log('ready'))",
    );
    await listenInSandbox(
      "const s = require('dgram').createSocket('udp4'); s.bind(9053, () => console.log('ready'))",
    );
  });
  afterAll(() => {
    for (const child of listeners) child.kill('SIGKILL');
    box.destroy();
  });

  it('has at least 150 rows, each a distinct case', () => {
    expect(table.length).toBeGreaterThanOrEqual(150);
    const cases = table.map(([args, , extra]) => JSON.stringify([args, extra ?? {}]));
    expect(cases.filter((c, i) => cases.indexOf(c) !== i)).toEqual([]);
  });

  it.each(table.map((row, i) => [i + 1, ...row] as const))(
    '#%i myhv %j',
    async (_i, args, message, extra?: RowExtra) => {
      const before = box.snapshot();
      const env = { ...box.env, ...extra?.env };
      const result =
        extra?.stdin === undefined ? await myhv(args, env) : await myhvWithStdin(args, env, extra.stdin);
      expect(result.code, result.stderr).toBe(2);
      expect(result.stderr).toMatch((viaDaemon() && extra?.viaDaemon) || message);
      expect(result.stdout).not.toMatch(/created|removed|forwarding/);
      expect(box.snapshot()).toBe(before);
    },
  );
});
