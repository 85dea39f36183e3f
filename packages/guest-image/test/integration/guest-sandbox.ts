import { chmod, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { initScript } from '../../src/init-script.js';

const BUSYBOX = '/bin/busybox';
let counter = 0;
const namespaces = new Set<string>();
const roots = new Set<string>();

/** Why the init cannot run here, or undefined when it can (root, ip, unshare, busybox, network namespaces). */
export async function sandboxSkipReason(): Promise<string | undefined> {
  if (process.getuid?.() !== 0) return 'they need root (network, mount, UTS and PID namespaces)';
  for (const [tool, arg] of [
    ['ip', '-V'],
    ['unshare', '--version'],
    [BUSYBOX, 'true'],
  ] as const) {
    if ((await execa(tool, [arg], { reject: false })).exitCode !== 0) return `${tool} is not installed`;
  }
  const probe = `myhv-gi-${process.pid}-probe`;
  const add = await execa('ip', ['netns', 'add', probe], { reject: false });
  if (add.exitCode !== 0) return `network namespaces cannot be created (${add.stderr.trim()})`;
  await execa('ip', ['netns', 'del', probe], { reject: false });
  return undefined;
}

async function addNetns(name: string): Promise<void> {
  await execa('ip', ['netns', 'add', name]);
  namespaces.add(name);
}

/**
 * A guest namespace whose `eth0` is a veth to `peer0` in a second namespace (10.62.0.1/24, fd00:62::1/64,
 * up), so the guest can reach its gateway for real.
 */
export async function createGuestNetwork(): Promise<{ guest: string; peer: string }> {
  const n = ++counter;
  const guest = `myhv-gi-${process.pid}-${n}g`;
  const peer = `myhv-gi-${process.pid}-${n}p`;
  await addNetns(guest);
  await addNetns(peer);
  await execa('ip', [
    'link',
    'add',
    'name',
    'eth0',
    'netns',
    guest,
    'type',
    'veth',
    'peer',
    'name',
    'peer0',
    'netns',
    peer,
  ]);
  for (const args of [
    ['addr', 'add', '10.62.0.1/24', 'dev', 'peer0'],
    ['-6', 'addr', 'add', 'fd00:62::1/64', 'dev', 'peer0', 'nodad'],
    ['link', 'set', 'dev', 'peer0', 'up'],
  ]) {
    await execa('ip', ['-n', peer, ...args]);
  }
  return { guest, peer };
}

/** Deletes every namespace and root this process created (for afterAll, also after failures). */
export async function cleanUpSandboxes(): Promise<void> {
  for (const name of [...namespaces]) {
    await execa('ip', ['netns', 'del', name], { reject: false });
    namespaces.delete(name);
  }
  const mounts = await readFile('/proc/self/mounts', 'utf8');
  for (const root of [...roots]) {
    // A mount leaked out of the private namespace (devtmpfs!) must never be removed recursively.
    if (mounts.includes(` ${root}/`))
      throw new Error(`${root} still has mounts on the host; not removing it`);
    await rm(root, { recursive: true, force: true });
    roots.delete(root);
  }
}

/**
 * The shim at ROOT/bin/busybox: logs each call to ROOT/calls.log; insmod, poweroff, acpid and virtio-fs
 * mounts stop there (they would reach the host), cttyhack is skipped (it would open the host's console);
 * everything else runs the real busybox inside the test's namespaces.
 */
function shim(root: string): string {
  return `#!${BUSYBOX} sh
printf '%s\\n' "$*" >>'${root}/calls.log'
case "$1" in
insmod | poweroff | acpid) exit 0 ;;
cttyhack) shift; exec "$@" ;;
mount) case " $* " in *' -t virtiofs '*) exit 0 ;; esac ;;
esac
exec ${BUSYBOX} "$@"
`;
}

export interface GuestRun {
  readonly root: string;
  readonly stdout: string;
  readonly exitCode: number | undefined;
  /** ROOT/calls.log, one busybox call (argv joined by spaces) or command marker per line. */
  readonly calls: string[];
}

/**
 * Runs the init under `busybox sh` in `netns` (or a fresh empty one) plus fresh mount, UTS and PID
 * namespaces (so even a real poweroff would only end that PID namespace), with `cmdline` as its kernel
 * command line.
 */
export async function runInit(
  netns: string | undefined,
  cmdline: string,
  options: { modules?: string; stdin?: string } = {},
): Promise<GuestRun> {
  const root = await mkdtemp(join(tmpdir(), 'myhv-init-'));
  roots.add(root);
  await mkdir(join(root, 'bin'));
  await mkdir(join(root, 'etc/myhv'), { recursive: true });
  await writeFile(join(root, 'bin/busybox'), shim(root));
  await chmod(join(root, 'bin/busybox'), 0o755);
  await writeFile(join(root, 'init'), initScript(), { mode: 0o755 });
  await writeFile(join(root, 'cmdline'), `${cmdline}\n`);
  if (options.modules !== undefined) await writeFile(join(root, 'etc/myhv/modules'), options.modules);
  await writeFile(join(root, 'calls.log'), '');
  const unshare = ['unshare', '--mount', '--uts', '--pid', '--fork', '--kill-child'];
  const argv =
    netns === undefined
      ? [...unshare, '--net', BUSYBOX, 'sh', join(root, 'init')]
      : ['ip', 'netns', 'exec', netns, ...unshare, BUSYBOX, 'sh', join(root, 'init')];
  const result = await execa(argv[0] as string, argv.slice(1), {
    env: { PATH: '/usr/sbin:/usr/bin:/sbin:/bin', MYHV_ROOT: root, MYHV_CMDLINE: join(root, 'cmdline') },
    extendEnv: false,
    input: options.stdin ?? '',
    reject: false,
    timeout: 20_000,
    killSignal: 'SIGKILL',
    stderr: 'inherit',
  });
  const calls = (await readFile(join(root, 'calls.log'), 'utf8')).split('\n').filter((l) => l !== '');
  return { root, stdout: result.stdout, exitCode: result.exitCode, calls };
}
