import { readFile, rename, writeFile } from 'node:fs/promises';
import { cpus, release } from 'node:os';

const defaultFile = new URL('../../../docs/benchmarks.md', import.meta.url);

const header = `# Benchmarks

Written by \`pnpm bench\`; each section is rewritten by its own benchmark and compares against a baseline
measured in the same run. Figures are from the machine named in the section, not promises for yours.
`;

/** One line naming the machine the figures come from. */
export function machineLine(): string {
  const cpu = cpus();
  return `${cpu.length} × ${cpu[0]?.model.trim() ?? 'unknown CPU'}, Linux ${release()}, Node ${process.versions.node}`;
}

/** A Markdown table; numbers are printed as given, so round them first. */
export function renderTable(
  head: readonly string[],
  rows: readonly (readonly (string | number)[])[],
): string {
  const line = (cells: readonly (string | number)[]) => `| ${cells.join(' | ')} |`;
  return [line(head), line(head.map(() => '---')), ...rows.map(line)].join('\n');
}

/**
 * Replaces the section `id` of docs/benchmarks.md (between its start and end markers) with `body`, adding the
 * command and machine; other sections are kept byte for byte. Writes through a temp file and rename.
 */
export async function writeBenchSection(
  id: string,
  { title, command, body }: { title: string; command: string; body: string },
  file: URL | string = defaultFile,
): Promise<void> {
  if (!/^[a-z0-9-]+$/.test(id))
    throw new TypeError(`bench section id must be kebab-case, got ${JSON.stringify(id)}`);
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
    text = header;
  }
  const start = `<!-- bench:${id}:start -->`;
  const end = `<!-- bench:${id}:end -->`;
  const section = [
    start,
    `## ${title}`,
    '',
    `Command: \`${command}\` · Machine: ${machineLine()} · Date: ${new Date().toISOString().slice(0, 10)}`,
    '',
    body.trim(),
    end,
  ].join('\n');
  const from = text.indexOf(start);
  const to = text.indexOf(end);
  const next =
    from >= 0 && to > from
      ? text.slice(0, from) + section + text.slice(to + end.length)
      : `${text.trimEnd()}\n\n${section}\n`;
  const tmp = `${typeof file === 'string' ? file : file.pathname}.${process.pid}.tmp`;
  await writeFile(tmp, next);
  await rename(tmp, file);
}
