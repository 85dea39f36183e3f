import { lstatSync, readdirSync } from 'node:fs';
import { dirname, join } from 'node:path';

/**
 * Every entry under `root`, depth first in name order, as `<path> <kind> <mode>`: kind `dir`, `socket`, `file`,
 * `char-device` or `other`, mode in octal without the type bits. Paths are absolute, or relative to `root` with
 * `relative: true`.
 */
export function fileModes(root: string, options: { relative?: boolean } = {}): string[] {
  const lines: string[] = [];
  const walk = (dir: string): void => {
    for (const name of readdirSync(dir).sort()) {
      const path = join(dir, name);
      const st = lstatSync(path);
      const kind = st.isDirectory()
        ? 'dir'
        : st.isSocket()
          ? 'socket'
          : st.isFile()
            ? 'file'
            : st.isCharacterDevice()
              ? 'char-device'
              : 'other';
      lines.push(
        `${options.relative ? path.slice(root.length + 1) : path} ${kind} ${(st.mode & 0o7777).toString(8)}`,
      );
      if (st.isDirectory()) walk(path);
    }
  };
  walk(root);
  return lines;
}

/**
 * The lines of {@link fileModes} that break the rule for what the manager makes: directories 0700 (0711 with
 * `confined`, to let a VMM running as a user of its own through, never into a listing), files and sockets 0600.
 * The one exception is the tun node confined VMMs get bound over /dev/net/tun: a char device 0666 by design at
 * `tunNode` (as the lines spell it), whose directory must then be 0700, which a missing line reports.
 */
export function modeViolations(
  lines: readonly string[],
  options: { confined: boolean; tunNode: string },
): string[] {
  const dirs = options.confined ? / dir 7[01]{2}$/ : / dir 700$/;
  const node = `${options.tunNode} char-device 666`;
  const wrong = lines.filter(
    (line) => !(dirs.test(line) || / (file|socket) 600$/.test(line) || line === node),
  );
  const nodeDir = `${dirname(options.tunNode)} dir 700`;
  if (lines.includes(node) && !lines.includes(nodeDir)) wrong.push(`missing: ${nodeDir}`);
  return wrong;
}
