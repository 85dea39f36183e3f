import { commandError } from './command-error.js';
import type { HostCommands } from './host-commands.js';

/**
 * A sysctl key in slash form (`net/ipv4/conf/br.0/route_localnet`): unlike the dotted form it stays unambiguous for
 * interface names that contain dots. `sysctl` prints it back dotted, with the name's dots turned into slashes.
 */
export type SysctlKey = string;

/** How `sysctl` prints a slash-form key back. */
export const printedSysctlKey = (key: SysctlKey): string =>
  key
    .split('/')
    .map((part) => part.replaceAll('.', '/'))
    .join('.');

/**
 * Reads and writes kernel settings through `sysctl` (inside the namespace when one is configured: /proc/sys/net
 * always shows the reader's own namespace, so a process must run in the target one).
 */
export class Sysctl {
  readonly #host: HostCommands;

  constructor(host: HostCommands) {
    this.#host = host;
  }

  /** The current values of `keys`; keys that do not exist (yet) are left out. */
  async read(keys: readonly SysctlKey[], signal?: AbortSignal): Promise<Map<SysctlKey, string>> {
    const outcome = await this.#host.run('sysctl', ['-e', ...keys], signal ? { signal } : {});
    if (outcome.exitCode !== 0) throw commandError(this.#host.failure(outcome));
    const values = new Map<string, string>();
    for (const line of outcome.stdout.split('\n')) {
      const match = /^(\S+) = (.*)$/.exec(line.trim());
      if (match) values.set(match[1]!, match[2]!.trim());
    }
    return new Map(
      keys.flatMap((key) =>
        values.has(printedSysctlKey(key)) ? [[key, values.get(printedSysctlKey(key))!]] : [],
      ),
    );
  }

  /** Sets every key in one process; nothing to do is no process. */
  async write(settings: ReadonlyMap<SysctlKey, string>): Promise<void> {
    if (settings.size === 0) return;
    const outcome = await this.#host.run('sysctl', [
      '-w',
      ...[...settings].map(([key, value]) => `${key}=${value}`),
    ]);
    if (outcome.exitCode !== 0) throw commandError(this.#host.failure(outcome));
  }
}
