import { VERSION } from './version.js';

/**
 * Runs the myhv command line with `argv` (without node and the script) and resolves to the exit code.
 * The full command tree arrives with the cli issue; today it answers `--version` and `version`.
 */
export async function run(
  argv: readonly string[],
  io: { stdout: NodeJS.WritableStream; stderr: NodeJS.WritableStream } = process,
): Promise<number> {
  const [first] = argv;
  if (first === '--version' || first === '-V' || first === 'version') {
    io.stdout.write(`myhv ${VERSION}\n`);
    return 0;
  }
  io.stderr.write(`myhv: unknown command ${JSON.stringify(first ?? '')}; try \`myhv --version\`\n`);
  return 2;
}
