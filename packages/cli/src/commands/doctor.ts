import { constants, existsSync, readFileSync, type Stats, statSync } from 'node:fs';
import { access } from 'node:fs/promises';
import { dirname } from 'node:path';
import {
  findUnsafePermissions,
  ownsVmmUid,
  type UnreadableRecord,
  VmManager,
  VmManagerError,
} from '@my-hypervisor/vm-manager';
import { openManager } from '../backends.js';
import { type CliConfig, usesLocalOps } from '../config.js';
import { ExitCode } from '../exit-codes.js';
import { runProgram } from '../host-process.js';
import { resolveNetworks } from '../networks.js';
import type { CommandHandler } from '../run.js';
import { describeVmm, NO_VMM_HINT, type VmmChoice, vmmJson } from '../vmm-choice.js';

/** One doctor check in `--json` output. */
export interface DoctorCheck {
  readonly id: string;
  readonly title: string;
  readonly ok: boolean;
  /** A failing required check makes `doctor` exit 1; optional ones only warn. */
  readonly required: boolean;
  /** Not applicable to this configuration (e.g. the mosnet socket with the local backend). */
  readonly skipped: boolean;
  readonly detail: string;
  /** What to do when it fails. */
  readonly fix: string | null;
}

type Probe = Omit<DoctorCheck, 'id' | 'title' | 'required' | 'skipped'> & { skipped?: boolean };

const pass = (detail: string): Probe => ({ ok: true, detail, fix: null });
const fail = (detail: string, fix: string): Probe => ({ ok: false, detail, fix });
const skip = (detail: string): Probe => ({ ok: true, skipped: true, detail, fix: null });

function firstLine(text: string): string {
  return (
    text
      .split('\n')
      .find((l) => l.trim() !== '')
      ?.trim() ?? ''
  );
}

async function programVersion(file: string, args: readonly string[], pkg: string): Promise<Probe> {
  const out = await runProgram(file, args);
  if (out.spawnError === 'ENOENT')
    return fail(`${file} not found`, `apt-get install ${pkg} (or run scripts/setup)`);
  if (out.exitCode !== 0)
    return fail(
      `${file} ${args.join(' ')} failed: ${firstLine(out.stderr) || `exit ${out.exitCode}`}`,
      `reinstall ${pkg}`,
    );
  return pass(firstLine(out.stdout) || firstLine(out.stderr));
}

/**
 * The directory, each directory and link on the way to it, and everything in it: owned by root (or us) and not
 * writable by group or others (on the way, sticky ones may be). vm-manager refuses anything else
 * (UNSAFE_PERMISSIONS): whoever can write a record there can make myhv run their program as root.
 */
async function dirCheck(path: string, what: string): Promise<Probe> {
  let stat: Stats | undefined;
  try {
    stat = statSync(path);
  } catch {}
  if (stat && !stat.isDirectory())
    return fail(`${path} is not a directory`, `remove it, or choose another ${what}`);
  const unsafe = findUnsafePermissions(path, { vmmOwned: ownsVmmUid });
  const first = unsafe[0];
  if (first) {
    const others = unsafe.slice(1).map((u) => u.path);
    const more = others.length === 0 ? '' : ` (and ${others.length} more under it, e.g. ${others[0]})`;
    const owner = process.geteuid?.() === 0 ? 'root:' : String(process.geteuid?.());
    return fail(
      `${first.path} is ${first.problem} (owner uid ${first.uid}, mode ${first.mode.toString(8).padStart(3, '0')})${more}: ` +
        'whoever can write there could make myhv run their programs, so myhv refuses to use it',
      others.length === 0 ? first.fix : `chown -R ${owner} ${path} && chmod -R go-w ${path}`,
    );
  }
  if (stat) {
    return pass(`${path} (mode ${(stat.mode & 0o777).toString(8)}; nothing in it others own or could write)`);
  }
  let parent = dirname(path);
  while (!existsSync(parent) && parent !== '/') parent = dirname(parent);
  try {
    await access(parent, constants.W_OK);
    return pass(`${path} does not exist yet; it will be created (0700)`);
  } catch {
    return fail(
      `${path} does not exist and ${parent} is not writable`,
      `run as root, or choose another ${what}`,
    );
  }
}

/** What least privilege for VMMs can use here, and what will be missing (`--confinement`). */
async function confinementCheck(mode: CliConfig['confinement']): Promise<Probe> {
  if (mode === 'off') return skip('off (--confinement off): every VMM runs as root, unconfined');
  const { confinementSupport } = await import('@my-hypervisor/vm-manager');
  const support = confinementSupport();
  if (support.problems.length > 0) {
    const detail = `VMMs would run as root, unconfined: ${support.problems.join('; ')}`;
    return mode === 'on'
      ? fail(detail, 'fix the above (as root, with util-linux), or use --confinement auto/off')
      : fail(detail, 'run myhv as root on a host with util-linux (setpriv, unshare) to confine VMMs');
  }
  const cg = support.cgroups;
  const cgroups = !cg
    ? 'no cgroups mounted: limits not enforced'
    : cg.kind === 'v2'
      ? `cgroup v2 (${cg.available.length ? cg.available.join(', ') : 'no controller'} enforced)`
      : `cgroup ${cg.kind} (${(['cpu', 'memory', 'pids'] as const).filter((c) => cg.controllers[c]).join(', ') || 'no controller'} enforced)`;
  const kvm = support.kvmGid === undefined ? 'no /dev/kvm group' : `/dev/kvm through group ${support.kvmGid}`;
  const landlock =
    support.landlock === undefined
      ? 'Landlock unknown (no /sys/kernel/security/lsm)'
      : support.landlock
        ? 'Landlock'
        : 'no Landlock in the kernel';
  return pass(`each VMM as a uid of its own, no capabilities, no_new_privs; ${cgroups}; ${kvm}; ${landlock}`);
}

/** Every VM record can be read: `gc` sweeps no leftovers while one cannot, and `vm ls` can only name it. */
async function recordsCheck(config: CliConfig): Promise<Probe> {
  let listed: Awaited<ReturnType<VmManager['listAll']>>;
  try {
    listed = await new VmManager({ stateDir: config.stateDir, runDir: config.runDir }).listAll();
  } catch (error) {
    if (VmManagerError.isInstance(error) && error.code === 'UNSAFE_PERMISSIONS')
      return skip('not read: the state directory is not safe (see above)');
    throw error;
  }
  const { vms, unreadable } = listed;
  if (unreadable.length === 0) return pass(`${vms.length} VM record(s), every one readable`);
  const why = (u: UnreadableRecord) =>
    u.code === 'UNSAFE_PERMISSIONS'
      ? `${u.path} is not safe (others own it or could write it)`
      : `${u.path}: ${u.reason}`;
  return fail(
    `${unreadable.length} VM record(s) cannot be read: ${unreadable.map((u) => `${u.name} (${why(u)})`).join('; ')}`,
    'fix or remove each VM directory named, then run `myhv gc`: until then it sweeps no leftovers',
  );
}

/**
 * Every bridge, TAP and forward the records name exists on the host. After a reboot none does: `vm start` and
 * `myhv gc` (or `myhv autostart`) make them again.
 */
async function driftCheck(config: CliConfig): Promise<Probe> {
  const parts = await openManager(config, { kind: 'full', vmm: undefined });
  try {
    const vms = await parts.manager.list();
    if (!vms.some((vm) => vm.spec.network.enabled)) return pass('no VM with a network to compare');
    const drift = await parts.manager.drift();
    if (drift.length === 0) return pass(`bridges, TAPs and forwards of ${vms.length} VM(s) all present`);
    const shown = drift.slice(0, 5).map((d) => (d.vm ? `${d.vm}: ${d.problem}` : d.problem));
    return fail(
      `${drift.length} missing (after a reboot?): ${shown.join('; ')}${drift.length > 5 ? '; …' : ''}`,
      '`myhv gc` makes them again (and `myhv autostart` also starts the VMs with --restart on-boot or always)',
    );
  } finally {
    await parts.close();
  }
}

async function readSysctl(config: CliConfig, name: string): Promise<string | undefined> {
  const path = `/proc/sys/${name.replaceAll('.', '/')}`;
  if (!config.netns) {
    try {
      return readFileSync(path, 'utf8').trim();
    } catch {
      return undefined;
    }
  }
  // /proc/sys/net shows the caller's namespace: read it from inside.
  const out = await runProgram('ip', ['netns', 'exec', config.netns, 'cat', path]);
  return out.exitCode === 0 ? out.stdout.trim() : undefined;
}

/**
 * What the namespace backend needs of the host, tried in a throwaway namespace (the host's ruleset and links are
 * never touched): `ip netns add`/`del`, a veth pair and a bridge in it, and an nft table of the bridge family.
 */
async function namespaceBackendCheck(): Promise<Probe> {
  const probe = `myhv-doctor-${process.pid}`;
  const why = (out: { stderr: string; spawnError?: string; exitCode: number | null }) =>
    firstLine(out.stderr) || out.spawnError || `exit ${out.exitCode}`;
  const added = await runProgram('ip', ['netns', 'add', probe]);
  if (added.exitCode !== 0) {
    return fail(
      `cannot make a network namespace (ip netns add: ${why(added)})`,
      added.spawnError === 'ENOENT'
        ? 'apt-get install iproute2'
        : 'run as root, with /run/netns writable (each VM gets its own namespace there)',
    );
  }
  try {
    const missing: string[] = [];
    const fixes: string[] = [];
    const ip = (args: string[]) => runProgram('ip', ['-n', probe, ...args]);
    const veth = await ip(['link', 'add', 'probe0', 'type', 'veth', 'peer', 'name', 'probe1']);
    const bridge = await ip(['link', 'add', 'probebr', 'type', 'bridge']);
    if (veth.exitCode !== 0 || bridge.exitCode !== 0) {
      missing.push(`veth pairs or bridges (${why(veth.exitCode !== 0 ? veth : bridge)})`);
      fixes.push('modprobe veth bridge');
    }
    const nft = async (args: string[]) => runProgram('ip', ['netns', 'exec', probe, 'nft', ...args]);
    let table = await nft(['add', 'table', 'bridge', 'myhv_probe']);
    if (table.exitCode === 0)
      table = await nft(['add chain bridge myhv_probe forward { type filter hook forward priority 0 ; }']);
    if (table.exitCode === 0)
      table = await nft(['add rule bridge myhv_probe forward ether type ip counter accept']);
    if (table.exitCode !== 0) {
      missing.push(`nft tables of the bridge family (${why(table)})`);
      fixes.push(
        /exec of "nft" failed/.test(table.stderr)
          ? 'apt-get install nftables'
          : 'a kernel with nf_tables for bridges (CONFIG_NF_TABLES_BRIDGE; modprobe nf_tables)',
      );
    }
    if (missing.length > 0) return fail(`missing: ${missing.join('; ')}`, fixes.join('; '));
    return pass('network namespaces, veth pairs, bridges and bridge-family nft tables all work');
  } finally {
    await runProgram('ip', ['netns', 'del', probe]);
  }
}

async function runChecks(config: CliConfig, vmm: VmmChoice | undefined): Promise<DoctorCheck[]> {
  // The default network's record decides the backend once made (a conflicting setting is the drift check's to report).
  const backend = await resolveNetworks(config)
    .then((resolved) => resolved.config.netBackend)
    .catch(() => config.netBackend);
  const local = usesLocalOps(backend);
  const namespaced = backend === 'namespace';
  // No VMM yet: the one to install needs KVM; only a chosen simulator does not.
  const real = vmm?.kind !== 'simulator';
  const nsArgs = config.netns ? ['-n', config.netns] : [];
  const checks: [string, string, boolean, () => Promise<Probe>][] = [
    [
      'root',
      'running as root',
      true,
      async () =>
        process.getuid?.() === 0
          ? pass('uid 0')
          : fail(
              `uid ${process.getuid?.()}`,
              'run myhv as root (sudo myhv …): it creates TAPs, bridges and forwards',
            ),
    ],
    [
      'kvm',
      'KVM (/dev/kvm)',
      real,
      async () => {
        if (!existsSync('/dev/kvm')) {
          return fail(
            `/dev/kvm is missing${real ? '' : ' (not needed by the simulator)'}`,
            'modprobe kvm_intel (or kvm_amd) and enable virtualisation in the firmware; in a VM, enable nested virtualisation',
          );
        }
        try {
          await access('/dev/kvm', constants.R_OK | constants.W_OK);
          return pass('/dev/kvm is usable');
        } catch {
          return fail(
            '/dev/kvm is not readable and writable',
            'run as root, or add the user to the kvm group',
          );
        }
      },
    ],
    [
      'vmm',
      'cloud-hypervisor',
      real,
      async () => {
        // vm create, start and restart refuse to run without one.
        if (!vmm) return fail('not on PATH and none configured', NO_VMM_HINT);
        if (vmm.kind === 'simulator') return pass('the simulator, as configured');
        const out = await runProgram(vmm.command, ['--version']);
        if (out.exitCode !== 0) {
          return fail(
            `${vmm.command} --version failed: ${firstLine(out.stderr) || out.spawnError || `exit ${out.exitCode}`}`,
            'reinstall cloud-hypervisor',
          );
        }
        return pass(`${firstLine(out.stdout)} (${vmm.command})`);
      },
    ],
    [
      'guest',
      'guest boot (probe guest)',
      real,
      async () => {
        if (!vmm) return skip('no VMM to boot it with');
        if (vmm.kind === 'simulator') return skip('the simulator runs no guest');
        const { runProbeGuest } = await import('@my-hypervisor/chv-client/testing');
        try {
          const run = await runProbeGuest({ command: vmm.command, timeoutMs: 10_000 });
          return pass(
            `the probe guest printed its marker ${run.bootMs.toFixed(1)} ms after vm.create (VMM ready in ${run.readyMs.toFixed(1)} ms)`,
          );
        } catch (error) {
          const message = (error as Error).message;
          const noHypervisor = /no supported hypervisor|hypervisor interface/i.test(message);
          return fail(
            `cloud-hypervisor could not run the probe guest: ${noHypervisor ? 'it found no usable KVM (no supported hypervisor)' : message}`,
            noHypervisor
              ? 'load kvm_intel or kvm_amd and give this user read-write access to /dev/kvm; in a VM, enable nested virtualisation'
              : 'run `myhv doctor --debug`, and check the VMM with `cloud-hypervisor --version`',
          );
        }
      },
    ],
    [
      'virtiofsd',
      'virtiofsd (shared folders)',
      false,
      async () => {
        const { detectVirtiofsd } = await import('@my-hypervisor/storage-virtiofs');
        try {
          const info = await detectVirtiofsd();
          const flavour = info.flavour === 'c' ? 'C virtiofsd (QEMU)' : 'Rust virtiofsd';
          return pass(`${flavour}${info.version ? ` ${info.version}` : ''} at ${info.binary}`);
        } catch (error) {
          return fail((error as Error).message, 'apt-get install --no-install-recommends qemu-system-common');
        }
      },
    ],
    [
      'tun',
      'TUN/TAP (/dev/net/tun)',
      local,
      async () =>
        !local
          ? skip('not used by the mosnet backend')
          : existsSync('/dev/net/tun')
            ? pass('/dev/net/tun exists')
            : fail('/dev/net/tun is missing', 'modprobe tun'),
    ],
    [
      'ip',
      'iproute2 (ip)',
      local,
      async () => (local ? programVersion('ip', ['-V'], 'iproute2') : skip('not used by the mosnet backend')),
    ],
    [
      'nat',
      `port forwarding (${config.nat})`,
      local,
      async () => {
        if (!local) return skip('forwards are made by mosnet');
        return config.nat === 'nft'
          ? programVersion('nft', ['--version'], 'nftables')
          : programVersion('iptables', ['--version'], 'iptables');
      },
    ],
    [
      'ip_forward',
      'IPv4 forwarding',
      false,
      async () => {
        const value = await readSysctl(config, 'net.ipv4.ip_forward');
        if (value === '1') return pass(`net.ipv4.ip_forward = 1${config.netns ? ` in ${config.netns}` : ''}`);
        return fail(
          `net.ipv4.ip_forward = ${value ?? 'unknown'} (forwards from other hosts and VM egress need 1)`,
          `sysctl -w net.ipv4.ip_forward=1${config.netns ? ` (inside: ip netns exec ${config.netns} …)` : ''}, and persist it in /etc/sysctl.d/`,
        );
      },
    ],
    [
      'bridge',
      `bridge ${config.bridge}`,
      false,
      async () => {
        if (!local) return skip('made by mosnet on first use');
        const out = await runProgram('ip', [...nsArgs, '-d', '-j', 'link', 'show', 'dev', config.bridge]);
        if (out.exitCode !== 0)
          return fail(`${config.bridge} does not exist yet`, 'myhv net ensure (or just create a VM)');
        const kind = (JSON.parse(out.stdout || '[]') as { linkinfo?: { info_kind?: string } }[])[0]?.linkinfo
          ?.info_kind;
        return kind === 'bridge'
          ? pass(`${config.bridge} exists`)
          : fail(
              `${config.bridge} exists but is a ${kind ?? 'plain'} interface, not a bridge`,
              'choose another --bridge',
            );
      },
    ],
    ['state-dir', 'state directory', true, () => dirCheck(config.stateDir, '--state-dir')],
    ['records', 'VM records', true, () => recordsCheck(config)],
    ['drift', 'host network matches the records', true, () => driftCheck(config)],
    ['run-dir', 'run directory', true, () => dirCheck(config.runDir, '--run-dir')],
    [
      'netns',
      'network namespace',
      config.netns !== undefined,
      async () => {
        if (!config.netns) return skip('not used (no --netns)');
        return existsSync(`/run/netns/${config.netns}`)
          ? pass(`${config.netns} exists`)
          : fail(`${config.netns} does not exist`, `ip netns add ${config.netns}`);
      },
    ],
    [
      'confinement',
      'confined VMMs (own uid, no capabilities, cgroup)',
      config.confinement === 'on',
      async () => confinementCheck(config.confinement),
    ],
    [
      'namespaces',
      'per-VM namespaces (namespace backend)',
      namespaced,
      async () => (namespaced ? namespaceBackendCheck() : skip(`not used (net backend ${backend})`)),
    ],
    [
      'mosnet',
      'mosnet daemon',
      !local,
      async () => {
        if (local) return skip(`not used (net backend ${backend})`);
        const { MosnetOps } = await import('@my-hypervisor/net-mosnet');
        const ops = new MosnetOps({ socketPath: config.mosnetSocket, timeoutMs: 3_000 });
        try {
          await ops.discover();
          return pass(`answering on ${config.mosnetSocket}`);
        } catch (error) {
          return fail(
            `${config.mosnetSocket}: ${(error as Error).message}`,
            'start mosnetd, or pass --mosnet-socket',
          );
        } finally {
          await ops.close();
        }
      },
    ],
  ];
  return Promise.all(
    checks.map(async ([id, title, required, probe]) => {
      const result = await probe().catch((error: unknown) =>
        fail(String((error as Error)?.message ?? error), 'run again with --debug'),
      );
      return {
        id,
        title,
        required,
        skipped: result.skipped ?? false,
        ok: result.ok,
        detail: result.detail,
        fix: result.fix,
      };
    }),
  );
}

/** `myhv doctor`: each check ✓/✗ with a fix; exit 1 when a required check fails. */
export const doctor: CommandHandler = async (ctx) => {
  const config = await ctx.config();
  const vmm = await ctx.configuredVmm();
  const checks = await runChecks(config, vmm);
  const ok = checks.every((c) => c.ok || !c.required);
  const { out } = ctx;
  out.result({ ok, vmm: vmm ? vmmJson(vmm) : null, config: { ...config }, checks }, () => {
    out.print(vmm ? describeVmm(vmm) : 'VMM: none (no cloud-hypervisor on PATH, none configured)');
    const width = Math.max(...checks.map((c) => c.title.length));
    for (const c of checks) {
      const mark = c.skipped
        ? out.style.dim('-')
        : c.ok
          ? out.style.green('✓')
          : c.required
            ? out.style.red('✗')
            : out.style.yellow('✗');
      out.print(`${mark} ${c.title.padEnd(width)}  ${c.detail}${!c.ok && !c.required ? ' (optional)' : ''}`);
      if (!c.ok && c.fix) out.print(`  ${' '.repeat(width)}  fix: ${c.fix}`);
    }
    out.print(ok ? out.ok('ready') : out.bad('not ready: fix the required checks marked ✗'));
  });
  return ok ? ExitCode.OK : ExitCode.FAILED;
};
