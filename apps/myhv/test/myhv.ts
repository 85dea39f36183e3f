import { type ChildProcess, execFile, spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { once } from 'node:events';
import {
  chmodSync,
  closeSync,
  existsSync,
  lstatSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { probeGuestImage } from '@my-hypervisor/chv-client/testing';

/** The bundled binary, run exactly as a user would: `node dist/myhv.js …`. */
export const bin = fileURLToPath(new URL('../dist/myhv.js', import.meta.url));

export interface Result {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

/** Runs the bundle with `env` on top of a minimal environment (no MYHV_* from the caller's shell). */
export function myhv(
  args: readonly string[],
  env: Record<string, string> = {},
  timeoutMs = 60_000,
): Promise<Result> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [bin, ...args],
      {
        cwd: '/',
        env: { PATH: process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin', ...env },
        timeout: timeoutMs,
        maxBuffer: 64 * 1024 * 1024,
      },
      (error, stdout, stderr) => {
        const code = error ? (typeof error.code === 'number' ? error.code : -1) : 0;
        resolve({ code, stdout: String(stdout), stderr: String(stderr) });
      },
    );
  });
}

/** Parses the one JSON document a `--json` command printed. */
export function json<T = Record<string, unknown>>(result: Result): T {
  try {
    return JSON.parse(result.stdout) as T;
  } catch {
    throw new Error(`not JSON (exit ${result.code}):\n${result.stdout}\n${result.stderr}`);
  }
}

export const isRoot = process.getuid?.() === 0;

/**
 * True in the `through myhvd` test project: every sandbox starts a daemon, so each command these suites run goes
 * through it (same output and exit codes expected as in-process).
 */
export function viaDaemon(): boolean {
  return process.env.MYHV_E2E_DAEMON === '1';
}

/**
 * For the few tests about a host setting given to one command (`--subnet`, `--confinement off`): through a daemon
 * such a command is refused by design (daemon-routing.e2e proves it), so they run in-process only; says so.
 */
export function inProcessOnly(what: string): boolean {
  if (!viaDaemon()) return false;
  console.warn(`skipped through myhvd: ${what} (a per-command host setting; the daemon refuses it, exit 2)`);
  return true;
}

export function have(program: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${program}`]).status === 0;
}

/** Why the e2e suites cannot run here, or undefined. Printed when they skip. */
export function e2eSkipReason(): string | undefined {
  if (!isRoot) return 'not root (they create network namespaces, bridges and TAPs)';
  for (const p of ['ip', 'nft']) if (!have(p)) return `${p} is missing (apt-get install iproute2 nftables)`;
  if (!existsSync(bin)) return `${bin} is missing (run the build)`;
  return undefined;
}

export function virtiofsdMissing(): boolean {
  return !existsSync('/usr/lib/qemu/virtiofsd') && !have('virtiofsd');
}

function sh(args: readonly string[]): string {
  const r = spawnSync(args[0]!, args.slice(1), { encoding: 'utf8' });
  return `${r.stdout}${r.stderr}`;
}

let counter = 0;

/**
 * A throwaway world for one test file: a network namespace, a state and a run directory, the probe guest as
 * kernel and a folder to share, and the environment that points the CLI at them (simulator VMM).
 */
export class Sandbox {
  readonly name: string;
  readonly dir: string;
  readonly stateDir: string;
  readonly runDir: string;
  readonly kernel: string;
  readonly share: string;
  readonly env: Record<string, string>;

  /** `env`: settings on top of the sandbox's own, for every command and for its daemon (`MYHV_NET_BACKEND`). */
  constructor(label: string, env: Record<string, string> = {}) {
    counter += 1;
    this.name = `myhv-e2e-${label}-${process.pid}-${counter}`.slice(0, 60);
    this.dir = `/run/${this.name}`;
    this.stateDir = join(this.dir, 'state');
    this.runDir = join(this.dir, 'run');
    this.kernel = join(this.dir, 'vmlinux');
    this.share = join(this.dir, 'share');
    this.env = {
      MYHV_STATE_DIR: this.stateDir,
      MYHV_RUN_DIR: this.runDir,
      MYHV_NETNS: this.name,
      MYHV_CLOUD_HYPERVISOR: 'simulator',
      ...env,
    };
  }

  /**
   * The myhvd this sandbox's commands go through, when the suite runs through the daemon (the `through myhvd`
   * project sets MYHV_E2E_DAEMON=1): started by `create()`, killed by `destroy()`.
   */
  daemon: ChildProcess | undefined;

  create(): this {
    sh(['ip', 'netns', 'add', this.name]);
    sh(['ip', '-n', this.name, 'link', 'set', 'lo', 'up']);
    mkdirSync(this.share, { recursive: true, mode: 0o700 });
    // As on a real host: a confined VMM (a user of its own) is let through to the kernel it boots.
    chmodSync(this.dir, 0o711);
    writeFileSync(this.kernel, probeGuestImage(), { mode: 0o644 });
    writeFileSync(join(this.share, 'hello.txt'), 'hello\n');
    if (viaDaemon()) this.startDaemon();
    return this;
  }

  /**
   * Starts `myhv daemon run` with this sandbox's settings and waits until its socket is in place (it is bound in a
   * private directory and renamed there once listening). Synchronous, like `create()`. Its log: `<dir>/myhvd.log`.
   */
  startDaemon(extraEnv: Record<string, string> = {}): ChildProcess {
    const socket = join(this.runDir, 'myhvd.sock');
    const log = openSync(join(this.dir, 'myhvd.log'), 'a', 0o600);
    // The watcher off: it would repair a VM whose VMM a test kills before the test's own `gc` does, and the suites
    // are about each command's answer. What the watcher does is proven in packages/daemon and apps/myhvd.
    const daemon = spawn(process.execPath, [bin, 'daemon', 'run', '--watch-interval', '0'], {
      cwd: '/',
      env: { PATH: process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin', ...this.env, ...extraEnv },
      stdio: ['ignore', log, log],
    });
    closeSync(log);
    this.daemon = daemon;
    const deadline = Date.now() + 60_000;
    const pause = new Int32Array(new SharedArrayBuffer(4));
    // Listening: the socket is in place, and the private directory it was bound in is gone (a snapshot taken
    // in between would see that directory vanish).
    const starting = () =>
      !existsSync(socket) || readdirSync(this.runDir).some((entry) => entry.startsWith('.myhvd-'));
    while (starting()) {
      if (daemon.exitCode !== null || Date.now() > deadline) {
        throw new Error(`myhvd did not start:\n${readFileSync(join(this.dir, 'myhvd.log'), 'utf8')}`);
      }
      Atomics.wait(pause, 0, 0, 20);
    }
    return daemon;
  }

  /**
   * Stops this sandbox's myhvd (SIGTERM, waits for its exit) and starts it again with `extraEnv` on top, e.g. a
   * simulator knob that must reach the VMMs the daemon spawns. Does nothing when the suite runs in-process.
   */
  async restartDaemon(extraEnv: Record<string, string> = {}): Promise<void> {
    const daemon = this.daemon;
    if (!daemon) return;
    if (daemon.exitCode === null && daemon.signalCode === null) {
      const exited = once(daemon, 'exit');
      daemon.kill('SIGTERM');
      await exited;
    }
    rmSync(join(this.runDir, 'myhvd.sock'), { force: true });
    this.startDaemon(extraEnv);
  }

  /** Kills whatever runs in the namespace or from the directory, deletes both. */
  destroy(): void {
    this.daemon?.kill('SIGKILL');
    const pids = new Set<number>();
    for (const line of sh(['ip', 'netns', 'pids', this.name]).split('\n'))
      if (/^\d+$/.test(line)) pids.add(Number(line));
    for (const pid of pidsMentioning(`${this.dir}/`)) pids.add(pid);
    for (const pid of pids) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {}
    }
    sh(['ip', 'netns', 'delete', this.name]);
    rmSync(this.dir, { recursive: true, force: true });
  }

  /**
   * Everything a command could have changed, as text: every file and directory under the state and run
   * directories (path, type, mode, size, mtime, content hash) and the namespace's links, addresses, routes,
   * nftables ruleset and IPv4 forwarding setting.
   */
  snapshot(): string {
    const lines: string[] = [];
    const walk = (root: string) => {
      if (!existsSync(root)) {
        lines.push(`${root}: absent`);
        return;
      }
      const visit = (path: string) => {
        const st = lstatSync(path);
        // A running daemon's own log (virtiofsd, the VMM, its serial port) grows by itself: its existence and mode count, its
        // content does not, or a late log line from a VM set up before the command would look like a change.
        const daemonLog = st.isFile() && /\.log(\.stderr)?$/.test(path);
        if (daemonLog) {
          lines.push(`${path} f ${st.mode.toString(8)} (daemon log)`);
          return;
        }
        const hash = st.isFile() ? createHash('sha256').update(readFileSync(path)).digest('hex') : '';
        lines.push(
          `${path} ${st.isDirectory() ? 'd' : st.isFile() ? 'f' : 'o'} ${st.mode.toString(8)} ${st.size} ${st.mtimeMs} ${hash}`,
        );
        if (st.isDirectory()) for (const entry of readdirSync(path).sort()) visit(join(path, entry));
      };
      visit(root);
    };
    walk(this.stateDir);
    walk(this.runDir);
    const ns = this.name;
    // Configuration only: carrier, operational state, timers and IPv6 DAD flags change by themselves.
    const links = JSON.parse(sh(['ip', '-n', ns, '-j', '-d', 'link', 'show']) || '[]') as {
      ifname: string;
      mtu: number;
      address?: string;
      master?: string;
      flags: string[];
      linkinfo?: { info_kind?: string };
    }[];
    for (const l of links) {
      const flags = l.flags.filter((f) => !['NO-CARRIER', 'LOWER_UP', 'M-DOWN'].includes(f)).join(',');
      lines.push(
        `link ${l.ifname} ${l.linkinfo?.info_kind ?? '-'} mtu ${l.mtu} ${l.address ?? ''} master ${l.master ?? '-'} ${flags}`,
      );
    }
    const addrs = JSON.parse(sh(['ip', '-n', ns, '-j', 'addr', 'show']) || '[]') as {
      ifname: string;
      addr_info: { family: string; local: string; prefixlen: number; scope: string }[];
    }[];
    for (const a of addrs) {
      for (const i of a.addr_info)
        if (i.scope !== 'link') lines.push(`addr ${a.ifname} ${i.local}/${i.prefixlen}`);
    }
    const routes = JSON.parse(sh(['ip', '-n', ns, '-j', 'route', 'show']) || '[]') as {
      dst: string;
      dev: string;
      prefsrc?: string;
    }[];
    for (const r of routes) lines.push(`route ${r.dst} dev ${r.dev} src ${r.prefsrc ?? '-'}`);
    lines.push(sh(['ip', 'netns', 'exec', ns, 'nft', 'list', 'ruleset']));
    lines.push(`ip_forward ${sh(['ip', 'netns', 'exec', ns, 'sysctl', '-n', 'net.ipv4.ip_forward']).trim()}`);
    return lines.join('\n');
  }

  /** Processes started for this sandbox (VMMs in the namespace, virtiofsd with sockets in the run directory). */
  processes(): number[] {
    const pids = new Set(pidsMentioning(`${this.dir}/`));
    for (const line of sh(['ip', 'netns', 'pids', this.name]).split('\n'))
      if (/^\d+$/.test(line)) pids.add(Number(line));
    return [...pids];
  }
}

export function pidsMentioning(needle: string): number[] {
  const pids: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry) || Number(entry) === process.pid) continue;
    try {
      if (readFileSync(`/proc/${entry}/cmdline`, 'utf8').includes(needle)) pids.push(Number(entry));
    } catch {}
  }
  return pids;
}

export function netnsExists(name: string): boolean {
  return existsSync(`/run/netns/${name}`);
}

/**
 * Starts the bundle without waiting for it (a follower: `events -f`, `vm stats --watch`); `lines` fills with its
 * stdout lines as they come.
 */
export function startMyhv(args: readonly string[], env: Record<string, string>) {
  const child: ChildProcess = spawn(process.execPath, [bin, ...args], {
    cwd: '/',
    env: { PATH: process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin', ...env },
  });
  const lines: string[] = [];
  let partial = '';
  let stderr = '';
  child.stdout!.on('data', (chunk: Buffer) => {
    const parts = (partial + chunk.toString()).split('\n');
    partial = parts.pop() ?? '';
    lines.push(...parts);
  });
  child.stderr!.on('data', (chunk: Buffer) => {
    stderr += chunk.toString();
  });
  const exited = new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)));
  /** Until a line matches (or the time is up: an error with what was seen). */
  const waitFor = async (match: (line: string) => boolean, timeoutMs = 30_000) => {
    const deadline = Date.now() + timeoutMs;
    while (!lines.some(match)) {
      if (Date.now() > deadline) throw new Error(`not seen; lines:\n${lines.join('\n')}\nstderr:\n${stderr}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  };
  /** Until `count` lines came. */
  const waitForLines = async (count: number, timeoutMs = 20_000) => {
    const deadline = Date.now() + timeoutMs;
    while (lines.length < count) {
      if (Date.now() > deadline) throw new Error(`only ${lines.length} lines; stderr:\n${stderr}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  };
  return { child, lines, exited, waitFor, waitForLines, stderr: () => stderr };
}

/**
 * Runs `myhv vm console NAME` on a terminal (`script` gives it a pty), types `keys` once `ready` matches what it
 * printed, and resolves with its exit code and output.
 */
export function consoleSession(
  env: Record<string, string>,
  name: string,
  ready: RegExp,
  keys: string,
): Promise<{ code: number | null; output: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn('script', ['-qfec', `${process.execPath} ${bin} vm console ${name}`, '/dev/null'], {
      env: { PATH: process.env.PATH ?? '/usr/bin:/bin', ...env },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let output = '';
    let typed = false;
    const onOutput = (chunk: Buffer) => {
      output += chunk.toString();
      if (!typed && ready.test(output)) {
        typed = true;
        child.stdin.write(keys);
      }
    };
    child.stdout.on('data', onOutput);
    child.stderr.on('data', onOutput);
    const timer = setTimeout(() => child.kill('SIGKILL'), 20_000);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, output });
    });
  });
}
