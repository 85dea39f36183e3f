import { execa } from 'execa';

let counter = 0;
const created = new Set<string>();

/** Why kernel tests cannot run here, or undefined when they can (root, and `ip` plus the given tools installed). */
export async function kernelSkipReason(tools: readonly string[] = ['nft']): Promise<string | undefined> {
  if (process.getuid?.() !== 0) return 'they need root (network namespaces, bridges, TAPs, nftables)';
  for (const [tool, arg] of [['ip', '-V'], ...tools.map((t) => [t, '--version'])] as const) {
    const result = await execa(tool, [arg], { reject: false });
    if (result.exitCode !== 0) return `${tool} is not installed`;
  }
  const probe = `myhv-nl-${process.pid}-probe`;
  const add = await execa('ip', ['netns', 'add', probe], { reject: false });
  if (add.exitCode !== 0) return `network namespaces cannot be created (${add.stderr.trim()})`;
  await execa('ip', ['netns', 'del', probe], { reject: false });
  return undefined;
}

/** A fresh network namespace with its own name (`myhv-nl-<pid>-<n>`), loopback up. */
export async function createNetns(): Promise<string> {
  const name = `myhv-nl-${process.pid}-${++counter}`;
  await execa('ip', ['netns', 'add', name]);
  created.add(name);
  await execa('ip', ['-n', name, 'link', 'set', 'lo', 'up']);
  return name;
}

export async function deleteNetns(name: string): Promise<void> {
  if (!created.delete(name)) return;
  await execa('ip', ['netns', 'del', name], { reject: false });
}

/** Deletes every namespace this process created and still holds (for afterAll, also after failures). */
export async function deleteAllNetns(): Promise<void> {
  for (const name of [...created]) await deleteNetns(name);
}

/** Runs a command inside `netns`. */
export function inNetns(
  netns: string,
  file: string,
  args: readonly string[],
  options: { reject?: boolean } = {},
) {
  return execa('ip', ['netns', 'exec', netns, file, ...args], { reject: options.reject ?? true });
}
