import { existsSync, readdirSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { isAlive, pidsMentioning, runProgram, terminate } from './host-process.js';

/** Everything `myhv demo` makes is named after its pid, so anyone can find and remove it later. */
export const DEMO_PREFIX = 'myhv-demo-';
const NETNS_DIR = '/run/netns';
const DEMO_DIR_PARENT = '/run';

export interface DemoPlaces {
  readonly pid: number;
  /** `myhv-demo-<pid>`. */
  readonly netns: string;
  /** `/run/myhv-demo-<pid>`: state, sockets, the shared folder, the placeholder kernel. Short, for socket paths. */
  readonly dir: string;
}

export function demoPlaces(pid: number): DemoPlaces {
  return { pid, netns: `${DEMO_PREFIX}${pid}`, dir: `${DEMO_DIR_PARENT}/${DEMO_PREFIX}${pid}` };
}

/** One thing a sweep removed (`myhv gc` lists them with the reconcile changes). */
export interface SweepChange {
  readonly kind: 'process' | 'netns' | 'demo-dir';
  readonly target: string;
  readonly action: string;
}

/**
 * Removes what a demo left: processes inside its namespace (VMMs), processes using its directory (virtiofsd), the
 * namespace (and with it the bridge, TAPs and nft table), then the directory. Safe to run twice.
 */
export async function sweepDemo(places: DemoPlaces): Promise<SweepChange[]> {
  const changes: SweepChange[] = [];
  const netnsExists = existsSync(`${NETNS_DIR}/${places.netns}`);
  const pids = new Set<number>();
  if (netnsExists) {
    const listed = await runProgram('ip', ['netns', 'pids', places.netns]);
    for (const line of listed.stdout.split('\n'))
      if (/^\d+$/.test(line.trim())) pids.add(Number(line.trim()));
  }
  for (const pid of pidsMentioning(`${places.dir}/`)) pids.add(pid);
  pids.delete(process.pid);
  await Promise.all(
    [...pids].map(async (pid) => {
      await terminate(pid);
      changes.push({ kind: 'process', target: String(pid), action: 'stopped' });
    }),
  );
  if (netnsExists) {
    const deleted = await runProgram('ip', ['netns', 'delete', places.netns]);
    if (deleted.exitCode === 0) changes.push({ kind: 'netns', target: places.netns, action: 'deleted' });
  }
  if (existsSync(places.dir)) {
    await rm(places.dir, { recursive: true, force: true });
    changes.push({ kind: 'demo-dir', target: places.dir, action: 'removed' });
  }
  return changes;
}

/** Demos whose process is gone but whose namespace or directory is still there. */
export function abandonedDemos(): DemoPlaces[] {
  const pids = new Set<number>();
  const collect = (dir: string) => {
    try {
      for (const entry of readdirSync(dir)) {
        const match = new RegExp(`^${DEMO_PREFIX}(\\d+)$`).exec(entry);
        if (match) pids.add(Number(match[1]));
      }
    } catch {}
  };
  collect(NETNS_DIR);
  collect(DEMO_DIR_PARENT);
  return [...pids].filter((pid) => pid !== process.pid && !isAlive(pid)).map(demoPlaces);
}
