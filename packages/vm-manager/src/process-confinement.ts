import { readdirSync, readFileSync } from 'node:fs';

/** How one host process of a VM runs: its ids, capabilities, `no_new_privs`, seccomp and cgroups, from /proc. */
export interface ProcessConfinement {
  readonly role: 'vmm' | 'virtiofsd';
  /** The share a virtiofsd serves. */
  readonly tag?: string;
  readonly pid: number;
  /** Effective uid and gid. */
  readonly uid: number;
  readonly gid: number;
  /** Supplementary groups. */
  readonly groups: readonly number[];
  /** Effective capabilities as /proc shows them (hex); all zeros when it has none. */
  readonly capEff: string;
  readonly noNewPrivs: boolean;
  /**
   * Seccomp mode: 0 off, 1 strict, 2 filter — the strictest any of its threads runs under. Cloud Hypervisor filters
   * every thread that does work (vmm, vCPUs, API server, signal handler) and leaves its idle main thread unfiltered.
   */
  readonly seccomp: number;
  /** How many of its threads run under a seccomp filter, of how many (from /proc/PID/task). */
  readonly seccompThreads?: { readonly filtered: number; readonly total: number };
  /** Its cgroup paths as /proc/PID/cgroup lists them, without duplicates and roots (`/myhv/<id>`). */
  readonly cgroups: readonly string[];
}

/** How process `pid` runs, or undefined when it is gone. */
export function readProcessConfinement(
  pid: number,
  role: ProcessConfinement['role'],
  tag?: string,
): ProcessConfinement | undefined {
  let status: string;
  let cgroup: string;
  try {
    status = readFileSync(`/proc/${pid}/status`, 'utf8');
    cgroup = readFileSync(`/proc/${pid}/cgroup`, 'utf8');
  } catch {
    return undefined;
  }
  const process = parseProcessConfinement(status, cgroup, pid, role, tag);
  const modes = threadSeccompModes(pid);
  if (modes.length === 0) return process;
  return {
    ...process,
    seccomp: Math.max(process.seccomp, ...modes),
    seccompThreads: { filtered: modes.filter((mode) => mode === 2).length, total: modes.length },
  };
}

/** The seccomp mode of each thread of `pid` (empty when it is gone or /proc hides its tasks). */
function threadSeccompModes(pid: number): number[] {
  let tasks: string[];
  try {
    tasks = readdirSync(`/proc/${pid}/task`);
  } catch {
    return [];
  }
  const modes: number[] = [];
  for (const task of tasks) {
    try {
      const status = readFileSync(`/proc/${pid}/task/${task}/status`, 'utf8');
      modes.push(Number(/^Seccomp:[ \t]*(\d+)/m.exec(status)?.[1] ?? 0));
    } catch {
      // The thread ended meanwhile.
    }
  }
  return modes;
}

/** The confinement /proc/PID/status and /proc/PID/cgroup describe. */
export function parseProcessConfinement(
  status: string,
  cgroup: string,
  pid: number,
  role: ProcessConfinement['role'],
  tag?: string,
): ProcessConfinement {
  // [ \t]*, not \s*: an empty field (`Groups:` of a process with none) must not take the next line's value.
  const field = (name: string) => new RegExp(`^${name}:[ \\t]*(.*)$`, 'm').exec(status)?.[1]?.trim() ?? '';
  const ids = (name: string) => field(name).split(/\s+/).filter(Boolean).map(Number);
  const cgroups = [
    ...new Set(
      cgroup
        .split('\n')
        .map((line) => line.slice(line.indexOf(':', line.indexOf(':') + 1) + 1))
        // The root ("/") of hierarchies it was not put in says nothing.
        .filter((path) => path.length > 1),
    ),
  ];
  return {
    role,
    ...(tag === undefined ? {} : { tag }),
    pid,
    uid: ids('Uid')[1] ?? -1,
    gid: ids('Gid')[1] ?? -1,
    groups: ids('Groups'),
    capEff: field('CapEff'),
    noNewPrivs: field('NoNewPrivs') === '1',
    seccomp: Number(field('Seccomp') || 0),
    cgroups,
  };
}
