import { type ChildProcess, spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';

export const myhvd = fileURLToPath(new URL('../bin/myhvd.js', import.meta.url));

/** A myhvd the test started. */
export interface RunningMyhvd {
  readonly child: ChildProcess;
  readonly exited: Promise<number | null>;
  /** What it printed on stderr so far. */
  stderr(): string;
  /** The dashboard's URL, from its log line, when started with `--dashboard`. */
  readonly dashboardUrl: string | undefined;
}

/** `myhvd` as systemd would run it, with the sandbox's settings; resolves once it listens. */
export async function startMyhvd(
  env: Record<string, string>,
  args: readonly string[] = [],
): Promise<RunningMyhvd> {
  const child: ChildProcess = spawn(process.execPath, [myhvd, ...args], {
    cwd: '/',
    env: { PATH: process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stderr = '';
  child.stderr!.on('data', (chunk: Buffer) => {
    stderr += chunk.toString();
  });
  const exited = new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)));
  const deadline = Date.now() + 30_000;
  while (!stderr.includes('listening on')) {
    if (Date.now() > deadline || child.exitCode !== null) throw new Error(`myhvd did not start:\n${stderr}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  const dashboardUrl = /myhvd: dashboard: (https?:\/\/\S+)/.exec(stderr)?.[1];
  return { child, exited, stderr: () => stderr, dashboardUrl };
}
